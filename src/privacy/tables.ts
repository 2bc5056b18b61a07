import type { Relation } from '../compile/node.js';
import type { ColumnType, Dialect } from '../warehouse/dialect.js';

/**
 * The privacy ledger: `cdp_privacy` in the target's database. Append-only where it matters
 * (requests, tombstones, restores): a deletion is undone only by an explicit restore row.
 * Tombstones hold a keyed hash (HMAC-SHA256) of `<type>:<normalised value>`, never the value.
 */
export const PRIVACY_SCHEMA = 'cdp_privacy';

export type PrivacyTable = 'requests' | 'tombstones' | 'request_profiles' | 'propagation' | 'restores' | 'state';

export const PRIVACY_COLUMNS: Record<PrivacyTable, readonly (readonly [string, ColumnType])[]> = {
  requests: [
    ['request_id', 'string'], ['identifier_type', 'string'], ['identifier_hash', 'string'], ['reason', 'string'], ['requested_at', 'timestamp'],
    ['filed_from', 'string'], ['profiles_matched', 'integer'], ['identifiers_tombstoned', 'integer'],
  ],
  tombstones: [['identifier_hash', 'string'], ['identifier_type', 'string'], ['request_id', 'string'], ['scope', 'string'], ['created_at', 'timestamp']],
  // Profile ids are pseudonymous: kept so every destination that received the person can be told.
  request_profiles: [['request_id', 'string'], ['profile_id', 'string']],
  // Per request and destination: pending until the destination acknowledged the erasure.
  propagation: [
    ['request_id', 'string'], ['destination', 'string'], ['status', 'string'], ['reason', 'string'],
    ['requested_at', 'timestamp'], ['updated_at', 'timestamp'], ['confirmed_at', 'timestamp'], ['attempts', 'integer'],
  ],
  restores: [['request_id', 'string'], ['restored_at', 'timestamp'], ['reason', 'string']],
  state: [['name', 'string'], ['value', 'string']],
};

export function privacyRelation(database: string | undefined, table: PrivacyTable): Relation {
  return database ? { database, schema: PRIVACY_SCHEMA, name: table } : { schema: PRIVACY_SCHEMA, name: table };
}

export function createPrivacySql(d: Dialect, database: string | undefined): string[] {
  return [
    d.createSchema(database, PRIVACY_SCHEMA),
    ...(Object.keys(PRIVACY_COLUMNS) as PrivacyTable[]).map((t) => d.createTableIfNotExists(privacyRelation(database, t), PRIVACY_COLUMNS[t])),
  ];
}

/** Requests not lifted by `cdp privacy restore`. */
function activeRequest(d: Dialect, database: string | undefined, alias: string): string {
  return `NOT EXISTS (SELECT 1 FROM ${d.quoteRelation(privacyRelation(database, 'restores'))} AS rs WHERE rs.request_id = ${alias}.request_id)`;
}

/** Every tombstone, restored or not: a restored one still suppresses the rows dated before its restore. */
export function tombstonesSql(d: Dialect, database: string | undefined): string {
  return `SELECT tb.identifier_hash FROM ${d.quoteRelation(privacyRelation(database, 'tombstones'))} AS tb`;
}

/** Profile ids of active deletion requests: never sent again, and erased wherever they were sent. */
export function erasedProfilesSql(d: Dialect, database: string | undefined): string {
  return `SELECT rp.profile_id FROM ${d.quoteRelation(privacyRelation(database, 'request_profiles'))} AS rp WHERE ${activeRequest(d, database, 'rp')}`;
}

/**
 * Tombstone hashes with the time their request was restored (`lifted_at`), NULL while it never
 * was. A row dated before `lifted_at` was erased or arrived while the person was deleted: it
 * stays suppressed, so a restore only lets in data dated from the restore on (docs/privacy.md).
 */
function tombstoneCutoffsSql(d: Dialect, database: string | undefined): string {
  return `SELECT tb.identifier_hash, rs.restored_at AS lifted_at
  FROM ${d.quoteRelation(privacyRelation(database, 'tombstones'))} AS tb
  LEFT JOIN (SELECT request_id, MIN(restored_at) AS restored_at FROM ${d.quoteRelation(privacyRelation(database, 'restores'))} GROUP BY request_id) AS rs
    ON rs.request_id = tb.request_id`;
}

/**
 * True for a row none of whose identifiers is suppressed: tombstoned by a request that was never
 * restored, or restored after the row's time. `identifiers` are [type, normalised value
 * expression] pairs, `rowTime` the row's timestamp: an undated row counts as older than any
 * restore (fail safe). Without tombstones the keyed hashes are never computed: the scalar count
 * short-circuits the OR, so a project with no deletion requests pays nothing.
 */
export function notTombstonedSql(d: Dialect, database: string | undefined, identifiers: [string, string][], rowTime: string): string {
  const hashes = identifiers.map(([type, value]) => d.hmacSha256Hex(`CONCAT(${d.stringLiteral(`${type}:`)}, ${value})`));
  return `((SELECT COUNT(*) FROM (${tombstonesSql(d, database)}) AS any_tb) = 0 OR NOT EXISTS (SELECT 1 FROM (${tombstoneCutoffsSql(d, database)}) AS hit
    WHERE hit.identifier_hash IN (${hashes.join(', ')}) AND (hit.lifted_at IS NULL OR ${rowTime} IS NULL OR ${rowTime} < hit.lifted_at)))`;
}
