import { createHash, createHmac } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DestinationType, OutboundRecord } from '../../src/destinations/destination.js';
import { registerDestinationType } from '../../src/destinations/registry.js';
import { DeliveryError } from '../../src/destinations/errors.js';
import { TempProject, duckdbProject, expectCode, output, projectPool } from '../helpers/project.js';

/** Destination contracts, plan and sync on DuckDB against hand-computed expectations (docs/destinations.md). */
const track = projectPool();
const unregister: (() => void)[] = [];
afterEach(() => {
  for (const undo of unregister.splice(0)) undo();
});

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const PEOPLE = [
  'id,profile_id,email,name,score',
  '1,p1, Ana@Example.com ,Ana,10',
  '2,p2,ben@example.com,Ben,20',
  '3,p3,cy@example.com,Cy,30',
  '4,p4,dee@example.com,Dee,40',
].join('\n') + '\n';

const CONSENT = [
  'profile_id,scope,status',
  'p1,email_marketing,granted',
  'p2,email_marketing,granted',
  'p3,email_marketing,granted',
  'p4,email_marketing,revoked',
  'p5,email_marketing,granted',
].join('\n') + '\n';

const CONTRACT = `name: crm
model: contacts
type: file
object: contacts
primary_key: id
mapping:
  email: { column: email, transform: [trim, lower] }
  email_sha256: { column: email, transform: sha256 }
  name: name
  score: { column: score, type: integer }
mode: mirror
batch_size: 2
consent: [email_marketing]
`;

function project(files: Record<string, string> = {}): TempProject {
  return track(duckdbProject({
    'seeds/people.csv': PEOPLE,
    'seeds/consent_state.csv': CONSENT,
    'models/contacts.sql': 'select id, profile_id, email, name, score from {{ ref "people" }}\n',
    'destinations/crm.yml': CONTRACT,
    ...files,
  }));
}

interface OutboxLine {
  op: string;
  key: string;
  idempotency_key: string;
  payload_hash: string;
  removal?: string;
  payload: Record<string, unknown>;
}

function outbox(p: TempProject, destination = 'crm'): { file: string; lines: OutboxLine[] }[] {
  const dir = p.path(`target/outbox/${destination}`);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).sort().map((f) => ({
    file: f,
    lines: readFileSync(path.join(dir, f), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as OutboxLine),
  }));
}

async function planJson(p: TempProject, args: string[] = []): Promise<Record<string, any>> {
  const run = expectCode(await p.cdp(['plan', '--json', ...args]), 0);
  return JSON.parse(run.stdout) as Record<string, any>;
}

async function snapshot(p: TempProject): Promise<Record<string, string>> {
  const rows = await p.query(`SELECT primary_key, payload FROM cdp_sync.snapshots WHERE destination = 'crm' ORDER BY primary_key`);
  return Object.fromEntries(rows.map((r) => [String(r['primary_key']), String(r['payload'])]));
}

