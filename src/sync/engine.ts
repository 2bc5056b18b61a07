import * as crypto from 'node:crypto';
import { errorMessage } from '../errors.js';
import type { Destination, OutboundRecord, RecordMeta, RecordResult } from '../destinations/destination.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { ColumnBatch, Session } from '../warehouse/warehouse.js';
import { privacyRelation } from '../privacy/tables.js';
import type { PrivacyKey } from '../privacy/key.js';
import { redact } from '../project/secrets.js';
import type { Contract } from './contract.js';
import { deliverer, DestinationStopped } from './delivery.js';
import { acquireLock, LockHeartbeat, lockHolder, releaseLock } from './lock.js';
import { timestampAsDate } from './history.js';
import { checkRemoveLimit, planSize, preflight, summarizePlan, type Op, type OpCounts } from './plan.js';
import {
  consentRemovalsSql,
  markInDoubtSql,
  materializePlanSql,
  PENDING_WINDOW,
  pendingSql,
  planRowsSql,
  prunePlansSql,
  inDoubtPredicate,
  quarantinedPredicate,
  refreshFingerprintsSql,
  snapshotInsertSql,
  STATE_COLUMNS,
  STATE_SCHEMA,
  stateRelation,
  type StateTable,
} from './sql.js';

export interface RecordRejection {
  primary_key: string;
  op: Op;
  reason: string;
  /** Set when this rejection quarantined the record (`delivery.quarantine_after`). */
  status?: 'quarantined';
}

/** One destination's run, with Hightouch's planned/succeeded/failed × add/change/remove. */
export interface SyncResult {
  destination: string;
  run_id: string;
  status: 'success' | 'partial' | 'failed';
  planned: OpCounts;
  succeeded: OpCounts;
  failed: OpCounts;
  removed_for_consent: number;
  rejected_before_sending: { consent: number };
  /** Up to 10 per-record rejections of this run (all are in cdp_sync.rejections). */
  rejections: RecordRejection[];
  /** Records not sent because they are quarantined (until their payload changes); not counted in `planned`. */
  quarantined: number;
  /** Records not sent because a crashed run may have delivered them to a destination that cannot deduplicate. */
  in_doubt: number;
  message?: string;
}

export interface SyncOptions {
  runId: string;
  projectRoot: string;
  /** Send records left in doubt by a crash again (connectors that cannot deduplicate). */
  resendInDoubt?: boolean;
  /** Send removals above the contract's `max_removes` this once. */
  allowMassRemoves?: boolean;
  /** The privacy key, for contracts that map a field through `token`. */
  privacyKey?: PrivacyKey;
  /** Called after each acknowledged batch: progress output. */
  onBatch?: (done: number, total: number) => void;
  /**
   * A session of its own for the lock's heartbeat (the CLI always gives one): without it the lock
   * is not refreshed, and a run longer than STALE_LOCK_MINUTES could be overlapped.
   */
  heartbeatSession?: Session;
  /** The heartbeat's period; LOCK_HEARTBEAT_SECONDS unless an embedder (a test) needs it shorter. */
  lockHeartbeatMs?: number;
}

/** sha256(destination|key|payload_hash); a remove hashes `remove:<last payload_hash>`, so it never equals the add. */
export function idempotencyKey(destination: string, key: string, op: Op, payloadHash: string): string {
  return sha256Hex(`${destination}|${key}|${op === 'remove' ? `remove:${payloadHash}` : payloadHash}`);
}

/**
 * One-shot `crypto.hash` (Node ≥ 20.12; looked up, not imported by name, so older Node 20 still
 * loads this module) costs a third of createHash per call: it runs once per record.
 */
const sha256Hex: (text: string) => string = typeof crypto.hash === 'function' ? (text) => crypto.hash('sha256', text, 'hex') : (text) => crypto.createHash('sha256').update(text).digest('hex');

function zero(): OpCounts {
  return { add: 0, change: 0, remove: 0 };
}

/**
 * Creates the state tables that are missing, and adds the columns later versions introduced to
 * tables an older version created. Only what is missing: on an existing state, every sync would
 * otherwise pay a DDL statement per table (a commit on DuckDB, a job on a cloud warehouse).
 */
