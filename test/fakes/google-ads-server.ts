import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ScriptedServer, jsonBody, type FakeResponse, type RecordedRequest, type Reply } from './scripted-server.js';

/**
 * A local stand-in for Google Ads Customer Match through OfflineUserDataJobService (REST form,
 * ../shared/reference/reverse-etl.md §3), loopback only:
 *
 * - `POST /{v}/customers/{cid}/offlineUserDataJobs:create` → `{resourceName}` (PENDING job);
 * - `POST /{v}/{job}:addOperations` with `enablePartialFailure`: create or remove operations of
 *   UserData (`userIdentifiers`), never both in one job (400 CONFLICTING_OPERATION), at most
 *   100,000 identifiers per request and 20 per operation (TOO_MANY_USER_IDENTIFIERS); hashes must
 *   be 64 lower-case hex digits (INVALID_SHA256_FORMAT), as a `partialFailureError` per operation;
 * - `POST /{v}/{job}:run` → a long-running operation; the job goes RUNNING, then SUCCESS (or a
 *   scripted FAILED) after `runningPolls` status reads, and only then touches the list;
 * - `POST /{v}/customers/{cid}/googleAds:search` with the offline_user_data_job GAQL query →
 *   the job's status.
 *
 * Errors use Google's shape `{error: {code, message, status, details: [GoogleAdsFailure]}}`: 401
 * UNAUTHENTICATED for a wrong or missing Bearer token, 429 RESOURCE_EXHAUSTED with
 * quotaErrorDetails.retryDelay. Every request and every job's operations are recorded.
 */

export interface GoogleRequest extends RecordedRequest {
  raw: string;
}

export type JobStatus = 'PENDING' | 'RUNNING' | 'SUCCESS' | 'FAILED';

export interface FakeJob {
  resourceName: string;
  userList: string;
  consent: unknown;
  status: JobStatus;
  failureReason?: string;
  operations: { create?: any; remove?: any }[];
  polls: number;
}

const SHA256 = /^[0-9a-f]{64}$/;
const FAILURE_TYPE = (v: string) => `type.googleapis.com/google.ads.googleads.${v}.errors.GoogleAdsFailure`;

export class FakeGoogleAds extends ScriptedServer {
  readonly requests: GoogleRequest[] = [];
  readonly jobs: FakeJob[] = [];
  /** The list's members, one per identifier: hashed emails, hashed phones, `address:<json>`. */
  readonly members = new Set<string>();
  /** Status reads a job stays RUNNING before it ends. */
  runningPolls = 1;
  private failJobs: string[] = [];
  private readonly refused = new Map<string, { code: Record<string, string>; message: string }>();
  private nextJob = 9001;

  constructor(readonly accessToken: string, readonly customerId: string, readonly userListId: string, readonly version = 'v26') {
    super();
  }

  /** Operations carrying one of these identifier values fail one by one (partial failure). */
  refuse(values: string[], code: Record<string, string> = { offlineUserDataJobError: 'INVALID_SHA256_FORMAT' }, message = 'The SHA256 encoded value is malformed.'): this {
    for (const v of values) this.refused.set(v, { code, message });
    return this;
  }

  /** The next jobs that run end FAILED with this reason. */
  failNextJob(reason = 'UNSPECIFIED'): this {
    this.failJobs.push(reason);
    return this;
  }

  reset(): this {
    this.failJobs = [];
    return this.clearScript(this.refused);
  }

  sortedMembers(): string[] {
    return [...this.members].sort();
  }

