import { describe, expect, it } from 'vitest';
import type { DestinationContext, OutboundRecord, RecordResult } from '../../src/destinations/destination.js';
import { DeliveryError } from '../../src/destinations/errors.js';
import { salesforceDestination } from '../../src/destinations/salesforce.js';
import { FakeSalesforce } from '../fakes/salesforce-server.js';
import { connectorPool, connectorSuite, keys, outbound, people } from '../helpers/connector-project.js';

/**
 * The salesforce connector against a local fake: collections upsert by external id, delete and
 * clear by Salesforce Id (meta), Bulk API 2.0 above the threshold, REQUEST_LIMIT_EXCEEDED / 429 /
 * 5xx retried, per-record errors, 401, token hygiene; `erase` and `update` through the connector.
 */
const TOKEN = '00Dxx0000001gEH!AQ4AQFakeSessionToken.9f8e7d';

let sf: FakeSalesforce;
const suite = connectorSuite({
  env: { CDP_SALESFORCE_TOKEN: TOKEN },
  fixture: 'salesforce.yml',
  destination: 'crm_salesforce',
  start: async () => (sf = await new FakeSalesforce(TOKEN).start()),
  rewrite: (fake) => [['https://acme.my.salesforce.com', fake.url]],
});
const { setup, rebuild, sync, snapshotKeys, snapshotMeta: snapshots } = suite;
const openConnector = connectorPool();

/** The Salesforce Id of the live Contact with this cdp_id__c. */
const idOf = (externalId: string) => [...sf.records.values()].find((r) => r.fields['cdp_id__c'] === externalId)?.Id;
const calls = () => sf.requests.map((r) => `${r.method} ${r.path} ${r.status}`);

