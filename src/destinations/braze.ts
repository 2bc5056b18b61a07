import type { Destination, DestinationCapabilities, DestinationContext, DestinationType, OptionProblem, OutboundRecord, RecordResult } from './destination.js';
import { parseRetryAfter } from './errors.js';
import { baseUrlOf, chunks, jsonCall, requireSecret, secretProblems, timeoutOf, timeoutProblems, unknownOptionProblems, urlProblems, type FailureReader } from './http-connector.js';

/**
 * The Braze connectors (docs/connectors/braze.md), two types because their delivery guarantees
 * differ and capabilities are declared per type:
 *
 * - `braze`: user attributes. Adds and changes: `POST /users/track` with
 *   `{attributes: [{external_id, ...fields}]}` (attributes are idempotent sets). Removes with
 *   `clear`: the same call with every mapped field `null` (Braze removes an attribute set to
 *   null). Removes with `delete` (mirror) and `erase`: `POST /users/delete` with
 *   `{external_ids}`, at most 50 per call, so a batch of up to 75 is split inside `send`.
 * - `braze_events`: custom events, insert only: `POST /users/track` with
 *   `{events: [{external_id, name, time, properties}]}`. Braze gives every event object a new
 *   event id, so a resend is a duplicate: the type declares `deduplicates: false` (the engine then
 *   never resends an insert left in doubt) and puts the record's idempotency key in
 *   `properties.cdp_idempotency_key`, so a consumer can drop duplicates downstream.
 *
 * `external_id` is the mapped `external_id` field, or the primary key when none is mapped.
 * Responses: 2xx `{message: "success", errors: [{type, input_array, index}]}`: the objects named
 * by index are rejected, the rest acknowledged ("success" means queued, not applied: Braze says
 * no more). 429 (`Retry-After`, else `X-RateLimit-Reset`) and 5xx are retried by the engine;
 * 401/403 stop the destination; another 4xx rejects the batch, which the engine splits.
 */
export const BRAZE_TRACK_MAX = 75;
export const BRAZE_DELETE_MAX = 50;
const OPTIONS = ['base_url', 'api_key', 'timeout_ms'];

const brazeFailures: FailureReader = {
  explain(body) {
    const b = body as { message?: unknown; errors?: unknown };
    const errors = Array.isArray(b.errors) ? b.errors.map(errorText).filter((e) => e !== '') : [];
    const message = typeof b.message === 'string' ? b.message : '';
    return { detail: [message, ...errors].filter((x) => x !== '').join('; ') || undefined };
  },
  // Braze sends Retry-After with a 429; X-RateLimit-Reset (epoch seconds) is the fallback.
  retryAfterMs(headers) {
    const reset = Number(headers.get('x-ratelimit-reset'));
    return parseRetryAfter(headers.get('retry-after')) ?? (reset > 0 ? Math.max(0, reset * 1000 - Date.now()) : undefined);
  },
};

function errorText(e: unknown): string {
  if (typeof e === 'string') return e;
  const type = (e as { type?: unknown } | null)?.type;
  return typeof type === 'string' ? type : '';
}

function validator(type: string, allowed: readonly string[]): (options: Record<string, unknown>) => OptionProblem[] {
  return (options) => [
    ...unknownOptionProblems(type, options, allowed),
    ...urlProblems(options, 'base_url', 'the REST endpoint of your Braze instance, such as https://rest.iad-01.braze.com'),
    ...secretProblems(options, 'api_key', 'a Braze REST API key (permissions users.track and users.delete)', 'BRAZE_API_KEY'),
    ...timeoutProblems(options),
  ];
}

function connection(type: string, context: DestinationContext): Braze {
  const apiKey = requireSecret(type, context.options, 'api_key');
  return new Braze(baseUrlOf(context.options, 'base_url'), apiKey, timeoutOf(context.options));
}

