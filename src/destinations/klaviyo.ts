import type { Destination, DestinationCapabilities, DestinationContext, DestinationType, OptionProblem, OutboundRecord, RecordMeta, RecordResult } from './destination.js';
import { DeliveryError } from './errors.js';
import {
  baseUrlOf, chunks, jsonCall, numberOption, patternProblems, positiveIntegerProblems, requireSecret, secretProblems, stringOption, timeoutOf, timeoutProblems,
  unknownOptionProblems, urlProblems, type FailureReader,
} from './http-connector.js';

/**
 * The Klaviyo connector (docs/connectors/klaviyo.md), JSON:API at a dated `revision`.
 *
 * - `object: profiles` (upsert): adds and changes go in one bulk profile import job
 *   (`POST /api/profile-bulk-import-jobs`, at most 10,000 profiles and 5 MB per job), polled
 *   (`GET …/{id}`) until `complete`; its import errors (`GET …/{id}/import-errors`) become
 *   per-record rejections, and its profiles (`GET …/{id}/profiles`) give each record its Klaviyo
 *   profile id, kept as meta `klaviyo_id`. A remove with `clear` imports the record with every
 *   mapped field null (custom properties unset). Klaviyo deletes a profile only through a
 *   data-privacy (GDPR) deletion, irreversible: so `mirror` is not offered and a remove with
 *   `delete` is rejected with that reason; only `erase` deletes.
 * - `object: list` (add_remove, `list_id`): adds and changes import the profile as above, then
 *   add the profile ids to the list (`POST /api/lists/{id}/relationships/profiles`, 1000 per
 *   call); removes take the ids kept in meta off the list (`DELETE` on the same path). Never the
 *   bulk subscribe endpoint: it lifts suppressions and records consent, and consent is the
 *   engine's job, from the warehouse.
 * - `erase`, either object: `POST /api/data-privacy-deletion-jobs`, one profile per request,
 *   identified by exactly one of email, phone number or Klaviyo id (202: queued).
 *
 * 429 (`Retry-After`) and 5xx are retried by the engine; 401/403 stop the destination; another
 * 4xx rejects the batch, which the engine splits.
 */
export const KLAVIYO_IMPORT_MAX = 10_000;
export const KLAVIYO_IMPORT_MAX_BYTES = 5_000_000;
export const KLAVIYO_PROFILE_MAX_BYTES = 100_000;
export const KLAVIYO_LIST_MAX = 1000;
export const KLAVIYO_DEFAULT_BASE_URL = 'https://a.klaviyo.com';
/** A revision present in the vendored OpenAPI documents (../shared/specs/klaviyo). */
export const KLAVIYO_DEFAULT_REVISION = '2026-07-15';
const DEFAULT_POLL_MS = 1000;
/** How long a bulk import job may stay queued or processing before the batch counts as failed (and is retried). */
const JOB_WAIT_MS = 30 * 60_000;
const PAGE_SIZE = 100;
const OPTIONS = ['base_url', 'api_key', 'revision', 'list_id', 'timeout_ms', 'poll_interval_ms'];
const OBJECTS = ['profiles', 'list'];
const REVISION = /^\d{4}-\d{2}-\d{2}(\.[a-z0-9]+)?$/;
const IDENTIFIERS = ['email', 'phone_number', 'external_id'] as const;
/** Profile attributes Klaviyo has by name; every other mapped field is a custom property. */
const STANDARD = new Set<string>([...IDENTIFIERS, 'first_name', 'last_name', 'organization', 'locale', 'title', 'image']);

const klaviyoFailures: FailureReader = {
  explain(body) {
    const first = (body as { errors?: { code?: unknown; title?: unknown; detail?: unknown }[] }).errors?.[0];
    if (first === undefined) return {};
    const detail = typeof first.detail === 'string' && first.detail !== '' ? first.detail : first.title;
    return { code: typeof first.code === 'string' ? first.code : undefined, detail: typeof detail === 'string' ? detail : undefined };
  },
};