export async function ensureState(session: Session, d: Dialect, database: string | undefined): Promise<void> {
  let schemaEnsured = false;
  for (const table of Object.keys(STATE_COLUMNS) as StateTable[]) {
    const relation = stateRelation(database, table);
    const info = await session.describe(relation);
    if (info === undefined) {
      if (!schemaEnsured) await session.execute(d.createSchema(database, STATE_SCHEMA));
      schemaEnsured = true;
      // IF NOT EXISTS: another process may create it between the describe and here.
      await session.execute(d.createTableIfNotExists(relation, STATE_COLUMNS[table]));
      continue;
    }
    const have = new Set(info.columns.map((c) => c.name.toLowerCase()));
    for (const [name, type] of STATE_COLUMNS[table]) {
      if (!have.has(name)) await session.execute(`ALTER TABLE ${d.quoteRelation(relation)} ADD COLUMN ${d.quoteIdentifier(name)} ${d.types[type]}`);
    }
  }
}

/**
 * Plans and sends one destination. State advances only for acknowledged records, one
 * transaction per acknowledged batch (or per group of batches acknowledged while the writer was
 * busy; invariant 4), so a sync killed at any point and rerun re-diffs and sends only what was not
 * committed. `writer` holds the lock and commits state; `reader` streams the run's plan, one
 * batch at a time.
 */
