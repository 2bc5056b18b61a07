import type { IncomingHttpHeaders } from 'node:http';
import { ScriptedServer, jsonBody, type FakeResponse, type RecordedRequest as JsonRequest, type Reply } from './scripted-server.js';

/**
 * A local stand-in for the Salesforce REST API (../shared/reference/reverse-etl.md §3), on
 * loopback only, for one API version. It checks the Bearer token (401 `INVALID_SESSION_ID`),
 * implements sObject Collections upsert by external id, update by Id and delete by Ids (at most
 * 200 records, else 400 `EXCEEDED_ID_LIMIT`; per-record results in request order: UpsertResult
 * `{id, success, errors, created}`, no creation time), the SOQL queries the connector makes
 * (`SELECT Id, F FROM O WHERE F IN (…)`, and `SELECT Id, CreatedDate FROM O WHERE Id IN (…)`, with
 * Salesforce's second-precision `2026-11-22T16:06:09.000+0000`), and Bulk API 2.0 ingest jobs with their state
 * machine (Open → UploadComplete → InProgress → JobComplete | Failed | Aborted) and result CSVs.
 * Deleted records go to a recycle bin (`ENTITY_IS_DELETED` when addressed again). It records
 * every request and can be scripted: 403 `REQUEST_LIMIT_EXCEEDED`, 429, 5xx, 401, per-record
 * errors for given external id values, a failed bulk job, and answers lost after processing.
 */

export interface RecordedRequest extends JsonRequest {
  /** Below /services/data/vXX.X, without the query string. */
  path: string;
  query: URLSearchParams;
  /** Parsed JSON, or the raw text (CSV uploads). */
  body: any;
}

export interface SfRecord {
  Id: string;
  type: string;
  fields: Record<string, unknown>;
}

interface SfError {
  statusCode: string;
  message: string;
  fields: string[];
}

interface Job {
  id: string;
  object: string;
  externalIdFieldName: string;
  state: 'Open' | 'UploadComplete' | 'InProgress' | 'JobComplete' | 'Failed' | 'Aborted';
  csv: string;
  pollsLeft: number;
  successful: string;
  failed: string;
  processed: number;
  failedCount: number;
  errorMessage?: string;
}

const ID_PREFIX: Record<string, string> = { Contact: '003', Lead: '00Q', Account: '001' };

export class FakeSalesforce extends ScriptedServer {
  readonly requests: RecordedRequest[] = [];
  /** Live records by Id. */
  readonly records = new Map<string, SfRecord>();
  readonly recycleBin = new Map<string, SfRecord>();
  readonly jobs = new Map<string, Job>();
  /** Job-info GETs answered InProgress before a closed job completes. */
  inProgressPolls = 1;
  private nextId = 1;
  private nextJob = 1;
  private readonly rejected = new Map<string, SfError>();
  /** Each record's CreatedDate, by Id. */
  private readonly createdDates = new Map<string, string>();
  private failJobWith: string | undefined;
  private answersToLose = 0;

  constructor(
    readonly token: string,
    readonly objects: readonly string[] = ['Contact'],
    readonly version = 'v60.0',
  ) {
    super();
  }

  /** Writes of records with these external id values fail one by one with `statusCode`. */
  rejectExternalIds(values: string[], statusCode: string, message: string, fields: string[] = []): this {
    for (const v of values) this.rejected.set(v.toLowerCase(), { statusCode, message, fields });
    return this;
  }

  /** The next `n` requests get Salesforce's 403 for an exhausted API allocation. */
  requestLimitNext(n: number): this {
    return this.failNext(n, 403, JSON.stringify([{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }]));
  }

  /** The next bulk job to complete ends `Failed` with this message, processing nothing. */
  failNextJob(message: string): this {
    this.failJobWith = message;
    return this;
  }

  /** The next `n` requests are processed, but their answer is lost (a 503 instead): the client cannot know they worked. */
  loseAnswers(n: number): this {
    this.answersToLose = n;
    return this;
  }

