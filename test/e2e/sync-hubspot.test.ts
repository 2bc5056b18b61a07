import { describe, expect, it } from 'vitest';
import { FakeHubSpot } from '../fakes/hubspot-server.js';
import { connectorSuite, keys, people, withEnv } from '../helpers/connector-project.js';

/** The hubspot connector (CRM v3 contacts) against a local fake: upsert, archive, ids kept as meta, batch cap, 429, 207, 401, token hygiene. */
const TOKEN = 'pat-na1-7c2e9f41-test-token-0b8d';

let hub: FakeHubSpot;
const suite = connectorSuite({
  env: { CDP_HUBSPOT_TOKEN: TOKEN },
  fixture: 'hubspot.yml',
  destination: 'crm_hubspot',
  start: async () => (hub = await new FakeHubSpot(TOKEN).start()),
  rewrite: (fake) => [['https://api.hubapi.com', fake.url]],
});
const { setup, rebuild, sync, snapshotKeys, snapshotMeta } = suite;

const emails = (ns: number[]) => ns.map((i) => `user${i}@example.com`).sort();

describe('the hubspot connector', () => {
  it('upserts on idProperty with a Bearer token, archives removed rows by resolved HubSpot id, and never leaks the token', async () => {
    const p = await setup(3);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', planned: { add: 3 }, succeeded: { add: 3 }, failed: { add: 0 } });
    expect(hub.requests).toHaveLength(1);
    const [upsert] = hub.requests;
    expect(upsert).toMatchObject({ method: 'POST', path: '/crm/v3/objects/contacts/batch/upsert', status: 200 });
    expect(upsert!.headers['authorization']).toBe(`Bearer ${TOKEN}`);
    expect(upsert!.body.inputs[0]).toEqual({ idProperty: 'email', id: 'user1@example.com', properties: { email: 'user1@example.com', firstname: 'User 1', score: '10' }, objectWriteTraceId: '1' });
    expect(hub.emails()).toEqual(emails([1, 2, 3]));

    // Row 2 leaves the model (mirror): read by email, then archive by HubSpot id.
    const id2 = hub.contacts.get('user2@example.com')!.id;
    await rebuild(p, people(3).replace('2,p2,User2@Example.com,User 2,20\n', ''));
    const next = await sync(p, 0);
    expect(next).toMatchObject({ status: 'success', succeeded: { add: 0, change: 0, remove: 1 } });
    const [read, archive] = hub.requests.slice(1);
    expect(read).toMatchObject({ path: '/crm/v3/objects/contacts/batch/read', status: 200, body: { idProperty: 'email', properties: ['email'], inputs: [{ id: 'user2@example.com' }] } });
    expect(archive).toMatchObject({ path: '/crm/v3/objects/contacts/batch/archive', status: 204, body: { inputs: [{ id: id2 }] } });
    expect(hub.emails()).toEqual(emails([1, 3]));
    expect(await snapshotKeys(p)).toEqual(['1', '3']);
    // Nothing changed: nothing sent.
    await sync(p, 0);
    expect(hub.requests).toHaveLength(3);
    suite.expectNoSecretStored(p);
  });

  it('keeps each contact\'s HubSpot id in cdp_sync.snapshots.meta, and created only for contacts cdp created; created survives later updates', async () => {
    const p = await setup(3);
    // Contact 3 is already in the CRM: the upsert updates it (new: false).
    const theirs = hub.addContact('user3@example.com', { phone: '+4915100000' });
    await sync(p, 0);
    const id = (email: string) => hub.contacts.get(email)!.id;
    expect(await snapshotMeta(p)).toEqual({
      '1': { id: id('user1@example.com'), created: true },
      '2': { id: id('user2@example.com'), created: true },
      '3': { id: theirs.id },
    });

    await rebuild(p, people(3).replace('User 1,10', 'User One,10').replace('User 3,30', 'User Three,30'));
    expect(await sync(p, 0)).toMatchObject({ succeeded: { change: 2 } });
    expect(hub.requests.at(-1)!.body.inputs.map((i: any) => i.objectWriteTraceId)).toEqual(['1', '3']);
    expect(await snapshotMeta(p)).toEqual({
      '1': { id: id('user1@example.com'), created: true },
      '2': { id: id('user2@example.com'), created: true },
      '3': { id: theirs.id },
    });
  });

  it('splits 250 records into batches of at most 100 (the declared cap is the default batch size)', async () => {
    const p = await setup(250, [['batch_size: 100\n', '']]);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', succeeded: { add: 250 } });
    expect(hub.requests.map((r) => `${r.status} ${r.body.inputs.length}`)).toEqual(['200 100', '200 100', '200 50']);
    expect(hub.contacts.size).toBe(250);
    expect(await snapshotKeys(p)).toEqual(keys(250));
  });

  it('honours Retry-After on a 429 RATE_LIMIT, and retries 5xx', async () => {
    const p = await setup(3);
    hub.rateLimitNext(1, '1').failNext(1, 502);
    const d = await sync(p, 0);
    expect(d.succeeded.add).toBe(3);
    expect(hub.requests.map((r) => r.status)).toEqual([429, 502, 200]);
    expect(hub.requests[1]!.at - hub.requests[0]!.at).toBeGreaterThanOrEqual(1000);
    expect(hub.requests[2]!.body).toEqual(hub.requests[0]!.body);
  });

  it('stores 207 per-record errors with reasons and retries them on the next run', async () => {
    const p = await setup(4);
    hub.rejectEmails(['user3@example.com'], 'Property values were not valid');
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 3 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '3', op: 'add', reason: 'VALIDATION_ERROR: Property values were not valid (INVALID_EMAIL: user3@example.com is not valid)' }]);
    expect(hub.requests[0]!.status).toBe(207);
    expect(await snapshotKeys(p)).toEqual(['1', '2', '4']);
    expect(await p.query(`SELECT primary_key, attempts, status FROM cdp_sync.rejections`)).toEqual([{ primary_key: '3', attempts: 1, status: 'rejected' }]);

    hub.reset();
    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(1);
    expect(hub.requests.at(-1)!.body.inputs.map((i: any) => i.id)).toEqual(['user3@example.com']);
    expect(await snapshotKeys(p)).toEqual(keys(4));
  });

  it('stops on 401 without retrying, state intact; the rest goes once the token works', async () => {
    const p = await setup(6, [['batch_size: 100', 'batch_size: 2']]);
    hub.passNext(1).failNext(1, 401);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'failed', succeeded: { add: 2 } });
    expect(d.message).toMatch(/authentication failed \(401\): POST \/crm\/v3\/objects\/contacts\/batch\/upsert answered 401 EXPIRED_AUTHENTICATION: scripted 401; stopped sending/);
    expect(hub.requests.map((r) => r.status)).toEqual([200, 401]);
    expect(await snapshotKeys(p)).toEqual(['1', '2']);
    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(4);
    expect(hub.contacts.size).toBe(6);
    expect(await snapshotKeys(p)).toEqual(keys(6));
  });

  it('a wrong token is a 401 at the first call: nothing acknowledged', async () => {
    const p = await setup(2);
    const d = await withEnv('CDP_HUBSPOT_TOKEN', 'pat-na1-wrong-token', () => sync(p, 1));
    expect(d.status).toBe('failed');
    expect(hub.requests.map((r) => r.status)).toEqual([401]);
    expect(await snapshotKeys(p)).toEqual([]);
  });
});

describe('bad hubspot contracts (exit 2, file and key, nothing sent)', () => {
  suite.itRejects([
    ['a batch size above 100', [['batch_size: 100', 'batch_size: 500']], /crm_hubspot\.yml:\d+ \(key `batch_size`\): `batch_size` 500 is above the `hubspot` destination's cap of 100/],
    ['a literal token', [[`'{{ env "CDP_HUBSPOT_TOKEN" }}'`, TOKEN]], /\(key `options\.token`\): `options\.token` must be an env reference/],
    ['an unset token variable', [['CDP_HUBSPOT_TOKEN', 'CDP_NO_SUCH_TOKEN']], /\(key `options\.token`\): `options\.token` names environment variable CDP_NO_SUCH_TOKEN, which is not set/],
    ['an unsupported mode', [['mode: mirror', 'mode: insert']], /\(key `mode`\)/],
  ]);
});
