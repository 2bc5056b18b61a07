import { afterEach, describe, expect, it } from 'vitest';
import { KLAVIYO_DEFAULT_REVISION, klaviyoDestination } from '../../src/destinations/klaviyo.js';
import { FakeKlaviyo, klaviyoSpecDir } from '../fakes/klaviyo-server.js';
import { connectorPool, connectorSuite, keys, outbound, people } from '../helpers/connector-project.js';
import { REPO_ROOT } from '../helpers/project.js';

/**
 * The klaviyo connector against a local fake whose every request body is validated against
 * Klaviyo's OpenAPI documents (../shared/specs/klaviyo or $CDP_SHARED_DIR/specs/klaviyo); without
 * them the fake still runs and only the spec checks are skipped.
 */
const KEY = 'pk_0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const LIST = 'Xy7Tq2';
const SPEC_DIR = klaviyoSpecDir(REPO_ROOT);

let klaviyo: FakeKlaviyo;
const suite = connectorSuite({
  env: { CDP_KLAVIYO_API_KEY: KEY },
  fixture: 'klaviyo.yml',
  destination: 'crm_klaviyo',
  start: async () => (klaviyo = await new FakeKlaviyo(KEY, [LIST], SPEC_DIR).start()),
  rewrite: (fake) => [['https://a.klaviyo.com', fake.url], ['poll_interval_ms: 2000', 'poll_interval_ms: 5']],
});
const { setup, rebuild, sync, snapshotKeys, snapshotMeta } = suite;
const openConnector = connectorPool();
afterEach(() => {
  // Every body the connector sent matches its operation's schema (when the documents are here).
  if (klaviyo?.validatesAgainstSpec) expect(klaviyo.requests.filter((r) => r.specProblems?.length).map((r) => [r.method, r.path, r.specProblems])).toEqual([]);
});

/** The profiles fixture as a list-membership contract. */
const AS_LIST: [string, string][] = [
  ['object: profiles', 'object: list'],
  ['mode: upsert\non_remove: clear', 'mode: add_remove'],
  ['  poll_interval_ms: 2000', `  poll_interval_ms: 2000\n  list_id: ${LIST}`],
];

const calls = (from = 0) => klaviyo.requests.slice(from).map((r) => `${r.method} ${r.path.split('?')[0]} ${r.status}`);

