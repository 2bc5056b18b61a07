import { createHash } from 'node:crypto';
import type { Relation } from '../compile/node.js';
import type { ColumnType, Dialect } from '../warehouse/dialect.js';
import type { Contract, MappedField } from './contract.js';
import { erasedProfilesSql } from '../privacy/tables.js';

/**
 * The SQL of the sync engine. All set work (the diff, the key checks, consent) runs in the
 * warehouse; Node only streams the planned records of one destination, a batch at a time.
 */

export const STATE_SCHEMA = 'cdp_sync';

export type StateTable = 'snapshots' | 'runs' | 'rejections' | 'locks' | 'plans' | 'consent_removals' | 'in_doubt';

export const STATE_COLUMNS: Record<StateTable, readonly (readonly [string, ColumnType])[]> = {
  // The last ACKNOWLEDGED payload per destination and key (not only its hash: a remove needs the
  // identifiers that were sent).
  // `meta`: JSON of what the connector keeps per record (RecordMeta: a remote id, a created flag).
  // `profile_id`: whose row it is (when the model has the column), so a deletion request finds it.
  // `fingerprint`: Dialect.fingerprint of the mapped values, made by `fingerprint_version`
  // (fingerprintVersionSql): rows whose version is current are compared by fingerprint alone.
  snapshots: [
    ['destination', 'string'], ['primary_key', 'string'], ['payload_hash', 'string'], ['payload', 'string'], ['synced_at', 'timestamp'], ['meta', 'string'], ['profile_id', 'string'],
    ['fingerprint', 'bigint'], ['fingerprint_version', 'bigint'],
  ],
  runs: [
    ['run_id', 'string'], ['destination', 'string'], ['status', 'string'], ['started_at', 'timestamp'], ['finished_at', 'timestamp'],
    ['planned_add', 'bigint'], ['planned_change', 'bigint'], ['planned_remove', 'bigint'],
    ['succeeded_add', 'bigint'], ['succeeded_change', 'bigint'], ['succeeded_remove', 'bigint'],
    ['failed_add', 'bigint'], ['failed_change', 'bigint'], ['failed_remove', 'bigint'],
    ['excluded_consent', 'bigint'], ['message', 'string'], ['mapping_hash', 'string'],
  ],
  rejections: [
    ['run_id', 'string'], ['destination', 'string'], ['primary_key', 'string'], ['op', 'string'], ['reason', 'string'], ['attempts', 'integer'], ['rejected_at', 'timestamp'],
    ['status', 'string'], ['payload_hash', 'string'],
  ],
  locks: [['destination', 'string'], ['holder', 'string'], ['acquired_at', 'timestamp']],
  // What each run intended to send (reconciliation); the delivery loop streams from here, and
  // acknowledged records are copied from here into snapshots. `seq`: the row's place in the run's
  // send order (op, then key), so the loop reads the plan in bounded windows and a batch's rows are
  // found by a range, not by their keys. `meta`: the snapshot's meta when planned (changes and
  // removes), handed back to the connector. Kept for the last PLAN_RETENTION_RUNS completed runs.
  plans: [
    ['run_id', 'string'], ['destination', 'string'], ['op', 'string'], ['primary_key', 'string'], ['payload', 'string'], ['payload_hash', 'string'], ['reason', 'string'], ['send', 'boolean'],
    ['profile_id', 'string'], ['revoked_at', 'timestamp'], ['seq', 'bigint'], ['meta', 'string'], ['fingerprint', 'bigint'], ['fingerprint_version', 'bigint'],
  ],
  // Records handed to a connector that cannot deduplicate, until their outcome is committed: a
  // row left here by a crash is in doubt, and is not resent without --resend-in-doubt.
  in_doubt: [['destination', 'string'], ['primary_key', 'string'], ['payload_hash', 'string'], ['run_id', 'string'], ['marked_at', 'timestamp']],
  // Acknowledged removals for lost consent, with when consent was revoked: consent propagation latency.
  consent_removals: [['run_id', 'string'], ['destination', 'string'], ['profile_id', 'string'], ['revoked_at', 'timestamp'], ['removed_at', 'timestamp']],
};

export function stateRelation(database: string | undefined, table: StateTable): Relation {
  return database ? { database, schema: STATE_SCHEMA, name: table } : { schema: STATE_SCHEMA, name: table };
}

