import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DeliveryError } from '../../src/destinations/errors.js';
import { metaAudienceDestination } from '../../src/destinations/meta-audiences.js';
import { identifiersMeta } from '../../src/destinations/platform-hash.js';
import { FakeMeta } from '../fakes/meta-server.js';
import { connectorPool, connectorSuite, keys, outbound as record, seedRows, withEnv } from '../helpers/connector-project.js';

/** The meta_audience connector against a local fake: hashed adds and removes, invalid entries, caps, rate limits, auth, erase. */
const TOKEN = 'EAAGm0PX4ZCpsBAtest-meta-token-7f3c';
const AUDIENCE = '23851234567890123';
const PATH = `/v25.0/${AUDIENCE}/users`;
const SCHEMA = ['EMAIL', 'PHONE', 'FN', 'LN', 'COUNTRY'];

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
const phoneOf = (i: number) => `+1 650 ${String(i).padStart(7, '0')}`;
/** The row Meta should receive for customer i, hashed from values normalised by hand. */
const rowOf = (i: number, phone = phoneOf(i)) => [sha(`user${i}@example.com`), sha(phone.replace(/\D/g, '')), sha('first'), sha('last'), sha('us')];

/** `edit` replaces customer i's line (null: leaves it out). */
const customers = (n: number, edit?: (i: number) => string | null | undefined) =>
  seedRows('id,profile_id,email,phone,first_name,last_name,country', n, (i) => `${i},p${i},User${i}@Example.com,${phoneOf(i)},First${i},Last${i},US`, edit);

let meta: FakeMeta;
const suite = connectorSuite({
  env: { CDP_META_ACCESS_TOKEN: TOKEN },
  fixture: 'meta_audience.yml',
  destination: 'meta_customers',
  start: async () => (meta = await new FakeMeta(TOKEN, AUDIENCE).start()),
  rewrite: (fake) => [['https://graph.facebook.com', fake.url]],
  seed: { file: 'seeds/customer_list.csv', rows: customers },
  model: { file: 'models/customers.sql', sql: 'select id, profile_id, email, phone, first_name, last_name, country from {{ ref "customer_list" }}\n' },
});
const { setup, rebuild, sync, snapshotKeys, snapshotMeta } = suite;
const openConnector = connectorPool();

/** Only hashes reach Meta: no raw email, name or formatted phone in any body, every cell 64 hex digits or empty. */
function expectOnlyHashes(): void {
  for (const r of meta.requests) {
    expect(r.raw).not.toMatch(/example|first|last|%2B1|\+1/i);
    for (const row of r.payload?.data ?? []) for (const cell of row) expect(cell).toMatch(/^([0-9a-f]{64})?$/);
  }
}

