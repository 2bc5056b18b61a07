import type { NodeReference } from '../project/schema-file.js';
import type { Dialect } from '../warehouse/dialect.js';
import { notTombstonedSql } from '../privacy/tables.js';
import { limitCaseSql } from './type-case.js';
import { neverTrustedSql, normalizeFromRawSql, phoneKeptSql, rawTextSql } from './normalize.js';
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
 * Rows of people with a deletion request never get in (tombstones, docs/privacy.md).
 */

export const EDGE_COLUMNS = ['type_a', 'value_a', 'type_b', 'value_b', 'source', 'rule', 'first_seen', 'last_seen', 'verified', 'row_count', 'status'] as const;

function referenceTemplate(ref: NodeReference): string {
  return ref.kind === 'ref' ? `{{ ref "${ref.name}" }}` : `{{ source "${ref.source}" "${ref.table}" }}`;
}

function typeOf(rules: IdentityRules, name: string): IdentifierType {
  return rules.types.find((t) => t.name === name)!;
}

/**
 * Checked on the value as written and as normalised: `0000000000` is a placeholder before it
 * becomes `+3510000000000`, and `Test@Test.com ` one before it becomes `test@test.com`.
 */
function untrusted(dialect: Dialect, rules: IdentityRules, type: IdentifierType, normalized: string, raw: string): string {
  const check = (value: string) => `COALESCE(${neverTrustedSql(dialect, rules.neverTrusted, type, value)}, FALSE)`;
  return `(${check(normalized)} OR ${check(raw)})`;
}

function sourceCte(source: EdgeSource): string {
  return `src_${source.name}`;
}

/**
 * One scan per edge source, each identifier column normalised and checked once per row, in
 * three stages so no regular expression is evaluated twice: trimmed text (and a phone's digits),
 * the normalised value, then the value or NULL when it must not be trusted.
 */
function sourceSql(dialect: Dialect, rules: IdentityRules, source: EdgeSource, incremental: boolean, privacyDatabase: string | undefined): string {
  const q = (id: string) => dialect.quoteIdentifier(id);
  const ids = source.identifiers.map((identifier, i) => ({ column: identifier.column, i, type: typeOf(rules, identifier.type) }));
  const prep = ids.flatMap(({ column, i, type }) => [
    `${rawTextSql(dialect, `src.${q(column)}`)} AS raw_${i}`,
    ...(type.normalizer.kind === 'phone' ? [`${phoneKeptSql(dialect, rawTextSql(dialect, `src.${q(column)}`))} AS kept_${i}`] : []),
  ]);
  const norm = ids.flatMap(({ i, type }) => [
    `p.raw_${i}`,
    `${normalizeFromRawSql(dialect, type.normalizer, `p.raw_${i}`, type.normalizer.kind === 'phone' ? `p.kept_${i}` : undefined)} AS norm_${i}`,
  ]);
  const clean = ids.map(({ i, type }) => `CASE WHEN ${untrusted(dialect, rules, type, `n.norm_${i}`, `n.raw_${i}`)} THEN NULL ELSE n.norm_${i} END AS v_${i}`);
  // A row holding any tombstoned identifier belongs to a deleted person: all of it is dropped,
  // so their new identifiers never link into a profile either. After a restore, only rows dated
  // from the restore on get in (docs/privacy.md).
  const kept = notTombstonedSql(dialect, privacyDatabase, ids.map(({ i, type }) => [type.name, `c.v_${i}`]), 'c.seen_at');
  return [
    `${sourceCte(source)} AS (`,
    '  SELECT * FROM (',
    `  SELECT ${clean.join(',\n    ')},`,
    '    n.seen_at, n.verified',
    '  FROM (',
    `    SELECT ${norm.join(', ')}, p.seen_at, p.verified`,
    '    FROM (',
    `      SELECT ${prep.join(', ')},`,
    `        CAST(src.${q(source.timestampColumn)} AS ${dialect.types.timestamp}) AS seen_at, COALESCE(${source.verified}, FALSE) AS verified`,
    `      FROM ${referenceTemplate(source.from)} AS src`,
    ...whereClauses(dialect, source, incremental),
    '    ) AS p',
    '  ) AS n',
    `  ) AS c WHERE ${kept}`,
    ')',
  ].filter(Boolean).join('\n');
}

