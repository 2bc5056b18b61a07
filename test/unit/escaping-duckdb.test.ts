import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DuckDbDialect } from '../../src/warehouse/duckdb-dialect.js';

/*
 * Escaping checked against the real engine, not against expected strings: every adversarial
 * string goes into DuckDB as a table name, a column alias and a value, and must come back
 * byte-for-byte. test/unit/dialects.test.ts pins the exact SQL; this file proves it is right.
 */

const dialect = new DuckDbDialect();
const q = (s: string) => dialect.quoteIdentifier(s);
const lit = (s: string) => dialect.stringLiteral(s);

/** Every entry must be a legal DuckDB identifier once quoted: non-empty and NUL-free. */
const CORPUS: [label: string, value: string][] = [
  ['plain', 'plain'],
  ['single quote', "'"],
  ['two single quotes', "''"],
  ['apostrophe inside', "it's"],
  ['double quote', '"'],
  ['two double quotes', '""'],
  ['double quote inside', 'a"b'],
  ['backtick', '`'],
  ['backticks inside', 'a`b`c'],
  ['backslash', '\\'],
  ['trailing backslash', 'a\\'],
  ['backslash then single quote', "\\'"],
  ['backslash then double quote', '\\"'],
  ['semicolon', ';'],
  ['line comment', '-- comment'],
  ['block comment', '/* comment */'],
  ['unclosed block comment', '/*'],
  ['block comment end', '*/'],
  ['classic injection', "';DROP TABLE x;--"],
  ['identifier injection', '";DROP TABLE x;--'],
  ['parenthesised injection', "'); DROP TABLE x; --"],
  ['backslash injection', "\\'; DROP TABLE x; --"],
  ['dollar quoting', '$$x$$'],
  ['dollar tag', '$tag$ y $tag$'],
  ['placeholders', '? $1 :name'],
  ['escape-string prefix', "E'\\x41'"],
  ['keyword', 'SELECT'],
  ['null keyword', 'NULL'],
  ['latin accents', 'naïve café'],
  ['combining accent (NFD)', 'e\u0301'],
  ['CJK', '日本語のテーブル'],
  ['emoji', '😀🎉'],
  ['ZWJ emoji sequence', '👨‍👩‍👧‍👦'],
  ['RTL Hebrew', 'שלום עולם'],
  ['RTL Arabic', 'مرحبا بالعالم'],
  ['RTL override', 'abc\u202Edcb\u202C'],
  ['zero-width space', 'zero\u200Bwidth'],
  ['BOM inside', 'a\uFEFFb'],
  ['CRLF', 'a\r\nb'],
  ['CR', '\r'],
  ['LF', '\n'],
  ['tab', 'a\tb'],
  ['C0 controls', '\u0001\u0002\u0007\u0008\u000b\u000c\u001b\u001f'],
  ['DEL and C1 controls', '\u007f\u0085\u009b'],
  ['leading and trailing spaces', '  padded  '],
  ['long ascii', 'x'.repeat(10_000)],
  ['long quotes', '\'"'.repeat(5_000)],
  ['long emoji', '😀'.repeat(2_000)],
];

/** What DuckDB knows by that name, read back through the catalog rather than through our quoting. */
async function catalog(connection: DuckDBConnection): Promise<{ schema: string; table: string; column: string }[]> {
  const reader = await connection.runAndReadAll(
    "SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE table_catalog = current_database() ORDER BY ALL",
  );
  return reader.getRowObjectsJS().map((r) => ({ schema: String(r['table_schema']), table: String(r['table_name']), column: String(r['column_name']) }));
}

let instance: DuckDBInstance;
let connection: DuckDBConnection;

beforeEach(async () => {
  instance = await DuckDBInstance.create(':memory:');
  connection = await instance.connect();
});

afterEach(() => {
  connection.disconnectSync();
  instance.closeSync();
});

describe('quoteIdentifier + stringLiteral round-trip through DuckDB', () => {
  it.each(CORPUS)('%s', async (_label, s) => {
    await connection.run(`CREATE TABLE ${q(s)} AS SELECT ${lit(s)} AS ${q(s)}`);

    expect(await catalog(connection)).toEqual([{ schema: 'main', table: s, column: s }]);

    const reader = await connection.runAndReadAll(`SELECT * FROM ${q(s)}`);
    expect(reader.columnNames()).toEqual([s]);
    expect(reader.getRowsJS()).toEqual([[s]]);

    // The literal also works as a predicate, and the quoted name as a qualified column.
    const filtered = await connection.runAndReadAll(`SELECT count(*) AS n FROM ${q(s)} AS t WHERE t.${q(s)} = ${lit(s)}`);
    expect(Number(filtered.getRowsJS()[0]![0])).toBe(1);
  });
});