export async function syncDestination(
  writer: Session,
  reader: Session,
  d: Dialect,
  contract: Contract,
  options: SyncOptions,
): Promise<SyncResult> {
  const db = contract.relation.database;
  const rel = (t: Parameters<typeof stateRelation>[1]) => d.quoteRelation(stateRelation(db, t));
  const dest = d.literal(contract.name);
  const run = d.literal(options.runId);
  await ensureState(writer, d, db);
  const holder = lockHolder(options.runId);
  await acquireLock(writer, d, db, contract.name, holder);
  const heartbeat = options.heartbeatSession ? new LockHeartbeat(options.heartbeatSession, d, db, contract.name, holder, options.lockHeartbeatMs) : undefined;
  const result: SyncResult = {
    destination: contract.name,
    run_id: options.runId,
    status: 'success',
    planned: zero(),
    succeeded: zero(),
    failed: zero(),
    removed_for_consent: 0,
    rejected_before_sending: { consent: 0 },
    rejections: [],
    quarantined: 0,
    in_doubt: 0,
  };
  let connector: Destination | undefined;
  let runRecorded = false;
  try {
    // Runs of this destination that never finished were killed: the lock is ours now, so say so.
    await abortKilledRuns(writer, d, contract);
    // The run row first (its counts and mapping are filled in below): a plan that fails (schema
    // drift, duplicate keys) is a failed run in `cdp sync history`, and plan rows never outlive
    // their run row, even when a crash interrupts the materialisation: pruning finds every plan.
    await writer.execute(`INSERT INTO ${rel('runs')} (run_id, destination, status, started_at, planned_add, planned_change, planned_remove, succeeded_add, succeeded_change, succeeded_remove, failed_add, failed_change, failed_remove, excluded_consent)
      VALUES (${run}, ${dest}, 'running', ${d.currentTimestamp()}, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)`);
    runRecorded = true;
    const inputs = await preflight(writer, d, contract, options.privacyKey);
    if (inputs.fingerprints === 'mixed') {
      // Fingerprints of another version (an engine upgrade, a changed mapping, rows of an older
      // cdp): refreshed where the payload is unchanged, so the diff can trust every fingerprint.
      await writer.execute(refreshFingerprintsSql(d, contract, inputs.columnTypes));
      inputs.fingerprints = 'current';
    }
    const unacknowledgedSince = await oldestRunSinceSuccess(writer, d, contract, options.runId);
    // The run's plan, materialised once: the audit record, what the delivery loop reads, and
    // where acknowledged records are copied into the snapshot from. Counted from there, so the
    // diff runs once per sync.
    await writer.execute(materializePlanSql(d, contract, options.runId, inputs));
    const plan = await summarizePlan(writer, d, contract, planRowsSql(d, contract, options.runId), { samples: false });
    // Before any count reaches the run row: a blocked run planned nothing it sent, so it opens no
    // created-window (oldestRunSinceSuccess) and records no mapping.
    await checkRemoveLimit(writer, d, contract, plan, options.allowMassRemoves ?? false);
    const lastSeq = planSize(plan);
    result.planned = { ...plan.planned };
    result.removed_for_consent = plan.removed_for_consent;
    result.rejected_before_sending = { ...plan.rejected };
    await writer.execute(`UPDATE ${rel('runs')} SET planned_add = ${plan.planned.add}, planned_change = ${plan.planned.change}, planned_remove = ${plan.planned.remove}, excluded_consent = ${plan.rejected.consent}
      WHERE run_id = ${run} AND destination = ${dest}`);

    const guarded = contract.connector.capabilities.deduplicates === false;
    if (guarded) {
      for (const [op, n] of await holdInDoubt(writer, d, contract, options)) {
        result.planned[op] -= n;
        result.in_doubt += n;
      }
    }

    // Quarantined records (same op and payload as when quarantined) are not sent again.
    for (const row of await writer.query(`SELECT p.op, COUNT(*) AS n FROM ${rel('plans')} AS p WHERE p.run_id = ${run} AND p.destination = ${dest} AND p.send AND ${quarantinedPredicate(d, contract)} GROUP BY p.op`)) {
      const n = Number(row['n']);
      result.planned[String(row['op']) as Op] -= n;
      result.quarantined += n;
    }
    const total = result.planned.add + result.planned.change + result.planned.remove;
    if (total > 0) {
      connector = await contract.connector.open({ destination: contract.name, object: contract.object, runId: options.runId, projectRoot: options.projectRoot, mode: contract.mode, options: contract.options, unacknowledgedSince });
      const delivery = deliverer(connector, contract.delivery, !guarded);
      let done = 0;
      // The writer session runs one job at a time, never interleaving two transactions.
      const write = serialWriter(async (jobs) => {
        if (jobs[0]!.kind === 'mark') {
          await writer.execute(markInDoubtSql(d, contract, options.runId, jobs[0]!.seqs));
          return;
        }
        const parts = jobs.filter((j): j is AckJob => j.kind === 'ack');
        await commitBatch(writer, d, contract, options.runId, parts, result);
        for (const part of parts) done += part.batch.length;
        options.onBatch?.(done, total);
      });
      // A batch holds its send slot until its outcome is committed, so a crash leaves at most
      // `concurrency` batches sent but not committed: what a rerun may send again.
      const acknowledge = (batch: OutboundRecord[], results: RecordResult[]): Promise<void> =>
        write({ kind: 'ack', batch, results }).catch((error: unknown) => {
          throw new WarehouseFailure(error);
        });
      let fatal: unknown;
      let givenUp = 0;
      const inFlight = new Set<Promise<void>>();
      for await (const batch of pendingBatches(reader, d, contract, options.runId, lastSeq)) {
        // Checked before marking: a batch that will not be sent must not be left in doubt.
        if (heartbeat?.lost) {
          fatal ??= new DestinationStopped(heartbeat.lost);
          break;
        }
        // Before a non-deduplicating destination sees a batch, its records are marked in doubt
        // (committed); the commit of their outcome clears the marks.
        if (guarded) await write({ kind: 'mark', seqs: batch.map(seqOf) });
        const sending: Promise<void> = delivery
          .deliver(batch, acknowledge)
          .catch((error: unknown) => {
            // A batch given up (retries exhausted, auth refused) failed; one stopped before it was
            // sent, because another failed, was not attempted and stays planned for the next sync.
            if (error instanceof DestinationStopped) {
              for (const record of error.givenUp) result.failed[record.op] += 1;
              givenUp += error.givenUp.length;
            }
            fatal ??= error;
            delivery.stop();
          })
          .finally(() => inFlight.delete(sending));
        inFlight.add(sending);
        while (inFlight.size >= contract.delivery.concurrency) await Promise.race(inFlight);
        if (fatal !== undefined) break;
      }
      await Promise.all(inFlight);
      if (fatal instanceof WarehouseFailure) throw fatal.cause;
      if (fatal !== undefined) {
        // Nothing more is sent; what was acknowledged is committed: stop cleanly, state intact.
        result.status = 'failed';
        const unsent = total - done - givenUp;
        result.message = [fatal instanceof DestinationStopped ? fatal.message : errorMessage(fatal), ...(unsent > 0 ? [`${unsent} planned record(s) not attempted: the next sync sends them`] : [])].join('; ');
      }
    }
    const notes = [
      ...(inputs.mappingChanged ? ['the mapping changed since the last sync: every synced row still in the model was planned as a change (a full re-send)'] : []),
      ...(result.in_doubt > 0 ? [`${result.in_doubt} record(s) in doubt not sent: a crashed run may have delivered them, and \`${contract.type}\` cannot deduplicate; check the destination, then \`cdp sync --resend-in-doubt\` to send them again`] : []),
      ...(result.quarantined > 0 ? [`${result.quarantined} quarantined record(s) not sent (status quarantined in cdp_sync.rejections); each is sent again once its payload changes`] : []),
    ];
    if (notes.length > 0) result.message = [result.message, ...notes].filter(Boolean).join('; ');
    const failed = result.failed.add + result.failed.change + result.failed.remove;
    // Records held in doubt were not delivered by this run and wait for an operator: a scheduler
    // must not see green (exit 1) until someone checks the platform and resends them.
    if (result.status !== 'failed' && (failed > 0 || result.in_doubt > 0)) result.status = 'partial';
    return result;
  } catch (error) {
    result.status = 'failed';
    result.message = errorMessage(error);
    throw error;
  } finally {
    await heartbeat?.stop();
    await connector?.close().catch(() => undefined);
    if (runRecorded) {
      const c = (k: 'succeeded' | 'failed', op: Op) => result[k][op];
      await writer.execute(`UPDATE ${rel('runs')} SET status = ${d.literal(result.status)}, finished_at = ${d.currentTimestamp()},
        planned_add = ${result.planned.add}, planned_change = ${result.planned.change}, planned_remove = ${result.planned.remove},
        succeeded_add = ${c('succeeded', 'add')}, succeeded_change = ${c('succeeded', 'change')}, succeeded_remove = ${c('succeeded', 'remove')},
        failed_add = ${c('failed', 'add')}, failed_change = ${c('failed', 'change')}, failed_remove = ${c('failed', 'remove')},
        message = ${d.literal(result.message === undefined ? null : redact(result.message))}${completed(result.status) ? `,
        mapping_hash = ${d.literal(contract.mappingHash)}` : ''}
        WHERE run_id = ${run} AND destination = ${dest}`).catch(() => undefined);
      // Housekeeping, still under the lock: plans of runs older than the last completed ones
      // (docs/destinations.md). A failure here loses nothing; the next sync prunes again.
      await writer.execute(prunePlansSql(d, db, contract.name)).catch(() => undefined);
    }
    await releaseLock(writer, d, db, contract.name, holder).catch(() => undefined);
  }
}

