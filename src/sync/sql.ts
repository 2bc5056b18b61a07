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
  snapshots: [['destination', 'string'], ['primary_key', 'string'], ['payload_hash', 'string'], ['payload', 'string'], ['synced_at', 'timestamp'], ['meta', 'string'], ['profile_id', 'string']],
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
  // What each run intended to send (reconciliation); the delivery loop streams from here.
  plans: [
    ['run_id', 'string'], ['destination', 'string'], ['op', 'string'], ['primary_key', 'string'], ['payload', 'string'], ['payload_hash', 'string'], ['reason', 'string'], ['send', 'boolean'],
    ['profile_id', 'string'], ['revoked_at', 'timestamp'],
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

export function createStateSql(d: Dialect, database: string | undefined): string[] {
  return [
    d.createSchema(database, STATE_SCHEMA),
    ...(Object.keys(STATE_COLUMNS) as StateTable[]).map((t) => d.createTableIfNotExists(stateRelation(database, t), STATE_COLUMNS[t])),
  ];
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
 * The canonical payload: a JSON object of the mapped fields in sorted field order (the contract
 * loader sorts them), so neither the model's column order nor the mapping's key order matters.
 */
export function payloadExpression(d: Dialect, contract: Contract): string {
  const sorted = [...contract.mapping].sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
  return `CAST(${d.jsonObject(sorted.map((f) => [f.target, fieldExpression(d, f)]))} AS ${d.types.string})`;
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
}

/**
 * The diff of the model's current rows against the last acknowledged snapshot, by key and
 * payload hash. Columns: op (add | change | remove | excluded), primary_key, payload,
 * payload_hash, reason, send (whether the mode sends it), profile_id, revoked_at.
 * Reasons: removes are `left_model`, `consent` (lost consent, always sent) or `privacy` (a
 * deletion request: always sent, as the platform's erasure); `consent` for exclusions; the mode
 * for changes a mode does not send. Profiles with a deletion request are never added or changed.
 */
export function diffSql(d: Dialect, contract: Contract, inputs: DiffInputs): string {
  const s = d.types.string;
  const db = contract.relation.database;
  const profileOf = inputs.hasProfileId ? `CAST(m.profile_id AS ${s})` : `CAST(NULL AS ${s})`;
  const snapshots = inputs.snapshotsExist
    ? `SELECT primary_key, payload, payload_hash, profile_id FROM ${d.quoteRelation(stateRelation(db, 'snapshots'))} WHERE destination = ${d.literal(contract.name)}`
    : `SELECT CAST(NULL AS ${s}) AS primary_key, CAST(NULL AS ${s}) AS payload, CAST(NULL AS ${s}) AS payload_hash, CAST(NULL AS ${s}) AS profile_id FROM (SELECT 1 AS x) AS empty WHERE 1 = 0`;
  const erased = inputs.privacyLedger ? `SELECT profile_id FROM (${erasedProfilesSql(d, db)}) AS er` : `SELECT CAST(NULL AS ${s}) AS profile_id FROM (SELECT 1 AS x) AS none WHERE 1 = 0`;
  const sendsChanges = contract.mode !== 'insert';
  // Rows that left the model are removed unless the contract says `on_remove: nothing` (or the
  // mode only inserts). Rows that lost consent are always removed: the engine enforces consent.
  const sendsLeftModel = contract.mode === 'mirror' || contract.mode === 'add_remove' || ((contract.mode === 'upsert' || contract.mode === 'update') && contract.onRemove !== 'nothing');
  return [
    `WITH erased AS (`,
    `  ${erased}`,
    `), cur AS (`,
    `  SELECT src.primary_key, src.payload, ${d.sha256Hex('src.payload')} AS payload_hash, src.consented, src.profile_id FROM (`,
    `    SELECT ${keyExpression(d, contract)} AS primary_key, ${payloadExpression(d, contract)} AS payload, (${consentExpression(d, contract)}) AS consented, ${profileOf} AS profile_id`,
    `    FROM ${d.quoteRelation(contract.relation)} AS m`,
    `  ) AS src`,
    `  WHERE src.profile_id IS NULL OR src.profile_id NOT IN (SELECT profile_id FROM erased)`,
    `), snap AS (`,
    `  ${snapshots}`,
    `)`,
    `SELECT 'add' AS op, c.primary_key, c.payload, c.payload_hash, CAST(NULL AS ${s}) AS reason, TRUE AS send, c.profile_id, CAST(NULL AS ${d.types.timestamp}) AS revoked_at`,
    `FROM cur AS c WHERE c.consented AND NOT EXISTS (SELECT 1 FROM snap AS sn WHERE sn.primary_key = c.primary_key)`,
    `UNION ALL`,
    `SELECT 'change' AS op, c.primary_key, c.payload, c.payload_hash, ${sendsChanges ? `CAST(NULL AS ${s})` : d.literal(contract.mode)} AS reason, ${sendsChanges ? 'TRUE' : 'FALSE'} AS send, c.profile_id, CAST(NULL AS ${d.types.timestamp}) AS revoked_at`,
    `FROM cur AS c JOIN snap AS sn ON sn.primary_key = c.primary_key WHERE c.consented AND sn.payload_hash <> c.payload_hash`,
    `UNION ALL`,
    `SELECT 'remove' AS op, sn.primary_key, sn.payload, sn.payload_hash,`,
    `  CASE WHEN sn.profile_id IN (SELECT profile_id FROM erased) THEN 'privacy' WHEN c.primary_key IS NULL THEN 'left_model' ELSE 'consent' END AS reason,`,
    `  ${sendsLeftModel ? 'TRUE' : `(c.primary_key IS NOT NULL OR sn.profile_id IN (SELECT profile_id FROM erased))`} AS send, sn.profile_id,`,
    `  CASE WHEN c.primary_key IS NOT NULL THEN ${inputs.consentSetAt ? revokedAtExpression(d, contract) : `CAST(NULL AS ${d.types.timestamp})`} END AS revoked_at`,
    `FROM snap AS sn LEFT JOIN cur AS c ON c.primary_key = sn.primary_key WHERE c.primary_key IS NULL OR NOT c.consented`,
    `UNION ALL`,
    `SELECT 'excluded' AS op, c.primary_key, CAST(NULL AS ${s}) AS payload, CAST(NULL AS ${s}) AS payload_hash, 'consent' AS reason, FALSE AS send, c.profile_id, CAST(NULL AS ${d.types.timestamp}) AS revoked_at`,
    `FROM cur AS c WHERE NOT c.consented AND NOT EXISTS (SELECT 1 FROM snap AS sn WHERE sn.primary_key = c.primary_key)`,
  ].join('\n');
}

/** When the row's profile lost the contract's consent: the latest revocation of a required scope. */
function revokedAtExpression(d: Dialect, contract: Contract): string {
  if (contract.consent.length === 0 || !contract.consentRelation) return `CAST(NULL AS ${d.types.timestamp})`;
  return `(SELECT MAX(cs.set_at) FROM ${d.quoteRelation(contract.consentRelation)} AS cs WHERE cs.profile_id = c.profile_id AND cs.status <> 'granted' AND cs.scope IN (${contract.consent.map((x) => d.literal(x)).join(', ')}))`;
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