describe('the salesforce connector', () => {
  it('upserts by external id with a Bearer token, keeps the Salesforce Id as meta, deletes removed rows by that Id, and never leaks the token', async () => {
    const p = await setup(3);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', planned: { add: 3 }, succeeded: { add: 3 }, failed: { add: 0 } });
    expect(calls()).toEqual(['PATCH /composite/sobjects/Contact/cdp_id__c 200']);
    const [upsert] = sf.requests;
    expect(upsert!.headers['authorization']).toBe(`Bearer ${TOKEN}`);
    expect(upsert!.body.allOrNone).toBe(false);
    expect(upsert!.body.records[0]).toEqual({ attributes: { type: 'Contact' }, Email: 'user1@example.com', LastName: 'User 1', Score__c: 10, cdp_id__c: 'p1' });
    const meta = await snapshots(p);
    expect(meta['1']).toEqual({ id: idOf('p1'), created: true });
    const id2 = idOf('p2');

    // A change: upserted again, landing on the same record, so `created` stays (the engine merges meta).
    // Row 2 leaves the model (mirror): deleted by the Id kept as meta, no lookup.
    await rebuild(p, people(3).replace('1,p1,User1@Example.com,User 1,10', '1,p1,User1@Example.com,User One,10').replace('2,p2,User2@Example.com,User 2,20\n', ''));
    const next = await sync(p, 0);
    expect(next).toMatchObject({ status: 'success', succeeded: { add: 0, change: 1, remove: 1 } });
    expect(calls().slice(1)).toEqual(['PATCH /composite/sobjects/Contact/cdp_id__c 200', 'DELETE /composite/sobjects 200']);
    expect(sf.requests[2]!.query.get('ids')).toBe(id2);
    expect(sf.requests[2]!.query.get('allOrNone')).toBe('false');
    expect([...sf.recycleBin.keys()]).toEqual([id2]);
    expect(sf.byField('cdp_id__c').get('p1')).toMatchObject({ LastName: 'User One' });
    expect(await snapshots(p)).toEqual({ '1': { id: idOf('p1'), created: true }, '3': { id: idOf('p3'), created: true } });
    // Nothing changed: nothing sent.
    await sync(p, 0);
    expect(sf.requests).toHaveLength(3);
    suite.expectNoSecretStored(p);
  });

  it('sends a batch above 200 as several collections calls of at most 200 (the default batch_size is 500)', async () => {
    const p = await setup(450, [['batch_size: 200\n', '']]);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', succeeded: { add: 450 } });
    expect(sf.requests.map((r) => `${r.status} ${r.body.records.length}`)).toEqual(['200 200', '200 200', '200 50']);
    expect(sf.records.size).toBe(450);
    expect(await snapshotKeys(p)).toEqual(keys(450));
  });

  it('upserts a batch above bulk_threshold through one Bulk API 2.0 job, with per-row results from its result CSVs', async () => {
    const p = await setup(12, [['batch_size: 200', 'batch_size: 10'], ['bulk_threshold: 2000', 'bulk_threshold: 5'], ['bulk_poll_interval_ms: 2000', 'bulk_poll_interval_ms: 10']]);
    sf.inProgressPolls = 2;
    sf.rejectExternalIds(['p4'], 'REQUIRED_FIELD_MISSING', 'Required fields are missing: [LastName]', ['LastName']);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 11 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '4', op: 'add', reason: 'REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName--' }]);
    // Batch 1 (10 rows > 5): create, upload, close, poll until JobComplete, both result files. Batch 2 (2 rows): collections.
    const job = [...sf.jobs.keys()][0]!;
    expect(calls()).toEqual([
      'POST /jobs/ingest 200',
      `PUT /jobs/ingest/${job}/batches 201`,
      `PATCH /jobs/ingest/${job} 200`,
      `GET /jobs/ingest/${job} 200`,
      `GET /jobs/ingest/${job} 200`,
      `GET /jobs/ingest/${job} 200`,
      `GET /jobs/ingest/${job} 200`,
      `GET /jobs/ingest/${job}/successfulResults 200`,
      `GET /jobs/ingest/${job}/failedResults 200`,
      'PATCH /composite/sobjects/Contact/cdp_id__c 200',
    ]);
    expect(sf.requests[0]!.body).toEqual({ object: 'Contact', externalIdFieldName: 'cdp_id__c', contentType: 'CSV', operation: 'upsert', lineEnding: 'LF' });
    expect(sf.requests[1]!.headers['content-type']).toBe('text/csv');
    expect(String(sf.requests[1]!.body).split('\n').slice(0, 2)).toEqual(['cdp_id__c,Email,LastName,Score__c', 'p1,user1@example.com,User 1,10']);
    expect(sf.requests[2]!.body).toEqual({ state: 'UploadComplete' });
    expect(sf.jobs.get(job)!.state).toBe('JobComplete');
    expect(await snapshotKeys(p)).toEqual(keys(12).filter((k) => k !== '4'));
    expect((await snapshots(p))['1']).toEqual({ id: idOf('p1'), created: true });

    // The rejected row goes again next run, alone (below the threshold: collections).
    sf.reset();
    expect((await sync(p, 0)).succeeded.add).toBe(1);
    expect(sf.requests.at(-1)!.body.records.map((r: any) => r.cdp_id__c)).toEqual(['p4']);
    expect(sf.records.size).toBe(12);
  });

  it('treats 403 REQUEST_LIMIT_EXCEEDED as rate limiting (retried, not an auth stop), and retries 5xx', async () => {
    const p = await setup(3);
    sf.requestLimitNext(1).failNext(1, 503);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', succeeded: { add: 3 } });
    expect(sf.requests.map((r) => r.status)).toEqual([403, 503, 200]);
    expect(sf.requests[2]!.body).toEqual(sf.requests[0]!.body);
  });

  it('honours Retry-After on a 429', async () => {
    const p = await setup(2);
    sf.rateLimitNext(1, '1');
    expect((await sync(p, 0)).succeeded.add).toBe(2);
    expect(sf.requests.map((r) => r.status)).toEqual([429, 200]);
    expect(sf.requests[1]!.at - sf.requests[0]!.at).toBeGreaterThanOrEqual(1000);
  });

  it('stores per-record errors with their reasons and sends only those again next run', async () => {
    const p = await setup(4);
    sf.rejectExternalIds(['p3'], 'DUPLICATE_VALUE', 'duplicate value found: Email duplicates value on record with id: 003000000000099AAA', ['Email']);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 3 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '3', op: 'add', reason: 'DUPLICATE_VALUE: duplicate value found: Email duplicates value on record with id: 003000000000099AAA (fields: Email)' }]);
    expect(await snapshotKeys(p)).toEqual(['1', '2', '4']);
    expect(await p.query(`SELECT primary_key, attempts, status FROM cdp_sync.rejections`)).toEqual([{ primary_key: '3', attempts: 1, status: 'rejected' }]);

    sf.reset();
    expect((await sync(p, 0)).succeeded.add).toBe(1);
    expect(sf.requests.at(-1)!.body.records.map((r: any) => r.cdp_id__c)).toEqual(['p3']);
    expect(await snapshotKeys(p)).toEqual(keys(4));
  });

  it('stops on 401 INVALID_SESSION_ID without retrying, state intact; the rest goes once the token works', async () => {
    const p = await setup(6, [['batch_size: 200', 'batch_size: 2']]);
    sf.passNext(1).failNext(1, 401);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'failed', succeeded: { add: 2 } });
    expect(d.message).toMatch(/authentication failed \(401\): PATCH \/composite\/sobjects\/Contact\/cdp_id__c answered 401 INVALID_SESSION_ID: Session expired or invalid; stopped sending/);
    expect(sf.requests.map((r) => r.status)).toEqual([200, 401]);
    expect(await snapshotKeys(p)).toEqual(['1', '2']);
    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(4);
    expect(sf.records.size).toBe(6);
    expect(await snapshotKeys(p)).toEqual(keys(6));
  });

  it('is idempotent when an answer is lost after Salesforce processed the upsert: the retry matches the same records, which count as created', async () => {
    const p = await setup(3);
    sf.loseAnswers(1);
    expect((await sync(p, 0)).succeeded.add).toBe(3);
    expect(calls()).toEqual(['PATCH /composite/sobjects/Contact/cdp_id__c 503', 'PATCH /composite/sobjects/Contact/cdp_id__c 200', 'GET /query 200']);
    expect(sf.requests[1]!.body).toEqual(sf.requests[0]!.body);
    expect(sf.records.size).toBe(3);
    // The retry answered created: false; CreatedDate (this run) says the lost attempt created them.
    const ids = ['p1', 'p2', 'p3'].map(idOf);
    expect(sf.requests[2]!.query.get('q')).toBe(`SELECT Id, CreatedDate FROM Contact WHERE Id IN (${ids.map((id) => `'${id}'`).join(', ')})`);
    expect(await snapshots(p)).toEqual(Object.fromEntries(ids.map((id, i) => [String(i + 1), { id, created: true }])));
  });

  it('with on_remove: clear, nulls the mapped fields by Salesforce Id (never re-creating a deleted record)', async () => {
    const p = await setup(3, [['mode: mirror', 'mode: upsert\non_remove: clear']]);
    await sync(p, 0);
    const [id2, id3] = [idOf('p2'), idOf('p3')];
    sf.records.delete(id3!); // deleted in Salesforce meanwhile
    sf.recycleBin.set(id3!, { Id: id3!, type: 'Contact', fields: {} });
    await rebuild(p, 1);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', succeeded: { remove: 2 } });
    expect(calls().at(-1)).toBe('PATCH /composite/sobjects 200');
    expect(sf.requests.at(-1)!.body).toEqual({
      allOrNone: false,
      records: [
        { attributes: { type: 'Contact' }, Email: null, LastName: null, Score__c: null, id: id2 },
        { attributes: { type: 'Contact' }, Email: null, LastName: null, Score__c: null, id: id3 },
      ],
    });
    expect(sf.records.get(id2!)!.fields).toEqual({ cdp_id__c: 'p2', Email: null, LastName: null, Score__c: null });
    expect(sf.records.size).toBe(2);
    expect(await snapshotKeys(p)).toEqual(['1']);
  });
});

