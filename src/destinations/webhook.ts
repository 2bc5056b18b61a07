import { createHash, createHmac } from 'node:crypto';
import type { Destination, DestinationContext, DestinationType, OptionProblem, OutboundRecord, RecordResult } from './destination.js';
import { DeliveryError, parseRetryAfter } from './errors.js';
import { postJson, resolveSecret, secretProblems, timeoutOf, timeoutProblems, unknownOptionProblems, urlProblems } from './http-connector.js';
import { payloadText, wireOp, type WireOp } from './wire-op.js';

/**
 * The webhook connector (docs/connectors/webhook.md): POSTs each batch as JSON `{records: [{op,
 * key, idempotency_key, payload}]}` to `options.url`, signed with HMAC-SHA256
 * (`X-CDP-Signature: sha256=<hex>`) and carrying a batch `Idempotency-Key`. A privacy erasure
 * goes out as `op: "delete"` with the payload last acknowledged. The receiver answers 2xx with no
 * body (all acknowledged) or `{results: [{key, status: 'ok'|'error', reason}]}` (207-style, per
 * record). Errors are classified for the engine's retry policy (src/destinations/errors.ts).
 */
export const WEBHOOK_MAX_BATCH = 1000;
const OPTIONS = ['url', 'secret', 'timeout_ms'];

export interface WebhookRecord {
  op: WireOp;
  key: string;
  idempotency_key: string;
  payload: Record<string, unknown>;
}

/**
 * The batch `Idempotency-Key`: sha256 over `op:key:payload_hash` lines, in batch order, `op` as on
 * the wire (so a receiver can recompute it). A resend of the same batch carries the same key.
 */
export function batchIdempotencyKey(batch: readonly Pick<OutboundRecord, 'op' | 'removal' | 'key' | 'payloadHash'>[]): string {
  return createHash('sha256').update(batch.map((r) => `${wireOp(r)}:${r.key}:${r.payloadHash}`).join('\n')).digest('hex');
}

/**
 * The JSON body `{records: [WebhookRecord…]}`, written as text: each payload is spliced from
 * the planned JSON when the record has it (numbers as the warehouse wrote them), so a batch
 * costs no parse and no re-serialisation of its payloads.
 */
export function requestBody(batch: readonly OutboundRecord[]): string {
  // Appended in one pass (V8 keeps a rope, flattened once when the body is signed): half the
  // cost of an array of record strings and its join, per record of every batch.
  let body = '{"records":[';
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i]!;
    body += `${i === 0 ? '' : ','}{"op":"${wireOp(r)}","key":${JSON.stringify(r.key)},"idempotency_key":${JSON.stringify(r.idempotencyKey)},"payload":${payloadText(r)}}`;
  }
  return `${body}]}`;
}

export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export const webhookDestination: DestinationType = {
  type: 'webhook',
  capabilities: { modes: ['upsert', 'mirror', 'insert', 'add_remove'], maxBatchSize: WEBHOOK_MAX_BATCH, fields: 'any' },

  validateOptions(options: Record<string, unknown>): OptionProblem[] {
    return [
      ...unknownOptionProblems('webhook', options, OPTIONS),
      ...urlProblems(options, 'url', 'the http(s) URL batches are POSTed to'),
      ...secretProblems(options, 'secret', 'the HMAC-SHA256 signing key', 'WEBHOOK_SECRET'),
      ...timeoutProblems(options),
    ];
  },

  async open(context: DestinationContext): Promise<Destination> {
    const secret = resolveSecret(context.options['secret']);
    if (secret === undefined) throw new DeliveryError('the webhook secret is not set', 'auth');
    return new Webhook(String(context.options['url']), secret, timeoutOf(context.options), this.capabilities);
  },
};

class Webhook implements Destination {
  constructor(
    private readonly url: string,
    private readonly secret: string,
    private readonly timeoutMs: number,
    readonly capabilities: DestinationType['capabilities'],
  ) {}

  async send(batch: readonly OutboundRecord[]): Promise<RecordResult[]> {
    const body = requestBody(batch);
    const headers = { 'idempotency-key': batchIdempotencyKey(batch), 'x-cdp-signature': signature(this.secret, body) };
    const { response, text } = await postJson(this.url, this.url, headers, body, this.timeoutMs);
    if (!response.ok) {
      const detail = text.trim().slice(0, 300);
      throw DeliveryError.fromStatus(response.status, `POST ${this.url} answered ${response.status}${detail ? `: ${detail}` : ''}`, parseRetryAfter(response.headers.get('retry-after')));
    }
    if (text.trim() === '') return batch.map((r) => ({ key: r.key, ok: true as const }));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new DeliveryError(`POST ${this.url} answered ${response.status} with a body that is not JSON`, 'server', response.status);
    }
    const results = (parsed as { results?: unknown }).results;
    if (!Array.isArray(results)) return batch.map((r) => ({ key: r.key, ok: true as const }));
    return results.flatMap((entry): RecordResult[] => {
      const e = entry as { key?: unknown; status?: unknown; reason?: unknown };
      if (e.key === undefined || e.key === null) return [];
      const key = String(e.key);
      return e.status === 'ok' ? [{ key, ok: true }] : [{ key, ok: false, reason: typeof e.reason === 'string' && e.reason !== '' ? e.reason : `status ${String(e.status)}` }];
    });
  }

  async close(): Promise<void> {}
}
