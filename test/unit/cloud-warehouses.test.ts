import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { WarehouseError } from '../../src/errors.js';
import type { BigQueryTarget, SnowflakeTarget } from '../../src/project/target.js';
import {
  BigQueryWarehouse,
  type BigQueryClient,
  type BigQueryJob,
  type BigQueryLoadMetadata,
  type BigQueryPageOptions,
  type BigQueryQueryOptions,
} from '../../src/warehouse/bigquery-warehouse.js';
import {
  SnowflakeWarehouse,
  type SnowflakeConnection,
  type SnowflakeConnectionOptions,
  type SnowflakeExecuteOptions,
  type SnowflakeStatement,
} from '../../src/warehouse/snowflake-warehouse.js';
import type { Row } from '../../src/warehouse/warehouse.js';

/*
 * In-memory fakes that mimic the SDKs' observable behaviour (pages, page tokens, callbacks,
 * ranged row streams), so paging and error handling are tested without a network.
 */

const rows = (n: number): Row[] => Array.from({ length: n }, (_, i) => ({ id: i + 1 }));

async function collect<T>(iterable: AsyncIterable<T>, limit = Infinity): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) {
    out.push(item);
    if (out.length >= limit) break;
  }
  return out;
}

async function thrown(promise: Promise<unknown>): Promise<WarehouseError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(WarehouseError);
  return error as WarehouseError;
}

// ---------------------------------------------------------------------------------- BigQuery

interface BqAnswer {
  rows?: Row[];
  /** The server's own page cap, applied on top of maxResults. */
  serverPageSize?: number;
  dml?: number;
  /** How many polls answer `jobComplete: false` before the job is done. */
  pendingPolls?: number;
  error?: Error;
}

class FakeBigQuery implements BigQueryClient {
  readonly queries: BigQueryQueryOptions[] = [];
  private sessions = 0;
  readonly pageRequests: BigQueryPageOptions[] = [];
  readonly loads: { projectId?: string; dataset: string; table: string; file: string; metadata: BigQueryLoadMetadata }[] = [];

  constructor(private readonly answer: (sql: string) => BqAnswer = () => ({})) {}

  async createQueryJob(options: BigQueryQueryOptions): Promise<[BigQueryJob]> {
    this.queries.push(options);
    // jobs.insert with createSession answers the new session's id in the job's statistics.
    const metadata = options.createSession ? { statistics: { sessionInfo: { sessionId: `session-${++this.sessions}` } } } : {};
    const answer = this.answer(options.query);
    let pending = answer.pendingPolls ?? 0;
    const job: BigQueryJob = {
      metadata,
      getQueryResults: async (page) => {
        this.pageRequests.push(page);
        if (answer.error) throw answer.error;
        if (pending-- > 0) return [[], { ...page }, { jobComplete: false }];
        const all = answer.rows ?? [];
        const start = Number(page.pageToken ?? 0);
        const size = Math.min(page.maxResults ?? Infinity, answer.serverPageSize ?? Infinity);
        const end = Math.min(all.length, start + size);
        const next = end < all.length ? { ...page, pageToken: String(end) } : null;
        return [all.slice(start, end), next, { jobComplete: true, numDmlAffectedRows: answer.dml === undefined ? undefined : String(answer.dml) }];
      },
    };
    return [job];
  }

  dataset(dataset: string, options?: { projectId?: string }) {
    return {
      table: (table: string) => ({
        load: async (file: string, metadata: BigQueryLoadMetadata): Promise<[{ statistics: { load: { outputRows: string } } }]> => {
          this.loads.push({ projectId: options?.projectId, dataset, table, file, metadata });
          return [{ statistics: { load: { outputRows: '3' } } }];
        },
      }),
    };
  }
}

const bqTarget: BigQueryTarget = { type: 'bigquery', name: 'dev', schema: 'marts', threads: 4, project: 'acme-prod', location: 'EU', timeoutSeconds: 60 };

