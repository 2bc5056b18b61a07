import { describe, expect, it } from 'vitest';
import type { Relation } from '../../src/compile/node.js';
import { BigQueryDialect } from '../../src/warehouse/bigquery-dialect.js';
import type { Dialect, DialectName } from '../../src/warehouse/dialect.js';
import { DuckDbDialect } from '../../src/warehouse/duckdb-dialect.js';
import { SnowflakeDialect, foldName } from '../../src/warehouse/snowflake-dialect.js';

/*
 * Kysely-style: one table of exact SQL per feature, checked against every dialect, so a change
 * to one engine's SQL shows up next to the other two. String.raw keeps backslashes literal.
 */

const DIALECTS: Dialect[] = [new DuckDbDialect(), new BigQueryDialect(), new SnowflakeDialect()];

type PerDialect<T> = Record<DialectName, T>;

function sqlCase<T>(feature: string, render: (d: Dialect) => T, expected: PerDialect<T>): void {
  describe(feature, () => {
    for (const dialect of DIALECTS) {
      it(dialect.name, () => expect(render(dialect)).toEqual(expected[dialect.name]));
    }
  });
}

/** Same SQL on every engine once the three quoting styles are filled in. */
function quoted(template: (q: (s: string) => string) => string): PerDialect<string> {
  return {
    duckdb: template((s) => `"${s}"`),
    bigquery: template((s) => `\`${s}\``),
    // Snowflake quotes simple names in their upper-case folded form (see SnowflakeDialect).
    snowflake: template((s) => `"${foldName(s)}"`),
  };
}

const rel: Relation = { database: 'analytics', schema: 'marts', name: 'orders' };
const staging: Relation = { ...rel, name: 'orders__cdp_tmp' };
const T = (q: (s: string) => string) => `${q('analytics')}.${q('marts')}.${q('orders')}`;
const S = (q: (s: string) => string) => `${q('analytics')}.${q('marts')}.${q('orders__cdp_tmp')}`;

describe('quoteIdentifier', () => {
  const cases: { input: string; expected: PerDialect<string> }[] = [
    { input: 'orders', expected: { duckdb: '"orders"', bigquery: '`orders`', snowflake: '"ORDERS"' } },
    { input: 'Mixed Case', expected: { duckdb: '"Mixed Case"', bigquery: '`Mixed Case`', snowflake: '"Mixed Case"' } },
    { input: 'a"b', expected: { duckdb: '"a""b"', bigquery: '`a"b`', snowflake: '"a""b"' } },
    // Plain strings below (String.raw would keep the backslash of "\`"): '\\' is one backslash.
    { input: 'a`b', expected: { duckdb: '"a`b"', bigquery: '`a\\`b`', snowflake: '"a`b"' } },
    { input: 'a\\b', expected: { duckdb: '"a\\b"', bigquery: '`a\\\\b`', snowflake: '"a\\b"' } },
    // A backslash before the quote must not turn our escape into a literal backslash plus a live quote.
    { input: 'x\\`; DROP', expected: { duckdb: '"x\\`; DROP"', bigquery: '`x\\\\\\`; DROP`', snowflake: '"x\\`; DROP"' } },
    { input: '"; DROP TABLE t; --', expected: { duckdb: '"""; DROP TABLE t; --"', bigquery: '`"; DROP TABLE t; --`', snowflake: '"""; DROP TABLE t; --"' } },
    { input: 'line\nbreak', expected: { duckdb: '"line\nbreak"', bigquery: '`line\\nbreak`', snowflake: '"line\nbreak"' } },
    { input: '', expected: { duckdb: '""', bigquery: '``', snowflake: '""' } },
  ];
  for (const { input, expected } of cases) {
    for (const dialect of DIALECTS) {
      it(`${dialect.name}: ${JSON.stringify(input)}`, () => expect(dialect.quoteIdentifier(input)).toBe(expected[dialect.name]));
    }
  }
});

