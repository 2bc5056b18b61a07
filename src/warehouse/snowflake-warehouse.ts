import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Relation } from '../compile/node.js';
import { WarehouseError, errorMessage } from '../errors.js';
import type { SnowflakeTarget } from '../project/target.js';
import { SnowflakeDialect } from './snowflake-dialect.js';
import { columnsOfRows, describeWith, type ColumnBatch, type ExecuteResult, type Row, type SeedFileFormat, type Session, type Warehouse } from './warehouse.js';

/*
 * The subset of `snowflake-sdk` this file uses. Tests inject a fake factory; `open()` without
 * one loads the SDK lazily, so commands that never touch Snowflake never load it.
 */

export interface SnowflakeStatement {
  getNumRows(): number;
  getNumUpdatedRows(): number | undefined;
  /** Rows `start..end`, both inclusive. The SDK returns a Readable, which is async-iterable. */
  streamRows(options?: { start?: number; end?: number }): AsyncIterable<unknown>;
}

export interface SnowflakeExecuteOptions {
  sqlText: string;
  /** When true, `complete` gets no rows; they are read later with `streamRows`. */
  streamResult?: boolean;
  complete: (error: Error | undefined, statement: SnowflakeStatement, rows?: unknown[]) => void;
}

export interface SnowflakeConnection {
  connectAsync(): Promise<unknown>;
  execute(options: SnowflakeExecuteOptions): unknown;
  destroy(callback: (error: Error | undefined) => void): void;
}

export interface SnowflakeConnectionOptions {
  account: string;
  username: string;
  password?: string;
  authenticator?: 'SNOWFLAKE_JWT';
  privateKey?: string;
  privateKeyPass?: string;
  role?: string;
  warehouse: string;
  database: string;
  application: string;
}

/** `snowflake-sdk`'s `createConnection`. */
export type SnowflakeConnectionFactory = (options: SnowflakeConnectionOptions) => SnowflakeConnection;

/** One Snowflake connection (and so one Snowflake session) per cdp session. */
export class SnowflakeWarehouse implements Warehouse {
  readonly dialect = new SnowflakeDialect();
  private readonly sessions = new Set<SnowflakeSession>();

  constructor(
    private readonly createConnection: SnowflakeConnectionFactory,
    readonly target: SnowflakeTarget,
  ) {}

  static async open(target: SnowflakeTarget, createConnection?: SnowflakeConnectionFactory): Promise<SnowflakeWarehouse> {
    return new SnowflakeWarehouse(createConnection ?? (await loadSdk()), target);
  }

  async session(): Promise<Session> {
    const secrets = secretsOf(this.target);
    const options = connectionOptions(this.target);
    let connection: SnowflakeConnection;
    try {
      connection = this.createConnection(options);
      await connection.connectAsync();
    } catch (error) {
      // Connection errors can carry the options object, so the raw error is never kept as cause.
      throw new WarehouseError('snowflake-connect-failed', redact(`Could not connect to Snowflake account ${this.target.account} as ${this.target.user}: ${errorMessage(error)}`, secrets), {
        hint: 'Check account, user, role and warehouse, and the password or private key.',
      });
    }
    const session = new SnowflakeSession(connection, this.dialect, secrets, () => this.sessions.delete(session));
    this.sessions.add(session);
    return session;
  }

