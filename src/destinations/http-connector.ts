import { registerSecret } from '../project/secrets.js';
import type { OptionProblem } from './destination.js';
import { DeliveryError } from './errors.js';

/** What the HTTP connectors (webhook, hubspot) share: option checks, env-referenced secrets, the POST itself. */

const ENV_REFERENCE = /^\s*\{\{\s*env\s+"([A-Za-z_][A-Za-z0-9_]*)"\s*\}\}\s*$/;
export const DEFAULT_TIMEOUT_MS = 30_000;

/** `{{ env "NAME" }}` → NAME; anything else (a literal secret) → undefined. */
export function envReference(value: unknown): string | undefined {
  return typeof value === 'string' ? ENV_REFERENCE.exec(value)?.[1] : undefined;
}

/** The value of an env-referenced secret, registered so it is redacted wherever it would be printed. */
export function resolveSecret(value: unknown, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const name = envReference(value);
  const secret = name === undefined ? undefined : env[name];
  if (secret !== undefined) registerSecret(secret);
  return secret;
}

export function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

export function unknownOptionProblems(type: string, options: Record<string, unknown>, allowed: readonly string[]): OptionProblem[] {
  return Object.keys(options)
    .filter((key) => !allowed.includes(key))
    .map((key) => ({ key, message: `is not an option of the ${type} destination (options: ${allowed.join(', ')})` }));
}

/** A URL option: http(s) only; `required` says what it is for when it is missing. */
export function urlProblems(options: Record<string, unknown>, key: string, required?: string): OptionProblem[] {
  const url = options[key];
  if (url === undefined) return required ? [{ key, message: `is required: ${required}` }] : [];
  return typeof url === 'string' && isHttpUrl(url) ? [] : [{ key, message: `must be an http:// or https:// URL, got ${JSON.stringify(url)}` }];
}

/** A secret option: required, an env reference, and set. The value is never echoed: it may be the secret itself. */
export function secretProblems(options: Record<string, unknown>, key: string, what: string, exampleName: string): OptionProblem[] {
  const value = options[key];
  if (value === undefined) return [{ key, message: `is required: ${what}, as an env reference {{ env "NAME" }}` }];
  const name = envReference(value);
  if (name === undefined) return [{ key, message: `must be an env reference such as {{ env "${exampleName}" }}, not a literal value: secrets do not belong in contracts` }];
  return resolveSecret(value) === undefined ? [{ key, message: `names environment variable ${name}, which is not set` }] : [];
}

export function timeoutProblems(options: Record<string, unknown>): OptionProblem[] {
  const timeout = options['timeout_ms'];
  return timeout === undefined || (typeof timeout === 'number' && Number.isInteger(timeout) && timeout >= 1)
    ? []
    : [{ key: 'timeout_ms', message: 'must be a positive integer (milliseconds)' }];
}

export function timeoutOf(options: Record<string, unknown>): number {
  return typeof options['timeout_ms'] === 'number' ? options['timeout_ms'] : DEFAULT_TIMEOUT_MS;
}

/** POSTs a JSON body; a failure to get any answer is a retryable network error. */
export function postJson(url: string, label: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<{ response: Response; text: string }> {
  return requestJson('POST', url, label, headers, body, timeoutMs);
}

/**
 * Sends one request (a JSON body when `body` is given; `headers` may override its content type,
 * e.g. JSON:API's `application/vnd.api+json`); a failure to get any answer is a retryable network error.
 */
export async function requestJson(method: string, url: string, label: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<{ response: Response; text: string }> {
  let response: Response;
  try {
    const allHeaders = body === undefined ? headers : { 'content-type': 'application/json', ...headers };
    response = await fetch(url, { method, headers: allHeaders, body, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new DeliveryError(`${method} ${label} failed: ${cause?.code ?? cause?.message ?? (error as Error).message}`, 'network');
  }
  return { response, text: await response.text().catch(() => '') };
}