  protected handle(method: string, path: string, headers: IncomingHttpHeaders, text: string): FakeResponse {
    const body = jsonBody(text);
    const { reply } = this.receive<GoogleRequest>(this.requests, { method, path, headers, raw: text, body }, 'application/json; charset=UTF-8');
    const failure = (code: number, status: string, message: string, errors: unknown[] = []) =>
      reply(code, { error: { code, message, status, details: errors.length ? [{ '@type': FAILURE_TYPE(this.version), errors, requestId: randomBytes(8).toString('hex') }] : [] } });
    const adsError = (errorCode: Record<string, string>, message: string, index?: number) => ({
      errorCode, message, ...(index === undefined ? {} : { location: { fieldPathElements: [{ fieldName: 'operations', index }] } }),
    });

    if (headers['authorization'] !== `Bearer ${this.accessToken}`) {
      return failure(401, 'UNAUTHENTICATED', 'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.');
    }
    const scripted = this.scriptedFailure();
    if (scripted) {
      if ('retryAfter' in scripted) {
        return failure(429, 'RESOURCE_EXHAUSTED', 'Too many requests. Retry in 1 seconds.', [{
          errorCode: { quotaError: 'RESOURCE_EXHAUSTED' },
          message: 'Too many requests. Retry in 1 seconds.',
          details: { quotaErrorDetails: { rateScope: 'DEVELOPER', rateName: 'Number of operations for basic access', retryDelay: `${scripted.retryAfter}s` } },
        }]);
      }
      if (scripted.body !== undefined) return reply(scripted.status, scripted.body, { 'content-type': 'application/json' });
      if (scripted.status === 401) return failure(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.', [adsError({ authenticationError: 'OAUTH_TOKEN_EXPIRED' }, 'OAuth token in the header has expired.')]);
      return failure(scripted.status, scripted.status === 503 ? 'UNAVAILABLE' : 'INTERNAL', 'Internal error encountered.', [adsError({ internalError: 'INTERNAL_ERROR' }, 'An internal error has occurred.')]);
    }
    if (method !== 'POST') return failure(404, 'NOT_FOUND', `no route ${method} ${path}`);
    const base = `/${this.version}/customers/${this.customerId}`;
    const jobRoute = new RegExp(`^/${this.version}/(customers/${this.customerId}/offlineUserDataJobs/\\d+):(addOperations|run)$`).exec(path);

    if (path === `${base}/offlineUserDataJobs:create`) {
      const metadata = body?.job?.customerMatchUserListMetadata;
      if (body?.job?.type !== 'CUSTOMER_MATCH_USER_LIST' || typeof metadata?.userList !== 'string') return failure(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.');
      if (metadata.userList !== `customers/${this.customerId}/userLists/${this.userListId}`) {
        return failure(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.', [adsError({ offlineUserDataJobError: 'INVALID_USER_LIST_ID' }, 'The user list ID provided for the job is invalid.')]);
      }
      const job: FakeJob = { resourceName: `customers/${this.customerId}/offlineUserDataJobs/${this.nextJob++}`, userList: metadata.userList, consent: metadata.consent, status: 'PENDING', operations: [], polls: 0 };
      this.jobs.push(job);
      return reply(200, { resourceName: job.resourceName });
    }
    if (jobRoute) {
      const job = this.jobs.find((j) => j.resourceName === jobRoute[1]);
      if (!job) return failure(404, 'NOT_FOUND', `Resource ${jobRoute[1]} was not found.`);
      if (jobRoute[2] === 'run') {
        if (job.status !== 'PENDING') return failure(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.', [adsError({ offlineUserDataJobError: 'INVALID_JOB_STATUS' }, 'The job is not in a state that allows running it.')]);
        job.status = 'RUNNING';
        return reply(200, { name: `customers/${this.customerId}/operations/${randomBytes(6).toString('hex')}` });
      }
      return this.addOperations(job, body, reply, failure, adsError);
    }
    if (path === `${base}/googleAds:search`) {
      const name = /offline_user_data_job\.resource_name = '([^']+)'/.exec(String(body?.query ?? ''))?.[1];
      const job = this.jobs.find((j) => j.resourceName === name);
      if (!job) return reply(200, { results: [], fieldMask: 'offlineUserDataJob.resourceName,offlineUserDataJob.status,offlineUserDataJob.failureReason' });
      if (job.status === 'RUNNING' && ++job.polls > this.runningPolls) this.finish(job);
      return reply(200, {
        results: [{ offlineUserDataJob: { resourceName: job.resourceName, status: job.status, ...(job.failureReason ? { failureReason: job.failureReason } : {}) } }],
        fieldMask: 'offlineUserDataJob.resourceName,offlineUserDataJob.status,offlineUserDataJob.failureReason',
      });
    }
    return failure(404, 'NOT_FOUND', `no route ${path}`);
  }

  private addOperations(
    job: FakeJob,
    body: any,
    reply: Reply,
    failure: (code: number, status: string, message: string, errors?: unknown[]) => FakeResponse,
    adsError: (code: Record<string, string>, message: string, index?: number) => unknown,
  ): FakeResponse {
    const operations: any[] = Array.isArray(body?.operations) ? body.operations : [];
    if (job.status !== 'PENDING') return failure(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.', [adsError({ offlineUserDataJobError: 'INVALID_JOB_STATUS' }, 'Operations can only be added to a PENDING job.')]);
    const identifiers = operations.reduce((n, op) => n + ((op.create ?? op.remove)?.userIdentifiers?.length ?? 0), 0);
    const tooMany = operations.findIndex((op) => ((op.create ?? op.remove)?.userIdentifiers?.length ?? 0) > 20);
    if (identifiers > 100_000 || tooMany !== -1) {
      return failure(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.', [adsError({ offlineUserDataJobError: 'TOO_MANY_USER_IDENTIFIERS' }, 'Maximum number of user identifiers allowed per request is 100,000 and per operation is 20.', tooMany === -1 ? undefined : tooMany)]);
    }
    const kinds = new Set([...job.operations, ...operations].map((op) => (op.create ? 'create' : op.remove ? 'remove' : 'other')));
    if (kinds.has('other') || kinds.size > 1) {
      return failure(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.', [adsError({ offlineUserDataJobError: 'CONFLICTING_OPERATION' }, 'Mixing creation and removal of offline data in the same job is not allowed.')]);
    }
    const errors: unknown[] = [];
    operations.forEach((op, index) => {
      const { values, malformed } = this.identifierValues(op.create ?? op.remove);
      const refused = values.map((v) => this.refused.get(v)).find((r) => r !== undefined);
      if (refused) errors.push(adsError(refused.code, refused.message, index));
      else if (values.length === 0 || malformed) errors.push(adsError({ offlineUserDataJobError: 'INVALID_SHA256_FORMAT' }, 'The SHA256 encoded value is malformed.', index));
      else job.operations.push(op);
    });
    if (errors.length > 0 && body?.enablePartialFailure !== true) return failure(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.', errors);
    if (errors.length === 0) return reply(200, {});
    return reply(200, { partialFailureError: { code: 3, message: 'Multiple errors in ‘details’. First error: The SHA256 encoded value is malformed., at operations[0]', details: [{ '@type': FAILURE_TYPE(this.version), errors }] } });
  }

  /** The UserData's identifier values (an address as `address:<json>`), and whether a hashed one is not SHA-256 hex. */
  private identifierValues(userData: any): { values: string[]; malformed: boolean } {
    const values: string[] = [];
    const hashed: unknown[] = [];
    for (const id of userData?.userIdentifiers ?? []) {
      const a = id.addressInfo;
      const value = id.hashedEmail ?? id.hashedPhoneNumber;
      if (value !== undefined) {
        hashed.push(value);
        values.push(String(value));
      } else if (a !== undefined) {
        hashed.push(a.hashedFirstName, a.hashedLastName);
        values.push(`address:${JSON.stringify([a.hashedFirstName, a.hashedLastName, a.countryCode, a.postalCode])}`);
      }
    }
    return { values, malformed: hashed.some((h) => !SHA256.test(String(h))) };
  }

  private finish(job: FakeJob): void {
    const reason = this.failJobs.shift();
    if (reason !== undefined) {
      job.status = 'FAILED';
      job.failureReason = reason;
      return;
    }
    job.status = 'SUCCESS';
    for (const op of job.operations) {
      for (const value of this.identifierValues(op.create ?? op.remove).values) {
        if (op.create) this.members.add(value);
        else this.members.delete(value);
      }
    }
  }
}
