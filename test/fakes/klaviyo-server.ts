import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { ScriptedServer, jsonBody, type FakeResponse, type RecordedRequest as JsonRequest, type Reply } from './scripted-server.js';

/**
 * Request validation against Klaviyo's OpenAPI documents (../shared/specs/klaviyo, MIT, read in
 * place: nothing is copied into the repo). OpenAPI 3.0 schemas are not quite JSON Schema, so
 * each is adapted: `nullable` becomes a `null` alternative, and objects that declare their
 * `properties` get `additionalProperties: false` (stricter than the documents, as Klaviyo's
 * JSON:API refuses fields it does not know), so a misplaced field fails the test.
 */

const SPEC_FILES = ['profiles', 'lists', 'data_privacy'];

/** `$CDP_SHARED_DIR/specs/klaviyo`, else `../shared/specs/klaviyo` beside the repo; undefined when absent. */
export function klaviyoSpecDir(repoRoot: string): string | undefined {
  const candidates = [process.env['CDP_SHARED_DIR'] ? path.join(process.env['CDP_SHARED_DIR'], 'specs/klaviyo') : undefined, path.resolve(repoRoot, '../shared/specs/klaviyo')];
  return candidates.find((dir): dir is string => dir !== undefined && SPEC_FILES.every((f) => existsSync(path.join(dir, `${f}.json`))));
}

type Schema = Record<string, unknown>;

function adapt(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(adapt);
  if (schema === null || typeof schema !== 'object') return schema;
  const s = { ...(schema as Schema) };
  for (const key of ['items', 'not']) if (key in s) s[key] = adapt(s[key]);
  for (const key of ['oneOf', 'anyOf', 'allOf']) if (Array.isArray(s[key])) s[key] = (s[key] as unknown[]).map(adapt);
  if (s['properties'] && typeof s['properties'] === 'object') {
    s['properties'] = Object.fromEntries(Object.entries(s['properties'] as Schema).map(([k, v]) => [k, adapt(v)]));
    if (!('additionalProperties' in s)) s['additionalProperties'] = false;
  } else if (s['additionalProperties'] && typeof s['additionalProperties'] === 'object') s['additionalProperties'] = adapt(s['additionalProperties']);
  if (s['nullable'] === true) {
    delete s['nullable'];
    if (typeof s['type'] === 'string') {
      s['type'] = [s['type'], 'null'];
      if (Array.isArray(s['enum'])) s['enum'] = [...(s['enum'] as unknown[]), null];
    } else return { anyOf: [s, { type: 'null' }] };
  }
  delete s['nullable'];
  return s;
}

interface Operation {
  method: string;
  pattern: RegExp;
  validate: ValidateFunction;
}

export interface SpecProblem {
  pointer: string;
  detail: string;
}

/** The request-body validators of every operation of the three documents. */
export class KlaviyoSpec {
  private readonly operations: Operation[] = [];
  readonly revision: string;

