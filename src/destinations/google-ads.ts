import { setTimeout as sleep } from 'node:timers/promises';
import type { Destination, DestinationContext, DestinationType, OptionProblem, OutboundRecord, RecordResult } from './destination.js';
import { DeliveryError } from './errors.js';
import {
  baseUrlOf, jsonCall, numberOption, patternProblems, positiveIntegerProblems, requireSecret, secretProblems, stringOption, timeoutOf, timeoutProblems,
  unknownOptionProblems, urlProblems, type FailureReader,
} from './http-connector.js';
import { GOOGLE_FIELDS, GOOGLE_RULES, googleHasAddress, googleMissing, membershipResults, planMembership, type GoogleField, type IdentifierValues } from './platform-hash.js';

/**
 * The Google Ads Customer Match connector (docs/connectors/google-ads.md): membership of a
 * Customer Match user list (contact info), mode `add_remove`, through an OfflineUserDataJob per
 * batch and direction. Identifiers are normalised and hashed here (platform-hash.ts).
 *
 * Per job: `POST /{v}/customers/{cid}/offlineUserDataJobs:create` (CUSTOMER_MATCH_USER_LIST,
 * the user list, consent for create jobs when configured) → `POST /{v}/{job}:addOperations`
 * with `enablePartialFailure: true` → `POST /{v}/{job}:run` → poll the job's status with
 * `POST /{v}/customers/{cid}/googleAds:search` (the only way Google exposes it) until SUCCESS or
 * FAILED. Google forbids mixing create and remove operations in one job, so a batch with both
 * runs two jobs, removes first. Removes, privacy erasures included, are `remove` operations with
 * every identifier sent last. A change removes only the identifiers it drops (sent last, not in
 * the new set) and creates the whole new set (re-adding an identifier only renews its
 * membership): so a remove job a killed run left behind, which Google may finish after the rerun's
 * create job, never takes out an identifier the record still has.
 *
 * Errors (`{error: {code, message, status, details: [{errors: [{errorCode, message}]}]}}`): 429
 * RESOURCE_EXHAUSTED is retried after quotaErrorDetails.retryDelay; 401/403 stop the
 * destination; 5xx, ABORTED and a FAILED job are retried (membership operations are idempotent,
 * so a new job with the same operations is harmless). Partial failures (`partialFailureError`,
 * operation index in `fieldPathElements`) reject those records. Any other 4xx concerns the job
 * or the list (CONFLICTING_OPERATION, a wrong list, an account not allowlisted): no record can
 * cause it, so the destination stops with Google's message instead of splitting the batch.
 */
export const GOOGLE_MAX_BATCH = 10_000;
export const GOOGLE_DEFAULT_BASE_URL = 'https://googleads.googleapis.com';
export const GOOGLE_DEFAULT_VERSION = 'v26';
const DEFAULT_POLL_MS = 10_000;
const DEFAULT_JOB_TIMEOUT_MS = 1_800_000;
const CONSENT_VALUES = ['GRANTED', 'DENIED'];
const OPTIONS = [
  'base_url', 'api_version', 'developer_token', 'access_token', 'login_customer_id', 'customer_id', 'user_list_id',
  'ad_user_data_consent', 'ad_personalization_consent', 'poll_interval_ms', 'job_timeout_ms', 'timeout_ms',
];
const CUSTOMER_ID = /^\d{3}-?\d{3}-?\d{4}$/;

function customerIdProblems(options: Record<string, unknown>, key: string, required: boolean): OptionProblem[] {
  const value = options[key];
  if (value === undefined) return required ? [{ key, message: 'is required: the 10-digit Google Ads customer id (dashes allowed)' }] : [];
  return CUSTOMER_ID.test(String(value)) ? [] : [{ key, message: `must be a 10-digit Google Ads customer id such as 123-456-7890, got ${JSON.stringify(value)}` }];
}

