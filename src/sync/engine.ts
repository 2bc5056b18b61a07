import { createHash } from 'node:crypto';
import { errorMessage } from '../errors.js';
import type { Destination, OutboundRecord, RecordMeta, RecordResult } from '../destinations/destination.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Row, Session } from '../warehouse/warehouse.js';
import { privacyRelation } from '../privacy/tables.js';
import type { PrivacyKey } from '../privacy/key.js';
import type { Contract } from './contract.js';
import { deliverer, DestinationStopped } from './delivery.js';
import { acquireLock, lockHolder, releaseLock } from './lock.js';
import { planWithDiff, type Op, type OpCounts } from './plan.js';
import { createStateSql, STATE_COLUMNS, stateRelation, type StateTable } from './sql.js';

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
  /** The privacy key, for contracts that map a field through `token`. */
  privacyKey?: PrivacyKey;
  /** Called after each acknowledged batch: progress output. */
  onBatch?: (done: number, total: number) => void;
}

/** sha256(destination|key|payload_hash); a remove hashes `remove:<last payload_hash>`, so it never equals the add. */
export function idempotencyKey(destination: string, key: string, op: Op, payloadHash: string): string {
  return createHash('sha256').update(`${destination}|${key}|${op === 'remove' ? `remove:${payloadHash}` : payloadHash}`).digest('hex');
}

function zero(): OpCounts {
  return { add: 0, change: 0, remove: 0 };
}

/** Creates the state tables, and adds the columns later versions introduced to tables an older version created. */
export async function ensureState(session: Session, d: Dialect, database: string | undefined): Promise<void> {
  for (const sql of createStateSql(d, database)) await session.execute(sql);
  for (const table of Object.keys(STATE_COLUMNS) as StateTable[]) {
    const relation = stateRelation(database, table);
    const info = await session.describe(relation);
    const have = new Set((info?.columns ?? []).map((c) => c.name.toLowerCase()));
    for (const [name, type] of STATE_COLUMNS[table]) {
      if (!have.has(name)) await session.execute(`ALTER TABLE ${d.quoteRelation(relation)} ADD COLUMN ${d.quoteIdentifier(name)} ${d.types[type]}`);
    }
  }
}