describe('cdp plan and cdp sync', () => {
  it('diffs adds, changes and removes (left the model, lost consent) and sends each once', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    const first = await planJson(p);
    const d = first['destinations'][0];
    expect(d).toMatchObject({ destination: 'crm', status: 'planned', planned: { add: 3, change: 0, remove: 0 }, rejected: { consent: 1 }, removed_for_consent: 0 });
    // Keys sort as text; the payload is the mapped fields with transforms applied.
    expect(d.samples.add.map((s: any) => s.primary_key)).toEqual(['1', '2', '3']);
    expect(d.samples.add[0].payload).toEqual({ email: 'ana@example.com', email_sha256: sha('ana@example.com'), name: 'Ana', score: 10 });
    // Plan writes no state.
    expect(await p.query(`SELECT schema_name FROM information_schema.schemata WHERE schema_name = 'cdp_sync'`)).toEqual([]);

    const sync = expectCode(await p.cdp(['sync', '--json']), 0);
    const summary = JSON.parse(sync.stdout);
    expect(summary.destinations[0]).toMatchObject({ planned: { add: 3, change: 0, remove: 0 }, succeeded: { add: 3, change: 0, remove: 0 }, failed: { add: 0, change: 0, remove: 0 } });
    const [file1] = outbox(p);
    expect(file1!.lines.map((l) => `${l.op} ${l.key}`)).toEqual(['add 1', 'add 2', 'add 3']);
    // p4 has no consent: never sent.
    expect(file1!.lines.some((l) => l.key === '4')).toBe(false);
    for (const l of file1!.lines) expect(l.idempotency_key).toBe(sha(`crm|${l.key}|${l.payload_hash}`));

    // Nothing changed: nothing planned, nothing sent, no new file.
    expect((await planJson(p))['destinations'][0].planned).toEqual({ add: 0, change: 0, remove: 0 });
    expectCode(await p.cdp(['sync']), 0);
    expect(outbox(p)).toHaveLength(1);

    // Ben renamed (change), Cy gone (remove: left the model), Eve new (add), Ana revoked consent (remove for consent).
    p.write({
      'seeds/people.csv': PEOPLE.replace('2,p2,ben@example.com,Ben,20', '2,p2,ben@example.com,Benjamin,20').replace('3,p3,cy@example.com,Cy,30\n', '') + '5,p5,eve@example.com,Eve,50\n',
      'seeds/consent_state.csv': CONSENT.replace('p1,email_marketing,granted', 'p1,email_marketing,revoked'),
    });
    expectCode(await p.cdp(['build']), 0);
    const second = (await planJson(p))['destinations'][0];
    expect(second).toMatchObject({ planned: { add: 1, change: 1, remove: 2 }, removed_for_consent: 1, rejected: { consent: 1 } });
    expect(second.samples.remove.map((s: any) => `${s.primary_key} ${s.reason}`)).toEqual(['1 consent', '3 left_model']);
    // A remove carries the payload last sent: the identifiers the destination knows.
    expect(second.samples.remove[0].payload.email).toBe('ana@example.com');

    const text = expectCode(await p.cdp(['plan']), 0).stdout;
    expect(text).toMatch(/planned: 1 add, 1 change, 2 remove \(1 remove\(s\) for lost consent\)/);
    expect(text).toMatch(/rejected before sending: 1 row\(s\) without consent \(email_marketing\)/);

    expectCode(await p.cdp(['sync']), 0);
    const files = outbox(p);
    expect(files).toHaveLength(2);
    expect(files.find((f) => f !== file1 && f.file !== file1!.file)!.lines.map((l) => `${l.op} ${l.key}${l.removal ? ` ${l.removal}` : ''}`).sort())
      .toEqual(['add 5', 'change 2', 'remove 1 delete', 'remove 3 delete']);
    expect(Object.keys(await snapshot(p))).toEqual(['2', '5']);
    const runs = await p.query(`SELECT status, planned_add, planned_change, planned_remove, succeeded_add, succeeded_change, succeeded_remove, excluded_consent FROM cdp_sync.runs ORDER BY started_at`);
    expect(runs.map((r) => Object.values(r).map(Number).slice(1).join(','))).toEqual(['3,0,0,3,0,0,1', '0,0,0,0,0,0,1', '1,1,2,1,1,2,1']);
    expect(runs.every((r) => r['status'] === 'success')).toBe(true);
  });

  it('hashes canonically: reordering the mapping changes nothing, changing it re-sends every row', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    expectCode(await p.cdp(['sync']), 0);
    const reordered = `name: crm
model: contacts
type: file
primary_key: id
batch_size: 2
mode: mirror
consent: [email_marketing]
mapping:
  score: { type: integer, column: score }
  name: { column: name }
  email_sha256: { transform: sha256, column: email }
  email: { transform: [trim, lower], column: email }
`;
    p.write({ 'destinations/crm.yml': reordered });
    expect((await planJson(p))['destinations'][0]).toMatchObject({ planned: { add: 0, change: 0, remove: 0 }, mapping_changed: false });
    // The model's column order does not matter either.
    p.write({ 'models/contacts.sql': 'select score, name, email, profile_id, id from {{ ref "people" }}\n' });
    expectCode(await p.cdp(['build']), 0);
    expect((await planJson(p))['destinations'][0].planned).toEqual({ add: 0, change: 0, remove: 0 });
    // A changed mapping is a change for every synced row.
    p.write({ 'destinations/crm.yml': reordered.replace('name: { column: name }', 'full_name: { column: name }') });
    expect((await planJson(p))['destinations'][0]).toMatchObject({ planned: { add: 0, change: 3, remove: 0 }, mapping_changed: true });
    expect(expectCode(await p.cdp(['plan']), 0).stdout).toMatch(/the mapping changed since the last sync: every synced row is re-sent \(3 change\(s\)\)/);
    // Even when no payload changes (a transform the values already satisfy): a full re-send, once.
    p.write({ 'destinations/crm.yml': reordered.replace('name: { column: name }', 'name: { column: name, transform: [trim] }') });
    expect((await planJson(p))['destinations'][0]).toMatchObject({ planned: { add: 0, change: 3, remove: 0 }, mapping_changed: true });
    const resent = JSON.parse(expectCode(await p.cdp(['sync', '--json']), 0).stdout).destinations[0];
    expect(resent.succeeded).toEqual({ add: 0, change: 3, remove: 0 });
    expect(resent.message).toMatch(/the mapping changed since the last sync: every synced row still in the model was planned as a change/);
    expect((await planJson(p))['destinations'][0]).toMatchObject({ planned: { add: 0, change: 0, remove: 0 }, mapping_changed: false });
  });

  it('a value the warehouse cannot cast stops its own destination, named; the others sync and the summary is printed', async () => {
    const simple = (name: string, mapping: string) => `name: ${name}\nmodel: scores\ntype: file\nprimary_key: id\nmapping:\n  ${mapping}\nmode: mirror\n`;
    const p = track(duckdbProject({
      'models/scores.sql': "select * from (values (1, 'p1', '12'), (2, 'p2', 'abc')) t(id, profile_id, score_text)\n",
      'destinations/a_good.yml': simple('a_good', 's: score_text'),
      'destinations/b_bad.yml': simple('b_bad', 's: { column: score_text, type: integer }'),
      'destinations/c_good.yml': simple('c_good', 's: score_text'),
    }));
    expectCode(await p.cdp(['build']), 0);
    const plan = JSON.parse(expectCode(await p.cdp(['plan', '--json']), 1).stdout);
    expect(plan.destinations.map((d: { destination: string; status: string }) => [d.destination, d.status])).toEqual([['a_good', 'planned'], ['b_bad', 'failed'], ['c_good', 'planned']]);
    const run = expectCode(await p.cdp(['sync', '--json']), 1);
    const summary = JSON.parse(run.stdout);
    expect(summary.destinations.map((d: { destination: string; status: string }) => [d.destination, d.status])).toEqual([['a_good', 'success'], ['c_good', 'success']]);
    expect(summary.errors).toMatchObject([{ destination: 'b_bad' }]);
    expect(run.stderr).toMatch(/Destination `b_bad`: .*Could not convert string 'abc'/);
    expect(outbox(p, 'a_good').flatMap((f) => f.lines)).toHaveLength(2);
    expect(outbox(p, 'c_good').flatMap((f) => f.lines)).toHaveLength(2);
    expect(outbox(p, 'b_bad')).toEqual([]);
  });

  it('writes the payload exactly as planned: a BIGINT above 2^53 keeps its digits, and the line hashes to its payload_hash', async () => {
    const p = track(duckdbProject({
      'models/big.sql': "select 1 as id, CAST(9007199254740993 AS BIGINT) AS big, CAST(1.10 AS DECIMAL(4, 2)) AS price\n",
      'destinations/big.yml': 'name: big\nmodel: big\ntype: file\nprimary_key: id\nmapping:\n  big: big\n  price: price\nmode: mirror\n',
    }));
    expectCode(await p.cdp(['build']), 0);
    expectCode(await p.cdp(['sync']), 0);
    const dir = p.path('target/outbox/big');
    const [line] = readdirSync(dir).flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter((l) => l !== ''));
    const payload = /"payload":(\{.*\})\}$/.exec(line!)![1]!;
    expect(payload).toBe('{"big":9007199254740993,"price":1.1}');
    expect(sha(payload)).toBe((JSON.parse(line!) as OutboxLine).payload_hash);
  });

  it('sends NaN and Infinity as null (JSON has no such numbers) instead of failing the destination on every run', async () => {
    const p = track(duckdbProject({
      'models/odd.sql': "select * from (values (1, 'NaN'::DOUBLE, 'Infinity'::DOUBLE), (2, 2.5, -1.0)) t(id, ratio, score)\n",
      'destinations/odd.yml': 'name: odd\nmodel: odd\ntype: file\nprimary_key: id\nmapping:\n  ratio: ratio\n  score: { column: score, type: number }\nmode: mirror\n',
    }));
    expectCode(await p.cdp(['build']), 0);
    expectCode(await p.cdp(['sync']), 0);
    expect(outbox(p, 'odd').flatMap((f) => f.lines).map((l) => [l.key, l.payload])).toEqual([['1', { ratio: null, score: null }], ['2', { ratio: 2.5, score: -1 }]]);
    expect((await planJson(p))['destinations'][0].planned).toEqual({ add: 0, change: 0, remove: 0 });
  });

  it('max_removes holds back a mass removal (an emptied model) until --allow-mass-removes; consent removals are never held', async () => {
    const p = project({ 'destinations/crm.yml': CONTRACT.replace('batch_size: 2', 'batch_size: 2\nmax_removes: "50%"') });
    expectCode(await p.cdp(['build']), 0);
    expectCode(await p.cdp(['sync']), 0);
    // Upstream broke: the model is empty. 3 of 3 synced rows would be deleted.
    p.write({ 'models/contacts.sql': 'select id, profile_id, email, name, score from {{ ref "people" }} where false\n' });
    expectCode(await p.cdp(['build']), 0);
    const plan = expectCode(await p.cdp(['plan']), 1);
    expect(output(plan)).toMatch(/Destination `crm`: 3 row\(s\) left model `contacts`, more than `max_removes: 50%` allows \(3 synced\); nothing was sent/);
    const blocked = expectCode(await p.cdp(['sync']), 1);
    expect(output(blocked)).toMatch(/crm\.yml \(key `max_removes`\)/);
    expect(output(blocked)).toMatch(/--allow-mass-removes/);
    expect(Number((await p.query(`SELECT COUNT(*) AS n FROM cdp_sync.snapshots`))[0]!['n'])).toBe(3);
    // One removal is within the limit, and a lost consent is always removed, whatever the limit.
    p.write({ 'models/contacts.sql': 'select id, profile_id, email, name, score from {{ ref "people" }} where id <> 3\n', 'seeds/consent_state.csv': CONSENT.replace('p2,email_marketing,granted', 'p2,email_marketing,revoked') });
    expectCode(await p.cdp(['build']), 0);
    expect(JSON.parse(expectCode(await p.cdp(['sync', '--json']), 0).stdout).destinations[0]).toMatchObject({ succeeded: { remove: 2 }, removed_for_consent: 1 });
    // Intended: allowed once.
    p.write({ 'models/contacts.sql': 'select id, profile_id, email, name, score from {{ ref "people" }} where false\n' });
    expectCode(await p.cdp(['build']), 0);
    expect(JSON.parse(expectCode(await p.cdp(['sync', '--json', '--allow-mass-removes']), 0).stdout).destinations[0].succeeded.remove).toBe(1);
    expect(Number((await p.query(`SELECT COUNT(*) AS n FROM cdp_sync.snapshots`))[0]!['n'])).toBe(0);
  });

  it('refuses a max_removes that is neither a count nor a percentage (file and key)', async () => {
    const p = project({ 'destinations/crm.yml': CONTRACT + 'max_removes: lots\n' });
    const run = expectCode(await p.cdp(['compile']), 2);
    expect(run.stderr).toMatch(/crm\.yml:\d+ \(key `max_removes`\): `max_removes` must be a number of rows/);
  });

  it('rejects duplicate and NULL primary keys with a count and examples, sending nothing (exit 1)', async () => {
    const p = project({ 'seeds/people.csv': PEOPLE + '2,p2,b2@example.com,Ben2,1\n3,p3,c2@example.com,Cy2,1\n,p1,x@example.com,X,1\n' });
    expectCode(await p.cdp(['build']), 0);
    const plan = expectCode(await p.cdp(['plan']), 1);
    expect(output(plan)).toMatch(/1 row\(s\) with a NULL primary key and 2 duplicated primary key\(s\), e\.g\. "2" \(2 rows\), "3" \(2 rows\) in `id`/);
    expect(output(plan)).toMatch(/crm\.yml \(key `primary_key`\)/);
    const json = JSON.parse(expectCode(await p.cdp(['plan', '--json']), 1).stdout);
    expect(json.destinations[0]).toMatchObject({ destination: 'crm', status: 'failed' });
    const sync = expectCode(await p.cdp(['sync']), 1);
    expect(output(sync)).toMatch(/nothing was planned or sent/);
    expect(outbox(p)).toEqual([]);
    expect(await p.query(`SELECT COUNT(*) AS n FROM cdp_sync.snapshots`)).toEqual([{ n: 0n }]);
  });

  it('fails the plan when a mapped column is missing from the model (schema drift)', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    p.write({ 'models/contacts.sql': 'select id, profile_id, email, score from {{ ref "people" }}\n' });
    expectCode(await p.cdp(['build']), 0);
    const run = expectCode(await p.cdp(['sync']), 1);
    expect(output(run)).toMatch(/model `contacts` has no column `name` \(mapping\.name\); nothing was sent/);
    expect(outbox(p)).toEqual([]);
    // The failed attempt is in the history, and records no mapping.
    const history = JSON.parse(expectCode(await p.cdp(['sync', 'history', '--json']), 0).stdout);
    expect(history.runs).toMatchObject([{ destination: 'crm', status: 'failed', planned: { add: 0, change: 0, remove: 0 } }]);
    expect(history.runs[0].message).toMatch(/has no column `name`/);
    expect(await p.query(`SELECT mapping_hash FROM cdp_sync.runs`)).toEqual([{ mapping_hash: null }]);
  });

  it('prints the plan as markdown for a pull-request comment', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    const md = expectCode(await p.cdp(['plan', '--format', 'markdown']), 0).stdout;
    expect(md).toContain('| destination | model | type | mode | add | change | remove | removed for consent | rejected (consent) |');
    expect(md).toContain('| crm | contacts | file | mirror | 3 | 0 | 0 | 0 | 1 |');
    expect(md).toMatch(/<details><summary>crm: samples<\/summary>/);
    expect(md).toContain('{"primary_key":"1","payload":{"email":"ana@example.com"');
    const both = expectCode(await p.cdp(['plan', '--json', '--format', 'markdown']), 2);
    expect(both.stderr).toMatch(/--json and --format markdown ask for two outputs/);
  });

  it('selects destinations by name or by their model, and writes CSV when asked', async () => {
    const p = project({ 'destinations/other.yml': CONTRACT.replace('name: crm', 'name: other').replace('batch_size: 2', 'batch_size: 2\noptions: { format: csv }') });
    expectCode(await p.cdp(['build']), 0);
    expect((await planJson(p, ['--select', 'other']))['destinations'].map((d: any) => d.destination)).toEqual(['other']);
    expect((await planJson(p, ['--select', 'contacts']))['destinations'].map((d: any) => d.destination)).toEqual(['crm', 'other']);
    expect((await planJson(p, ['--exclude', 'crm']))['destinations'].map((d: any) => d.destination)).toEqual(['other']);
    expectCode(await p.cdp(['sync', '--select', 'other']), 0);
    expect(outbox(p, 'crm')).toEqual([]);
    const dir = p.path('target/outbox/other');
    const csv = readFileSync(path.join(dir, readdirSync(dir)[0]!), 'utf8').split('\n');
    expect(csv[0]).toBe('op,key,idempotency_key,payload_hash,removal,payload');
    expect(csv[1]).toMatch(/^add,1,[0-9a-f]{64},[0-9a-f]{64},,"\{""email"":""ana@example\.com""/);
  });
});

