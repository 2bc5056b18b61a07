import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { measureQuality, qualitySql, type QualityMetrics } from '../../src/identity/quality.js';
import { BigQueryDialect } from '../../src/warehouse/bigquery-dialect.js';
import { DuckDbDialect } from '../../src/warehouse/duckdb-dialect.js';
import { DuckDbWarehouse } from '../../src/warehouse/duckdb-warehouse.js';
import { SnowflakeDialect } from '../../src/warehouse/snowflake-dialect.js';
import type { Session } from '../../src/warehouse/warehouse.js';
import { REPO_ROOT } from '../helpers/project.js';

/*
 * Pairwise and B-cubed metrics against hand-computed expectations, then the fake_1000
 * email-only baseline of ../shared/reference/identity.md §5.
 *
 * Truth for the hand-computed cases: A = {a1, a2, a3}, B = {b1, b2}, C = {c1}; 6 records,
 * 4 true pairs (3 in A, 1 in B).
 */

const dialect = new DuckDbDialect();
let warehouse: DuckDbWarehouse;
let session: Session;

const TRUTH: [string, string, string][] = [
  ['email', 'a1', 'A'], ['phone', 'a2', 'A'], ['user_id', 'a3', 'A'],
  ['email', 'b1', 'B'], ['phone', 'b2', 'B'],
  ['email', 'c1', 'C'],
];

function values(rows: string[][]): string {
  return rows.map((r) => `(${r.map((v) => dialect.stringLiteral(v)).join(', ')})`).join(', ');
}

async function predicted(name: string, rows: [string, string, string][]): Promise<void> {
  await session.execute(`CREATE OR REPLACE TABLE q.${name} (identifier_type VARCHAR, identifier_value VARCHAR, profile_id VARCHAR)`);
  if (rows.length > 0) await session.execute(`INSERT INTO q.${name} VALUES ${values(rows)}`);
}

async function measure(name: string): Promise<QualityMetrics> {
  return measureQuality(session, dialect, { schema: 'q', name: 'truth' }, { schema: 'q', name });
}

function expectClose(actual: number, expected: number, digits = 6): void {
  expect(actual).toBeCloseTo(expected, digits);
}

beforeAll(async () => {
  warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'test', schema: 'main', threads: 1, path: ':memory:', settings: {} });
  session = await warehouse.session();
  await session.execute('CREATE SCHEMA q');
  await session.execute('CREATE TABLE q.truth (identifier_type VARCHAR, identifier_value VARCHAR, person_id VARCHAR)');
  await session.execute(`INSERT INTO q.truth VALUES ${values(TRUTH)}`);
});

afterAll(async () => {
  await session.close();
  await warehouse.close();
});