export const googleAdsDestination: DestinationType = {
  type: 'google_ads',
  capabilities: { modes: ['add_remove'], maxBatchSize: GOOGLE_MAX_BATCH, fields: GOOGLE_FIELDS },

  validateOptions(options: Record<string, unknown>): OptionProblem[] {
    const problems = [
      ...unknownOptionProblems('google_ads', options, OPTIONS),
      ...urlProblems(options, 'base_url'),
      ...secretProblems(options, 'access_token', 'an OAuth 2.0 access token for the Google Ads API scope', 'GOOGLE_ADS_ACCESS_TOKEN'),
      // Optional since Google sunset developer tokens (the API ignores the header); a credential all the same.
      ...(options['developer_token'] === undefined ? [] : secretProblems(options, 'developer_token', 'the developer token', 'GOOGLE_ADS_DEVELOPER_TOKEN')),
      ...customerIdProblems(options, 'customer_id', true),
      ...customerIdProblems(options, 'login_customer_id', false),
      ...positiveIntegerProblems(options, 'poll_interval_ms', 'milliseconds'),
      ...positiveIntegerProblems(options, 'job_timeout_ms', 'milliseconds'),
    ];
    const list = options['user_list_id'];
    if (list === undefined) problems.push({ key: 'user_list_id', message: 'is required: the id of the Customer Match user list' });
    else if (!/^\d+$/.test(String(list))) problems.push({ key: 'user_list_id', message: `must be a user list id (digits), got ${JSON.stringify(list)}` });
    problems.push(...patternProblems(options, 'api_version', /^v\d+$/, `a Google Ads API version such as ${GOOGLE_DEFAULT_VERSION}`));
    for (const key of ['ad_user_data_consent', 'ad_personalization_consent']) {
      const value = options[key];
      if (value !== undefined && !CONSENT_VALUES.includes(String(value))) problems.push({ key, message: `must be GRANTED or DENIED, got ${JSON.stringify(value)}` });
    }
    return [...problems, ...timeoutProblems(options)];
  },

  async open(context: DestinationContext): Promise<Destination> {
    const o = context.options;
    const headers: Record<string, string> = { authorization: `Bearer ${requireSecret('google_ads', o, 'access_token')}`, accept: 'application/json' };
    if (o['developer_token'] !== undefined) headers['developer-token'] = requireSecret('google_ads', o, 'developer_token');
    if (o['login_customer_id'] !== undefined) headers['login-customer-id'] = digits(o['login_customer_id']);
    const customerId = digits(o['customer_id']);
    const consent: Record<string, string> = {};
    if (o['ad_user_data_consent'] !== undefined) consent['adUserData'] = String(o['ad_user_data_consent']);
    if (o['ad_personalization_consent'] !== undefined) consent['adPersonalization'] = String(o['ad_personalization_consent']);
    return new CustomerMatch({
      baseUrl: baseUrlOf(o, 'base_url', GOOGLE_DEFAULT_BASE_URL),
      version: stringOption(o, 'api_version', GOOGLE_DEFAULT_VERSION),
      customerId,
      userList: `customers/${customerId}/userLists/${digits(o['user_list_id'])}`,
      headers,
      consent: Object.keys(consent).length > 0 ? consent : undefined,
      pollMs: numberOption(o, 'poll_interval_ms', DEFAULT_POLL_MS),
      jobTimeoutMs: numberOption(o, 'job_timeout_ms', DEFAULT_JOB_TIMEOUT_MS),
      timeoutMs: timeoutOf(o),
    }, this.capabilities);
  },
};

function digits(value: unknown): string {
  return String(value).replace(/-/g, '');
}

interface Settings {
  baseUrl: string;
  version: string;
  customerId: string;
  userList: string;
  headers: Record<string, string>;
  consent: Record<string, string> | undefined;
  pollMs: number;
  jobTimeoutMs: number;
  timeoutMs: number;
}

interface GoogleAdsError {
  errorCode?: Record<string, string>;
  message?: string;
  location?: { fieldPathElements?: { fieldName?: string; index?: number }[] };
  details?: { quotaErrorDetails?: { retryDelay?: string } };
}

interface Status {
  code?: number;
  message?: string;
  status?: string;
  details?: { errors?: GoogleAdsError[] }[];
}

type Direction = 'create' | 'remove';

/** One operation of a job: a record's UserData. */
interface Operation {
  key: string;
  userIdentifiers: Record<string, unknown>[];
}

