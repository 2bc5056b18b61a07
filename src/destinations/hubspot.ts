import type { Destination, DestinationContext, DestinationType, OptionProblem, OutboundRecord, RecordMeta, RecordResult } from './destination.js';
import { createdInWindow } from './created-window.js';
import { DeliveryError } from './errors.js';
import { baseUrlOf, jsonCall, patternProblems, requireSecret, secretProblems, stringOption, timeoutOf, timeoutProblems, unknownOptionProblems, urlProblems, type FailureReader } from './http-connector.js';

/**
 * The HubSpot CRM v3 contacts connector (docs/connectors/hubspot.md).
 *
 * - adds and changes: `POST /crm/v3/objects/contacts/batch/upsert` with
 *   `{inputs: [{idProperty, id, properties, objectWriteTraceId}]}`, `id` being the value of the
 *   unique `id_property` (default `email`); at most 100 inputs per call. Each result's HubSpot id
 *   and `new` flag come back as the record's meta (`{id, created: true}` when cdp created it). An
 *   add answered "not new" whose `createdAt` is at or after the context's `unacknowledgedSince`
 *   was created by an earlier attempt whose answer was lost: created too (created-window.ts).
 * - removes with `removal: clear`: the same upsert, with every mapped property but the id set to
 *   `""` (HubSpot clears a property given an empty string).
 * - removes with `removal: delete`: batch archive takes HubSpot object ids only (`{inputs:[{id}]}`,
 *   204, no per-record result), so the connector first resolves the `id_property` values with
 *   `POST …/batch/read` (`idProperty`), then archives the ids found. A contact not found is already
 *   gone: acknowledged. Archiving is idempotent, and restorable in HubSpot for 90 days.
 * - removes with `removal: erase` (a privacy deletion): a contact cdp created is permanently
 *   deleted with `POST …/gdpr-delete` by its HubSpot id, one call per contact. Any other contact
 *   belongs to the CRM's owner: its mapped properties are cleared instead (only if it still
 *   exists, so an erasure never creates a contact). gdpr-delete is never given an email, because
 *   HubSpot blocklists an email it does not find.
 *
 * Responses: 200/201 every record ok; 207 per-record errors (`errors[].context.ids`) become
 * per-record rejections; 429 (with HubSpot's `RATE_LIMIT` body, `Retry-After` honoured) and 5xx
 * are retryable; 401/403 stop the destination; another 4xx rejects the batch (the engine splits it).
 */
export const HUBSPOT_MAX_BATCH = 100;
export const HUBSPOT_DEFAULT_BASE_URL = 'https://api.hubapi.com';
const OPTIONS = ['base_url', 'token', 'id_property', 'timeout_ms'];
const PROPERTY_NAME = /^[a-z_][a-z0-9_]*$/i;

/** HubSpot's error body: `{category | errorType, policyName, message}`. */
const hubspotFailures: FailureReader = {
  explain(body) {
    const b = (body ?? {}) as { message?: unknown; category?: unknown; errorType?: unknown; policyName?: unknown };
    return {
      code: [b.errorType ?? b.category, b.policyName].filter((x) => typeof x === 'string').join(' '),
      detail: typeof b.message === 'string' ? b.message : undefined,
    };
  },
};