describe('stringLiteral', () => {
  const cases: { input: string; expected: PerDialect<string> }[] = [
    { input: 'plain', expected: { duckdb: "'plain'", bigquery: "'plain'", snowflake: "'plain'" } },
    { input: "it's", expected: { duckdb: "'it''s'", bigquery: String.raw`'it\'s'`, snowflake: String.raw`'it\'s'` } },
    { input: String.raw`a\b`, expected: { duckdb: String.raw`'a\b'`, bigquery: String.raw`'a\\b'`, snowflake: String.raw`'a\\b'` } },
    // A trailing backslash must not escape the closing quote.
    { input: String.raw`x\' OR 1=1 --`, expected: { duckdb: String.raw`'x\'' OR 1=1 --'`, bigquery: String.raw`'x\\\' OR 1=1 --'`, snowflake: String.raw`'x\\\' OR 1=1 --'` } },
    { input: 'a\nb\rc', expected: { duckdb: "'a\nb\rc'", bigquery: String.raw`'a\nb\rc'`, snowflake: String.raw`'a\nb\rc'` } },
  ];
  for (const { input, expected } of cases) {
    for (const dialect of DIALECTS) {
      it(`${dialect.name}: ${JSON.stringify(input)}`, () => expect(dialect.stringLiteral(input)).toBe(expected[dialect.name]));
    }
  }
});

sqlCase('quoteRelation (with database)', (d) => d.quoteRelation(rel), quoted(T));

sqlCase('quoteRelation (no database)', (d) => d.quoteRelation({ schema: 'marts', name: 'orders' }), quoted((q) => `${q('marts')}.${q('orders')}`));

sqlCase('stagingRelation', (d) => d.stagingRelation(rel, 'tmp'), { duckdb: staging, bigquery: staging, snowflake: staging });

sqlCase('createSchema', (d) => d.createSchema('analytics', 'marts'), quoted((q) => `CREATE SCHEMA IF NOT EXISTS ${q('analytics')}.${q('marts')}`));

sqlCase('createTableAs', (d) => d.createTableAs(rel, 'SELECT 1 AS id'), quoted((q) => `CREATE OR REPLACE TABLE ${T(q)} AS (\nSELECT 1 AS id\n)`));

sqlCase('createViewAs', (d) => d.createViewAs(rel, 'SELECT 1 AS id'), quoted((q) => `CREATE OR REPLACE VIEW ${T(q)} AS (\nSELECT 1 AS id\n)`));

sqlCase('swapTable (existing table)', (d) => d.swapTable(rel, staging, 'table'), {
  // DuckDB's drop + rename become atomic through `atomically(..., 'ddl')` (see below).
  duckdb: ['DROP TABLE IF EXISTS "analytics"."marts"."orders"', 'ALTER TABLE "analytics"."marts"."orders__cdp_tmp" RENAME TO "orders"'],
  bigquery: [
    'CREATE OR REPLACE TABLE `analytics`.`marts`.`orders` AS SELECT * FROM `analytics`.`marts`.`orders__cdp_tmp`',
    'DROP TABLE IF EXISTS `analytics`.`marts`.`orders__cdp_tmp`',
  ],
  snowflake: [
    'ALTER TABLE "ANALYTICS"."MARTS"."ORDERS" SWAP WITH "ANALYTICS"."MARTS"."ORDERS__CDP_TMP"',
    'DROP TABLE IF EXISTS "ANALYTICS"."MARTS"."ORDERS__CDP_TMP"',
  ],
});

sqlCase('swapTable (existing view)', (d) => d.swapTable(rel, staging, 'view'), {
  duckdb: ['DROP VIEW IF EXISTS "analytics"."marts"."orders"', 'ALTER TABLE "analytics"."marts"."orders__cdp_tmp" RENAME TO "orders"'],
  bigquery: [
    'DROP VIEW IF EXISTS `analytics`.`marts`.`orders`',
    'CREATE OR REPLACE TABLE `analytics`.`marts`.`orders` AS SELECT * FROM `analytics`.`marts`.`orders__cdp_tmp`',
    'DROP TABLE IF EXISTS `analytics`.`marts`.`orders__cdp_tmp`',
  ],
  snowflake: [
    'DROP VIEW IF EXISTS "ANALYTICS"."MARTS"."ORDERS"',
    'ALTER TABLE "ANALYTICS"."MARTS"."ORDERS__CDP_TMP" RENAME TO "ANALYTICS"."MARTS"."ORDERS"',
  ],
});

sqlCase('swapTable (nothing there)', (d) => d.swapTable(rel, staging, undefined), {
  duckdb: ['ALTER TABLE "analytics"."marts"."orders__cdp_tmp" RENAME TO "orders"'],
  bigquery: [
    'CREATE OR REPLACE TABLE `analytics`.`marts`.`orders` AS SELECT * FROM `analytics`.`marts`.`orders__cdp_tmp`',
    'DROP TABLE IF EXISTS `analytics`.`marts`.`orders__cdp_tmp`',
  ],
  snowflake: ['ALTER TABLE "ANALYTICS"."MARTS"."ORDERS__CDP_TMP" RENAME TO "ANALYTICS"."MARTS"."ORDERS"'],
});

