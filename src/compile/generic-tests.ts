import type { GenericTestSpec } from './node.js';
import type { Dialect } from '../warehouse/dialect.js';

/**
 * dbt's generic data tests as SQL that returns the failing rows: zero rows means pass.
 * `relation` is the tested model's SQL relation (or inlined subquery for an ephemeral model).
 */
export function genericTestSql(dialect: Dialect, spec: GenericTestSpec, relation: string, parentRelation?: string): string {
  const column = dialect.quoteIdentifier(spec.column);
  switch (spec.kind) {
    case 'unique':
      return [
        `SELECT ${column} AS value, COUNT(*) AS n_records`,
        `FROM ${relation} AS model`,
        `WHERE ${column} IS NOT NULL`,
        `GROUP BY ${column}`,
        `HAVING COUNT(*) > 1`,
      ].join('\n');
    case 'not_null':
      return `SELECT *\nFROM ${relation} AS model\nWHERE ${column} IS NULL`;
    case 'accepted_values': {
      // Compared as text so one list works for string, number and boolean columns on every engine.
      const values = spec.values.map((v) => dialect.stringLiteral(String(v))).join(', ');
      return [
        `SELECT ${column} AS value, COUNT(*) AS n_records`,
        `FROM ${relation} AS model`,
        `WHERE ${column} IS NOT NULL AND CAST(${column} AS ${dialect.types.string}) NOT IN (${values})`,
        `GROUP BY ${column}`,
      ].join('\n');
    }
    case 'relationships': {
      const field = dialect.quoteIdentifier(spec.field);
      return [
        `SELECT child.${column} AS value`,
        `FROM ${relation} AS child`,
        `LEFT JOIN ${parentRelation} AS parent ON child.${column} = parent.${field}`,
        `WHERE child.${column} IS NOT NULL AND parent.${field} IS NULL`,
      ].join('\n');
    }
  }
}