export const klaviyoDestination: DestinationType = {
  type: 'klaviyo',
  // Profiles upsert; list membership adds and removes. No `mirror` and no `update` (see above:
  // deleting a Klaviyo profile is a GDPR erasure; bulk import always creates).
  capabilities: { modes: ['upsert', 'add_remove'], maxBatchSize: KLAVIYO_IMPORT_MAX, fields: 'any' },

  validateOptions(options: Record<string, unknown>): OptionProblem[] {
    const problems = [
      ...unknownOptionProblems('klaviyo', options, OPTIONS),
      ...urlProblems(options, 'base_url'),
      ...secretProblems(options, 'api_key', 'a Klaviyo private API key (scopes profiles:write, lists:write, data-privacy:write)', 'KLAVIYO_API_KEY'),
      ...timeoutProblems(options),
      ...patternProblems(options, 'revision', REVISION, `a Klaviyo API revision such as ${KLAVIYO_DEFAULT_REVISION}`),
    ];
    const listId = options['list_id'];
    if (listId !== undefined && (typeof listId !== 'string' || listId.trim() === '')) problems.push({ key: 'list_id', message: 'must be a Klaviyo list id (a string)' });
    return [...problems, ...positiveIntegerProblems(options, 'poll_interval_ms', 'milliseconds')];
  },

  async open(context: DestinationContext): Promise<Destination> {
    const o = context.options;
    if (!OBJECTS.includes(context.object)) {
      throw new Error(`klaviyo destination \`${context.destination}\`: \`object\` must be \`profiles\` (upsert) or \`list\` (add_remove, with options.list_id), got \`${context.object}\``);
    }
    const listId = typeof o['list_id'] === 'string' ? o['list_id'] : undefined;
    if (context.object === 'list' && listId === undefined) throw new Error(`klaviyo destination \`${context.destination}\`: \`object: list\` needs options.list_id, the list to add profiles to`);
    const api = new KlaviyoApi({
      apiKey: requireSecret('klaviyo', o, 'api_key'),
      baseUrl: baseUrlOf(o, 'base_url', KLAVIYO_DEFAULT_BASE_URL),
      revision: stringOption(o, 'revision', KLAVIYO_DEFAULT_REVISION),
      timeoutMs: timeoutOf(o),
      pollMs: numberOption(o, 'poll_interval_ms', DEFAULT_POLL_MS),
    });
    return new Klaviyo(api, context.object === 'list' ? listId : undefined, this.capabilities);
  },
};

interface ApiSettings {
  baseUrl: string;
  apiKey: string;
  revision: string;
  timeoutMs: number;
  pollMs: number;
}

interface Resource {
  type: string;
  id: string;
  attributes?: Record<string, unknown>;
}

interface Collection {
  data?: Resource[];
  links?: { next?: string | null };
}

interface ImportError {
  attributes?: { code?: string; title?: string; detail?: string; source?: { pointer?: string | null }; original_payload?: Record<string, unknown> | null };
}

/** Klaviyo's HTTP side: JSON:API headers, the job polling and the paging. */
class KlaviyoApi {
  constructor(private readonly s: ApiSettings) {}

  call(method: 'GET' | 'POST' | 'DELETE', path: string, payload?: unknown) {
    const headers = {
      accept: 'application/vnd.api+json',
      'content-type': 'application/vnd.api+json',
      authorization: `Klaviyo-API-Key ${this.s.apiKey}`,
      revision: this.s.revision,
    };
    return jsonCall({ method, baseUrl: this.s.baseUrl, path, headers, payload, timeoutMs: this.s.timeoutMs }, klaviyoFailures);
  }