/**
 * Planned records that an earlier run handed to the destination without committing the outcome
 * (same key and payload): not sent, unless the operator says so. Returns how many were held.
 */
async function holdInDoubt(writer: Session, d: Dialect, contract: Contract, options: SyncOptions): Promise<[Op, number][]> {
  const db = contract.relation.database;
  const dest = d.literal(contract.name);
  const inDoubt = d.quoteRelation(stateRelation(db, 'in_doubt'));
  if (options.resendInDoubt) await writer.execute(`DELETE FROM ${inDoubt} WHERE destination = ${dest}`);
  const plans = d.quoteRelation(stateRelation(db, 'plans'));
  const held = inDoubtPredicate(d, contract);
  const rows = await writer.query(`SELECT p.op, COUNT(*) AS n FROM ${plans} AS p WHERE p.run_id = ${d.literal(options.runId)} AND p.destination = ${dest} AND p.send AND ${held} GROUP BY p.op`);
  if (rows.length > 0) await writer.execute(`UPDATE ${plans} AS p SET send = FALSE, reason = 'in_doubt' WHERE p.run_id = ${d.literal(options.runId)} AND p.destination = ${dest} AND p.send AND ${held}`);
  return rows.map((row) => [String(row['op']) as Op, Number(row['n'])]);
}

/**
 * Runs left `running` were killed: marked `aborted`, with what they got done reconstructed, since
 * they never wrote their counts. Under the lock nothing else wrote this destination's state since,
 * so a planned add or change is acknowledged exactly when the snapshot holds its payload hash,
 * written since the run started (a full re-send plans changes whose hash the snapshot already
 * has), and a planned remove when the snapshot no longer holds its key; their rejections are their
 * failures.
 */