/**
 * An incremental run reads only rows newer than the newest sighting already recorded for the
 * source (its watermark). Rows that arrive late with an older timestamp need --full-refresh,
 * as in any timestamp-based incremental model (docs/identity.md).
 */
function whereClauses(dialect: Dialect, source: EdgeSource, incremental: boolean): string[] {
  const conditions = source.where ? [`(${source.where})`] : [];
  if (incremental) {
    const ts = `CAST(src.${dialect.quoteIdentifier(source.timestampColumn)} AS ${dialect.types.timestamp})`;
    conditions.push(`${ts} > (SELECT COALESCE(MAX(last_seen), CAST('1900-01-01' AS ${dialect.types.timestamp})) FROM {{ this }} WHERE source = ${dialect.stringLiteral(source.name)})`);
  }
  return conditions.length > 0 ? [`      WHERE ${conditions.join(' AND ')}`] : [];
}

/** One SELECT per unordered pair of identifier columns; type order is fixed here so pairs are canonical. */
function pairSelects(dialect: Dialect, source: EdgeSource): string[] {
  const selects: string[] = [];
  const ids = source.identifiers.map((identifier, i) => ({ ...identifier, i }));
  for (let x = 0; x < ids.length; x++) {
    for (let y = x + 1; y < ids.length; y++) {
      let [a, b] = [ids[x]!, ids[y]!];
      if (a.type > b.type) [a, b] = [b, a];
      // Two columns of one type (e.g. two emails): order the values so (x, y) and (y, x) dedupe.
      const sameType = a.type === b.type;
      const [va, vb] = [`v_${a.i}`, `v_${b.i}`];
      const rule = `${source.name}:${a.column}~${b.column}`;
      selects.push([
        `SELECT ${dialect.stringLiteral(a.type)} AS type_a, ${sameType ? `LEAST(${va}, ${vb})` : va} AS value_a,`,
        `  ${dialect.stringLiteral(b.type)} AS type_b, ${sameType ? `GREATEST(${va}, ${vb})` : vb} AS value_b,`,
        `  ${dialect.stringLiteral(source.name)} AS source, ${dialect.stringLiteral(rule)} AS rule, seen_at, verified`,
        `FROM ${sourceCte(source)}`,
        `WHERE ${va} IS NOT NULL AND ${vb} IS NOT NULL${sameType ? ` AND ${va} <> ${vb}` : ''}`,
      ].join('\n'));
    }
  }
  return selects;
}

/** The edge rows of the sources: normalised, filtered, grouped per (pair, source, rule). */
function edgeRowsCtes(dialect: Dialect, rules: IdentityRules, incremental: boolean, privacyDatabase: string | undefined): string {
  const sources = rules.sources.map((s) => sourceSql(dialect, rules, s, incremental, privacyDatabase));
  const pairs = rules.sources.flatMap((s) => pairSelects(dialect, s));
  return `WITH ${sources.join(',\n')},
pairs AS (
${pairs.join('\nUNION ALL\n')}
),
edges AS (
  SELECT type_a, value_a, type_b, value_b, source, rule,
    MIN(seen_at) AS first_seen, MAX(seen_at) AS last_seen, ${dialect.boolOr('verified')} AS verified, COUNT(*) AS row_count
  FROM pairs
  GROUP BY type_a, value_a, type_b, value_b, source, rule
)`;
}

