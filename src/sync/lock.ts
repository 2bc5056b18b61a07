import os from 'node:os';
import { BusyError } from '../errors.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';
import { stateRelation } from './sql.js';

/**
 * A lock not refreshed for this long is stale: its holder is presumed dead, and the next sync takes
 * it over. The holder refreshes it every LOCK_HEARTBEAT_SECONDS (`acquired_at` is the last sign of
 * life), so a sync may run for hours; a holder that finds its lock taken over stops sending.
 */
export const STALE_LOCK_MINUTES = 10;
export const LOCK_HEARTBEAT_SECONDS = 60;

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
 * the holder. Stale locks (not refreshed for STALE_LOCK_MINUTES, or held by a dead process on this
 * host) are taken over.
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
    throw new BusyError('sync-locked', `Destination \`${destination}\` is being synced by another process (lock held by ${current}, last refreshed ${since}); nothing was sent`, {
      hint: `Wait for that sync to finish. A running sync refreshes its lock every ${LOCK_HEARTBEAT_SECONDS} s; one not refreshed for ${STALE_LOCK_MINUTES} minutes is taken over automatically; to clear it by hand: DELETE FROM ${locks} WHERE destination = ${dest}`,
    });
  }
}

/**
 * Keeps a held lock alive on its own session (the writer may be busy committing): every
 * LOCK_HEARTBEAT_SECONDS it refreshes `acquired_at`. When the refresh finds no row of this holder
 * (a second sync took the lock over after STALE_LOCK_MINUTES without a refresh, e.g. a machine
 * suspended mid-run), `lost` says so and the engine stops before sending another batch.
 */
export class LockHeartbeat {
  lost: string | undefined;
  private readonly timer: NodeJS.Timeout;
  private beating: Promise<void> = Promise.resolve();
  private pending = false;

  constructor(private readonly session: Session, private readonly d: Dialect, private readonly database: string | undefined, private readonly destination: string, private readonly holder: string, intervalMs: number = LOCK_HEARTBEAT_SECONDS * 1000) {
    this.timer = setInterval(() => {
      // One refresh at a time: a slow warehouse must not get two on one session (BigQuery refuses
      // concurrent jobs in a session); a skipped tick is harmless, the timeout is minutes.
      if (this.pending) return;
      this.pending = true;
      this.beating = this.beat().finally(() => {
        this.pending = false;
      });
    }, intervalMs);
    // A pending refresh never keeps the process alive on its own.
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    if (this.lost) return;
    const locks = this.d.quoteRelation(stateRelation(this.database, 'locks'));
    try {
      const result = await this.session.execute(`UPDATE ${locks} SET acquired_at = ${this.d.currentTimestamp()} WHERE destination = ${this.d.literal(this.destination)} AND holder = ${this.d.literal(this.holder)}`);
      if (result.rowsAffected === 0) {
        this.lost = `the lock of \`${this.destination}\` was taken over by another sync (no refresh for ${STALE_LOCK_MINUTES} minutes); this run stopped sending`;
      }
    } catch {
      // A failed refresh is retried at the next beat; the lock only goes stale after minutes.
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.beating;
  }
}

export async function releaseLock(session: Session, d: Dialect, database: string | undefined, destination: string, holder: string): Promise<void> {
  await session.execute(`DELETE FROM ${d.quoteRelation(stateRelation(database, 'locks'))} WHERE destination = ${d.literal(destination)} AND holder = ${d.literal(holder)}`);
}
