import { redact, registerSecret } from '../project/secrets.js';
import type { OptionProblem } from './destination.js';
import { DeliveryError, parseRetryAfter } from './errors.js';

/**
 * What the HTTP connectors share: option checks, env-referenced secrets, and the one request path
 * (`jsonCall`): the call itself, the body parsed, and an answer that is not a success turned into
 * a classified, redacted error. Each platform only says how it describes a failure (a
 * `FailureReader`).
 */

const ENV_REFERENCE = /^\s*\{\{\s*env\s+"([A-Za-z_][A-Za-z0-9_]*)"\s*\}\}\s*$/;
export const DEFAULT_TIMEOUT_MS = 30_000;

// ---- options ----

/** `{{ env "NAME" }}` → NAME; anything else (a literal secret) → undefined. */
export function envReference(value: unknown): string | undefined {
  return typeof value === 'string' ? ENV_REFERENCE.exec(value)?.[1] : undefined;
}

/**
 * Where connectors read their credentials: the environment the CLI was given (main's `env`, the
 * process's by default), so an embedding caller's environment counts, as it does for profiles.yml.
 */
let credentialEnvironment: NodeJS.ProcessEnv = process.env;

export function useCredentialEnvironment(env: NodeJS.ProcessEnv): void {
  credentialEnvironment = env;
}

/** The value of an env-referenced secret, registered so it is redacted wherever it would be printed. */
export function resolveSecret(value: unknown, env: NodeJS.ProcessEnv = credentialEnvironment): string | undefined {
  const name = envReference(value);
  const secret = name === undefined ? undefined : env[name];
  if (secret !== undefined) registerSecret(secret);
  return secret;
}

/** A secret option when a connector opens: its value, or an auth DeliveryError `the <type> <key> is not set`. */
export function requireSecret(type: string, options: Record<string, unknown>, key: string): string {
  const secret = resolveSecret(options[key]);
  if (secret === undefined) throw new DeliveryError(`the ${type} ${key} is not set`, 'auth');
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
  return resolveSecret(value) === undefined ? [{ key, message: `names environment variable ${name}, which is not set`, credentialUnset: true }] : [];
}

/** An optional whole-number option of at least 1; `unit` goes in the message. */
export function positiveIntegerProblems(options: Record<string, unknown>, key: string, unit?: string): OptionProblem[] {
  const value = options[key];
  return value === undefined || (typeof value === 'number' && Number.isInteger(value) && value >= 1)
    ? []
    : [{ key, message: `must be a positive integer${unit ? ` (${unit})` : ''}` }];
}

export function timeoutProblems(options: Record<string, unknown>): OptionProblem[] {
  return positiveIntegerProblems(options, 'timeout_ms', 'milliseconds');
}

/** An optional string option that must match `pattern`: `must be <what>, got <value>` otherwise. */
export function patternProblems(options: Record<string, unknown>, key: string, pattern: RegExp, what: string): OptionProblem[] {
  const value = options[key];
  return value === undefined || (typeof value === 'string' && pattern.test(value)) ? [] : [{ key, message: `must be ${what}, got ${JSON.stringify(value)}` }];
}

export function stringOption(options: Record<string, unknown>, key: string, fallback: string): string {
  const value = options[key];
  return typeof value === 'string' ? value : fallback;
}

export function numberOption(options: Record<string, unknown>, key: string, fallback: number): number {
  const value = options[key];
  return typeof value === 'number' ? value : fallback;
}

/** A base URL option without trailing slashes; `fallback` when unset (a required one is validated before). */
export function baseUrlOf(options: Record<string, unknown>, key: string, fallback?: string): string {
  const value = options[key];
  return (typeof value === 'string' ? value : (fallback ?? String(value))).replace(/\/+$/, '');
}

export function timeoutOf(options: Record<string, unknown>): number {
  return numberOption(options, 'timeout_ms', DEFAULT_TIMEOUT_MS);
}

