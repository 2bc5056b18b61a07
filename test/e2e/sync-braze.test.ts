import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { brazeDestination, brazeEventsDestination } from '../../src/destinations/braze.js';
import { FakeBraze } from '../fakes/braze-server.js';
import { connectorPool, connectorSuite, keys, outbound, people } from '../helpers/connector-project.js';
import { duckdbProject, expectCode } from '../helpers/project.js';

/** The braze and braze_events connectors against a local fake Braze REST API. */
const KEY = 'braze-rest-3f9c2a71-test-key-77d1';

let braze: FakeBraze;
const suite = connectorSuite({
  env: { CDP_BRAZE_API_KEY: KEY },
  fixture: 'braze.yml',
  destination: 'crm_braze',
  start: async () => (braze = await new FakeBraze(KEY).start()),
  rewrite: (fake) => [['https://rest.iad-01.braze.com', fake.url]],
});
const { setup, rebuild, sync, snapshotKeys } = suite;
const openConnector = connectorPool();

describe('the braze connector (user attributes)', () => {
  it('tracks attributes by external_id with a Bearer key, deletes users that left the model, and never leaks the key', async () => {
    const p = await setup(3);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', planned: { add: 3 }, succeeded: { add: 3 }, failed: { add: 0 } });
    expect(braze.requests).toHaveLength(1);
    const [first] = braze.requests;
    expect(first).toMatchObject({ method: 'POST', path: '/users/track', status: 201 });
    expect(first!.headers['authorization']).toBe(`Bearer ${KEY}`);
    expect(first!.body).toEqual({ attributes: [
      { external_id: 'p1', email: 'user1@example.com', first_name: 'User 1', score: 10 },
      { external_id: 'p2', email: 'user2@example.com', first_name: 'User 2', score: 20 },
      { external_id: 'p3', email: 'user3@example.com', first_name: 'User 3', score: 30 },
    ] });

    // Row 2 leaves the model (mirror): /users/delete by external_id; row 3 changes.
    await rebuild(p, people(3).replace('2,p2,User2@Example.com,User 2,20\n', '').replace('User 3,30', 'User 3,31'));
    const next = await sync(p, 0);
    expect(next).toMatchObject({ status: 'success', succeeded: { add: 0, change: 1, remove: 1 } });
    expect(braze.requests.slice(1).map((r) => [r.path, r.status, r.body])).toEqual([
      ['/users/track', 201, { attributes: [{ external_id: 'p3', email: 'user3@example.com', first_name: 'User 3', score: 31 }] }],
      ['/users/delete', 201, { external_ids: ['p2'] }],
    ]);
    expect([...braze.users.keys()].sort()).toEqual(['p1', 'p3']);
    expect(await snapshotKeys(p)).toEqual(['1', '3']);
    // Nothing changed: nothing sent.
    await sync(p, 0);
    expect(braze.requests).toHaveLength(3);
    suite.expectNoSecretStored(p);
  });

  it('with on_remove: clear, sets every mapped attribute but external_id to null', async () => {
    const p = await setup(2, [['mode: mirror', 'mode: upsert\non_remove: clear']]);
    await sync(p, 0);
    await rebuild(p, 1);
    expect(await sync(p, 0)).toMatchObject({ succeeded: { remove: 1 } });
    expect(braze.requests.at(-1)!.body).toEqual({ attributes: [{ external_id: 'p2', email: null, first_name: null, score: null }] });
    expect(braze.users.get('p2')).toEqual({});
  });

  it('splits 160 records into /users/track calls of at most 75 (the cap is the default batch size)', async () => {
    const p = await setup(160, [['batch_size: 75\n', '']]);
    expect(await sync(p, 0)).toMatchObject({ status: 'success', succeeded: { add: 160 } });
    expect(braze.requests.map((r) => `${r.status} ${r.body.attributes.length}`)).toEqual(['201 75', '201 75', '201 10']);
    expect(braze.users.size).toBe(160);
    expect(await snapshotKeys(p)).toEqual(keys(160));
  });

  it('honours Retry-After on a 429 and retries a 5xx', async () => {
    const p = await setup(3);
    braze.rateLimitNext(1, '1').failNext(1, 503);
    expect(await sync(p, 0)).toMatchObject({ succeeded: { add: 3 } });
    expect(braze.requests.map((r) => r.status)).toEqual([429, 503, 201]);
    expect(braze.requests[1]!.at - braze.requests[0]!.at).toBeGreaterThanOrEqual(1000);
    expect(braze.requests[2]!.body).toEqual(braze.requests[0]!.body);
  });

  it('without Retry-After, waits until X-RateLimit-Reset', async () => {
    const p = await setup(1);
    braze.rateLimitNext(1, '');
    expect(await sync(p, 0)).toMatchObject({ succeeded: { add: 1 } });
    expect(braze.requests.map((r) => r.status)).toEqual([429, 201]);
    expect(braze.requests[1]!.at - braze.requests[0]!.at).toBeGreaterThanOrEqual(1000);
  });

  it('stores the objects a non-fatal error names by index as rejections, and sends only them next time', async () => {
    const p = await setup(4);
    braze.rejectExternalIds(['p3'], "'email' is not valid");
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 3 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '3', op: 'add', reason: "'email' is not valid" }]);
    expect(await snapshotKeys(p)).toEqual(['1', '2', '4']);
    expect(await p.query(`SELECT primary_key, attempts, status FROM cdp_sync.rejections`)).toEqual([{ primary_key: '3', attempts: 1, status: 'rejected' }]);

    braze.reset();
    expect(await sync(p, 0)).toMatchObject({ succeeded: { add: 1 } });
    expect(braze.requests.at(-1)!.body.attributes.map((a: any) => a.external_id)).toEqual(['p3']);
    expect(await snapshotKeys(p)).toEqual(keys(4));
  });

  it('stops on 401 with state intact, masks a key the answer echoes, and sends only the rest once fixed', async () => {
    const p = await setup(6, [['batch_size: 75', 'batch_size: 2']]);
    braze.passNext(1).failNext(1, 401, JSON.stringify({ message: `Invalid API key: ${KEY}` }));
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'failed', succeeded: { add: 2 } });
    expect(d.message).toMatch(/authentication failed \(401\): POST \/users\/track answered 401: Invalid API key: \*\*\*\*; stopped sending/);
    expect(braze.requests.map((r) => r.status)).toEqual([201, 401]);
    expect(await snapshotKeys(p)).toEqual(['1', '2']);
    const runs = await p.query(`SELECT message FROM cdp_sync.runs`);
    expect(String(runs[0]!['message'])).not.toContain(KEY);

    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(4);
    expect(braze.requests.slice(2).flatMap((r) => r.body.attributes.map((a: any) => a.external_id))).toEqual(['p3', 'p4', 'p5', 'p6']);
    expect(await snapshotKeys(p)).toEqual(keys(6));
  });
});

