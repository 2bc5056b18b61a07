import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Relation } from '../../src/compile/node.js';
import type { BigQueryTarget, SnowflakeTarget } from '../../src/project/target.js';
import { BigQueryWarehouse } from '../../src/warehouse/bigquery-warehouse.js';
import { SnowflakeWarehouse } from '../../src/warehouse/snowflake-warehouse.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';

/*
 * Live checks against real accounts. Skipped unless credentials are in the environment (see
 * docs/cloud-integration.md), so the default test run never touches the network.
 */

const env = process.env;
const TIMEOUT = 300_000;

/** Build, swap, merge, describe and drop one table; the same steps `cdp run` takes. */
async function roundTrip(warehouse: Warehouse, database: string, schema: string): Promise<void> {
  const d = warehouse.dialect;
  const q = (name: string) => d.quoteIdentifier(name);
  const target: Relation = { database, schema, name: `cdp_it_${randomBytes(4).toString('hex')}` };
  const staging = d.stagingRelation(target, 'tmp');
  const updates = d.stagingRelation(target, 'new');
  // Quoted aliases keep lower-case column names on Snowflake too.
  const select = (id: number, status: string) => `SELECT ${id} AS ${q('id')}, ${d.stringLiteral(status)} AS ${q('status')}`;
  const session = await warehouse.session();
  try {
    expect(await session.query(d.pingQuery())).toEqual([{ ok: 1 }]);
    await session.execute(d.createSchema(database, schema));

    await session.execute(d.createTableAs(target, select(1, 'old')));
    await session.execute(d.createTableAs(staging, `${select(1, 'new')}\nUNION ALL\n${select(2, 'new')}`));
    const existing = (await session.describe(target))?.kind;
    expect(existing).toBe('table');
    for (const sql of d.atomically(d.swapTable(target, staging, existing), 'ddl')) await session.execute(sql);
    expect(await session.describe(staging)).toBeUndefined();

    await session.execute(d.createTableAs(updates, `${select(2, 'merged')}\nUNION ALL\n${select(3, 'merged')}`));
    const [violations] = await session.query(d.keyViolations(updates, ['id']));
    expect(Number(violations?.['null_keys'])).toBe(0);
    expect(Number(violations?.['duplicate_keys'])).toBe(0);
    const merge = { target, source: updates, uniqueKey: ['id'], columns: ['id', 'status'] };
    for (const sql of d.atomically([d.merge(merge)], 'dml')) await session.execute(sql);

    const info = await session.describe(target);
    expect(info?.kind).toBe('table');
    expect(info?.columns.map((c) => c.name)).toEqual(['id', 'status']);

    const rows = await session.query(`SELECT ${q('id')} AS ${q('id')}, ${q('status')} AS ${q('status')} FROM ${d.quoteRelation(target)} ORDER BY 1`);
    expect(rows.map((r) => [Number(r['id']), r['status']])).toEqual([[1, 'new'], [2, 'merged'], [3, 'merged']]);

    const batches = [];
    for await (const batch of session.stream(`SELECT * FROM ${d.quoteRelation(target)}`, 2)) batches.push(batch.length);
    expect(batches).toEqual([2, 1]);
  } finally {
    for (const relation of [target, staging, updates]) await session.execute(d.dropRelation(relation, 'table')).catch(() => undefined);
    await session.close();
    await warehouse.close();
  }
}

const bigQueryProject = env['CDP_BIGQUERY_PROJECT'];

describe.skipIf(!bigQueryProject)('BigQuery (live)', () => {
  it('round-trips build, swap, merge and describe', { timeout: TIMEOUT }, async () => {
    const dataset = env['CDP_BIGQUERY_DATASET'] ?? 'cdp_integration';
    const target: BigQueryTarget = {
      type: 'bigquery',
      name: 'integration',
      schema: dataset,
      threads: 1,
      project: bigQueryProject!,
      location: env['CDP_BIGQUERY_LOCATION'],
      // Absent: application default credentials (which also read this variable).
      keyfile: env['GOOGLE_APPLICATION_CREDENTIALS'],
      timeoutSeconds: 300,
    };
    await roundTrip(await BigQueryWarehouse.open(target), bigQueryProject!, dataset);
  });
});

const snowflakeVars = ['CDP_SNOWFLAKE_ACCOUNT', 'CDP_SNOWFLAKE_USER', 'CDP_SNOWFLAKE_PASSWORD', 'CDP_SNOWFLAKE_WAREHOUSE', 'CDP_SNOWFLAKE_DATABASE'];

describe.skipIf(!snowflakeVars.every((v) => env[v]))('Snowflake (live)', () => {
  it('round-trips build, swap, merge and describe', { timeout: TIMEOUT }, async () => {
    const schema = env['CDP_SNOWFLAKE_SCHEMA'] ?? 'CDP_INTEGRATION';
    const target: SnowflakeTarget = {
      type: 'snowflake',
      name: 'integration',
      schema,
      threads: 1,
      account: env['CDP_SNOWFLAKE_ACCOUNT']!,
      user: env['CDP_SNOWFLAKE_USER']!,
      password: env['CDP_SNOWFLAKE_PASSWORD']!,
      role: env['CDP_SNOWFLAKE_ROLE'],
      warehouse: env['CDP_SNOWFLAKE_WAREHOUSE']!,
      database: env['CDP_SNOWFLAKE_DATABASE']!,
    };
    await roundTrip(await SnowflakeWarehouse.open(target), target.database, schema);
  });
});