  /**
   * Snowflake cannot create a table from a local file directly, so the file goes through a
   * temporary stage: PUT it, create a staging table from INFER_SCHEMA's template, COPY into it,
   * then swap it in like any table build. Verified only against the in-memory fake in
   * test/unit/cloud-warehouses.test.ts, not against a live account.
   */
  async loadFile(relation: Relation, file: string, format: SeedFileFormat): Promise<ExecuteResult> {
    const d = this.dialect;
    const tag = `cdp_load_${randomBytes(4).toString('hex')}`;
    const stage = d.quoteRelation({ ...relation, name: tag });
    const fileFormat = d.quoteRelation({ ...relation, name: `${tag}_format` });
    const staging = d.stagingRelation(relation, 'load');
    const formatOptions: Record<SeedFileFormat, string> = {
      // MATCH_BY_COLUMN_NAME on CSV needs the header parsed into column names.
      csv: 'TYPE = CSV PARSE_HEADER = TRUE ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE',
      parquet: 'TYPE = PARQUET',
      json: 'TYPE = JSON',
    };
    const fileUrl = `file://${path.resolve(file).replaceAll('\\', '/')}`;
    const session = await this.session();
    try {
      await session.execute(d.createSchema(relation.database, relation.schema));
      await session.execute(`CREATE TEMPORARY FILE FORMAT ${fileFormat} ${formatOptions[format]}`);
      await session.execute(`CREATE TEMPORARY STAGE ${stage}`);
      await session.execute(`PUT ${d.stringLiteral(fileUrl)} @${stage} AUTO_COMPRESS = TRUE OVERWRITE = TRUE`);
      await session.execute([
        `CREATE OR REPLACE TABLE ${d.quoteRelation(staging)} USING TEMPLATE (`,
        '  SELECT ARRAY_AGG(OBJECT_CONSTRUCT(*)) WITHIN GROUP (ORDER BY ORDER_ID)',
        `  FROM TABLE(INFER_SCHEMA(LOCATION => ${d.stringLiteral(`@${stage}`)}, FILE_FORMAT => ${d.stringLiteral(fileFormat)}))`,
        ')',
      ].join('\n'));
      const copied = await session.query(
        `COPY INTO ${d.quoteRelation(staging)} FROM @${stage} FILE_FORMAT = (FORMAT_NAME = ${d.stringLiteral(fileFormat)}) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE`,
      );
      const existing = (await session.describe(relation))?.kind;
      for (const statement of d.swapTable(relation, staging, existing)) await session.execute(statement);
      return { rowsAffected: copied.reduce((sum, row) => sum + Number(row['rows_loaded'] ?? row['ROWS_LOADED'] ?? 0), 0) };
    } finally {
      // Temporary objects vanish with the session anyway; dropping them is tidiness, not safety.
      await session.execute(`DROP STAGE IF EXISTS ${stage}`).catch(() => undefined);
      await session.execute(`DROP FILE FORMAT IF EXISTS ${fileFormat}`).catch(() => undefined);
      await session.close();
    }
  }

  async version(): Promise<string> {
    const session = await this.session();
    try {
      const rows = await session.query('SELECT CURRENT_VERSION() AS "v"');
      return `Snowflake ${String(rows[0]?.['v'])} (snowflake-sdk ${sdkVersion()})`;
    } finally {
      await session.close();
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.sessions].map((s) => s.close()));
  }
}

class SnowflakeSession implements Session {
  private closed = false;

  constructor(
    private readonly connection: SnowflakeConnection,
    private readonly dialect: SnowflakeDialect,
    private readonly secrets: string[],
    private readonly onClose: () => void,
  ) {}

  async execute(sql: string): Promise<ExecuteResult> {
    const { statement } = await this.run(sql, false);
    const updated = statement.getNumUpdatedRows();
    return updated === undefined ? {} : { rowsAffected: updated };
  }

  async query(sql: string): Promise<Row[]> {
    return ((await this.run(sql, false)).rows as Row[]).map(foldedKeys);
  }

  /** The result stays on the server; each batch is one ranged `streamRows` read. */
  async *stream(sql: string, batchSize: number): AsyncIterable<Row[]> {
    const { statement } = await this.run(sql, true);
    const total = statement.getNumRows();
    for (let start = 0; start < total; start += batchSize) {
      const batch: Row[] = [];
      try {
        for await (const row of statement.streamRows({ start, end: Math.min(start + batchSize, total) - 1 })) batch.push(foldedKeys(row as Row));
      } catch (error) {
        throw this.error(error);
      }
      if (batch.length > 0) yield batch;
    }
  }

