import type { Relation } from '../compile/node.js';
import { Dialect, PRIVACY_KEY_TABLE, privacyKeyPad, type ColumnType, type DialectCapabilities, type EscapingRules } from './dialect.js';

type Unit = 'day' | 'hour' | 'minute' | 'second';

/** GoogleSQL. A relation is `project`.`dataset`.`table`; DDL auto-commits. */
export class BigQueryDialect extends Dialect {
  readonly name = 'bigquery' as const;
  readonly capabilities: DialectCapabilities = { transactionalDdl: false, concurrentWriters: true };
  readonly escaping: EscapingRules = {
    identifierQuote: '`',
    identifierEscape: 'backslash',
    stringEscape: 'backslash',
    foldsUnquotedToUpper: false,
  };
  readonly types: Record<ColumnType, string> = {
    string: 'STRING',
    integer: 'INT64',
    bigint: 'INT64',
    float: 'FLOAT64',
    boolean: 'BOOL',
    timestamp: 'TIMESTAMP',
    date: 'DATE',
    json: 'JSON',
  };

  /**
   * Quoted identifiers take the same escape sequences as string literals, and a raw line break
   * ends the token, so newlines are escaped too (the base class only escapes `\` and the quote).
   */
  override quoteIdentifier(identifier: string): string {
    const body = identifier
      .replaceAll('\\', '\\\\')
      .replaceAll('`', '\\`')
      .replaceAll('\n', '\\n')
      .replaceAll('\r', '\\r');
    return `\`${body}\``;
  }

  /**
   * Each statement runs as its own query job, and BigQuery has no transaction spanning jobs
   * (outside sessions), so the base class's separate BEGIN/COMMIT statements would fail. Several
   * DML statements become one script instead (a failing statement rolls the transaction back);
   * a single DML statement is atomic already and, run alone, still reports its row count.
   */
  override atomically(statements: string[], kind: 'ddl' | 'dml'): string[] {
    if (kind === 'ddl' || statements.length <= 1) return statements;
    return [`${['BEGIN TRANSACTION', ...statements, 'COMMIT TRANSACTION'].join(';\n')};`];
  }

  /**
   * `CREATE OR REPLACE TABLE ... AS SELECT` replaces the target atomically: readers see the old
   * or the new table, never neither. It cannot replace a view, so a view is dropped first (the
   * staging table is already built by then, so a failed build never reaches this point).
   */
  swapTable(target: Relation, staging: Relation, existing: 'table' | 'view' | undefined): string[] {
    const statements: string[] = [];
    if (existing === 'view') statements.push(this.dropRelation(target, 'view'));
    statements.push(`CREATE OR REPLACE TABLE ${this.quoteRelation(target)} AS SELECT * FROM ${this.quoteRelation(staging)}`);
    statements.push(this.dropRelation(staging, 'table'));
    return statements;
  }

  /** INFORMATION_SCHEMA is per dataset. LEFT JOIN from TABLES so a zero-column table still yields a row. */
  describeRelation(relation: Relation): string {
    const dataset = relation.database
      ? `${this.quoteIdentifier(relation.database)}.${this.quoteIdentifier(relation.schema)}`
      : this.quoteIdentifier(relation.schema);
    return [
      'SELECT c.column_name AS column_name, c.data_type AS data_type, t.table_type AS table_type',
      `FROM ${dataset}.INFORMATION_SCHEMA.TABLES AS t`,
      `LEFT JOIN ${dataset}.INFORMATION_SCHEMA.COLUMNS AS c`,
      '  ON c.table_name = t.table_name',
      `WHERE t.table_name = ${this.stringLiteral(relation.name)}`,
      'ORDER BY c.ordinal_position',
    ].join('\n');
  }

  sha256Hex(expression: string): string {
    return `TO_HEX(SHA256(${expression}))`;
  }

  /** FARM_FINGERPRINT hashes one string: the STRUCT's JSON keeps NULL, '' and 0 apart, in order. */
  fingerprint(expressions: readonly string[]): string {
    return `FARM_FINGERPRINT(TO_JSON_STRING(STRUCT(${expressions.join(', ')})))`;
  }

  /** A TEMP table exists only inside a BigQuery session or script (docs/privacy.md). */
  loadPrivacyKeySql(innerPadHex: string | null, outerPadHex: string | null): string {
    const bytes = (hex: string | null) => (hex === null ? 'CAST(NULL AS BYTES)' : `FROM_HEX(${this.stringLiteral(hex)})`);
    return `CREATE OR REPLACE TEMP TABLE ${PRIVACY_KEY_TABLE} AS SELECT ${bytes(innerPadHex)} AS ipad, ${bytes(outerPadHex)} AS opad`;
  }

  hmacSha256Hex(expression: string): string {
    return `TO_HEX(SHA256(CONCAT(${privacyKeyPad('opad')}, SHA256(CONCAT(${privacyKeyPad('ipad')}, CAST(${expression} AS BYTES))))))`;
  }

  isFloatingPointType(typeName: string): boolean {
    return /^FLOAT64$/i.test(typeName);
  }

  finiteOrNull(expression: string): string {
    return `IF(IS_NAN(${expression}) OR IS_INF(${expression}), NULL, ${expression})`;
  }

  currentTimestamp(): string {
    return 'CURRENT_TIMESTAMP()';
  }

  dateAdd(expression: string, amount: number, unit: Unit): string {
    return `TIMESTAMP_ADD(${expression}, INTERVAL ${Math.trunc(amount)} ${unit.toUpperCase()})`;
  }

  /**
   * TIMESTAMP_DIFF counts whole elapsed units, while DuckDB's date_diff and Snowflake's DATEDIFF
   * count unit boundaries crossed. Truncating both sides first gives the boundary semantics, so
   * `23:59 -> 00:01` is one day on every engine.
   */
  dateDiff(unit: Unit, start: string, end: string): string {
    const u = unit.toUpperCase();
    return `TIMESTAMP_DIFF(TIMESTAMP_TRUNC(${end}, ${u}), TIMESTAMP_TRUNC(${start}, ${u}), ${u})`;
  }

  /** BigQuery fails the whole query when an array would hold a NULL, so NULLs are skipped (as Snowflake does). */
  regexpContains(expression: string, pattern: string): string {
    return `REGEXP_CONTAINS(${expression}, ${this.stringLiteral(pattern)})`;
  }

  regexpReplaceAll(expression: string, pattern: string, replacement: string): string {
    return `REGEXP_REPLACE(${expression}, ${this.stringLiteral(pattern)}, ${this.stringLiteral(replacement)})`;
  }

  jsonObject(pairs: [string, string][]): string {
    return `JSON_OBJECT(${pairs.map(([key, value]) => `${this.stringLiteral(key)}, ${value}`).join(', ')})`;
  }

  override unionDistinct(): string {
    return 'UNION DISTINCT';
  }

  argMax(value: string, by: string): string {
    return `ARRAY_AGG(${value} ORDER BY ${by} DESC LIMIT 1)[OFFSET(0)]`;
  }

  argMin(value: string, by: string): string {
    return `ARRAY_AGG(${value} ORDER BY ${by} LIMIT 1)[OFFSET(0)]`;
  }

  boolOr(expression: string): string {
    return `LOGICAL_OR(${expression})`;
  }

  arrayAgg(expression: string, orderBy?: string): string {
    return orderBy ? `ARRAY_AGG(${expression} IGNORE NULLS ORDER BY ${orderBy})` : `ARRAY_AGG(${expression} IGNORE NULLS)`;
  }
}
