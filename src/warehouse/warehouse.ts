import type { Relation } from '../compile/node.js';
import type { Dialect } from './dialect.js';

/**
 * The I/O half of the engine seam: connections, execution, streaming and introspection.
 * SQL text comes from the `Dialect`; a Warehouse only runs it.
 */

export type Row = Record<string, unknown>;

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
