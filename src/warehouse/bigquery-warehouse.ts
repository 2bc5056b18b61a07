import { createRequire } from 'node:module';
import type { Relation } from '../compile/node.js';
import { WarehouseError, errorMessage } from '../errors.js';
import type { BigQueryTarget } from '../project/target.js';
import { BigQueryDialect } from './bigquery-dialect.js';
import { columnsOfRows, describeWith, type ColumnBatch, type ExecuteResult, type Row, type SeedFileFormat, type Session, type Warehouse } from './warehouse.js';

/*
 * The subset of `@google-cloud/bigquery` this file uses. Tests inject a fake; `open()` without a
 * client loads the SDK lazily, so commands that never touch BigQuery never load it.
 */

export interface BigQueryPageOptions {
  autoPaginate: false;
  maxResults?: number;
  pageToken?: string;
}

/** The raw `jobs.getQueryResults` response (only the fields read here). */
export interface BigQueryResultsResponse {
  jobComplete?: boolean;
  numDmlAffectedRows?: string | number | null;
}

export interface BigQueryJob {
  /** The job resource as jobs.insert returned it: `statistics.sessionInfo` names the session a job created. */
  metadata?: { statistics?: { sessionInfo?: { sessionId?: string } | null } | null } | null;
  /** With `autoPaginate: false` the SDK returns one page plus the options for the next one. */
  getQueryResults(options: BigQueryPageOptions): Promise<[Row[], ({ pageToken?: string | null } | null)?, BigQueryResultsResponse?]>;
}

/** What cdp passes to jobs.insert for a query. */
export interface BigQueryQueryOptions {
  query: string;
  location?: string;
  jobTimeoutMs?: number;
  /** The first job of a cdp session creates a BigQuery session... */
  createSession?: boolean;
  /** ...and every later one runs in it (`session_id`), so TEMP tables live across statements. */
  connectionProperties?: { key: 'session_id'; value: string }[];
}

export interface BigQueryLoadMetadata {
  sourceFormat: 'CSV' | 'PARQUET' | 'NEWLINE_DELIMITED_JSON';
  writeDisposition: 'WRITE_TRUNCATE';
  autodetect: boolean;
  location?: string;
}

/** Load-job metadata as returned by `Table.load`. */
export interface BigQueryLoadResult {
  statistics?: { load?: { outputRows?: string | number | null } | null } | null;
}

export interface BigQueryClient {
  createQueryJob(options: BigQueryQueryOptions): Promise<[BigQueryJob, ...unknown[]]>;
  dataset(id: string, options?: { projectId?: string }): {
    table(id: string): { load(file: string, metadata: BigQueryLoadMetadata): Promise<[BigQueryLoadResult, ...unknown[]]> };
  };
}

const SOURCE_FORMATS: Record<SeedFileFormat, BigQueryLoadMetadata['sourceFormat']> = {
  csv: 'CSV',
  parquet: 'PARQUET',
  json: 'NEWLINE_DELIMITED_JSON',
};

/**
 * BigQuery has no connections: one HTTP client serves every session, and a session is just a
 * handle that runs jobs. Every statement is a query job in the target's location.
 */
export class BigQueryWarehouse implements Warehouse {
  readonly dialect = new BigQueryDialect();

  constructor(
    private readonly client: BigQueryClient,
    readonly target: BigQueryTarget,
  ) {}

  static async open(target: BigQueryTarget, client?: BigQueryClient): Promise<BigQueryWarehouse> {
    return new BigQueryWarehouse(client ?? (await createClient(target)), target);
  }

  async session(): Promise<Session> {
    return new BigQuerySession(this.client, this.dialect, this.target);
  }

  /** A load job with WRITE_TRUNCATE replaces the table atomically (the job commits or nothing changes). */
  async loadFile(relation: Relation, file: string, format: SeedFileFormat): Promise<ExecuteResult> {
    // One statement: no BigQuery session to create and end for it.
    await new BigQuerySession(this.client, this.dialect, this.target, false).execute(this.dialect.createSchema(relation.database, relation.schema));
    const metadata: BigQueryLoadMetadata = { sourceFormat: SOURCE_FORMATS[format], writeDisposition: 'WRITE_TRUNCATE', autodetect: true };
    if (this.target.location) metadata.location = this.target.location;
    try {
      const table = this.client.dataset(relation.schema, { projectId: relation.database ?? this.target.project }).table(relation.name);
      const [result] = await table.load(file, metadata);
      const rows = result.statistics?.load?.outputRows;
      return rows === undefined || rows === null ? {} : { rowsAffected: Number(rows) };
    } catch (error) {
      throw toWarehouseError(error, this.target);
    }
  }

  async version(): Promise<string> {
    return `BigQuery (@google-cloud/bigquery ${sdkVersion('@google-cloud/bigquery')})`;
  }

  async close(): Promise<void> {
    // The SDK keeps no sockets we own; nothing to release.
  }
}

class BigQuerySession implements Session {
  private sessionId: string | undefined;

  constructor(
    private readonly client: BigQueryClient,
    private readonly dialect: BigQueryDialect,
    private readonly target: BigQueryTarget,
    private readonly sessionMode = true,
  ) {}

  async execute(sql: string): Promise<ExecuteResult> {
    // maxResults 0: we want the job's outcome and DML count, not its rows.
    for await (const page of this.pages(sql, 0)) {
      const affected = page.response?.numDmlAffectedRows;
      return affected === undefined || affected === null ? {} : { rowsAffected: Number(affected) };
    }
    return {};
  }

  async query(sql: string): Promise<Row[]> {
    const rows: Row[] = [];
    for await (const page of this.pages(sql, undefined)) rows.push(...page.rows);
    return rows;
  }

