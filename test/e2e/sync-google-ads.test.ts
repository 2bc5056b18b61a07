import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { googleAdsDestination } from '../../src/destinations/google-ads.js';
import { identifiersMeta } from '../../src/destinations/platform-hash.js';
import { FakeGoogleAds, type FakeJob } from '../fakes/google-ads-server.js';
import { connectorPool, connectorSuite, keys, outbound as record, seedRows, withEnv } from '../helpers/connector-project.js';

/** The google_ads connector (Customer Match through OfflineUserDataJobs) against a local fake: the job flow, no mixed jobs, partial failures, caps, 429, auth, erase. */
const ACCESS = 'ya29.a0-test-google-access-token-5d1e';
const DEVELOPER = 'dev-token-test-0f9a8b7c6d5e';
const CUSTOMER = '1234567890';
const LIST = '4455667788';
const V = '/v26';
const JOBS = `${V}/customers/${CUSTOMER}/offlineUserDataJobs`;

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
const phoneOf = (i: number) => `+1 650 ${String(i).padStart(7, '0')}`;
const e164 = (phone: string) => `+${phone.replace(/\D/g, '')}`;
const address = () => ({ hashedFirstName: sha('jane'), hashedLastName: sha('doe'), countryCode: 'US', postalCode: '94025' });
/** The UserData Google should receive for customer i, hashed from values normalised by hand. */
const userData = (i: number, phone = phoneOf(i)) => ({ userIdentifiers: [{ hashedEmail: sha(`user${i}@example.com`) }, { hashedPhoneNumber: sha(e164(phone)) }, { addressInfo: address() }] });

/** `edit` replaces customer i's line (null: leaves it out). */
const customers = (n: number, edit?: (i: number) => string | null | undefined) =>
  seedRows('id,profile_id,email,phone,first_name,last_name,country,zip', n, (i) => `${i},p${i},User${i}@Example.com,${phoneOf(i)},Jane,Doe,us,94025`, edit);

let google: FakeGoogleAds;
const suite = connectorSuite({
  env: { CDP_GOOGLE_ADS_ACCESS_TOKEN: ACCESS, CDP_GOOGLE_ADS_DEVELOPER_TOKEN: DEVELOPER },
  fixture: 'google_ads.yml',
  destination: 'google_customers',
  start: async () => (google = await new FakeGoogleAds(ACCESS, CUSTOMER, LIST).start()),
  rewrite: (fake) => [['https://googleads.googleapis.com', fake.url], ['poll_interval_ms: 15000', 'poll_interval_ms: 5']],
  seed: { file: 'seeds/customer_list.csv', rows: customers },
  model: { file: 'models/customers.sql', sql: 'select id, profile_id, email, phone, first_name, last_name, country, cast(zip as varchar) as zip from {{ ref "customer_list" }}\n' },
});
const { setup, rebuild, sync, snapshotKeys } = suite;
const openConnector = connectorPool();

const kinds = (job: FakeJob) => [...new Set(job.operations.map((op) => (op.create ? 'create' : 'remove')))];
const sizes = (jobs: FakeJob[]) => jobs.map((j) => `${kinds(j).join('+')} ${j.operations.length} ${j.status}`);

/** Only hashes reach Google (country and postal code are sent in clear by design), and no job ever mixes create and remove. */
function expectOnlyHashesAndNoMixedJobs(): void {
  for (const r of google.requests) expect(r.raw).not.toMatch(/example|jane|doe|\+1 650/i);
  for (const job of google.jobs) expect(kinds(job).length, job.resourceName).toBeLessThanOrEqual(1);
  for (const r of google.requests.filter((x) => x.path.endsWith(':addOperations'))) {
    expect(new Set(r.body.operations.map((op: object) => Object.keys(op)[0])).size).toBe(1);
  }
}

