import type { Dialect } from '../warehouse/dialect.js';
import type { IdentityRelations } from './inspect.js';
import type { IdentityRules } from './rules.js';

/**
 * Pure SQL for `cdp identity report`: how well identity resolution matched, how big the
 * profiles are, which identifiers behave like shared junk, and what the guards cut. Quoting as
 * in inspect.ts: generated-model columns unquoted, merge-log and `<type>_count` columns quoted,
 * result aliases quoted.
 */

/** Profile-size buckets, in display order. `max` undefined = open-ended. */
export const CLUSTER_BUCKETS: readonly { label: string; min: number; max?: number }[] = [
  { label: '1', min: 1, max: 1 },
  { label: '2', min: 2, max: 2 },
  { label: '3-5', min: 3, max: 5 },
  { label: '6-10', min: 6, max: 10 },
  { label: '11-50', min: 11, max: 50 },
  { label: '51+', min: 51 },
];

/** An identifier is a super-connector candidate above this many distinct partners, unless told otherwise. */
export function defaultSuperConnectorThreshold(rules: IdentityRules): number {
  return Math.floor(rules.maxPartners / 2);
}

const sizesCte = (d: Dialect, r: IdentityRelations) =>
  `sizes AS (\n  SELECT profile_id, COUNT(*) AS size FROM ${d.quoteRelation(r.graph)} GROUP BY profile_id\n)`;

/** Totals: identifiers and profiles in the graph, and edges per status. One row. */
export function summarySql(d: Dialect, r: IdentityRelations): string {
  const q = (s: string) => d.quoteIdentifier(s);
  const status = (s: string) => `COALESCE(SUM(CASE WHEN status = ${d.stringLiteral(s)} THEN 1 ELSE 0 END), 0)`;
  return `WITH graph_totals AS (
  SELECT COUNT(*) AS identifiers, COUNT(DISTINCT profile_id) AS profiles FROM ${d.quoteRelation(r.graph)}
),
edge_totals AS (
  SELECT COUNT(*) AS edges, ${status('active')} AS active_edges, ${status('limit')} AS limit_edges, ${status('super_connector')} AS super_connector_edges
  FROM ${d.quoteRelation(r.edges)}
)
SELECT g.identifiers AS ${q('identifiers')}, g.profiles AS ${q('profiles')}, e.edges AS ${q('edges')}, e.active_edges AS ${q('active_edges')},
  e.limit_edges AS ${q('limit_edges')}, e.super_connector_edges AS ${q('super_connector_edges')}
FROM graph_totals AS g CROSS JOIN edge_totals AS e`;
}

/**
 * Match rate per identifier type: of the identifiers of that type in the graph, how many share
 * their profile with at least one other identifier. The overall rate is the sum over types.
 */
export function matchRateSql(d: Dialect, r: IdentityRelations): string {
  const q = (s: string) => d.quoteIdentifier(s);
  return `WITH ${sizesCte(d, r)}
SELECT g.identifier_type AS ${q('identifier_type')}, COUNT(*) AS ${q('identifiers')},
  SUM(CASE WHEN s.size >= 2 THEN 1 ELSE 0 END) AS ${q('matched')}
FROM ${d.quoteRelation(r.graph)} AS g
JOIN sizes AS s ON s.profile_id = g.profile_id
GROUP BY g.identifier_type
ORDER BY g.identifier_type`;
}

/** Profiles and identifiers per size bucket; every bucket is listed, empty ones with zeros. */
export function clusterSizesSql(d: Dialect, r: IdentityRelations): string {
  const q = (s: string) => d.quoteIdentifier(s);
  const bucketOf = CLUSTER_BUCKETS.map((b, i) => (b.max === undefined ? `ELSE ${i + 1}` : `WHEN size <= ${b.max} THEN ${i + 1}`)).join(' ');
  const buckets = CLUSTER_BUCKETS.map((b, i) => (i === 0 ? `SELECT ${i + 1} AS bucket_order, ${d.stringLiteral(b.label)} AS bucket` : `SELECT ${i + 1}, ${d.stringLiteral(b.label)}`));
  return `WITH ${sizesCte(d, r)},
bucketed AS (
  SELECT CASE ${bucketOf} END AS bucket_order, size FROM sizes
),
buckets AS (
  ${buckets.join('\n  UNION ALL ')}
)
SELECT b.bucket AS ${q('bucket')}, COUNT(x.size) AS ${q('profiles')}, COALESCE(SUM(x.size), 0) AS ${q('identifiers')}
FROM buckets AS b
LEFT JOIN bucketed AS x ON x.bucket_order = b.bucket_order
GROUP BY b.bucket_order, b.bucket
ORDER BY b.bucket_order`;
}

/** The `top` largest profiles with their identifier count per type (ties: oldest first, then id). */
export function largestClustersSql(d: Dialect, r: IdentityRelations, rules: IdentityRules, top: number): string {
  const q = (s: string) => d.quoteIdentifier(s);
  const counts = rules.types.map((t) => `SUM(CASE WHEN identifier_type = ${d.stringLiteral(t.name)} THEN 1 ELSE 0 END) AS ${q(`${t.name}_count`)}`);
  return `SELECT profile_id AS ${q('profile_id')}, COUNT(*) AS ${q('identifiers')},
  ${counts.join(',\n  ')},
  MIN(first_seen) AS ${q('first_seen')}
FROM ${d.quoteRelation(r.graph)}
GROUP BY profile_id
ORDER BY COUNT(*) DESC, MIN(first_seen), profile_id
LIMIT ${Math.trunc(top)}`;
}