/** Splits `items` into runs of at most `size`, for calls with a smaller cap than the batch. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

// ---- requests ----

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

export interface JsonRequest {
  method: string;
  baseUrl: string;
  /** Path and query, appended to `baseUrl`. */
  path: string;
  /** What messages call the request (`<METHOD> <label> answered …`); `path` by default. */
  label?: string;
  headers: Record<string, string>;
  /** A body sent as JSON. */
  payload?: unknown;
  /** A body already encoded (a form, CSV), instead of `payload`: its content type goes in `headers`. */
  body?: string;
  timeoutMs: number;
  /**
   * What a success carries: JSON or nothing (`json`, the default), JSON always (`required`: an
   * empty body is refused like one that is not JSON), or anything (`text`: the caller reads `text`).
   */
  answer?: 'json' | 'required' | 'text';
}

export interface JsonAnswer {
  status: number;
  headers: Headers;
  /** The parsed body; undefined when empty or not JSON. */
  body: unknown;
  text: string;
}

/** What a platform's error body says: its code, its message, and anything to append (a trace id, with its leading space). */
export interface PlatformError {
  code?: string;
  detail?: string;
  note?: string;
}

/** A failed answer, with the message already built (and redacted). */
export interface FailedAnswer {
  status: number;
  headers: Headers;
  body: unknown;
  message: string;
  retryAfterMs: number | undefined;
}

/** How a platform describes a failure, and how the engine should take it. */
export interface FailureReader {
  /** The error code and message of a JSON error body. */
  explain(body: unknown): PlatformError;
  /** How long to wait before a retry; by default `Retry-After`. */
  retryAfterMs?(headers: Headers): number | undefined;
  /** A 2xx answer whose body reports an error all the same (Meta's `{error: …}`). */
  failedDespiteStatus?(body: unknown): boolean;
  /** The error thrown; by default a DeliveryError classified by status (429, 401/403, 5xx, other 4xx). */
  classify?(failure: FailedAnswer): Error;
}

/**
 * One request of a platform connector and its answer: the body parsed, and an answer that is not a
 * success turned into the reader's error, whose message reads
 * `<METHOD> <label> answered <status> <code>: <detail><note>` (the detail defaults to the start of
 * the body) with every registered secret masked: platforms may echo a credential, and the message
 * is stored in cdp_sync.runs. A success whose body is not what `answer` says is a server error.
 */
export async function jsonCall(request: JsonRequest, reader: FailureReader): Promise<JsonAnswer> {
  const { method } = request;
  const label = request.label ?? request.path;
  const encoded = request.body ?? (request.payload === undefined ? undefined : JSON.stringify(request.payload));
  const { response, text } = await requestJson(method, `${request.baseUrl}${request.path}`, label, request.headers, encoded, request.timeoutMs);
  let body: unknown;
  try {
    body = text.trim() === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  const { status, headers } = response;
  if (!response.ok || reader.failedDespiteStatus?.(body)) {
    const { code, detail = text.trim().slice(0, 300), note = '' } = body === undefined ? {} : reader.explain(body);
    const message = redact(`${method} ${label} answered ${status}${code ? ` ${code}` : ''}${detail ? `: ${detail}` : ''}${note}`);
    const retryAfterMs = reader.retryAfterMs ? reader.retryAfterMs(headers) : parseRetryAfter(headers.get('retry-after'));
    const failure = { status, headers, body, message, retryAfterMs };
    throw reader.classify ? reader.classify(failure) : DeliveryError.fromStatus(status, message, retryAfterMs);
  }
  const answer = request.answer ?? 'json';
  if (answer !== 'text' && body === undefined && (answer === 'required' || (text.trim() !== '' && status !== 204))) {
    throw new DeliveryError(`${method} ${label} answered ${status} with a body that is not JSON`, 'server', status);
  }
  return { status, headers, body, text };
}