describe('bad braze contracts (exit 2, file and key, nothing sent)', () => {
  suite.itRejects([
    ['a batch size above 75', [['batch_size: 75', 'batch_size: 100']], /crm_braze\.yml:\d+ \(key `batch_size`\): `batch_size` 100 is above the `braze` destination's cap of 75/],
    ['a literal key', [[`'{{ env "CDP_BRAZE_API_KEY" }}'`, KEY]], /\(key `options\.api_key`\): `options\.api_key` must be an env reference/],
    ['an unset key variable', [['CDP_BRAZE_API_KEY', 'CDP_NO_SUCH_BRAZE_KEY']], /\(key `options\.api_key`\): `options\.api_key` names environment variable CDP_NO_SUCH_BRAZE_KEY, which is not set/],
    ['no base_url', [['  base_url: https://rest.iad-01.braze.com\n', '']], /\(key `options\.base_url`\): `options\.base_url` is required: the REST endpoint of your Braze instance/],
    ['mode update (not supported)', [['mode: mirror', 'mode: update']], /\(key `mode`\): The `braze` destination does not support mode `update`/],
  ]);
});

function eventRows(n: number): string {
  const rows = ['event_id,profile_id,event,occurred_at,amount'];
  for (let i = 1; i <= n; i++) rows.push(`e${i},p${i % 2},class_booked,2026-11-1${i % 10} 09:30:00,${i}`);
  return rows.join('\n') + '\n';
}

const EVENTS_CONTRACT = (url: string) => `name: braze_bookings
model: bookings
type: braze_events
object: events
primary_key: event_id
mapping:
  external_id: profile_id
  name: event
  time: occurred_at
  amount: { column: amount, type: number }
mode: insert
options:
  base_url: ${url}
  api_key: '{{ env "CDP_BRAZE_API_KEY" }}'
delivery:
  initial_backoff_ms: 10
  max_backoff_ms: 50
`;

describe('the braze_events connector (custom events, insert only)', () => {
  it('sends each row once as an event with an ISO time and its idempotency key, and declares it cannot deduplicate', async () => {
    expect(brazeEventsDestination.capabilities).toMatchObject({ modes: ['insert'], maxBatchSize: 75, deduplicates: false });
    expect(brazeDestination.capabilities.deduplicates).not.toBe(false);
    await suite.start();
    const p = suite.track(duckdbProject({
      'seeds/raw_bookings.csv': eventRows(3),
      'models/bookings.sql': 'select event_id, profile_id, event, cast(occurred_at as timestamp) as occurred_at, amount from {{ ref "raw_bookings" }}\n',
      'destinations/braze_bookings.yml': EVENTS_CONTRACT(braze.url),
    }));
    expectCode(await p.cdp(['build']), 0);
    // A 429 is retried (Braze did not process that call; a 5xx is not retried here, since the events may have
    // been recorded: the engine holds them in doubt). The resend carries the same idempotency keys.
    braze.rateLimitNext(1, '0');
    expect(await sync(p, 0)).toMatchObject({ status: 'success', succeeded: { add: 3 } });
    expect(braze.requests.map((r) => r.status)).toEqual([429, 201]);
    expect(braze.requests[1]!.body).toEqual(braze.requests[0]!.body);
    const rows = await p.query(`SELECT primary_key, payload_hash FROM cdp_sync.snapshots WHERE destination = 'braze_bookings' ORDER BY primary_key`);
    const keyOf = (k: string) => createHash('sha256').update(`braze_bookings|${k}|${String(rows.find((r) => r['primary_key'] === k)!['payload_hash'])}`).digest('hex');
    expect(braze.requests[1]!.body.events[0]).toEqual({ external_id: 'p1', name: 'class_booked', time: '2026-11-11T09:30:00Z', properties: { amount: 1, cdp_idempotency_key: keyOf('e1') } });
    expect(braze.events.map((e) => e.properties['cdp_idempotency_key'])).toEqual(['e1', 'e2', 'e3'].map(keyOf));

    // A changed row is not re-sent (insert), a new one is; nothing is sent twice.
    p.write({ 'seeds/raw_bookings.csv': eventRows(4).replace(',1\n', ',100\n') });
    expectCode(await p.cdp(['build']), 0);
    expect(await sync(p, 0)).toMatchObject({ succeeded: { add: 1, change: 0 } });
    expect(braze.events.map((e) => e.time)).toEqual(['2026-11-11T09:30:00Z', '2026-11-12T09:30:00Z', '2026-11-13T09:30:00Z', '2026-11-14T09:30:00Z']);
    await sync(p, 0);
    expect(braze.requests).toHaveLength(3);
  });
});

describe('erase (privacy deletion), sent straight to the connector', () => {
  const erase = (n: number) => Array.from({ length: n }, (_, i) => outbound('remove', String(i + 1), { external_id: `p${i + 1}`, email: `u${i + 1}@example.com` }, { removal: 'erase' }));

  it('deletes users by external_id with /users/delete, 50 ids per call, for both types', async () => {
    await suite.start();
    const options = { base_url: braze.url, api_key: '{{ env "CDP_BRAZE_API_KEY" }}' };
    const users = await openConnector(brazeDestination, options, { destination: 'crm_braze', object: 'users' });
    const results = await users.send(erase(75));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(braze.requests.map((r) => [r.path, r.body.external_ids.length])).toEqual([['/users/delete', 50], ['/users/delete', 25]]);
    expect(braze.deleted).toEqual(Array.from({ length: 75 }, (_, i) => `p${i + 1}`));

    const events = await openConnector(brazeEventsDestination, options, { destination: 'crm_braze', object: 'events' });
    expect(await events.send(erase(1))).toEqual([{ key: '1', ok: true }]);
    expect(braze.requests.at(-1)).toMatchObject({ path: '/users/delete', body: { external_ids: ['p1'] } });
  });
});