  constructor(dir: string) {
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    let revision = '';
    for (const file of SPEC_FILES) {
      const doc = JSON.parse(readFileSync(path.join(dir, `${file}.json`), 'utf8')) as { info: { version: string }; components: { schemas: Schema }; paths: Record<string, Record<string, any>> };
      revision = doc.info.version;
      const schemas = Object.fromEntries(Object.entries(doc.components.schemas).map(([name, schema]) => [name, adapt(schema)]));
      ajv.addSchema({ $id: `klaviyo-${file}`, components: { schemas } });
      for (const [template, operations] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(operations)) {
          const ref = op?.requestBody?.content?.['application/vnd.api+json']?.schema?.$ref;
          if (typeof ref !== 'string') continue;
          const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}/?$`);
          this.operations.push({ method: method.toUpperCase(), pattern, validate: ajv.compile({ $ref: `klaviyo-${file}${ref}` }) });
        }
      }
    }
    this.revision = revision;
  }

  /** Problems of a request body, or undefined when the operation has no body schema. */
  check(method: string, pathname: string, body: unknown): SpecProblem[] | undefined {
    const op = this.operations.find((o) => o.method === method && o.pattern.test(pathname));
    if (op === undefined) return undefined;
    return op.validate(body) ? [] : (op.validate.errors ?? []).map(problem);
  }
}

function problem(e: ErrorObject): SpecProblem {
  const extra = e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
  return { pointer: e.instancePath === '' ? '/' : e.instancePath, detail: `${e.message ?? 'is invalid'}${extra}` };
}

/**
 * A local stand-in for Klaviyo's API (../shared/reference/reverse-etl.md and the vendored OpenAPI
 * documents), on loopback only. Every request body is validated against its operation's schema
 * (400 with a JSON:API error pointing at the field when invalid; skipped when the documents are
 * absent). It checks `Authorization: Klaviyo-API-Key …` and the `revision` header, runs bulk
 * import jobs as a state machine (queued → processing → complete over successive GETs), with
 * import errors and the job's profiles paged by cursor, list relationships (add/remove, 1000 per
 * call) and data-privacy deletion jobs (exactly one identifier), records every request, and can
 * be scripted: 429 with Klaviyo's `throttled` body and Retry-After, 5xx, 401.
 */

export interface RecordedRequest extends JsonRequest {
  /** Where the body breaks the operation's schema (empty when valid; undefined when not checked). */
  specProblems?: SpecProblem[];
}

export interface KlaviyoProfile {
  id: string;
  attributes: Record<string, unknown>;
  properties: Record<string, unknown>;
}

interface Job {
  id: string;
  polls: number;
  status: 'queued' | 'processing' | 'complete';
  profiles: any[];
  profileIds: string[];
  errors: unknown[];
  createdAt: string;
}

const IDENTIFIERS = ['email', 'phone_number', 'external_id'];

export class FakeKlaviyo extends ScriptedServer {
  readonly requests: RecordedRequest[] = [];
  readonly profiles = new Map<string, KlaviyoProfile>();
  readonly lists = new Map<string, Set<string>>();
  readonly deletions: Record<string, string>[] = [];
  readonly jobs = new Map<string, Job>();
  /** GETs of a job before it is complete. */
  pollsUntilComplete = 2;
  private readonly invalidEmails = new Map<string, string>();
  private readonly spec: KlaviyoSpec | undefined;

  constructor(readonly apiKey: string, listIds: string[], specDir: string | undefined) {
    super();
    for (const id of listIds) this.lists.set(id, new Set());
    this.spec = specDir === undefined ? undefined : new KlaviyoSpec(specDir);
  }

  get validatesAgainstSpec(): boolean {
    return this.spec !== undefined;
  }

  /** Bulk imports of these emails fail one by one, as import errors. */
  rejectEmails(emails: string[], detail = 'Invalid email address'): this {
    for (const e of emails) this.invalidEmails.set(e.toLowerCase(), detail);
    return this;
  }

  reset(): this {
    return this.clearScript(this.invalidEmails);
  }

  byEmail(email: string): KlaviyoProfile | undefined {
    return [...this.profiles.values()].find((p) => p.attributes['email'] === email.toLowerCase());
  }

  protected handle(method: string, url: string, headers: IncomingHttpHeaders, text: string): FakeResponse {
    const { pathname, searchParams } = new URL(url, 'http://fake');
    const body = jsonBody(text);
    const path = pathname + (searchParams.size ? `?${searchParams}` : '');
    const { request, reply } = this.receive<RecordedRequest>(this.requests, { method, path, headers, body }, 'application/vnd.api+json');
    const error = (status: number, code: string, title: string, detail: string, pointer = '/data/', extra: Record<string, string> = {}) =>
      reply(status, { errors: [{ id: randomUUID(), status, code, title, detail, source: { pointer } }] }, extra);

    const auth = String(headers['authorization'] ?? '');
    if (!auth.startsWith('Klaviyo-API-Key ')) return error(401, 'not_authenticated', 'Authentication credentials were not provided.', 'Missing or invalid authorization scheme. Please use Klaviyo-API-Key.');
    if (auth !== `Klaviyo-API-Key ${this.apiKey}`) return error(401, 'authentication_failed', 'Incorrect authentication credentials.', 'The API key specified is invalid.');
    const failure = this.scriptedFailure();
    if (failure) {
      if ('retryAfter' in failure) {
        return error(429, 'throttled', 'Request was throttled.', `Request was throttled. Expected available in ${failure.retryAfter} second.`, '/data/', { 'retry-after': failure.retryAfter });
      }
      if (failure.body !== undefined) return reply(failure.status, failure.body);
      return failure.status === 401
        ? error(401, 'authentication_failed', 'Incorrect authentication credentials.', 'The API key specified is invalid.')
        : error(failure.status, 'error', 'A server error occurred.', `scripted ${failure.status}`);
    }
    if (typeof headers['revision'] !== 'string' || !/^\d{4}-\d{2}-\d{2}/.test(headers['revision'])) return error(400, 'invalid', 'Invalid input.', 'The `revision` header is required (format: YYYY-MM-DD[.suffix]).');
    if (method === 'POST' || method === 'DELETE') {
      if (body === undefined) return error(400, 'parse_error', 'Malformed request body.', 'The request body is not valid JSON.');
      request.specProblems = this.spec?.check(method, pathname, body);
      const first = request.specProblems?.[0];
      if (first) return error(400, 'invalid', 'Invalid input.', `${first.pointer} ${first.detail}`, first.pointer);
    }

    const route = (pattern: RegExp) => pattern.exec(pathname.replace(/\/$/, ''));
    let m: RegExpExecArray | null;
    if (method === 'POST' && route(/^\/api\/profile-bulk-import-jobs$/)) return this.createJob(body, text, reply, error);
    if (method === 'GET' && (m = route(/^\/api\/profile-bulk-import-jobs\/([^/]+)$/))) {
      const job = this.jobs.get(m[1]!);
      return job ? reply(200, { data: this.poll(job), links: { self: `${this.url}/api/profile-bulk-import-jobs/${job.id}` } }) : error(404, 'not_found', 'Not found.', 'No job with this id.');
    }
    if (method === 'GET' && (m = route(/^\/api\/profile-bulk-import-jobs\/([^/]+)\/(import-errors|profiles)$/))) {
      const job = this.jobs.get(m[1]!);
      if (!job) return error(404, 'not_found', 'Not found.', 'No job with this id.');
      const items = m[2] === 'import-errors' ? job.errors : job.profileIds.map((id) => this.profileResource(id));
      return reply(200, this.page(items, pathname, searchParams));
    }
    if ((method === 'POST' || method === 'DELETE') && (m = route(/^\/api\/lists\/([^/]+)\/relationships\/profiles$/))) {
      const members = this.lists.get(decodeURIComponent(m[1]!));
      if (!members) return error(404, 'not_found', 'Not found.', `A list with id ${m[1]} does not exist.`);
      const ids: string[] = body.data.map((d: any) => d.id);
      if (ids.length > 1000) return error(400, 'invalid', 'Invalid input.', 'At most 1000 profiles may be added or removed per call.', '/data');
      for (const id of ids) {
        if (method === 'POST') members.add(id);
        else members.delete(id);
      }
      return reply(204);
    }
    if (method === 'POST' && route(/^\/api\/data-privacy-deletion-jobs$/)) {
      const profile = body.data.attributes.profile.data;
      const given = Object.fromEntries(Object.entries({ ...profile.attributes, ...(profile.id ? { id: profile.id } : {}) }).filter(([, v]) => v !== null && v !== undefined && v !== '')) as Record<string, string>;
      if (Object.keys(given).length !== 1) return error(400, 'invalid', 'Invalid input.', 'Exactly one of email, phone_number or id must be provided.', '/data/attributes/profile/data');
      this.deletions.push(given);
      for (const [id, p] of this.profiles) {
        if (id === given['id'] || (given['email'] && p.attributes['email'] === given['email'].toLowerCase()) || (given['phone_number'] && p.attributes['phone_number'] === given['phone_number'])) this.profiles.delete(id);
      }
      return reply(202);
    }
    return error(404, 'not_found', 'Not found.', `No route ${method} ${pathname}.`);
  }

  private createJob(body: any, text: string, reply: Reply, error: (status: number, code: string, title: string, detail: string, pointer?: string) => FakeResponse): FakeResponse {
    const profiles: any[] = body.data.attributes.profiles.data;
    if (profiles.length > 10_000) return error(400, 'invalid', 'Invalid input.', 'A bulk import job accepts at most 10,000 profiles.', '/data/attributes/profiles/data');
    if (Buffer.byteLength(text) > 5_000_000) return error(413, 'request_too_large', 'Request too large.', 'The maximum allowed payload size is 5MB.');
    const job: Job = { id: `job${this.jobs.size + 1}-${randomUUID().slice(0, 8)}`, polls: 0, status: 'queued', profiles, profileIds: [], errors: [], createdAt: new Date().toISOString() };
    this.jobs.set(job.id, job);
    return reply(202, { data: this.jobResource(job), links: { self: `${this.url}/api/profile-bulk-import-jobs/${job.id}` } });
  }

  /** A GET moves the job on; it completes (and applies its profiles) after `pollsUntilComplete` GETs. */
  private poll(job: Job): unknown {
    job.polls++;
    if (job.status !== 'complete') {
      job.status = job.polls >= this.pollsUntilComplete ? 'complete' : 'processing';
      if (job.status === 'complete') this.apply(job);
    }
    return this.jobResource(job);
  }

  private jobResource(job: Job): unknown {
    const done = job.status === 'complete';
    return {
      type: 'profile-bulk-import-job',
      id: job.id,
      attributes: {
        status: job.status,
        created_at: job.createdAt,
        total_count: job.profiles.length,
        completed_count: done ? job.profileIds.length : 0,
        failed_count: done ? job.errors.length : 0,
        completed_at: done ? new Date().toISOString() : null,
        expires_at: null,
        started_at: job.status === 'queued' ? null : job.createdAt,
      },
      links: { self: `${this.url}/api/profile-bulk-import-jobs/${job.id}` },
    };
  }

  private apply(job: Job): void {
    job.profiles.forEach((resource, i) => {
      const attributes = { ...resource.attributes };
      if (typeof attributes.email === 'string') attributes.email = attributes.email.toLowerCase();
      const invalid = typeof attributes.email === 'string' ? this.invalidEmails.get(attributes.email) : undefined;
      if (invalid) {
        job.errors.push({ type: 'import-error', id: randomUUID(), attributes: { code: 'invalid', title: 'Invalid input.', detail: invalid, source: { pointer: `/data/attributes/profiles/data/${i}/attributes/email` }, original_payload: resource.attributes } });
        return;
      }
      const existing = [...this.profiles.values()].find((p) => IDENTIFIERS.some((k) => attributes[k] !== undefined && attributes[k] !== null && p.attributes[k] === attributes[k]));
      const profile = existing ?? { id: `01K${randomUUID().replace(/-/g, '').slice(0, 23).toUpperCase()}`, attributes: {}, properties: {} };
      const { properties, ...rest } = attributes;
      for (const [k, v] of Object.entries(rest)) {
        if (v === null) delete profile.attributes[k];
        else profile.attributes[k] = v;
      }
      Object.assign(profile.properties, properties ?? {});
      const unset = resource.meta?.patch_properties?.unset;
      for (const k of Array.isArray(unset) ? unset : unset ? [unset] : []) delete profile.properties[k];
      this.profiles.set(profile.id, profile);
      if (!job.profileIds.includes(profile.id)) job.profileIds.push(profile.id);
    });
  }

  private profileResource(id: string): unknown {
    const p = this.profiles.get(id);
    const attributes = Object.fromEntries(IDENTIFIERS.map((k) => [k, p?.attributes[k] ?? null]));
    return { type: 'profile', id, attributes, links: { self: `${this.url}/api/profiles/${id}` } };
  }

  /** JSON:API paging: `page[size]` (default 20, max 100) and an opaque `page[cursor]` (an offset here). */
  private page(items: unknown[], pathname: string, params: URLSearchParams): unknown {
    const size = Math.min(100, Number(params.get('page[size]') ?? 20));
    const from = Number(params.get('page[cursor]') ?? 0);
    const next = new URLSearchParams(params);
    next.set('page[cursor]', String(from + size));
    return {
      data: items.slice(from, from + size),
      links: { self: `${this.url}${pathname}?${params}`, next: from + size < items.length ? `${this.url}${pathname}?${next}` : null },
    };
  }
}
