import { errorMessage } from '../errors.js';

/**
 * A generated model can stop its own build with a message for the user (failWhenSql in
 * src/profiles/sql.ts): the message, between these markers, is cast to an integer, which fails
 * the query on every engine with the string quoted inside the engine's own error. The run reports
 * the message alone: the engine's wording and the SQL excerpt around it would only hide it.
 */
export const CHECK_FAILURE_START = '[cdp-check]';
export const CHECK_FAILURE_END = '[/cdp-check]';

/** The message of a failed check inside a warehouse error, if that is what the error is. */
export function checkFailureMessage(error: unknown): string | undefined {
  const text = errorMessage(error);
  const start = text.indexOf(CHECK_FAILURE_START);
  if (start === -1) return undefined;
  const end = text.indexOf(CHECK_FAILURE_END, start);
  // An engine that truncates long values in its errors loses the end marker: keep its error whole.
  return end === -1 ? undefined : text.slice(start + CHECK_FAILURE_START.length, end);
}