/**
 * Plans and sends one destination. State advances only for acknowledged records, one
 * transaction per batch (invariant 4), so a sync killed at any point and rerun re-diffs and
 * sends only what was not acknowledged. `writer` holds the lock and commits state; `reader`
 * streams the run's plan, one batch at a time.
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
    await writer.execute(`UPDATE ${rel('runs')} SET status = 'aborted', finished_at = ${d.currentTimestamp()} WHERE destination = ${dest} AND status = 'running'`);
    const { plan, diff } = await planWithDiff(writer, d, contract, options.privacyKey);
    result.planned = { ...plan.planned };
    result.removed_for_consent = plan.removed_for_consent;
    result.rejected_before_sending = { ...plan.rejected };
    await writer.execute(`INSERT INTO ${rel('runs')} (run_id, destination, status, started_at, planned_add, planned_change, planned_remove, succeeded_add, succeeded_change, succeeded_remove, failed_add, failed_change, failed_remove, excluded_consent, mapping_hash)
      VALUES (${run}, ${dest}, 'running', ${d.currentTimestamp()}, ${plan.planned.add}, ${plan.planned.change}, ${plan.planned.remove}, 0, 0, 0, 0, 0, 0, ${plan.rejected.consent}, ${d.literal(contract.mappingHash)})`);
    runRecorded = true;
    // The run's plan, materialised: the audit record, and what the delivery loop streams.
    await writer.execute(`INSERT INTO ${rel('plans')} (run_id, destination, op, primary_key, payload, payload_hash, reason, send, profile_id, revoked_at)
      SELECT ${run}, ${dest}, op, primary_key, payload, payload_hash, reason, send, profile_id, revoked_at FROM (\n${diff}\n) AS diff`);

    const guarded = contract.connector.capabilities.deduplicates === false;
    if (guarded) {
      for (const [op, n] of await holdInDoubt(writer, d, contract, options)) {
        result.planned[op] -= n;
        result.in_doubt += n;
      }
    }

    // Quarantined records (same op and payload as when quarantined) are not sent again.
    const quarantined = `EXISTS (SELECT 1 FROM ${rel('rejections')} AS q WHERE q.destination = ${dest} AND q.primary_key = p.primary_key AND q.op = p.op AND q.payload_hash = p.payload_hash AND q.status = 'quarantined')`;
    const planned = `FROM ${rel('plans')} AS p WHERE p.run_id = ${run} AND p.destination = ${dest} AND p.send`;
    for (const row of await writer.query(`SELECT p.op, COUNT(*) AS n ${planned} AND ${quarantined} GROUP BY p.op`)) {
      const n = Number(row['n']);
      result.planned[String(row['op']) as Op] -= n;
      result.quarantined += n;
    }
    const total = result.planned.add + result.planned.change + result.planned.remove;
    if (total > 0) {
      connector = await contract.connector.open({ destination: contract.name, object: contract.object, runId: options.runId, projectRoot: options.projectRoot, mode: contract.mode, options: contract.options });
      // The connector gets back what it kept per record (RecordMeta) with the last acknowledgement.
      const pending = `SELECT p.op, p.primary_key, p.payload, p.payload_hash, p.reason, p.profile_id, p.revoked_at, s.meta FROM ${rel('plans')} AS p
        LEFT JOIN ${rel('snapshots')} AS s ON s.destination = p.destination AND s.primary_key = p.primary_key
        WHERE p.run_id = ${run} AND p.destination = ${dest} AND p.send AND NOT ${quarantined} ORDER BY p.op, p.primary_key`;
      const delivery = deliverer(connector, contract.delivery, !guarded);
      const raw = new Map<OutboundRecord, PlannedRow>();
      let done = 0;
      // Commits are serialised on the writer session: one transaction per acknowledged (sub-)batch.
      let commits: Promise<unknown> = Promise.resolve();
      const acknowledge = (batch: OutboundRecord[], results: RecordResult[]): Promise<void> => {
        const next = commits.then(async () => {
          await commitBatch(writer, d, contract, options.runId, batch, results, result, raw);
          done += batch.length;
          options.onBatch?.(done, total);
        });
        commits = next.catch(() => undefined);
        return next.catch((error: unknown) => {
          throw new WarehouseFailure(error);
        });
      };
      const inFlight = new Set<Promise<void>>();
      let fatal: unknown;
      for await (const rows of reader.stream(pending, contract.batchSize)) {
        const batch = rows.map((row) => {
          const record = toRecord(contract, row);
          raw.set(record, plannedRow(row));
          return record;
        });
        // Before a non-deduplicating destination sees a batch, its records are marked in doubt
        // (committed); the commit of their outcome clears the marks.
        if (guarded) {
          // Serialised with the commits: the writer session must never interleave two transactions.
          const marking = commits.then(() => markInDoubt(writer, d, contract, options.runId, batch));
          commits = marking.catch(() => undefined);
          await marking;
        }
        const sending: Promise<void> = delivery
          .deliver(batch, acknowledge)
          .catch((error: unknown) => {
            fatal ??= error;
            delivery.stop();
          })
          .finally(() => {
            inFlight.delete(sending);
            for (const r of batch) raw.delete(r);
          });
        inFlight.add(sending);
        while (inFlight.size >= contract.delivery.concurrency) await Promise.race(inFlight);
        if (fatal !== undefined) break;
      }
      await Promise.all(inFlight);
      await commits;
      if (fatal instanceof WarehouseFailure) throw fatal.cause;
      if (fatal !== undefined) {
        // Nothing more is sent; what was acknowledged is committed: stop cleanly, state intact.
        result.status = 'failed';
        result.message = fatal instanceof DestinationStopped ? fatal.message : errorMessage(fatal);
      }
    }
    if (result.in_doubt > 0) {
      const note = `${result.in_doubt} record(s) in doubt not sent: a crashed run may have delivered them, and \`${contract.type}\` cannot deduplicate; check the destination, then \`cdp sync --resend-in-doubt\` to send them again`;
      result.message = result.message ? `${result.message}; ${note}` : note;
    }
    if (result.quarantined > 0) {
      const note = `${result.quarantined} quarantined record(s) not sent (status quarantined in cdp_sync.rejections); each is sent again once its payload changes`;
      result.message = result.message ? `${result.message}; ${note}` : note;
    }
    const failed = result.failed.add + result.failed.change + result.failed.remove;
    if (result.status !== 'failed' && failed > 0) result.status = 'partial';
    return result;
  } catch (error) {
    result.status = 'failed';
    result.message = errorMessage(error);
    throw error;
  } finally {
    await connector?.close().catch(() => undefined);
    if (runRecorded) {
      const c = (k: 'succeeded' | 'failed', op: Op) => result[k][op];
      await writer.execute(`UPDATE ${rel('runs')} SET status = ${d.literal(result.status)}, finished_at = ${d.currentTimestamp()},
        planned_add = ${result.planned.add}, planned_change = ${result.planned.change}, planned_remove = ${result.planned.remove},
        succeeded_add = ${c('succeeded', 'add')}, succeeded_change = ${c('succeeded', 'change')}, succeeded_remove = ${c('succeeded', 'remove')},
        failed_add = ${c('failed', 'add')}, failed_change = ${c('failed', 'change')}, failed_remove = ${c('failed', 'remove')},
        message = ${d.literal(result.message ?? null)}
        WHERE run_id = ${run} AND destination = ${dest}`).catch(() => undefined);
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
  const held = `EXISTS (SELECT 1 FROM ${inDoubt} AS i WHERE i.destination = ${dest} AND i.primary_key = p.primary_key AND i.payload_hash = p.payload_hash)`;
  const rows = await writer.query(`SELECT p.op, COUNT(*) AS n FROM ${plans} AS p WHERE p.run_id = ${d.literal(options.runId)} AND p.destination = ${dest} AND p.send AND ${held} GROUP BY p.op`);
  if (rows.length > 0) await writer.execute(`UPDATE ${plans} AS p SET send = FALSE, reason = 'in_doubt' WHERE p.run_id = ${d.literal(options.runId)} AND p.destination = ${dest} AND p.send AND ${held}`);
  return rows.map((row) => [String(row['op']) as Op, Number(row['n'])]);
}

async function markInDoubt(writer: Session, d: Dialect, contract: Contract, runId: string, batch: OutboundRecord[]): Promise<void> {
  await writer.execute(`INSERT INTO ${d.quoteRelation(stateRelation(contract.relation.database, 'in_doubt'))} (destination, primary_key, payload_hash, run_id, marked_at) VALUES\n${batch
    .map((r) => `(${d.literal(contract.name)}, ${d.literal(r.key)}, ${d.literal(r.payloadHash)}, ${d.literal(runId)}, ${d.currentTimestamp()})`)
    .join(',\n')}`);
}

/** What the engine keeps about each record in flight, beyond what the connector sees. */
interface PlannedRow {
  /** The canonical payload text, stored as the snapshot when acknowledged. */
  payload: string;
  profileId: string | null;
  reason: string | null;
  /** For removals for lost consent: when consent was revoked (a timestamp as the warehouse returns it). */
  revokedAt: unknown;
}

