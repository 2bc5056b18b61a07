import path from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import { DuckDBInstance, DuckDBTypeId, JSDuckDBValueConverter, type DuckDBConnection, type DuckDBVector } from '@duckdb/node-api';
import type { Relation } from '../compile/node.js';
import { BusyError, WarehouseError, errorMessage } from '../errors.js';
import type { DuckDbTarget } from '../project/target.js';
import { DuckDbDialect } from './duckdb-dialect.js';
import { describeWith, type ColumnBatch, type ExecuteResult, type Row, type SeedFileFormat, type Session, type Warehouse } from './warehouse.js';

/**
 * CSV is read as RFC 4180, strictly: left to sniff, DuckDB picks another delimiter, header row or
 * quoting to fit a malformed file. The structure was checked before loading (src/run/csv-check.ts);
 * strict mode is the backstop. Types are still detected.
 */
const READERS: Record<SeedFileFormat, (file: string) => string> = {
  csv: (file) => `read_csv(${file}, header = true, delim = ',', quote = '"', escape = '"', skip = 0, strict_mode = true, null_padding = false)`,
  parquet: (file) => `read_parquet(${file})`,
  json: (file) => `read_json_auto(${file})`,
};

/**
 * One DuckDB instance per process, one connection per runner thread. DuckDB allows a single
 * writing process per file; inside the process, connections share the instance. The OS file
 * lock lives as long as any connection does, so `close()` disconnects every connection before
 * closing the instance.
 */
export class DuckDbWarehouse implements Warehouse {
  readonly dialect = new DuckDbDialect();
  private readonly connections = new Set<DuckDBConnection>();

  private constructor(
    private readonly instance: DuckDBInstance,
    readonly target: DuckDbTarget,
  ) {}

  static async open(target: DuckDbTarget, { existing = false }: { existing?: boolean } = {}): Promise<DuckDbWarehouse> {
    if (existing && target.path !== ':memory:' && !existsSync(target.path)) {
      throw new WarehouseError('duckdb-not-built', `The DuckDB file ${target.path} of target \`${target.name}\` does not exist: nothing was built there yet`, {
        hint: 'Run `cdp build` first.',
      });
    }
    if (target.path !== ':memory:') mkdirSync(path.dirname(target.path), { recursive: true });
    try {
      // TimeZone is a session setting (session()); at instance creation it needs the ICU extension loaded first.
      const options = Object.fromEntries(Object.entries(target.settings).filter(([key]) => !isTimeZone(key)));
      const instance = await DuckDBInstance.create(target.path, options);
      return new DuckDbWarehouse(instance, target);
    } catch (error) {
      throw translateOpenError(error, target.path);
    }
  }

  /**
   * Every session reads and writes time in UTC: a TIMESTAMPTZ cast to TIMESTAMP would otherwise
   * take the machine's time zone, while cdp stores UTC (currentTimestamp) and compares with it (the
   * privacy restore cutoff, run windows). `settings: { TimeZone: … }` in profiles.yml overrides it.
   */
  async session(): Promise<Session> {
    const connection = await this.instance.connect();
    const zone = Object.entries(this.target.settings).find(([key]) => isTimeZone(key))?.[1] ?? 'UTC';
    try {
      await connection.run(`SET TimeZone = ${this.dialect.stringLiteral(zone)}`);
    } catch (error) {
      connection.disconnectSync();
      throw new WarehouseError('duckdb-timezone', `Target \`${this.target.name}\`: settings.TimeZone ${JSON.stringify(zone)} is not a time zone DuckDB knows: ${errorMessage(error)}`, {
        hint: 'Use an IANA name such as UTC or Europe/Lisbon, or leave it out (cdp works in UTC).',
      });
    }
    this.connections.add(connection);
    return new DuckDbSession(connection, this.dialect, () => this.connections.delete(connection));
  }

  async loadFile(relation: Relation, file: string, format: SeedFileFormat): Promise<ExecuteResult> {
    const session = await this.session();
    try {
      const sql = `SELECT * FROM ${READERS[format](this.dialect.stringLiteral(file))}`;
      await session.execute(this.dialect.createTableAs(relation, sql));
      const [row] = await session.query(`SELECT COUNT(*) AS n FROM ${this.dialect.quoteRelation(relation)}`);
      return { rowsAffected: Number(row?.['n'] ?? 0) };
    } finally {
      await session.close();
    }
  }

  async version(): Promise<string> {
    const session = await this.session();
    try {
      const rows = await session.query('SELECT version() AS v');
      return `DuckDB ${String(rows[0]?.['v'])}`;
    } finally {
      await session.close();
    }
  }

  async close(): Promise<void> {
    for (const connection of this.connections) connection.disconnectSync();
    this.connections.clear();
    this.instance.closeSync();
  }
}