  /** Creates a bulk import job and waits until Klaviyo has processed it; its id and failure count. */
  async importJob(profiles: unknown[]): Promise<{ id: string; failed: number }> {
    const { body } = await this.call('POST', '/api/profile-bulk-import-jobs', { data: { type: 'profile-bulk-import-job', attributes: { profiles: { data: profiles } } } });
    const id = (body as { data?: Resource } | undefined)?.data?.id;
    if (typeof id !== 'string') throw new DeliveryError('POST /api/profile-bulk-import-jobs answered without a job id', 'server');
    const deadline = Date.now() + JOB_WAIT_MS;
    for (;;) {
      const { body: job } = await this.call('GET', `/api/profile-bulk-import-jobs/${encodeURIComponent(id)}`);
      const attributes = (job as { data?: Resource } | undefined)?.data?.attributes ?? {};
      if (attributes['status'] === 'complete') return { id, failed: Number(attributes['failed_count'] ?? 0) };
      // Nothing is known to be applied: the engine retries the batch with a new job (an upsert again).
      if (attributes['status'] === 'cancelled') throw new DeliveryError(`profile bulk import job ${id} was cancelled`, 'server');
      if (Date.now() > deadline) throw new DeliveryError(`profile bulk import job ${id} still ${String(attributes['status'])} after ${JOB_WAIT_MS / 60_000} minutes`, 'server');
      await new Promise((resolve) => setTimeout(resolve, this.s.pollMs));
    }
  }

  /** Every page of a collection, following `links.next` (same host, as Klaviyo's cursor links are). */
  async all<T>(path: string): Promise<T[]> {
    const items: T[] = [];
    let next: string | undefined = path;
    while (next !== undefined) {
      const { body } = await this.call('GET', next);
      const page = (body ?? {}) as Collection;
      items.push(...((page.data ?? []) as T[]));
      const link = page.links?.next;
      next = typeof link === 'string' && link !== '' ? relative(link) : undefined;
    }
    return items;
  }
}

/** A `links.next` URL as a path and query, so it is requested from the configured base URL. */
function relative(link: string): string {
  const url = new URL(link, 'http://base');
  return `${url.pathname}${url.search}`;
}

const reject = (record: OutboundRecord, reason: string): RecordResult => ({ key: record.key, ok: false, reason });

/** A record's identifiers, normalised as Klaviyo compares them (emails case-insensitively). */
function identifiers(source: Record<string, unknown>): string[] {
  return IDENTIFIERS.flatMap((field) => {
    const value = source[field];
    if (value === null || value === undefined || String(value).trim() === '') return [];
    const text = String(value).trim();
    return [`${field}:${field === 'email' ? text.toLowerCase() : text}`];
  });
}

interface Imported {
  record: OutboundRecord;
  index: number;
}

class Klaviyo implements Destination {
  constructor(
    private readonly api: KlaviyoApi,
    /** Set for `object: list`. */
    private readonly listId: string | undefined,
    readonly capabilities: DestinationCapabilities,
  ) {}

  async send(batch: readonly OutboundRecord[]): Promise<RecordResult[]> {
    const results: RecordResult[] = [];
    const imports: OutboundRecord[] = [];
    const leaving: OutboundRecord[] = [];
    const erasures: OutboundRecord[] = [];
    for (const record of batch) {
      if (record.op === 'remove' && record.removal === 'erase') erasures.push(record);
      else if (record.op === 'remove' && this.listId !== undefined) leaving.push(record);
      else if (record.op === 'remove' && record.removal !== 'clear') {
        results.push(reject(record, 'Klaviyo deletes a profile only by a data-privacy (GDPR) deletion, which cdp sends for privacy requests alone: use on_remove: clear or nothing'));
      } else imports.push(record);
    }
    if (imports.length > 0) {
      const imported = await this.importProfiles(imports);
      results.push(...(this.listId === undefined ? imported : await this.addToList(imports, imported)));
    }
    if (leaving.length > 0) results.push(...(await this.removeFromList(leaving)));
    for (const record of erasures) results.push(await this.erase(record));
    return results;
  }

