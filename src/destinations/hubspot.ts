import type { Destination, DestinationContext, DestinationType, OptionProblem, OutboundRecord, RecordResult } from './destination.js';
import { DeliveryError, parseRetryAfter } from './errors.js';
import { postJson, resolveSecret, secretProblems, timeoutOf, timeoutProblems, unknownOptionProblems, urlProblems } from './http-connector.js';

/**
 * The HubSpot CRM v3 contacts connector (docs/destinations.md, "The `hubspot` connector").
 *
 * - adds and changes: `POST /crm/v3/objects/contacts/batch/upsert` with
 *   `{inputs: [{idProperty, id, properties}]}`, `id` being the value of the unique `id_property`
 *   (default `email`); at most 100 inputs per call.
 * - removes with `removal: clear`: the same upsert, with every mapped property but the id set to
 *   `""` (HubSpot clears a property given an empty string).
 * - removes with `removal: delete`: batch archive takes HubSpot object ids only (`{inputs:[{id}]}`,
 *   204, no per-record result), so the connector first resolves the `id_property` values with
 *   `POST …/batch/read` (`idProperty`), then archives the ids found. A contact not found is already
 *   gone: acknowledged. Archiving is idempotent, and restorable in HubSpot for 90 days.
 *
 * Responses: 200/201 every record ok; 207 per-record errors (`errors[].context.ids`) become
 * per-record rejections; 429 (with HubSpot's `RATE_LIMIT` body, `Retry-After` honoured) and 5xx
 * are retryable; 401/403 stop the destination; another 4xx rejects the batch (the engine splits it).
 */
export const HUBSPOT_MAX_BATCH = 100;
export const HUBSPOT_DEFAULT_BASE_URL = 'https://api.hubapi.com';
const OPTIONS = ['base_url', 'token', 'id_property', 'timeout_ms'];
const PROPERTY_NAME = /^[a-z_][a-z0-9_]*$/i;

export const hubspotDestination: DestinationType = {
  type: 'hubspot',
  // HubSpot has no insert-only or list-membership semantics here; `update` (no create) is not a cdp mode.
  // Fields are HubSpot contact properties, custom ones included: any internal property name.
  capabilities: { modes: ['upsert', 'mirror'], maxBatchSize: HUBSPOT_MAX_BATCH, fields: 'any' },

  validateOptions(options: Record<string, unknown>): OptionProblem[] {
    const problems = [
      ...unknownOptionProblems('hubspot', options, OPTIONS),
      ...urlProblems(options, 'base_url'),
      ...secretProblems(options, 'token', 'the private app token', 'HUBSPOT_TOKEN'),
    ];
    const idProperty = options['id_property'];
    if (idProperty !== undefined && (typeof idProperty !== 'string' || !PROPERTY_NAME.test(idProperty))) {
      problems.push({ key: 'id_property', message: `must be a HubSpot property name (a unique property such as email), got ${JSON.stringify(idProperty)}` });
    }
    return [...problems, ...timeoutProblems(options)];
  },

  async open(context: DestinationContext): Promise<Destination> {
    const token = resolveSecret(context.options['token']);
    if (token === undefined) throw new DeliveryError('the hubspot token is not set', 'auth');
    const o = context.options;
    const baseUrl = (typeof o['base_url'] === 'string' ? o['base_url'] : HUBSPOT_DEFAULT_BASE_URL).replace(/\/+$/, '');
    const idProperty = typeof o['id_property'] === 'string' ? o['id_property'] : 'email';
    return new HubSpot(baseUrl, token, idProperty, timeoutOf(o), this.capabilities);
  },
};

function propertyValue(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return JSON.stringify(value);
}

interface HubSpotError {
  status?: string;
  category?: string;
  message?: string;
  context?: { ids?: unknown[] } & Record<string, unknown>;
  errors?: { message?: string; code?: string; in?: string }[];
}

interface BatchResponse {
  results?: { id?: string; properties?: Record<string, unknown> }[];
  errors?: HubSpotError[];
}

function errorReason(e: HubSpotError): string {
  const detail = (e.errors ?? []).map((x) => [x.code, x.message].filter(Boolean).join(': ')).filter(Boolean).join('; ');
  const head = [e.category, e.message].filter(Boolean).join(': ') || 'rejected by HubSpot';
  return detail && !head.includes(detail) ? `${head} (${detail})` : head;
}

