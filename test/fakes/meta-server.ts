import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ScriptedServer, type FakeResponse } from './scripted-server.js';

/**
 * A local stand-in for the Meta Marketing API custom audience users edge
 * (../shared/reference/reverse-etl.md §3), loopback only. `POST /{version}/{audience_id}/users`
 * adds and `DELETE` removes, with the form fields `payload` (`{schema, data}`) and `access_token`.
 * It enforces the 10,000-row cap, answers Meta's error JSON (`{error: {message, type, code,
 * error_subcode, fbtrace_id}}`: 190 OAuthException for a wrong or missing token, 80003 with
 * `X-Business-Use-Case-Usage` when rate limited), counts rows it cannot use in
 * `num_invalid_entries` without saying which (as Meta does), and keeps the audience: a member is a
 * row; a row removes every member sharing one of its EMAIL, PHONE, MADID or EXTERN_ID values.
 */

export interface MetaRequest {
  at: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, to check no raw identifier ever arrives. */
  raw: string;
  payload: { schema: string[]; data: string[][] } | undefined;
  accessToken: string | undefined;
  status: number;
}

const HASHED_KEYS = new Set(['EMAIL', 'PHONE', 'FN', 'LN', 'FI', 'GEN', 'DOBY', 'DOBM', 'DOBD', 'CT', 'ST', 'ZIP', 'COUNTRY']);
const MATCH_KEYS = ['EMAIL', 'PHONE', 'MADID', 'EXTERN_ID'];
const SHA256 = /^[0-9a-f]{64}$/;
export const META_MAX_ROWS = 10_000;

export class FakeMeta extends ScriptedServer {
  readonly requests: MetaRequest[] = [];
  /** Members by `KEY:value` of their match keys (EMAIL, PHONE, MADID, EXTERN_ID). */
  private readonly index = new Map<string, Record<string, string>>();
  private readonly invalid = new Set<string>();
  private applyThenFail = 0;
  /** Minutes in `estimated_time_to_regain_access` of the next rate-limit answers. */
  regainMinutes = 0;

  constructor(readonly token: string, readonly audienceId: string, readonly version = 'v25.0') {
    super();
  }

  /** Rows holding one of these hashes count as invalid entries. */
  invalidate(hashes: string[]): this {
    for (const h of hashes) this.invalid.add(h);
    return this;
  }

  /** The next `n` calls are applied, then answered 500: the response was lost, so the batch is sent again. */
  loseResponses(n: number): this {
    this.applyThenFail += n;
    return this;
  }

  reset(): this {
    this.applyThenFail = 0;
    return this.clearScript(this.invalid);
  }

  /** Current members: one schema key → value map per member. */
  get members(): Record<string, string>[] {
    return [...new Set(this.index.values())];
  }

  /** Values of one schema key across members, sorted. */
  memberValues(key: string): string[] {
    return this.members.map((m) => m[key]).filter((v): v is string => v !== undefined && v !== '').sort();
  }