describe('the klaviyo connector, object profiles', () => {
  it('imports profiles in a bulk job polled to completion, keeps their Klaviyo ids, and clears a removed row', async () => {
    const p = await setup(3);
    expect(await sync(p, 0)).toMatchObject({ status: 'success', succeeded: { add: 3 }, failed: { add: 0 } });
    expect(calls()).toEqual([
      'POST /api/profile-bulk-import-jobs 202',
      'GET /api/profile-bulk-import-jobs/job1 200'.replace('job1', [...klaviyo.jobs.keys()][0]!),
      'GET /api/profile-bulk-import-jobs/job1 200'.replace('job1', [...klaviyo.jobs.keys()][0]!),
      `GET /api/profile-bulk-import-jobs/${[...klaviyo.jobs.keys()][0]}/profiles 200`,
    ]);
    const [create] = klaviyo.requests;
    expect(create!.headers).toMatchObject({ authorization: `Klaviyo-API-Key ${KEY}`, revision: KLAVIYO_DEFAULT_REVISION, 'content-type': 'application/vnd.api+json' });
    expect(create!.body.data.attributes.profiles.data[0]).toEqual({
      type: 'profile',
      attributes: { email: 'user1@example.com', external_id: 'p1', first_name: 'User 1', properties: { score: 10 } },
    });
    const ids = new Map([...klaviyo.profiles.values()].map((x) => [x.attributes['external_id'], x.id]));
    expect(await snapshotMeta(p)).toEqual(Object.fromEntries(['1', '2', '3'].map((k) => [k, { klaviyo_id: ids.get(`p${k}`) }])));

    // Row 2 leaves the model (on_remove: clear): its fields become null, its custom properties unset.
    await rebuild(p, people(3).replace('2,p2,User2@Example.com,User 2,20\n', ''));
    expect(await sync(p, 0)).toMatchObject({ status: 'success', succeeded: { remove: 1 } });
    expect(klaviyo.requests[4]!.body.data.attributes.profiles.data).toEqual([
      { type: 'profile', attributes: { email: 'user2@example.com', external_id: 'p2', first_name: null }, meta: { patch_properties: { unset: ['score'] } } },
    ]);
    expect(klaviyo.byEmail('user2@example.com')).toMatchObject({ attributes: { email: 'user2@example.com', external_id: 'p2' }, properties: {} });
    expect(klaviyo.profiles.size).toBe(3);
    // Nothing changed: nothing sent. Never a subscription call.
    const before = klaviyo.requests.length;
    await sync(p, 0);
    expect(klaviyo.requests).toHaveLength(before);
    expect(klaviyo.requests.some((r) => r.path.includes('subscription'))).toBe(false);
    suite.expectNoSecretStored(p);
  });

  it('reads the job\'s profiles page by page (150 profiles, pages of 100)', async () => {
    const p = await setup(150);
    expect(await sync(p, 0)).toMatchObject({ succeeded: { add: 150 } });
    const pages = klaviyo.requests.filter((r) => r.path.includes('/profiles?'));
    expect(pages.map((r) => new URL(r.path, 'http://x').searchParams.get('page[cursor]'))).toEqual([null, '100']);
    expect(Object.values(await snapshotMeta(p)).filter((meta) => meta?.['klaviyo_id'] !== undefined)).toHaveLength(150);
  });

  it('turns import errors into per-record rejections, and sends only those next time', async () => {
    const p = await setup(4);
    klaviyo.rejectEmails(['user3@example.com'], 'Invalid email address');
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 3 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '3', op: 'add', reason: 'invalid: Invalid email address' }]);
    expect(calls()).toContain(`GET /api/profile-bulk-import-jobs/${[...klaviyo.jobs.keys()][0]}/import-errors 200`);
    expect((await snapshotKeys(p))).toEqual(['1', '2', '4']);

    klaviyo.reset();
    expect(await sync(p, 0)).toMatchObject({ succeeded: { add: 1 } });
    expect(klaviyo.requests.filter((r) => r.method === 'POST').at(-1)!.body.data.attributes.profiles.data.map((x: any) => x.attributes.external_id)).toEqual(['p3']);
    expect((await snapshotKeys(p))).toEqual(keys(4));
  });

  it('honours Retry-After on a 429; a 5xx while polling re-runs the batch as a new job, without duplicate profiles', async () => {
    const p = await setup(3);
    klaviyo.rateLimitNext(1, '1').passNext(2).failNext(1, 503);
    expect(await sync(p, 0)).toMatchObject({ status: 'success', succeeded: { add: 3 } });
    expect(calls().slice(0, 5)).toEqual([
      'POST /api/profile-bulk-import-jobs 429',
      'POST /api/profile-bulk-import-jobs 202',
      `GET /api/profile-bulk-import-jobs/${[...klaviyo.jobs.keys()][0]} 200`,
      `GET /api/profile-bulk-import-jobs/${[...klaviyo.jobs.keys()][0]} 503`,
      'POST /api/profile-bulk-import-jobs 202',
    ]);
    expect(klaviyo.requests[1]!.at - klaviyo.requests[0]!.at).toBeGreaterThanOrEqual(1000);
    expect(klaviyo.requests[4]!.body).toEqual(klaviyo.requests[1]!.body);
    // The import is an upsert by identifier: the resent batch updated the same three profiles.
    expect(klaviyo.profiles.size).toBe(3);
  });

  it('stops on 401 with state intact, and sends only the rest once the key works', async () => {
    const p = await setup(6, [['batch_size: 1000', 'batch_size: 2']]);
    klaviyo.passNext(4).failNext(1, 401);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'failed', succeeded: { add: 2 } });
    expect(d.message).toMatch(/authentication failed \(401\): POST \/api\/profile-bulk-import-jobs answered 401 authentication_failed: The API key specified is invalid\.; stopped sending/);
    expect((await snapshotKeys(p))).toEqual(['1', '2']);
    expect(await sync(p, 0)).toMatchObject({ succeeded: { add: 4 } });
    expect(klaviyo.profiles.size).toBe(6);
    expect((await snapshotKeys(p))).toEqual(keys(6));
  });
});

describe('the klaviyo connector, object list (add_remove)', () => {
  it('imports the profiles, adds their ids to the list, and removes a row that left by its kept id', async () => {
    const p = await setup(3, AS_LIST);
    expect(await sync(p, 0)).toMatchObject({ status: 'success', succeeded: { add: 3 } });
    const add = klaviyo.requests.find((r) => r.path.startsWith(`/api/lists/${LIST}/`))!;
    expect(add).toMatchObject({ method: 'POST', path: `/api/lists/${LIST}/relationships/profiles`, status: 204 });
    const ids = [...klaviyo.profiles.values()].map((x) => x.id);
    expect(add.body).toEqual({ data: ids.map((id) => ({ type: 'profile', id })) });
    expect([...klaviyo.lists.get(LIST)!].sort()).toEqual([...ids].sort());

    const id2 = klaviyo.byEmail('user2@example.com')!.id;
    await rebuild(p, people(3).replace('2,p2,User2@Example.com,User 2,20\n', ''));
    const before = klaviyo.requests.length;
    expect(await sync(p, 0)).toMatchObject({ succeeded: { remove: 1 } });
    expect(klaviyo.requests.slice(before).map((r) => [r.method, r.path, r.status, r.body])).toEqual([
      ['DELETE', `/api/lists/${LIST}/relationships/profiles`, 204, { data: [{ type: 'profile', id: id2 }] }],
    ]);
    expect(klaviyo.lists.get(LIST)!.has(id2)).toBe(false);
    // Off the list, not deleted: the profile stays in Klaviyo.
    expect(klaviyo.profiles.has(id2)).toBe(true);
    expect(klaviyo.requests.some((r) => r.path.includes('subscription'))).toBe(false);
  });
});