describe('the meta_audience connector', () => {
  it('adds hashed rows, removes and replaces exactly the identifiers sent, and sends no raw identifier', async () => {
    const p = await setup(customers(3));
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', planned: { add: 3 }, succeeded: { add: 3 }, failed: { add: 0 } });
    expect(meta.requests).toHaveLength(1);
    const [add] = meta.requests;
    expect(add).toMatchObject({ method: 'POST', path: PATH, status: 200, accessToken: TOKEN });
    expect(add!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(add!.payload).toEqual({ schema: SCHEMA, data: [rowOf(1), rowOf(2), rowOf(3)] });
    expect(meta.members).toHaveLength(3);
    expect(JSON.parse((await snapshotMeta(p))['1']!['identifiers'])).toEqual({ email: rowOf(1)[0], phone: rowOf(1)[1], first_name: sha('first'), last_name: sha('last'), country: sha('us') });

    // Row 2 leaves the model and row 3 gets a new phone: one DELETE (row 2, and row 3's old row), then one POST.
    await rebuild(p, customers(3, (i) => (i === 2 ? null : i === 3 ? '3,p3,User3@Example.com,+44 20 7946 0958,First3,Last3,US' : undefined)));
    const next = await sync(p, 0);
    expect(next).toMatchObject({ status: 'success', succeeded: { add: 0, change: 1, remove: 1 } });
    const [removal, addition] = meta.requests.slice(1);
    expect(removal).toMatchObject({ method: 'DELETE', path: PATH, status: 200, payload: { schema: SCHEMA, data: [rowOf(3), rowOf(2)] } });
    expect(addition).toMatchObject({ method: 'POST', path: PATH, status: 200, payload: { schema: SCHEMA, data: [rowOf(3, '442079460958')] } });
    expect(meta.memberValues('PHONE')).toEqual([rowOf(1)[1], sha('442079460958')].sort());
    expect(await snapshotKeys(p)).toEqual(keys([1, 3]));

    // Nothing changed: nothing sent.
    await sync(p, 0);
    expect(meta.requests).toHaveLength(3);
    expectOnlyHashes();
    suite.expectNoSecretStored(p);
  });

  it('rejects a record with nothing to match on, with a reason that does not quote it, and sends the rest', async () => {
    const p = await setup(customers(3, (i) => (i === 2 ? '2,p2,not-an-email,,,,US' : undefined)));
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 2 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '2', op: 'add', reason: 'no usable identifier: map at least one of email, phone, madid, external_id, or first_name (or first_initial) with last_name (email is not an email address)' }]);
    expect(meta.requests.map((r) => r.payload?.data.length)).toEqual([2]);
    expect(await p.query(`SELECT primary_key, status FROM cdp_sync.rejections`)).toEqual([{ primary_key: '2', status: 'rejected' }]);
    expect(await snapshotKeys(p)).toEqual(keys([1, 3]));
  });

  it('finds the rows Meta counts invalid by splitting the batch, and rejects only those', async () => {
    const p = await setup(customers(4));
    meta.invalidate([sha('user3@example.com')]);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 3 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '3', op: 'add', reason: expect.stringMatching(/^POST \/v25\.0\/\d+\/users: Meta counted 1 of 1 row\(s\) invalid \(num_invalid_entries\); check this record's identifiers$/) }]);
    // 4 rows (1 invalid) → halves of 2 → the half with the invalid row in ones.
    expect(meta.requests.map((r) => r.payload?.data.length)).toEqual([4, 2, 2, 1, 1]);
    expect(meta.memberValues('EMAIL')).toEqual([1, 2, 4].map((i) => sha(`user${i}@example.com`)).sort());
    expect(await snapshotKeys(p)).toEqual(keys([1, 2, 4]));
  });

  it('sends batches of at most 10,000 rows per call (the cap)', async () => {
    const p = await setup(customers(10_050), [['batch_size: 5000', 'batch_size: 10000']]);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', succeeded: { add: 10_050 } });
    expect(meta.requests.map((r) => `${r.status} ${r.payload?.data.length}`)).toEqual(['200 10000', '200 50']);
    expect(meta.members).toHaveLength(10_050);
  });

  it('retries a rate limit (code 80003) and a 5xx; a lost response resends the batch without duplicating members', async () => {
    const p = await setup(customers(3));
    meta.rateLimitNext(1, '0').failNext(1, 503);
    const d = await sync(p, 0);
    expect(d.succeeded.add).toBe(3);
    expect(meta.requests.map((r) => r.status)).toEqual([400, 503, 200]);
    expect(meta.requests[2]!.payload).toEqual(meta.requests[0]!.payload);

    await rebuild(p, customers(4));
    meta.loseResponses(1);
    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(1);
    expect(meta.requests.slice(3).map((r) => r.status)).toEqual([500, 200]);
    expect(meta.members).toHaveLength(4);
    expect(await snapshotKeys(p)).toEqual(keys([1, 2, 3, 4]));
  });

  it("waits for X-Business-Use-Case-Usage's estimated_time_to_regain_access on a rate limit", async () => {
    await suite.start();
    meta.regainMinutes = 2;
    meta.rateLimitNext(1, '0');
    const connector = await openDirect();
    const failure = await connector.send([record('add', '1', { email: 'user1@example.com' })]).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(DeliveryError);
    expect(failure).toMatchObject({ kind: 'rate_limited', retryAfterMs: 120_000 });
    expect((failure as Error).message).toMatch(/^POST \/v25\.0\/\d+\/users answered 400 OAuthException code 80003\/2446079: There have been too many calls/);
  });

  it('stops on an expired token (code 190) without retrying, state intact; the rest goes once the token works', async () => {
    const p = await setup(customers(6), [['batch_size: 5000', 'batch_size: 2']]);
    meta.passNext(1).failNext(1, 401);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'failed', succeeded: { add: 2 } });
    expect(d.message).toMatch(/authentication failed \(400\): POST \/v25\.0\/\d+\/users answered 400 OAuthException code 190\/463: Error validating access token: Session has expired\. \(fbtrace_id [\w-]+\); stopped sending/);
    expect(meta.requests.map((r) => r.status)).toEqual([200, 400]);
    expect(await snapshotKeys(p)).toEqual(keys([1, 2]));
    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(4);
    expect(meta.members).toHaveLength(6);
    expect(await snapshotKeys(p)).toEqual(keys([1, 2, 3, 4, 5, 6]));
  });

  it('a wrong token fails at the first call: nothing acknowledged', async () => {
    const p = await setup(customers(2));
    const d = await withEnv('CDP_META_ACCESS_TOKEN', 'EAAG-wrong-token-0000', () => sync(p, 1));
    expect(d).toMatchObject({ status: 'failed', message: expect.stringMatching(/code 190\/463: Invalid OAuth access token/) });
    expect(meta.requests.map((r) => r.status)).toEqual([400]);
    expect(await snapshotKeys(p)).toEqual([]);
  });

  it('an audience Meta does not know stops the destination with its message, without splitting the batch', async () => {
    const p = await setup(customers(4), [[`audience_id: '${AUDIENCE}'`, "audience_id: '999'"]]);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'failed', succeeded: { add: 0 } });
    expect(d.message).toMatch(/answered 400 GraphMethodException code 100\/33: Unsupported post request\. Object with ID '999' does not exist.*concerns the audience as a whole/);
    expect(meta.requests).toHaveLength(1);
  });

  it('erase: DELETE with the identifiers sent last (from meta), else the last payload hashed again', async () => {
    await suite.start();
    const connector = await openDirect();
    await connector.send([record('add', '1', { email: 'user1@example.com', phone: phoneOf(1) }), record('add', '2', { email: 'user2@example.com' })]);
    expect(meta.members).toHaveLength(2);
    const sent = identifiersMeta({ email: sha('user1@example.com'), phone: sha('16500000001') });
    const results = await connector.send([
      record('remove', '1', { email: 'changed-since@example.com' }, { removal: 'erase', meta: sent }),
      record('remove', '2', { email: ' User2@Example.com ' }, { removal: 'erase' }),
    ]);
    expect(results).toEqual([{ key: '1', ok: true }, { key: '2', ok: true }]);
    expect(meta.requests.at(-1)).toMatchObject({ method: 'DELETE', path: PATH, status: 200, payload: { schema: ['EMAIL', 'PHONE'], data: [[sha('user1@example.com'), sha('16500000001')], [sha('user2@example.com'), '']] } });
    expect(meta.members).toEqual([]);
    expectOnlyHashes();
  });
});