class HubSpot implements Destination {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    private readonly idProperty: string,
    private readonly timeoutMs: number,
    readonly capabilities: DestinationType['capabilities'],
  ) {}

  /** HubSpot stores emails lower-cased. */
  private norm(id: string): string {
    return this.idProperty === 'email' ? id.toLowerCase() : id;
  }

  async send(batch: readonly OutboundRecord[]): Promise<RecordResult[]> {
    const results: RecordResult[] = [];
    const upserts: { record: OutboundRecord; id: string }[] = [];
    const archives: { record: OutboundRecord; id: string }[] = [];
    const seen = new Set<string>();
    for (const record of batch) {
      const id = propertyValue(record.payload[this.idProperty]).trim();
      if (id === '') {
        results.push({ key: record.key, ok: false, reason: `no value for the id property \`${this.idProperty}\` (map it, and make it non-null)` });
        continue;
      }
      // HubSpot refuses a batch naming the same id twice: the later record waits for the next run.
      if (seen.has(this.norm(id))) {
        results.push({ key: record.key, ok: false, reason: `another record of this batch has the same ${this.idProperty} ${JSON.stringify(id)}` });
        continue;
      }
      seen.add(this.norm(id));
      if (record.op === 'remove' && record.removal !== 'clear') archives.push({ record, id });
      else upserts.push({ record, id });
    }
    if (upserts.length > 0) results.push(...(await this.upsert(upserts)));
    if (archives.length > 0) results.push(...(await this.archive(archives)));
    return results;
  }

  private async upsert(items: { record: OutboundRecord; id: string }[]): Promise<RecordResult[]> {
    const inputs = items.map(({ record, id }) => {
      const properties: Record<string, string> = {};
      for (const [k, v] of Object.entries(record.payload)) {
        // A clear: every mapped property but the id becomes "".
        properties[k] = record.op === 'remove' && k !== this.idProperty ? '' : propertyValue(v);
      }
      return { idProperty: this.idProperty, id, properties };
    });
    const { status, body } = await this.post('/crm/v3/objects/contacts/batch/upsert', { inputs });
    if (status !== 207) return items.map(({ record }) => ({ key: record.key, ok: true as const }));
    return this.perRecord(items, body as BatchResponse);
  }

  /** A 207: records named in `errors[].context.ids` are rejected; an error naming no id rejects records absent from `results`. */
  private perRecord(items: { record: OutboundRecord; id: string }[], response: BatchResponse): RecordResult[] {
    const reasons = new Map<string, string>();
    let unattributed: string | undefined;
    for (const e of response.errors ?? []) {
      const ids = Array.isArray(e.context?.ids) ? e.context.ids.map(String) : [];
      if (ids.length === 0) unattributed ??= errorReason(e);
      for (const id of ids) if (!reasons.has(this.norm(id))) reasons.set(this.norm(id), errorReason(e));
    }
    const confirmed = new Set((response.results ?? []).map((r) => propertyValue(r.properties?.[this.idProperty])).filter((v) => v !== '').map((v) => this.norm(v)));
    return items.map(({ record, id }): RecordResult => {
      const reason = reasons.get(this.norm(id)) ?? (unattributed !== undefined && !confirmed.has(this.norm(id)) ? unattributed : undefined);
      return reason === undefined ? { key: record.key, ok: true } : { key: record.key, ok: false, reason };
    });
  }

  private async archive(items: { record: OutboundRecord; id: string }[]): Promise<RecordResult[]> {
    // Resolve id_property values to HubSpot ids (archive takes object ids only).
    const { body } = await this.post('/crm/v3/objects/contacts/batch/read', {
      idProperty: this.idProperty,
      properties: [this.idProperty],
      inputs: items.map(({ id }) => ({ id })),
    });
    const found = new Map<string, string>();
    for (const r of (body as BatchResponse | undefined)?.results ?? []) {
      const value = propertyValue(r.properties?.[this.idProperty]);
      if (r.id !== undefined && value !== '') found.set(this.norm(value), String(r.id));
    }
    // Not found (a 207 OBJECT_NOT_FOUND): already gone, nothing to archive.
    const ids = [...new Set(items.map(({ id }) => found.get(this.norm(id))).filter((x): x is string => x !== undefined))];
    if (ids.length > 0) await this.post('/crm/v3/objects/contacts/batch/archive', { inputs: ids.map((id) => ({ id })) });
    return items.map(({ record }) => ({ key: record.key, ok: true as const }));
  }

  private async post(path: string, payload: unknown): Promise<{ status: number; body: unknown }> {
    const headers = { accept: 'application/json', authorization: `Bearer ${this.token}` };
    const { response, text } = await postJson(`${this.baseUrl}${path}`, path, headers, JSON.stringify(payload), this.timeoutMs);
    let body: unknown;
    try {
      body = text.trim() === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!response.ok) {
      const b = (body ?? {}) as { message?: unknown; category?: unknown; errorType?: unknown; policyName?: unknown };
      const what = [b.errorType ?? b.category, b.policyName].filter((x) => typeof x === 'string').join(' ');
      const detail = typeof b.message === 'string' ? b.message : text.trim().slice(0, 300);
      const message = `POST ${path} answered ${response.status}${what ? ` ${what}` : ''}${detail ? `: ${detail}` : ''}`;
      throw DeliveryError.fromStatus(response.status, message, parseRetryAfter(response.headers.get('retry-after')));
    }
    if (response.status !== 204 && body === undefined && text.trim() !== '') {
      throw new DeliveryError(`POST ${path} answered ${response.status} with a body that is not JSON`, 'server', response.status);
    }
    return { status: response.status, body };
  }

  async close(): Promise<void> {}
}