sqlCase('atomically (ddl)', (d) => d.atomically(['A', 'B'], 'ddl'), {
  duckdb: ['BEGIN TRANSACTION', 'A', 'B', 'COMMIT'],
  // DDL auto-commits on the cloud engines; wrapping it would promise an atomicity they lack.
  bigquery: ['A', 'B'],
  snowflake: ['A', 'B'],
});

sqlCase('atomically (dml)', (d) => d.atomically(['A', 'B'], 'dml'), {
  duckdb: ['BEGIN TRANSACTION', 'A', 'B', 'COMMIT'],
  // Every BigQuery statement is its own job: the transaction must be one multi-statement script.
  bigquery: ['BEGIN TRANSACTION;\nA;\nB;\nCOMMIT TRANSACTION;'],
  snowflake: ['BEGIN TRANSACTION', 'A', 'B', 'COMMIT'],
});

sqlCase('atomically (one dml statement)', (d) => d.atomically(['A'], 'dml'), {
  duckdb: ['BEGIN TRANSACTION', 'A', 'COMMIT'],
  // A single BigQuery DML statement is atomic, and run alone it still reports numDmlAffectedRows.
  bigquery: ['A'],
  snowflake: ['BEGIN TRANSACTION', 'A', 'COMMIT'],
});

const mergeSpec = { target: rel, source: staging, uniqueKey: ['id'], columns: ['id', 'status'] };

sqlCase('merge', (d) => d.merge(mergeSpec), quoted((q) => [
  `MERGE INTO ${T(q)} AS tgt`,
  `USING ${S(q)} AS src`,
  `ON tgt.${q('id')} = src.${q('id')}`,
  `WHEN MATCHED THEN UPDATE SET ${q('status')} = src.${q('status')}`,
  `WHEN NOT MATCHED THEN INSERT (${q('id')}, ${q('status')}) VALUES (src.${q('id')}, src.${q('status')})`,
].join('\n')));

sqlCase('merge (key columns only: no UPDATE clause)', (d) => d.merge({ ...mergeSpec, uniqueKey: ['id', 'status'] }), quoted((q) => [
  `MERGE INTO ${T(q)} AS tgt`,
  `USING ${S(q)} AS src`,
  `ON tgt.${q('id')} = src.${q('id')} AND tgt.${q('status')} = src.${q('status')}`,
  `WHEN NOT MATCHED THEN INSERT (${q('id')}, ${q('status')}) VALUES (src.${q('id')}, src.${q('status')})`,
].join('\n')));

/** Snowflake's quoting: simple names in their folded, upper-case form. */
const sf = (s: string) => `"${foldName(s)}"`;
const insertBack = (q: (s: string) => string) => `INSERT INTO ${T(q)} (${q('id')}, ${q('status')}) SELECT ${q('id')}, ${q('status')} FROM ${S(q)}`;
const deleteExists = (q: (s: string) => string) =>
  `DELETE FROM ${T(q)} AS tgt WHERE EXISTS (SELECT 1 FROM ${S(q)} AS src WHERE tgt.${q('id')} = src.${q('id')})`;

sqlCase('deleteInsert', (d) => d.deleteInsert(mergeSpec), {
  duckdb: [deleteExists((s) => `"${s}"`), insertBack((s) => `"${s}"`)],
  bigquery: [deleteExists((s) => `\`${s}\``), insertBack((s) => `\`${s}\``)],
  snowflake: [`DELETE FROM ${T(sf)} AS tgt USING ${S(sf)} AS src WHERE tgt."ID" = src."ID"`, insertBack(sf)],
});

const violations = (q: (s: string) => string, alias: (s: string) => string) => [
  'SELECT',
  `  (SELECT COUNT(*) FROM ${S(q)} WHERE ${q('id')} IS NULL OR ${q('day')} IS NULL) AS ${alias('null_keys')},`,
  `  (SELECT COUNT(*) FROM (SELECT ${q('id')}, ${q('day')} FROM ${S(q)} GROUP BY ${q('id')}, ${q('day')} HAVING COUNT(*) > 1) AS d) AS ${alias('duplicate_keys')}`,
].join('\n');