export const brazeDestination: DestinationType = {
  type: 'braze',
  // `update` needs a per-record rejection for users Braze lacks; `_update_existing_only` drops
  // them without a documented error, and a connector is not told the contract's mode.
  capabilities: { modes: ['upsert', 'mirror'], maxBatchSize: BRAZE_TRACK_MAX, fields: 'any' },
  validateOptions: validator('braze', OPTIONS),
  async open(context) {
    return new BrazeSender(connection('braze', context), 'attributes', userRoute, this.capabilities);
  },
};

export const brazeEventsDestination: DestinationType = {
  type: 'braze_events',
  capabilities: { modes: ['insert'], maxBatchSize: BRAZE_TRACK_MAX, fields: 'any', deduplicates: false },
  validateOptions(options) {
    const problems = validator('braze_events', [...OPTIONS, 'event_name'])(options);
    const name = options['event_name'];
    if (name !== undefined && (typeof name !== 'string' || name.trim() === '')) problems.push({ key: 'event_name', message: 'must be a non-empty string: the event name for rows without a mapped `name`' });
    return problems;
  },
  async open(context) {
    const name = context.options['event_name'];
    return new BrazeSender(connection('braze_events', context), 'events', eventRoute(typeof name === 'string' ? name : undefined), this.capabilities);
  },
};

type TrackArray = 'attributes' | 'events';
interface Item {
  record: OutboundRecord;
  id: string;
}
interface TrackItem extends Item {
  object: Record<string, unknown>;
}

const reject = (record: OutboundRecord, reason: string): RecordResult => ({ key: record.key, ok: false, reason });
const accept = (record: OutboundRecord): RecordResult => ({ key: record.key, ok: true });

/** The mapped `external_id`, or the primary key when none is mapped; undefined when mapped but empty. */
function externalId(record: OutboundRecord): string | undefined {
  if (!('external_id' in record.payload)) return record.key;
  const value = record.payload['external_id'];
  const text = value === null || value === undefined ? '' : String(value).trim();
  return text === '' ? undefined : text;
}

const NO_EXTERNAL_ID = 'no external_id: the mapped `external_id` field is empty for this record';

/** The HTTP side shared by both types: the two endpoints and their answers. */
class Braze {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
    private readonly timeoutMs: number,
  ) {}

  private post(path: string, payload: unknown) {
    const headers = { accept: 'application/json', authorization: `Bearer ${this.apiKey}` };
    return jsonCall({ method: 'POST', baseUrl: this.baseUrl, path, headers, payload, timeoutMs: this.timeoutMs }, brazeFailures);
  }

  /** One `/users/track` call; the objects a non-fatal error names by index are rejected with its `type`. */
  async track(array: TrackArray, items: readonly TrackItem[]): Promise<RecordResult[]> {
    const { body } = await this.post('/users/track', { [array]: items.map((i) => i.object) });
    const reasons = new Map<number, string>();
    const errors = (body as { errors?: unknown } | undefined)?.errors;
    for (const e of Array.isArray(errors) ? errors : []) {
      const { input_array: input, index } = (e ?? {}) as { input_array?: unknown; index?: unknown };
      if (input === array && typeof index === 'number' && !reasons.has(index)) reasons.set(index, errorText(e) || 'rejected by Braze');
    }
    return items.map(({ record }, i) => (reasons.has(i) ? reject(record, reasons.get(i)!) : accept(record)));
  }

  /** `/users/delete` by external id, 50 per call. Deletion is irreversible, and a user already gone is fine. */
  async deleteUsers(items: readonly Item[]): Promise<RecordResult[]> {
    const ids = [...new Set(items.map((i) => i.id))];
    for (const part of chunks(ids, BRAZE_DELETE_MAX)) await this.post('/users/delete', { external_ids: part });
    return items.map(({ record }) => accept(record));
  }
}