describe('BigQueryWarehouse', () => {
  it('query returns every row across pages, in the target location with the job timeout', async () => {
    const client = new FakeBigQuery(() => ({ rows: rows(5), serverPageSize: 2 }));
    const session = await (await BigQueryWarehouse.open(bqTarget, client)).session();
    expect(await session.query('SELECT id FROM t')).toEqual(rows(5));
    expect(client.queries).toEqual([{ query: 'SELECT id FROM t', location: 'EU', jobTimeoutMs: 60_000, createSession: true }]);
    expect(client.pageRequests).toHaveLength(3);
  });

  it('runs every job of a cdp session in one BigQuery session (TEMP tables persist), and ends it on close', async () => {
    const client = new FakeBigQuery(() => ({ rows: rows(1) }));
    const warehouse = new BigQueryWarehouse(client, bqTarget);
    const session = await warehouse.session();
    await session.execute('CREATE TEMP TABLE cdp_privacy_key AS SELECT 1 AS x');
    await session.query('SELECT x FROM cdp_privacy_key');
    const other = await warehouse.session();
    await other.query('SELECT 2');
    await session.close();
    expect(client.queries.map((q) => [q.query, q.createSession ?? false, q.connectionProperties ?? []])).toEqual([
      ['CREATE TEMP TABLE cdp_privacy_key AS SELECT 1 AS x', true, []],
      ['SELECT x FROM cdp_privacy_key', false, [{ key: 'session_id', value: 'session-1' }]],
      ['SELECT 2', true, []],
      ['CALL BQ.ABORT_SESSION()', false, [{ key: 'session_id', value: 'session-1' }]],
    ]);
  });

  it('stream re-cuts short server pages into batches of exactly batchSize', async () => {
    const client = new FakeBigQuery(() => ({ rows: rows(10), serverPageSize: 2 }));
    const session = await new BigQueryWarehouse(client, bqTarget).session();
    const batches = await collect(session.stream('SELECT id FROM t', 3));
    expect(batches.map((b) => b.length)).toEqual([3, 3, 3, 1]);
    expect(batches.flat()).toEqual(rows(10));
    expect(client.pageRequests.every((p) => p.autoPaginate === false && p.maxResults === 3)).toBe(true);
  });

  it('streamColumns gives stream\'s batches as columns', async () => {
    const client = new FakeBigQuery(() => ({ rows: rows(7).map((r) => ({ ...r, name: `n${String(r['id'])}` })), serverPageSize: 2 }));
    const session = await new BigQueryWarehouse(client, bqTarget).session();
    const batches = await collect(session.streamColumns('SELECT id, name FROM t', 3));
    expect(batches).toEqual([
      { rowCount: 3, columns: { id: [1, 2, 3], name: ['n1', 'n2', 'n3'] } },
      { rowCount: 3, columns: { id: [4, 5, 6], name: ['n4', 'n5', 'n6'] } },
      { rowCount: 1, columns: { id: [7], name: ['n7'] } },
    ]);
  });

  it('stream fetches pages only as the consumer pulls', async () => {
    const client = new FakeBigQuery(() => ({ rows: rows(100), serverPageSize: 2 }));
    const session = await new BigQueryWarehouse(client, bqTarget).session();
    const [first] = await collect(session.stream('SELECT id FROM t', 3), 1);
    expect(first).toEqual(rows(3));
    // Two pages of two rows fill the first batch; the other 48 pages are never requested.
    expect(client.pageRequests).toHaveLength(2);
  });

  it('keeps polling while the job is still running', async () => {
    const client = new FakeBigQuery(() => ({ rows: rows(2), pendingPolls: 2 }));
    const session = await new BigQueryWarehouse(client, bqTarget).session();
    expect(await session.query('SELECT id FROM t')).toEqual(rows(2));
    expect(client.pageRequests).toHaveLength(3);
  });

  it('execute reports numDmlAffectedRows without fetching rows', async () => {
    const client = new FakeBigQuery(() => ({ dml: 7 }));
    const session = await new BigQueryWarehouse(client, bqTarget).session();
    expect(await session.execute('DELETE FROM t WHERE true')).toEqual({ rowsAffected: 7 });
    expect(client.pageRequests).toEqual([{ autoPaginate: false, maxResults: 0 }]);
    expect(await new BigQueryWarehouse(new FakeBigQuery(), bqTarget).session().then((s) => s.execute('CREATE SCHEMA x'))).toEqual({});
  });

  it('maps a failed job to WarehouseError with BigQuery message, reason and location', async () => {
    const apiError = Object.assign(new Error('Syntax error: Unexpected keyword FROM at [1:8]'), {
      errors: [{ reason: 'invalidQuery', location: 'query', message: 'Syntax error: Unexpected keyword FROM at [1:8]' }],
    });
    const session = await new BigQueryWarehouse(new FakeBigQuery(() => ({ error: apiError })), bqTarget).session();
    const error = await thrown(session.execute('SELECT FROM'));
    expect(error.code).toBe('sql-error');
    expect(error.message).toBe('BigQuery: Syntax error: Unexpected keyword FROM at [1:8] (reason: invalidQuery, location: query)');
  });

  it('describe reads INFORMATION_SCHEMA rows, and a missing dataset means no relation', async () => {
    const client = new FakeBigQuery((sql) => {
      if (sql.includes('`gone`')) return { error: new Error('Not found: Dataset acme-prod:gone was not found in location EU') };
      return { rows: [{ column_name: 'id', data_type: 'INT64', table_type: 'BASE TABLE' }, { column_name: 'email', data_type: 'STRING', table_type: 'BASE TABLE' }] };
    });
    const session = await new BigQueryWarehouse(client, bqTarget).session();
    expect(await session.describe({ database: 'acme-prod', schema: 'marts', name: 'users' })).toEqual({
      kind: 'table',
      columns: [{ name: 'id', type: 'INT64' }, { name: 'email', type: 'STRING' }],
    });
    expect(await session.describe({ database: 'acme-prod', schema: 'gone', name: 'users' })).toBeUndefined();
  });

  it.each([
    ['csv', 'CSV'],
    ['parquet', 'PARQUET'],
    ['json', 'NEWLINE_DELIMITED_JSON'],
  ] as const)('loadFile (%s) creates the dataset, then runs a WRITE_TRUNCATE load job', async (format, sourceFormat) => {
    const client = new FakeBigQuery();
    const warehouse = new BigQueryWarehouse(client, bqTarget);
    const result = await warehouse.loadFile({ database: 'acme-prod', schema: 'raw', name: 'countries' }, '/seeds/countries.x', format);
    expect(result).toEqual({ rowsAffected: 3 });
    expect(client.queries.map((q) => q.query)).toEqual(['CREATE SCHEMA IF NOT EXISTS `acme-prod`.`raw`']);
    expect(client.loads).toEqual([{
      projectId: 'acme-prod',
      dataset: 'raw',
      table: 'countries',
      file: '/seeds/countries.x',
      metadata: { sourceFormat, writeDisposition: 'WRITE_TRUNCATE', autodetect: true, location: 'EU' },
    }]);
  });

  it('never puts the service-account key in an error message', async () => {
    const privateKey = '-----BEGIN PRIVATE KEY-----\nMIIEvSECRETSECRETSECRET\n-----END PRIVATE KEY-----\n';
    const keyfileJson = JSON.stringify({ type: 'service_account', private_key: privateKey });
    const echo = new Error(`invalid_grant: bad key ${privateKey} in ${keyfileJson}`);
    const session = await new BigQueryWarehouse(new FakeBigQuery(() => ({ error: echo })), { ...bqTarget, keyfileJson }).session();
    const error = await thrown(session.query('SELECT 1'));
    expect(error.message).not.toContain('SECRET');
    expect(error.cause).toBeUndefined();

    // JSON.parse quotes its input when it fails; that text must not surface either.
    const broken = await thrown(BigQueryWarehouse.open({ ...bqTarget, keyfileJson: '{"private_key": "SECRETSECRET' }));
    expect(broken.code).toBe('bigquery-credentials');
    expect(broken.message).not.toContain('SECRET');
  });

  it('open() without a client builds the real SDK client lazily (no request is made)', async () => {
    const warehouse = await BigQueryWarehouse.open(bqTarget);
    expect(await warehouse.version()).toMatch(/^BigQuery \(@google-cloud\/bigquery \d+\.\d+\.\d+\)$/);
    await warehouse.close();
  });
});

