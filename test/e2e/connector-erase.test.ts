import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Destination, DestinationType, OutboundRecord, RecordMeta } from '../../src/destinations/destination.js';
import { DeliveryError } from '../../src/destinations/errors.js';
import { fileDestination } from '../../src/destinations/file.js';
import { hubspotDestination } from '../../src/destinations/hubspot.js';
import { webhookDestination } from '../../src/destinations/webhook.js';
import { FakeHubSpot } from '../fakes/hubspot-server.js';
import { FakeWebhook } from '../fakes/webhook-server.js';
import { connectorPool, outbound, payloadHash as hashOf, useEnv } from '../helpers/connector-project.js';
import { duckdbProject, expectCode, projectPool } from '../helpers/project.js';

/**
 * Privacy erasures (`removal: 'erase'`) through the file, webhook and hubspot connectors, sent
 * directly with `open(...).send(...)` (the engine does not produce them yet), and the file
 * fixture contract run through `cdp sync`.
 */
const TOKEN = 'pat-na1-erase-test-token-4f2a';
const SECRET = 'whsec_erase_test_9c1d';
const FIXTURES = path.join(import.meta.dirname, '../fixtures/destinations');
const track = projectPool();
const openConnector = connectorPool();

let hub: FakeHubSpot | undefined;
let hook: FakeWebhook | undefined;
const dirs: string[] = [];

useEnv({ CDP_HUBSPOT_TOKEN: TOKEN, CDP_WEBHOOK_SECRET: SECRET });
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await hub?.stop();
  await hook?.stop();
  hub = hook = undefined;
});

/** A record as the engine builds it; a remove here is an erasure unless `extra` says otherwise. */
const record = (op: OutboundRecord['op'], key: string, payload: Record<string, unknown>, extra: Partial<OutboundRecord> = {}) =>
  outbound(op, key, payload, { ...(op === 'remove' ? { removal: 'erase' as const } : {}), ...extra });

const erase = (key: string, payload: Record<string, unknown>, meta?: RecordMeta) => record('remove', key, payload, meta ? { meta } : {});

const open = (type: DestinationType, options: Record<string, unknown>, projectRoot = os.tmpdir()) => openConnector(type, options, { mode: 'mirror', projectRoot });

const contact = (email: string, firstname: string, score: number) => ({ email, firstname, score });