export const hubspotDestination: DestinationType = {
  type: 'hubspot',
  // HubSpot has no insert-only or list-membership semantics here; `update` would need batch/update (not built).
  // Fields are HubSpot contact properties, custom ones included: any internal property name.
  capabilities: { modes: ['upsert', 'mirror'], maxBatchSize: HUBSPOT_MAX_BATCH, fields: 'any' },

  validateOptions(options: Record<string, unknown>): OptionProblem[] {
    return [
      ...unknownOptionProblems('hubspot', options, OPTIONS),
      ...urlProblems(options, 'base_url'),
      ...secretProblems(options, 'token', 'the private app token', 'HUBSPOT_TOKEN'),
      ...patternProblems(options, 'id_property', PROPERTY_NAME, 'a HubSpot property name (a unique property such as email)'),
      ...timeoutProblems(options),
    ];
  },

  async open(context: DestinationContext): Promise<Destination> {
    const o = context.options;
    const token = requireSecret('hubspot', o, 'token');
    const idProperty = stringOption(o, 'id_property', 'email');
    return new HubSpot(baseUrlOf(o, 'base_url', HUBSPOT_DEFAULT_BASE_URL), token, idProperty, timeoutOf(o), context.unacknowledgedSince, this.capabilities);
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

interface BatchResult {
  id?: string;
  new?: boolean;
  createdAt?: string;
  objectWriteTraceId?: string;
  properties?: Record<string, unknown>;
}

interface BatchResponse {
  results?: BatchResult[];
  errors?: HubSpotError[];
}

interface Item {
  record: OutboundRecord;
  /** The value of the id property. */
  id: string;
}

/** How one record reaches HubSpot. */
type Route = 'upsert' | 'archive' | 'gdpr-delete' | 'erase-clear';

/** Whether cdp created this contact (the upsert said `new`), and knows its HubSpot id. */
function createdByCdp(record: OutboundRecord): boolean {
  return record.meta?.created === true && record.meta.id !== undefined;
}

function routeOf(record: OutboundRecord): Route {
  if (record.op !== 'remove' || record.removal === 'clear') return 'upsert';
  if (record.removal === 'erase') return createdByCdp(record) ? 'gdpr-delete' : 'erase-clear';
  return 'archive';
}

function errorReason(e: HubSpotError): string {
  const detail = (e.errors ?? []).map((x) => [x.code, x.message].filter(Boolean).join(': ')).filter(Boolean).join('; ');
  const head = [e.category, e.message].filter(Boolean).join(': ') || 'rejected by HubSpot';
  return detail && !head.includes(detail) ? `${head} (${detail})` : head;
}

/**
 * What the connector keeps per contact: its HubSpot id, and `created` once an upsert created it
 * (or, for an add, an unacknowledged attempt did: see created-window.ts). The engine merges meta,
 * so `created` stays true across later updates; it turns false when the upsert lands on another
 * contact than the one cdp created (deleted or merged in HubSpot since).
 */
function metaOf(record: OutboundRecord, result: BatchResult | undefined, unacknowledgedSince: Date): RecordMeta | undefined {
  if (result?.id === undefined) return undefined;
  const id = String(result.id);
  if (result.new === true || (record.op === 'add' && createdInWindow(result.createdAt, unacknowledgedSince))) return { id, created: true };
  const previous = record.meta?.id;
  return previous !== undefined && String(previous) !== id ? { id, created: false } : { id };
}

class HubSpot implements Destination {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    private readonly idProperty: string,
    private readonly timeoutMs: number,
    private readonly unacknowledgedSince: Date,
    readonly capabilities: DestinationType['capabilities'],
  ) {}

  /** HubSpot stores emails lower-cased. */
  private norm(id: string): string {
    return this.idProperty === 'email' ? id.toLowerCase() : id;
  }

  async send(batch: readonly OutboundRecord[]): Promise<RecordResult[]> {
    const results: RecordResult[] = [];
    const routes: Record<Route, Item[]> = { upsert: [], archive: [], 'gdpr-delete': [], 'erase-clear': [] };
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
      routes[routeOf(record)].push({ record, id });
    }
    if (routes.upsert.length > 0) results.push(...(await this.upsert(routes.upsert)));
    if (routes['erase-clear'].length > 0) results.push(...(await this.clearExisting(routes['erase-clear'])));
    if (routes.archive.length > 0) results.push(...(await this.archive(routes.archive)));
    for (const item of routes['gdpr-delete']) results.push(await this.gdprDelete(item));
    return results;
  }

  private async upsert(items: Item[]): Promise<RecordResult[]> {
    const inputs = items.map(({ record, id }) => {
      const properties: Record<string, string> = {};
      for (const [k, v] of Object.entries(record.payload)) {
        // A clear: every mapped property but the id becomes "".
        properties[k] = record.op === 'remove' && k !== this.idProperty ? '' : propertyValue(v);
      }
      // The trace id comes back on the record's result: how a result is matched to its record.
      return { idProperty: this.idProperty, id, properties, objectWriteTraceId: record.key };
    });
    const { status, body } = await this.post('/crm/v3/objects/contacts/batch/upsert', { inputs });
    const response = (body ?? {}) as BatchResponse;
    const rejections = status === 207 ? this.rejectionsOf(items, response) : new Map<string, string>();
    const resultOf = this.resultMatcher(response);
    return items.map((item): RecordResult => {
      const reason = rejections.get(item.record.key);
      if (reason !== undefined) return { key: item.record.key, ok: false, reason };
      // A remove leaves no snapshot to keep meta with.
      const meta = item.record.op === 'remove' ? undefined : metaOf(item.record, resultOf(item), this.unacknowledgedSince);
      return meta === undefined ? { key: item.record.key, ok: true } : { key: item.record.key, ok: true, meta };
    });
  }

  /** Finds a record's result by its trace id, or else by its id property value. */
  private resultMatcher(response: BatchResponse): (item: Item) => BatchResult | undefined {
    const byTrace = new Map<string, BatchResult>();
    const byId = new Map<string, BatchResult>();
    for (const r of response.results ?? []) {
      if (r.objectWriteTraceId !== undefined) byTrace.set(String(r.objectWriteTraceId), r);
      const value = propertyValue(r.properties?.[this.idProperty]);
      if (value !== '') byId.set(this.norm(value), r);
    }
    return ({ record, id }) => byTrace.get(record.key) ?? byId.get(this.norm(id));
  }

  /** A 207: records named in `errors[].context.ids` are rejected; an error naming no id rejects records absent from `results`. */
  private rejectionsOf(items: Item[], response: BatchResponse): Map<string, string> {
    const reasons = new Map<string, string>();
    let unattributed: string | undefined;
    for (const e of response.errors ?? []) {
      const ids = Array.isArray(e.context?.ids) ? e.context.ids.map(String) : [];
      if (ids.length === 0) unattributed ??= errorReason(e);
      for (const id of ids) if (!reasons.has(this.norm(id))) reasons.set(this.norm(id), errorReason(e));
    }
    const resultOf = this.resultMatcher(response);
    const byKey = new Map<string, string>();
    for (const item of items) {
      const reason = reasons.get(this.norm(item.id)) ?? (unattributed !== undefined && resultOf(item) === undefined ? unattributed : undefined);
      if (reason !== undefined) byKey.set(item.record.key, reason);
    }
    return byKey;
  }

  /** HubSpot ids of the contacts that exist, by normalised id property value (`batch/read`; a missing one is a 207 OBJECT_NOT_FOUND). */
  private async existing(items: Item[]): Promise<Map<string, string>> {
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
    return found;
  }

  private async archive(items: Item[]): Promise<RecordResult[]> {
    const found = await this.existing(items);
    // Not found: already gone, nothing to archive.
    const ids = [...new Set(items.map(({ id }) => found.get(this.norm(id))).filter((x): x is string => x !== undefined))];
    if (ids.length > 0) await this.post('/crm/v3/objects/contacts/batch/archive', { inputs: ids.map((id) => ({ id })) });
    return items.map(({ record }) => ({ key: record.key, ok: true as const }));
  }

  /**
   * The erasure of a contact cdp did not create: the CRM owner's record stays, cdp's mapped
   * properties are cleared. Only contacts that exist are cleared: an upsert would create one.
   */
  private async clearExisting(items: Item[]): Promise<RecordResult[]> {
    const found = await this.existing(items);
    const present = items.filter(({ id }) => found.has(this.norm(id)));
    const cleared = present.length > 0 ? await this.upsert(present) : [];
    const gone = items.filter(({ id }) => !found.has(this.norm(id))).map(({ record }) => ({ key: record.key, ok: true as const }));
    return [...cleared, ...gone];
  }

  /** One gdpr-delete call per contact, by HubSpot id. A 404 means it is already gone; another 4xx rejects this record only. */
  private async gdprDelete({ record }: Item): Promise<RecordResult> {
    try {
      await this.post('/crm/v3/objects/contacts/gdpr-delete', { objectId: String(record.meta?.id) });
      return { key: record.key, ok: true };
    } catch (error) {
      if (!(error instanceof DeliveryError)) throw error;
      if (error.status === 404) return { key: record.key, ok: true };
      if (error.kind === 'rejected') return { key: record.key, ok: false, reason: error.message };
      throw error;
    }
  }

  private post(path: string, payload: unknown) {
    const headers = { accept: 'application/json', authorization: `Bearer ${this.token}` };
    return jsonCall({ method: 'POST', baseUrl: this.baseUrl, path, headers, payload, timeoutMs: this.timeoutMs }, hubspotFailures);
  }

  async close(): Promise<void> {}
}