async function abortKilledRuns(writer: Session, d: Dialect, contract: Contract): Promise<void> {
  const db = contract.relation.database;
  const rel = (t: Parameters<typeof stateRelation>[1]) => d.quoteRelation(stateRelation(db, t));
  const dest = d.literal(contract.name);
  const killed = (await writer.query(`SELECT run_id FROM ${rel('runs')} WHERE destination = ${dest} AND status = 'running'`)).map((r) => String(r['run_id']));
  if (killed.length === 0) return;
  const runs = killed.map((id) => d.literal(id)).join(', ');
  const counts = new Map(killed.map((id) => [id, { succeeded: zero(), failed: zero() }]));
  for (const row of await writer.query(`SELECT p.run_id, p.op,
  SUM(CASE WHEN (p.op <> 'remove' AND s.payload_hash = p.payload_hash AND s.synced_at >= r.started_at) OR (p.op = 'remove' AND s.primary_key IS NULL) THEN 1 ELSE 0 END) AS acked
FROM ${rel('plans')} AS p JOIN ${rel('runs')} AS r ON r.run_id = p.run_id AND r.destination = p.destination
LEFT JOIN ${rel('snapshots')} AS s ON s.destination = p.destination AND s.primary_key = p.primary_key
WHERE p.destination = ${dest} AND p.send AND p.run_id IN (${runs}) GROUP BY p.run_id, p.op`)) {
    counts.get(String(row['run_id']))!.succeeded[String(row['op']) as Op] = Number(row['acked']);
  }
  for (const row of await writer.query(`SELECT run_id, op, COUNT(*) AS n FROM ${rel('rejections')} WHERE destination = ${dest} AND run_id IN (${runs}) GROUP BY run_id, op`)) {
    counts.get(String(row['run_id']))!.failed[String(row['op']) as Op] = Number(row['n']);
  }
  for (const [id, { succeeded: ok, failed: ko }] of counts) {
    await writer.execute(`UPDATE ${rel('runs')} SET status = 'aborted', finished_at = ${d.currentTimestamp()},
  succeeded_add = ${ok.add}, succeeded_change = ${ok.change}, succeeded_remove = ${ok.remove}, failed_add = ${ko.add}, failed_change = ${ko.change}, failed_remove = ${ko.remove},
  message = 'killed before it finished; succeeded and failed counts reconstructed from its plan, the snapshot and its rejections'
WHERE run_id = ${d.literal(id)} AND destination = ${dest}`);
  }
}

/**
 * A run that went through its whole plan. Only such a run records its mapping: after a failed or
 * killed attempt at a full re-send, the next plan still sees the mapping as changed.
 */
function completed(status: SyncResult['status']): boolean {
  return status === 'success' || status === 'partial';
}

/** Runs that planned nothing (a failed plan) never sent anything: they do not open the window. */
async function oldestRunSinceSuccess(writer: Session, d: Dialect, contract: Contract, runId: string): Promise<Date> {
  const runs = d.quoteRelation(stateRelation(contract.relation.database, 'runs'));
  const dest = d.literal(contract.name);
  const [row] = await writer.query(`SELECT MIN(r.started_at) AS since FROM ${runs} AS r WHERE r.destination = ${dest}
    AND (r.run_id = ${d.literal(runId)} OR r.planned_add + r.planned_change + r.planned_remove > 0)
    AND NOT EXISTS (SELECT 1 FROM ${runs} AS s WHERE s.destination = ${dest} AND s.status IN ('success', 'partial') AND s.started_at >= r.started_at)`);
  return timestampAsDate(row?.['since']) ?? new Date();
}

/**
 * The run's records still to send, in send order, in batches of the contract's size. Read in
 * windows of at most PENDING_WINDOW plan rows (by seq): the warehouse sorts and holds one window, not the
 * whole plan, and Node one batch of it at a time (plus the batches in flight).
 */