describe('the google_ads connector', () => {
  it('creates, fills, runs and polls a job per direction; a change removes only the identifiers it drops, in a remove-only job first', async () => {
    const p = await setup(customers(3));
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', planned: { add: 3 }, succeeded: { add: 3 }, failed: { add: 0 } });
    const job = `customers/${CUSTOMER}/offlineUserDataJobs/9001`;
    expect(google.requests.map((r) => `${r.status} ${r.path}`)).toEqual([
      `200 ${JOBS}:create`,
      `200 ${V}/${job}:addOperations`,
      `200 ${V}/${job}:run`,
      `200 ${V}/customers/${CUSTOMER}/googleAds:search`,
      `200 ${V}/customers/${CUSTOMER}/googleAds:search`,
    ]);
    const [create, add, , search] = google.requests;
    expect(create!.body).toEqual({ job: { type: 'CUSTOMER_MATCH_USER_LIST', customerMatchUserListMetadata: { userList: `customers/${CUSTOMER}/userLists/${LIST}`, consent: { adUserData: 'GRANTED', adPersonalization: 'GRANTED' } } } });
    expect(create!.headers).toMatchObject({ authorization: `Bearer ${ACCESS}`, 'developer-token': DEVELOPER, 'login-customer-id': '9876543210' });
    expect(add!.body).toEqual({ enablePartialFailure: true, operations: [1, 2, 3].map((i) => ({ create: userData(i) })) });
    expect(search!.body.query).toBe(`SELECT offline_user_data_job.resource_name, offline_user_data_job.status, offline_user_data_job.failure_reason FROM offline_user_data_job WHERE offline_user_data_job.resource_name = '${job}'`);
    expect(sizes(google.jobs)).toEqual(['create 3 SUCCESS']);
    expect(google.members.size).toBe(7); // 3 emails, 3 phones, one shared address

    // Row 2 leaves the model and row 3 gets a new phone: a remove-only job (3's old phone, all of 2's identifiers), then a
    // create-only job with 3's whole new set (re-adding its email and address only renews them).
    await rebuild(p, customers(3, (i) => (i === 2 ? null : i === 3 ? '3,p3,User3@Example.com,+44 20 7946 0958,Jane,Doe,us,94025' : undefined)));
    const next = await sync(p, 0);
    expect(next).toMatchObject({ status: 'success', succeeded: { add: 0, change: 1, remove: 1 } });
    expect(sizes(google.jobs)).toEqual(['create 3 SUCCESS', 'remove 2 SUCCESS', 'create 1 SUCCESS']);
    expect(google.jobs[1]!.operations).toEqual([{ remove: { userIdentifiers: [{ hashedPhoneNumber: sha(e164(phoneOf(3))) }] } }, { remove: userData(2) }]);
    expect(google.jobs[1]!.consent).toBeUndefined();
    expect(google.jobs[2]!.operations).toEqual([{ create: userData(3, '+44 20 7946 0958') }]);
    expect(google.sortedMembers()).toEqual([sha('user1@example.com'), sha('user3@example.com'), sha(e164(phoneOf(1))), sha('+442079460958'), `address:${JSON.stringify(Object.values(address()))}`].sort());
    expect(await snapshotKeys(p)).toEqual(keys([1, 3]));

    // Nothing changed: nothing sent.
    const before = google.requests.length;
    await sync(p, 0);
    expect(google.requests).toHaveLength(before);
    expectOnlyHashesAndNoMixedJobs();
    suite.expectNoSecretStored(p);
  });

  it('rejects the records of partially failed operations, with Google\'s error, and resends only those', async () => {
    const p = await setup(customers(4));
    google.refuse([sha('user3@example.com')], { offlineUserDataJobError: 'INVALID_SHA256_FORMAT' }, 'The SHA256 encoded value is malformed.');
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 3 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '3', op: 'add', reason: 'INVALID_SHA256_FORMAT: The SHA256 encoded value is malformed.' }]);
    expect(sizes(google.jobs)).toEqual(['create 3 SUCCESS']);
    expect(await p.query(`SELECT primary_key, status FROM cdp_sync.rejections`)).toEqual([{ primary_key: '3', status: 'rejected' }]);

    google.reset();
    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(1);
    expect(google.jobs[1]!.operations).toEqual([{ create: userData(3) }]);
    expect(await snapshotKeys(p)).toEqual(keys([1, 2, 3, 4]));
  });

  it('rejects a record with nothing to match on (an incomplete address is no identifier) and sends the rest', async () => {
    const p = await setup(customers(2, (i) => (i === 2 ? '2,p2,,,Jane,Doe,us,' : undefined)));
    const d = await sync(p, 1);
    expect(d.rejections).toEqual([{ primary_key: '2', op: 'add', reason: 'no usable identifier: map at least one of email, phone, or first_name, last_name, country and zip together' }]);
    expect(google.jobs[0]!.operations).toEqual([{ create: userData(1) }]);
  });

  it('one job per batch: 7 records in batches of 3 make 3 create jobs', async () => {
    const p = await setup(customers(7), [['batch_size: 5000', 'batch_size: 3']]);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', succeeded: { add: 7 } });
    expect(sizes(google.jobs)).toEqual(['create 3 SUCCESS', 'create 3 SUCCESS', 'create 1 SUCCESS']);
    expect(await snapshotKeys(p)).toEqual(keys([1, 2, 3, 4, 5, 6, 7]));
  });

  it('honours retryDelay on a 429 RESOURCE_EXHAUSTED, retries 5xx, and retries a FAILED job with a new job', async () => {
    const p = await setup(customers(3));
    google.rateLimitNext(1, '1').failNext(1, 503);
    google.failNextJob('UNKNOWN');
    const d = await sync(p, 0);
    expect(d.succeeded.add).toBe(3);
    const statuses = google.requests.map((r) => r.status);
    expect(statuses.slice(0, 3)).toEqual([429, 503, 200]);
    expect(google.requests[1]!.at - google.requests[0]!.at).toBeGreaterThanOrEqual(1000);
    expect(sizes(google.jobs)).toEqual(['create 3 FAILED', 'create 3 SUCCESS']);
    expect(google.members.size).toBe(7);
  });

  it('stops on 401 without retrying, state intact; the rest goes once the token works', async () => {
    const p = await setup(customers(6), [['batch_size: 5000', 'batch_size: 2']]);
    google.passNext(5).failNext(1, 401);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'failed', succeeded: { add: 2 } });
    expect(d.message).toMatch(/authentication failed \(401\): POST \/v26\/customers\/1234567890\/offlineUserDataJobs:create answered 401 UNAUTHENTICATED OAUTH_TOKEN_EXPIRED: OAuth token in the header has expired\.; stopped sending/);
    expect(google.requests.map((r) => r.status).at(-1)).toBe(401);
    expect(google.requests).toHaveLength(6);
    expect(await snapshotKeys(p)).toEqual(keys([1, 2]));
    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(4);
    expect(await snapshotKeys(p)).toEqual(keys([1, 2, 3, 4, 5, 6]));
  });

  it('a wrong access token fails at the first call: nothing acknowledged', async () => {
    const p = await setup(customers(2));
    const d = await withEnv('CDP_GOOGLE_ADS_ACCESS_TOKEN', 'ya29.wrong-token-0000', () => sync(p, 1));
    expect(d).toMatchObject({ status: 'failed', message: expect.stringMatching(/answered 401 UNAUTHENTICATED: Request is missing required authentication credential/) });
    expect(google.requests.map((r) => r.status)).toEqual([401]);
    expect(await snapshotKeys(p)).toEqual([]);
  });

  it('a job still running at job_timeout_ms stops the destination (not retried), state intact', async () => {
    const p = await setup(customers(2), [['job_timeout_ms: 3600000', 'job_timeout_ms: 60']]);
    google.runningPolls = 1_000_000;
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'failed', succeeded: { add: 0 } });
    expect(d.message).toMatch(/offline user data job customers\/1234567890\/offlineUserDataJobs\/9001 is still RUNNING after 60 ms \(job_timeout_ms\)/);
    expect(google.jobs).toHaveLength(1);
    expect(await snapshotKeys(p)).toEqual([]);
  });

  it('a list Google refuses stops the destination with its message, without splitting the batch', async () => {
    const p = await setup(customers(4), [[`user_list_id: '${LIST}'`, "user_list_id: '1'"]]);
    const d = await sync(p, 1);
    expect(d.message).toMatch(/answered 400 INVALID_ARGUMENT INVALID_USER_LIST_ID: The user list ID provided for the job is invalid\.; this concerns the job or the user list as a whole/);
    expect(google.requests).toHaveLength(1);
  });

  it('a change removes only the identifiers it drops (a changed name drops the whole address), and none when it drops none', async () => {
    await suite.start();
    const options = { base_url: google.url, access_token: '{{ env "CDP_GOOGLE_ADS_ACCESS_TOKEN" }}', customer_id: '123-456-7890', user_list_id: LIST, poll_interval_ms: 5 };
    const connector = await openConnector(googleAdsDestination, options, { mode: 'add_remove' });
    const person = (first: string, zip?: string) => ({ email: 'user1@example.com', first_name: first, last_name: 'Doe', country: 'us', ...(zip ? { zip } : {}) });
    const sent = (first: string, zip?: string) => identifiersMeta({ email: sha('user1@example.com'), first_name: sha(first), last_name: sha('doe'), country: 'US', ...(zip ? { zip } : {}) });
    const results = await connector.send([
      record('change', '1', person('Janet', '94025'), { meta: sent('jane', '94025') }),
      // No zip, so no address before or after: the names' hashes differ, the identifiers do not.
      record('change', '2', { ...person('Janet'), email: 'user2@example.com' }, { meta: identifiersMeta({ email: sha('user2@example.com'), first_name: sha('jane'), last_name: sha('doe'), country: 'US' }) }),
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, true]);
    expect(sizes(google.jobs)).toEqual(['remove 1 SUCCESS', 'create 2 SUCCESS']);
    expect(google.jobs[0]!.operations).toEqual([{ remove: { userIdentifiers: [{ addressInfo: address() }] } }]);
    expect(google.jobs[1]!.operations).toEqual([
      { create: { userIdentifiers: [{ hashedEmail: sha('user1@example.com') }, { addressInfo: { ...address(), hashedFirstName: sha('janet') } }] } },
      { create: { userIdentifiers: [{ hashedEmail: sha('user2@example.com') }] } },
    ]);
  });

  it('erase: a remove job with the identifiers sent last; no developer-token header when none is configured', async () => {
    await suite.start();
    const options = { base_url: google.url, access_token: '{{ env "CDP_GOOGLE_ADS_ACCESS_TOKEN" }}', customer_id: '123-456-7890', user_list_id: LIST, poll_interval_ms: 5 };
    const connector = await openConnector(googleAdsDestination, options, { mode: 'add_remove' });
    await connector.send([record('add', '1', { email: 'user1@example.com', phone: phoneOf(1) }), record('add', '2', { email: 'user2@example.com' })]);
    expect(google.members.size).toBe(3);
    const sent = identifiersMeta({ email: sha('user1@example.com'), phone: sha(e164(phoneOf(1))) });
    const results = await connector.send([
      record('remove', '1', { email: 'changed-since@example.com' }, { removal: 'erase', meta: sent }),
      record('remove', '2', { email: ' User2@Example.com ' }, { removal: 'erase' }),
    ]);
    expect(results).toEqual([{ key: '1', ok: true }, { key: '2', ok: true }]);
    expect(google.jobs[1]!.operations).toEqual([
      { remove: { userIdentifiers: [{ hashedEmail: sha('user1@example.com') }, { hashedPhoneNumber: sha(e164(phoneOf(1))) }] } },
      { remove: { userIdentifiers: [{ hashedEmail: sha('user2@example.com') }] } },
    ]);
    expect(google.members.size).toBe(0);
    for (const r of google.requests) expect(r.headers['developer-token']).toBeUndefined();
    expectOnlyHashesAndNoMixedJobs();
  });
});