describe('hubspot: erase', () => {
  async function hubspot(): Promise<{ hs: FakeHubSpot; connector: Destination }> {
    hub = await new FakeHubSpot(TOKEN).start();
    return { hs: hub, connector: await open(hubspotDestination, { base_url: hub.url, token: '{{ env "CDP_HUBSPOT_TOKEN" }}' }) };
  }

  it('upserts return the HubSpot id, with created only for contacts the upsert created', async () => {
    const { hs, connector } = await hubspot();
    const theirs = hs.addContact('theirs@example.com', { phone: '+4915100000' });
    const results = await connector.send([record('add', '1', contact('ours@example.com', 'Ours', 10)), record('add', '2', contact('theirs@example.com', 'Theirs', 20))]);
    const ours = hs.contacts.get('ours@example.com')!;
    expect(results).toEqual(expect.arrayContaining([{ key: '1', ok: true, meta: { id: ours.id, created: true } }, { key: '2', ok: true, meta: { id: theirs.id } }]));
    expect(hs.requests[0]!.body.inputs.map((i: any) => i.objectWriteTraceId)).toEqual(['1', '2']);

    // A later update of our contact: new is false, so only the id comes back (the engine keeps created).
    expect(await connector.send([record('change', '1', contact('ours@example.com', 'Ours', 11), { meta: { id: ours.id, created: true } })])).toEqual([{ key: '1', ok: true, meta: { id: ours.id } }]);
    // Our contact was merged away in HubSpot: the upsert lands on another contact, which is not ours.
    expect(await connector.send([record('change', '2', contact('theirs@example.com', 'Theirs', 21), { meta: { id: '424242', created: true } })])).toEqual([{ key: '2', ok: true, meta: { id: theirs.id, created: false } }]);
  });

  it('counts an add HubSpot answers `new: false` as created when the contact\'s createdAt is at or after unacknowledgedSince (an unacknowledged attempt created it); never a change', async () => {
    hub = await new FakeHubSpot(TOKEN).start();
    const since = new Date();
    const theirs = hub.addContact('theirs@example.com', {}, new Date(since.getTime() - 60_000));
    // Created by a killed run: its answer (new: true) was never committed.
    const unacknowledged = hub.addContact('ours@example.com', {}, since);
    const updated = hub.addContact('updated@example.com', {}, since);
    const connector = await openConnector(hubspotDestination, { base_url: hub.url, token: '{{ env "CDP_HUBSPOT_TOKEN" }}' }, { mode: 'mirror', unacknowledgedSince: since });
    const results = await connector.send([
      record('add', '1', contact('theirs@example.com', 'Theirs', 10)),
      record('add', '2', contact('ours@example.com', 'Ours', 20)),
      record('add', '3', contact('new@example.com', 'New', 30)),
      record('change', '4', contact('updated@example.com', 'Updated', 40), { meta: { id: updated.id } }),
    ]);
    expect(hub.requests[0]!.status).toBe(200);
    expect(results).toEqual([
      { key: '1', ok: true, meta: { id: theirs.id } },
      { key: '2', ok: true, meta: { id: unacknowledged.id, created: true } },
      { key: '3', ok: true, meta: { id: hub.contacts.get('new@example.com')!.id, created: true } },
      { key: '4', ok: true, meta: { id: updated.id } },
    ]);
  });

  it('gdpr-deletes contacts cdp created, by HubSpot id, one call each; clears the mapped properties of the others; never creates or blocklists', async () => {
    const { hs, connector } = await hubspot();
    const theirs = hs.addContact('theirs@example.com', { firstname: 'Theirs', score: '20', phone: '+4915100000' });
    const [added] = await connector.send([record('add', '1', contact('ours@example.com', 'Ours', 10)), record('add', '5', contact('ours2@example.com', 'Ours2', 50))]);
    const ours = hs.contacts.get('ours@example.com')!;
    const ours2 = hs.contacts.get('ours2@example.com')!;
    expect(added).toMatchObject({ ok: true, meta: { created: true } });
    hs.requests.length = 0;

    const results = await connector.send([
      erase('1', contact('ours@example.com', 'Ours', 10), { id: ours.id, created: true }),
      erase('2', contact('theirs@example.com', 'Theirs', 20), { id: theirs.id }),
      erase('3', contact('gone@example.com', 'Gone', 30)),
      erase('4', contact('deleted@example.com', 'Deleted', 40), { id: '999999', created: true }),
      erase('5', contact('ours2@example.com', 'Ours2', 50), { id: ours2.id, created: true }),
    ]);
    expect(results.sort((a, b) => a.key.localeCompare(b.key))).toEqual(['1', '2', '3', '4', '5'].map((key) => ({ key, ok: true })));

    const calls = hs.requests.map((r) => `${r.path} ${r.status}`);
    expect(calls).toEqual([
      '/crm/v3/objects/contacts/batch/read 207',
      '/crm/v3/objects/contacts/batch/upsert 200',
      '/crm/v3/objects/contacts/gdpr-delete 204',
      '/crm/v3/objects/contacts/gdpr-delete 404',
      '/crm/v3/objects/contacts/gdpr-delete 204',
    ]);
    const [read, clear, ...deletes] = hs.requests;
    expect(read!.body.inputs).toEqual([{ id: 'theirs@example.com' }, { id: 'gone@example.com' }]);
    // Only the contact that exists is cleared: the id property stays, cdp's properties become "".
    expect(clear!.body.inputs).toEqual([{ idProperty: 'email', id: 'theirs@example.com', properties: { email: 'theirs@example.com', firstname: '', score: '' }, objectWriteTraceId: '2' }]);
    expect(deletes.map((r) => r.body)).toEqual([{ objectId: ours.id }, { objectId: '999999' }, { objectId: ours2.id }]);

    expect(hs.gdprDeleted.map((c) => c.id)).toEqual([ours.id, ours2.id]);
    expect(hs.contacts.get('theirs@example.com')).toEqual({ id: theirs.id, properties: { email: 'theirs@example.com', firstname: '', score: '', phone: '+4915100000' }, createdAt: theirs.createdAt });
    expect(hs.emails()).toEqual(['theirs@example.com']);
    expect([...hs.blocklist]).toEqual([]);
  });

  it('a 429 on gdpr-delete rejects the batch (retried by the engine; a resend is harmless); a 400 rejects that record only', async () => {
    const { hs, connector } = await hubspot();
    const [one, two] = ['one@example.com', 'two@example.com'].map((e) => hs.addContact(e));
    const batch = [erase('1', contact('one@example.com', 'One', 1), { id: one!.id, created: true }), erase('2', contact('two@example.com', 'Two', 2), { id: two!.id, created: true })];

    hs.passNext(1).rateLimitNext(1, '2');
    const failure = await connector.send(batch).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(DeliveryError);
    expect(failure).toMatchObject({ kind: 'rate_limited', retryAfterMs: 2000 });
    expect(hs.requests.map((r) => r.status)).toEqual([204, 429]);

    hs.failNext(1, 400, JSON.stringify({ status: 'error', category: 'VALIDATION_ERROR', message: 'objectId is not valid' }));
    const results = await connector.send(batch);
    expect(results).toEqual([
      { key: '1', ok: false, reason: 'POST /crm/v3/objects/contacts/gdpr-delete answered 400 VALIDATION_ERROR: objectId is not valid' },
      { key: '2', ok: true },
    ]);
    expect(hs.gdprDeleted.map((c) => c.id)).toEqual([one!.id, two!.id]);
  });
});

