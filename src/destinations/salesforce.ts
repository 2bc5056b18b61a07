import { createdInWindow } from './created-window.js';
import type { Destination, DestinationContext, DestinationType, OptionProblem, OutboundRecord, RecordMeta, RecordResult } from './destination.js';
import { DeliveryError } from './errors.js';
import {
  baseUrlOf, chunks, jsonCall, numberOption, patternProblems, positiveIntegerProblems, requireSecret, secretProblems, stringOption, timeoutOf, timeoutProblems,
  unknownOptionProblems, urlProblems, type FailureReader, type JsonAnswer,
} from './http-connector.js';
import { bulkUpsert, type BulkApi, type BulkOutcome } from './salesforce-bulk.js';

/**
 * The Salesforce connector (docs/connectors/salesforce.md): any sObject (`object`), REST API.
 *
 * - adds and changes: sObject Collections upsert by external id,
 *   `PATCH /composite/sobjects/{object}/{external_id_field}` with `{allOrNone: false, records}`,
 *   at most 200 records per call, one result per record in request order. A batch with more than
 *   `bulk_threshold` upserts goes through one Bulk API 2.0 ingest job instead (salesforce-bulk.ts).
 *   Both answer `created` per record, but neither says when a record was created: the adds
 *   answered "not created" are looked up (`SELECT Id, CreatedDate … WHERE Id IN (…)`), and those
 *   created at or after the context's `unacknowledgedSince` were created by an earlier attempt
 *   whose answer was lost, so they count as created (created-window.ts).
 * - records addressed by Salesforce Id (removes; every record in `update` mode): the Id kept as
 *   meta at the last acknowledgement, else looked up by the external id with SOQL. `delete`:
 *   `DELETE /composite/sobjects?ids=…&allOrNone=false`; `clear`: collections update
 *   (`PATCH /composite/sobjects`) with the mapped fields null; `update` mode: the same update with
 *   the fields, so a record Salesforce lacks is rejected, never created.
 * - `erase` (a privacy deletion): cdp erases what it sent. A record cdp created (`created: true`
 *   in its meta) is deleted; any other belongs to the CRM's owner, so its mapped fields are
 *   cleared, as for `clear` (never creating it).
 *
 * Errors: 401 (`INVALID_SESSION_ID`) and other 403s stop the destination; `REQUEST_LIMIT_EXCEEDED`
 * (a 403 at Salesforce) is rate limiting, retried; 5xx retried; 404 (unknown object, field or API
 * version) stops the destination; another 4xx rejects the batch (the engine splits it). Per-record
 * errors (`DUPLICATE_VALUE`, `REQUIRED_FIELD_MISSING`, …) are per-record rejections.
 */
export const SALESFORCE_COLLECTION_MAX = 200;
/** One Bulk API 2.0 job per batch, and Bulk splits jobs in internal batches of 10,000 records: one is the cap. */
export const SALESFORCE_MAX_BATCH = 10_000;
export const SALESFORCE_DEFAULT_API_VERSION = 'v60.0';
/** Salesforce's guidance: Bulk API 2.0 for more than 2,000 records, bulkified REST calls below. */
export const SALESFORCE_DEFAULT_BULK_THRESHOLD = 2000;
const DEFAULT_BULK_POLL_MS = 2000;
const DEFAULT_BULK_TIMEOUT_MS = 600_000;
/** External id values per SOQL lookup: keeps the query URL well under Salesforce's 16,384 characters. */
const LOOKUP_CHUNK = 100;
/** Salesforce Ids (18 characters) per CreatedDate query: about 6,000 characters of URL. */
const ID_QUERY_CHUNK = 200;
const OPTIONS = ['instance_url', 'access_token', 'api_version', 'external_id_field', 'bulk_threshold', 'bulk_poll_interval_ms', 'bulk_timeout_ms', 'timeout_ms'];
/** sObject and field API names: `Contact`, `Foo__c`, `ns__Foo__c`, `cdp_id__c`. */
const API_NAME = /^[A-Za-z][A-Za-z0-9]*(?:__?[A-Za-z0-9]+)*$/;
const API_VERSION = /^v\d+\.0$/;
/** Per-record codes that mean the record is not there (any more): nothing left to delete or clear. */
const GONE = new Set(['ENTITY_IS_DELETED', 'NOT_FOUND']);