/** One mapped field as an SQL expression over the model row `m`. */
export function fieldExpression(d: Dialect, field: MappedField): string {
  let expr = `m.${d.quoteIdentifier(field.column)}`;
  const text = (e: string) => `CAST(${e} AS ${d.types.string})`;
  for (const t of field.transforms) {
    if (t === 'trim') expr = `TRIM(${text(expr)})`;
    else if (t === 'lower') expr = `LOWER(${text(expr)})`;
    // Normalise, then hash: identifiers are compared after trimming and lower-casing.
    else if (t === 'sha256') expr = d.sha256Hex(`LOWER(TRIM(${text(expr)}))`);
    else expr = d.hmacSha256Hex(`LOWER(TRIM(${text(expr)}))`);
  }
  switch (field.type) {
    case 'string': return text(expr);
    case 'number': return `CAST(${expr} AS ${d.types.float})`;
    case 'integer': return `CAST(${expr} AS ${d.types.bigint})`;
    case 'boolean': return `CAST(${expr} AS ${d.types.boolean})`;
    default: return expr;
  }
}

/**
 * A field's value as the payload carries it: NaN and ±Infinity become NULL for a `number` field
 * or an unmapped-type field over a floating-point column, since JSON cannot hold them (the JSON
 * would be invalid and the destination would fail on every run).
 */
function payloadFieldExpression(d: Dialect, field: MappedField, columnTypes: Readonly<Record<string, string>>): string {
  const expr = fieldExpression(d, field);
  const floating = field.type === 'number' || (field.type === undefined && field.transforms.length === 0 && d.isFloatingPointType(columnTypes[field.column.toLowerCase()] ?? ''));
  return floating ? d.finiteOrNull(expr) : expr;
}

/** The mapped fields in sorted field order: the payload's and the fingerprint's order. */
function sortedMapping(contract: Contract): MappedField[] {
  return [...contract.mapping].sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
}

/** The canonical payload of already computed field values (in sortedMapping order). */
function payloadOf(d: Dialect, contract: Contract, values: readonly string[]): string {
  return `CAST(${d.jsonObject(sortedMapping(contract).map((f, i) => [f.target, values[i]!]))} AS ${d.types.string})`;
}

/**
 * The canonical payload: a JSON object of the mapped fields in sorted field order (the contract
 * loader sorts them), so neither the model's column order nor the mapping's key order matters.
 */
export function payloadExpression(d: Dialect, contract: Contract): string {
  return payloadOf(d, contract, sortedMapping(contract).map((f) => fieldExpression(d, f)));
}

/** The fingerprint of a model row `m`: of its mapped values, in sorted field order. */
export function fingerprintExpression(d: Dialect, contract: Contract): string {
  return d.fingerprint(sortedMapping(contract).map((f) => fieldExpression(d, f)));
}

/** Bumped when what a fingerprint covers changes: every stored fingerprint then becomes stale. */
const FINGERPRINT_FORMAT = 1;

/**
 * What made a fingerprint: the engine's fingerprint function, probed on fixed values of the
 * common types (an engine upgrade that changes it changes the probe), and a seed naming the
 * mapping and the model's types of the mapped columns (neither is in the fingerprint itself).
 * Stored with every fingerprint; one made by another version is not compared, the payload text
 * is (docs/destinations.md), so a new engine version or mapping never makes a row look changed.
 * `columnTypes`: the model's type per mapped column, from the warehouse.
 */
export function fingerprintVersionSql(d: Dialect, contract: Contract, columnTypes: Readonly<Record<string, string>>): string {
  const seed = createHash('sha256')
    .update(JSON.stringify([FINGERPRINT_FORMAT, contract.mappingHash, sortedMapping(contract).map((f) => columnTypes[f.column.toLowerCase()] ?? null)]))
    .digest('hex');
  const t = d.types;
  const probe = [
    d.literal(seed), d.literal(''), `CAST(NULL AS ${t.string})`, `CAST(-1 AS ${t.bigint})`, `CAST(1.5 AS ${t.float})`, 'TRUE',
    `CAST('2020-02-29' AS ${t.date})`, `CAST('2020-02-29 12:34:56.789' AS ${t.timestamp})`,
  ];
  return d.fingerprint(probe);
}