describe('per-record rejections (a fake connector)', () => {
  it('stores rejected records with reasons, keeps their state, retries them on the next run, exit 1', async () => {
    const received: OutboundRecord[][] = [];
    const rejecting = new Set(['2']);
    const fake: DestinationType = {
      type: 'fake_crm',
      capabilities: { modes: ['upsert', 'mirror'], maxBatchSize: 10, fields: ['email', 'name', 'score', 'email_sha256'] },
      validateOptions: () => [],
      open: async () => ({
        capabilities: fake.capabilities,
        send: async (batch) => {
          received.push([...batch]);
          return batch.map((r) => (rejecting.has(r.key) ? { key: r.key, ok: false as const, reason: 'INVALID_EMAIL: rejected by fake' } : { key: r.key, ok: true as const }));
        },
        close: async () => undefined,
      }),
    };
    unregister.push(registerDestinationType(fake));
    const p = project({ 'destinations/crm.yml': CONTRACT.replace('type: file', 'type: fake_crm') });
    expectCode(await p.cdp(['build']), 0);

    const run = expectCode(await p.cdp(['sync', '--json']), 1);
    const summary = JSON.parse(run.stdout);
    expect(summary.status).toBe('failed');
    expect(summary.destinations[0]).toMatchObject({ status: 'partial', planned: { add: 3 }, succeeded: { add: 2 }, failed: { add: 1 } });
    expect(summary.destinations[0].rejections).toEqual([{ primary_key: '2', op: 'add', reason: 'INVALID_EMAIL: rejected by fake' }]);
    // Batches of batch_size, and the engine never hands over a row without consent.
    expect(received.map((b) => b.map((r) => r.key))).toEqual([['1', '2'], ['3']]);
    expect(Object.keys(await snapshot(p))).toEqual(['1', '3']);

    expectCode(await p.cdp(['sync']), 1);
    expect(received.at(-1)!.map((r) => r.key)).toEqual(['2']);
    const rejections = await p.query(`SELECT primary_key, op, reason, attempts FROM cdp_sync.rejections ORDER BY attempts`);
    expect(rejections).toEqual([
      { primary_key: '2', op: 'add', reason: 'INVALID_EMAIL: rejected by fake', attempts: 1 },
      { primary_key: '2', op: 'add', reason: 'INVALID_EMAIL: rejected by fake', attempts: 2 },
    ]);

    rejecting.clear();
    expectCode(await p.cdp(['sync']), 0);
    expect(Object.keys(await snapshot(p))).toEqual(['1', '2', '3']);
    expect(received.flat().some((r) => r.key === '4')).toBe(false);
  });

  it('stops cleanly with state intact when the connector throws', async () => {
    let calls = 0;
    const fake: DestinationType = {
      type: 'flaky',
      capabilities: { modes: ['mirror'], maxBatchSize: 10, fields: 'any' },
      validateOptions: () => [],
      open: async () => ({
        capabilities: fake.capabilities,
        send: async (batch) => {
          if (++calls === 2) throw new Error('401 Unauthorized: token expired');
          return batch.map((r) => ({ key: r.key, ok: true as const }));
        },
        close: async () => undefined,
      }),
    };
    unregister.push(registerDestinationType(fake));
    const p = project({ 'destinations/crm.yml': CONTRACT.replace('type: file', 'type: flaky') });
    expectCode(await p.cdp(['build']), 0);
    const run = expectCode(await p.cdp(['sync']), 1);
    expect(run.stdout).toMatch(/crm: FAILED/);
    expect(run.stdout).toMatch(/401 Unauthorized: token expired; state kept up to the last acknowledged batch/);
    expect(Object.keys(await snapshot(p))).toEqual(['1', '2']);
    expectCode(await p.cdp(['sync']), 0);
    expect(Object.keys(await snapshot(p))).toEqual(['1', '2', '3']);
  });
});