  reset(): this {
    this.failJobWith = undefined;
    this.answersToLose = 0;
    return this.clearScript(this.rejected);
  }

  /** Live records of `type`, as `{externalId → fields}` for one field. */
  byField(field: string, type = 'Contact'): Map<string, Record<string, unknown>> {
    return new Map([...this.records.values()].filter((r) => r.type === type).map((r) => [String(r.fields[field]), r.fields]));
  }

  /** Seeds a live record (one cdp did not create; by default created a day ago). */
  put(type: string, fields: Record<string, unknown>, createdAt = new Date(Date.now() - 86_400_000)): string {
    const record = { Id: this.newId(type, createdAt), type, fields: { ...fields } };
    this.records.set(record.Id, record);
    return record.Id;
  }

  private newId(type: string, createdAt = new Date()): string {
    const id = `${ID_PREFIX[type] ?? 'a00'}${String(this.nextId++).padStart(12, '0')}AAA`;
    // Salesforce keeps CreatedDate to the second, and writes it with a +0000 offset.
    this.createdDates.set(id, `${createdAt.toISOString().slice(0, 19)}.000+0000`);
    return id;
  }

  protected handle(method: string, rawPath: string, headers: IncomingHttpHeaders, text: string): FakeResponse {
    const url = new URL(rawPath, 'http://fake');
    const prefix = `/services/data/${this.version}`;
    const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : url.pathname;
    const parsed = jsonBody(text);
    // CSV uploads stay text.
    const body = parsed === undefined && text !== '' ? text : parsed;
    const limit = { 'sforce-limit-info': `api-usage=${this.requests.length + 1}/15000` };
    const { reply } = this.receive<RecordedRequest>(this.requests, { method, path, query: url.searchParams, headers, body }, 'application/json;charset=UTF-8', limit);
    const error = (status: number, errorCode: string, message: string) => reply(status, [{ message, errorCode }]);

    if (headers['authorization'] !== `Bearer ${this.token}`) return error(401, 'INVALID_SESSION_ID', 'Session expired or invalid');
    const failure = this.scriptedFailure();
    if (failure) {
      if ('retryAfter' in failure) return reply(429, [{ message: 'ConcurrentPerOrgLongTxn Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }], { 'retry-after': failure.retryAfter });
      if (failure.body !== undefined) return reply(failure.status, failure.body);
      if (failure.status === 401) return error(401, 'INVALID_SESSION_ID', 'Session expired or invalid');
      return error(failure.status, failure.status === 503 ? 'SERVER_UNAVAILABLE' : 'UNKNOWN_EXCEPTION', `scripted ${failure.status}`);
    }
    if (!url.pathname.startsWith(`${prefix}/`)) return error(404, 'NOT_FOUND', 'The requested resource does not exist');
    const answer = this.route(method, path, url.searchParams, headers, body, reply, error);
    if (this.answersToLose > 0 && answer.status < 300) {
      this.answersToLose--;
      return error(503, 'SERVER_UNAVAILABLE', 'scripted: processed, answer lost');
    }
    return answer;
  }

  private route(
    method: string,
    path: string,
    query: URLSearchParams,
    headers: IncomingHttpHeaders,
    body: any,
    reply: Reply,
    error: (status: number, errorCode: string, message: string) => FakeResponse,
  ): FakeResponse {
    const tooMany = () => error(400, 'EXCEEDED_ID_LIMIT', 'record limit reached. cannot submit more than 200 records into this call');
    const upsertPath = /^\/composite\/sobjects\/(\w+)\/(\w+)$/.exec(path);
    if (method === 'PATCH' && upsertPath) {
      const [, type, field] = upsertPath as unknown as [string, string, string];
      if (!this.objects.includes(type)) return error(404, 'NOT_FOUND', 'The requested resource does not exist');
      const records = body?.records;
      if (!Array.isArray(records)) return error(400, 'JSON_PARSER_ERROR', 'records is required');
      if (records.length > 200) return tooMany();
      if (records.some((r: any) => r?.attributes?.type !== type || 'id' in r)) return error(400, 'INVALID_TYPE', `each record needs attributes.type ${type} and no id`);
      return reply(200, records.map((r: any) => this.upsertOne(type, field, r)));
    }
    if (method === 'PATCH' && path === '/composite/sobjects') {
      const records = body?.records;
      if (!Array.isArray(records)) return error(400, 'JSON_PARSER_ERROR', 'records is required');
      if (records.length > 200) return tooMany();
      return reply(200, records.map((r: any) => this.updateOne(r)));
    }
    if (method === 'DELETE' && path === '/composite/sobjects') {
      const ids = (query.get('ids') ?? '').split(',').filter(Boolean);
      if (ids.length === 0) return error(400, 'MISSING_ARGUMENT', 'ids is required');
      if (ids.length > 200) return tooMany();
      return reply(200, ids.map((id) => this.deleteOne(id)));
    }
    if (method === 'GET' && path === '/query') return this.query(query.get('q') ?? '', reply, error);
    if (method === 'POST' && path === '/jobs/ingest') {
      if (body?.operation !== 'upsert' || body?.contentType !== 'CSV' || !this.objects.includes(body?.object) || typeof body?.externalIdFieldName !== 'string') {
        return error(400, 'INVALIDJOB', 'InvalidJob : upsert of a known object, CSV, with externalIdFieldName');
      }
      const job: Job = { id: `750${String(this.nextJob++).padStart(12, '0')}AAA`, object: body.object, externalIdFieldName: body.externalIdFieldName, state: 'Open', csv: '', pollsLeft: 0, successful: '', failed: '', processed: 0, failedCount: 0 };
      this.jobs.set(job.id, job);
      return reply(200, this.jobInfo(job));
    }
    const jobPath = /^\/jobs\/ingest\/(\w+)(\/batches|\/successfulResults|\/failedResults)?$/.exec(path);
    const job = jobPath ? this.jobs.get(jobPath[1]!) : undefined;
    if (jobPath && !job) return error(404, 'NOT_FOUND', 'The requested resource does not exist');
    if (job && jobPath) {
      const sub = jobPath[2];
      if (method === 'PUT' && sub === '/batches') {
        if (!String(headers['content-type']).startsWith('text/csv')) return error(400, 'INVALIDCONTENTTYPE', 'Content-Type must be text/csv');
        if (job.state !== 'Open') return error(409, 'INVALIDJOBSTATE', `Job state ${job.state} does not allow uploads`);
        job.csv += String(body);
        return reply(201);
      }
      if (method === 'PATCH' && !sub) {
        if (body?.state === 'UploadComplete' && job.state === 'Open') job.state = 'UploadComplete';
        else if (body?.state === 'Aborted' && !['JobComplete', 'Failed'].includes(job.state)) job.state = 'Aborted';
        else return error(409, 'INVALIDJOBSTATE', `cannot move job from ${job.state} to ${body?.state}`);
        return reply(200, this.jobInfo(job));
      }
      if (method === 'GET' && !sub) {
        this.advance(job);
        return reply(200, this.jobInfo(job));
      }
      if (method === 'GET' && sub) {
        if (!['JobComplete', 'Failed', 'Aborted'].includes(job.state)) return error(409, 'INVALIDJOBSTATE', `job ${job.state} has no results yet`);
        return reply(200, sub === '/successfulResults' ? job.successful : job.failed, { 'content-type': 'text/csv' });
      }
    }
    return error(404, 'NOT_FOUND', 'The requested resource does not exist');
  }

  private findByExternalId(type: string, field: string, value: unknown): SfRecord[] {
    const wanted = String(value).toLowerCase();
    return [...this.records.values()].filter((r) => r.type === type && r.fields[field] !== undefined && r.fields[field] !== null && String(r.fields[field]).toLowerCase() === wanted);
  }

  private upsertOne(type: string, field: string, input: Record<string, unknown>): unknown {
    const { attributes: _attributes, ...fields } = input;
    const value = fields[field];
    if (value === undefined || value === null || value === '') return failed(undefined, { statusCode: 'MISSING_ARGUMENT', message: `${field} not specified`, fields: [field] });
    const rejection = this.rejected.get(String(value).toLowerCase());
    if (rejection) return failed(undefined, rejection);
    const found = this.findByExternalId(type, field, value);
    if (found.length > 1) return failed(undefined, { statusCode: 'DUPLICATE_EXTERNAL_ID', message: `${field}: more than one record found for external id field: ${found.map((r) => r.Id).join(', ')}`, fields: [field] });
    const record = found[0] ?? { Id: this.newId(type), type, fields: {} };
    Object.assign(record.fields, fields);
    this.records.set(record.Id, record);
    return { id: record.Id, success: true, errors: [], created: found.length === 0 };
  }

  private updateOne(input: Record<string, unknown>): unknown {
    const { attributes, id, ...fields } = input as { attributes?: { type?: string }; id?: string } & Record<string, unknown>;
    if (typeof id !== 'string') return failed(undefined, { statusCode: 'MISSING_ARGUMENT', message: 'Id not specified in an update call', fields: [] });
    if (this.recycleBin.has(id)) return failed(id, { statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] });
    const record = this.records.get(id);
    if (!record || record.type !== attributes?.type) return failed(id, { statusCode: 'NOT_FOUND', message: 'The requested resource does not exist', fields: [] });
    const rejection = [...Object.values(record.fields), ...Object.values(fields)].map((v) => this.rejected.get(String(v).toLowerCase())).find(Boolean);
    if (rejection) return failed(id, rejection);
    Object.assign(record.fields, fields);
    return { id, success: true, errors: [] };
  }

  private deleteOne(id: string): unknown {
    if (this.recycleBin.has(id)) return failed(id, { statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] });
    const record = this.records.get(id);
    if (!record) return failed(undefined, { statusCode: 'MALFORMED_ID', message: `malformed id ${id}`, fields: [] });
    this.records.delete(id);
    this.recycleBin.set(id, record);
    return { id, success: true, errors: [] };
  }

  /**
   * Only the queries the connector makes: `SELECT Id, F FROM O WHERE F IN (literals)` (F an
   * external id field), and `SELECT Id, CreatedDate FROM O WHERE Id IN (literals)`.
   */
  private query(soql: string, reply: Reply, error: (status: number, errorCode: string, message: string) => FakeResponse): FakeResponse {
    const m = /^SELECT Id, (\w+) FROM (\w+) WHERE (\w+) IN \((.*)\)$/s.exec(soql);
    const [, field, type, where, list] = (m ?? []) as unknown as [string, string, string, string, string];
    const byId = field === 'CreatedDate' && where === 'Id';
    if (!m || (field !== where && !byId)) return error(400, 'MALFORMED_QUERY', `unsupported query: ${soql}`);
    if (!this.objects.includes(type)) return error(400, 'INVALID_TYPE', `sObject type '${type}' is not supported.`);
    const values = [...list.matchAll(/'((?:[^'\\]|\\.)*)'|(-?\d+(?:\.\d+)?)/g)].map((v) => (v[1] !== undefined ? v[1].replace(/\\(.)/g, (_, c: string) => ({ n: '\n', r: '\r', t: '\t' })[c] ?? c) : v[2]!));
    const records = values.flatMap((v) => (byId ? [this.records.get(v)].filter((r): r is SfRecord => r?.type === type) : this.findByExternalId(type, field, v)));
    const unique = [...new Map(records.map((r) => [r.Id, r])).values()];
    const value = (r: SfRecord) => (byId ? this.createdDates.get(r.Id) : r.fields[field]);
    return reply(200, {
      totalSize: unique.length,
      done: true,
      records: unique.map((r) => ({ attributes: { type, url: `/services/data/${this.version}/sobjects/${type}/${r.Id}` }, Id: r.Id, [field]: value(r) })),
    });
  }