describe('measureQuality on hand-computed clusterings', () => {
  it('perfect clustering: everything 1, no glue', async () => {
    await predicted('perfect', TRUTH.map(([t, v, p]) => [t, v, `profile_${p}`]));
    const m = await measure('perfect');
    expect(m).toMatchObject({ records: 6, truePersons: 3, predictedClusters: 3, missingFromPrediction: 0, maxClusterSize: 3, maxTrueClusterSize: 3, maxPersonsPerCluster: 1, gluedClusters: 0, largeClusters: 0 });
    expect(m.pairwise).toEqual({ precision: 1, recall: 1, f1: 1, truePositivePairs: 4, predictedPairs: 4, truePairs: 4 });
    expect(m.bcubed).toEqual({ precision: 1, recall: 1, f1: 1 });
  });

  it('all merged: pairwise P = 4/15, B-cubed P = 14/36', async () => {
    await predicted('merged', TRUTH.map(([t, v]) => [t, v, 'everyone']));
    const m = await measure('merged');
    expect(m.pairwise).toMatchObject({ truePositivePairs: 4, predictedPairs: 15, truePairs: 4, recall: 1 });
    expectClose(m.pairwise.precision, 4 / 15);
    expectClose(m.pairwise.f1, 8 / 19);
    // B-cubed precision: (3·3/6 + 2·2/6 + 1·1/6) / 6 = 14/36.
    expectClose(m.bcubed.precision, 14 / 36);
    expect(m.bcubed.recall).toBe(1);
    expectClose(m.bcubed.f1, 14 / 25);
    expect(m).toMatchObject({ predictedClusters: 1, maxClusterSize: 6, maxPersonsPerCluster: 3, gluedClusters: 1 });
  });

  it('all split: no predicted pairs (P = 1 by convention), R = 0; B-cubed R = 1/2', async () => {
    await predicted('split', TRUTH.map(([t, v]) => [t, v, `${t}:${v}`]));
    const m = await measure('split');
    expect(m.pairwise).toEqual({ precision: 1, recall: 0, f1: 0, truePositivePairs: 0, predictedPairs: 0, truePairs: 4 });
    // B-cubed recall: (3·1/3 + 2·1/2 + 1·1) / 6 = 1/2.
    expect(m.bcubed.precision).toBe(1);
    expectClose(m.bcubed.recall, 0.5);
    expectClose(m.bcubed.f1, 2 / 3);
    expect(m).toMatchObject({ predictedClusters: 6, maxClusterSize: 1, maxPersonsPerCluster: 1, gluedClusters: 0 });
  });

  it('identifiers missing from the prediction count as singletons', async () => {
    await predicted('empty', []);
    const empty = await measure('empty');
    expect(empty.missingFromPrediction).toBe(6);
    expect(empty.predictedClusters).toBe(6);
    expect(empty.pairwise).toMatchObject({ precision: 1, recall: 0, f1: 0 });
    expectClose(empty.bcubed.recall, 0.5);

    // Only a3 missing: A is split into {a1, a2} and {a3}. TP = 1 + 1, predicted pairs = 1 + 1.
    await predicted('partial', TRUTH.filter(([, v]) => v !== 'a3').map(([t, v, p]) => [t, v, `profile_${p}`]));
    const partial = await measure('partial');
    expect(partial.missingFromPrediction).toBe(1);
    expect(partial.pairwise).toMatchObject({ precision: 1, truePositivePairs: 2, predictedPairs: 2 });
    expectClose(partial.pairwise.recall, 0.5);
    // B-cubed recall: a1, a2 → 2/3 each; a3 → 1/3; B, C → 1. (4/3 + 1/3 + 3) / 6 = 14/18.
    expectClose(partial.bcubed.recall, 14 / 18);
  });

  it('one junk merge glues B and C: pairwise P = 4/6, B-cubed P = 14/18, glue = 2 persons', async () => {
    await predicted('junk', [
      ...TRUTH.map(([t, v, p]): [string, string, string] => [t, v, p === 'A' ? 'profile_A' : 'profile_BC']),
      // The junk value itself is not in truth: it is ignored, not a record.
      ['email', 'test@test.com', 'profile_BC'],
    ]);
    const m = await measure('junk');
    expect(m.records).toBe(6);
    expect(m.pairwise).toMatchObject({ truePositivePairs: 4, predictedPairs: 6, truePairs: 4, recall: 1 });
    expectClose(m.pairwise.precision, 4 / 6);
    expectClose(m.pairwise.f1, 0.8);
    // B-cubed precision: A → 1 each (3 records); b1, b2 → 2/3; c1 → 1/3. (3 + 4/3 + 1/3) / 6 = 14/18.
    expectClose(m.bcubed.precision, 14 / 18);
    expect(m.bcubed.recall).toBe(1);
    expectClose(m.bcubed.f1, 0.875);
    expect(m).toMatchObject({ maxPersonsPerCluster: 2, gluedClusters: 1, maxClusterSize: 3 });
    const strict = await measureQuality(session, dialect, { schema: 'q', name: 'truth' }, { schema: 'q', name: 'junk' }, { gluePersons: 2, largeCluster: 2 });
    expect(strict).toMatchObject({ gluedClusters: 0, largeClusters: 2 });
  });

  it('accepts subqueries and non-string columns', async () => {
    const m = await measureQuality(
      session,
      dialect,
      { sql: "SELECT 'n' AS identifier_type, i AS identifier_value, i % 2 AS person_id FROM range(10) AS r(i)" },
      { sql: "SELECT 'n' AS identifier_type, CAST(i AS VARCHAR) AS identifier_value, 7 AS profile_id FROM range(10) AS r(i)" },
    );
    // Two persons of 5; one predicted cluster of 10: TP = 20, predicted pairs = 45.
    expect(m).toMatchObject({ records: 10, truePersons: 2, predictedClusters: 1 });
    expectClose(m.pairwise.precision, 20 / 45);
  });

  it('renders portable SQL for every dialect, with no pair enumeration', () => {
    for (const d of [new DuckDbDialect(), new BigQueryDialect(), new SnowflakeDialect()]) {
      const sql = qualitySql(d, { database: 'db', schema: 's', name: 'truth' }, { sql: 'SELECT 1' });
      expect(sql).toContain(d.quoteRelation({ database: 'db', schema: 's', name: 'truth' }));
      expect(sql).toContain(`CAST(identifier_type AS ${d.types.string})`);
      // The only join is truth ⟕ prediction on the identifier; no self-join over records.
      expect(sql.match(/\bJOIN\b/g)).toHaveLength(1);
    }
    expect(() => qualitySql(dialect, { schema: 'q', name: 't' }, { schema: 'q', name: 'p' }, { gluePersons: -1 })).toThrow(RangeError);
  });
});