describe('destinations that cannot deduplicate (deduplicates: false)', () => {
  it('never resends a batch whose outcome a failure left unknown, until --resend-in-doubt', async () => {
    const delivered: string[] = [];
    let failNext = false;
    const fake: DestinationType = {
      type: 'events_fake',
      capabilities: { modes: ['insert'], maxBatchSize: 10, fields: 'any', deduplicates: false },
      validateOptions: () => [],
      open: async () => ({
        capabilities: fake.capabilities,
        send: async (batch) => {
          // The platform applies the batch, then the answer is lost (a 502 from a proxy).
          delivered.push(...batch.map((r) => r.key));
          if (failNext) {
            failNext = false;
            throw new DeliveryError('POST /events answered 502', 'server', 502);
          }
          return batch.map((r) => ({ key: r.key, ok: true as const }));
        },
        close: async () => undefined,
      }),
    };
    unregister.push(registerDestinationType(fake));
    const p = project({ 'destinations/crm.yml': CONTRACT.replace('type: file', 'type: events_fake').replace('mode: mirror', 'mode: insert') });
    expectCode(await p.cdp(['build']), 0);
    failNext = true;
    // A 5xx is not retried for such a destination: the batch may have been applied.
    const first = JSON.parse(expectCode(await p.cdp(['sync', '--json']), 1).stdout).destinations[0];
    expect(first.status).toBe('failed');
    expect(delivered).toEqual(['1', '2']);
    expect((await p.query(`SELECT primary_key FROM cdp_sync.in_doubt ORDER BY 1`)).map((r) => r['primary_key'])).toEqual(['1', '2']);

    // Held back and said so: partial, exit 1, until someone checks the platform.
    const second = JSON.parse(expectCode(await p.cdp(['sync', '--json']), 1).stdout).destinations[0];
    expect(second).toMatchObject({ status: 'partial', in_doubt: 2, planned: { add: 1 }, succeeded: { add: 1 } });
    expect(second.message).toMatch(/2 record\(s\) in doubt not sent.*--resend-in-doubt/);
    expect(delivered).toEqual(['1', '2', '3']);

    const third = JSON.parse(expectCode(await p.cdp(['sync', '--json', '--resend-in-doubt']), 0).stdout).destinations[0];
    expect(third).toMatchObject({ in_doubt: 0, succeeded: { add: 2 } });
    expect(delivered).toEqual(['1', '2', '3', '1', '2']);
    expect(await p.query(`SELECT * FROM cdp_sync.in_doubt`)).toEqual([]);
    expect(JSON.parse(expectCode(await p.cdp(['plan', '--json']), 0).stdout).destinations[0].planned).toEqual({ add: 0, change: 0, remove: 0 });
  });
});