sqlCase('keyViolations', (d) => d.keyViolations(staging, ['id', 'day']), {
  duckdb: violations((s) => `"${s}"`, (s) => s),
  bigquery: violations((s) => `\`${s}\``, (s) => s),
  // Unquoted aliases would come back upper-cased.
  snowflake: violations(sf, (s) => `"${s}"`),
});

sqlCase('describeRelation', (d) => d.describeRelation(rel), {
  duckdb: [
    'SELECT c.column_name AS column_name, c.data_type AS data_type, t.table_type AS table_type',
    'FROM information_schema.tables AS t',
    'LEFT JOIN information_schema.columns AS c',
    '  ON c.table_catalog = t.table_catalog AND c.table_schema = t.table_schema AND c.table_name = t.table_name',
    "WHERE t.table_catalog = 'analytics' AND t.table_schema = 'marts' AND t.table_name = 'orders'",
    'ORDER BY c.ordinal_position',
  ].join('\n'),
  bigquery: [
    'SELECT c.column_name AS column_name, c.data_type AS data_type, t.table_type AS table_type',
    'FROM `analytics`.`marts`.INFORMATION_SCHEMA.TABLES AS t',
    'LEFT JOIN `analytics`.`marts`.INFORMATION_SCHEMA.COLUMNS AS c',
    '  ON c.table_name = t.table_name',
    "WHERE t.table_name = 'orders'",
    'ORDER BY c.ordinal_position',
  ].join('\n'),
  snowflake: [
    'SELECT c.column_name AS "column_name", c.data_type AS "data_type", t.table_type AS "table_type"',
    'FROM "ANALYTICS".INFORMATION_SCHEMA.TABLES AS t',
    'LEFT JOIN "ANALYTICS".INFORMATION_SCHEMA.COLUMNS AS c',
    '  ON c.table_catalog = t.table_catalog AND c.table_schema = t.table_schema AND c.table_name = t.table_name',
    "WHERE t.table_schema = 'MARTS' AND t.table_name = 'ORDERS'",
    'ORDER BY c.ordinal_position',
  ].join('\n'),
});

sqlCase('describeRelation escapes names as literals', (d) => d.describeRelation({ database: 'db', schema: 's', name: "o'k" }).split('\n')[4], {
  duckdb: "WHERE t.table_catalog = 'db' AND t.table_schema = 's' AND t.table_name = 'o''k'",
  bigquery: String.raw`WHERE t.table_name = 'o\'k'`,
  snowflake: String.raw`WHERE t.table_schema = 'S' AND t.table_name = 'o\'k'`,
});

sqlCase('sha256Hex', (d) => d.sha256Hex('email'), { duckdb: 'sha256(email)', bigquery: 'TO_HEX(SHA256(email))', snowflake: 'SHA2(email, 256)' });
sqlCase('fingerprint of a tuple of typed values', (d) => d.fingerprint(["'v1'", 'a', 'b']), {
  duckdb: "CAST(hash('v1', a, b) >> 1 AS BIGINT)",
  bigquery: "FARM_FINGERPRINT(TO_JSON_STRING(STRUCT('v1', a, b)))",
  snowflake: "HASH('v1', a, b)",
});
sqlCase('loadPrivacyKeySql keeps the key in a session table', (d) => d.loadPrivacyKeySql('36', '5c'), {
  duckdb: "CREATE OR REPLACE TEMP TABLE cdp_privacy_key AS SELECT unhex('36') AS ipad, unhex('5c') AS opad",
  bigquery: "CREATE OR REPLACE TEMP TABLE cdp_privacy_key AS SELECT FROM_HEX('36') AS ipad, FROM_HEX('5c') AS opad",
  snowflake: "CREATE OR REPLACE TEMPORARY TABLE cdp_privacy_key AS SELECT TO_BINARY('36', 'HEX') AS ipad, TO_BINARY('5c', 'HEX') AS opad",
});
sqlCase('hmacSha256Hex reads the pads, never the key', (d) => d.hmacSha256Hex('v'), {
  duckdb: 'sha256((SELECT opad FROM cdp_privacy_key) || unhex(sha256((SELECT ipad FROM cdp_privacy_key) || encode(v))))',
  bigquery: 'TO_HEX(SHA256(CONCAT((SELECT opad FROM cdp_privacy_key), SHA256(CONCAT((SELECT ipad FROM cdp_privacy_key), CAST(v AS BYTES))))))',
  snowflake: "LOWER(SHA2(CONCAT((SELECT opad FROM cdp_privacy_key), SHA2_BINARY(CONCAT((SELECT ipad FROM cdp_privacy_key), TO_BINARY(v, 'UTF-8')), 256)), 256))",
});

