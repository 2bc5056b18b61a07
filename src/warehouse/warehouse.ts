import type { Relation } from '../compile/node.js';
import type { Dialect } from './dialect.js';

/**
 * The I/O half of the engine seam: connections, execution, streaming and introspection.
 * SQL text comes from the `Dialect`; a Warehouse only runs it.
 */

export type Row = Record<string, unknown>;

/**
 * Rows as columns: `columns[name][i]` is row i's value, as `stream` would give it. For reads so
 * large that Node's cost per row matters (the sync's planned records): no object per row.
 */
export interface ColumnBatch {
  rowCount: number;
  columns: Record<string, unknown[]>;
}

export interface ExecuteResult {
  rowsAffected?: number;
}

export interface RelationInfo {
  kind: 'table' | 'view';
  columns: { name: string; type: string }[];
}

export interface Session {
  execute(sql: string): Promise<ExecuteResult>;
  /** For small results (introspection, test failures, samples). Use `stream` for anything big. */
  query(sql: string): Promise<Row[]>;
  /** Yields batches of at most `batchSize` rows; Node never holds more than one batch. */
  stream(sql: string, batchSize: number): AsyncIterable<Row[]>;
  /** `stream` as columns: batches of at most `batchSize` rows, the same values. */
  streamColumns(sql: string, batchSize: number): AsyncIterable<ColumnBatch>;
  describe(relation: Relation): Promise<RelationInfo | undefined>;
  close(): Promise<void>;
}

export type SeedFileFormat = 'csv' | 'parquet' | 'json';

export interface Warehouse {
  readonly dialect: Dialect;
  /** One session per runner thread. */
  session(): Promise<Session>;
  /** Replace `relation` with the contents of a local file, atomically. */
  loadFile(relation: Relation, file: string, format: SeedFileFormat): Promise<ExecuteResult>;
  /** Engine and client versions for `cdp debug` and artifacts. */
  version(): Promise<string>;
  close(): Promise<void>;
}

/** `streamColumns` for an engine whose client yields row objects anyway: the rows, regrouped. */
export async function* columnsOfRows(batches: AsyncIterable<Row[]>): AsyncIterable<ColumnBatch> {
  for await (const rows of batches) {
    if (rows.length === 0) continue;
    const columns: Record<string, unknown[]> = {};
    for (const name of Object.keys(rows[0]!)) columns[name] = rows.map((row) => row[name]);
    yield { rowCount: rows.length, columns };
  }
}

export async function describeWith(session: Pick<Session, 'query'>, dialect: Dialect, relation: Relation): Promise<RelationInfo | undefined> {
  const rows = await session.query(dialect.describeRelation(relation));
  if (rows.length === 0) return undefined;
  const tableType = String(rows[0]!['table_type'] ?? '').toUpperCase();
  return {
    kind: tableType.includes('VIEW') ? 'view' : 'table',
    columns: rows
      .filter((r) => r['column_name'] !== null && r['column_name'] !== undefined)
      .map((r) => ({ name: String(r['column_name']), type: String(r['data_type']) })),
  };
}
