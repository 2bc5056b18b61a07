import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Destination, DestinationType, OutboundRecord, RecordResult } from '../../src/destinations/destination.js';
import { DeliveryError } from '../../src/destinations/errors.js';
import { DEFAULT_DELIVERY, type Contract } from '../../src/sync/contract.js';
import { ensureState, idempotencyKey, syncDestination } from '../../src/sync/engine.js';
import { planDestination } from '../../src/sync/plan.js';
import { diffSql, payloadExpression, PLAN_RETENTION_RUNS, prunePlansSql, seqPredicate, staleFingerprintsSql } from '../../src/sync/sql.js';
import { dialectFor } from '../../src/warehouse/engines.js';
import { DuckDbWarehouse } from '../../src/warehouse/duckdb-warehouse.js';
import type { Session } from '../../src/warehouse/warehouse.js';

const contract = (mapping: Contract['mapping']): Contract => ({ mapping } as Contract);

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

describe('sync SQL', () => {
  const d = dialectFor('duckdb');

  it('builds the payload in sorted field order whatever the mapping order', () => {
    const a = payloadExpression(d, contract([
      { target: 'email', column: 'email', transforms: ['trim', 'lower'] },
      { target: 'age', column: 'age', type: 'integer', transforms: [] },
    ]));
    const b = payloadExpression(d, contract([
      { target: 'age', column: 'age', type: 'integer', transforms: [] },
      { target: 'email', column: 'email', transforms: ['trim', 'lower'] },
    ]));
    expect(a).toBe(b);
    expect(a).toBe(`CAST(json_object('age', CAST(m."age" AS BIGINT), 'email', LOWER(CAST(TRIM(CAST(m."email" AS VARCHAR)) AS VARCHAR))) AS VARCHAR)`);
  });

  it('normalises before hashing, and quotes hostile names', () => {
    const sql = payloadExpression(d, contract([{ target: "it's", column: 'e"mail', transforms: ['sha256'] }]));
    expect(sql).toBe(`CAST(json_object('it''s', sha256(LOWER(TRIM(CAST(m."e""mail" AS VARCHAR))))) AS VARCHAR)`);
  });

  it('derives idempotency keys from destination, key and payload hash; a remove never equals the add', () => {
    expect(idempotencyKey('crm', '1', 'add', 'h')).toBe(idempotencyKey('crm', '1', 'change', 'h'));
    expect(idempotencyKey('crm', '1', 'add', 'h')).not.toBe(idempotencyKey('crm', '1', 'remove', 'h'));
    expect(idempotencyKey('crm', '1', 'add', 'h')).not.toBe(idempotencyKey('crm', '1', 'add', 'h2'));
    expect(idempotencyKey('crm', '1', 'add', 'h')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('finds a batch of plan rows by ranges of seq, so the statement stays short', () => {
    expect(seqPredicate('p.seq', [])).toBe('FALSE');
    expect(seqPredicate('p.seq', [7])).toBe('p.seq = 7');
    expect(seqPredicate('p.seq', [3, 1, 2])).toBe('p.seq BETWEEN 1 AND 3');
    expect(seqPredicate('p.seq', [1, 2, 3, 5, 8, 9, 9])).toBe('(p.seq BETWEEN 1 AND 3 OR p.seq = 5 OR p.seq BETWEEN 8 AND 9)');
  });
});

/* The diff, the plan pruning and the delivery loop against DuckDB (in memory). */

let warehouse: DuckDbWarehouse;
let s: Session;
let reader: Session;

beforeAll(async () => {
  warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'test', schema: 'main', threads: 1, path: ':memory:', settings: {} });
  s = await warehouse.session();
  reader = await warehouse.session();
});

afterAll(async () => {
  await reader?.close();
  await s?.close();
  await warehouse?.close();
});

beforeEach(async () => {
  await s.execute('DROP SCHEMA IF EXISTS cdp_sync CASCADE');
  await s.execute('CREATE OR REPLACE TABLE main.people (id INTEGER, profile_id VARCHAR, email VARCHAR, score INTEGER)');
  await s.execute(`CREATE OR REPLACE TABLE main.consent (profile_id VARCHAR, scope VARCHAR, status VARCHAR)`);
  await ensureState(s, dialect(), undefined);
});

function dialect() {
  return warehouse.dialect;
}

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

/** A destination contract over main.people, with a connector that records each batch and acknowledges it (or fails when told). */
function people(overrides: Partial<Contract> = {}): { contract: Contract; batches: OutboundRecord[][]; fail: { next: boolean } } {
  const batches: OutboundRecord[][] = [];
  const fail = { next: false };
  const connector: DestinationType = {
    type: 'fake',
    capabilities: { modes: ['upsert', 'mirror'], maxBatchSize: 100, fields: 'any' },
    validateOptions: () => [],
    open: async (): Promise<Destination> => ({
      capabilities: { modes: ['upsert', 'mirror'], maxBatchSize: 100, fields: 'any' },
      send: async (batch): Promise<RecordResult[]> => {
        if (fail.next) throw new Error('the fake failed the batch');
        batches.push([...batch]);
        return batch.map((r) => ({ key: r.key, ok: true as const, meta: { remote_id: `r${r.key}` } }));
      },
      close: async () => undefined,
    }),
  } as DestinationType;
  const contract = {
    file: 'destinations/crm.yml', name: 'crm', description: '', model: 'people', relation: { schema: 'main', name: 'people' },
    type: 'fake', connector, object: 'contacts', primaryKey: 'id',
    mapping: [{ target: 'email', column: 'email', type: 'string', transforms: [] }, { target: 'score', column: 'score', type: 'integer', transforms: [] }],
    mode: 'mirror', onRemove: 'delete', batchSize: 2, consent: [], options: {},
    delivery: { ...DEFAULT_DELIVERY, concurrency: 3, initialBackoffMs: 1, maxBackoffMs: 2, maxAttempts: 1 }, usesToken: false, mappingHash: 'm1',
    ...overrides,
  } as Contract;
  return { contract, batches, fail };
}

let runs = 0;
function sync(c: Contract) {
  return syncDestination(s, reader, dialect(), c, { runId: `run-${++runs}`, projectRoot: '/nonexistent' });
}

describe('the diff (DuckDB)', () => {
  it('classifies adds, changes, removes and exclusions in one pass; only planned payloads are hashed', async () => {
    const consented = people({ consent: ['email'], consentRelation: { schema: 'main', name: 'consent' } }).contract;
    await s.execute(`INSERT INTO main.people VALUES (1, 'p1', 'a@x', 1), (2, 'p2', 'b@x', 2), (3, 'p3', 'c@x', 3), (4, 'p4', 'd@x', 4), (5, 'p5', 'e@x', 5)`);
    await s.execute(`INSERT INTO main.consent VALUES ('p1', 'email', 'granted'), ('p2', 'email', 'granted'), ('p3', 'email', 'denied'), ('p4', 'email', 'denied'), ('p5', 'email', 'granted')`);
    const payload = (email: string, score: number) => JSON.stringify({ email, score });
    // Acknowledged before: 2 (unchanged), 3 (lost consent), 5 (changed since), 9 (left the model).
    await s.execute(`INSERT INTO cdp_sync.snapshots (destination, primary_key, payload_hash, payload, synced_at, meta, profile_id) VALUES
      ('crm', '2', '${sha(payload('b@x', 2))}', '${payload('b@x', 2)}', now(), NULL, 'p2'),
      ('crm', '3', '${sha(payload('c@x', 3))}', '${payload('c@x', 3)}', now(), '{"remote_id":"r3"}', 'p3'),
      ('crm', '5', '${sha(payload('e@x', 4))}', '${payload('e@x', 4)}', now(), '{"remote_id":"r5"}', 'p5'),
      ('crm', '9', '${sha(payload('z@x', 9))}', '${payload('z@x', 9)}', now(), NULL, 'p9'),
      ('other', '1', 'h', '{}', now(), NULL, 'p1')`);
    const rows = await s.query(`SELECT op, primary_key, payload, payload_hash, reason, send, profile_id, meta FROM (${diffSql(dialect(), consented, { snapshotsExist: true, hasProfileId: true, privacyLedger: false, consentSetAt: false, columnTypes: {}, fingerprints: 'mixed', mappingChanged: false })}) ORDER BY primary_key`);
    expect(rows).toEqual([
      { op: 'add', primary_key: '1', payload: payload('a@x', 1), payload_hash: sha(payload('a@x', 1)), reason: null, send: true, profile_id: 'p1', meta: null },
      { op: 'remove', primary_key: '3', payload: payload('c@x', 3), payload_hash: sha(payload('c@x', 3)), reason: 'consent', send: true, profile_id: 'p3', meta: '{"remote_id":"r3"}' },
      { op: 'excluded', primary_key: '4', payload: null, payload_hash: null, reason: 'consent', send: false, profile_id: 'p4', meta: null },
      { op: 'change', primary_key: '5', payload: payload('e@x', 5), payload_hash: sha(payload('e@x', 5)), reason: null, send: true, profile_id: 'p5', meta: '{"remote_id":"r5"}' },
      { op: 'remove', primary_key: '9', payload: payload('z@x', 9), payload_hash: sha(payload('z@x', 9)), reason: 'left_model', send: true, profile_id: 'p9', meta: null },
    ]);
  });
});

describe('fingerprints (DuckDB)', () => {
  const keysSent = (batches: OutboundRecord[][]) => batches.flat().map((r) => `${r.op}:${r.key}`);
  const staleRows = async () => Number((await s.query(staleFingerprintsSql(dialect(), people().contract, await columnTypes())))[0]!['n']);
  const columnTypes = async () => Object.fromEntries((await s.describe({ schema: 'main', name: 'people' }))!.columns.map((c) => [c.name.toLowerCase(), c.type]));

  it("finds unchanged rows by fingerprint; NULL, '' and a field no longer mapped stay distinct; column order does not matter", async () => {
    const { contract, batches } = people();
    await s.execute(`INSERT INTO main.people VALUES (1, 'p1', NULL, 1), (2, 'p2', '', 2), (3, 'p3', 'x', 3)`);
    expect((await sync(contract)).succeeded).toEqual({ add: 3, change: 0, remove: 0 });
    expect(await s.query(`SELECT COUNT(*) AS n FROM cdp_sync.snapshots WHERE fingerprint IS NULL OR fingerprint_version IS NULL`)).toEqual([{ n: 0 }]);
    expect(await staleRows()).toBe(0);
    expect((await sync(contract)).planned).toEqual({ add: 0, change: 0, remove: 0 });

    batches.length = 0;
    await s.execute(`UPDATE main.people SET email = CASE id WHEN 1 THEN '' WHEN 2 THEN NULL ELSE email END`);
    expect((await sync(contract)).succeeded).toEqual({ add: 0, change: 2, remove: 0 });
    expect(keysSent(batches)).toEqual(['change:1', 'change:2']);
    expect(batches.flat().map((r) => r.payload)).toEqual([{ email: '', score: 1 }, { email: null, score: 2 }]);

    // The same rows in a table whose columns are in another order: nothing changed.
    await s.execute(`CREATE OR REPLACE TABLE main.people AS SELECT score, email, profile_id, id FROM main.people`);
    expect((await sync(contract)).planned).toEqual({ add: 0, change: 0, remove: 0 });

    // A field no longer mapped (missing from the payload) is a change of every row, found by text.
    batches.length = 0;
    const scoreOnly = people({ mapping: [{ target: 'score', column: 'score', type: 'integer', transforms: [] }], mappingHash: 'm2' });
    expect((await sync(scoreOnly.contract)).succeeded).toEqual({ add: 0, change: 3, remove: 0 });
    expect(scoreOnly.batches.flat().map((r) => r.payloadJson)).toEqual(['{"score":1}', '{"score":2}', '{"score":3}']);
  });

  it('migrates a state written by the previous cdp (no fingerprint columns): nothing re-sent, fingerprints filled in', async () => {
    const { contract, batches } = people();
    await s.execute(`INSERT INTO main.people VALUES (1, 'p1', 'a@x', 1), (2, 'p2', 'b@x', 2), (3, 'p3', 'c@x', 3)`);
    await sync(contract);
    // The previous version's layout: the same tables and rows without the two columns.
    for (const table of ['snapshots', 'plans']) for (const column of ['fingerprint', 'fingerprint_version']) await s.execute(`ALTER TABLE cdp_sync.${table} DROP COLUMN ${column}`);
    await s.execute(`UPDATE main.people SET score = 20 WHERE id = 2`);
    // cdp plan migrates nothing: it compares the payload text.
    expect((await planDestination(s, dialect(), contract)).planned).toEqual({ add: 0, change: 1, remove: 0 });

    batches.length = 0;
    expect((await sync(contract)).succeeded).toEqual({ add: 0, change: 1, remove: 0 });
    expect(keysSent(batches)).toEqual(['change:2']);
    expect(await staleRows()).toBe(0);
    expect((await sync(contract)).planned).toEqual({ add: 0, change: 0, remove: 0 });
  });

  it('compares fingerprints another version of the function made (an engine upgrade) by payload text, and refreshes them: nothing is re-sent', async () => {
    const { contract, batches } = people();
    await s.execute(`INSERT INTO main.people VALUES (1, 'p1', 'a@x', 1), (2, 'p2', 'b@x', 2), (3, 'p3', 'c@x', 3)`);
    await sync(contract);
    // What a changed hash function would leave: other fingerprints, under another probe value.
    await s.execute(`UPDATE cdp_sync.snapshots SET fingerprint = fingerprint + 1, fingerprint_version = fingerprint_version + 1`);
    await s.execute(`UPDATE main.people SET email = 'c2@x' WHERE id = 3`);
    expect(await staleRows()).toBe(3);
    expect((await planDestination(s, dialect(), contract)).planned).toEqual({ add: 0, change: 1, remove: 0 });

    batches.length = 0;
    expect((await sync(contract)).succeeded).toEqual({ add: 0, change: 1, remove: 0 });
    expect(keysSent(batches)).toEqual(['change:3']);
    expect(await staleRows()).toBe(0);
    expect((await sync(contract)).planned).toEqual({ add: 0, change: 0, remove: 0 });
  });
});

describe('cdp_sync.plans pruning', () => {
  const planRuns = async () => (await s.query(`SELECT DISTINCT run_id FROM cdp_sync.plans WHERE destination = 'crm' ORDER BY run_id`)).map((r) => String(r['run_id']));
  const runIds = async (where = 'TRUE') => (await s.query(`SELECT run_id FROM cdp_sync.runs WHERE destination = 'crm' AND ${where} ORDER BY started_at`)).map((r) => String(r['run_id']));

  it(`keeps the plans of the last ${PLAN_RETENTION_RUNS} completed runs and of every run after them; deletes older ones at the end of a sync`, async () => {
    const { contract, fail } = people();
    // A failed run first (old: pruned once enough completed runs follow), then completed runs, a failed one among them.
    await s.execute(`INSERT INTO main.people VALUES (0, 'p0', 'start@x', 0)`);
    fail.next = true;
    expect((await sync(contract)).status).toBe('failed');
    fail.next = false;
    for (let i = 1; i <= PLAN_RETENTION_RUNS + 2; i++) {
      // Every run has something to send: one more row.
      await s.execute(`INSERT INTO main.people VALUES (${i}, 'p${i}', 'u${i}@x', ${i})`);
      if (i === PLAN_RETENTION_RUNS + 1) {
        fail.next = true;
        expect((await sync(contract)).status).toBe('failed');
        fail.next = false;
      } else {
        expect((await sync(contract)).status).toBe('success');
      }
    }
    const completed = await runIds(`status IN ('success', 'partial')`);
    const all = await runIds();
    expect(completed).toHaveLength(PLAN_RETENTION_RUNS + 1);
    // Kept: from the PLAN_RETENTION_RUNS-th last completed run on (the failed run after it too).
    const cutoff = all.indexOf(completed[completed.length - PLAN_RETENTION_RUNS]!);
    expect(await planRuns()).toEqual(all.slice(cutoff).sort());
    // Every run is still in cdp_sync.runs.
    expect(all).toHaveLength(PLAN_RETENTION_RUNS + 3);
  });

  it(`deletes nothing while a destination has fewer than ${PLAN_RETENTION_RUNS} completed runs, and never another destination's plans`, async () => {
    const { contract, fail } = people();
    await s.execute(`INSERT INTO main.people VALUES (1, 'p1', 'a@x', 1)`);
    fail.next = true;
    await sync(contract);
    fail.next = false;
    await sync(contract);
    await s.execute(`INSERT INTO cdp_sync.runs (run_id, destination, status, started_at) SELECT 'old-' || i, 'other', 'success', CAST(now() AS TIMESTAMP) - INTERVAL 1 DAY + to_minutes(i) FROM range(10) t(i)`);
    await s.execute(`INSERT INTO cdp_sync.plans (run_id, destination, op, primary_key) VALUES ('old-0', 'other', 'add', '1')`);
    await s.execute(prunePlansSql(dialect(), undefined, 'crm'));
    expect(await planRuns()).toEqual((await runIds()).sort());
    expect(await s.query(`SELECT COUNT(*) AS n FROM cdp_sync.plans WHERE destination = 'other'`)).toEqual([{ n: 1 }]);
    // The other destination's own pruning removes its old run's plan.
    await s.execute(prunePlansSql(dialect(), undefined, 'other'));
    expect(await s.query(`SELECT COUNT(*) AS n FROM cdp_sync.plans WHERE destination = 'other'`)).toEqual([{ n: 0 }]);
  });
});

describe('DuckDB streamColumns', () => {
  it('gives the values and batches stream gives, as columns, across DuckDB chunks', async () => {
    // 5,000 rows span three 2,048-row chunks; a batch of 1,500 is cut from one chunk at a time.
    const sql = `SELECT i AS n, CASE WHEN i % 3 = 0 THEN NULL ELSE 'row ' || i || ' with text longer than twelve bytes' END AS text,
      i % 2 = 0 AS even, i / 4 AS ratio, CAST(i AS INTEGER) AS small, 9007199254740993 + i AS huge, TIMESTAMP '2020-01-01' + INTERVAL (i) SECOND AS at
      FROM range(5000) t(i) ORDER BY i`;
    const rows = (await collect(reader.stream(sql, 1500))).flat();
    const batches = await collect(reader.streamColumns(sql, 1500));
    expect(batches.every((b) => b.rowCount <= 1500)).toBe(true);
    const names = Object.keys(rows[0]!);
    const fromColumns = batches.flatMap((b) => Array.from({ length: b.rowCount }, (_, i) => Object.fromEntries(names.map((name) => [name, b.columns[name]![i]]))));
    expect(fromColumns).toEqual(rows);
    expect(rows[3]).toMatchObject({ n: 3, text: null, even: false, small: 3, huge: '9007199254740996' });
    expect(rows[4]!['at']).toEqual(new Date('2020-01-01T00:00:04Z'));
  });
});

describe('the delivery loop (DuckDB)', () => {
  it('reads the plan in windows that start at a few batches and double, sending every record once, in order', async () => {
    // batch 2, concurrency 1: windows of 4, 8, 16, 32 plan rows; 45 rows end inside the fourth.
    const { contract, batches } = people({ delivery: { ...DEFAULT_DELIVERY, concurrency: 1, maxAttempts: 1 } });
    await s.execute(`INSERT INTO main.people SELECT i, 'p' || i, 'u' || i || '@x', i FROM range(100, 145) t(i)`);
    expect((await sync(contract)).succeeded).toEqual({ add: 45, change: 0, remove: 0 });
    expect(batches.every((b) => b.length === 2 || b === batches.at(-1))).toBe(true);
    expect(batches.flat().map((r) => r.key)).toEqual(Array.from({ length: 45 }, (_, i) => String(100 + i)));
  });

  it('sends in (op, key) order in batches, copies acknowledged rows into the snapshot with their meta, and hands meta back', async () => {
    const { contract, batches } = people();
    await s.execute(`INSERT INTO main.people SELECT i, 'p' || i, 'u' || i || '@x', i FROM range(1, 8) t(i)`);
    const first = await sync(contract);
    expect(first).toMatchObject({ status: 'success', planned: { add: 7, change: 0, remove: 0 }, succeeded: { add: 7, change: 0, remove: 0 } });
    expect(batches.map((b) => b.map((r) => r.key))).toEqual([['1', '2'], ['3', '4'], ['5', '6'], ['7']]);
    const snapshot = await s.query(`SELECT primary_key, payload, payload_hash, meta, profile_id FROM cdp_sync.snapshots WHERE destination = 'crm' ORDER BY primary_key`);
    expect(snapshot).toHaveLength(7);
    expect(snapshot[0]).toEqual({ primary_key: '1', payload: '{"email":"u1@x","score":1}', payload_hash: sha('{"email":"u1@x","score":1}'), meta: '{"remote_id":"r1"}', profile_id: 'p1' });

    batches.length = 0;
    await s.execute(`UPDATE main.people SET score = 100 WHERE id = 2`);
    await s.execute(`DELETE FROM main.people WHERE id IN (5, 6)`);
    const second = await sync(contract);
    expect(second).toMatchObject({ status: 'success', succeeded: { add: 0, change: 1, remove: 2 } });
    expect(batches.flat().map((r) => [r.op, r.key, r.meta])).toEqual([
      ['change', '2', { remote_id: 'r2' }],
      ['remove', '5', { remote_id: 'r5' }],
      ['remove', '6', { remote_id: 'r6' }],
    ]);
    expect((await s.query(`SELECT primary_key FROM cdp_sync.snapshots WHERE destination = 'crm' ORDER BY primary_key`)).map((r) => r['primary_key'])).toEqual(['1', '2', '3', '4', '7']);
    expect(await s.query(`SELECT payload FROM cdp_sync.snapshots WHERE destination = 'crm' AND primary_key = '2'`)).toEqual([{ payload: '{"email":"u2@x","score":100}' }]);
    expect((await sync(contract)).planned).toEqual({ add: 0, change: 0, remove: 0 });
  });
});

describe('a run that cannot go on (DuckDB)', () => {
  it('counts a batch given up as failed, and says how many planned records were not attempted', async () => {
    const { contract, fail } = people({ delivery: { ...DEFAULT_DELIVERY, concurrency: 1, maxAttempts: 1 } });
    await s.execute(`INSERT INTO main.people SELECT i, 'p' || i, 'u' || i || '@x', i FROM range(1, 8) t(i)`);
    fail.next = true;
    const result = await sync(contract);
    expect(result).toMatchObject({ status: 'failed', planned: { add: 7 }, succeeded: { add: 0 }, failed: { add: 2, change: 0, remove: 0 } });
    expect(result.message).toMatch(/the destination failed a batch of 2: the fake failed the batch; .*; 5 planned record\(s\) not attempted: the next sync sends them/);
    fail.next = false;
    expect((await sync(contract)).succeeded).toEqual({ add: 7, change: 0, remove: 0 });
  });

  it('counts only the records of the sub-batch given up as failed, not the half acknowledged before it', async () => {
    const { contract } = people({ batchSize: 2, delivery: { ...DEFAULT_DELIVERY, concurrency: 1, maxAttempts: 1 } });
    await s.execute(`INSERT INTO main.people SELECT i, 'p' || i, 'u' || i || '@x', i FROM range(1, 3) t(i)`);
    // The batch of 2 is rejected whole (400): split; key 1 is acknowledged alone, key 2 gets a 503 and is given up.
    const connector = {
      ...contract.connector,
      open: async () => ({
        capabilities: contract.connector.capabilities,
        send: async (batch: readonly OutboundRecord[]): Promise<RecordResult[]> => {
          if (batch.length > 1) throw new DeliveryError('answered 400', 'rejected', 400);
          if (batch[0]!.key === '2') throw new DeliveryError('answered 503', 'server', 503);
          return batch.map((r) => ({ key: r.key, ok: true as const }));
        },
        close: async () => undefined,
      }),
    } as DestinationType;
    const result = await sync({ ...contract, connector });
    expect(result).toMatchObject({ status: 'failed', planned: { add: 2 }, succeeded: { add: 1 }, failed: { add: 1 } });
  });

  it('plans the full re-send of a changed mapping again when the first attempt failed', async () => {
    const { contract, fail } = people({ delivery: { ...DEFAULT_DELIVERY, concurrency: 1, maxAttempts: 1 } });
    await s.execute(`INSERT INTO main.people SELECT i, 'p' || i, 'u' || i || '@x', i FROM range(1, 5) t(i)`);
    expect((await sync(contract)).succeeded.add).toBe(4);
    const remapped = { ...contract, mappingHash: 'm2' };
    fail.next = true;
    expect(await sync(remapped)).toMatchObject({ status: 'failed', planned: { change: 4 } });
    fail.next = false;
    expect((await planDestination(s, dialect(), remapped)).planned.change).toBe(4);
    expect((await sync(remapped)).succeeded.change).toBe(4);
    expect((await planDestination(s, dialect(), remapped)).planned.change).toBe(0);
  });

  it('stops sending when its lock was taken over (no heartbeat for too long), state intact', async () => {
    const { contract, batches } = people({ delivery: { ...DEFAULT_DELIVERY, concurrency: 1, maxAttempts: 1 } });
    await s.execute(`INSERT INTO main.people SELECT i, 'p' || i, 'u' || i || '@x', i FROM range(1, 8) t(i)`);
    const heartbeatSession = await warehouse.session();
    const slow = contract.connector;
    // The first batch takes long: meanwhile a second sync takes the lock over.
    const connector = {
      ...slow,
      open: async (context: Parameters<DestinationType['open']>[0]) => {
        const inner = await slow.open(context);
        return {
          ...inner,
          capabilities: inner.capabilities,
          send: async (batch: readonly OutboundRecord[]) => {
            if (batches.length === 0) {
              await s.execute(`UPDATE cdp_sync.locks SET holder = 'elsewhere:1:run-x' WHERE destination = 'crm'`);
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
            return inner.send(batch);
          },
          close: () => inner.close(),
        };
      },
    } as DestinationType;
    try {
      const result = await syncDestination(s, reader, dialect(), { ...contract, connector }, { runId: `run-${++runs}`, projectRoot: '/nonexistent', heartbeatSession, lockHeartbeatMs: 20 });
      expect(result.status).toBe('failed');
      expect(result.message).toMatch(/the lock of `crm` was taken over by another sync/);
      expect(batches).toHaveLength(1);
      expect(Number((await s.query(`SELECT COUNT(*) AS n FROM cdp_sync.snapshots WHERE destination = 'crm'`))[0]!['n'])).toBe(2);
      // The other holder's lock is not released by this run.
      expect(await s.query(`SELECT holder FROM cdp_sync.locks WHERE destination = 'crm'`)).toEqual([{ holder: 'elsewhere:1:run-x' }]);
    } finally {
      await heartbeatSession.close();
    }
  });
});
