import { describe, expect, it } from 'vitest';
import type { Destination, OutboundRecord, RecordResult } from '../../src/destinations/destination.js';
import { DeliveryError, parseRetryAfter } from '../../src/destinations/errors.js';
import { envReference } from '../../src/destinations/http-connector.js';
import { batchIdempotencyKey, requestBody, signature, webhookDestination } from '../../src/destinations/webhook.js';
import { wireOp } from '../../src/destinations/wire-op.js';
import { YamlValue } from '../../src/project/yaml-reader.js';
import { DEFAULT_DELIVERY, deliveryPolicy, type DeliveryPolicy } from '../../src/sync/contract.js';
import { deliverer, DestinationStopped, RateLimiter } from '../../src/sync/delivery.js';

const record = (key: string): OutboundRecord => ({ op: 'add', key, idempotencyKey: `i${key}`, payloadHash: `h${key}`, payload: { key } });
const fast: DeliveryPolicy = { ...DEFAULT_DELIVERY, initialBackoffMs: 1, maxBackoffMs: 5 };

function fake(send: (batch: readonly OutboundRecord[], call: number) => RecordResult[]): Destination & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    capabilities: { modes: ['upsert'], maxBatchSize: 100, fields: 'any' },
    send: async (batch) => {
      calls.push(batch.map((r) => r.key));
      return send(batch, calls.length);
    },
    close: async () => undefined,
  };
}

async function run(connector: Destination, policy: DeliveryPolicy, batch: OutboundRecord[]) {
  const acks: { keys: string[]; results: RecordResult[] }[] = [];
  await deliverer(connector, policy).deliver(batch, async (b, results) => {
    acks.push({ keys: b.map((r) => r.key), results });
  });
  return acks;
}

describe('delivery policy', () => {
  it('defaults, and reads every key', () => {
    expect(deliveryPolicy(YamlValue.parse('c.yml', 'name: x\n').child('delivery'))).toEqual(DEFAULT_DELIVERY);
    const doc = YamlValue.parse('c.yml', 'delivery:\n  max_attempts: 3\n  initial_backoff_ms: 100\n  max_backoff_ms: 1000\n  concurrency: 4\n  rate_limit_per_second: 2.5\n  quarantine_after: 5\n');
    expect(deliveryPolicy(doc.child('delivery'))).toEqual({ maxAttempts: 3, initialBackoffMs: 100, maxBackoffMs: 1000, concurrency: 4, rateLimitPerSecond: 2.5, quarantineAfter: 5 });
  });

  it.each([
    ['delivery: 3\n', /`delivery` must be a mapping/],
    ['delivery:\n  quarantine_after: 0\n', /`delivery\.quarantine_after` must be an integer ≥ 1/],
    ['delivery:\n  rate_limit_per_second: fast\n', /must be a number > 0/],
  ])('rejects %j', (text, message) => {
    expect(() => deliveryPolicy(YamlValue.parse('c.yml', text).child('delivery'))).toThrow(message);
  });
});

describe('retry classification', () => {
  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter('0.5')).toBe(500);
    expect(parseRetryAfter(new Date(10_000 + 3000).toUTCString(), 10_000)).toBe(3000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });

  it('classifies statuses', () => {
    expect(DeliveryError.fromStatus(429, 'x', 10)).toMatchObject({ kind: 'rate_limited', retryable: true, retryAfterMs: 10 });
    expect(DeliveryError.fromStatus(503, 'x')).toMatchObject({ kind: 'server', retryable: true });
    expect(DeliveryError.fromStatus(401, 'x')).toMatchObject({ kind: 'auth', retryable: false });
    expect(DeliveryError.fromStatus(403, 'x')).toMatchObject({ kind: 'auth', retryable: false });
    expect(DeliveryError.fromStatus(422, 'x')).toMatchObject({ kind: 'rejected', retryable: false });
  });
});