describe('token fields (keyed HMAC, docs/privacy.md)', () => {
  it('sends HMAC-SHA256(key, lower(trim(value))) and needs the key', async () => {
    const key = 'token-test-key-0123456789abcdef';
    const p = project({ 'destinations/crm.yml': CONTRACT.replace('email_sha256: { column: email, transform: sha256 }', 'email_token: { column: email, transform: [token] }') });
    expectCode(await p.cdp(['build']), 0);
    expect(output(expectCode(await p.cdp(['plan'], { CDP_PRIVACY_KEY: '' }), 2))).toMatch(/CDP_PRIVACY_KEY is not set: destination `crm` \(a field mapped through `token`\)/);
    expectCode(await p.cdp(['sync'], { CDP_PRIVACY_KEY: key }), 0);
    const sent = outbox(p).flatMap((f) => f.lines);
    const ana = sent.find((l) => l.key === '1')!;
    expect(ana.payload['email_token']).toBe(createHmac('sha256', key).update('ana@example.com').digest('hex'));
    expect(JSON.stringify(sent)).not.toContain(key);
  });
});

describe('the sync lock', () => {
  const lock = (p: TempProject, holder: string, age: string) =>
    p.query(`INSERT INTO cdp_sync.locks VALUES ('crm', '${holder}', CAST(timezone('UTC', current_timestamp) AS TIMESTAMP) - INTERVAL ${age})`);

  it('refuses a second sync of the same destination (exit 5), and takes over stale locks', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    expect(output(expectCode(await p.cdp(['sync', '--select', 'no_such_destination']), 2))).toMatch(/no_such_destination/);
    p.write({ 'seeds/people.csv': 'id,profile_id,email,name,score\n' });
    expectCode(await p.cdp(['build']), 0);
    expectCode(await p.cdp(['sync']), 0); // creates cdp_sync with nothing to send
    p.write({ 'seeds/people.csv': PEOPLE });
    expectCode(await p.cdp(['build']), 0);

    // Held by a live process on this host (this test runner), 5 minutes ago.
    await lock(p, `${os.hostname()}:${process.pid}:other-run`, `'5 minutes'`);
    const busy = expectCode(await p.cdp(['sync']), 5);
    expect(output(busy)).toMatch(/Destination `crm` is being synced by another process \(lock held by .*:other-run, last refreshed .*\); nothing was sent/);
    expect(outbox(p)).toEqual([]);
    // Plan is read-only and ignores the lock.
    expectCode(await p.cdp(['plan']), 0);

    // Not refreshed for longer than STALE_LOCK_MINUTES: stale, taken over.
    await p.query(`DELETE FROM cdp_sync.locks`);
    await lock(p, `${os.hostname()}:${process.pid}:old-run`, `'2 hours'`);
    expectCode(await p.cdp(['sync']), 0);
    expect(outbox(p)).toHaveLength(1);
    expect(await p.query(`SELECT * FROM cdp_sync.locks`)).toEqual([]);
  });

  it('takes over the lock of a dead process on this host', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    expectCode(await p.cdp(['sync']), 0);
    await lock(p, `${os.hostname()}:2147483646:killed-run`, `'1 minute'`);
    p.write({ 'seeds/people.csv': PEOPLE + '5,p5,eve@example.com,Eve,50\n' });
    expectCode(await p.cdp(['build']), 0);
    expectCode(await p.cdp(['sync']), 0);
    expect(Object.keys(await snapshot(p))).toEqual(['1', '2', '3', '5']);
  });
});

