import type { IncomingHttpHeaders } from 'node:http';
import { ScriptedServer, jsonBody, type FakeResponse, type RecordedRequest, type Reply } from './scripted-server.js';

/**
 * A local stand-in for the Braze REST API (../shared/reference/reverse-etl.md, Braze's "Track
 * users", "Delete users" and "Errors & responses" pages), on loopback only. It checks the Bearer
 * key (401 otherwise), enforces the caps (75 objects per /users/track array: 400 "Max Input Length
 * Exceeded"; 50 ids per /users/delete), applies attributes (null removes one) and appends events
 * (no deduplication, as Braze), answers `{message: "success", errors: [{type, input_array, index}]}`
 * for objects scripted to fail, and can be scripted to fail: 429 with Retry-After and
 * X-RateLimit-* headers, 5xx, 401.
 */

export interface TrackedEvent {
  external_id: string;
  name: string;
  time: string;
  properties: Record<string, unknown>;
}

export class FakeBraze extends ScriptedServer {
  readonly requests: RecordedRequest[] = [];
  /** Users by external_id: their attributes. */
  readonly users = new Map<string, Record<string, unknown>>();
  readonly events: TrackedEvent[] = [];
  readonly deleted: string[] = [];
  private readonly invalid = new Map<string, string>();

  constructor(readonly apiKey: string) {
    super();
  }

  /** Objects for these external ids fail one by one (a non-fatal error naming their index). */
  rejectExternalIds(ids: string[], type = "'email' is not valid"): this {
    for (const id of ids) this.invalid.set(id, type);
    return this;
  }

  reset(): this {
    return this.clearScript(this.invalid);
  }

  protected handle(method: string, path: string, headers: IncomingHttpHeaders, text: string): FakeResponse {
    const body = jsonBody(text);
    const { reply } = this.receive(this.requests, { method, path, headers, body }, 'application/json');
    if (headers['authorization'] !== `Bearer ${this.apiKey}`) return reply(401, { message: 'Invalid API key' });
    const failure = this.scriptedFailure();
    if (failure) {
      if ('retryAfter' in failure) {
        // An empty retryAfter scripts a 429 with only X-RateLimit-Reset (epoch seconds), 2 s ahead.
        const limits = { 'x-ratelimit-limit': '3000', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000) + 2) };
        return reply(429, { message: 'Rate limit exceeded' }, failure.retryAfter === '' ? limits : { 'retry-after': failure.retryAfter, ...limits });
      }
      if (failure.body !== undefined) return reply(failure.status, failure.body);
      return reply(failure.status, { message: failure.status === 401 ? 'Invalid API key' : `scripted ${failure.status}` });
    }
    if (method !== 'POST') return reply(405, { message: 'Method Not Allowed' });
    if (body === undefined || typeof body !== 'object') return reply(400, { message: 'Bad Request' });
    switch (path) {
      case '/users/track':
        return this.track(body, reply);
      case '/users/delete':
        return this.deleteUsers(body, reply);
      default:
        return reply(404, { message: 'Not Found' });
    }
  }

  private track(body: any, reply: Reply): FakeResponse {
    const attributes: any[] = body.attributes ?? [];
    const events: any[] = body.events ?? [];
    if (!Array.isArray(attributes) || !Array.isArray(events)) return reply(400, { message: 'Bad Request' });
    if (attributes.length > 75 || events.length > 75) return reply(400, { message: 'Max Input Length Exceeded' });
    if (attributes.length === 0 && events.length === 0) return reply(400, { message: "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields." });
    const errors: { type: string; input_array: string; index: number }[] = [];
    attributes.forEach((a, index) => {
      const id = a?.external_id;
      const problem = typeof id !== 'string' || id === '' ? "'external_id' is required" : this.invalid.get(id);
      if (problem) return errors.push({ type: problem, input_array: 'attributes', index });
      const user = this.users.get(id) ?? {};
      for (const [k, v] of Object.entries(a)) {
        if (k === 'external_id' || k === '_update_existing_only') continue;
        if (v === null) delete user[k];
        else user[k] = v;
      }
      this.users.set(id, user);
    });
    events.forEach((e, index) => {
      const id = e?.external_id;
      const problem =
        typeof id !== 'string' || id === '' ? "'external_id' is required"
        : typeof e.name !== 'string' || e.name === '' ? "'name' is required"
        : typeof e.time !== 'string' || Number.isNaN(Date.parse(e.time)) ? "'time' is not valid"
        : this.invalid.get(id);
      if (problem) return errors.push({ type: problem, input_array: 'events', index });
      this.events.push({ external_id: id, name: e.name, time: e.time, properties: e.properties ?? {} });
    });
    const processed = { attributes_processed: attributes.length - errors.filter((e) => e.input_array === 'attributes').length, events_processed: events.length - errors.filter((e) => e.input_array === 'events').length };
    if (errors.length === attributes.length + events.length) return reply(400, { message: "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields.", errors });
    return reply(201, errors.length > 0 ? { message: 'success', ...processed, errors } : { message: 'success', ...processed });
  }

  private deleteUsers(body: any, reply: Reply): FakeResponse {
    const ids: unknown = body.external_ids;
    if (!Array.isArray(ids) || ids.length === 0) return reply(400, { message: 'No external_ids, user_aliases, or braze_ids provided' });
    if (ids.length > 50) return reply(400, { message: 'The max number of external_ids and aliases per request was exceeded' });
    for (const id of ids.map(String)) {
      this.users.delete(id);
      this.deleted.push(id);
    }
    // `deleted` counts the ids queued for deletion, found or not.
    return reply(201, { message: 'success', deleted: ids.length });
  }
}