describe('the deliverer', () => {
  it('waits at least Retry-After before retrying a 429', async () => {
    const at: number[] = [];
    const c = fake((batch, call) => {
      at.push(performance.now());
      if (call === 1) throw new DeliveryError('429', 'rate_limited', 429, 300);
      return batch.map((r) => ({ key: r.key, ok: true as const }));
    });
    const acks = await run(c, fast, [record('a')]);
    expect(acks).toHaveLength(1);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(299);
  });

  it('retries network and 5xx errors up to max_attempts, then stops the destination', async () => {
    const c = fake(() => {
      throw new DeliveryError('ECONNRESET', 'network');
    });
    await expect(run(c, { ...fast, maxAttempts: 3 }, [record('a')])).rejects.toThrow(/gave up on a batch of 1 after 3 attempt\(s\): ECONNRESET/);
    expect(c.calls).toHaveLength(3);
  });

  it('for a destination that cannot deduplicate, sends a 5xx batch once and says it is in doubt, counting the attempts made', async () => {
    const c = fake(() => {
      throw new DeliveryError('POST /users/track answered 503', 'server', 503);
    });
    const error = await deliverer(c, { ...fast, maxAttempts: 5 }, false).deliver([record('a')], async () => undefined).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/a batch of 1 failed \(POST \/users\/track answered 503\) and was not sent again: the destination cannot deduplicate.*in doubt.*--resend-in-doubt/);
    expect(c.calls).toHaveLength(1);
  });

    it('does not retry auth errors and stops with a clear message', async () => {
    const c = fake(() => {
      throw new DeliveryError('token expired', 'auth', 401);
    });
    const error = await run(c, fast, [record('a'), record('b')]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DestinationStopped);
    expect((error as Error).message).toMatch(/^authentication failed \(401\): token expired; stopped sending/);
    expect(c.calls).toHaveLength(1);
  });

  it('does not retry a plain connector error', async () => {
    const c = fake(() => {
      throw new Error('boom');
    });
    await expect(run(c, fast, [record('a')])).rejects.toThrow(/the destination failed a batch of 1: boom/);
    expect(c.calls).toHaveLength(1);
  });

  it('splits a batch rejected as a whole, acknowledging the good halves and isolating the bad records', async () => {
    const bad = new Set(['c', 'f']);
    const c = fake((batch) => {
      if (batch.some((r) => bad.has(r.key))) throw new DeliveryError('400 bad', 'rejected', 400);
      return batch.map((r) => ({ key: r.key, ok: true as const }));
    });
    const acks = await run(c, fast, ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map(record));
    const ok = acks.flatMap((a) => a.results.filter((r) => r.ok).map((r) => r.key)).sort();
    const failed = acks.flatMap((a) => a.results.filter((r) => !r.ok).map((r) => r.key)).sort();
    expect(ok).toEqual(['a', 'b', 'd', 'e', 'g']);
    expect(failed).toEqual(['c', 'f']);
    expect(c.calls[0]).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
  });
});

describe('the rate limiter', () => {
  it('spaces calls evenly', async () => {
    const limiter = new RateLimiter(50);
    const start = performance.now();
    for (let i = 0; i < 6; i++) await limiter.take();
    expect(performance.now() - start).toBeGreaterThanOrEqual(5 * 20 - 2);
  });
});

describe('webhook connector helpers', () => {
  it('signs with HMAC-SHA256 and derives a stable batch Idempotency-Key', () => {
    expect(signature('key', 'The quick brown fox jumps over the lazy dog')).toBe('sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8');
    const batch = [record('a'), record('b')];
    expect(batchIdempotencyKey(batch)).toBe(batchIdempotencyKey([...batch]));
    expect(batchIdempotencyKey(batch)).not.toBe(batchIdempotencyKey([record('a')]));
  });

  it('writes the body as JSON.stringify would, splicing each payload from its planned JSON text when the record has it', () => {
    const plain: OutboundRecord = { ...record('a"b'), payload: { n: 1, s: 'x' } };
    const erased: OutboundRecord = { ...record('c'), op: 'remove', removal: 'erase', payload: { email: 'e@x' } };
    expect(requestBody([plain, erased])).toBe(JSON.stringify({ records: [plain, erased].map((r) => ({ op: wireOp(r), key: r.key, idempotency_key: r.idempotencyKey, payload: r.payload })) }));
    // The planned text goes out as the warehouse wrote it (a double as 2.0), without parsing `payload`.
    const planned: OutboundRecord = { ...record('d'), payloadJson: '{"ltv":2.0,"name":"D"}', get payload(): Record<string, unknown> { throw new Error('parsed') } };
    expect(requestBody([planned])).toBe(`{"records":[{"op":"add","key":"d","idempotency_key":"${planned.idempotencyKey}","payload":{"ltv":2.0,"name":"D"}}]}`);
    expect(JSON.parse(requestBody([planned])).records[0].payload).toEqual({ ltv: 2, name: 'D' });
  });

  it('accepts only env references as the secret', () => {
    expect(envReference('{{ env "HOOK_SECRET" }}')).toBe('HOOK_SECRET');
    expect(envReference('s3cr3t')).toBeUndefined();
    const problems = webhookDestination.validateOptions({ url: 'https://example.test/hook', secret: 'literal-secret-value' });
    expect(problems).toEqual([{ key: 'secret', message: expect.stringMatching(/must be an env reference/) }]);
    expect(JSON.stringify(problems)).not.toContain('literal-secret-value');
    expect(webhookDestination.validateOptions({ secret: '{{ env "NOPE_NOT_SET_X" }}' }).map((p) => p.key)).toEqual(['url', 'secret']);
    expect(webhookDestination.validateOptions({ url: 'file:///etc/passwd', secret: '{{ env "PATH" }}', extra: 1 }).map((p) => p.key)).toEqual(['extra', 'url']);
  });
});