  protected handle(method: string, path: string, headers: IncomingHttpHeaders, text: string): FakeResponse {
    const form = new URLSearchParams(text);
    let payload: MetaRequest['payload'];
    try {
      payload = JSON.parse(form.get('payload') ?? '') as MetaRequest['payload'];
    } catch {
      payload = undefined;
    }
    const { request, reply } = this.receive<MetaRequest>(this.requests, { method, path, headers, raw: text, payload, accessToken: form.get('access_token') ?? undefined }, 'application/json; charset=UTF-8');
    const error = (status: number, code: number, message: string, type = 'OAuthException', subcode?: number, extra: Record<string, string> = {}) =>
      reply(status, { error: { message, type, code, ...(subcode ? { error_subcode: subcode } : {}), fbtrace_id: randomBytes(8).toString('base64url') } }, extra);

    if (request.accessToken === undefined) return error(400, 104, 'An access token is required to request this resource.');
    if (request.accessToken !== this.token) return error(400, 190, 'Invalid OAuth access token - Cannot parse access token', 'OAuthException', 463);
    const failure = this.scriptedFailure();
    if (failure) {
      if ('retryAfter' in failure) {
        const usage = { '1234567890': [{ type: 'custom_audience', call_count: 100, total_cputime: 25, total_time: 25, estimated_time_to_regain_access: this.regainMinutes }] };
        return error(400, 80003, 'There have been too many calls to this ad-account. Wait a bit and try again.', 'OAuthException', 2446079, { 'x-business-use-case-usage': JSON.stringify(usage) });
      }
      if (failure.status === 401 || failure.status === 190) return error(400, 190, 'Error validating access token: Session has expired.', 'OAuthException', 463);
      if (failure.body !== undefined) return reply(failure.status, failure.body, { 'content-type': 'application/json' });
      return error(failure.status, 2, 'An unexpected error has occurred. Please retry your request later.', 'OAuthException');
    }
    const route = /^\/(v\d+\.\d+)\/(\d+)\/users$/.exec(path);
    if (!route || route[1] !== this.version) return error(400, 100, `Unsupported request - method type: ${method.toLowerCase()}`, 'GraphMethodException');
    if (route[2] !== this.audienceId) {
      return error(400, 100, `Unsupported post request. Object with ID '${route[2]}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.`, 'GraphMethodException', 33);
    }
    if (method !== 'POST' && method !== 'DELETE') return error(400, 100, `Unsupported request - method type: ${method.toLowerCase()}`, 'GraphMethodException');
    if (!payload || !Array.isArray(payload.schema) || !Array.isArray(payload.data)) return error(400, 100, '(#100) The parameter payload is required', 'OAuthException');
    if (payload.data.length > META_MAX_ROWS) return error(400, 100, `(#100) Too many entries: at most ${META_MAX_ROWS} per request, got ${payload.data.length}`, 'OAuthException');

    let invalid = 0;
    const rows: Record<string, string>[] = [];
    for (const data of payload.data) {
      if (!Array.isArray(data) || data.length !== payload.schema.length) return error(400, 100, '(#100) Number of keys in each row must match the schema', 'OAuthException');
      const row = Object.fromEntries(payload.schema.map((k, i) => [k, String(data[i] ?? '')]));
      const values = Object.entries(row).filter(([, v]) => v !== '');
      const bad = values.length === 0 || values.some(([k, v]) => (HASHED_KEYS.has(k) && !SHA256.test(v)) || this.invalid.has(v));
      if (bad) invalid++;
      else rows.push(row);
    }
    for (const row of rows) (method === 'POST' ? this.add(row) : this.remove(row));
    if (this.applyThenFail > 0) {
      this.applyThenFail--;
      return error(500, 1, 'An unknown error occurred', 'OAuthException');
    }
    return reply(200, { audience_id: this.audienceId, session_id: String(BigInt.asUintN(63, randomBytes(8).readBigUInt64BE())), num_received: payload.data.length, num_invalid_entries: invalid, invalid_entry_samples: {} });
  }

  /** A row matches the member sharing one of its match-key values; a row without any stands for itself. */
  private matchKeys(row: Record<string, string>): string[] {
    const found = MATCH_KEYS.filter((k) => row[k]).map((k) => `${k}:${row[k]}`);
    return found.length > 0 ? found : [JSON.stringify(row)];
  }

  private add(row: Record<string, string>): void {
    const existing = this.matchKeys(row).map((k) => this.index.get(k)).find((m) => m !== undefined);
    const member = existing ?? {};
    Object.assign(member, Object.fromEntries(Object.entries(row).filter(([, v]) => v !== '')));
    for (const k of this.matchKeys(member)) this.index.set(k, member);
  }

  private remove(row: Record<string, string>): void {
    for (const k of this.matchKeys(row)) {
      const member = this.index.get(k);
      if (member) for (const own of this.matchKeys(member)) this.index.delete(own);
    }
  }
}
