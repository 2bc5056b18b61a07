import os from 'node:os';
import { BusyError } from '../errors.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';
import { stateRelation } from './sql.js';

/** A lock older than this is stale: its holder is presumed dead, and the next sync takes it over. */
export const STALE_LOCK_MINUTES = 60;

export function lockHolder(runId: string): string {
  return `${os.hostname()}:${process.pid}:${runId}`;
}

/** A holder on this host whose process no longer exists (a killed sync) cannot be holding it. */
function holderIsDead(holder: string): boolean {
  const [host, pid] = holder.split(':');
  if (host !== os.hostname() || !pid || !/^\d+$/.test(pid)) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Takes the lock row of `destination` in `cdp_sync.locks`, or throws BusyError (exit 5) naming
 * the holder. Stale locks (older than an hour, or held by a dead process on this host) are taken over.
 */
export async function acquireLock(session: Session, d: Dialect, database: string | undefined, destination: string, holder: string): Promise<void> {
  const locks = d.quoteRelation(stateRelation(database, 'locks'));
  const dest = d.literal(destination);
  for (let attempt = 0; attempt < 2; attempt++) {
    for (const sql of d.atomically([
      `DELETE FROM ${locks} WHERE destination = ${dest} AND acquired_at < ${d.dateAdd(d.currentTimestamp(), -STALE_LOCK_MINUTES, 'minute')}`,
      `INSERT INTO ${locks} (destination, holder, acquired_at) SELECT ${dest}, ${d.literal(holder)}, ${d.currentTimestamp()} WHERE NOT EXISTS (SELECT 1 FROM ${locks} WHERE destination = ${dest})`,
    ], 'dml')) await session.execute(sql);
    const [row] = await session.query(`SELECT holder, acquired_at FROM ${locks} WHERE destination = ${dest}`);
    const current = String(row?.['holder'] ?? '');
    if (current === holder) return;
    if (attempt === 0 && holderIsDead(current)) {
      await session.execute(`DELETE FROM ${locks} WHERE destination = ${dest} AND holder = ${d.literal(current)}`);
      continue;
    }
    const since = row?.['acquired_at'] instanceof Date ? (row['acquired_at'] as Date).toISOString() : String(row?.['acquired_at']);
    throw new BusyError('sync-locked', `Destination \`${destination}\` is being synced by another process (lock held by ${current} since ${since}); nothing was sent`, {
      hint: `Wait for that sync to finish. A lock older than ${STALE_LOCK_MINUTES} minutes is taken over automatically; to clear it by hand: DELETE FROM ${locks} WHERE destination = ${dest}`,
    });
  }
}

export async function releaseLock(session: Session, d: Dialect, database: string | undefined, destination: string, holder: string): Promise<void> {
  await session.execute(`DELETE FROM ${d.quoteRelation(stateRelation(database, 'locks'))} WHERE destination = ${d.literal(destination)} AND holder = ${d.literal(holder)}`);
}
