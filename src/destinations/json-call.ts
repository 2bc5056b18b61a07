import { redact } from '../project/secrets.js';
import { DeliveryError } from './errors.js';
import { requestJson } from './http-connector.js';

/**
 * One JSON request of a platform connector (braze, klaviyo) and its answer: the body parsed, and
 * an answer that is not a 2xx turned into a classified DeliveryError whose message reads
 * `<METHOD> <path> answered <status> <code>: <detail>`, with every registered secret masked
 * (platforms may echo a credential, and the message is stored in cdp_sync.runs).
 */

export interface JsonRequest {
  method: 'GET' | 'POST' | 'DELETE';
  baseUrl: string;
  /** Path and query: also the label in messages. */
  path: string;
  headers: Record<string, string>;
  payload?: unknown;
  timeoutMs: number;
}

export interface JsonAnswer {
  status: number;
  headers: Headers;
  /** The parsed body; undefined when empty. */
  body: unknown;
}

/** How a platform describes a failure: its error code and message, and when to retry. */
export interface FailureReader {
  explain(body: unknown): { code?: string; detail?: string };
  retryAfterMs(headers: Headers): number | undefined;
}

export async function jsonCall(request: JsonRequest, reader: FailureReader): Promise<JsonAnswer> {
  const { method, path } = request;
  const payload = request.payload === undefined ? undefined : JSON.stringify(request.payload);
  const { response, text } = await requestJson(method, `${request.baseUrl}${path}`, path, request.headers, payload, request.timeoutMs);
  let body: unknown;
  try {
    body = text.trim() === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const { code, detail = text.trim().slice(0, 300) } = body === undefined ? {} : reader.explain(body);
    const message = redact(`${method} ${path} answered ${response.status}${code ? ` ${code}` : ''}${detail ? `: ${detail}` : ''}`);
    throw DeliveryError.fromStatus(response.status, message, reader.retryAfterMs(response.headers));
  }
  if (body === undefined && text.trim() !== '') {
    throw new DeliveryError(`${method} ${path} answered ${response.status} with a body that is not JSON`, 'server', response.status);
  }
  return { status: response.status, headers: response.headers, body };
}

/** Splits `items` into runs of at most `size`, for calls with a smaller cap than the batch. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
