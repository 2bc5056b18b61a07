import { createHash, createHmac } from 'node:crypto';
import { registerSecret } from '../project/secrets.js';
import type { Destination, DestinationContext, DestinationType, OptionProblem, OutboundRecord, RecordResult } from './destination.js';
import { DeliveryError, parseRetryAfter } from './errors.js';

/**
 * The webhook connector: POSTs each batch as JSON `{records: [{op, key, idempotency_key,
 * payload}]}` to `options.url`, signed with HMAC-SHA256 (`X-CDP-Signature: sha256=<hex>`) and
 * carrying a batch `Idempotency-Key`. The receiver answers 2xx with no body (all acknowledged) or
 * `{results: [{key, status: 'ok'|'error', reason}]}` (207-style, per record). Errors are
 * classified for the engine's retry policy (src/destinations/errors.ts).
 */
export const WEBHOOK_MAX_BATCH = 1000;
const ENV_REFERENCE = /^\s*\{\{\s*env\s+"([A-Za-z_][A-Za-z0-9_]*)"\s*\}\}\s*$/;
const OPTIONS = ['url', 'secret', 'timeout_ms'];

export interface WebhookRecord {
  op: string;
  key: string;
  idempotency_key: string;
  payload: Record<string, unknown>;
}

/** The batch `Idempotency-Key`: sha256 over `op:key:payload_hash` lines, in batch order. A resend of the same batch carries the same key. */
export function batchIdempotencyKey(batch: readonly Pick<OutboundRecord, 'op' | 'key' | 'payloadHash'>[]): string {
  return createHash('sha256').update(batch.map((r) => `${r.op}:${r.key}:${r.payloadHash}`).join('\n')).digest('hex');
}

export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** `{{ env "NAME" }}` → NAME; anything else (a literal secret) → undefined. */
export function envReference(value: unknown): string | undefined {
  return typeof value === 'string' ? ENV_REFERENCE.exec(value)?.[1] : undefined;
}

function resolveSecret(value: unknown, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const name = envReference(value);
  const secret = name === undefined ? undefined : env[name];
  if (secret !== undefined) registerSecret(secret);
  return secret;
}

export const webhookDestination: DestinationType = {
  type: 'webhook',
  capabilities: { modes: ['upsert', 'mirror', 'insert', 'add_remove'], maxBatchSize: WEBHOOK_MAX_BATCH, fields: 'any' },

  validateOptions(options: Record<string, unknown>): OptionProblem[] {
    const problems: OptionProblem[] = [];
    for (const key of Object.keys(options)) {
      if (!OPTIONS.includes(key)) problems.push({ key, message: `is not an option of the webhook destination (options: ${OPTIONS.join(', ')})` });
    }
    const url = options['url'];
    if (url === undefined) problems.push({ key: 'url', message: 'is required: the http(s) URL batches are POSTed to' });
    else if (typeof url !== 'string' || !isHttpUrl(url)) problems.push({ key: 'url', message: `must be an http:// or https:// URL, got ${JSON.stringify(url)}` });
    const secret = options['secret'];
    if (secret === undefined) {
      problems.push({ key: 'secret', message: 'is required: the HMAC-SHA256 signing key, as an env reference {{ env "NAME" }}' });
    } else {
      const name = envReference(secret);
      // Never echo the value: it may be the secret itself.
      if (name === undefined) problems.push({ key: 'secret', message: 'must be an env reference such as {{ env "WEBHOOK_SECRET" }}, not a literal value: secrets do not belong in contracts' });
      else if (resolveSecret(secret) === undefined) problems.push({ key: 'secret', message: `names environment variable ${name}, which is not set` });
    }
    const timeout = options['timeout_ms'];
    if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1)) problems.push({ key: 'timeout_ms', message: 'must be a positive integer (milliseconds)' });
    return problems;
  },

  async open(context: DestinationContext): Promise<Destination> {
    const secret = resolveSecret(context.options['secret']);
    if (secret === undefined) throw new DeliveryError('the webhook secret is not set', 'auth');
    const timeout = typeof context.options['timeout_ms'] === 'number' ? context.options['timeout_ms'] : 30_000;
    return new Webhook(String(context.options['url']), secret, timeout, this.capabilities);
  },
};

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

class Webhook implements Destination {
  constructor(
    private readonly url: string,
    private readonly secret: string,
    private readonly timeoutMs: number,
    readonly capabilities: DestinationType['capabilities'],
  ) {}

  async send(batch: readonly OutboundRecord[]): Promise<RecordResult[]> {
    const records: WebhookRecord[] = batch.map((r) => ({ op: r.op, key: r.key, idempotency_key: r.idempotencyKey, payload: r.payload }));
    const body = JSON.stringify({ records });
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': batchIdempotencyKey(batch),
          'x-cdp-signature': signature(this.secret, body),
        },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new DeliveryError(`POST ${this.url} failed: ${cause?.code ?? cause?.message ?? (error as Error).message}`, 'network');
    }
    const text = await response.text().catch(() => '');
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
