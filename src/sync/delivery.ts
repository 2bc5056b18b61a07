import pRetry, { AbortError } from 'p-retry';
import type { Destination, OutboundRecord, RecordResult } from '../destinations/destination.js';
import { DeliveryError } from '../destinations/errors.js';
import { errorMessage } from '../errors.js';
import type { DeliveryPolicy } from './contract.js';

/**
 * The delivery loop's policy, apart from state: retries (p-retry, exponential backoff with
 * jitter, at least `Retry-After`), the rate limit, and splitting a batch rejected as a whole.
 */

/** Stops the whole destination (auth failure, retries exhausted, a connector error): state stays as acknowledged so far. */
export class DestinationStopped extends Error {
  override readonly name = 'DestinationStopped';
  /**
   * The records tried and given up (the sub-batch that failed, after any splitting); empty when
   * this batch was never sent because another batch stopped the destination.
   */
  constructor(message: string, readonly givenUp: readonly OutboundRecord[] = []) {
    super(message);
  }
}

/** Batch calls per second: a token bucket of capacity 1, so calls are spaced evenly. */
export class RateLimiter {
  private next = 0;
  constructor(private readonly perSecond: number) {}

  async take(signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    const at = Math.max(now, this.next);
    this.next = at + 1000 / this.perSecond;
    if (at > now) await sleep(at - now, signal);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface Deliverer {
  /**
   * Sends `batch` (retrying), splitting it in halves when the destination rejects it as a whole,
   * and calls `acknowledge` with each (sub-)batch's per-record results as soon as it has them.
   * Throws DestinationStopped when the destination must stop.
   */
  deliver(batch: OutboundRecord[], acknowledge: (batch: OutboundRecord[], results: RecordResult[]) => Promise<void>): Promise<void>;
  /** Makes waiting retries give up: another batch stopped the destination. */
  stop(): void;
}

/**
 * `resendsAreSafe` false (a connector that cannot deduplicate, `deduplicates: false`): only a 429
 * is retried, since the platform did not process that call; after a 5xx or a network error the
 * batch may have been applied, so it is not sent again and stays in doubt.
 */
export function deliverer(connector: Destination, policy: DeliveryPolicy, resendsAreSafe = true): Deliverer {
  const limiter = policy.rateLimitPerSecond ? new RateLimiter(policy.rateLimitPerSecond) : undefined;
  const stopping = new AbortController();

  const call = (batch: OutboundRecord[], tries: { made: number }): Promise<RecordResult[]> =>
    pRetry(
      async (attempt) => {
        tries.made = attempt;
        await limiter?.take(stopping.signal);
        if (stopping.signal.aborted) throw new AbortError(new DestinationStopped('stopped: another batch of this destination failed'));
        return connector.send(batch);
      },
      {
        retries: policy.maxAttempts - 1,
        factor: 2,
        minTimeout: policy.initialBackoffMs,
        maxTimeout: policy.maxBackoffMs,
        randomize: true,
        // 429, 5xx and network errors only: another 4xx will not get better by itself, auth errors stop.
        shouldRetry: ({ error }) => error instanceof DeliveryError && (resendsAreSafe ? error.retryable : error.kind === 'rate_limited') && !stopping.signal.aborted,
        onFailedAttempt: async ({ error, retriesLeft }) => {
          // Honour Retry-After: wait at least that long (p-retry's own backoff comes on top).
          if (error instanceof DeliveryError && error.retryable && error.retryAfterMs && retriesLeft > 0) await sleep(error.retryAfterMs, stopping.signal);
        },
      },
    );

  const deliver = async (batch: OutboundRecord[], acknowledge: (batch: OutboundRecord[], results: RecordResult[]) => Promise<void>): Promise<void> => {
    let results: RecordResult[];
    const tries = { made: 0 };
    try {
      results = await call(batch, tries);
    } catch (error) {
      if (error instanceof DeliveryError && error.kind === 'rejected') {
        if (batch.length === 1) {
          // Isolated: this record is what the destination refuses.
          await acknowledge(batch, [{ key: batch[0]!.key, ok: false, reason: error.message }]);
          return;
        }
        const half = Math.ceil(batch.length / 2);
        await deliver(batch.slice(0, half), acknowledge);
        await deliver(batch.slice(half), acknowledge);
        return;
      }
      throw stopped(error, batch, tries.made, resendsAreSafe);
    }
    await acknowledge(batch, results);
  };

  return { deliver, stop: () => stopping.abort() };
}

function stopped(error: unknown, batch: readonly OutboundRecord[], attempts: number, resendsAreSafe: boolean): DestinationStopped {
  if (error instanceof DestinationStopped) return error;
  const size = batch.length;
  const kept = 'state kept up to the last acknowledged batch';
  if (error instanceof DeliveryError && error.retryable && error.kind !== 'rate_limited' && !resendsAreSafe) {
    return new DestinationStopped(`a batch of ${size} failed (${error.message}) and was not sent again: the destination cannot deduplicate, and the batch may have been applied; its records are in doubt (check the platform, then \`cdp sync --resend-in-doubt\`), ${kept}`, batch);
  }
  if (error instanceof DeliveryError) {
    if (error.kind === 'auth') {
      return new DestinationStopped(`authentication failed (${error.status ?? 'no status'}): ${error.message}; stopped sending to this destination (check its credentials), ${kept}`, batch);
    }
    if (error.retryable) return new DestinationStopped(`gave up on a batch of ${size} after ${attempts} attempt(s): ${error.message}; ${kept}`, batch);
  }
  return new DestinationStopped(`the destination failed a batch of ${size}: ${errorMessage(error)}; ${kept}`, batch);
}