/** The labelled data sets live beside the repository (`../shared`), not in it. */
const FAKE_1000 = path.resolve(process.env['CDP_SHARED_DIR'] ?? path.join(REPO_ROOT, '../shared'), 'data/identity/fake_1000.csv');

describe.skipIf(!existsSync(FAKE_1000))('fake_1000 email-only baseline (shared/reference/identity.md §5)', () => {
  it('matches the reference figures', async () => {
    const file = FAKE_1000;
    await session.execute(`CREATE OR REPLACE TABLE q.fake_1000 AS SELECT * FROM read_csv(${dialect.stringLiteral(file)}, header = true, all_varchar = true)`);
    // Records = rows, as `record:<unique_id>`; truth = the `cluster` column.
    const truth = { sql: "SELECT 'record' AS identifier_type, unique_id AS identifier_value, cluster AS person_id FROM q.fake_1000" };
    // Prediction: exact lower-case email; rows without email are singletons.
    const predicted = {
      sql: "SELECT 'record' AS identifier_type, unique_id AS identifier_value, COALESCE('email:' || lower(email), 'row:' || unique_id) AS profile_id FROM q.fake_1000",
    };
    const m = await measureQuality(session, dialect, truth, predicted);
    const fmt = (x: number) => x.toFixed(3);
    console.log(
      `fake_1000 email-only: pairwise P/R/F1 ${fmt(m.pairwise.precision)} / ${fmt(m.pairwise.recall)} / ${fmt(m.pairwise.f1)}; ` +
        `B-cubed P/R/F1 ${fmt(m.bcubed.precision)} / ${fmt(m.bcubed.recall)} / ${fmt(m.bcubed.f1)}; ` +
        `max cluster ${m.maxClusterSize}; ${m.records} records, ${m.truePersons} persons, ${m.predictedClusters} clusters; ` +
        `TP ${m.pairwise.truePositivePairs} of ${m.pairwise.truePairs} true pairs`,
    );
    expect(m.records).toBe(1000);
    expect(m.truePersons).toBe(251);
    expect(m.pairwise.truePairs).toBe(2031);
    expect(Math.abs(m.pairwise.precision - 1.0)).toBeLessThan(0.01);
    expect(Math.abs(m.pairwise.recall - 0.336)).toBeLessThan(0.01);
    expect(Math.abs(m.pairwise.f1 - 0.503)).toBeLessThan(0.01);
    expect(Math.abs(m.bcubed.precision - 1.0)).toBeLessThan(0.01);
    expect(Math.abs(m.bcubed.recall - 0.507)).toBeLessThan(0.01);
    expect(Math.abs(m.bcubed.f1 - 0.672)).toBeLessThan(0.01);
    expect(m.maxClusterSize).toBe(6);
  });
});
