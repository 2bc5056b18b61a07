import type { Dialect } from '../warehouse/dialect.js';
import type { IdentifierType, NeverTrusted, Normalizer } from './rules.js';

/**
 * Identifier normalisation as SQL, so it runs where the data is. The rules (docs/identity.md):
 * - email: trimmed and lowercased;
 * - phone: E.164. Separators are dropped; `+CC…` and `00CC…` keep their country code; a national
 *   number (optionally with one leading trunk `0`) gets the type's default calling code. Fewer
 *   than 8 or more than 15 digits is not a phone number: NULL;
 * - trim / lower: as named;
 * - sql: a user expression over `value`.
 * An empty result is NULL: it never becomes an identifier.
 */
export function normalizeSql(dialect: Dialect, normalizer: Normalizer, column: string): string {
  const raw = rawTextSql(dialect, column);
  return normalizeFromRawSql(dialect, normalizer, raw, normalizer.kind === 'phone' ? phoneKeptSql(dialect, raw) : undefined);
}

/** The text an identifier column holds, trimmed: the input of every normaliser. */
export function rawTextSql(dialect: Dialect, column: string): string {
  return `TRIM(CAST(${column} AS ${dialect.types.string}))`;
}

/** Phone digits and `+` only: the one regular expression a phone needs, computed once per value. */
export function phoneKeptSql(dialect: Dialect, raw: string): string {
  return dialect.regexpReplaceAll(raw, '[^0-9+]', '');
}

/**
 * The normalised value from the trimmed text (`raw`) and, for phones, its digits-and-plus form
 * (`kept`). Split this way so a generated query can compute `raw` and `kept` once per row and
 * reuse them, instead of repeating regular expressions inside every CASE branch.
 */
export function normalizeFromRawSql(dialect: Dialect, normalizer: Normalizer, raw: string, kept?: string): string {
  let expression: string;
  switch (normalizer.kind) {
    case 'email':
    case 'lower':
      expression = `LOWER(${raw})`;
      break;
    case 'trim':
      expression = raw;
      break;
    case 'sql':
      // `value` is a whole word in the user's expression: the trimmed text, parenthesised.
      expression = normalizer.expression.replace(/\bvalue\b/g, `(${raw})`);
      break;
    case 'phone':
      expression = phoneFromKeptSql(kept ?? phoneKeptSql(dialect, raw), normalizer.defaultCallingCode);
      break;
  }
  return `NULLIF(${expression}, '')`;
}

function phoneFromKeptSql(kept: string, callingCode: string): string {
  const digits = `REPLACE(${kept}, '+', '')`;
  const e164 = [
    'CASE',
    `  WHEN ${kept} LIKE '+%' THEN CONCAT('+', ${digits})`,
    `  WHEN ${digits} LIKE '00%' THEN CONCAT('+', SUBSTR(${digits}, 3))`,
    `  WHEN ${digits} LIKE '0%' THEN CONCAT('+${callingCode}', SUBSTR(${digits}, 2))`,
    `  ELSE CONCAT('+${callingCode}', ${digits})`,
    'END',
  ].join(' ');
  return `CASE WHEN LENGTH(${digits}) BETWEEN 8 AND 15 THEN ${e164} END`;
}

/** A boolean SQL condition: true when a normalised value of `type` must never be trusted. */
export function neverTrustedSql(dialect: Dialect, neverTrusted: NeverTrusted, type: IdentifierType, valueExpr: string): string {
  const specific = neverTrusted.byType.get(type.name);
  const values = [...neverTrusted.values, ...(specific?.values ?? [])].map((v) => v.trim().toLowerCase());
  const patterns = [...neverTrusted.patterns, ...(specific?.patterns ?? [])];
  const conditions: string[] = [];
  // Compared case-insensitively: `NULL`, `Null` and `null` are the same placeholder.
  if (values.length > 0) conditions.push(`LOWER(${valueExpr}) IN (${[...new Set(values)].map((v) => dialect.stringLiteral(v)).join(', ')})`);
  for (const pattern of patterns) conditions.push(dialect.regexpContains(valueExpr, pattern));
  return conditions.length > 0 ? `(${conditions.join(' OR ')})` : 'FALSE';
}