function keyExpression(d: Dialect, contract: Contract): string {
  return `CAST(m.${d.quoteIdentifier(contract.primaryKey)} AS ${d.types.string})`;
}

function consentExpression(d: Dialect, contract: Contract): string {
  if (contract.consent.length === 0 || !contract.consentRelation) return 'TRUE';
  const cs = d.quoteRelation(contract.consentRelation);
  return contract.consent
    .map((scope) => `EXISTS (SELECT 1 FROM ${cs} AS cs WHERE cs.profile_id = m.profile_id AND cs.scope = ${d.literal(scope)} AND cs.status = 'granted')`)
    .join(' AND ');
}

/** Null and duplicate primary keys of the model: counts. */
export function keyViolationsSql(d: Dialect, contract: Contract): string {
  return d.keyViolations(contract.relation, [contract.primaryKey]);
}

/** Up to `n` duplicated keys, with how often each occurs. */
export function duplicateExamplesSql(d: Dialect, contract: Contract, n = 5): string {
  const pk = d.quoteIdentifier(contract.primaryKey);
  return `SELECT CAST(${pk} AS ${d.types.string}) AS primary_key, COUNT(*) AS n FROM ${d.quoteRelation(contract.relation)} WHERE ${pk} IS NOT NULL GROUP BY ${pk} HAVING COUNT(*) > 1 ORDER BY 1 LIMIT ${Math.trunc(n)}`;
}

/** What the diff depends on besides the contract: found by the plan's preflight. */
export interface DiffInputs {
  /** False before the first sync: the diff runs against an empty snapshot, so `cdp plan` writes nothing. */
  snapshotsExist: boolean;
  /** The model has `profile_id`: snapshots record it, and deletion requests and consent can find rows. */
  hasProfileId: boolean;
  /** The privacy ledger exists (a deletion request was ever filed). */
  privacyLedger: boolean;
  /** consent_state has `set_at` (the generated one does): removals for lost consent record when it was revoked. */
  consentSetAt: boolean;
  /** The model's type of each mapped column, by lower-case column name: part of the fingerprint version. */
  columnTypes: Readonly<Record<string, string>>;
  /**
   * The destination's snapshot fingerprints: all made by the current version (or no rows);
   * `mixed`, some made by another version or none (rows of an older cdp); `absent`, the snapshot
   * table predates fingerprints (`cdp plan` on an older state, which it does not migrate).
   */
  fingerprints: 'current' | 'mixed' | 'absent';
  /**
   * The mapping differs from the one the destination's last planned run recorded: every synced
   * row still in the model is planned as a change, whether its payload text changed or not
   * (a full re-send, as the plan states).
   */
  mappingChanged: boolean;
}

/** The snapshot rows of the contract's destination, with the columns the diff reads. */
function snapshotRowsSql(d: Dialect, contract: Contract, inputs: DiffInputs): string {
  const s = d.types.string;
  const b = d.types.bigint;
  if (!inputs.snapshotsExist) {
    const nulls = [...['primary_key', 'payload', 'payload_hash', 'profile_id', 'meta'].map((c) => `CAST(NULL AS ${s}) AS ${c}`), `CAST(NULL AS ${b}) AS fingerprint`, `CAST(NULL AS ${b}) AS fingerprint_version`];
    return `SELECT ${nulls.join(', ')} FROM (SELECT 1 AS x) AS empty WHERE 1 = 0`;
  }
  const fingerprint = inputs.fingerprints === 'absent' ? `CAST(NULL AS ${b}) AS fingerprint, CAST(NULL AS ${b}) AS fingerprint_version` : 'fingerprint, fingerprint_version';
  return `SELECT primary_key, payload, payload_hash, profile_id, meta, ${fingerprint} FROM ${d.quoteRelation(stateRelation(contract.relation.database, 'snapshots'))} WHERE destination = ${d.literal(contract.name)}`;
}