// --------------------------------------------------------------------------------- Snowflake

interface SfAnswer {
  rows?: Row[];
  updated?: number;
  error?: Error;
}

class FakeSnowflake {
  readonly connections: { options: SnowflakeConnectionOptions; destroyed: boolean }[] = [];
  readonly statements: { sql: string; streamResult?: boolean }[] = [];
  readonly rangeReads: { start?: number; end?: number }[] = [];
  connectError?: (options: SnowflakeConnectionOptions) => Error;

  constructor(private readonly answer: (sql: string) => SfAnswer = () => ({})) {}

  readonly factory = (options: SnowflakeConnectionOptions): SnowflakeConnection => {
    const record = { options, destroyed: false };
    this.connections.push(record);
    return {
      connectAsync: async () => {
        if (this.connectError) throw this.connectError(options);
      },
      execute: (exec: SnowflakeExecuteOptions) => {
        this.statements.push({ sql: exec.sqlText, streamResult: exec.streamResult });
        const answer = this.answer(exec.sqlText);
        const all = answer.rows ?? [];
        const statement: SnowflakeStatement = {
          getNumRows: () => all.length,
          getNumUpdatedRows: () => answer.updated,
          streamRows: (range = {}) => {
            this.rangeReads.push(range);
            return Readable.from(all.slice(range.start ?? 0, (range.end ?? all.length - 1) + 1));
          },
        };
        // Like the SDK: the callback fires asynchronously, without rows when streaming.
        setImmediate(() => exec.complete(answer.error, statement, exec.streamResult ? undefined : all));
        return statement;
      },
      destroy: (callback) => {
        record.destroyed = true;
        callback(undefined);
      },
    };
  };
}