  /** Each job-info GET after the upload completes moves the job on; the last one processes the CSV. */
  private advance(job: Job): void {
    if (job.state === 'UploadComplete') {
      job.state = 'InProgress';
      job.pollsLeft = this.inProgressPolls;
      return;
    }
    if (job.state !== 'InProgress') return;
    if (job.pollsLeft-- > 0) return;
    if (this.failJobWith !== undefined) {
      job.state = 'Failed';
      job.errorMessage = this.failJobWith;
      this.failJobWith = undefined;
      job.successful = 'sf__Id,sf__Created\n';
      job.failed = 'sf__Id,sf__Error\n';
      return;
    }
    const [header, ...rows] = readCsv(job.csv);
    if (!header) throw new Error('empty upload');
    const ok: string[][] = [];
    const bad: string[][] = [];
    for (const row of rows) {
      const fields: Record<string, unknown> = {};
      header.forEach((h, i) => {
        const cell = row[i] ?? '';
        if (cell === '#N/A') fields[h] = null;
        else if (cell !== '') fields[h] = cell;
      });
      const result = this.upsertOne(job.object, job.externalIdFieldName, fields) as { id?: string; success: boolean; created?: boolean; errors: SfError[] };
      if (result.success) ok.push([result.id!, String(result.created), ...row]);
      else bad.push(['', result.errors.map((e) => `${e.statusCode}:${e.message}:${e.fields.join(',')}--`).join(';'), ...row]);
    }
    job.successful = writeCsv([['sf__Id', 'sf__Created', ...header], ...ok]);
    job.failed = writeCsv([['sf__Id', 'sf__Error', ...header], ...bad]);
    job.processed = rows.length;
    job.failedCount = bad.length;
    job.state = 'JobComplete';
  }

