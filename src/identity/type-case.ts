import type { Dialect } from '../warehouse/dialect.js';
import type { IdentifierType, IdentityRules } from './rules.js';

/** A per-identifier-type number as SQL: `CASE <column> WHEN '<type>' THEN <n> ... END`. */
export function typeCaseSql(d: Dialect, rules: IdentityRules, column: string, value: (type: IdentifierType) => number): string {
  return `CASE ${column} ${rules.types.map((t) => `WHEN ${d.stringLiteral(t.name)} THEN ${value(t)}`).join(' ')} END`;
}

export function limitCaseSql(d: Dialect, rules: IdentityRules, column: string): string {
  return typeCaseSql(d, rules, column, (t) => t.limit);
}

export function priorityCaseSql(d: Dialect, rules: IdentityRules, column: string): string {
  return typeCaseSql(d, rules, column, (t) => t.priority);
}
