import type { Relation } from '../compile/node.js';
import { Dialect, PRIVACY_KEY_TABLE, privacyKeyPad, type ColumnType, type DialectCapabilities, type EscapingRules } from './dialect.js';

export class DuckDbDialect extends Dialect {
  readonly name = 'duckdb' as const;
  readonly capabilities: DialectCapabilities = { transactionalDdl: true, concurrentWriters: true };
  readonly escaping: EscapingRules = {
    identifierQuote: '"',
    identifierEscape: 'double',
    stringEscape: 'double',
    foldsUnquotedToUpper: false,
  };
  readonly types: Record<ColumnType, string> = {
    string: 'VARCHAR',
    integer: 'INTEGER',
    bigint: 'BIGINT',
    float: 'DOUBLE',
    boolean: 'BOOLEAN',
    timestamp: 'TIMESTAMP',
    date: 'DATE',
    json: 'JSON',
  };

  /** Run through `atomically(..., 'ddl')`: DuckDB commits the drop and the rename together. */
  swapTable(target: Relation, staging: Relation, existing: 'table' | 'view' | undefined): string[] {
    const statements: string[] = [];
    if (existing) statements.push(this.dropRelation(target, existing));
    statements.push(`ALTER TABLE ${this.quoteRelation(staging)} RENAME TO ${this.quoteIdentifier(target.name)}`);
    return statements;
  }

  describeRelation(relation: Relation): string {
    const catalog = relation.database ? `t.table_catalog = ${this.stringLiteral(relation.database)} AND ` : '';
    return [
      'SELECT c.column_name AS column_name, c.data_type AS data_type, t.table_type AS table_type',
      'FROM information_schema.tables AS t',
      'LEFT JOIN information_schema.columns AS c',
      '  ON c.table_catalog = t.table_catalog AND c.table_schema = t.table_schema AND c.table_name = t.table_name',
      `WHERE ${catalog}t.table_schema = ${this.stringLiteral(relation.schema)} AND t.table_name = ${this.stringLiteral(relation.name)}`,
      'ORDER BY c.ordinal_position',
    ].join('\n');
  }

  sha256Hex(expression: string): string {
    return `sha256(${expression})`;
  }

  /** `hash` is a UBIGINT: its top 63 bits fit a BIGINT. */
  fingerprint(expressions: readonly string[]): string {
    return `CAST(hash(${expressions.join(', ')}) >> 1 AS BIGINT)`;
  }

  loadPrivacyKeySql(innerPadHex: string | null, outerPadHex: string | null): string {
    const blob = (hex: string | null) => (hex === null ? 'CAST(NULL AS BLOB)' : `unhex(${this.stringLiteral(hex)})`);
    return `CREATE OR REPLACE TEMP TABLE ${PRIVACY_KEY_TABLE} AS SELECT ${blob(innerPadHex)} AS ipad, ${blob(outerPadHex)} AS opad`;
  }

  hmacSha256Hex(expression: string): string {
    return `sha256(${privacyKeyPad('opad')} || unhex(sha256(${privacyKeyPad('ipad')} || encode(${expression}))))`;
  }

  /** UTC wall clock: a plain cast would give the session's (the machine's) local time. */
  currentTimestamp(): string {
    return "CAST(timezone('UTC', current_timestamp) AS TIMESTAMP)";
  }

  dateAdd(expression: string, amount: number, unit: 'day' | 'hour' | 'minute'): string {
    return `(${expression} + INTERVAL (${Math.trunc(amount)}) ${unit.toUpperCase()})`;
  }

  dateDiff(unit: 'day' | 'hour' | 'minute' | 'second', start: string, end: string): string {
    return `date_diff('${unit}', ${start}, ${end})`;
  }

  regexpContains(expression: string, pattern: string): string {
    return `regexp_matches(${expression}, ${this.stringLiteral(pattern)})`;
  }

  regexpReplaceAll(expression: string, pattern: string, replacement: string): string {
    return `regexp_replace(${expression}, ${this.stringLiteral(pattern)}, ${this.stringLiteral(replacement)}, 'g')`;
  }

  isFloatingPointType(typeName: string): boolean {
    return /^(DOUBLE|FLOAT|REAL|FLOAT4|FLOAT8)$/i.test(typeName);
  }

  finiteOrNull(expression: string): string {
    return `CASE WHEN isfinite(${expression}) THEN ${expression} END`;
  }

  jsonObject(pairs: [string, string][]): string {
    return `json_object(${pairs.map(([key, value]) => `${this.stringLiteral(key)}, ${value}`).join(', ')})`;
  }

  argMax(value: string, by: string): string {
    return `arg_max(${value}, ${by})`;
  }

  argMin(value: string, by: string): string {
    return `arg_min(${value}, ${by})`;
  }

  boolOr(expression: string): string {
    return `bool_or(${expression})`;
  }

  arrayAgg(expression: string, orderBy?: string): string {
    return orderBy ? `list(${expression} ORDER BY ${orderBy})` : `list(${expression})`;
  }
}
