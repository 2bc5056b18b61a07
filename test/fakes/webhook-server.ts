import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ScriptedServer, type FakeResponse } from './scripted-server.js';

/**
 * A local stand-in for a webhook receiver (the `webhook` connector's contract,
 * docs/connectors/webhook.md), on loopback only. It records every request, verifies the HMAC
 * signature and the batch Idempotency-Key, applies records idempotently (by their
 * idempotency_key; a privacy erasure arrives as `op: "delete"`), and can be scripted to fail:
 * 429 + Retry-After, 5xx, 401, per-record rejections (207), or a whole-batch 400 when a batch
 * contains a given key.
 */

export interface WireRecord {
  /** add, change, remove, or delete (a privacy erasure). */
  op: string;
  key: string;
  idempotency_key: string;
  payload: Record<string, unknown>;
}

export interface RecordedRequest {
  at: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  records: WireRecord[];
  signatureValid: boolean;
  /** The Idempotency-Key equals sha256 over `op:key:payload_hash` lines (payload_hash recomputed from the payload). */
  idempotencyKeyValid: boolean;
  status: number;
}

export class FakeWebhook extends ScriptedServer {
  readonly requests: RecordedRequest[] = [];
  /** Records applied, once each: idempotency_key → record. */
  readonly applied = new Map<string, WireRecord>();
  /** How many times each idempotency_key arrived in an acknowledged response. */
  readonly deliveries = new Map<string, number>();
  private readonly rejectedKeys = new Map<string, string>();
  private readonly poisonKeys = new Set<string>();

  constructor(readonly secret: string) {
    super();
  }

  protected override readonly urlPath = '/hooks/cdp';

  /** Records with these keys are refused one by one (a 207 with per-record results). */
  rejectKeys(keys: string[], reason = 'invalid record'): this {
    for (const k of keys) this.rejectedKeys.set(k, reason);
    return this;
  }

  /** A batch containing `key` is refused as a whole with 400. */
  rejectBatchesContaining(key: string): this {
    this.poisonKeys.add(key);
    return this;
  }

  reset(): this {
    this.failures = [];
    this.rejectedKeys.clear();
    this.poisonKeys.clear();
    return this;
  }

  /** Keys of the privacy erasures applied (`op: "delete"`), sorted. */
  deletedKeys(): string[] {
    return [...this.applied.values()].filter((r) => r.op === 'delete').map((r) => r.key).sort();
  }

  /** Keys applied (each once, by idempotency_key), sorted. */
  appliedKeys(): string[] {
    return [...this.applied.values()].map((r) => r.key).sort();
  }

  protected handle(method: string, path: string, headers: IncomingHttpHeaders, body: string): FakeResponse {
    const expected = `sha256=${createHmac('sha256', this.secret).update(body).digest('hex')}`;
    const given = String(headers['x-cdp-signature'] ?? '');
    const signatureValid = given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
    let records: WireRecord[] = [];
    try {
      records = (JSON.parse(body) as { records: WireRecord[] }).records ?? [];
    } catch {
      records = [];
    }
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    // payload_hash is sha256 of the canonical payload text (sorted keys, as the engine builds it); for removes the wire
    // payload is the last acknowledged one, so the same rule holds.
    const canonical = (p: Record<string, unknown>) => JSON.stringify(Object.fromEntries(Object.keys(p).sort().map((k) => [k, p[k]])));
    const idempotencyKeyValid = headers['idempotency-key'] === sha(records.map((r) => `${r.op}:${r.key}:${sha(canonical(r.payload))}`).join('\n'));
    const request: RecordedRequest = { at: performance.now(), method, path, headers, body, records, signatureValid, idempotencyKeyValid, status: 0 };
    this.requests.push(request);
    const reply = (status: number, extra: Record<string, string> = {}, text = '') => {
      request.status = status;
      return { status, headers: { 'content-type': 'application/json', ...extra }, body: text };
    };
    if (method !== 'POST') return reply(405);
    if (!signatureValid) return reply(401, {}, JSON.stringify({ error: 'bad signature' }));
    const failure = this.nextFailure();
    if (failure && failure.status !== 0) {
      if ('retryAfter' in failure) return reply(429, { 'retry-after': failure.retryAfter }, JSON.stringify({ error: 'rate limited' }));
      return reply(failure.status, {}, failure.body ?? JSON.stringify({ error: `scripted ${failure.status}` }));
    }
    const poison = records.find((r) => this.poisonKeys.has(r.key));
    if (poison) return reply(400, {}, JSON.stringify({ error: `invalid batch: record ${poison.key} is malformed` }));
    const results = records.map((r) => {
      const reason = this.rejectedKeys.get(r.key);
      if (reason) return { key: r.key, status: 'error', reason };
      if (!this.applied.has(r.idempotency_key)) this.applied.set(r.idempotency_key, r);
      this.deliveries.set(r.idempotency_key, (this.deliveries.get(r.idempotency_key) ?? 0) + 1);
      return { key: r.key, status: 'ok' };
    });
    if (results.every((r) => r.status === 'ok')) return reply(200);
    return reply(207, {}, JSON.stringify({ results }));
  }
}
