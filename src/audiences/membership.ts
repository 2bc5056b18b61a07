import type { Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';

/**
 * The `audience_membership` materialization: the model's SELECT gives the current
 * (profile_id, audience) pairs; each run diffs them against the open rows of the history.
 *   - a pair with no open row (new member, or one who left and came back) gets a new row,
 *     entered_at = the run time, exited_at NULL;
 *   - an open row whose pair is no longer current gets exited_at = the run time.
 * Every run, even one that changes nothing, is recorded in `cdp_audience_runs` so
 * "entered since the previous run" is `entered_at >= <last run's ran_at>`. History is never
 * dropped, not even by --full-refresh.
 */

export const MEMBERSHIP_COLUMNS = [['profile_id', 'string'], ['audience', 'string'], ['entered_at', 'timestamp'], ['exited_at', 'timestamp']] as const;
export const RUNS_TABLE = 'cdp_audience_runs';
export const RUNS_COLUMNS = [['run_id', 'string'], ['ran_at', 'timestamp']] as const;

export function runsRelation(membership: Relation): Relation {
  return { ...membership, name: RUNS_TABLE };
}

export interface MembershipBuildResult {
  executed: string[];
  rowsAffected: number;
  entered: number;
  exited: number;
  ranAt: Date;
}

/** `YYYY-MM-DD HH:MM:SS.mmm` in UTC, as a timestamp literal. */
export function timestampLiteral(d: Dialect, at: Date): string {
  return `CAST(${d.stringLiteral(at.toISOString().replace('T', ' ').replace('Z', ''))} AS ${d.types.timestamp})`;
}

export function membershipStatements(d: Dialect, membership: Relation, current: Relation, runId: string, now: string): string[] {
  const m = d.quoteRelation(membership);
  const c = d.quoteRelation(current);
  return d.atomically([
    `UPDATE ${m} AS h SET exited_at = ${now}\nWHERE h.exited_at IS NULL\n  AND NOT EXISTS (SELECT 1 FROM ${c} AS c WHERE c.profile_id = h.profile_id AND c.audience = h.audience)`,
    d.insertInto(membership, ['profile_id', 'audience', 'entered_at', 'exited_at'], [
      `SELECT c.profile_id, c.audience, ${now}, CAST(NULL AS ${d.types.timestamp})`,
      `FROM (SELECT DISTINCT profile_id, audience FROM ${c} WHERE profile_id IS NOT NULL) AS c`,
      `WHERE NOT EXISTS (SELECT 1 FROM ${m} AS h WHERE h.profile_id = c.profile_id AND h.audience = c.audience AND h.exited_at IS NULL)`,
    ].join('\n')),
    d.insertInto(runsRelation(membership), ['run_id', 'ran_at'], `SELECT ${d.stringLiteral(runId)}, ${now}`),
  ], 'dml');
}

export async function buildAudienceMembership(
  session: Session,
  d: Dialect,
  membership: Relation,
  sql: string,
  runId: string,
): Promise<MembershipBuildResult> {
  const executed: string[] = [];
  const run = async (statement: string) => {
    executed.push(statement);
    return session.execute(statement);
  };
  const runs = runsRelation(membership);
  await run(d.createTableIfNotExists(membership, MEMBERSHIP_COLUMNS));
  await run(d.createTableIfNotExists(runs, RUNS_COLUMNS));
  const current = d.stagingRelation(membership, 'current');
  await run(d.dropRelation(current, 'table'));
  try {
    await run(d.createTableAs(current, sql));
    // The run time must be after the previous run's, even within one clock tick.
    const [last] = await session.query(`SELECT MAX(ran_at) AS ran_at FROM ${d.quoteRelation(runs)}`);
    const previous = last?.['ran_at'] instanceof Date ? (last['ran_at'] as Date).getTime() : last?.['ran_at'] ? Date.parse(`${String(last['ran_at']).replace(' ', 'T')}Z`) : 0;
    const ranAt = new Date(Math.max(Date.now(), (Number.isFinite(previous) ? previous : 0) + 1));
    const now = timestampLiteral(d, ranAt);
    const [counts] = await session.query([
      `SELECT`,
      `  (SELECT COUNT(*) FROM ${d.quoteRelation(membership)} AS h WHERE h.exited_at IS NULL AND NOT EXISTS (SELECT 1 FROM ${d.quoteRelation(current)} AS c WHERE c.profile_id = h.profile_id AND c.audience = h.audience)) AS exited,`,
      `  (SELECT COUNT(*) FROM (SELECT DISTINCT profile_id, audience FROM ${d.quoteRelation(current)} WHERE profile_id IS NOT NULL) AS c WHERE NOT EXISTS (SELECT 1 FROM ${d.quoteRelation(membership)} AS h WHERE h.profile_id = c.profile_id AND h.audience = c.audience AND h.exited_at IS NULL)) AS entered`,
    ].join('\n'));
    const statements = membershipStatements(d, membership, current, runId, now);
    try {
      for (const statement of statements) await run(statement);
    } catch (error) {
      if (statements[0] === 'BEGIN TRANSACTION') await session.execute('ROLLBACK').catch(() => undefined);
      throw error;
    }
    const entered = Number(counts?.['entered'] ?? 0);
    const exited = Number(counts?.['exited'] ?? 0);
    return { executed, rowsAffected: entered + exited, entered, exited, ranAt };
  } finally {
    await session.execute(d.dropRelation(current, 'table')).catch(() => undefined);
  }
}