const sfTarget: SnowflakeTarget = {
  type: 'snowflake',
  name: 'dev',
  schema: 'MARTS',
  threads: 4,
  account: 'acme-xy12345',
  user: 'CDP_RUNNER',
  password: 'hunter2-Secret!',
  role: 'TRANSFORMER',
  warehouse: 'COMPUTE_WH',
  database: 'ANALYTICS',
};

describe('SnowflakeWarehouse', () => {
  it('connects with password auth, tags the application, and returns query rows', async () => {
    const fake = new FakeSnowflake(() => ({ rows: [{ ok: 1 }] }));
    const session = await (await SnowflakeWarehouse.open(sfTarget, fake.factory)).session();
    expect(await session.query('SELECT 1 AS "ok"')).toEqual([{ ok: 1 }]);
    expect(fake.connections[0]!.options).toEqual({
      account: 'acme-xy12345',
      username: 'CDP_RUNNER',
      password: 'hunter2-Secret!',
      role: 'TRANSFORMER',
      warehouse: 'COMPUTE_WH',
      database: 'ANALYTICS',
      application: 'cdp',
    });
  });

  it('uses key-pair (SNOWFLAKE_JWT) auth when a private key is set', async () => {
    const fake = new FakeSnowflake();
    const target = { ...sfTarget, password: undefined, privateKey: 'PEM', privateKeyPassphrase: 'pass' };
    await new SnowflakeWarehouse(fake.factory, target).session();
    expect(fake.connections[0]!.options).toMatchObject({ authenticator: 'SNOWFLAKE_JWT', privateKey: 'PEM', privateKeyPass: 'pass' });
    expect(fake.connections[0]!.options).not.toHaveProperty('password');
  });

  it('refuses a target with no credentials before connecting', async () => {
    const fake = new FakeSnowflake();
    const error = await thrown(new SnowflakeWarehouse(fake.factory, { ...sfTarget, password: undefined }).session());
    expect(error.code).toBe('snowflake-credentials');
    expect(fake.connections).toHaveLength(0);
  });

  it('stream reads one row range per batch', async () => {
    const fake = new FakeSnowflake(() => ({ rows: rows(10) }));
    const session = await new SnowflakeWarehouse(fake.factory, sfTarget).session();
    const batches = await collect(session.stream('SELECT id FROM t', 4));
    expect(batches).toEqual([rows(10).slice(0, 4), rows(10).slice(4, 8), rows(10).slice(8)]);
    expect(fake.statements).toEqual([{ sql: 'SELECT id FROM t', streamResult: true }]);
    expect(fake.rangeReads).toEqual([{ start: 0, end: 3 }, { start: 4, end: 7 }, { start: 8, end: 9 }]);
  });

  it('streamColumns reads one row range per batch, as columns with folded names', async () => {
    const fake = new FakeSnowflake(() => ({ rows: rows(5).map((r) => ({ ID: r['id'] })) }));
    const session = await new SnowflakeWarehouse(fake.factory, sfTarget).session();
    const batches = await collect(session.streamColumns('SELECT id FROM t', 4));
    expect(batches).toEqual([{ rowCount: 4, columns: { id: [1, 2, 3, 4] } }, { rowCount: 1, columns: { id: [5] } }]);
    expect(fake.rangeReads).toEqual([{ start: 0, end: 3 }, { start: 4, end: 4 }]);
  });

  it('stream stops reading when the consumer stops', async () => {
    const fake = new FakeSnowflake(() => ({ rows: rows(1000) }));
    const session = await new SnowflakeWarehouse(fake.factory, sfTarget).session();
    await collect(session.stream('SELECT id FROM t', 10), 1);
    expect(fake.rangeReads).toEqual([{ start: 0, end: 9 }]);
  });

  it('execute reports updated rows and maps failures to WarehouseError with the engine message', async () => {
    const fake = new FakeSnowflake((sql) => sql.startsWith('DELETE')
      ? { updated: 4 }
      : { error: Object.assign(new Error("SQL compilation error:\nObject 'NOPE' does not exist or not authorized."), { sqlState: '42S02' }) });
    const session = await new SnowflakeWarehouse(fake.factory, sfTarget).session();
    expect(await session.execute('DELETE FROM t')).toEqual({ rowsAffected: 4 });
    const error = await thrown(session.execute('SELECT * FROM NOPE'));
    expect(error.code).toBe('sql-error');
    expect(error.message).toBe("Snowflake: SQL compilation error:\nObject 'NOPE' does not exist or not authorized. (SQLSTATE 42S02)");
  });

  it('loadFile stages the file, infers the table, copies, and swaps it in', async () => {
    const fake = new FakeSnowflake((sql) => {
      if (sql.startsWith('COPY INTO')) return { rows: [{ file: 'a.csv.gz', status: 'LOADED', rows_loaded: 3 }] };
      if (sql.includes('INFORMATION_SCHEMA')) return { rows: [{ column_name: 'code', data_type: 'TEXT', table_type: 'BASE TABLE' }] };
      return {};
    });
    const warehouse = new SnowflakeWarehouse(fake.factory, sfTarget);
    const relation = { database: 'ANALYTICS', schema: 'RAW', name: 'countries' };
    expect(await warehouse.loadFile(relation, 'seeds/countries.csv', 'csv')).toEqual({ rowsAffected: 3 });

    const at = '"ANALYTICS"."RAW"';
    const stage = `${at}\\."CDP_LOAD_[0-9A-F]{8}"`;
    const format = `${at}\\."CDP_LOAD_[0-9A-F]{8}_FORMAT"`;
    const staging = `${at}."COUNTRIES__CDP_LOAD"`;
    const file = `file://${path.resolve('seeds/countries.csv')}`;
    const sql = fake.statements.map((s) => s.sql);
    const expected: (string | RegExp)[] = [
      `CREATE SCHEMA IF NOT EXISTS ${at}`,
      new RegExp(`^CREATE TEMPORARY FILE FORMAT ${format} TYPE = CSV PARSE_HEADER = TRUE`),
      new RegExp(`^CREATE TEMPORARY STAGE ${stage}$`),
      new RegExp(`^PUT '${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' @${stage} AUTO_COMPRESS = TRUE OVERWRITE = TRUE$`),
      new RegExp(`^CREATE OR REPLACE TABLE ${staging.replaceAll('.', '\\.')} USING TEMPLATE \\(\\n.*OBJECT_CONSTRUCT\\(\\*\\).*\\n.*INFER_SCHEMA\\(LOCATION => '@${stage}', FILE_FORMAT => '${format}'\\)`),
      new RegExp(`^COPY INTO ${staging.replaceAll('.', '\\.')} FROM @${stage} FILE_FORMAT = \\(FORMAT_NAME = '${format}'\\) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE$`),
      /INFORMATION_SCHEMA\.TABLES/,
      `ALTER TABLE ${at}."COUNTRIES" SWAP WITH ${staging}`,
      `DROP TABLE IF EXISTS ${staging}`,
      new RegExp(`^DROP STAGE IF EXISTS ${stage}$`),
      new RegExp(`^DROP FILE FORMAT IF EXISTS ${format}$`),
    ];
    expect(sql).toHaveLength(expected.length);
    expected.forEach((want, i) => (typeof want === 'string' ? expect(sql[i]).toBe(want) : expect(sql[i]).toMatch(want)));
    expect(fake.connections.every((c) => c.destroyed)).toBe(true);
  });

  it('never puts the password or private key in an error message', async () => {
    const fake = new FakeSnowflake();
    // A driver that echoes its options on auth failure (the worst case).
    fake.connectError = (options) => new Error(`Incorrect username or password was specified. options=${JSON.stringify(options)}`);
    const error = await thrown(new SnowflakeWarehouse(fake.factory, sfTarget).session());
    expect(error.code).toBe('snowflake-connect-failed');
    expect(error.message).toContain('Incorrect username or password');
    expect(error.message).not.toContain('hunter2-Secret!');
    expect(error.cause).toBeUndefined();

    const pem = '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----';
    const keyTarget = { ...sfTarget, password: undefined, privateKey: pem, privateKeyPassphrase: 'open-sesame' };
    const keyError = await thrown(new SnowflakeWarehouse(fake.factory, keyTarget).session());
    expect(keyError.message).not.toContain('MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI');
    expect(keyError.message).not.toContain('open-sesame');

    // A statement error that quotes the password (e.g. in a failed ALTER USER) is redacted too.
    const sqlFake = new FakeSnowflake(() => ({ error: new Error("invalid value 'hunter2-Secret!'") }));
    const sqlError = await thrown(new SnowflakeWarehouse(sqlFake.factory, sfTarget).session().then((s) => s.execute('ALTER USER x SET PASSWORD = ...')));
    expect(sqlError.message).toBe("Snowflake: invalid value '***'");
  });

  it('close destroys every open connection; version reports engine and driver', async () => {
    const fake = new FakeSnowflake(() => ({ rows: [{ v: '9.1.0' }] }));
    const warehouse = new SnowflakeWarehouse(fake.factory, sfTarget);
    expect(await warehouse.version()).toMatch(/^Snowflake 9\.1\.0 \(snowflake-sdk \d+\.\d+\.\d+\)$/);
    await warehouse.session();
    await warehouse.session();
    await warehouse.close();
    expect(fake.connections.map((c) => c.destroyed)).toEqual([true, true, true]);
  });
});

describe('SnowflakeWarehouse.open without a factory', () => {
  it('loads snowflake-sdk lazily and does not connect until a session is asked for', async () => {
    const warehouse = await SnowflakeWarehouse.open(sfTarget);
    expect(warehouse.dialect.name).toBe('snowflake');
    await warehouse.close();
  });
});