describe('webhook: erase', () => {
  it('sends an erasure as op "delete" with the payload last sent, signed and keyed like any record', async () => {
    hook = await new FakeWebhook(SECRET).start();
    const connector = await open(webhookDestination, { url: hook.url, secret: '{{ env "CDP_WEBHOOK_SECRET" }}' });
    const results = await connector.send([
      erase('1', { email: 'gone@example.com', name: 'Gone' }),
      record('remove', '2', { email: 'left@example.com', name: 'Left' }, { removal: 'delete' }),
      record('change', '3', { email: 'kept@example.com', name: 'Kept' }),
    ]);
    expect(results).toEqual(['1', '2', '3'].map((key) => ({ key, ok: true })));
    const [request] = hook.requests;
    // The batch Idempotency-Key is computed over the ops as sent, so a receiver can recompute it.
    expect(request).toMatchObject({ status: 200, signatureValid: true, idempotencyKeyValid: true });
    expect(request!.records).toEqual([
      { op: 'delete', key: '1', idempotency_key: 'idem-remove-1', payload: { email: 'gone@example.com', name: 'Gone' } },
      { op: 'remove', key: '2', idempotency_key: 'idem-remove-2', payload: { email: 'left@example.com', name: 'Left' } },
      { op: 'change', key: '3', idempotency_key: 'idem-change-3', payload: { email: 'kept@example.com', name: 'Kept' } },
    ]);
    expect(hook.deletedKeys()).toEqual(['1']);
  });
});

describe('file: erase', () => {
  const FIXTURE = readFileSync(path.join(FIXTURES, 'file.yml'), 'utf8');
  const fixtureOptions = (parse(FIXTURE) as { options: Record<string, unknown> }).options;

  function outboxLines(root: string, format: string): string[] {
    const dir = path.join(root, String(fixtureOptions['directory']), 'crm');
    return readFileSync(path.join(dir, `run-1.${format}`), 'utf8').split('\n').filter((l) => l !== '');
  }

  it.each(['jsonl', 'csv'])('writes an erasure as a deletion line in %s: op delete, removal erase, the payload last sent', async (format) => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'cdp-erase-'));
    dirs.push(root);
    const connector = await open(fileDestination, { ...fixtureOptions, format }, root);
    const gone = { email: 'gone@example.com', name: 'Gone' };
    const added = { email: 'new@example.com', name: 'New' };
    const results = await connector.send([erase('1', gone), record('add', '2', added)]);
    expect(results).toEqual([{ key: '1', ok: true }, { key: '2', ok: true }]);
    await connector.close();
    const lines = outboxLines(root, format);
    if (format === 'jsonl') {
      expect(lines.map((l) => JSON.parse(l))).toEqual([
        { op: 'delete', key: '1', idempotency_key: 'idem-remove-1', payload_hash: hashOf(gone), removal: 'erase', payload: gone },
        { op: 'add', key: '2', idempotency_key: 'idem-add-2', payload_hash: hashOf(added), payload: added },
      ]);
    } else {
      expect(lines).toEqual([
        'op,key,idempotency_key,payload_hash,removal,payload',
        `delete,1,idem-remove-1,${hashOf(gone)},erase,"{""email"":""gone@example.com"",""name"":""Gone""}"`,
        `add,2,idem-add-2,${hashOf(added)},,"{""email"":""new@example.com"",""name"":""New""}"`,
      ]);
    }
  });

  it('the documented file contract syncs adds and mirror removes to CSV under its directory', async () => {
    const seed = (ids: number[]) => ['id,email,name,score', ...ids.map((i) => `${i}, User${i}@Example.com ,User ${i},${i * 10}`)].join('\n') + '\n';
    const p = track(duckdbProject({
      'seeds/people.csv': seed([1, 2]),
      'models/contacts.sql': 'select id, email, name, score from {{ ref "people" }}\n',
      'destinations/contacts_export.yml': FIXTURE,
    }));
    expectCode(await p.cdp(['build']), 0);
    expectCode(await p.cdp(['sync', '--json']), 0);
    p.write({ 'seeds/people.csv': seed([1]) });
    expectCode(await p.cdp(['build']), 0);
    expectCode(await p.cdp(['sync', '--json']), 0);
    const dir = p.path('target/exports/contacts_export');
    const rows = readdirSync(dir).flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').slice(1).filter((l) => l !== ''));
    expect(rows.map((l) => l.split(',').slice(0, 2).join(',') + ',' + l.split(',')[4]).sort()).toEqual(['add,1,', 'add,2,', 'remove,2,delete']);
    expect(rows.find((l) => l.startsWith('add,1,'))).toContain('""email"":""user1@example.com""');
  });
});