async function* pendingBatches(reader: Session, d: Dialect, contract: Contract, runId: string, lastSeq: number): AsyncIterable<PlannedRecord[]> {
  let pending: PlannedRecord[] = [];
  // The first window is a few batches, so the first one leaves without waiting for a sort of
  // PENDING_WINDOW rows; each next window doubles, up to PENDING_WINDOW.
  const first = Math.min(PENDING_WINDOW, 2 * contract.batchSize * contract.delivery.concurrency);
  for (let from = 1, size = first; from <= lastSeq; from += size, size = Math.min(PENDING_WINDOW, 2 * size)) {
    // Read as columns: no object per row on the way from the warehouse to the record.
    for await (const columns of reader.streamColumns(pendingSql(d, contract, runId, from, from + size), contract.batchSize)) {
      // A window's last batch is usually short: topped up from the next window.
      const records = plannedRecords(contract, columns);
      pending = pending.length === 0 ? records : pending.concat(records);
      while (pending.length >= contract.batchSize) {
        yield pending.slice(0, contract.batchSize);
        pending = pending.slice(contract.batchSize);
      }
    }
  }
  if (pending.length > 0) yield pending;
}

type AckJob = { kind: 'ack' } & Acknowledged;
/** Work for the writer session: marking a batch in doubt before it is sent, or committing acknowledged batches. */
type WriterJob = { kind: 'mark'; seqs: number[] } | AckJob;

/**
 * Runs the writer's jobs one at a time, in order. Acknowledgements that queued up while the
 * previous job ran are committed together, in one transaction (group commit): each still commits
 * as soon as the writer is free, and only acknowledged records, so state advances per
 * acknowledged batch, but a slow commit no longer holds back the batches behind it one by one.
 * (At most `delivery.concurrency` batches are in flight, so a group is at most that many.)
 */
function serialWriter(run: (jobs: WriterJob[]) => Promise<void>): (job: WriterJob) => Promise<void> {
  const queue: { job: WriterJob; resolve: () => void; reject: (error: unknown) => void }[] = [];
  let running = false;
  const drain = async () => {
    running = true;
    while (queue.length > 0) {
      let n = 1;
      if (queue[0]!.job.kind === 'ack') while (n < queue.length && queue[n]!.job.kind === 'ack') n++;
      const group = queue.splice(0, n);
      try {
        await run(group.map((q) => q.job));
        for (const q of group) q.resolve();
      } catch (error) {
        for (const q of group) q.reject(error);
      }
    }
    running = false;
  };
  return (job) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ job, resolve, reject });
      if (!running) void drain();
    });
}

/**
 * Deletion requests (docs/privacy.md): an acknowledged erasure marks the request done for this
 * destination once no snapshot row of its profiles is left, and scrubs the person's keys and
 * payloads from the plans and rejections of past runs; a rejected one is marked failed with the
 * reason and retried by the next sync, like any rejected record.
 */
function erasureStatements(d: Dialect, contract: Contract, acked: OutboundRecord[], rejected: { record: OutboundRecord; reason: string }[]): string[] {
  const db = contract.relation.database;
  const dest = d.literal(contract.name);
  const erasedKeys = acked.filter((r) => r.removal === 'erase').map((r) => d.literal(r.key));
  const failed = rejected.filter(({ record }) => record.removal === 'erase');
  if (erasedKeys.length === 0 && failed.length === 0) return [];
  const propagation = d.quoteRelation(privacyRelation(db, 'propagation'));
  const requestProfiles = d.quoteRelation(privacyRelation(db, 'request_profiles'));
  const snapshots = d.quoteRelation(stateRelation(db, 'snapshots'));
  const now = d.currentTimestamp();
  const statements: string[] = [];
  if (erasedKeys.length > 0) {
    const keys = erasedKeys.join(', ');
    statements.push(
      `DELETE FROM ${d.quoteRelation(stateRelation(db, 'plans'))} WHERE destination = ${dest} AND primary_key IN (${keys})`,
      `DELETE FROM ${d.quoteRelation(stateRelation(db, 'rejections'))} WHERE destination = ${dest} AND primary_key IN (${keys})`,
      `UPDATE ${propagation} AS pg SET status = 'done', reason = NULL, updated_at = ${now}, confirmed_at = ${now}, attempts = pg.attempts + 1
WHERE pg.destination = ${dest} AND pg.status <> 'done'
  AND NOT EXISTS (SELECT 1 FROM ${requestProfiles} AS rp JOIN ${snapshots} AS s ON s.profile_id = rp.profile_id WHERE rp.request_id = pg.request_id AND s.destination = ${dest})`,
    );
  }
  for (const { record, reason } of failed) {
    const profile = profileIdOf(record);
    if (profile === null) continue;
    statements.push(`UPDATE ${propagation} AS pg SET status = 'failed', reason = ${d.literal(redact(reason))}, updated_at = ${now}, attempts = pg.attempts + 1
WHERE pg.destination = ${dest} AND pg.status <> 'done' AND pg.request_id IN (SELECT request_id FROM ${requestProfiles} WHERE profile_id = ${d.literal(profile)})`);
  }
  return statements;
}

