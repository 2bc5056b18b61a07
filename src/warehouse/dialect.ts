import type { Relation } from '../compile/node.js';

/**
 * Everything that differs between engines in the SQL we generate. Pure: no I/O, no SDKs, so
 * `cdp compile` works offline for every target. One subclass per engine; code elsewhere never
 * branches on the engine name (docs/architecture.md).
 */

export type DialectName = 'duckdb' | 'bigquery' | 'snowflake';

/** The session table holding the privacy HMAC key's pads (Dialect.loadPrivacyKeySql). */
export const PRIVACY_KEY_TABLE = 'cdp_privacy_key';

/** One pad of the loaded key, as a scalar subquery. */
export function privacyKeyPad(column: 'ipad' | 'opad'): string {
  return `(SELECT ${column} FROM ${PRIVACY_KEY_TABLE})`;
}

export interface DialectCapabilities {
  /** DDL inside BEGIN ... COMMIT is atomic (DuckDB yes; BigQuery and Snowflake auto-commit DDL). */
  transactionalDdl: boolean;
  /** Several writers may run at once from one process. */
  concurrentWriters: boolean;
}

export type ColumnType = 'string' | 'integer' | 'bigint' | 'float' | 'boolean' | 'timestamp' | 'date' | 'json';

/** Declared escaping, in Malloy's style: a dialect states its rules instead of hand-writing escapes. */
export interface EscapingRules {
  identifierQuote: '"' | '`';
  /** `double`: a quote inside is doubled. `backslash`: escaped with a backslash. */
  identifierEscape: 'double' | 'backslash';
  stringEscape: 'double' | 'backslash';
  /** Identifiers that the engine folds to upper case when unquoted (Snowflake). */
  foldsUnquotedToUpper: boolean;
}

export interface MergeSpec {
  target: Relation;
  /** A relation holding the new rows, already checked for null and duplicate keys. */
  source: Relation;
  uniqueKey: string[];
  columns: string[];
}

export abstract class Dialect {
  abstract readonly name: DialectName;
  abstract readonly capabilities: DialectCapabilities;
  abstract readonly escaping: EscapingRules;
  abstract readonly types: Record<ColumnType, string>;

  quoteIdentifier(identifier: string): string {
    const q = this.escaping.identifierQuote;
    const body = this.escaping.identifierEscape === 'double'
      ? identifier.replaceAll(q, q + q)
      : identifier.replaceAll('\\', '\\\\').replaceAll(q, '\\' + q);
    return q + body + q;
  }

  stringLiteral(value: string): string {
    if (this.escaping.stringEscape === 'double') return `'${value.replaceAll("'", "''")}'`;
    const body = value
      .replaceAll('\\', '\\\\')
      .replaceAll("'", "\\'")
      .replaceAll('\n', '\\n')
      .replaceAll('\r', '\\r');
    return `'${body}'`;
  }