describe('bad klaviyo contracts (exit 2, file and key, nothing sent)', () => {
  suite.itRejects([
    ['a batch size above 10,000', [['batch_size: 1000', 'batch_size: 10001']], /crm_klaviyo\.yml:\d+ \(key `batch_size`\): `batch_size` 10001 is above the `klaviyo` destination's cap of 10000/],
    ['a literal key', [[`'{{ env "CDP_KLAVIYO_API_KEY" }}'`, KEY]], /\(key `options\.api_key`\): `options\.api_key` must be an env reference/],
    ['an unset key variable', [['CDP_KLAVIYO_API_KEY', 'CDP_NO_SUCH_KLAVIYO_KEY']], /\(key `options\.api_key`\): `options\.api_key` names environment variable CDP_NO_SUCH_KLAVIYO_KEY, which is not set/],
    ['mode mirror (Klaviyo deletes profiles only by GDPR erasure)', [['mode: upsert\non_remove: clear', 'mode: mirror']], /\(key `mode`\): The `klaviyo` destination does not support mode `mirror`/],
    ['a malformed revision', [["revision: '2026-07-15'", 'revision: latest']], /\(key `options\.revision`\): `options\.revision` must be a Klaviyo API revision/],
  ]);
});

describe('klaviyo requests, sent straight to the connector', () => {
  const record = (key: string, payload: Record<string, unknown>, meta?: Record<string, string>) => outbound('remove', key, payload, { removal: 'erase', ...(meta ? { meta } : {}) });
  const options = () => ({ base_url: klaviyo.url, api_key: '{{ env "CDP_KLAVIYO_API_KEY" }}' });
  const open = (object: string) => openConnector(klaviyoDestination, { ...options(), list_id: LIST }, { destination: 'crm_klaviyo', object });

  it('erases with one data-privacy deletion job per profile, by exactly one identifier', async () => {
    await suite.start();
    for (const object of ['profiles', 'list']) {
      const destination = await open(object);
      const results = await destination.send([
        record('1', { email: 'a@example.com', phone_number: '+15005550006', external_id: 'p1' }),
        record('2', { email: null, phone_number: '+15005550007' }),
        record('3', { external_id: 'p3' }, { klaviyo_id: '01KPROFILE3' }),
        record('4', { external_id: 'p4' }),
      ]);
      expect(results).toEqual([
        { key: '1', ok: true }, { key: '2', ok: true }, { key: '3', ok: true },
        { key: '4', ok: false, reason: 'cannot erase: the record has no email, no phone_number and no known Klaviyo id (Klaviyo deletes by these only)' },
      ]);
    }
    expect(klaviyo.requests.every((r) => r.method === 'POST' && r.path === '/api/data-privacy-deletion-jobs' && r.status === 202)).toBe(true);
    expect(klaviyo.requests[0]!.body).toEqual({ data: { type: 'data-privacy-deletion-job', attributes: { profile: { data: { type: 'profile', attributes: { email: 'a@example.com' } } } } } });
    expect(klaviyo.deletions).toEqual([{ email: 'a@example.com' }, { phone_number: '+15005550007' }, { id: '01KPROFILE3' }, { email: 'a@example.com' }, { phone_number: '+15005550007' }, { id: '01KPROFILE3' }]);
  });

  it('a remove with `delete` of a profile is rejected: Klaviyo only erases', async () => {
    await suite.start();
    const destination = await open('profiles');
    expect(await destination.send([{ ...record('1', { email: 'a@example.com' }), removal: 'delete' }])).toEqual([
      { key: '1', ok: false, reason: 'Klaviyo deletes a profile only by a data-privacy (GDPR) deletion, which cdp sends for privacy requests alone: use on_remove: clear or nothing' },
    ]);
    expect(klaviyo.requests).toEqual([]);
  });

  it('refuses an object other than profiles or list, and a list without list_id, before any call', async () => {
    await suite.start();
    await expect(open('contacts')).rejects.toThrow('`object` must be `profiles` (upsert) or `list` (add_remove, with options.list_id), got `contacts`');
    await expect(openConnector(klaviyoDestination, options(), { object: 'list' })).rejects.toThrow('`object: list` needs options.list_id');
    expect(klaviyo.requests).toEqual([]);
  });

  it.skipIf(SPEC_DIR === undefined)('the fake refuses a body its operation\'s schema does not allow, with a JSON:API error', async () => {
    await suite.start();
    const response = await fetch(`${klaviyo.url}/api/lists/${LIST}/relationships/profiles`, {
      method: 'POST',
      headers: { authorization: `Klaviyo-API-Key ${KEY}`, revision: KLAVIYO_DEFAULT_REVISION, 'content-type': 'application/vnd.api+json' },
      body: JSON.stringify({ data: [{ type: 'profiles', id: 'x' }] }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { errors: { code: string; source: { pointer: string } }[] };
    expect(body.errors[0]).toMatchObject({ code: 'invalid', source: { pointer: '/data/0/type' } });
    klaviyo.requests.length = 0; // this request was invalid on purpose
  });
});