/**
 * Per directed pair: the partner's rank among the identifier's partners of its type (verified
 * first, then earliest, then by value) and the identifier's count of distinct partners. Kept on
 * every edge (rank_ab, rank_ba, partners_a, partners_b) so an incremental run can recompute
 * them for the identifiers it touches only. `edges` is a relation or CTE of edge rows.
 */
export function partnerRanksSql(links: string, restrictTo?: string): string {
  const touched = restrictTo ? `\n  WHERE EXISTS (SELECT 1 FROM ${restrictTo} AS k WHERE k.t = d.t AND k.v = d.v)` : '';
  return `SELECT d.t, d.v, d.pt, d.pv,
    ROW_NUMBER() OVER (PARTITION BY d.t, d.v, d.pt ORDER BY d.verified DESC, d.first_seen, d.pv) AS partner_rank,
    COUNT(*) OVER (PARTITION BY d.t, d.v) AS partners
  FROM (
    SELECT type_a AS t, value_a AS v, type_b AS pt, value_b AS pv, verified, first_seen FROM ${links}
    UNION ALL
    SELECT type_b, value_b, type_a, value_a, verified, first_seen FROM ${links}
  ) AS d${touched}`;
}

/** The guard status of an edge from its stored ranks and partner counts. */
export function edgeStatusSql(dialect: Dialect, rules: IdentityRules, alias: string): string {
  return `CASE
    WHEN ${alias}.partners_a > ${rules.maxPartners} OR ${alias}.partners_b > ${rules.maxPartners} THEN 'super_connector'
    WHEN ${alias}.rank_ab > ${limitCaseSql(dialect, rules, `${alias}.type_b`)} OR ${alias}.rank_ba > ${limitCaseSql(dialect, rules, `${alias}.type_a`)} THEN 'limit'
    ELSE 'active'
  END`;
}

/**
 * The identity_edges template. Full build: every edge row with its ranks and status. With
 * `is_incremental`, only the new edge rows since each source's watermark; the identity_edges
 * materialization merges them and recomputes ranks for the identifiers they touch.
 */
export function identityEdgesTemplate(dialect: Dialect, rules: IdentityRules, privacyDatabase: string | undefined): string {
  return `-- Generated from ${rules.file.split('/').pop()} by cdp: normalised, filtered, deduplicated identity edges.
{{#if (is_incremental)}}
-- Incremental: edge rows newer than each source's watermark, merged into {{ this }} by cdp.
${edgeRowsCtes(dialect, rules, true, privacyDatabase)}
SELECT * FROM edges
{{else}}
${edgeRowsCtes(dialect, rules, false, privacyDatabase)},
links AS (
  SELECT type_a, value_a, type_b, value_b, ${dialect.boolOr('verified')} AS verified, MIN(first_seen) AS first_seen
  FROM edges GROUP BY type_a, value_a, type_b, value_b
),
ranked AS (
  ${partnerRanksSql('links')}
),
guards AS (
  SELECT a.t AS type_a, a.v AS value_a, a.pt AS type_b, a.pv AS value_b,
    a.partners AS partners_a, b.partners AS partners_b, a.partner_rank AS rank_ab, b.partner_rank AS rank_ba
  FROM ranked AS a
  JOIN ranked AS b ON b.t = a.pt AND b.v = a.pv AND b.pt = a.t AND b.pv = a.v
  WHERE a.t < a.pt OR (a.t = a.pt AND a.v < a.pv)
),
ranked_edges AS (
  SELECT e.type_a, e.value_a, e.type_b, e.value_b, e.source, e.rule, e.first_seen, e.last_seen, e.verified, e.row_count,
    g.partners_a, g.partners_b, g.rank_ab, g.rank_ba
  FROM edges AS e
  JOIN guards AS g ON g.type_a = e.type_a AND g.value_a = e.value_a AND g.type_b = e.type_b AND g.value_b = e.value_b
)
SELECT r.*, ${edgeStatusSql(dialect, rules, 'r')} AS status
FROM ranked_edges AS r
{{/if}}
`;
}