/**
 * Identifiers linked (over any edge status) to more than `threshold` distinct identifiers, and
 * every identifier the edge guard already cut (more than `max_partners`), most connected first.
 * `cut` tells the two apart; `profile_id` is where a not-yet-cut one landed. `total` is the
 * number of such identifiers before the `top` limit.
 */
export function superConnectorsSql(d: Dialect, r: IdentityRelations, rules: IdentityRules, threshold: number, top: number): string {
  const q = (s: string) => d.quoteIdentifier(s);
  const edges = d.quoteRelation(r.edges);
  const floor = Math.min(Math.trunc(threshold), rules.maxPartners);
  return `WITH endpoints AS (
  SELECT type_a AS t, value_a AS v, type_b AS pt, value_b AS pv, status FROM ${edges}
  UNION ALL
  SELECT type_b AS t, value_b AS v, type_a AS pt, value_a AS pv, status FROM ${edges}
),
partners AS (
  SELECT t, v, COUNT(DISTINCT CONCAT(pt, ':', pv)) AS partners,
    SUM(CASE WHEN status = 'super_connector' THEN 1 ELSE 0 END) AS super_connector_edges
  FROM endpoints
  GROUP BY t, v
)
SELECT p.t AS ${q('identifier_type')}, p.v AS ${q('identifier_value')}, p.partners AS ${q('partners')},
  p.partners > ${rules.maxPartners} AS ${q('cut')}, p.super_connector_edges AS ${q('super_connector_edges')},
  g.profile_id AS ${q('profile_id')}, COUNT(*) OVER () AS ${q('total')}
FROM partners AS p
LEFT JOIN ${d.quoteRelation(r.graph)} AS g ON g.identifier_type = p.t AND g.identifier_value = p.v
WHERE p.partners > ${floor}
ORDER BY p.partners DESC, p.t, p.v
LIMIT ${Math.trunc(top)}`;
}

/**
 * What the limits resolved, per pair of identifier types: edges the edge guard dropped
 * (`status = 'limit'`), and active edges whose two identifiers still ended in different
 * profiles because the graph step cut them (a component breaking a limit, or a split rule).
 */
export function limitViolationsSql(d: Dialect, r: IdentityRelations): string {
  const q = (s: string) => d.quoteIdentifier(s);
  const graph = d.quoteRelation(r.graph);
  const limitEdges = `SUM(CASE WHEN e.status = 'limit' THEN 1 ELSE 0 END)`;
  const cutInGraph = `SUM(CASE WHEN e.status = 'active' AND ga.profile_id <> gb.profile_id THEN 1 ELSE 0 END)`;
  return `SELECT e.type_a AS ${q('type_a')}, e.type_b AS ${q('type_b')}, ${limitEdges} AS ${q('limit_edges')}, ${cutInGraph} AS ${q('cut_in_graph')}
FROM ${d.quoteRelation(r.edges)} AS e
LEFT JOIN ${graph} AS ga ON ga.identifier_type = e.type_a AND ga.identifier_value = e.value_a
LEFT JOIN ${graph} AS gb ON gb.identifier_type = e.type_b AND gb.identifier_value = e.value_b
WHERE e.status IN ('limit', 'active')
GROUP BY e.type_a, e.type_b
HAVING ${limitEdges} > 0 OR ${cutInGraph} > 0
ORDER BY ${limitEdges} DESC, ${cutInGraph} DESC, e.type_a, e.type_b`;
}

/**
 * The merge log per run, newest first (runs that changed nothing log nothing), with the totals
 * over every logged run on each row. LIMIT 1 gives the latest run that merged or split.
 */
export function mergeRunsSql(d: Dialect, r: IdentityRelations, limit = 1): string {
  const q = (s: string) => d.quoteIdentifier(s);
  return `WITH merge_log AS (
  SELECT ${q('run_id')} AS run_id, ${q('logged_at')} AS logged_at, ${q('reason')} AS reason FROM ${d.quoteRelation(r.merges)}
),
runs AS (
  SELECT run_id, MAX(logged_at) AS logged_at,
    SUM(CASE WHEN reason = 'merge' THEN 1 ELSE 0 END) AS merges,
    SUM(CASE WHEN reason = 'split' THEN 1 ELSE 0 END) AS splits
  FROM merge_log
  GROUP BY run_id
)
SELECT run_id AS ${q('run_id')}, logged_at AS ${q('logged_at')}, merges AS ${q('merges')}, splits AS ${q('splits')},
  COUNT(*) OVER () AS ${q('runs')}, SUM(merges) OVER () AS ${q('total_merges')}, SUM(splits) OVER () AS ${q('total_splits')}
FROM runs
ORDER BY logged_at DESC, run_id DESC
LIMIT ${Math.trunc(limit)}`;
}
