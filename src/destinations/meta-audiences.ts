import type { Destination, DestinationContext, DestinationType, OptionProblem, OutboundRecord, RecordResult } from './destination.js';
import { DeliveryError, parseRetryAfter } from './errors.js';
import { baseUrlOf, jsonCall, patternProblems, requireSecret, secretProblems, stringOption, timeoutOf, timeoutProblems, unknownOptionProblems, urlProblems, type FailureReader } from './http-connector.js';
import { META_FIELDS, META_RULES, metaMissing, sendMembership, type Member, type MetaField } from './platform-hash.js';

/**
 * The Meta Custom Audiences connector (docs/connectors/meta.md): audience membership from a
 * model, mode `add_remove`. Every identifier is normalised and hashed here (platform-hash.ts);
 * only hashes (and MADID/EXTERN_ID, which Meta takes in clear) leave cdp.
 *
 * - adds (and changes): `POST /{version}/{audience_id}/users`, form field `payload` =
 *   `{schema: [EMAIL, PHONE, …], data: [[hash, hash, …], …]}`, at most 10,000 rows per call.
 * - removes, privacy erasures included: `DELETE` on the same path with the same payload shape,
 *   built from the identifiers sent last. Removal from the audience is the only deletion Meta's
 *   audience API has.
 * - a change whose identifiers differ from those sent removes the old row, then adds the new one.
 *
 * Meta answers `{num_received, num_invalid_entries, …}` without saying which rows were invalid.
 * A call of one row reporting one invalid rejects that record; a larger call with invalid entries
 * is a whole-batch rejection, so the engine splits the batch (adding and removing are idempotent)
 * until each invalid row is alone and rejected with a reason.
 *
 * Errors `{error: {message, type, code, error_subcode, fbtrace_id}}`: codes 4, 17, 32, 613 and
 * 80003 are rate limits (retried; `X-Business-Use-Case-Usage`'s estimated_time_to_regain_access
 * or `Retry-After` honoured); 102, 104, 190 (OAuthException), 10 and 200-299 (permissions) stop
 * the destination as authentication failures; 1, 2 and 5xx are retried. Any other error concerns
 * the audience as a whole (a wrong id, a flagged audience): no record can cause it, so the
 * destination stops with Meta's message rather than splitting the batch.
 */
export const META_MAX_BATCH = 10_000;
export const META_DEFAULT_BASE_URL = 'https://graph.facebook.com';
export const META_DEFAULT_VERSION = 'v25.0';
const OPTIONS = ['base_url', 'api_version', 'access_token', 'audience_id', 'timeout_ms'];
const RATE_LIMIT_CODES = new Set([4, 17, 32, 613, 80003]);
const AUTH_CODES = new Set([10, 102, 104, 190]);

export const metaAudienceDestination: DestinationType = {
  type: 'meta_audience',
  capabilities: { modes: ['add_remove'], maxBatchSize: META_MAX_BATCH, fields: META_FIELDS },

  validateOptions(options: Record<string, unknown>): OptionProblem[] {
    const problems = [
      ...unknownOptionProblems('meta_audience', options, OPTIONS),
      ...urlProblems(options, 'base_url'),
      ...secretProblems(options, 'access_token', 'a system user access token with the ads_management permission', 'META_ACCESS_TOKEN'),
    ];
    const audience = options['audience_id'];
    if (audience === undefined) problems.push({ key: 'audience_id', message: 'is required: the id of the customer-list custom audience' });
    else if (typeof audience === 'number' && !Number.isSafeInteger(audience)) {
      // YAML reads a 17-digit id as a float: it would silently name another audience.
      problems.push({ key: 'audience_id', message: `must be quoted ('${String(audience)}' is not exact): YAML reads a number this long with rounding` });
    } else if (!/^\d+$/.test(String(audience))) problems.push({ key: 'audience_id', message: `must be a custom audience id (digits), got ${JSON.stringify(audience)}` });
    return [
      ...problems,
      ...patternProblems(options, 'api_version', /^v\d+\.\d+$/, `a Graph API version such as ${META_DEFAULT_VERSION}`),
      ...timeoutProblems(options),
    ];
  },

  async open(context: DestinationContext): Promise<Destination> {
    const o = context.options;
    const token = requireSecret('meta_audience', o, 'access_token');
    const version = stringOption(o, 'api_version', META_DEFAULT_VERSION);
    return new MetaAudience(`/${version}/${String(o['audience_id'])}/users`, baseUrlOf(o, 'base_url', META_DEFAULT_BASE_URL), token, timeoutOf(o), this.capabilities);
  },
};

interface MetaError {
  message?: string;
  type?: string;
  code?: number;
  error_subcode?: number;
  error_user_msg?: string;
  fbtrace_id?: string;
}