/** The connector opened as the engine would, for calls the engine does not make yet (erase) or to inspect a thrown error. */
function openDirect() {
  return openConnector(metaAudienceDestination, { base_url: meta.url, audience_id: AUDIENCE, access_token: '{{ env "CDP_META_ACCESS_TOKEN" }}' }, { mode: 'add_remove' });
}

describe('bad meta_audience contracts (exit 2, file and key, nothing sent)', () => {
  suite.itRejects([
    ['a batch size above 10,000', [['batch_size: 5000', 'batch_size: 10001']], /meta_customers\.yml:\d+ \(key `batch_size`\): `batch_size` 10001 is above the `meta_audience` destination's cap of 10000/],
    ['a literal token', [[`'{{ env "CDP_META_ACCESS_TOKEN" }}'`, TOKEN]], /\(key `options\.access_token`\): `options\.access_token` must be an env reference/],
    ['an unset token variable', [['CDP_META_ACCESS_TOKEN', 'CDP_NO_SUCH_TOKEN']], /\(key `options\.access_token`\): `options\.access_token` names environment variable CDP_NO_SUCH_TOKEN, which is not set/],
    ['a mode other than add_remove', [['mode: add_remove', 'mode: upsert']], /\(key `mode`\)/],
    ['a field Meta has not', [['  country: country', '  emails: country']], /\(key `mapping\.emails`\)|The `meta_audience` destination has no field `emails`/],
    ['no audience id', [[`  audience_id: '${AUDIENCE}'\n`, '']], /`options\.audience_id` is required/],
    ['an audience id YAML would round', [[`audience_id: '${AUDIENCE}'`, `audience_id: ${AUDIENCE}`]], /\(key `options\.audience_id`\): `options\.audience_id` must be quoted/],
  ]);
});