function plannedRow(row: Row): PlannedRow {
  const text = (v: unknown) => (v === null || v === undefined ? null : String(v));
  return { payload: String(row['payload']), profileId: text(row['profile_id']), reason: text(row['reason']), revokedAt: row['revoked_at'] ?? null };
}

/**
 * Deletion requests (docs/privacy.md): an acknowledged erasure marks the request done for this
 * destination once no snapshot row of its profiles is left, and scrubs the person's keys and
 * payloads from the plans and rejections of past runs; a rejected one is marked failed with the
 * reason and retried by the next sync, like any rejected record.
 */
function erasureStatements(d: Dialect, contract: Contract, acked: OutboundRecord[], rejected: { record: OutboundRecord; reason: string }[], raw: Map<OutboundRecord, PlannedRow>): string[] {
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
    const profile = raw.get(record)?.profileId;
    if (profile === null || profile === undefined) continue;
    statements.push(`UPDATE ${propagation} AS pg SET status = 'failed', reason = ${d.literal(reason)}, updated_at = ${now}, attempts = pg.attempts + 1
WHERE pg.destination = ${dest} AND pg.status <> 'done' AND pg.request_id IN (SELECT request_id FROM ${requestProfiles} WHERE profile_id = ${d.literal(profile)})`);
  }
  return statements;
}