interface UsersResponse {
  num_received?: number;
  num_invalid_entries?: number;
}

function metaError(body: unknown): MetaError | undefined {
  return (body as { error?: MetaError } | undefined)?.error;
}

/**
 * Meta's `{error: {message, type, code, error_subcode, fbtrace_id}}`, also in a 200. Rate limits
 * wait `Retry-After`, else X-Business-Use-Case-Usage's estimate. An error no record can cause (a
 * wrong audience) stops the destination rather than splitting the batch.
 */
const metaFailures: FailureReader = {
  failedDespiteStatus: (body) => metaError(body) !== undefined,
  explain(body) {
    const error = metaError(body);
    const code = error?.code !== undefined ? `code ${error.code}${error.error_subcode ? `/${error.error_subcode}` : ''}` : undefined;
    return {
      code: [error?.type, code].filter(Boolean).join(' '),
      detail: [error?.message, error?.error_user_msg].filter(Boolean).join(' ') || undefined,
      note: error?.fbtrace_id ? ` (fbtrace_id ${error.fbtrace_id})` : undefined,
    };
  },
  retryAfterMs: (headers) => parseRetryAfter(headers.get('retry-after')) ?? regainAccessMs(headers.get('x-business-use-case-usage')),
  classify({ status, body, message, retryAfterMs }) {
    const code = metaError(body)?.code;
    if (status === 429 || (code !== undefined && RATE_LIMIT_CODES.has(code))) return new DeliveryError(message, 'rate_limited', status, retryAfterMs);
    if (status === 401 || status === 403 || (code !== undefined && (AUTH_CODES.has(code) || (code >= 200 && code <= 299)))) return new DeliveryError(message, 'auth', status);
    if (status >= 500 || code === 1 || code === 2) return new DeliveryError(message, 'server', status);
    return new Error(`${message}; this concerns the audience as a whole (check audience_id and the audience's state in Ads Manager)`);
  },
};

class MetaAudience implements Destination {
  constructor(
    private readonly path: string,
    private readonly baseUrl: string,
    private readonly token: string,
    private readonly timeoutMs: number,
    readonly capabilities: DestinationType['capabilities'],
  ) {}

  send(batch: readonly OutboundRecord[]): Promise<RecordResult[]> {
    return sendMembership(batch, META_RULES, metaMissing, (direction, members, failures) => this.users(direction === 'remove' ? 'DELETE' : 'POST', members, failures));
  }

  private async users(method: 'POST' | 'DELETE', members: Member<MetaField>[], failures: Map<string, string>): Promise<void> {
    const fields = META_FIELDS.filter((f) => members.some((m) => m.values[f] !== undefined));
    const payload = { schema: fields.map((f) => META_RULES[f].key), data: members.map((m) => fields.map((f) => m.values[f] ?? '')) };
    const response = await this.call(method, payload);
    const invalid = Number(response.num_invalid_entries ?? 0);
    if (!(invalid > 0)) return;
    const what = `${method} ${this.path}: Meta counted ${invalid} of ${members.length} row(s) invalid (num_invalid_entries)`;
    if (members.length === 1) failures.set(members[0]!.record.key, `${what}; check this record's identifiers`);
    // Meta does not say which rows: the engine splits the batch until each invalid row is alone.
    else throw new DeliveryError(`${what}, without saying which; splitting the batch to find them`, 'rejected', 200);
  }

  private async call(method: 'POST' | 'DELETE', payload: unknown): Promise<UsersResponse> {
    // Meta's documented form: `payload` as a JSON form field; the token goes in the body, never the URL.
    const body = new URLSearchParams({ payload: JSON.stringify(payload), access_token: this.token }).toString();
    const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    const answer = await jsonCall({ method, baseUrl: this.baseUrl, path: this.path, headers, body, timeoutMs: this.timeoutMs, answer: 'required' }, metaFailures);
    return answer.body as UsersResponse;
  }

  async close(): Promise<void> {}
}

/**
 * `X-Business-Use-Case-Usage` is `{"<business id>": [{type, call_count, …, estimated_time_to_regain_access}]}`
 * with the wait in minutes; the longest wait of any entry, or undefined.
 */
function regainAccessMs(header: string | null): number | undefined {
  if (!header) return undefined;
  try {
    const usage = JSON.parse(header) as Record<string, { estimated_time_to_regain_access?: unknown }[]>;
    const minutes = Object.values(usage).flat().map((u) => Number(u?.estimated_time_to_regain_access ?? 0)).filter((m) => Number.isFinite(m) && m > 0);
    return minutes.length > 0 ? Math.max(...minutes) * 60_000 : undefined;
  } catch {
    return undefined;
  }
}