export const salesforceDestination: DestinationType = {
  type: 'salesforce',
  // `insert` is not idempotent at Salesforce (no request idempotency key), so it is not offered.
  capabilities: { modes: ['upsert', 'update', 'mirror'], maxBatchSize: SALESFORCE_MAX_BATCH, fields: 'any' },

  validateOptions(options: Record<string, unknown>): OptionProblem[] {
    const problems = [
      ...unknownOptionProblems('salesforce', options, OPTIONS),
      ...urlProblems(options, 'instance_url', "the org's My Domain URL, e.g. https://acme.my.salesforce.com"),
      ...secretProblems(options, 'access_token', 'an OAuth access token', 'SALESFORCE_ACCESS_TOKEN'),
      ...patternProblems(options, 'api_version', API_VERSION, `a REST API version such as ${SALESFORCE_DEFAULT_API_VERSION}`),
    ];
    if (options['external_id_field'] === undefined) problems.push({ key: 'external_id_field', message: 'is required: the field records are upserted and looked up by (an External ID field such as cdp_id__c, or an idLookup field such as Email)' });
    else problems.push(...patternProblems(options, 'external_id_field', API_NAME, 'a field API name such as cdp_id__c'));
    for (const key of ['bulk_threshold', 'bulk_poll_interval_ms', 'bulk_timeout_ms']) problems.push(...positiveIntegerProblems(options, key));
    return [...problems, ...timeoutProblems(options)];
  },

  async open(context: DestinationContext): Promise<Destination> {
    const o = context.options;
    const token = requireSecret('salesforce', o, 'access_token');
    const version = stringOption(o, 'api_version', SALESFORCE_DEFAULT_API_VERSION);
    return new Salesforce(new SalesforceApi(baseUrlOf(o, 'instance_url'), version, token, timeoutOf(o)), {
      object: context.object,
      externalIdField: String(o['external_id_field']),
      updateOnly: context.mode === 'update',
      bulkThreshold: numberOption(o, 'bulk_threshold', SALESFORCE_DEFAULT_BULK_THRESHOLD),
      pollIntervalMs: numberOption(o, 'bulk_poll_interval_ms', DEFAULT_BULK_POLL_MS),
      bulkTimeoutMs: numberOption(o, 'bulk_timeout_ms', DEFAULT_BULK_TIMEOUT_MS),
      unacknowledgedSince: context.unacknowledgedSince,
    }, this.capabilities);
  },
};

interface Settings {
  object: string;
  externalIdField: string;
  updateOnly: boolean;
  bulkThreshold: number;
  pollIntervalMs: number;
  bulkTimeoutMs: number;
  unacknowledgedSince: Date;
}

/** An upserted record's outcome, from sObject Collections or a bulk job. */
type Upserted = { record: OutboundRecord } & BulkOutcome;

interface SalesforceError {
  statusCode?: string;
  message?: string;
  fields?: string[];
}

/** sObject Collections' per-record answer (UpsertResult, SaveResult, DeleteResult). */
interface SaveResult {
  id?: string | null;
  success?: boolean;
  created?: boolean;
  errors?: SalesforceError[];
}

interface QueryResult {
  done?: boolean;
  nextRecordsUrl?: string;
  records?: Record<string, unknown>[];
}

/** How a record reaches Salesforce. */
type Route = 'upsert' | 'update' | 'clear' | 'delete';
type ByIdKind = Exclude<Route, 'upsert'>;

/** A record's Salesforce Id, or why there is none (`absent`: Salesforce has no such record). */
type Resolution = { id: string } | { problem: string; absent: boolean };

function scalarText(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text === '' ? undefined : text;
}

function errorsText(errors: readonly SalesforceError[] | undefined): string {
  const parts = (errors ?? []).map((e) => {
    const fields = e.fields && e.fields.length > 0 ? ` (fields: ${e.fields.join(', ')})` : '';
    return `${[e.statusCode, e.message].filter(Boolean).join(': ') || 'rejected by Salesforce'}${fields}`;
  });
  return parts.length > 0 ? parts.join('; ') : 'rejected by Salesforce without a reason';
}