describe('the dialect\'s own DDL with adversarial schema and table names', () => {
  it.each(CORPUS)('%s', async (_label, s) => {
    const relation = { schema: s, name: s };
    await connection.run(dialect.createSchema(undefined, s));
    await connection.run(dialect.createTableAs(relation, `SELECT ${lit(s)} AS ${q(s)}`));

    expect(await catalog(connection)).toEqual([{ schema: s, table: s, column: s }]);

    // describeRelation is how materializations decide whether a relation exists: it must find this one.
    const described = (await connection.runAndReadAll(dialect.describeRelation(relation))).getRowObjectsJS();
    expect(described).toEqual([{ column_name: s, data_type: 'VARCHAR', table_type: 'BASE TABLE' }]);

    const values = await connection.runAndReadAll(`SELECT ${q(s)} FROM ${dialect.quoteRelation(relation)}`);
    expect(values.getRowsJS()).toEqual([[s]]);
  });
});

describe('a leading byte-order mark', () => {
  // @duckdb/node-api drops a leading U+FEFF when it decodes VARCHARs to JS strings, so this one
  // is compared inside DuckDB, against a value built without our escaping.
  it('survives as an identifier and as a literal', async () => {
    const s = '\uFEFFbom';
    await connection.run(`CREATE TABLE ${q(s)} AS SELECT ${lit(s)} AS ${q(s)}`);
    const reader = await connection.runAndReadAll(
      `SELECT table_name = chr(65279) || 'bom' AS table_ok, column_name = chr(65279) || 'bom' AS column_ok FROM information_schema.columns`,
    );
    expect(reader.getRowObjectsJS()).toEqual([{ table_ok: true, column_ok: true }]);
    const value = await connection.runAndReadAll(`SELECT ${q(s)} = chr(65279) || 'bom' AS ok FROM ${q(s)}`);
    expect(value.getRowObjectsJS()).toEqual([{ ok: true }]);
  });
});

describe('literal()', () => {
  async function selectOne(expression: string): Promise<unknown> {
    const reader = await connection.runAndReadAll(`SELECT ${expression} AS v`);
    expect(reader.columnNames()).toEqual(['v']);
    return reader.getRowObjectsJS()[0]!['v'];
  }

  it.each([...CORPUS, ['empty string', '']] as [string, string][])('string: %s', async (_label, s) => {
    expect(await selectOne(dialect.literal(s))).toBe(s);
  });

  const NUMBERS: number[] = [
    0,
    1,
    -1,
    42,
    -42,
    3.5,
    -2.25,
    0.1 + 0.2,
    1e21,
    -1e21,
    1e-7,
    5e-324,
    Number.MAX_VALUE,
    -Number.MAX_VALUE,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    123456789012345.67,
  ];

  it.each(NUMBERS)('number: %s', async (n) => {
    // BIGINT comes back as a bigint and DECIMAL literals as numbers; the value must be exact either way.
    expect(Number(await selectOne(dialect.literal(n)))).toBe(n);
  });

  it.each(NUMBERS.filter((n) => n < 0))('a negative number (%s) after a minus sign does not start a comment', async (n) => {
    // `5-${literal(-1)}` must not become `5--1`, which is `5` followed by a line comment.
    const reader = await connection.runAndReadAll(`SELECT 5-${dialect.literal(n)} AS v`);
    expect(reader.columnNames()).toEqual(['v']);
    expect(Number(reader.getRowObjectsJS()[0]!['v'])).toBe(5 - n);
  });

  it('booleans', async () => {
    expect(await selectOne(dialect.literal(true))).toBe(true);
    expect(await selectOne(dialect.literal(false))).toBe(false);
  });

  it('null', async () => {
    expect(await selectOne(dialect.literal(null))).toBeNull();
    expect(await selectOne(`${dialect.literal(null)} IS NULL`)).toBe(true);
  });

  it('in a VALUES list, every kind together', async () => {
    const values = ["';DROP TABLE x;--", 7, -7, true, null, '😀'] as const;
    const reader = await connection.runAndReadAll(`SELECT * FROM (VALUES (${values.map((v) => dialect.literal(v)).join(', ')})) AS t(a, b, c, d, e, f)`);
    expect(reader.getRowsJS()).toEqual([["';DROP TABLE x;--", 7, -7, true, null, '😀']]);
  });

  it.each([NaN, Infinity, -Infinity])('throws for %s', (n) => {
    expect(() => dialect.literal(n)).toThrow(/cannot render .* as an SQL literal/);
  });
});