  /** A JS scalar as an SQL literal. Numbers must be finite; anything else is a bug in the caller. */
  literal(value: string | number | boolean | null): string {
    if (value === null) return 'NULL';
    if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new Error(`cannot render ${value} as an SQL literal`);
      // Parenthesised so `5-${literal(-1)}` can never become `5--1`, a comment.
      return value < 0 ? `(${String(value)})` : String(value);
    }
    return this.stringLiteral(value);
  }

  quoteRelation(relation: Relation): string {
    const parts = relation.database ? [relation.database, relation.schema, relation.name] : [relation.schema, relation.name];
    return parts.map((p) => this.quoteIdentifier(p)).join('.');
  }

  /** The name under which a table is built before it is swapped in. */
  stagingRelation(relation: Relation, suffix: string): Relation {
    return { ...relation, name: `${relation.name}__cdp_${suffix}` };
  }

  createSchema(database: string | undefined, schema: string): string {
    const name = database ? `${this.quoteIdentifier(database)}.${this.quoteIdentifier(schema)}` : this.quoteIdentifier(schema);
    return `CREATE SCHEMA IF NOT EXISTS ${name}`;
  }

  createTableIfNotExists(relation: Relation, columns: readonly (readonly [string, ColumnType])[]): string {
    const list = columns.map(([name, type]) => `${this.quoteIdentifier(name)} ${this.types[type]}`).join(', ');
    return `CREATE TABLE IF NOT EXISTS ${this.quoteRelation(relation)} (${list})`;
  }

  createViewAs(relation: Relation, sql: string): string {
    return `CREATE OR REPLACE VIEW ${this.quoteRelation(relation)} AS (\n${sql}\n)`;
  }

  createTableAs(relation: Relation, sql: string): string {
    return `CREATE OR REPLACE TABLE ${this.quoteRelation(relation)} AS (\n${sql}\n)`;
  }

  dropRelation(relation: Relation, kind: 'table' | 'view'): string {
    return `DROP ${kind.toUpperCase()} IF EXISTS ${this.quoteRelation(relation)}`;
  }

  /**
   * Wraps statements so they apply all or nothing. DML is transactional on every engine we
   * support; DDL only where `transactionalDdl` says so (elsewhere each DDL statement commits).
   */
  atomically(statements: string[], kind: 'ddl' | 'dml'): string[] {
    if (kind === 'ddl' && !this.capabilities.transactionalDdl) return statements;
    return ['BEGIN TRANSACTION', ...statements, 'COMMIT'];
  }

  /**
   * Statements that replace `target` by the fully built `staging` table. The old relation (a
   * table or a view, or nothing) is given so engines can drop the right kind.
   */
  abstract swapTable(target: Relation, staging: Relation, existing: 'table' | 'view' | undefined): string[];

  /** Null-safe key match: NULL never equals anything here because null keys are rejected first. */
  protected keyMatch(keys: string[], left: string, right: string): string {
    return keys.map((k) => `${left}.${this.quoteIdentifier(k)} = ${right}.${this.quoteIdentifier(k)}`).join(' AND ');
  }

  merge(spec: MergeSpec): string {
    const nonKey = spec.columns.filter((c) => !spec.uniqueKey.includes(c));
    const cols = spec.columns.map((c) => this.quoteIdentifier(c));
    const update = nonKey.length > 0
      ? `WHEN MATCHED THEN UPDATE SET ${nonKey.map((c) => `${this.quoteIdentifier(c)} = src.${this.quoteIdentifier(c)}`).join(', ')}\n`
      : '';
    return [
      `MERGE INTO ${this.quoteRelation(spec.target)} AS tgt`,
      `USING ${this.quoteRelation(spec.source)} AS src`,
      `ON ${this.keyMatch(spec.uniqueKey, 'tgt', 'src')}`,
      `${update}WHEN NOT MATCHED THEN INSERT (${cols.join(', ')}) VALUES (${spec.columns.map((c) => `src.${this.quoteIdentifier(c)}`).join(', ')})`,
    ].join('\n');
  }

  deleteInsert(spec: MergeSpec): string[] {
    const target = this.quoteRelation(spec.target);
    const source = this.quoteRelation(spec.source);
    const cols = spec.columns.map((c) => this.quoteIdentifier(c)).join(', ');
    return [
      `DELETE FROM ${target} AS tgt WHERE EXISTS (SELECT 1 FROM ${source} AS src WHERE ${this.keyMatch(spec.uniqueKey, 'tgt', 'src')})`,
      `INSERT INTO ${target} (${cols}) SELECT ${cols} FROM ${source}`,
    ];
  }

  insertInto(target: Relation, columns: string[], sql: string): string {
    return `INSERT INTO ${this.quoteRelation(target)} (${columns.map((c) => this.quoteIdentifier(c)).join(', ')})\n${sql}`;
  }

  /** Rows of the new data whose unique key is null, or appears more than once. */
  keyViolations(source: Relation, uniqueKey: string[]): string {
    const keys = uniqueKey.map((k) => this.quoteIdentifier(k));
    const anyNull = keys.map((k) => `${k} IS NULL`).join(' OR ');
    return [
      `SELECT`,
      `  (SELECT COUNT(*) FROM ${this.quoteRelation(source)} WHERE ${anyNull}) AS null_keys,`,
      `  (SELECT COUNT(*) FROM (SELECT ${keys.join(', ')} FROM ${this.quoteRelation(source)} GROUP BY ${keys.join(', ')} HAVING COUNT(*) > 1) AS d) AS duplicate_keys`,
    ].join('\n');
  }

  /** Columns of a relation, in order, with their engine type names. Returns (name, type, kind). */
  abstract describeRelation(relation: Relation): string;

  /** Lowest-common-denominator hex digest of a string expression. */
  abstract sha256Hex(expression: string): string;

  /** A floating-point expression, or NULL for NaN and ±Infinity (JSON has no such numbers). */
  abstract finiteOrNull(expression: string): string;

  /** Whether a column type, as this engine's `describe` names it, is floating point (may hold NaN). */
  abstract isFloatingPointType(typeName: string): boolean;

  /**
   * A BIGINT fingerprint of a tuple of typed values, in order (NULL, '' and 0 differ): cheap and
   * not cryptographic, for telling unchanged rows apart. Engines do not promise that it stays the
   * same across their versions, so a caller that stores it must also store a probe of it.
   */
  abstract fingerprint(expressions: readonly string[]): string;

  /**
   * Loads an HMAC key into a session-scoped table (`PRIVACY_KEY_TABLE`) as its inner and outer
   * pads, so SQL can compute keyed hashes without the key ever being part of a statement that
   * is compiled, logged or stored. NULLs load "no key".
   */
  abstract loadPrivacyKeySql(innerPadHex: string | null, outerPadHex: string | null): string;

  /** HMAC-SHA256 (RFC 2104) of a string expression, as lower-case hex, with the key `loadPrivacyKeySql` loaded. */
  abstract hmacSha256Hex(expression: string): string;

  abstract currentTimestamp(): string;

  /** `expression` shifted by `amount` units; amount may be negative. */
  abstract dateAdd(expression: string, amount: number, unit: 'day' | 'hour' | 'minute'): string;

  abstract dateDiff(unit: 'day' | 'hour' | 'minute' | 'second', start: string, end: string): string;

  abstract arrayAgg(expression: string, orderBy?: string): string;

  /** True when `expression` contains a match of the regular expression (not anchored). */
  abstract regexpContains(expression: string, pattern: string): string;

  /** Every match of `pattern` replaced. */
  abstract regexpReplaceAll(expression: string, pattern: string, replacement: string): string;

  /** A JSON object from (key, SQL expression) pairs: event properties. */
  abstract jsonObject(pairs: [string, string][]): string;

  /** The `value` of the row with the smallest `by` in the group. */
  abstract argMin(value: string, by: string): string;

  /** The `value` of the row with the largest `by` in the group. */
  abstract argMax(value: string, by: string): string;

  /** A boolean aggregate: true when any input is true. */
  abstract boolOr(expression: string): string;

  /** Set union without duplicates (BigQuery insists on saying DISTINCT). */
  unionDistinct(): string {
    return 'UNION';
  }

  /** A unique number per output row, in no particular order (identifiers' dense ids). */
  rowNumber(): string {
    return 'ROW_NUMBER() OVER ()';
  }

  /** An SQL statement that is cheap and proves the connection works. */
  pingQuery(): string {
    return 'SELECT 1 AS ok';
  }

  limit(sql: string, n: number): string {
    return `SELECT * FROM (\n${sql}\n) AS limited LIMIT ${Math.trunc(n)}`;
  }
}