/** Acknowledged removals for lost consent, with the revocation time: consent propagation latency. */
function consentRemovalStatements(d: Dialect, contract: Contract, runId: string, acked: OutboundRecord[], raw: Map<OutboundRecord, PlannedRow>): string[] {
  const rows = acked.map((r) => raw.get(r)).filter((p): p is PlannedRow => p?.reason === 'consent' && p.profileId !== null && p.revokedAt !== null);
  if (rows.length === 0) return [];
  const timestamp = (v: unknown) => `CAST(${d.literal(v instanceof Date ? v.toISOString().replace('T', ' ').replace('Z', '') : String(v))} AS ${d.types.timestamp})`;
  return [`INSERT INTO ${d.quoteRelation(stateRelation(contract.relation.database, 'consent_removals'))} (run_id, destination, profile_id, revoked_at, removed_at) VALUES\n${rows
    .map((p) => `(${d.literal(runId)}, ${d.literal(contract.name)}, ${d.literal(p.profileId)}, ${timestamp(p.revokedAt)}, ${d.currentTimestamp()})`)
    .join(',\n')}`];
}

/** A warehouse error while committing: not the destination's fault, so it propagates. */
class WarehouseFailure extends Error {
  constructor(override readonly cause: unknown) {
    super(errorMessage(cause));
  }
}

function toRecord(contract: Contract, row: Row): OutboundRecord {
  const op = String(row['op']) as Op;
  const key = String(row['primary_key']);
  const payloadHash = String(row['payload_hash']);
  const payload = JSON.parse(String(row['payload'])) as Record<string, unknown>;
  const record: OutboundRecord = { op, key, idempotencyKey: idempotencyKey(contract.name, key, op, payloadHash), payloadHash, payload };
  if (op === 'remove') record.removal = row['reason'] === 'privacy' ? 'erase' : contract.onRemove === 'clear' ? 'clear' : 'delete';
  const meta = row['meta'];
  if (typeof meta === 'string' && meta !== '') record.meta = JSON.parse(meta) as RecordMeta;
  return record;
}

/** Advances the snapshot for exactly the acknowledged records, and stores the rejections, in one transaction. */
async function commitBatch(
  writer: Session,
  d: Dialect,
  contract: Contract,
  runId: string,
  batch: OutboundRecord[],
  results: RecordResult[],
  result: SyncResult,
  raw: Map<OutboundRecord, PlannedRow>,
): Promise<void> {
  const db = contract.relation.database;
  const snapshots = d.quoteRelation(stateRelation(db, 'snapshots'));
  const rejections = d.quoteRelation(stateRelation(db, 'rejections'));
  const dest = d.literal(contract.name);
  const byKey = new Map(results.map((r) => [r.key, r]));
  const acked: OutboundRecord[] = [];
  const metaOf = (r: OutboundRecord): string | null => {
    const result = byKey.get(r.key);
    const merged = { ...r.meta, ...(result?.ok ? result.meta : undefined) };
    return Object.keys(merged).length > 0 ? JSON.stringify(merged) : null;
  };
  const rejected: { record: OutboundRecord; reason: string }[] = [];
  for (const record of batch) {
    const r = byKey.get(record.key);
    if (r?.ok) acked.push(record);
    else rejected.push({ record, reason: r ? r.reason : 'no result returned by the destination' });
  }
  const statements: string[] = [];
  if (acked.length > 0) {
    statements.push(`DELETE FROM ${snapshots} WHERE destination = ${dest} AND primary_key IN (${acked.map((r) => d.literal(r.key)).join(', ')})`);
    const kept = acked.filter((r) => r.op !== 'remove');
    if (kept.length > 0) {
      statements.push(`INSERT INTO ${snapshots} (destination, primary_key, payload_hash, payload, synced_at, meta, profile_id) VALUES\n${kept
        .map((r) => `(${dest}, ${d.literal(r.key)}, ${d.literal(r.payloadHash)}, ${d.literal(raw.get(r)?.payload ?? JSON.stringify(r.payload))}, ${d.currentTimestamp()}, ${d.literal(metaOf(r))}, ${d.literal(raw.get(r)?.profileId ?? null)})`)
        .join(',\n')}`);
    }
  }
  if (rejected.length > 0) {
    const rows = rejected
      .map(({ record, reason }) => `SELECT ${d.literal(record.key)} AS primary_key, ${d.literal(record.op)} AS op, ${d.literal(reason)} AS reason, ${d.literal(record.payloadHash)} AS payload_hash`)
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
  statements.push(...erasureStatements(d, contract, acked, rejected, raw), ...consentRemovalStatements(d, contract, runId, acked, raw));
  if (statements.length > 0) for (const sql of d.atomically(statements, 'dml')) await writer.execute(sql);
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