sqlCase('finiteOrNull', (d) => d.finiteOrNull('x'), {
  duckdb: 'CASE WHEN isfinite(x) THEN x END',
  bigquery: 'IF(IS_NAN(x) OR IS_INF(x), NULL, x)',
  snowflake: "CASE WHEN x IN ('NaN'::FLOAT, 'inf'::FLOAT, '-inf'::FLOAT) THEN NULL ELSE x END",
});

sqlCase('isFloatingPointType over the names describe gives', (d) => ['DOUBLE', 'FLOAT', 'FLOAT64', 'DECIMAL(18,3)', 'BIGINT', 'VARCHAR'].filter((t) => d.isFloatingPointType(t)), {
  duckdb: ['DOUBLE', 'FLOAT'],
  bigquery: ['FLOAT64'],
  snowflake: ['DOUBLE', 'FLOAT'],
});

sqlCase('currentTimestamp', (d) => d.currentTimestamp(), {
  duckdb: "CAST(timezone('UTC', current_timestamp) AS TIMESTAMP)",
  bigquery: 'CURRENT_TIMESTAMP()',
  snowflake: "CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ",
});

sqlCase('dateAdd', (d) => d.dateAdd('ts', -3, 'day'), {
  duckdb: '(ts + INTERVAL (-3) DAY)',
  bigquery: 'TIMESTAMP_ADD(ts, INTERVAL -3 DAY)',
  snowflake: 'DATEADD(day, -3, ts)',
});

sqlCase('dateAdd truncates fractional amounts', (d) => d.dateAdd('ts', 2.7, 'minute'), {
  duckdb: '(ts + INTERVAL (2) MINUTE)',
  bigquery: 'TIMESTAMP_ADD(ts, INTERVAL 2 MINUTE)',
  snowflake: 'DATEADD(minute, 2, ts)',
});

sqlCase('dateDiff', (d) => d.dateDiff('hour', 'a', 'b'), {
  duckdb: "date_diff('hour', a, b)",
  bigquery: 'TIMESTAMP_DIFF(TIMESTAMP_TRUNC(b, HOUR), TIMESTAMP_TRUNC(a, HOUR), HOUR)',
  snowflake: 'DATEDIFF(hour, a, b)',
});

sqlCase('arrayAgg', (d) => d.arrayAgg('x'), { duckdb: 'list(x)', bigquery: 'ARRAY_AGG(x IGNORE NULLS)', snowflake: 'ARRAY_AGG(x)' });

sqlCase('arrayAgg ordered', (d) => d.arrayAgg('x', 'ts DESC'), {
  duckdb: 'list(x ORDER BY ts DESC)',
  bigquery: 'ARRAY_AGG(x IGNORE NULLS ORDER BY ts DESC)',
  snowflake: 'ARRAY_AGG(x) WITHIN GROUP (ORDER BY ts DESC)',
});

sqlCase('pingQuery', (d) => d.pingQuery(), { duckdb: 'SELECT 1 AS ok', bigquery: 'SELECT 1 AS ok', snowflake: 'SELECT 1 AS "ok"' });

sqlCase('types', (d) => d.types, {
  duckdb: { string: 'VARCHAR', integer: 'INTEGER', bigint: 'BIGINT', float: 'DOUBLE', boolean: 'BOOLEAN', timestamp: 'TIMESTAMP', date: 'DATE', json: 'JSON' },
  bigquery: { string: 'STRING', integer: 'INT64', bigint: 'INT64', float: 'FLOAT64', boolean: 'BOOL', timestamp: 'TIMESTAMP', date: 'DATE', json: 'JSON' },
  snowflake: { string: 'VARCHAR', integer: 'INTEGER', bigint: 'BIGINT', float: 'FLOAT', boolean: 'BOOLEAN', timestamp: 'TIMESTAMP_NTZ', date: 'DATE', json: 'VARIANT' },
});

sqlCase('capabilities', (d) => d.capabilities, {
  duckdb: { transactionalDdl: true, concurrentWriters: true },
  bigquery: { transactionalDdl: false, concurrentWriters: true },
  snowflake: { transactionalDdl: false, concurrentWriters: true },
});
