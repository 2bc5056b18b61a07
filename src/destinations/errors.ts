/**
 * How a connector says *why* a whole batch failed, so the engine can decide: retry (429, 5xx,
 * network), split the batch to isolate bad records (another 4xx), or stop the destination (auth).
 * A plain Error from a connector is none of these: the engine stops the destination, state intact.
 */
export type DeliveryFailure = 'rate_limited' | 'server' | 'network' | 'auth' | 'rejected';

export class DeliveryError extends Error {
  override readonly name = 'DeliveryError';

  constructor(
    message: string,
    readonly kind: DeliveryFailure,
    /** The HTTP status, when there was a response. */
    readonly status?: number,
    /** From a 429's `Retry-After`: the engine waits at least this long before the next attempt. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }

  get retryable(): boolean {
    return this.kind === 'rate_limited' || this.kind === 'server' || this.kind === 'network';
  }

  /** Classifies an HTTP status that is not a success. */
  static fromStatus(status: number, message: string, retryAfterMs?: number): DeliveryError {
    if (status === 429) return new DeliveryError(message, 'rate_limited', status, retryAfterMs);
    if (status === 401 || status === 403) return new DeliveryError(message, 'auth', status);
    if (status >= 500) return new DeliveryError(message, 'server', status, retryAfterMs);
    return new DeliveryError(message, 'rejected', status);
  }
}

/** `Retry-After` is delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.ceil(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
