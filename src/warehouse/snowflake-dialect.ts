import type { Relation } from '../compile/node.js';
import { Dialect, PRIVACY_KEY_TABLE, privacyKeyPad, type ColumnType, type DialectCapabilities, type EscapingRules, type MergeSpec } from './dialect.js';

type Unit = 'day' | 'hour' | 'minute' | 'second';

/**
 * Snowflake. Every identifier we emit is quoted, so names keep their exact case; the catch is
 * result-column aliases: an unquoted `AS null_keys` comes back as `NULL_KEYS`, so aliases that
 * code reads by name are quoted here.
 */
export class SnowflakeDialect extends Dialect {
  readonly name = 'snowflake' as const;
  readonly capabilities: DialectCapabilities = { transactionalDdl: false, concurrentWriters: true };
  readonly escaping: EscapingRules = {
    identifierQuote: '"',
    identifierEscape: 'double',
    // Single-quoted strings process backslash escapes, so `\` itself must be escaped.
    stringEscape: 'backslash',
    foldsUnquotedToUpper: true,
  };
  readonly types: Record<ColumnType, string> = {
    string: 'VARCHAR',
    integer: 'INTEGER',
    bigint: 'BIGINT',
    float: 'FLOAT',
    boolean: 'BOOLEAN',
    timestamp: 'TIMESTAMP_NTZ',
    date: 'DATE',
    json: 'VARIANT',
  };

  /**
   * DDL auto-commits, so there is no transaction to hide a gap in. `SWAP WITH` exchanges two
   * tables in one metadata operation; a view (or nothing) cannot be swapped, so that case drops
   * the view and renames, accepting a brief moment without the relation.
   */
  swapTable(target: Relation, staging: Relation, existing: 'table' | 'view' | undefined): string[] {
    if (existing === 'table') {
      return [`ALTER TABLE ${this.quoteRelation(target)} SWAP WITH ${this.quoteRelation(staging)}`, this.dropRelation(staging, 'table')];
    }
    const statements: string[] = [];
    if (existing === 'view') statements.push(this.dropRelation(target, 'view'));
    statements.push(`ALTER TABLE ${this.quoteRelation(staging)} RENAME TO ${this.quoteRelation(target)}`);
    return statements;
  }

  /** `DELETE ... USING` is Snowflake's documented join form (and what dbt-snowflake emits), rather than a correlated EXISTS. */
  override deleteInsert(spec: MergeSpec): string[] {
    const target = this.quoteRelation(spec.target);
    const source = this.quoteRelation(spec.source);
    const cols = spec.columns.map((c) => this.quoteIdentifier(c)).join(', ');
    return [
      `DELETE FROM ${target} AS tgt USING ${source} AS src WHERE ${this.keyMatch(spec.uniqueKey, 'tgt', 'src')}`,
      `INSERT INTO ${target} (${cols}) SELECT ${cols} FROM ${source}`,
    ];
  }

  /** The base query with its result aliases quoted, so callers read `null_keys`, not `NULL_KEYS`. */
  override keyViolations(source: Relation, uniqueKey: string[]): string {
    const keys = uniqueKey.map((k) => this.quoteIdentifier(k));
    const anyNull = keys.map((k) => `${k} IS NULL`).join(' OR ');
    return [
      `SELECT`,
      `  (SELECT COUNT(*) FROM ${this.quoteRelation(source)} WHERE ${anyNull}) AS "null_keys",`,
      `  (SELECT COUNT(*) FROM (SELECT ${keys.join(', ')} FROM ${this.quoteRelation(source)} GROUP BY ${keys.join(', ')} HAVING COUNT(*) > 1) AS d) AS "duplicate_keys"`,
    ].join('\n');
  }

  override pingQuery(): string {
    return 'SELECT 1 AS "ok"';
  }

  /** TABLES lists views too. Names are compared exactly because we always create them quoted. */
  describeRelation(relation: Relation): string {
    const catalog = relation.database ? `${this.quoteIdentifier(relation.database)}.` : '';
    return [
      'SELECT c.column_name AS "column_name", c.data_type AS "data_type", t.table_type AS "table_type"',
      `FROM ${catalog}INFORMATION_SCHEMA.TABLES AS t`,
      `LEFT JOIN ${catalog}INFORMATION_SCHEMA.COLUMNS AS c`,
      '  ON c.table_catalog = t.table_catalog AND c.table_schema = t.table_schema AND c.table_name = t.table_name',
      `WHERE t.table_schema = ${this.stringLiteral(foldName(relation.schema))} AND t.table_name = ${this.stringLiteral(foldName(relation.name))}`,
      'ORDER BY c.ordinal_position',
    ].join('\n');
  }