  /** Pages are requested one at a time as the consumer pulls, and re-cut to exactly `batchSize`. */
  async *stream(sql: string, batchSize: number): AsyncIterable<Row[]> {
    const buffer: Row[] = [];
    for await (const page of this.pages(sql, batchSize)) {
      buffer.push(...page.rows);
      while (buffer.length >= batchSize) yield buffer.splice(0, batchSize);
    }
    if (buffer.length > 0) yield buffer;
  }

  /** The client yields row objects anyway: `stream`'s batches, regrouped as columns. */
  streamColumns(sql: string, batchSize: number): AsyncIterable<ColumnBatch> {
    return columnsOfRows(this.stream(sql, batchSize));
  }

  /** A missing dataset is an error on BigQuery but just "no such relation" to callers. */
  async describe(relation: Relation) {
    try {
      return await describeWith(this, this.dialect, relation);
    } catch (error) {
      if (error instanceof WarehouseError && /Not found: Dataset/i.test(error.message)) return undefined;
      throw error;
    }
  }

  /** Ends the BigQuery session (its TEMP tables go with it) rather than leaving it to expire. */
  async close(): Promise<void> {
    if (this.sessionId === undefined) return;
    await this.execute('CALL BQ.ABORT_SESSION()').catch(() => undefined);
    this.sessionId = undefined;
  }

  /** One query job read page by page; a page is requested only when the caller pulls for it. */
  private async *pages(sql: string, maxResults: number | undefined): AsyncGenerator<{ rows: Row[]; response?: BigQueryResultsResponse }> {
    const job = await this.startJob(sql);
    let pageToken: string | undefined;
    for (;;) {
      const options: BigQueryPageOptions = { autoPaginate: false };
      if (maxResults !== undefined) options.maxResults = maxResults;
      if (pageToken) options.pageToken = pageToken;
      let page: Awaited<ReturnType<BigQueryJob['getQueryResults']>>;
      try {
        page = await job.getQueryResults(options);
      } catch (error) {
        throw toWarehouseError(error, this.target);
      }
      const [rows, next, response] = page;
      // The server answers "not done yet" after its own wait; ask again (jobTimeoutMs bounds this).
      if (response?.jobComplete === false) continue;
      yield { rows, response };
      pageToken = next?.pageToken ?? undefined;
      if (!pageToken) return;
    }
  }

  /**
   * Every job of a cdp session runs in one BigQuery session: statements that need session state
   * (the privacy key's TEMP table, Dialect.loadPrivacyKeySql) see what earlier ones created, as on
   * DuckDB and Snowflake, where a session is a connection.
   */
  private async startJob(sql: string): Promise<BigQueryJob> {
    const options: BigQueryQueryOptions = { query: sql };
    if (this.target.location) options.location = this.target.location;
    if (this.target.timeoutSeconds > 0) options.jobTimeoutMs = this.target.timeoutSeconds * 1000;
    if (this.sessionId !== undefined) options.connectionProperties = [{ key: 'session_id', value: this.sessionId }];
    else if (this.sessionMode) options.createSession = true;
    try {
      const [job] = await this.client.createQueryJob(options);
      this.sessionId ??= job.metadata?.statistics?.sessionInfo?.sessionId ?? undefined;
      return job;
    } catch (error) {
      throw toWarehouseError(error, this.target);
    }
  }
}

async function createClient(target: BigQueryTarget): Promise<BigQueryClient> {
  const options: { projectId: string; location?: string; keyFilename?: string; credentials?: object } = { projectId: target.project };
  if (target.location) options.location = target.location;
  if (target.keyfile) options.keyFilename = target.keyfile;
  if (target.keyfileJson) {
    try {
      options.credentials = JSON.parse(target.keyfileJson) as object;
    } catch {
      // JSON.parse quotes the input in its message; never echo a key.
      throw new WarehouseError('bigquery-credentials', 'The BigQuery keyfile_json is not valid JSON.', {
        hint: 'Set keyfile_json to the full contents of a service-account key file.',
      });
    }
  }
  try {
    const { BigQuery } = await import('@google-cloud/bigquery');
    return new BigQuery(options);
  } catch (error) {
    throw toWarehouseError(error, target, 'bigquery-open-failed');
  }
}

interface ApiErrorShape {
  errors?: { reason?: string; location?: string; message?: string }[];
}

/** The engine's own message, plus the reason and location BigQuery attaches to job errors. */
function toWarehouseError(error: unknown, target: BigQueryTarget, code = 'sql-error'): WarehouseError {
  const first = (error as ApiErrorShape | null)?.errors?.[0];
  const extras = [first?.reason && `reason: ${first.reason}`, first?.location && `location: ${first.location}`].filter(Boolean);
  const message = `BigQuery: ${errorMessage(error)}${extras.length > 0 ? ` (${extras.join(', ')})` : ''}`;
  const secrets = secretsOf(target);
  const clean = redact(message, secrets);
  // If the SDK echoed a credential, the raw error must not travel on as the cause either.
  return new WarehouseError(code, clean, clean === message ? { cause: error } : {});
}

function secretsOf(target: BigQueryTarget): string[] {
  if (!target.keyfileJson) return [];
  const secrets = [target.keyfileJson];
  try {
    const key = (JSON.parse(target.keyfileJson) as { private_key?: unknown }).private_key;
    if (typeof key === 'string') secrets.push(key);
  } catch {
    // Invalid JSON was rejected before any request was made.
  }
  return secrets;
}

function redact(message: string, secrets: string[]): string {
  return secrets.filter((s) => s.length > 0).reduce((text, secret) => text.replaceAll(secret, '***'), message);
}

function sdkVersion(name: string): string {
  try {
    return (createRequire(import.meta.url)(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