/** A warehouse error while committing: not the destination's fault, so it propagates. */
class WarehouseFailure extends Error {
  constructor(override readonly cause: unknown) {
    super(errorMessage(cause));
  }
}

/**
 * A record of the run's plan: what the connector sees, plus (private) its plan row, where its
 * snapshot row is copied from once acknowledged, and whose profile it is.
 */
class PlannedRecord implements OutboundRecord {
  readonly idempotencyKey: string;
  removal?: OutboundRecord['removal'];
  meta?: RecordMeta;
  #payload: Record<string, unknown> | undefined;
  readonly #seq: number;
  readonly #profileId: string | null;

  constructor(contract: Contract, seq: number, readonly op: Op, readonly key: string, readonly payloadHash: string, readonly payloadJson: string, profileId: string | null) {
    this.idempotencyKey = idempotencyKey(contract.name, key, op, payloadHash);
    this.#seq = seq;
    this.#profileId = profileId;
  }

  /** Parsed on first use: a connector that splices payloadJson never pays for it. */
  get payload(): Record<string, unknown> {
    return (this.#payload ??= JSON.parse(this.payloadJson) as Record<string, unknown>);
  }

  static seqOf(record: OutboundRecord): number {
    return (record as PlannedRecord).#seq;
  }

  static profileIdOf(record: OutboundRecord): string | null {
    return (record as PlannedRecord).#profileId;
  }
}

/** Only the engine makes the records it commits: each is a PlannedRecord. */
const seqOf = (record: OutboundRecord): number => PlannedRecord.seqOf(record);
const profileIdOf = (record: OutboundRecord): string | null => PlannedRecord.profileIdOf(record);

/** The records of a batch of pendingSql's columns. */
function plannedRecords(contract: Contract, batch: ColumnBatch): PlannedRecord[] {
  const { seq, op, primary_key: key, payload, payload_hash: hash, reason, profile_id: profile, meta } = batch.columns;
  const records = new Array<PlannedRecord>(batch.rowCount);
  for (let i = 0; i < batch.rowCount; i++) {
    const p = profile![i];
    const record = new PlannedRecord(contract, Number(seq![i]), String(op![i]) as Op, String(key![i]), String(hash![i]), String(payload![i]), p === null || p === undefined ? null : String(p));
    if (record.op === 'remove') record.removal = reason![i] === 'privacy' ? 'erase' : contract.onRemove === 'clear' ? 'clear' : 'delete';
    const m = meta![i];
    if (typeof m === 'string' && m !== '') record.meta = JSON.parse(m) as RecordMeta;
    records[i] = record;
  }
  return records;
}

/** A (sub-)batch the destination answered, with its per-record results. */
interface Acknowledged {
  batch: OutboundRecord[];
  results: RecordResult[];
}

/**
 * Advances the snapshot for exactly the acknowledged records, and stores the rejections, in one
 * transaction, for one or more acknowledged batches (those acknowledged while the previous commit
 * ran: see `serialWriter`).
 */
async function commitBatch(
  writer: Session,
  d: Dialect,
  contract: Contract,
  runId: string,
  parts: readonly Acknowledged[],
  result: SyncResult,
): Promise<void> {
  const db = contract.relation.database;
  const snapshots = d.quoteRelation(stateRelation(db, 'snapshots'));
  const rejections = d.quoteRelation(stateRelation(db, 'rejections'));
  const dest = d.literal(contract.name);
  const outcome = new Map<OutboundRecord, RecordResult | undefined>();
  for (const { batch, results } of parts) {
    const byKey = new Map(results.map((r) => [r.key, r]));
    for (const record of batch) outcome.set(record, byKey.get(record.key));
  }
  const batch = [...outcome.keys()];
  const acked: OutboundRecord[] = [];
  const metaOf = (r: OutboundRecord): string | null => {
    const result = outcome.get(r);
    const fresh = result?.ok ? result.meta : undefined;
    if (r.meta === undefined && fresh === undefined) return null;
    const merged = { ...r.meta, ...fresh };
    return Object.keys(merged).length > 0 ? JSON.stringify(merged) : null;
  };
  const rejected: { record: OutboundRecord; reason: string }[] = [];
  for (const [record, r] of outcome) {
    if (r?.ok) acked.push(record);
    else rejected.push({ record, reason: r ? r.reason : 'no result returned by the destination' });
  }
  const statements: string[] = [];
  // An add had no snapshot row when planned, and only this run (it holds the lock) writes this
  // destination's snapshot since, each key once: only changes and removes replace a row.
  const replaced = acked.filter((r) => r.op !== 'add');
  if (replaced.length > 0) {
    statements.push(`DELETE FROM ${snapshots} WHERE destination = ${dest} AND primary_key IN (${replaced.map((r) => d.literal(r.key)).join(', ')})`);
  }
  const kept = acked.filter((r) => r.op !== 'remove');
  if (kept.length > 0) {
    const meta = new Map<number, string>();
    for (const r of kept) {
      const m = metaOf(r);
      if (m !== null) meta.set(seqOf(r), m);
    }
    statements.push(snapshotInsertSql(d, contract, runId, kept.map(seqOf), meta));
  }
  if (rejected.length > 0) {
    const rows = rejected
      .map(({ record, reason }) => `SELECT ${d.literal(record.key)} AS primary_key, ${d.literal(record.op)} AS op, ${d.literal(redact(reason))} AS reason, ${d.literal(record.payloadHash)} AS payload_hash`)
      .join(' UNION ALL ');
    // Quarantined when rejected in `quarantine_after` separate runs with this payload (this run included).
    const after = contract.delivery.quarantineAfter;
    const status = after === undefined
      ? `'rejected'`
      : `CASE WHEN 1 + (SELECT COUNT(DISTINCT r.run_id) FROM ${rejections} AS r WHERE r.destination = ${dest} AND r.primary_key = v.primary_key AND r.op = v.op AND r.payload_hash = v.payload_hash AND r.run_id <> ${d.literal(runId)}) >= ${after} THEN 'quarantined' ELSE 'rejected' END`;
    statements.push(`INSERT INTO ${rejections} (run_id, destination, primary_key, op, reason, attempts, rejected_at, status, payload_hash)
      SELECT ${d.literal(runId)}, ${dest}, v.primary_key, v.op, v.reason,
        1 + (SELECT COUNT(*) FROM ${rejections} AS r WHERE r.destination = ${dest} AND r.primary_key = v.primary_key), ${d.currentTimestamp()},
        ${status}, v.payload_hash
      FROM (${rows}) AS v`);
  }
  if (contract.connector.capabilities.deduplicates === false) {
    statements.push(`DELETE FROM ${d.quoteRelation(stateRelation(db, 'in_doubt'))} WHERE destination = ${dest} AND primary_key IN (${batch.map((r) => d.literal(r.key)).join(', ')})`);
  }
  statements.push(...erasureStatements(d, contract, acked, rejected));
  // A revocation time is only planned for removes; the statement picks those among the acknowledged.
  const removed = acked.filter((r) => r.op === 'remove' && r.removal !== 'erase');
  if (removed.length > 0) statements.push(consentRemovalsSql(d, contract, runId, removed.map(seqOf)));
  // One statement is atomic by itself: no BEGIN/COMMIT round trips (the common batch of adds).
  if (statements.length === 1) await writer.execute(statements[0]!);
  else if (statements.length > 1) for (const sql of d.atomically(statements, 'dml')) await writer.execute(sql);
  const quarantined = new Set<string>();
  if (contract.delivery.quarantineAfter !== undefined && rejected.length > 0) {
    const rows = await writer.query(`SELECT primary_key FROM ${rejections} WHERE run_id = ${d.literal(runId)} AND destination = ${dest} AND status = 'quarantined'
      AND primary_key IN (${rejected.map(({ record }) => d.literal(record.key)).join(', ')})`);
    for (const row of rows) quarantined.add(String(row['primary_key']));
  }
  for (const r of acked) result.succeeded[r.op]++;
  for (const { record, reason } of rejected) {
    result.failed[record.op]++;
    const status = quarantined.has(record.key) ? { status: 'quarantined' as const } : {};
    if (result.rejections.length < 10) result.rejections.push({ primary_key: record.key, op: record.op, reason, ...status });
  }
}
