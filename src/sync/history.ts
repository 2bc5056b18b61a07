import { ConfigError } from '../errors.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Row, Session } from '../warehouse/warehouse.js';
import type { OpCounts } from './plan.js';
import { STATE_SCHEMA, stateRelation } from './sql.js';

/**
 * `cdp sync history`: the runs recorded in `cdp_sync.runs`, with the count of per-record
 * rejections each stored in `cdp_sync.rejections` (docs/destinations.md, "Run history").
 */
export interface HistoryRun {
  run_id: string;
  destination: string;
  /** running, success, partial, failed or aborted */
  status: string;
  started_at: string | null;
  finished_at: string | null;
  duration_seconds: number | null;
  planned: OpCounts;
  succeeded: OpCounts;
  failed: OpCounts;
  /** Records the destination refused in this run (rows of cdp_sync.rejections). */
  rejected: number;
  /** Rows not sent because the profile lacked the contract's consent. */
  rejected_before_sending: { consent: number };
  message: string | null;
}

export interface HistoryQuery {
  /** Only these destinations; all when absent. */
  destinations?: string[];
  /** The newest N runs. */
  limit: number;
}

export const DEFAULT_HISTORY_LIMIT = 20;

/** The state schema does not exist: no sync ever ran on this target. Exit 2. */
export function noHistoryError(where: string): ConfigError {
  return new ConfigError('sync-history-missing', `No sync has run on ${where}: the ${STATE_SCHEMA}.runs table does not exist`, {
    hint: '`cdp sync` creates the cdp_sync schema on its first run (docs/destinations.md). Check --target, or run `cdp build && cdp sync` first.',
  });
}

function num(value: unknown): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === 'object' && 'value' in value) return num((value as { value: unknown }).value);
  return Number(value);
}

/** A warehouse TIMESTAMP as the drivers return it (Date, text without zone = UTC, or a wrapped value). */
export function timestampAsDate(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value;
  if (typeof value === 'object' && 'value' in value) return timestampAsDate((value as { value: unknown }).value);
  const date = new Date(typeof value === 'string' && !/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? `${value.replace(' ', 'T')}Z` : String(value));
  return Number.isNaN(date.getTime()) ? null : date;
}

export function historySql(d: Dialect, database: string | undefined, query: HistoryQuery): string {
  const runs = d.quoteRelation(stateRelation(database, 'runs'));
  const rejections = d.quoteRelation(stateRelation(database, 'rejections'));
  const where = query.destinations ? `WHERE r.destination IN (${query.destinations.length > 0 ? query.destinations.map((n) => d.literal(n)).join(', ') : 'NULL'})` : '';
  return [
    `SELECT r.run_id, r.destination, r.status, r.started_at, r.finished_at,`,
    `  r.planned_add, r.planned_change, r.planned_remove, r.succeeded_add, r.succeeded_change, r.succeeded_remove,`,
    `  r.failed_add, r.failed_change, r.failed_remove, r.excluded_consent, r.message,`,
    `  (SELECT COUNT(*) FROM ${rejections} AS x WHERE x.run_id = r.run_id AND x.destination = r.destination) AS rejected`,
    `FROM ${runs} AS r`,
    where,
    `ORDER BY r.started_at DESC, r.run_id DESC, r.destination`,
    `LIMIT ${Math.trunc(query.limit)}`,
  ].filter((l) => l !== '').join('\n');
}

function toRun(row: Row): HistoryRun {
  const started = timestampAsDate(row['started_at']);
  const finished = timestampAsDate(row['finished_at']);
  const ops = (prefix: string): OpCounts => ({ add: num(row[`${prefix}_add`]), change: num(row[`${prefix}_change`]), remove: num(row[`${prefix}_remove`]) });
  return {
    run_id: String(row['run_id']),
    destination: String(row['destination']),
    status: String(row['status']),
    started_at: started ? started.toISOString() : null,
    finished_at: finished ? finished.toISOString() : null,
    duration_seconds: started && finished ? (finished.getTime() - started.getTime()) / 1000 : null,
    planned: ops('planned'),
    succeeded: ops('succeeded'),
    failed: ops('failed'),
    rejected: num(row['rejected']),
    rejected_before_sending: { consent: num(row['excluded_consent']) },
    message: row['message'] === null || row['message'] === undefined ? null : String(row['message']),
  };
}

/** The newest runs first. Throws noHistoryError when the state schema is missing. */
export async function readHistory(session: Session, d: Dialect, database: string | undefined, query: HistoryQuery, where: string): Promise<HistoryRun[]> {
  if (!(await session.describe(stateRelation(database, 'runs')))) throw noHistoryError(where);
  return (await session.query(historySql(d, database, query))).map(toRun);
}

function ops(c: OpCounts): string {
  return `${c.add}/${c.change}/${c.remove}`;
}

function shortTime(iso: string | null): string {
  return iso ? iso.replace('T', ' ').replace(/(\.\d+)?Z$/, '') : '';
}

export function historyText(runs: HistoryRun[], target: string): string[] {
  const lines = [`Sync history for target ${target}: ${runs.length} run(s), newest first. Counts are add/change/remove.`];
  if (runs.length === 0) return [...lines, '  (no runs match the selection)'];
  const headers = ['run', 'destination', 'status', 'started', 'finished', 'planned', 'succeeded', 'failed', 'rejected', 'no consent'];
  const rows = runs.map((r) => [r.run_id, r.destination, r.status, shortTime(r.started_at), shortTime(r.finished_at), ops(r.planned), ops(r.succeeded), ops(r.failed), r.rejected, r.rejected_before_sending.consent]);
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => String(row[i]).length)));
  const right = new Set([5, 6, 7, 8, 9]);
  const line = (values: unknown[]) => `  ${values.map((v, i) => (right.has(i) ? String(v).padStart(widths[i]!) : String(v).padEnd(widths[i]!))).join('  ')}`.trimEnd();
  lines.push(line(headers), ...rows.map(line));
  for (const r of runs) if (r.message) lines.push(`  ${r.run_id} ${r.destination}: ${r.message}`);
  return lines;
}