/** `{hashedEmail}`, `{hashedPhoneNumber}` and, when complete, `{addressInfo}`: one UserIdentifier each. */
function userIdentifiers(values: IdentifierValues<GoogleField>): Record<string, unknown>[] {
  const identifiers: Record<string, unknown>[] = [];
  if (values.email) identifiers.push({ hashedEmail: values.email });
  if (values.phone) identifiers.push({ hashedPhoneNumber: values.phone });
  if (googleHasAddress(values)) {
    identifiers.push({ addressInfo: { hashedFirstName: values.first_name, hashedLastName: values.last_name, countryCode: values.country, postalCode: values.zip } });
  }
  return identifiers;
}

/** The identifiers of `from` that are not in `kept` (an address counts as one identifier: all four parts). */
function identifiersDropped(from: Record<string, unknown>[], kept: Record<string, unknown>[]): Record<string, unknown>[] {
  const keep = new Set(kept.map((id) => JSON.stringify(id)));
  return from.filter((id) => !keep.has(JSON.stringify(id)));
}

function errorCodeOf(e: GoogleAdsError): string | undefined {
  return Object.values(e.errorCode ?? {})[0];
}

function googleErrors(status: Status | undefined): GoogleAdsError[] {
  return (status?.details ?? []).flatMap((d) => d.errors ?? []);
}

/** "30s", "1.5s" (a protobuf Duration in JSON) → milliseconds. */
function durationMs(text: string | undefined): number | undefined {
  const m = text === undefined ? null : /^(\d+(?:\.\d+)?)s$/.exec(text.trim());
  return m ? Math.ceil(Number(m[1]) * 1000) : undefined;
}

function statusOf(body: unknown): Status | undefined {
  return (body as { error?: Status } | undefined)?.error;
}

/**
 * Google's `{error: {code, message, status, details: [{errors: [{errorCode, message}]}]}}`. A rate
 * limit waits `Retry-After`, else quotaErrorDetails.retryDelay. Any other 4xx concerns the job or
 * the list, which no record can cause: it stops the destination rather than splitting the batch.
 */
const googleFailures: FailureReader = {
  explain(body) {
    const error = statusOf(body);
    const first = googleErrors(error)[0];
    return { code: [error?.status, first ? errorCodeOf(first) : undefined].filter(Boolean).join(' '), detail: first?.message ?? error?.message };
  },
  classify({ status, body, message, retryAfterMs }) {
    const error = statusOf(body);
    if (status === 429 || error?.status === 'RESOURCE_EXHAUSTED') {
      const delay = googleErrors(error).map((e) => durationMs(e.details?.quotaErrorDetails?.retryDelay)).find((ms) => ms !== undefined);
      return new DeliveryError(message, 'rate_limited', status, retryAfterMs ?? delay);
    }
    if (status === 401 || status === 403) return new DeliveryError(message, 'auth', status);
    if (status >= 500 || error?.status === 'ABORTED') return new DeliveryError(message, 'server', status);
    return new Error(`${message}; this concerns the job or the user list as a whole (check customer_id, user_list_id and the account's Customer Match access)`);
  },
};

class CustomerMatch implements Destination {
  constructor(
    private readonly s: Settings,
    readonly capabilities: DestinationType['capabilities'],
  ) {}

  async send(batch: readonly OutboundRecord[]): Promise<RecordResult[]> {
    const plan = planMembership(batch, GOOGLE_RULES, googleMissing);
    const creates = plan.additions.map((m): Operation => ({ key: m.record.key, userIdentifiers: userIdentifiers(m.values) }));
    const created = new Map(creates.map((op) => [op.key, op.userIdentifiers]));
    // A change's removal is what its new set no longer has; a remove (or erase) has no new set: everything sent goes.
    const removes = plan.removals
      .map((m): Operation => ({ key: m.record.key, userIdentifiers: identifiersDropped(userIdentifiers(m.values), created.get(m.record.key) ?? []) }))
      .filter((op) => op.userIdentifiers.length > 0);
    const failures = new Map<string, string>();
    if (removes.length > 0) await this.job('remove', removes, failures);
    if (creates.length > 0) await this.job('create', creates, failures);
    return membershipResults(batch, plan, failures);
  }