  sha256Hex(expression: string): string {
    return `SHA2(${expression}, 256)`;
  }

  /** HASH takes any number of values of any type, NULLs included, and never returns NULL. */
  fingerprint(expressions: readonly string[]): string {
    return `HASH(${expressions.join(', ')})`;
  }

  loadPrivacyKeySql(innerPadHex: string | null, outerPadHex: string | null): string {
    const binary = (hex: string | null) => (hex === null ? 'CAST(NULL AS BINARY)' : `TO_BINARY(${this.stringLiteral(hex)}, 'HEX')`);
    return `CREATE OR REPLACE TEMPORARY TABLE ${PRIVACY_KEY_TABLE} AS SELECT ${binary(innerPadHex)} AS ipad, ${binary(outerPadHex)} AS opad`;
  }

  hmacSha256Hex(expression: string): string {
    return `LOWER(SHA2(CONCAT(${privacyKeyPad('opad')}, SHA2_BINARY(CONCAT(${privacyKeyPad('ipad')}, TO_BINARY(${expression}, 'UTF-8')), 256)), 256))`;
  }

  /** FLOAT, FLOAT4, FLOAT8, DOUBLE, DOUBLE PRECISION and REAL are all Snowflake's one FLOAT. */
  isFloatingPointType(typeName: string): boolean {
    return /^(FLOAT[48]?|DOUBLE( PRECISION)?|REAL)$/i.test(typeName);
  }

  /** Snowflake compares NaN equal to itself, so the special values can be listed. */
  finiteOrNull(expression: string): string {
    return `CASE WHEN ${expression} IN ('NaN'::FLOAT, 'inf'::FLOAT, '-inf'::FLOAT) THEN NULL ELSE ${expression} END`;
  }

  /** UTC wall clock: CURRENT_TIMESTAMP is in the session's time zone. */
  currentTimestamp(): string {
    return "CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ";
  }

  dateAdd(expression: string, amount: number, unit: Unit): string {
    return `DATEADD(${unit}, ${Math.trunc(amount)}, ${expression})`;
  }

  dateDiff(unit: Unit, start: string, end: string): string {
    return `DATEDIFF(${unit}, ${start}, ${end})`;
  }

  /** REGEXP_LIKE is anchored on Snowflake; REGEXP_INSTR finds a match anywhere, like the other engines. */
  regexpContains(expression: string, pattern: string): string {
    return `(REGEXP_INSTR(${expression}, ${this.stringLiteral(pattern)}) > 0)`;
  }

  regexpReplaceAll(expression: string, pattern: string, replacement: string): string {
    return `REGEXP_REPLACE(${expression}, ${this.stringLiteral(pattern)}, ${this.stringLiteral(replacement)})`;
  }

  jsonObject(pairs: [string, string][]): string {
    return `OBJECT_CONSTRUCT(${pairs.map(([key, value]) => `${this.stringLiteral(key)}, ${value}`).join(', ')})`;
  }

  /** Snowflake's ROW_NUMBER needs an ORDER BY; SEQ8 is unique per row without sorting. */
  override rowNumber(): string {
    return '(SEQ8() + 1)';
  }

  /**
   * Snowflake folds unquoted names to upper case, and dbt users write unquoted aliases in their
   * models. A simple name is therefore quoted in its folded form, so `customer_id` from YAML and
   * an unquoted `customer_id` alias in a model name the same column. Other names keep their case.
   */
  override quoteIdentifier(identifier: string): string {
    return super.quoteIdentifier(foldName(identifier));
  }

  argMax(value: string, by: string): string {
    return `MAX_BY(${value}, ${by})`;
  }

  argMin(value: string, by: string): string {
    return `MIN_BY(${value}, ${by})`;
  }

  boolOr(expression: string): string {
    return `BOOLOR_AGG(${expression})`;
  }

  arrayAgg(expression: string, orderBy?: string): string {
    return orderBy ? `ARRAY_AGG(${expression}) WITHIN GROUP (ORDER BY ${orderBy})` : `ARRAY_AGG(${expression})`;
  }
}

/** How Snowflake stores an unquoted name. */
export function foldName(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_$]*$/.test(name) ? name.toUpperCase() : name;
}