/** The current row `c` differs from the snapshot row `sn`, both present: a CASE branch list ending the op. */
function changedBranches(d: Dialect, contract: Contract, inputs: DiffInputs, values: readonly string[]): string {
  const version = fingerprintVersionSql(d, contract, inputs.columnTypes);
  const byText = `WHEN ${payloadOf(d, contract, values)} <> sn.payload THEN 'change'`;
  switch (inputs.fingerprints) {
    case 'current': return `WHEN sn.fingerprint_version = ${version} AND sn.fingerprint = c.fingerprint THEN NULL ELSE 'change'`;
    case 'mixed': return `WHEN sn.fingerprint_version = ${version} THEN (CASE WHEN sn.fingerprint = c.fingerprint THEN NULL ELSE 'change' END)\n      ${byText}`;
    case 'absent': return byText;
  }
}

/**
 * The diff of the model's current rows against the last acknowledged snapshot, by key and
 * payload. Columns: op (add | change | remove | excluded), primary_key, payload, payload_hash,
 * reason, send (whether the mode sends it), profile_id, revoked_at, meta (what the connector kept
 * for the snapshot row: changes and removes), fingerprint and fingerprint_version (adds and changes).
 * Reasons: removes are `left_model`, `consent` (lost consent, always sent) or `privacy` (a
 * deletion request: always sent, as the platform's erasure); `consent` for exclusions; the mode
 * for changes a mode does not send. Profiles with a deletion request are never added or changed.
 *
 * One FULL OUTER JOIN on the key classifies every row (a CTE referenced by several branches is
 * recomputed per branch on some engines, so there is one). A row is unchanged when its snapshot
 * fingerprint, made by the current version, equals the current one: no payload JSON, and no
 * stored payload read. A snapshot row with a fingerprint of another version (or none) is compared
 * by payload text instead (`inputs.fingerprints`), which is exact; `cdp sync` refreshes those
 * first (refreshFingerprintsSql). The current rows carry their typed mapped values through the
 * join, so the JSON and its SHA-256 are computed only for the rows that are planned.
 */
