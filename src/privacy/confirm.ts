import { ConfigError } from '../errors.js';
import { stateRelation } from '../sync/sql.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';
import { privacyRelation } from './tables.js';

/**
 * `cdp privacy confirm`: closing an erasure by hand at a destination cdp can no longer reach.
 *
 * A destination whose contract was removed from destinations/ still holds the person, and its
 * propagation row would stay pending forever: no sync will ever plan it again. The operator
 * erases them there by hand and records it here. Only for such destinations: where a contract
 * exists, `cdp sync` erases and confirms by itself, and a hand confirmation would hide a
 * failure the sync keeps reporting.
 *
 * Confirming also forgets what cdp kept of the person for that destination: the snapshot rows
 * (the last payload sent, kept to erase with), their plans and rejections. Nothing about the
 * person may outlive the request in cdp's tables.
 */

export interface ConfirmedErasure {
  request_id: string;
  destination: string;
  note: string;
  /** Snapshot rows of the request's profiles dropped for that destination. */
  snapshot_rows: number;
}

export async function confirmErasureByHand(
  session: Session,
  d: Dialect,
  database: string | undefined,
  requestId: string,
  destination: string,
  note: string,
  liveDestinations: ReadonlySet<string>,
): Promise<ConfirmedErasure> {
  const propagation = d.quoteRelation(privacyRelation(database, 'propagation'));
  const where = `request_id = ${d.stringLiteral(requestId)} AND destination = ${d.stringLiteral(destination)}`;
  const [row] = await session.query(`SELECT status FROM ${propagation} WHERE ${where}`);
  if (!row) {
    throw new ConfigError('privacy-confirm-unknown', `Request \`${requestId}\` has no erasure at destination \`${destination}\``, {
      hint: `\`cdp privacy status ${requestId}\` lists the destinations it is propagated to.`,
    });
  }
  if (liveDestinations.has(destination)) {
    throw new ConfigError('privacy-confirm-live', `\`${destination}\` is a destination of this project: \`cdp sync\` erases the person there and confirms it`, {
      hint: `\`cdp privacy status ${requestId}\` shows why it is not done yet; confirm by hand only at a destination whose contract was removed.`,
    });
  }
  if (String(row['status']) === 'done') throw new ConfigError('privacy-confirm-done', `The erasure of \`${requestId}\` at \`${destination}\` is already done`);
  const snapshots = d.quoteRelation(stateRelation(database, 'snapshots'));
  const requestProfiles = d.quoteRelation(privacyRelation(database, 'request_profiles'));
  const dest = d.stringLiteral(destination);
  const heldRows = `SELECT s.primary_key FROM ${snapshots} AS s WHERE s.destination = ${dest}
  AND s.profile_id IN (SELECT rp.profile_id FROM ${requestProfiles} AS rp WHERE rp.request_id = ${d.stringLiteral(requestId)})`;
  const snapshotState = await session.describe(stateRelation(database, 'snapshots'));
  const [counted] = snapshotState ? await session.query(`SELECT COUNT(*) AS n FROM (${heldRows}) AS held`) : [];
  const now = d.currentTimestamp();
  const statements = [
    ...(snapshotState
      ? (['plans', 'rejections', 'snapshots'] as const).map((t) => `DELETE FROM ${d.quoteRelation(stateRelation(database, t))} WHERE destination = ${dest} AND primary_key IN (${heldRows})`)
      : []),
    `UPDATE ${propagation} SET status = 'done', reason = ${d.stringLiteral(`confirmed by hand: ${note}`)}, updated_at = ${now}, confirmed_at = ${now} WHERE ${where}`,
  ];
  for (const sql of d.atomically(statements, 'dml')) await session.execute(sql);
  return { request_id: requestId, destination, note, snapshot_rows: Number(counted?.['n'] ?? 0) };
}