  /** The client yields row objects anyway: `stream`'s batches, regrouped as columns. */
  streamColumns(sql: string, batchSize: number): AsyncIterable<ColumnBatch> {
    return columnsOfRows(this.stream(sql, batchSize));
  }

  describe(relation: Relation) {
    return describeWith(this, this.dialect, relation);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    await new Promise<void>((resolve) => this.connection.destroy(() => resolve()));
  }

  private run(sql: string, streamResult: boolean): Promise<{ statement: SnowflakeStatement; rows: unknown[] }> {
    return new Promise((resolve, reject) => {
      try {
        this.connection.execute({
          sqlText: sql,
          streamResult,
          complete: (error, statement, rows) => (error ? reject(this.error(error)) : resolve({ statement, rows: rows ?? [] })),
        });
      } catch (error) {
        reject(this.error(error));
      }
    });
  }

  private error(error: unknown): WarehouseError {
    const state = (error as { sqlState?: unknown } | null)?.sqlState;
    const message = `Snowflake: ${errorMessage(error)}${typeof state === 'string' ? ` (SQLSTATE ${state})` : ''}`;
    const clean = redact(message, this.secrets);
    return new WarehouseError('sql-error', clean, clean === message ? { cause: error } : {});
  }
}

function connectionOptions(target: SnowflakeTarget): SnowflakeConnectionOptions {
  const options: SnowflakeConnectionOptions = {
    account: target.account,
    username: target.user,
    warehouse: target.warehouse,
    database: target.database,
    application: 'cdp',
  };
  if (target.role) options.role = target.role;
  if (target.privateKey) {
    options.authenticator = 'SNOWFLAKE_JWT';
    options.privateKey = target.privateKey;
    if (target.privateKeyPassphrase) options.privateKeyPass = target.privateKeyPassphrase;
  } else if (target.password) {
    options.password = target.password;
  } else {
    throw new WarehouseError('snowflake-credentials', `Snowflake target ${target.name} has neither a password nor a private_key.`, {
      hint: 'Set password or private_key (as env references) in profiles.yml.',
    });
  }
  return options;
}

/** Secret values, plus each long line of a PEM key in case a message quotes only part of it. */
function secretsOf(target: SnowflakeTarget): string[] {
  const secrets = [target.password, target.privateKey, target.privateKeyPassphrase].filter((s): s is string => !!s);
  for (const line of target.privateKey?.split(/\r?\n/) ?? []) if (line.length >= 16 && !line.startsWith('-----')) secrets.push(line);
  return secrets;
}

function redact(message: string, secrets: string[]): string {
  return secrets.filter((s) => s.length > 0).reduce((text, secret) => text.replaceAll(secret, '***'), message);
}

async function loadSdk(): Promise<SnowflakeConnectionFactory> {
  const sdk = await import('snowflake-sdk');
  // A CommonJS package: depending on the loader its API is the namespace or its default export.
  const api = sdk.default ?? sdk;
  // The driver logs to stdout by default, which would corrupt `--log-format json` output.
  api.configure({ logLevel: 'OFF' });
  return (options) => api.createConnection(options);
}

/**
 * Snowflake returns unquoted names in upper case (`COUNT(*) AS n` comes back as `N`); callers
 * read the lower-case names they wrote, as on the other engines. Mixed-case keys were quoted on
 * purpose and stay as they are.
 */
function foldedKeys(row: Row): Row {
  const out: Row = {};
  for (const [key, value] of Object.entries(row)) out[/^[A-Z_][A-Z0-9_$]*$/.test(key) ? key.toLowerCase() : key] = value;
  return out;
}

function sdkVersion(): string {
  try {
    return (createRequire(import.meta.url)('snowflake-sdk/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