/** Where a record goes: an object for `/users/track`, `/users/delete` by its external id, or a rejection with its reason. */
type Route = { track: Record<string, unknown> } | 'delete' | { reject: string };

/** Both types: each record routed, the tracked objects in one call, then the deletions. */
class BrazeSender implements Destination {
  constructor(
    private readonly braze: Braze,
    private readonly array: TrackArray,
    private readonly route: (record: OutboundRecord, id: string) => Route,
    readonly capabilities: DestinationCapabilities,
  ) {}

  async send(batch: readonly OutboundRecord[]): Promise<RecordResult[]> {
    const results: RecordResult[] = [];
    const tracked: TrackItem[] = [];
    const deletions: Item[] = [];
    for (const record of batch) {
      const id = externalId(record);
      if (id === undefined) {
        results.push(reject(record, NO_EXTERNAL_ID));
        continue;
      }
      const route = this.route(record, id);
      if (route === 'delete') deletions.push({ record, id });
      else if ('reject' in route) results.push(reject(record, route.reject));
      else tracked.push({ record, id, object: route.track });
    }
    if (tracked.length > 0) results.push(...(await this.braze.track(this.array, tracked)));
    if (deletions.length > 0) results.push(...(await this.braze.deleteUsers(deletions)));
    return results;
  }

  async close(): Promise<void> {}
}

/** `braze`: removes with `delete` (mirror) and `erase` delete the user; anything else sets attributes. */
function userRoute(record: OutboundRecord, id: string): Route {
  return record.op === 'remove' && record.removal !== 'clear' ? 'delete' : { track: attributeObject(record, id) };
}

/** `{external_id, ...fields}`; for a clear every field but the id is null, which removes it in Braze. */
function attributeObject(record: OutboundRecord, id: string): Record<string, unknown> {
  const object: Record<string, unknown> = { external_id: id };
  const clear = record.op === 'remove';
  for (const [field, value] of Object.entries(record.payload)) if (field !== 'external_id') object[field] = clear ? null : value;
  return object;
}

/** Fields of an event row that are not event properties. */
const EVENT_FIELDS = new Set(['external_id', 'name', 'time']);

/** `braze_events`: an erasure deletes the user; an add is an event; nothing else can be sent. */
function eventRoute(eventName: string | undefined): (record: OutboundRecord, id: string) => Route {
  return (record, id) => {
    if (record.op === 'remove' && record.removal === 'erase') return 'delete';
    if (record.op !== 'add') return { reject: 'braze_events only inserts new events: a sent event cannot be changed or removed' };
    const event = eventObject(record, id, eventName);
    return typeof event === 'string' ? { reject: event } : { track: event };
  };
}

/** The event object, or why the record cannot be one. */
function eventObject(record: OutboundRecord, id: string, eventName: string | undefined): Record<string, unknown> | string {
  const mapped = record.payload['name'];
  const name = mapped === null || mapped === undefined || String(mapped).trim() === '' ? eventName : String(mapped);
  if (name === undefined) return 'no event name: map a `name` field or set options.event_name';
  const time = isoTime(record.payload['time']);
  if (time === undefined) return 'no event time: map a `time` field (a timestamp)';
  const properties: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(record.payload)) if (!EVENT_FIELDS.has(field)) properties[field] = value;
  properties['cdp_idempotency_key'] = record.idempotencyKey;
  return { external_id: id, name, time, properties };
}

const WAREHOUSE_TIMESTAMP = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Braze wants ISO 8601. Warehouses render timestamps as `2026-11-15 09:30:00`: the space becomes
 * `T` and a value without a zone is taken as UTC. Anything else is passed as it is.
 */
function isoTime(value: unknown): string | undefined {
  if (value === null || value === undefined || String(value).trim() === '') return undefined;
  const text = String(value).trim();
  const m = WAREHOUSE_TIMESTAMP.exec(text);
  return m ? `${m[1]}T${m[2]}${m[3] ?? 'Z'}` : text;
}
