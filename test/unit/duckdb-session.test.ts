import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuckDbWarehouse } from '../../src/warehouse/duckdb-warehouse.js';

/**
 * DuckDB sessions work in UTC whatever the machine's time zone: cdp stores UTC timestamps and
 * compares source times with them (the privacy restore cutoff, run windows). A TIMESTAMPTZ cast to
 * TIMESTAMP in the machine's zone would shift a row across a restore by the UTC offset.
 */
let warehouse: DuckDbWarehouse;
beforeAll(async () => {
  warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'test', schema: 'main', threads: 1, path: ':memory:', settings: {} });
});
afterAll(async () => {
  await warehouse.close();
});

describe('DuckDB sessions', () => {
  it('cast TIMESTAMPTZ to the UTC wall clock', async () => {
    const session = await warehouse.session();
    try {
      const [row] = await session.query(`SELECT current_setting('TimeZone') AS tz, CAST(CAST(TIMESTAMPTZ '2020-01-01 09:30:00+02' AS TIMESTAMP) AS VARCHAR) AS t`);
      expect(row).toEqual({ tz: 'UTC', t: '2020-01-01 07:30:00' });
    } finally {
      await session.close();
    }
  });

  it('take the TimeZone of profiles.yml settings instead, and name a bad one', async () => {
    const tokyo = await DuckDbWarehouse.open({ type: 'duckdb', name: 'tokyo', schema: 'main', threads: 1, path: ':memory:', settings: { TimeZone: 'Asia/Tokyo' } });
    const session = await tokyo.session();
    expect(await session.query(`SELECT current_setting('TimeZone') AS tz`)).toEqual([{ tz: 'Asia/Tokyo' }]);
    await session.close();
    await tokyo.close();
    const bad = await DuckDbWarehouse.open({ type: 'duckdb', name: 'bad', schema: 'main', threads: 1, path: ':memory:', settings: { TimeZone: 'Mars/Olympus' } });
    await expect(bad.session()).rejects.toThrow(/Target `bad`: settings.TimeZone "Mars\/Olympus" is not a time zone DuckDB knows/);
    await bad.close();
  });
});