export function diffSql(d: Dialect, contract: Contract, inputs: DiffInputs, options: { numbered?: boolean } = {}): string {
  const s = d.types.string;
  const ts = d.types.timestamp;
  const db = contract.relation.database;
  const profileOf = inputs.hasProfileId ? `CAST(m.profile_id AS ${s})` : `CAST(NULL AS ${s})`;
  const erased = inputs.privacyLedger ? `SELECT profile_id FROM (${erasedProfilesSql(d, db)}) AS er` : `SELECT CAST(NULL AS ${s}) AS profile_id FROM (SELECT 1 AS x) AS none WHERE 1 = 0`;
  const sendsChanges = contract.mode !== 'insert';
  // Rows that left the model are removed unless the contract says `on_remove: nothing` (or the
  // mode only inserts). Rows that lost consent are always removed: the engine enforces consent.
  const sendsLeftModel = contract.mode === 'mirror' || contract.mode === 'add_remove' || ((contract.mode === 'upsert' || contract.mode === 'update') && contract.onRemove !== 'nothing');
  const snapErased = `j.snap_profile_id IN (SELECT profile_id FROM erased)`;
  const fields = sortedMapping(contract);
  const value = (i: number) => d.quoteIdentifier(`field_${i}`);
  const values = (alias: string) => fields.map((_, i) => `${alias}.${value(i)}`);
  const payload = payloadOf(d, contract, values('j'));
  // Numbered (materializePlanSql) before the payload JSON exists: the sort carries the typed
  // values, not the wider JSON and its hash (~25% of the materialisation at 300k rows).
  const numbered = options.numbered
    ? [`), numbered AS (`, `  SELECT j.*, ROW_NUMBER() OVER (ORDER BY j.op, COALESCE(j.cur_key, j.snap_key)) AS seq`, `  FROM joined AS j`, `  WHERE j.op IS NOT NULL`]
    : [];
  return [
    `WITH erased AS (`,
    `  ${erased}`,
    `), cur AS (`,
    `  SELECT src.* FROM (`,
    `    SELECT ${keyExpression(d, contract)} AS primary_key, ${fields.map((f, i) => `${payloadFieldExpression(d, f, inputs.columnTypes)} AS ${value(i)}`).join(', ')},`,
    `      ${fingerprintExpression(d, contract)} AS fingerprint, (${consentExpression(d, contract)}) AS consented, ${profileOf} AS profile_id`,
    `    FROM ${d.quoteRelation(contract.relation)} AS m`,
    `  ) AS src`,
    `  WHERE src.profile_id IS NULL OR src.profile_id NOT IN (SELECT profile_id FROM erased)`,
    `), snap AS (`,
    `  ${snapshotRowsSql(d, contract, inputs)}`,
    `), joined AS (`,
    `  SELECT`,
    `    CASE WHEN sn.primary_key IS NULL THEN (CASE WHEN c.consented THEN 'add' ELSE 'excluded' END)`,
    `      WHEN c.primary_key IS NULL OR NOT c.consented THEN 'remove'`,
    `      ${inputs.mappingChanged ? `ELSE 'change'` : changedBranches(d, contract, inputs, values('c'))} END AS op,`,
    `    c.primary_key AS cur_key, ${values('c').map((v, i) => `${v} AS ${value(i)}`).join(', ')}, c.fingerprint AS cur_fingerprint, c.profile_id AS cur_profile_id,`,
    `    sn.primary_key AS snap_key, sn.payload AS snap_payload, sn.payload_hash AS snap_payload_hash, sn.profile_id AS snap_profile_id, sn.meta AS snap_meta`,
    `  FROM cur AS c FULL OUTER JOIN snap AS sn ON sn.primary_key = c.primary_key`,
    // The payload JSON in a projection of its own, so its hash reads it instead of building it again.
    ...numbered,
    `), planned AS (`,
    `  SELECT j.*, CASE WHEN j.op = 'remove' THEN j.snap_payload WHEN j.op = 'excluded' THEN CAST(NULL AS ${s}) ELSE ${payload} END AS payload`,
    ...(options.numbered ? [`  FROM numbered AS j`] : [`  FROM joined AS j`, `  WHERE j.op IS NOT NULL`]),
    `)`,
    `SELECT ${options.numbered ? 'j.seq, ' : ''}j.op, COALESCE(j.cur_key, j.snap_key) AS primary_key, j.payload,`,
    `  CASE WHEN j.op = 'remove' THEN j.snap_payload_hash WHEN j.op = 'excluded' THEN CAST(NULL AS ${s}) ELSE ${d.sha256Hex('j.payload')} END AS payload_hash,`,
    `  CASE WHEN j.op = 'remove' THEN (CASE WHEN ${snapErased} THEN 'privacy' WHEN j.cur_key IS NULL THEN 'left_model' ELSE 'consent' END)`,
    `    WHEN j.op = 'excluded' THEN 'consent' WHEN j.op = 'change' THEN ${sendsChanges ? `CAST(NULL AS ${s})` : d.literal(contract.mode)} ELSE CAST(NULL AS ${s}) END AS reason,`,
    `  CASE WHEN j.op = 'remove' THEN ${sendsLeftModel ? 'TRUE' : `(j.cur_key IS NOT NULL OR ${snapErased})`}`,
    `    WHEN j.op = 'excluded' THEN FALSE WHEN j.op = 'change' THEN ${sendsChanges ? 'TRUE' : 'FALSE'} ELSE TRUE END AS send,`,
    `  CASE WHEN j.op = 'remove' THEN j.snap_profile_id ELSE j.cur_profile_id END AS profile_id,`,
    // A snapshot row of a contract with consent was consented when sent: if a required scope is
    // revoked now, the revocation came since, whether the row lost consent here or left the
    // model because an audience filters on the same scope.
    `  CASE WHEN j.op = 'remove' AND NOT COALESCE(${snapErased}, FALSE) THEN ${inputs.consentSetAt ? revokedAtExpression(d, contract, 'j.snap_profile_id') : `CAST(NULL AS ${ts})`} END AS revoked_at,`,
    `  CASE WHEN j.op = 'change' OR j.op = 'remove' THEN j.snap_meta END AS meta,`,
    `  CASE WHEN j.op = 'add' OR j.op = 'change' THEN j.cur_fingerprint END AS fingerprint,`,
    `  CASE WHEN j.op = 'add' OR j.op = 'change' THEN ${fingerprintVersionSql(d, contract, inputs.columnTypes)} END AS fingerprint_version`,
    `FROM planned AS j`,
  ].join('\n');
}