describe('bad google_ads contracts (exit 2, file and key, nothing sent)', () => {
  suite.itRejects([
    ['a batch size above 10,000', [['batch_size: 5000', 'batch_size: 10001']], /google_customers\.yml:\d+ \(key `batch_size`\): `batch_size` 10001 is above the `google_ads` destination's cap of 10000/],
    ['a literal access token', [[`'{{ env "CDP_GOOGLE_ADS_ACCESS_TOKEN" }}'`, ACCESS]], /\(key `options\.access_token`\): `options\.access_token` must be an env reference/],
    ['an unset access token variable', [['CDP_GOOGLE_ADS_ACCESS_TOKEN', 'CDP_NO_SUCH_TOKEN']], /`options\.access_token` names environment variable CDP_NO_SUCH_TOKEN, which is not set/],
    ['a literal developer token', [[`'{{ env "CDP_GOOGLE_ADS_DEVELOPER_TOKEN" }}'`, DEVELOPER]], /\(key `options\.developer_token`\): `options\.developer_token` must be an env reference/],
    ['a malformed customer id', [['customer_id: 123-456-7890', 'customer_id: 12345']], /\(key `options\.customer_id`\): `options\.customer_id` must be a 10-digit Google Ads customer id/],
    ['a consent value Google has not', [['ad_user_data_consent: GRANTED', 'ad_user_data_consent: YES']], /`options\.ad_user_data_consent` must be GRANTED or DENIED/],
    ['a mode other than add_remove', [['mode: add_remove', 'mode: mirror']], /\(key `mode`\)/],
  ]);
});
