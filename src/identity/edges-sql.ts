import type { NodeReference } from '../project/schema-file.js';
import type { Dialect } from '../warehouse/dialect.js';
import { neverTrustedSql, normalizeSql } from './normalize.js';
import type { EdgeSource, IdentifierType, IdentityRules } from './rules.js';

/**
 * The `identity_edges` model, as a template the compiler treats like any user model (its
 * `ref`/`source` calls become DAG dependencies). One SELECT per pair of identifier columns of each
 * edge source, normalised and filtered there, then deduplicated per (pair, source) with first
 * and last seen, then two guards that run before any merge:
 * - super-connectors: an identifier linked to more than `max_partners` distinct identifiers
 *   (a shared junk value) loses all its edges;
 * - limits: an identifier keeps edges to at most `limit` distinct partners of each type, the
 *   verified and earliest first (Segment's "demote the incoming identifier" rule, set-based).
 * Dropped edges stay in the table with their `status`, for `cdp identity report`.
 */

export const EDGE_COLUMNS = ['type_a', 'value_a', 'type_b', 'value_b', 'source', 'rule', 'first_seen', 'last_seen', 'verified', 'row_count', 'status'] as const;

function referenceTemplate(ref: NodeReference): string {
  return ref.kind === 'ref' ? `{{ ref "${ref.name}" }}` : `{{ source "${ref.source}" "${ref.table}" }}`;
}

function typeOf(rules: IdentityRules, name: string): IdentifierType {
  return rules.types.find((t) => t.name === name)!;
}

function rawText(dialect: Dialect, column: string): string {
  return `TRIM(CAST(${column} AS ${dialect.types.string}))`;
}

/**
 * Checked on the value as written and as normalised: `0000000000` is a placeholder before it
 * becomes `+3510000000000`, and `Test@Test.com ` one before it becomes `test@test.com`.
 */
function untrusted(dialect: Dialect, rules: IdentityRules, type: IdentifierType, normalized: string, raw: string): string {
  const check = (value: string) => `COALESCE(${neverTrustedSql(dialect, rules.neverTrusted, type, value)}, FALSE)`;
  return `(${check(normalized)} OR ${check(raw)})`;
}

/** One SELECT per unordered pair of identifier columns; type order is fixed here so pairs are canonical. */
function pairSelects(dialect: Dialect, rules: IdentityRules, source: EdgeSource): string[] {
  const q = (id: string) => dialect.quoteIdentifier(id);
  const selects: string[] = [];
  const ids = source.identifiers;
  for (let i = 0; i < ids.length; i++) {
    for (let j = i + 1; j < ids.length; j++) {
      let [a, b] = [ids[i]!, ids[j]!];
      if (a.type > b.type) [a, b] = [b, a];
      const typeA = typeOf(rules, a.type);
      const typeB = typeOf(rules, b.type);
      const normA = normalizeSql(dialect, typeA.normalizer, `src.${q(a.column)}`);
      const normB = normalizeSql(dialect, typeB.normalizer, `src.${q(b.column)}`);
      // Two columns of one type (e.g. two emails): order the values so (x, y) and (y, x) dedupe.
      const sameType = a.type === b.type;
      const rule = `${source.name}:${a.column}~${b.column}`;
      selects.push([
        'SELECT',
        `  ${dialect.stringLiteral(a.type)} AS type_a, ${sameType ? `LEAST(n.a, n.b)` : 'n.a'} AS value_a,`,
        `  ${dialect.stringLiteral(b.type)} AS type_b, ${sameType ? `GREATEST(n.a, n.b)` : 'n.b'} AS value_b,`,
        `  ${dialect.stringLiteral(source.name)} AS source, ${dialect.stringLiteral(rule)} AS rule, n.seen_at, n.verified`,
        'FROM (',
        `  SELECT ${normA} AS a, ${normB} AS b, ${rawText(dialect, `src.${q(a.column)}`)} AS raw_a, ${rawText(dialect, `src.${q(b.column)}`)} AS raw_b,`,
        `    CAST(src.${q(source.timestampColumn)} AS ${dialect.types.timestamp}) AS seen_at, COALESCE(${source.verified}, FALSE) AS verified`,
        `  FROM ${referenceTemplate(source.from)} AS src`,
        source.where ? `  WHERE ${source.where}` : '',
        ') AS n',
        `WHERE n.a IS NOT NULL AND n.b IS NOT NULL${sameType ? ' AND n.a <> n.b' : ''}`,
        `  AND NOT ${untrusted(dialect, rules, typeA, 'n.a', 'n.raw_a')}`,
        `  AND NOT ${untrusted(dialect, rules, typeB, 'n.b', 'n.raw_b')}`,
      ].filter(Boolean).join('\n'));
    }
  }
  return selects;
}

function limitCase(rules: IdentityRules, column: string): string {
  return `CASE ${column} ${rules.types.map((t) => `WHEN '${t.name}' THEN ${t.limit}`).join(' ')} END`;
}

export function identityEdgesTemplate(dialect: Dialect, rules: IdentityRules): string {
  const pairs = rules.sources.flatMap((s) => pairSelects(dialect, rules, s));
  return `-- Generated from ${rules.file.split('/').pop()} by cdp: normalised, filtered, deduplicated identity edges.
WITH pairs AS (
${pairs.join('\nUNION ALL\n')}
),
edges AS (
  SELECT type_a, value_a, type_b, value_b, source, rule,
    MIN(seen_at) AS first_seen, MAX(seen_at) AS last_seen, ${dialect.boolOr('verified')} AS verified, COUNT(*) AS row_count
  FROM pairs
  GROUP BY type_a, value_a, type_b, value_b, source, rule
),
directed AS (
  SELECT type_a AS t, value_a AS v, type_b AS pt, value_b AS pv, ${dialect.boolOr('verified')} AS verified, MIN(first_seen) AS first_seen
  FROM edges GROUP BY type_a, value_a, type_b, value_b
  UNION ALL
  SELECT type_b, value_b, type_a, value_a, ${dialect.boolOr('verified')}, MIN(first_seen)
  FROM edges GROUP BY type_a, value_a, type_b, value_b
),
ranked AS (
  SELECT t, v, pt, pv,
    ROW_NUMBER() OVER (PARTITION BY t, v, pt ORDER BY verified DESC, first_seen, pv) AS partner_rank,
    COUNT(*) OVER (PARTITION BY t, v) AS partners
  FROM directed
),
guards AS (
  SELECT
    a.t AS type_a, a.v AS value_a, a.pt AS type_b, a.pv AS value_b,
    a.partners > ${rules.maxPartners} OR b.partners > ${rules.maxPartners} AS super_connector,
    a.partner_rank > ${limitCase(rules, 'a.pt')} OR b.partner_rank > ${limitCase(rules, 'b.pt')} AS over_limit
  FROM ranked AS a
  JOIN ranked AS b ON b.t = a.pt AND b.v = a.pv AND b.pt = a.t AND b.pv = a.v
  WHERE a.t < a.pt OR (a.t = a.pt AND a.v < a.pv)
)
SELECT
  e.type_a, e.value_a, e.type_b, e.value_b, e.source, e.rule, e.first_seen, e.last_seen, e.verified, e.row_count,
  CASE WHEN g.super_connector THEN 'super_connector' WHEN g.over_limit THEN 'limit' ELSE 'active' END AS status
FROM edges AS e
JOIN guards AS g ON g.type_a = e.type_a AND g.value_a = e.value_a AND g.type_b = e.type_b AND g.value_b = e.value_b
`;
}