/**
 * Snapshot rows whose fingerprint another version made (or none: rows of an older cdp), and
 * whose payload text equals the current row's, get the current fingerprint: after this, such a
 * row whose version is still not current has a different payload, i.e. is a change. One
 * statement, idempotent, and it changes no payload: safe at any point of a sync (under its lock).
 */
export function refreshFingerprintsSql(d: Dialect, contract: Contract, columnTypes: Readonly<Record<string, string>>): string {
  const version = fingerprintVersionSql(d, contract, columnTypes);
  return `UPDATE ${d.quoteRelation(stateRelation(contract.relation.database, 'snapshots'))} AS sn SET fingerprint = c.fingerprint, fingerprint_version = ${version}
FROM (SELECT ${keyExpression(d, contract)} AS primary_key, ${payloadOf(d, contract, sortedMapping(contract).map((f) => payloadFieldExpression(d, f, columnTypes)))} AS payload, ${fingerprintExpression(d, contract)} AS fingerprint FROM ${d.quoteRelation(contract.relation)} AS m) AS c
WHERE sn.destination = ${d.literal(contract.name)} AND sn.primary_key = c.primary_key AND (sn.fingerprint_version IS NULL OR sn.fingerprint_version <> ${version}) AND sn.payload = c.payload`;
}

/** How many of the destination's snapshot rows have a fingerprint another version made, or none. */
export function staleFingerprintsSql(d: Dialect, contract: Contract, columnTypes: Readonly<Record<string, string>>): string {
  return `SELECT COUNT(*) AS n FROM ${d.quoteRelation(stateRelation(contract.relation.database, 'snapshots'))}
WHERE destination = ${d.literal(contract.name)} AND (fingerprint_version IS NULL OR fingerprint_version <> ${fingerprintVersionSql(d, contract, columnTypes)})`;
}

/** When the row's profile lost the contract's consent: the latest revocation of a required scope. */
function revokedAtExpression(d: Dialect, contract: Contract, profileId: string): string {
  if (contract.consent.length === 0 || !contract.consentRelation) return `CAST(NULL AS ${d.types.timestamp})`;
  return `(SELECT MAX(cs.set_at) FROM ${d.quoteRelation(contract.consentRelation)} AS cs WHERE cs.profile_id = ${profileId} AND cs.status <> 'granted' AND cs.scope IN (${contract.consent.map((x) => d.literal(x)).join(', ')}))`;
}

/** Counts per op, reason and send flag. */
export function planCountsSql(diff: string): string {
  return `SELECT op, reason, send, COUNT(*) AS n FROM (\n${diff}\n) AS diff GROUP BY op, reason, send`;
}

/**
 * The plan in one pass over the diff: the first row of every (op, reason, send) group carries
 * the group's count, and the first `n` rows of every op (sent ones first, by key) are samples.
 * The diff runs once, not once per op.
 */
export function planSummarySql(d: Dialect, diff: string, n: number): string {
  const q = (name: string) => d.quoteIdentifier(name);
  return `SELECT * FROM (
  SELECT op, reason, send, primary_key, payload,
    COUNT(*) OVER (PARTITION BY op, reason, send) AS ${q('group_size')},
    ROW_NUMBER() OVER (PARTITION BY op, reason, send ORDER BY primary_key) AS ${q('group_row')},
    ROW_NUMBER() OVER (PARTITION BY op ORDER BY send DESC, primary_key) AS ${q('sample_row')}
  FROM (\n${diff}\n) AS diff
) AS ranked
WHERE ${q('group_row')} = 1 OR ${q('sample_row')} <= ${Math.trunc(n)}
ORDER BY op, ${q('sample_row')}`;
}

/** The columns of `cdp_sync.plans` a run writes, in order: what diffSql yields, plus run, destination and seq. */
const PLAN_COLUMNS = ['op', 'primary_key', 'payload', 'payload_hash', 'reason', 'send', 'profile_id', 'revoked_at', 'meta', 'fingerprint', 'fingerprint_version'];

/**
 * Materialises a run's plan: every diff row, numbered by `seq` in send order (op, then key: the
 * order is deterministic, so a rerun sends in the same order). The window's sort leaves the rows
 * (nearly) in seq order on DuckDB, so a range of seq is a narrow range of the table (zone maps) for the
 * window reads and the commits; no second ORDER BY, which would sort every payload again. The
 * physical order only affects speed: reads select by seq.
 */