class DuckDbSession implements Session {
  constructor(
    private readonly connection: DuckDBConnection,
    private readonly dialect: DuckDbDialect,
    private readonly onClose: () => void,
  ) {}

  async execute(sql: string): Promise<ExecuteResult> {
    try {
      const result = await this.connection.run(sql);
      return { rowsAffected: result.rowsChanged };
    } catch (error) {
      throw new WarehouseError('sql-error', `DuckDB: ${errorMessage(error)}`, { cause: error });
    }
  }

  async query(sql: string): Promise<Row[]> {
    try {
      const reader = await this.connection.runAndReadAll(sql);
      return (reader.getRowObjectsJS() as Row[]).map(plainRow);
    } catch (error) {
      throw new WarehouseError('sql-error', `DuckDB: ${errorMessage(error)}`, { cause: error });
    }
  }

  async *stream(sql: string, batchSize: number): AsyncIterable<Row[]> {
    const result = await this.startStream(sql);
    let batch: Row[] = [];
    for await (const rows of result.yieldRowObjectJs()) {
      for (const row of rows) {
        batch.push(plainRow(row as Row));
        if (batch.length >= batchSize) {
          yield batch;
          batch = [];
        }
      }
    }
    if (batch.length > 0) yield batch;
  }

  /** Each value read straight from its vector, converted only where its type needs it. */
  async *streamColumns(sql: string, batchSize: number): AsyncIterable<ColumnBatch> {
    const result = await this.startStream(sql);
    const names = result.deduplicatedColumnNames();
    for (let chunk = await result.fetchChunk(); chunk !== null && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
      const rowCount = chunk.rowCount;
      const vectors = names.map((_, i) => chunk!.getColumnVector(i));
      for (let from = 0; from < rowCount; from += batchSize) {
        const to = Math.min(rowCount, from + batchSize);
        const columns: Record<string, unknown[]> = {};
        names.forEach((name, i) => (columns[name] = columnValues(vectors[i]!, from, to)));
        yield { rowCount: to - from, columns };
      }
    }
  }

  private async startStream(sql: string) {
    try {
      return await this.connection.stream(sql);
    } catch (error) {
      throw new WarehouseError('sql-error', `DuckDB: ${errorMessage(error)}`, { cause: error });
    }
  }

  describe(relation: Relation) {
    return describeWith(this, this.dialect, relation);
  }

  async close(): Promise<void> {
    this.connection.disconnectSync();
    this.onClose();
  }
}

/** BIGINT arrives as bigint; callers (JSON artifacts, destinations) want numbers when they are exact. */
function plainRow(row: Row): Row {
  for (const [key, value] of Object.entries(row)) {
    if (typeof value === 'bigint') row[key] = plainBigint(value);
  }
  return row;
}

function plainBigint(value: bigint): number | string {
  return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
}

/** Types whose vector items already are what the JS converter makes of them. */
const ITEMS_ARE_JS = new Set<DuckDBTypeId>([
  DuckDBTypeId.VARCHAR, DuckDBTypeId.BOOLEAN, DuckDBTypeId.TINYINT, DuckDBTypeId.SMALLINT, DuckDBTypeId.INTEGER,
  DuckDBTypeId.UTINYINT, DuckDBTypeId.USMALLINT, DuckDBTypeId.UINTEGER, DuckDBTypeId.FLOAT, DuckDBTypeId.DOUBLE,
]);

/** Rows [from, to) of a vector, as `stream` gives them (JS converter, then plain bigints). */
function columnValues(vector: DuckDBVector, from: number, to: number): unknown[] {
  const values = new Array<unknown>(to - from);
  const type = vector.type;
  if (ITEMS_ARE_JS.has(type.typeId)) {
    for (let i = from; i < to; i++) values[i - from] = vector.getItem(i);
  } else {
    for (let i = from; i < to; i++) {
      const value = JSDuckDBValueConverter(vector.getItem(i), type, JSDuckDBValueConverter);
      values[i - from] = typeof value === 'bigint' ? plainBigint(value) : value;
    }
  }
  return values;
}

function isTimeZone(setting: string): boolean {
  return setting.toLowerCase() === 'timezone';
}

/** DuckDB says "Could not set lock on file ... Conflicting lock is held in <program> (PID n)". */
function translateOpenError(error: unknown, file: string): Error {
  const message = errorMessage(error);
  if (/Could not set lock on file|Conflicting lock/i.test(message)) {
    const pid = /PID (\d+)/.exec(message)?.[1];
    return new BusyError('duckdb-locked', `The DuckDB file ${file} is locked by another process${pid ? ` (PID ${pid})` : ''}.`, {
      hint: 'DuckDB allows one writing process per file. Wait for the other cdp run to finish or stop it, close any DuckDB shell or notebook that has the file open, or point this target at another path.',
      cause: error,
    });
  }
  return new WarehouseError('duckdb-open-failed', `Could not open the DuckDB database ${file}: ${message}`, { cause: error });
}