describe('bad destination contracts (exit 2, file and key, nothing sent)', () => {
  const limited: DestinationType = {
    type: 'limited',
    capabilities: { modes: ['upsert'], maxBatchSize: 100, fields: ['email', 'name'] },
    validateOptions: (o) => Object.keys(o).map((key) => ({ key, message: 'is not an option of limited' })),
    open: async () => {
      throw new Error('must not be opened');
    },
  };

  it.each([
    ['an unknown model', CONTRACT.replace('model: contacts', 'model: contact'), /crm\.yml:2 \(key `model`\): `model` names `contact`, which is not a model or seed.*\n.*Did you mean `contacts`/],
    ['an unknown key', CONTRACT + 'schedule: hourly\n', /crm\.yml:\d+ \(key `schedule`\): Unknown key `schedule`/],
    ['an unknown mode', CONTRACT.replace('mode: mirror', 'mode: replace'), /\(key `mode`\): `mode` is `replace`; expected one of: upsert, update, mirror, insert, add_remove/],
    ['a mode the connector lacks', CONTRACT.replace('type: file', 'type: limited').replace('mode: mirror', 'mode: insert'), /\(key `mode`\): The `limited` destination does not support mode `insert`/],
    ['a batch size above the cap', CONTRACT.replace('type: file', 'type: limited').replace('mode: mirror', 'mode: upsert').replace('batch_size: 2', 'batch_size: 500'), /\(key `batch_size`\): `batch_size` 500 is above the `limited` destination's cap of 100/],
    ['a field the connector does not have', CONTRACT.replace('type: file', 'type: limited').replace('mode: mirror', 'mode: upsert'), /\(key `mapping\.email_sha256`\): The `limited` destination has no field `email_sha256`/],
    ['an unknown transform', CONTRACT.replace('transform: sha256', 'transform: md5'), /\(key `mapping\.email_sha256\.transform`\): Unknown transform `md5`/],
    ['an unknown type', CONTRACT.replace('type: file', 'type: fyle'), /\(key `type`\): `type` is `fyle`, which is not a destination type/],
    ['a bad file option', CONTRACT + 'options: { format: xml }\n', /\(key `options\.format`\): `options\.format` must be jsonl or csv/],
    ['on_remove nothing in mirror mode', CONTRACT + 'on_remove: nothing\n', /\(key `on_remove`\): Mode `mirror` deletes rows/],
  ])('rejects %s', async (_name, contract, message) => {
    unregister.push(registerDestinationType(limited));
    const p = project({ 'destinations/crm.yml': contract });
    // Contracts are validated at compile time (docs/destinations.md): build fails too, before anything runs.
    for (const command of ['build', 'plan', 'sync']) {
      const run = expectCode(await p.cdp([command]), 2);
      expect(output(run)).toMatch(message);
    }
    expect(outbox(p)).toEqual([]);
    // Nothing was built, so no warehouse file (and no cdp_sync state) exists.
    expect(existsSync(p.path('target/test.duckdb'))).toBe(false);
  });
});

describe('the repo-root project', () => {
  it('builds, plans and syncs its audience to the file outbox; a second sync sends nothing', async () => {
    const p = track(TempProject.fromRepoRoot());
    p.write({ 'destinations/high_value_outbox.yml': readFileSync(path.join(import.meta.dirname, '../../destinations/high_value_outbox.yml'), 'utf8') });
    expectCode(await p.cdp(['build']), 0);
    const plan = expectCode(await p.cdp(['plan']), 0);
    expect(plan.stdout).toMatch(/high_value_outbox: audience_high_value → file `high_value_customers` \(mode mirror, consent email_marketing\)/);
    const first = JSON.parse(expectCode(await p.cdp(['sync', '--json']), 0).stdout);
    const sent = first.destinations[0].succeeded.add;
    expect(sent).toBeGreaterThan(0);
    expect(outbox(p, 'high_value_outbox')[0]!.lines).toHaveLength(sent);
    const second = JSON.parse(expectCode(await p.cdp(['sync', '--json']), 0).stdout);
    expect(second.destinations[0].planned).toEqual({ add: 0, change: 0, remove: 0 });
    expect(outbox(p, 'high_value_outbox')).toHaveLength(1);
  });
});