export function materializePlanSql(d: Dialect, contract: Contract, runId: string, inputs: DiffInputs): string {
  const plans = d.quoteRelation(stateRelation(contract.relation.database, 'plans'));
  return `INSERT INTO ${plans} (run_id, destination, seq, ${PLAN_COLUMNS.join(', ')})
SELECT ${d.literal(runId)}, ${d.literal(contract.name)}, seq, ${PLAN_COLUMNS.join(', ')}
FROM (\n${diffSql(d, contract, inputs, { numbered: true })}\n) AS diff`;
}

/** The rows of one run's plan (the source of its summary, once materialised). */
export function planRowsSql(d: Dialect, contract: Contract, runId: string): string {
  return `SELECT ${PLAN_COLUMNS.join(', ')}, seq FROM ${d.quoteRelation(stateRelation(contract.relation.database, 'plans'))} WHERE run_id = ${d.literal(runId)} AND destination = ${d.literal(contract.name)}`;
}

/** Quarantined records (same op and payload as when quarantined) are not sent again: a predicate on plan row `p`. */
/** A plan row (alias `p`) whose key and payload are in doubt at its destination (cdp_sync.in_doubt). */
export function inDoubtPredicate(d: Dialect, contract: Contract): string {
  return `EXISTS (SELECT 1 FROM ${d.quoteRelation(stateRelation(contract.relation.database, 'in_doubt'))} AS i WHERE i.destination = ${d.literal(contract.name)} AND i.primary_key = p.primary_key AND i.payload_hash = p.payload_hash)`;
}

export function quarantinedPredicate(d: Dialect, contract: Contract): string {
  const rejections = d.quoteRelation(stateRelation(contract.relation.database, 'rejections'));
  return `EXISTS (SELECT 1 FROM ${rejections} AS q WHERE q.destination = ${d.literal(contract.name)} AND q.primary_key = p.primary_key AND q.op = p.op AND q.payload_hash = p.payload_hash AND q.status = 'quarantined')`;
}

/**
 * How many plan rows (by seq) one read of the pending records spans. Each read is sorted and
 * held by the warehouse, so this bounds its memory whatever the plan's size; Node still receives
 * it a batch at a time. Large enough that a cloud warehouse pays few round trips.
 */
export const PENDING_WINDOW = 100_000;

/** The records of a run still to send whose seq is in [from, to), in send order. */
export function pendingSql(d: Dialect, contract: Contract, runId: string, from: number, to: number): string {
  const plans = d.quoteRelation(stateRelation(contract.relation.database, 'plans'));
  return `SELECT p.seq, p.op, p.primary_key, p.payload, p.payload_hash, p.reason, p.profile_id, p.meta FROM ${plans} AS p
WHERE p.run_id = ${d.literal(runId)} AND p.destination = ${d.literal(contract.name)} AND p.seq >= ${Math.trunc(from)} AND p.seq < ${Math.trunc(to)}
  AND p.send AND NOT ${quarantinedPredicate(d, contract)}
ORDER BY p.seq`;
}

/** `column` is one of `seqs`: as ranges of consecutive numbers (a batch is usually one), so the statement stays short. */
export function seqPredicate(column: string, seqs: readonly number[]): string {
  if (seqs.length === 0) return 'FALSE';
  const sorted = [...new Set(seqs.map((x) => Math.trunc(x)))].sort((a, b) => a - b);
  const parts: string[] = [];
  let start = sorted[0]!;
  let end = start;
  const flush = () => parts.push(start === end ? `${column} = ${start}` : `${column} BETWEEN ${start} AND ${end}`);
  for (const x of sorted.slice(1)) {
    if (x === end + 1) end = x;
    else {
      flush();
      start = end = x;
    }
  }
  flush();
  return parts.length === 1 ? parts[0]! : `(${parts.join(' OR ')})`;
}

/**
 * Acknowledged adds and changes become the destination's snapshot: copied from the run's plan
 * by seq, so only sequence numbers (and any connector meta) travel in the statement, not the
 * payloads. `meta`: the meta to keep per seq (absent: none).
 */
