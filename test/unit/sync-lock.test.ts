import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureState } from '../../src/sync/engine.js';
import { acquireLock, LockHeartbeat, releaseLock } from '../../src/sync/lock.js';
import { dialectFor } from '../../src/warehouse/engines.js';
import { DuckDbWarehouse } from '../../src/warehouse/duckdb-warehouse.js';
import type { Session } from '../../src/warehouse/warehouse.js';

/** The lock's heartbeat on a real DuckDB: refreshed while held, and noticed when taken over. */
const d = dialectFor('duckdb');
let warehouse: DuckDbWarehouse;
let writer: Session;
let beats: Session;

beforeAll(async () => {
  warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'test', schema: 'main', threads: 1, path: ':memory:', settings: {} });
  writer = await warehouse.session();
  beats = await warehouse.session();
  await ensureState(writer, d, undefined);
});

afterAll(async () => {
  await beats.close();
  await writer.close();
  await warehouse.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const acquiredAt = async (destination: string) => {
  const [row] = await writer.query(`SELECT holder, CAST(acquired_at AS VARCHAR) AS at FROM cdp_sync.locks WHERE destination = '${destination}'`);
  return row ? { holder: String(row['holder']), at: String(row['at']) } : undefined;
};

describe('LockHeartbeat', () => {
  it('refreshes acquired_at while the lock is held, on its own session', async () => {
    await acquireLock(writer, d, undefined, 'crm', 'host:1:run-a');
    await writer.execute(`UPDATE cdp_sync.locks SET acquired_at = TIMESTAMP '2020-01-01' WHERE destination = 'crm'`);
    const heartbeat = new LockHeartbeat(beats, d, undefined, 'crm', 'host:1:run-a', 20);
    await sleep(120);
    await heartbeat.stop();
    expect(heartbeat.lost).toBeUndefined();
    expect((await acquiredAt('crm'))!.at > '2026').toBe(true);
    await releaseLock(writer, d, undefined, 'crm', 'host:1:run-a');
  });

  it('says the lock was lost when another sync took it over', async () => {
    await acquireLock(writer, d, undefined, 'ads', 'host:1:run-b');
    const heartbeat = new LockHeartbeat(beats, d, undefined, 'ads', 'host:1:run-b', 20);
    // A second sync found it stale and took it over.
    await writer.execute(`UPDATE cdp_sync.locks SET holder = 'host:2:run-c' WHERE destination = 'ads'`);
    await sleep(120);
    await heartbeat.stop();
    expect(heartbeat.lost).toMatch(/the lock of `ads` was taken over by another sync/);
    // The new holder's lock is left alone.
    expect((await acquiredAt('ads'))!.holder).toBe('host:2:run-c');
  });
});