  /** Bulk import jobs for `records` (split by the 5 MB cap), with per-record results and Klaviyo ids. */
  private async importProfiles(records: OutboundRecord[]): Promise<RecordResult[]> {
    const results: RecordResult[] = [];
    let job: { profiles: unknown[]; items: Imported[]; bytes: number } = { profiles: [], items: [], bytes: 0 };
    const jobs = [job];
    for (const record of records) {
      const profile = profileResource(record);
      if (typeof profile === 'string') {
        results.push(reject(record, profile));
        continue;
      }
      const bytes = Buffer.byteLength(JSON.stringify(profile)) + 1;
      if (bytes > KLAVIYO_PROFILE_MAX_BYTES) {
        results.push(reject(record, `the profile is ${bytes} bytes; Klaviyo takes at most ${KLAVIYO_PROFILE_MAX_BYTES} per profile`));
        continue;
      }
      // 200 bytes of margin for the job envelope.
      if (job.bytes + bytes > KLAVIYO_IMPORT_MAX_BYTES - 200) jobs.push((job = { profiles: [], items: [], bytes: 0 }));
      job.items.push({ record, index: job.profiles.length });
      job.profiles.push(profile);
      job.bytes += bytes;
    }
    for (const { profiles, items } of jobs) if (items.length > 0) results.push(...(await this.runImport(profiles, items)));
    return results;
  }

  private async runImport(profiles: unknown[], items: Imported[]): Promise<RecordResult[]> {
    const { id, failed } = await this.api.importJob(profiles);
    const errors = failed > 0 ? await this.importErrors(id, items) : { byRecord: new Map<OutboundRecord, string>(), unattributed: undefined };
    const fields = 'fields%5Bprofile%5D=email,phone_number,external_id';
    const found = await this.api.all<Resource>(`/api/profile-bulk-import-jobs/${encodeURIComponent(id)}/profiles?${fields}&page%5Bsize%5D=${PAGE_SIZE}`);
    const ids = new Map<string, string>();
    for (const profile of found) for (const identifier of identifiers(profile.attributes ?? {})) ids.set(identifier, profile.id);
    return items.map(({ record }): RecordResult => {
      const reason = errors.byRecord.get(record);
      if (reason !== undefined) return reject(record, reason);
      const klaviyoId = identifiers(record.payload).map((i) => ids.get(i)).find((x) => x !== undefined);
      if (klaviyoId !== undefined) return { key: record.key, ok: true, meta: { klaviyo_id: klaviyoId } satisfies RecordMeta };
      // Not among the job's profiles: an import error that named no record is about this one.
      return errors.unattributed !== undefined ? reject(record, errors.unattributed) : { key: record.key, ok: true };
    });
  }

  /**
   * Import errors by record: by the index in `source.pointer` when it points into the job's
   * profiles, else by the identifiers of `original_payload`; the first error naming neither is `unattributed`.
   */
  private async importErrors(jobId: string, items: Imported[]): Promise<{ byRecord: Map<OutboundRecord, string>; unattributed: string | undefined }> {
    const errors = await this.api.all<ImportError>(`/api/profile-bulk-import-jobs/${encodeURIComponent(jobId)}/import-errors?page%5Bsize%5D=${PAGE_SIZE}`);
    const byIndex = new Map(items.map((i) => [i.index, i.record]));
    const byIdentifier = new Map<string, OutboundRecord>();
    for (const { record } of items) for (const identifier of identifiers(record.payload)) byIdentifier.set(identifier, record);
    const byRecord = new Map<OutboundRecord, string>();
    let unattributed: string | undefined;
    for (const e of errors) {
      const a = e.attributes ?? {};
      const reason = [a.code, a.detail ?? a.title].filter((x) => typeof x === 'string' && x !== '').join(': ') || 'rejected by Klaviyo';
      const index = /^\/data\/attributes\/profiles\/data\/(\d+)(\/|$)/.exec(a.source?.pointer ?? '')?.[1];
      const original = a.original_payload ?? {};
      const originalAttributes = (original['attributes'] ?? original) as Record<string, unknown>;
      const record = index !== undefined ? byIndex.get(Number(index)) : identifiers(originalAttributes).map((i) => byIdentifier.get(i)).find((r) => r !== undefined);
      if (record === undefined) unattributed ??= reason;
      else if (!byRecord.has(record)) byRecord.set(record, reason);
    }
    return { byRecord, unattributed };
  }