  /** One job of one direction: create it, add the operations, run it, wait for it. */
  private async job(direction: Direction, operations: Operation[], failures: Map<string, string>): Promise<void> {
    const metadata: Record<string, unknown> = { userList: this.s.userList };
    // Consent describes the people being added; Google does not want it on remove jobs.
    if (direction === 'create' && this.s.consent) metadata['consent'] = this.s.consent;
    const created = (await this.post(`/customers/${this.s.customerId}/offlineUserDataJobs:create`, {
      job: { type: 'CUSTOMER_MATCH_USER_LIST', customerMatchUserListMetadata: metadata },
    })) as { resourceName?: string };
    const job = created.resourceName;
    // The name goes into a GAQL string literal (waitFor) and request paths: only the documented shape.
    if (typeof job !== 'string' || !/^customers\/\d+\/offlineUserDataJobs\/\d+$/.test(job)) {
      throw new DeliveryError(`offlineUserDataJobs:create answered without a job resourceName (got ${JSON.stringify(job)})`, 'server');
    }

    const body = { enablePartialFailure: true, operations: operations.map(({ userIdentifiers }) => ({ [direction]: { userIdentifiers } })) };
    const added = (await this.post(`/${job}:addOperations`, body)) as { partialFailureError?: Status };
    const refused = this.partialFailures(added.partialFailureError, operations);
    for (const [key, reason] of refused) failures.set(key, reason);
    // Nothing left to run: every operation was refused.
    if (refused.size === operations.length) return;

    await this.post(`/${job}:run`, {});
    await this.waitFor(job);
  }

  /** Records whose operation Google refused, with `<ERROR_CODE>: <message>`; the operation index is in the field path. */
  private partialFailures(status: Status | undefined, operations: Operation[]): Map<string, string> {
    const refused = new Map<string, string>();
    for (const e of googleErrors(status)) {
      const index = e.location?.fieldPathElements?.find((p) => p.fieldName === 'operations')?.index;
      const operation = index === undefined ? undefined : operations[index];
      if (!operation) continue;
      const reason = [errorCodeOf(e), e.message].filter(Boolean).join(': ') || 'refused by Google Ads';
      const before = refused.get(operation.key);
      refused.set(operation.key, before ? `${before}; ${reason}` : reason);
    }
    return refused;
  }

  private async waitFor(job: string): Promise<void> {
    const query = `SELECT offline_user_data_job.resource_name, offline_user_data_job.status, offline_user_data_job.failure_reason FROM offline_user_data_job WHERE offline_user_data_job.resource_name = '${job}'`;
    const deadline = Date.now() + this.s.jobTimeoutMs;
    for (;;) {
      const answer = (await this.post(`/customers/${this.s.customerId}/googleAds:search`, { query })) as {
        results?: { offlineUserDataJob?: { status?: string; failureReason?: string } }[];
      };
      const found = answer.results?.[0]?.offlineUserDataJob;
      const status = found?.status;
      if (status === 'SUCCESS') return;
      if (status === 'FAILED') {
        throw new DeliveryError(`offline user data job ${job} FAILED${found?.failureReason ? ` (${found.failureReason})` : ''}`, 'server');
      }
      if (status !== 'PENDING' && status !== 'RUNNING') throw new DeliveryError(`offline user data job ${job}: unexpected status ${String(status)}`, 'server');
      if (Date.now() + this.s.pollMs > deadline) {
        // Not retried: another job with the same operations would wait just as long. The next sync resends them.
        throw new Error(`offline user data job ${job} is still ${status} after ${this.s.jobTimeoutMs} ms (job_timeout_ms); its operations may still apply, and the next sync sends them again`);
      }
      await sleep(this.s.pollMs);
    }
  }

  private async post(path: string, payload: unknown): Promise<unknown> {
    const label = `/${this.s.version}${path}`;
    const { body } = await jsonCall({ method: 'POST', baseUrl: this.s.baseUrl, path: label, headers: this.s.headers, payload, timeoutMs: this.s.timeoutMs }, googleFailures);
    return body ?? {};
  }

  async close(): Promise<void> {}
}