function isGone(result: SaveResult): boolean {
  return (result.errors ?? []).some((e) => GONE.has(e.statusCode ?? ''));
}

/** A SOQL literal: numbers and booleans as they are, text quoted with SOQL's escapes. */
function soqlLiteral(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const escapes: Record<string, string> = { '\\': '\\\\', "'": "\\'", '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  return `'${String(value).replace(/[\\'"\n\r\t]/g, (c) => escapes[c]!)}'`;
}

type ErrorEntry = { errorCode?: unknown; message?: unknown };

/** Salesforce's error body, `[{errorCode, message}]` (or one such object). */
function errorEntries(body: unknown): ErrorEntry[] {
  return (Array.isArray(body) ? body : [body]).filter((e): e is ErrorEntry => typeof e === 'object' && e !== null);
}

const salesforceFailures: FailureReader = {
  explain(body) {
    const first = errorEntries(body)[0];
    return { code: typeof first?.errorCode === 'string' ? first.errorCode : undefined, detail: typeof first?.message === 'string' ? first.message : undefined };
  },
  classify({ status, body, message, retryAfterMs }) {
    // Salesforce answers an exhausted API allocation with a 403: a limit to wait out, not bad credentials.
    if (errorEntries(body).some((e) => e.errorCode === 'REQUEST_LIMIT_EXCEEDED')) return new DeliveryError(message, 'rate_limited', status, retryAfterMs);
    // The object, external id field or API version does not exist: every batch would fail alike, so stop.
    if (status === 404) return new Error(`${message} (check \`object\`, \`options.external_id_field\` and \`options.api_version\`)`);
    return DeliveryError.fromStatus(status, message, retryAfterMs);
  },
};

/** The REST calls, with Salesforce's error bodies classified for the engine. */
class SalesforceApi implements BulkApi {
  private readonly base: string;

  constructor(
    private readonly instanceUrl: string,
    version: string,
    private readonly token: string,
    private readonly timeoutMs: number,
  ) {
    this.base = `${instanceUrl}/services/data/${version}`;
  }

  /** `path` is below /services/data/vXX.X, or absolute from the instance (a query's `nextRecordsUrl`). */
  private request(method: string, path: string, body?: { json: unknown } | { csv: string }): Promise<JsonAnswer> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined && 'csv' in body) headers['content-type'] = 'text/csv';
    return jsonCall({
      method,
      baseUrl: path.startsWith('/services/') ? this.instanceUrl : this.base,
      path,
      label: path.split('?')[0]!,
      headers,
      payload: body !== undefined && 'json' in body ? body.json : undefined,
      body: body !== undefined && 'csv' in body ? body.csv : undefined,
      timeoutMs: this.timeoutMs,
      answer: 'text',
    }, salesforceFailures);
  }

  /** The answer's text (a bulk job's result CSVs are not JSON). */
  async call(method: string, path: string, body?: { json: unknown } | { csv: string }): Promise<string> {
    return (await this.request(method, path, body)).text;
  }

  async json<T>(method: string, path: string, body?: { json: unknown }): Promise<T> {
    const answer = await this.request(method, path, body);
    if (answer.body === undefined) throw new DeliveryError(`${method} ${path.split('?')[0]} answered with a body that is not JSON`, 'server');
    return answer.body as T;
  }
}

class Salesforce implements Destination {
  constructor(
    private readonly api: SalesforceApi,
    private readonly settings: Settings,
    readonly capabilities: DestinationType['capabilities'],
  ) {}

  async send(batch: readonly OutboundRecord[]): Promise<RecordResult[]> {
    this.checkNames(batch);
    const upserts: OutboundRecord[] = [];
    const byId: { record: OutboundRecord; kind: ByIdKind }[] = [];
    for (const record of batch) {
      const kind = this.route(record);
      if (kind === 'upsert') upserts.push(record);
      else byId.push({ record, kind });
    }
    const results: RecordResult[] = [];
    if (upserts.length > 0) results.push(...(await this.upsert(upserts)));
    if (byId.length > 0) results.push(...(await this.sendById(byId)));
    return results;
  }

  private route(record: OutboundRecord): Route {
    if (record.op !== 'remove') return this.settings.updateOnly ? 'update' : 'upsert';
    if (record.removal === 'erase') return record.meta?.['created'] === true && typeof record.meta['id'] === 'string' ? 'delete' : 'clear';
    return record.removal === 'clear' ? 'clear' : 'delete';
  }

  /** Names go into URLs, SOQL and CSV headers: anything but an API name is a contract error, before anything is sent. */
  private checkNames(batch: readonly OutboundRecord[]): void {
    const { object, externalIdField } = this.settings;
    if (!API_NAME.test(object)) throw new Error(`\`object\` ${JSON.stringify(object)} is not a Salesforce sObject API name (e.g. Contact, Lead, Foo__c); nothing was sent`);
    for (const record of batch) {
      const bad = Object.keys(record.payload).find((field) => !API_NAME.test(field));
      if (bad !== undefined) throw new Error(`mapped field ${JSON.stringify(bad)} is not a Salesforce field API name (e.g. Email, Score__c); nothing was sent`);
      if (record.op !== 'remove' && !(externalIdField in record.payload)) {
        throw new Error(`external_id_field \`${externalIdField}\` is not mapped: add it to \`mapping\` so records can be upserted and found; nothing was sent`);
      }
    }
  }

  private externalIdOf(record: OutboundRecord): string | undefined {
    return scalarText(record.payload[this.settings.externalIdField]);
  }

  private async upsert(records: OutboundRecord[]): Promise<RecordResult[]> {
    const field = this.settings.externalIdField;
    const results: RecordResult[] = [];
    const rows: { record: OutboundRecord; externalId: string }[] = [];
    const seen = new Set<string>();
    for (const record of records) {
      const externalId = this.externalIdOf(record);
      if (externalId === undefined) {
        results.push({ key: record.key, ok: false, reason: `no value for external_id_field \`${field}\`` });
      } else if (seen.has(externalId.toLowerCase())) {
        // External ids match case-insensitively; a second row with the same one waits for the next run.
        results.push({ key: record.key, ok: false, reason: `another record of this batch has the same ${field} ${JSON.stringify(externalId)}` });
      } else {
        seen.add(externalId.toLowerCase());
        rows.push({ record, externalId });
      }
    }
    const upserted = rows.length > this.settings.bulkThreshold ? await this.bulk(rows) : await this.collections(rows);
    const createdEarlier = await this.createdByUnacknowledgedWrites(upserted);
    for (const outcome of upserted) {
      const { record } = outcome;
      if (!outcome.ok) results.push({ key: record.key, ok: false, reason: outcome.reason });
      else results.push({ key: record.key, ok: true, meta: upsertMeta(record, outcome.id, outcome.created || createdEarlier.has(outcome.id)) });
    }
    return results;
  }

  private async collections(rows: { record: OutboundRecord; externalId: string }[]): Promise<Upserted[]> {
    const upserted: Upserted[] = [];
    for (const chunk of chunks(rows, SALESFORCE_COLLECTION_MAX)) {
      const answer = await this.api.json<SaveResult[]>('PATCH', `/composite/sobjects/${this.settings.object}/${this.settings.externalIdField}`, {
        json: { allOrNone: false, records: chunk.map(({ record }) => ({ attributes: { type: this.settings.object }, ...record.payload })) },
      });
      chunk.forEach(({ record }, i) => {
        const result = answer[i];
        if (!result) upserted.push({ record, ok: false, reason: 'Salesforce answered without a result for this record' });
        else if (!result.success) upserted.push({ record, ok: false, reason: errorsText(result.errors) });
        else upserted.push({ record, ok: true, id: result.id ?? '', created: result.created === true });
      });
    }
    return upserted;
  }

  private async bulk(rows: { record: OutboundRecord; externalId: string }[]): Promise<Upserted[]> {
    const { object, externalIdField, pollIntervalMs, bulkTimeoutMs } = this.settings;
    const outcomes = await bulkUpsert(this.api, { object, externalIdField, pollIntervalMs, timeoutMs: bulkTimeoutMs }, rows.map(({ record, externalId }) => ({ externalId, fields: record.payload })));
    return rows.map(({ record, externalId }) => ({ record, ...outcomes.get(externalId.toLowerCase())! }));
  }

  /**
   * The Ids, among adds the upsert answered "not created", of records created at or after
   * `unacknowledgedSince`: by an earlier attempt whose answer was never committed. Neither
   * sObject Collections nor Bulk API 2.0 results carry a creation time, so one SOQL query per
   * 200 such records reads `CreatedDate`; a sync whose adds Salesforce creates costs none.
   */
  private async createdByUnacknowledgedWrites(upserted: Upserted[]): Promise<Set<string>> {
    const ids = upserted.flatMap((u) => (u.ok && !u.created && u.record.op === 'add' && u.id !== '' ? [u.id] : []));
    const created = new Set<string>();
    for (const chunk of chunks([...new Set(ids)], ID_QUERY_CHUNK)) {
      const soql = `SELECT Id, CreatedDate FROM ${this.settings.object} WHERE Id IN (${chunk.map(soqlLiteral).join(', ')})`;
      for (const row of await this.query(soql)) {
        if (typeof row['Id'] === 'string' && createdInWindow(row['CreatedDate'], this.settings.unacknowledgedSince)) created.add(row['Id']);
      }
    }
    return created;
  }

  private saved(record: OutboundRecord, result: SaveResult | undefined, meta: (id: string | null | undefined) => RecordMeta | undefined): RecordResult {
    if (!result) return { key: record.key, ok: false, reason: 'Salesforce answered without a result for this record' };
    if (!result.success) return { key: record.key, ok: false, reason: errorsText(result.errors) };
    return { key: record.key, ok: true, meta: meta(result.id) };
  }

  private async sendById(items: { record: OutboundRecord; kind: ByIdKind }[]): Promise<RecordResult[]> {
    const resolved = await this.resolveIds(items.map((i) => i.record));
    const results: RecordResult[] = [];
    const updates: { record: OutboundRecord; kind: ByIdKind; id: string }[] = [];
    const deletes: { record: OutboundRecord; id: string }[] = [];
    for (const { record, kind } of items) {
      const found = resolved.get(record)!;
      if ('id' in found && kind === 'delete') deletes.push({ record, id: found.id });
      else if ('id' in found) updates.push({ record, kind, id: found.id });
      // Nothing to delete or clear: done. An update must not create it: rejected.
      else if (found.absent && kind !== 'update') results.push({ key: record.key, ok: true });
      else results.push({ key: record.key, ok: false, reason: kind === 'update' ? `${found.problem}; mode update never creates records` : found.problem });
    }
    for (const chunk of chunks(updates, SALESFORCE_COLLECTION_MAX)) results.push(...(await this.update(chunk)));
    for (const chunk of chunks(deletes, SALESFORCE_COLLECTION_MAX)) results.push(...(await this.delete(chunk)));
    return results;
  }

  /** The Id kept as meta at the last acknowledgement, else a SOQL lookup by the external id. */
  private async resolveIds(records: OutboundRecord[]): Promise<Map<OutboundRecord, Resolution>> {
    const { object, externalIdField: field } = this.settings;
    const resolved = new Map<OutboundRecord, Resolution>();
    const lookups: { record: OutboundRecord; externalId: string }[] = [];
    for (const record of records) {
      const id = record.meta?.['id'];
      const externalId = this.externalIdOf(record);
      if (typeof id === 'string' && id !== '') resolved.set(record, { id });
      else if (externalId === undefined) resolved.set(record, { problem: `no Salesforce Id is known for this record and it has no value for external_id_field \`${field}\` to look it up`, absent: false });
      else lookups.push({ record, externalId });
    }
    for (const chunk of chunks(lookups, LOOKUP_CHUNK)) {
      const found = await this.lookup(chunk.map(({ record }) => record.payload[field]));
      for (const { record, externalId } of chunk) {
        const ids = found.get(externalId.toLowerCase()) ?? [];
        const where = `${object} with ${field} = ${JSON.stringify(externalId)}`;
        if (ids.length === 1) resolved.set(record, { id: ids[0]! });
        else if (ids.length === 0) resolved.set(record, { problem: `no ${where}`, absent: true });
        else resolved.set(record, { problem: `${ids.length} records of ${where}; cdp does not pick one`, absent: false });
      }
    }
    return resolved;
  }

  /** Salesforce Ids by lower-cased external id value (external ids match case-insensitively). */
  private async lookup(values: unknown[]): Promise<Map<string, string[]>> {
    const { object, externalIdField: field } = this.settings;
    const soql = `SELECT Id, ${field} FROM ${object} WHERE ${field} IN (${[...new Set(values.map(soqlLiteral))].join(', ')})`;
    const found = new Map<string, string[]>();
    for (const row of await this.query(soql)) {
      const value = scalarText(row[field])?.toLowerCase();
      if (value !== undefined && typeof row['Id'] === 'string') found.set(value, [...(found.get(value) ?? []), row['Id']]);
    }
    return found;
  }

  /** Every row a SOQL query returns, following `nextRecordsUrl` across pages. */
  private async query(soql: string): Promise<Record<string, unknown>[]> {
    const rows: Record<string, unknown>[] = [];
    let page = await this.api.json<QueryResult>('GET', `/query?q=${encodeURIComponent(soql)}`);
    for (;;) {
      rows.push(...(page.records ?? []));
      if (page.done !== false || !page.nextRecordsUrl) return rows;
      page = await this.api.json<QueryResult>('GET', page.nextRecordsUrl);
    }
  }

  private async update(items: { record: OutboundRecord; kind: ByIdKind; id: string }[]): Promise<RecordResult[]> {
    const records = items.map(({ record, kind, id }) => ({ attributes: { type: this.settings.object }, ...(kind === 'clear' ? this.cleared(record.payload) : record.payload), id }));
    const answer = await this.api.json<SaveResult[]>('PATCH', '/composite/sobjects', { json: { allOrNone: false, records } });
    return items.map(({ record, kind }, i): RecordResult => {
      const result = answer[i];
      if (result && !result.success && isGone(result)) {
        return kind === 'clear' ? { key: record.key, ok: true } : { key: record.key, ok: false, reason: `${errorsText(result.errors)}; mode update never creates records` };
      }
      // A remove's snapshot goes away: only an update keeps meta.
      return this.saved(record, result, (id) => (kind === 'update' && typeof id === 'string' && id !== '' ? { id } : undefined));
    });
  }

  /** A clear: every mapped field but the external id becomes null (JSON null clears a field in the REST API). */
  private cleared(payload: Record<string, unknown>): Record<string, unknown> {
    return Object.fromEntries(Object.keys(payload).filter((f) => f !== this.settings.externalIdField).map((f) => [f, null]));
  }

  private async delete(items: { record: OutboundRecord; id: string }[]): Promise<RecordResult[]> {
    const ids = [...new Set(items.map((i) => i.id))];
    const answer = await this.api.json<SaveResult[]>('DELETE', `/composite/sobjects?ids=${ids.map(encodeURIComponent).join(',')}&allOrNone=false`);
    const byId = new Map(ids.map((id, i) => [id, answer[i]]));
    return items.map(({ record, id }): RecordResult => {
      const result = byId.get(id);
      if (!result) return { key: record.key, ok: false, reason: 'Salesforce answered without a result for this record' };
      // Already deleted (or never there): the removal is done.
      return result.success || isGone(result) ? { key: record.key, ok: true } : { key: record.key, ok: false, reason: errorsText(result.errors) };
    });
  }

  async close(): Promise<void> {}
}

/**
 * What the connector keeps per record: its Salesforce Id, and `created` once an upsert created it
 * (or, for an add, an unacknowledged earlier attempt did). The engine merges meta, so `created` stays true across later upserts; it turns false when an
 * upsert lands on another record than the one cdp created (deleted or merged in Salesforce since).
 */
function upsertMeta(record: OutboundRecord, id: string | null | undefined, created: boolean): RecordMeta | undefined {
  if (typeof id !== 'string' || id === '') return undefined;
  if (created) return { id, created: true };
  const previous = record.meta?.['id'];
  return previous !== undefined && String(previous) !== id ? { id, created: false } : { id };
}