  /** List adds take Klaviyo ids: the imported records' profiles go on the list, 1000 per call. */
  private async addToList(records: OutboundRecord[], imported: RecordResult[]): Promise<RecordResult[]> {
    const byKey = new Map(records.map((r) => [r.key, r]));
    const results: RecordResult[] = [];
    const ids: string[] = [];
    for (const result of imported) {
      const id = result.ok ? result.meta?.['klaviyo_id'] : undefined;
      if (!result.ok) results.push(result);
      else if (typeof id !== 'string') results.push(reject(byKey.get(result.key)!, 'Klaviyo imported the profile but did not list it among the job\'s profiles, so its id is unknown; it is sent again next run'));
      else {
        ids.push(id);
        results.push(result);
      }
    }
    for (const part of chunks([...new Set(ids)], KLAVIYO_LIST_MAX)) await this.api.call('POST', this.listPath(), { data: part.map((id) => ({ type: 'profile', id })) });
    return results;
  }

  private async removeFromList(records: OutboundRecord[]): Promise<RecordResult[]> {
    const results: RecordResult[] = [];
    const ids: string[] = [];
    for (const record of records) {
      const id = record.meta?.['klaviyo_id'];
      if (typeof id === 'string') ids.push(id);
      // Added by this connector, a record always has its id; without one it was never on the list through cdp.
      results.push({ key: record.key, ok: true });
    }
    for (const part of chunks([...new Set(ids)], KLAVIYO_LIST_MAX)) await this.api.call('DELETE', this.listPath(), { data: part.map((id) => ({ type: 'profile', id })) });
    return results;
  }

  private listPath(): string {
    return `/api/lists/${encodeURIComponent(this.listId!)}/relationships/profiles`;
  }

  /** One data-privacy deletion job per profile, by exactly one identifier: email, else phone number, else the Klaviyo id. */
  private async erase(record: OutboundRecord): Promise<RecordResult> {
    const text = (v: unknown) => (v === null || v === undefined ? '' : String(v).trim());
    const email = text(record.payload['email']);
    const phone = text(record.payload['phone_number']);
    const id = text(record.meta?.['klaviyo_id']);
    const profile = email !== '' ? { type: 'profile', attributes: { email } }
      : phone !== '' ? { type: 'profile', attributes: { phone_number: phone } }
      : id !== '' ? { type: 'profile', id, attributes: {} }
      : undefined;
    if (profile === undefined) return reject(record, 'cannot erase: the record has no email, no phone_number and no known Klaviyo id (Klaviyo deletes by these only)');
    await this.api.call('POST', '/api/data-privacy-deletion-jobs', { data: { type: 'data-privacy-deletion-job', attributes: { profile: { data: profile } } } });
    return { key: record.key, ok: true };
  }

  async close(): Promise<void> {}
}

/**
 * The JSON:API profile of a record: Klaviyo's own attributes by name, every other field a custom
 * property. A clear nulls every field but the identifiers and unsets the custom properties.
 * A string says why the record cannot be imported.
 */
function profileResource(record: OutboundRecord): Record<string, unknown> | string {
  if (identifiers(record.payload).length === 0) return 'no identifier: map email, phone_number or external_id, non-empty for this record';
  const clear = record.op === 'remove';
  const attributes: Record<string, unknown> = {};
  const properties: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(record.payload)) {
    const empty = value === null || value === undefined || String(value).trim() === '';
    // An empty identifier is left out: sending null would remove it from the profile.
    if ((IDENTIFIERS as readonly string[]).includes(field)) {
      if (!empty) attributes[field] = String(value).trim();
    } else if (STANDARD.has(field)) attributes[field] = clear || empty ? null : String(value);
    else properties[field] = value;
  }
  const keys = Object.keys(properties);
  if (clear) return keys.length > 0 ? { type: 'profile', attributes, meta: { patch_properties: { unset: keys } } } : { type: 'profile', attributes };
  if (keys.length > 0) attributes['properties'] = properties;
  return { type: 'profile', attributes };
}