export function snapshotInsertSql(d: Dialect, contract: Contract, runId: string, seqs: readonly number[], meta: ReadonlyMap<number, string>): string {
  const db = contract.relation.database;
  const metaExpr = meta.size === 0
    ? `CAST(NULL AS ${d.types.string})`
    : `CASE p.seq ${[...meta].map(([seq, m]) => `WHEN ${Math.trunc(seq)} THEN ${d.literal(m)}`).join(' ')} END`;
  return `INSERT INTO ${d.quoteRelation(stateRelation(db, 'snapshots'))} (destination, primary_key, payload_hash, payload, synced_at, meta, profile_id, fingerprint, fingerprint_version)
SELECT p.destination, p.primary_key, p.payload_hash, p.payload, ${d.currentTimestamp()}, ${metaExpr}, p.profile_id, p.fingerprint, p.fingerprint_version
FROM ${d.quoteRelation(stateRelation(db, 'plans'))} AS p
WHERE p.run_id = ${d.literal(runId)} AND p.destination = ${d.literal(contract.name)} AND ${seqPredicate('p.seq', seqs)}`;
}

/**
 * Acknowledged removals of rows whose consent was revoked since they were sent (lost consent, or
 * left an audience that requires the scope): consent propagation latency, copied from the run's
 * plan by seq, so the revocation time never travels through Node.
 */
export function consentRemovalsSql(d: Dialect, contract: Contract, runId: string, seqs: readonly number[]): string {
  const db = contract.relation.database;
  return `INSERT INTO ${d.quoteRelation(stateRelation(db, 'consent_removals'))} (run_id, destination, profile_id, revoked_at, removed_at)
SELECT p.run_id, p.destination, p.profile_id, p.revoked_at, ${d.currentTimestamp()}
FROM ${d.quoteRelation(stateRelation(db, 'plans'))} AS p
WHERE p.run_id = ${d.literal(runId)} AND p.destination = ${d.literal(contract.name)} AND ${seqPredicate('p.seq', seqs)}
  AND p.op = 'remove' AND p.reason <> 'privacy' AND p.profile_id IS NOT NULL AND p.revoked_at IS NOT NULL`;
}

/** Marks records in doubt (before a non-deduplicating destination sees them), from the run's plan by seq. */
export function markInDoubtSql(d: Dialect, contract: Contract, runId: string, seqs: readonly number[]): string {
  const db = contract.relation.database;
  return `INSERT INTO ${d.quoteRelation(stateRelation(db, 'in_doubt'))} (destination, primary_key, payload_hash, run_id, marked_at)
SELECT p.destination, p.primary_key, p.payload_hash, p.run_id, ${d.currentTimestamp()}
FROM ${d.quoteRelation(stateRelation(db, 'plans'))} AS p
WHERE p.run_id = ${d.literal(runId)} AND p.destination = ${d.literal(contract.name)} AND ${seqPredicate('p.seq', seqs)}`;
}

/**
 * Plans are kept for the runs since the PLAN_RETENTION_RUNS-th last completed run of each
 * destination (completed: status success or partial, i.e. it went through its whole plan), and
 * for every run after it (failed, aborted or running ones included). cdp_sync.runs keeps every
 * run's counts; the plans are the bulky part (a first sync or a changed mapping plans every row).
 */
export const PLAN_RETENTION_RUNS = 5;

/**
 * Deletes the plan rows of `destination`'s runs older than its last `keep` completed runs.
 * Nothing while it has fewer than `keep` completed runs (the cutoff is NULL, so no run is older).
 */
export function prunePlansSql(d: Dialect, database: string | undefined, destination: string, keep = PLAN_RETENTION_RUNS): string {
  const runs = d.quoteRelation(stateRelation(database, 'runs'));
  const dest = d.literal(destination);
  const cutoff = `SELECT started_at FROM ${runs} WHERE destination = ${dest} AND status IN ('success', 'partial') ORDER BY started_at DESC LIMIT 1 OFFSET ${Math.max(0, Math.trunc(keep) - 1)}`;
  return `DELETE FROM ${d.quoteRelation(stateRelation(database, 'plans'))} WHERE destination = ${dest}
  AND run_id IN (SELECT r.run_id FROM ${runs} AS r WHERE r.destination = ${dest} AND r.started_at < (${cutoff}))`;
}