  private jobInfo(job: Job): Record<string, unknown> {
    return {
      id: job.id,
      operation: 'upsert',
      object: job.object,
      createdById: '005000000000001AAA',
      createdDate: new Date().toISOString(),
      systemModstamp: new Date().toISOString(),
      state: job.state,
      externalIdFieldName: job.externalIdFieldName,
      concurrencyMode: 'Parallel',
      contentType: 'CSV',
      apiVersion: Number(this.version.slice(1)),
      contentUrl: `services/data/${this.version}/jobs/ingest/${job.id}/batches`,
      lineEnding: 'LF',
      columnDelimiter: 'COMMA',
      numberRecordsProcessed: job.processed,
      numberRecordsFailed: job.failedCount,
      ...(job.errorMessage ? { errorMessage: job.errorMessage } : {}),
    };
  }
}

function failed(id: string | undefined, error: SfError): unknown {
  return { ...(id ? { id } : {}), success: false, errors: [error] };
}

/** The fake's own CSV reading (independent of the connector's), LF or CRLF, quoted cells. */
function readCsv(text: string): string[][] {
  const rows: string[][] = [];
  const cell = /("(?:[^"]|"")*"|[^,\r\n]*)(,|\r?\n|$)/gy;
  let row: string[] = [];
  while (cell.lastIndex < text.length) {
    const m = cell.exec(text);
    if (!m) throw new Error(`bad CSV at ${cell.lastIndex}`);
    row.push(m[1]!.startsWith('"') ? m[1]!.slice(1, -1).replace(/""/g, '"') : m[1]!);
    if (m[2] !== ',') {
      rows.push(row);
      row = [];
      if (m[2] === '') break;
    }
  }
  return rows;
}

/** Results the way Salesforce writes them: every cell quoted. */
function writeCsv(rows: string[][]): string {
  return rows.map((r) => r.map((c) => `"${c.replace(/"/g, '""')}"`).join(',')).join('\n') + '\n';
}