describe('bad salesforce contracts (exit 2, file and key, nothing sent)', () => {
  suite.itRejects([
    ['a batch size above the bulk cap of 10000', [['batch_size: 200', 'batch_size: 10001']], /crm_salesforce\.yml:\d+ \(key `batch_size`\): `batch_size` 10001 is above the `salesforce` destination's cap of 10000/],
    ['a literal token', [[`'{{ env "CDP_SALESFORCE_TOKEN" }}'`, TOKEN]], /\(key `options\.access_token`\): `options\.access_token` must be an env reference/],
    ['an unset token variable', [['CDP_SALESFORCE_TOKEN', 'CDP_NO_SUCH_TOKEN']], /\(key `options\.access_token`\): `options\.access_token` names environment variable CDP_NO_SUCH_TOKEN, which is not set/],
    ['no external_id_field', [['  external_id_field: cdp_id__c\n', '']], /\(key `options\.external_id_field`\): `options\.external_id_field` is required/],
    ['a bad api_version', [['api_version: v60.0', 'api_version: "60"']], /\(key `options\.api_version`\): `options\.api_version` must be a REST API version such as v60\.0/],
    ['an unsupported mode', [['mode: mirror', 'mode: insert']], /\(key `mode`\)/],
  ]);

  it('stops with a clear message, nothing sent, when `object` is not an sObject API name', async () => {
    const p = await setup(2, [['object: Contact', 'object: my-contacts']]);
    const d = await sync(p, 1);
    expect(d.status).toBe('failed');
    expect(d.message).toMatch(/`object` "my-contacts" is not a Salesforce sObject API name/);
    expect(sf.requests).toEqual([]);
  });
});

/** The connector called directly: what the engine does not produce yet (erase, update mode). */
describe('the salesforce connector, driven directly', () => {
  const record = (key: string, fields: Record<string, unknown>, extra: Partial<OutboundRecord> = {}): OutboundRecord =>
    outbound(extra.op ?? 'add', key, { cdp_id__c: `p${key}`, ...fields }, extra);

  function open(mode: DestinationContext['mode'] = 'upsert', options: Record<string, unknown> = {}, object = 'Contact') {
    const all = { instance_url: sf.url, access_token: '{{ env "CDP_SALESFORCE_TOKEN" }}', external_id_field: 'cdp_id__c', ...options };
    return openConnector(salesforceDestination, all, { destination: 'crm_salesforce', object, mode });
  }

  const byKey = (results: RecordResult[]) => Object.fromEntries(results.map((r) => [r.key, r.ok ? { ok: true, ...(r.meta ? { meta: r.meta } : {}) } : { ok: false, reason: r.reason }]));

  it('erases what cdp sent: deletes records cdp created (by meta id), clears the mapped fields of any other (by meta id or looked-up Id), creates none', async () => {
    await suite.start();
    const id1 = sf.put('Contact', { cdp_id__c: 'p1', LastName: 'One', Email: 'one@example.com' });
    const id2 = sf.put('Contact', { cdp_id__c: 'P2', LastName: 'Two', Email: 'two@example.com', Phone: '555' }); // external ids match case-insensitively
    const id3 = sf.put('Contact', { cdp_id__c: 'p3', LastName: 'Three' });
    sf.records.delete(id3);
    sf.recycleBin.set(id3, { Id: id3, type: 'Contact', fields: {} });
    const id5 = sf.put('Contact', { cdp_id__c: 'p5', LastName: 'Five', Email: 'five@example.com' });
    const destination = await open();
    const erase = { op: 'remove' as const, removal: 'erase' as const };
    const fields = (n: string) => ({ LastName: n, Email: `${n}@example.com` });
    const results = await destination.send([
      record('1', fields('one'), { ...erase, meta: { id: id1, created: true } }),
      record('2', fields('two'), erase),
      record('3', fields('three'), { ...erase, meta: { id: id3, created: true } }),
      record('4', fields('four'), erase),
      record('5', fields('five'), { ...erase, meta: { id: id5, created: false } }),
    ]);
    expect(byKey(results)).toEqual({ '1': { ok: true }, '2': { ok: true }, '3': { ok: true }, '4': { ok: true }, '5': { ok: true } });
    expect(calls()).toEqual(['GET /query 200', 'PATCH /composite/sobjects 200', 'DELETE /composite/sobjects 200']);
    expect(sf.requests[0]!.query.get('q')).toBe(`SELECT Id, cdp_id__c FROM Contact WHERE cdp_id__c IN ('p2', 'p4')`);
    expect(sf.requests[1]!.body.records).toEqual([
      { attributes: { type: 'Contact' }, Email: null, LastName: null, id: id2 },
      { attributes: { type: 'Contact' }, Email: null, LastName: null, id: id5 },
    ]);
    expect(sf.requests[2]!.query.get('ids')).toBe(`${id1},${id3}`);
    // Deleted: what cdp created. Kept, with cdp's fields cleared: what the CRM's owner had.
    expect([...sf.recycleBin.keys()].sort()).toEqual([id1, id3].sort());
    expect(sf.records.get(id2)!.fields).toEqual({ cdp_id__c: 'P2', LastName: null, Email: null, Phone: '555' });
    expect(sf.records.get(id5)!.fields).toEqual({ cdp_id__c: 'p5', LastName: null, Email: null });
    expect(sf.records.size).toBe(2);
  });

  it('keeps `created` only while upserts land on the record cdp created', async () => {
    await suite.start();
    const destination = await open();
    const [first] = await destination.send([record('1', { LastName: 'One' })]);
    const id1 = idOf('p1')!;
    expect(first).toEqual({ key: '1', ok: true, meta: { id: id1, created: true } });
    const [again] = await destination.send([record('1', { LastName: 'Uno' }, { op: 'change', meta: { id: id1, created: true } })]);
    expect(again).toEqual({ key: '1', ok: true, meta: { id: id1 } });
    // Merged in Salesforce since: the upsert lands on a record cdp did not create.
    sf.records.delete(id1);
    const other = sf.put('Contact', { cdp_id__c: 'p1', LastName: 'Merged' });
    const [moved] = await destination.send([record('1', { LastName: 'Uno' }, { op: 'change', meta: { id: id1, created: true } })]);
    expect(moved).toEqual({ key: '1', ok: true, meta: { id: other, created: false } });
  });

  // A killed run (or a lost answer) created p2; the rerun's upsert answers created: false. CreatedDate tells it from p1, theirs.
  it.each([
    ['sObject Collections', {}, ['PATCH /composite/sobjects/Contact/cdp_id__c 200', 'GET /query 200']],
    ['a Bulk API 2.0 job', { bulk_threshold: 1, bulk_poll_interval_ms: 5 }, ['POST /jobs/ingest 200', 'PUT /jobs/ingest/:id/batches 201', 'PATCH /jobs/ingest/:id 200', 'GET /jobs/ingest/:id 200', 'GET /jobs/ingest/:id 200', 'GET /jobs/ingest/:id 200', 'GET /jobs/ingest/:id/successfulResults 200', 'GET /jobs/ingest/:id/failedResults 200', 'GET /query 200']],
  ])('through %s, an add answered "not created" counts as created when its CreatedDate is at or after unacknowledgedSince (one query, adds only)', async (_path, options, expectedCalls) => {
    await suite.start();
    // Salesforce keeps CreatedDate to the second: a record created in the second the window opened is inside it.
    const since = new Date(Math.floor(Date.now() / 1000) * 1000 + 500);
    const theirs = sf.put('Contact', { cdp_id__c: 'p1', LastName: 'Theirs' }, new Date(since.getTime() - 60_000));
    const unacknowledged = sf.put('Contact', { cdp_id__c: 'p2', LastName: 'Two' }, new Date(since.getTime() - 400));
    const changed = sf.put('Contact', { cdp_id__c: 'p4', LastName: 'Four' }, since);
    const all = { instance_url: sf.url, access_token: '{{ env "CDP_SALESFORCE_TOKEN" }}', external_id_field: 'cdp_id__c', ...options };
    const destination = await openConnector(salesforceDestination, all, { destination: 'crm_salesforce', object: 'Contact', mode: 'upsert', unacknowledgedSince: since });
    const results = await destination.send([
      record('1', { LastName: 'One' }),
      record('2', { LastName: 'Two' }),
      record('3', { LastName: 'Three' }),
      record('4', { LastName: 'Cuatro' }, { op: 'change', meta: { id: changed } }),
    ]);
    expect(byKey(results)).toEqual({
      '1': { ok: true, meta: { id: theirs } },
      '2': { ok: true, meta: { id: unacknowledged, created: true } },
      '3': { ok: true, meta: { id: idOf('p3'), created: true } },
      '4': { ok: true, meta: { id: changed } },
    });
    expect(calls().map((c) => c.replace(/\/750\w+/, '/:id'))).toEqual(expectedCalls);
    // Only the adds Salesforce did not create are looked up.
    expect(sf.requests.at(-1)!.query.get('q')).toBe(`SELECT Id, CreatedDate FROM Contact WHERE Id IN ('${theirs}', '${unacknowledged}')`);
  });

  it('in update mode, updates by meta id or looked-up Id and rejects records Salesforce lacks, creating none', async () => {
    await suite.start();
    const id1 = sf.put('Contact', { cdp_id__c: 'p1', LastName: 'One' });
    sf.put('Contact', { cdp_id__c: 'p2', LastName: 'Two' });
    const id5 = sf.put('Contact', { cdp_id__c: 'p5', LastName: 'Five' });
    sf.records.delete(id5);
    sf.recycleBin.set(id5, { Id: id5, type: 'Contact', fields: {} });
    sf.put('Contact', { cdp_id__c: 'p6', LastName: 'Six' });
    sf.put('Contact', { cdp_id__c: 'p6', LastName: 'Six bis' });
    const destination = await open('update');
    const results = await destination.send([
      record('1', { LastName: 'Uno' }, { op: 'change', meta: { id: id1, created: true } }),
      record('2', { LastName: 'Dos' }),
      record('4', { LastName: 'Cuatro' }),
      record('5', { LastName: 'Cinco' }, { op: 'change', meta: { id: id5 } }),
      record('6', { LastName: 'Seis' }),
    ]);
    const id2 = idOf('p2');
    expect(byKey(results)).toEqual({
      '1': { ok: true, meta: { id: id1 } },
      '2': { ok: true, meta: { id: id2 } },
      '4': { ok: false, reason: 'no Contact with cdp_id__c = "p4"; mode update never creates records' },
      '5': { ok: false, reason: 'ENTITY_IS_DELETED: entity is deleted; mode update never creates records' },
      '6': { ok: false, reason: '2 records of Contact with cdp_id__c = "p6"; cdp does not pick one; mode update never creates records' },
    });
    expect(calls()).toEqual(['GET /query 200', 'PATCH /composite/sobjects 200']);
    expect(sf.requests[1]!.body.records.map((r: any) => r.id)).toEqual([id1, id2, id5]);
    expect(sf.records.size).toBe(4);
    expect(sf.byField('cdp_id__c').get('p2')).toMatchObject({ LastName: 'Dos' });
  });

  it('rejects every row of a bulk job that ends Failed, with the job error, and sends nothing twice', async () => {
    await suite.start();
    sf.failNextJob('InvalidBatch : Field name not found : Score__c');
    const destination = await open(undefined, { bulk_threshold: 1, bulk_poll_interval_ms: 5 });
    const results = await destination.send([record('1', { Score__c: 1 }), record('2', { Score__c: null })]);
    const job = [...sf.jobs.keys()][0]!;
    expect(byKey(results)).toEqual({
      '1': { ok: false, reason: `not processed: bulk job ${job} ended Failed: InvalidBatch : Field name not found : Score__c` },
      '2': { ok: false, reason: `not processed: bulk job ${job} ended Failed: InvalidBatch : Field name not found : Score__c` },
    });
    expect(String(sf.requests[1]!.body)).toBe('cdp_id__c,Score__c\np1,1\np2,#N/A\n');
    expect(sf.records.size).toBe(0);
  });

  it('aborts a bulk job that outlives bulk_timeout_ms and stops (not a retryable error)', async () => {
    await suite.start();
    sf.inProgressPolls = 1000;
    const destination = await open(undefined, { bulk_threshold: 1, bulk_poll_interval_ms: 5, bulk_timeout_ms: 40 });
    const error = await destination.send([record('1', {}), record('2', {})]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(DeliveryError);
    expect((error as Error).message).toMatch(/bulk job \w+ was still InProgress after 40 ms \(bulk_timeout_ms\); it was aborted/);
    expect(calls().at(-1)).toMatch(/^PATCH \/jobs\/ingest\/\w+ 200$/);
    expect(sf.requests.at(-1)!.body).toEqual({ state: 'Aborted' });
  });

  it('classifies answers: REQUEST_LIMIT_EXCEEDED is rate limiting, 401 auth, an unknown object stops', async () => {
    await suite.start();
    const destination = await open();
    sf.requestLimitNext(1).failNext(1, 401);
    await expect(destination.send([record('1', {})])).rejects.toMatchObject({ kind: 'rate_limited', status: 403, retryable: true });
    await expect(destination.send([record('1', {})])).rejects.toMatchObject({ kind: 'auth', status: 401 });
    const unknown = await open(undefined, {}, 'Foo__c');
    const error = await unknown.send([record('1', {})]).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(DeliveryError);
    expect((error as Error).message).toMatch(/^PATCH \/composite\/sobjects\/Foo__c\/cdp_id__c answered 404 NOT_FOUND: The requested resource does not exist \(check `object`/);
  });
});
