import type { Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import { normalizeSql } from './normalize.js';
import { limitCaseSql, priorityCaseSql } from './type-case.js';
import type { IdentifierRef, IdentityRules } from './rules.js';

/**
 * Pure SQL for building the identity graph from `identity_edges`: dictionary encoding, the
 * edges that take part in stitching, limit checks, and the stable-id assignment. The driver
 * (build-graph.ts) runs them in order; `cdp compile` shows them through identityGraphPlan().
 */

export interface GraphRelations {
  edges: Relation;
  /** (node, identifier_type, identifier_value, first_seen, source) */
  nodes: Relation;
  /** (src, dst) encoded edges that may join identifiers. */
  links: Relation;
  /** (node, component) */
  components: Relation;
  /** (node, identifier_type, identifier_value, first_seen, source, component, prev_profile_id) */
  assigned: Relation;
  /** (component, profile_id, minted) */
  profiles: Relation;
  /** (log rows of this run, before they are appended) */
  changes: Relation;
  idMap: Relation;
  registry: Relation;
  mergeLog: Relation;
}

export const STATE_COLUMNS = {
  idMap: [['identifier_type', 'string'], ['identifier_value', 'string'], ['profile_id', 'string']],
  registry: [['profile_id', 'string'], ['issued_at', 'timestamp'], ['issued_run', 'string']],
  mergeLog: [
    ['run_id', 'string'], ['logged_at', 'timestamp'], ['surviving_id', 'string'], ['merged_id', 'string'], ['reason', 'string'],
    ['edge_type_a', 'string'], ['edge_value_a', 'string'], ['edge_type_b', 'string'], ['edge_value_b', 'string'], ['edge_source', 'string'],
  ],
} as const;

/**
 * Every identifier of a kept edge gets an integer id (CC works on integers, not strings), its
 * earliest sighting and the source of that sighting. Super-connectors are left out: they would
 * otherwise become a profile of their own. Ids are numbered without sorting: they live for one
 * run only, and nothing visible depends on their order (labels map to profile ids by content).
 */
export function nodesSql(d: Dialect, r: GraphRelations, rules: IdentityRules): string {
  return `WITH pairs AS (
  SELECT type_a, value_a, type_b, value_b, MIN(first_seen) AS first_seen, ${d.argMin('source', 'first_seen')} AS source
  FROM ${d.quoteRelation(r.edges)}
  GROUP BY type_a, value_a, type_b, value_b
),
endpoints AS (
  SELECT type_a AS identifier_type, value_a AS identifier_value, first_seen, source FROM pairs
  UNION ALL
  SELECT type_b, value_b, first_seen, source FROM pairs
)
SELECT ${d.rowNumber()} AS node, identifier_type, identifier_value, MIN(first_seen) AS first_seen, ${d.argMin('source', 'first_seen')} AS source
FROM endpoints
GROUP BY identifier_type, identifier_value
HAVING COUNT(*) <= ${rules.maxPartners}`;
}

function identifierCondition(d: Dialect, rules: IdentityRules, ref: IdentifierRef, typeCol: string, valueCol: string): string {
  const type = rules.types.find((t) => t.name === ref.type)!;
  return `(${typeCol} = ${d.stringLiteral(ref.type)} AND ${valueCol} = ${normalizeSql(d, type.normalizer, d.stringLiteral(ref.value))})`;
}

/** Active edges, encoded; `isolate` split rules cut every edge of their identifier here. */
export function linksSql(d: Dialect, r: GraphRelations, rules: IdentityRules): string {
  const isolated = rules.splits.flatMap((s) => (s.kind === 'isolate' ? [s.identifier] : []));
  const cut = isolated.flatMap((ref) => [
    identifierCondition(d, rules, ref, 'e.type_a', 'e.value_a'),
    identifierCondition(d, rules, ref, 'e.type_b', 'e.value_b'),
  ]);
  return `SELECT DISTINCT na.node AS src, nb.node AS dst
FROM ${d.quoteRelation(r.edges)} AS e
JOIN ${d.quoteRelation(r.nodes)} AS na ON na.identifier_type = e.type_a AND na.identifier_value = e.value_a
JOIN ${d.quoteRelation(r.nodes)} AS nb ON nb.identifier_type = e.type_b AND nb.identifier_value = e.value_b
WHERE e.status = 'active'${cut.length > 0 ? `\n  AND NOT (${cut.join(' OR ')})` : ''}`;
}

/** Components holding more identifiers of a type than its limit allows, with the type to demote. */
export function limitViolationsSql(d: Dialect, r: GraphRelations, rules: IdentityRules): string {
  return `WITH counts AS (
  SELECT c.component, n.identifier_type, COUNT(*) AS k
  FROM ${d.quoteRelation(r.components)} AS c JOIN ${d.quoteRelation(r.nodes)} AS n ON n.node = c.node
  GROUP BY c.component, n.identifier_type
),
violating AS (
  SELECT DISTINCT component FROM counts WHERE k > ${limitCaseSql(d, rules, 'identifier_type')}
)
SELECT v.component, MAX(${priorityCaseSql(d, rules, 'c.identifier_type')}) AS demote_priority
FROM violating AS v JOIN counts AS c ON c.component = v.component
GROUP BY v.component`;
}

/**
 * Segment's rule, per component: when a merged component breaks a limit, the lowest-priority
 * identifier type in it is demoted: its identifiers there lose their links, and the component
 * is recomputed. `violations` is the result of limitViolationsSql, materialised.
 */
export function demotedNodesSql(d: Dialect, r: GraphRelations, rules: IdentityRules, violations: Relation): string {
  return `SELECT c.node
FROM ${d.quoteRelation(r.components)} AS c
JOIN ${d.quoteRelation(violations)} AS v ON v.component = c.component
JOIN ${d.quoteRelation(r.nodes)} AS n ON n.node = c.node
WHERE ${priorityCaseSql(d, rules, 'n.identifier_type')} = v.demote_priority`;
}

/** Links touching any of `nodes` (a relation with a `node` column) are removed. */
export function cutLinksSql(d: Dialect, r: GraphRelations, nodes: Relation): string {
  const n = d.quoteRelation(nodes);
  return `DELETE FROM ${d.quoteRelation(r.links)} WHERE src IN (SELECT node FROM ${n}) OR dst IN (SELECT node FROM ${n})`;
}

/** The nodes of the given components (a relation with a `component` column). */
export function componentNodesSql(d: Dialect, r: GraphRelations, components: Relation): string {
  return `SELECT c.node FROM ${d.quoteRelation(r.components)} AS c WHERE c.component IN (SELECT component FROM ${d.quoteRelation(components)})`;
}

/** Links inside a set of nodes: links never cross components, so one endpoint decides. */
export function linksWithinSql(d: Dialect, r: GraphRelations, nodes: Relation): string {
  return `SELECT src, dst FROM ${d.quoteRelation(r.links)} WHERE src IN (SELECT node FROM ${d.quoteRelation(nodes)})`;
}

/** Replace the components of a recomputed subgraph. Labels are minimum node ids, so they stay unique. */
export function replaceComponentsSql(d: Dialect, r: GraphRelations, nodes: Relation, recomputed: Relation): string[] {
  const c = d.quoteRelation(r.components);
  return [
    `DELETE FROM ${c} WHERE node IN (SELECT node FROM ${d.quoteRelation(nodes)})`,
    `INSERT INTO ${c} (node, component) SELECT node, component FROM ${d.quoteRelation(recomputed)}`,
  ];
}

/** Nodes joined to their component and to the profile id they had after the last run. */
export function assignedSql(d: Dialect, r: GraphRelations): string {
  return `SELECT n.node, n.identifier_type, n.identifier_value, n.first_seen, n.source, c.component, m.profile_id AS prev_profile_id
FROM ${d.quoteRelation(r.nodes)} AS n
JOIN ${d.quoteRelation(r.components)} AS c ON c.node = n.node
LEFT JOIN ${d.quoteRelation(r.idMap)} AS m ON m.identifier_type = n.identifier_type AND m.identifier_value = n.identifier_value`;
}

/**
 * Stable ids. Each previous id is kept by the component holding most of its identifiers (on a
 * split, the larger part); a component keeping several ids keeps the oldest issued, and the
 * others are merged into it; a component keeping none gets a new opaque id, derived from its
 * smallest identifier and the run id so it never collides with a retired one.
 */
export function profilesSql(d: Dialect, r: GraphRelations, runId: string): string {
  const a = d.quoteRelation(r.assigned);
  return `WITH overlap AS (
  SELECT component, prev_profile_id, COUNT(*) AS shared FROM ${a} WHERE prev_profile_id IS NOT NULL GROUP BY component, prev_profile_id
),
sizes AS (
  SELECT component, COUNT(*) AS size, MIN(CONCAT(identifier_type, ':', identifier_value)) AS smallest FROM ${a} GROUP BY component
),
keepers AS (
  SELECT o.prev_profile_id, o.component,
    ROW_NUMBER() OVER (PARTITION BY o.prev_profile_id ORDER BY o.shared DESC, s.size DESC, s.smallest) AS rn
  FROM overlap AS o JOIN sizes AS s ON s.component = o.component
),
survivors AS (
  SELECT k.component, k.prev_profile_id AS profile_id,
    ROW_NUMBER() OVER (PARTITION BY k.component ORDER BY reg.issued_at, k.prev_profile_id) AS rn
  FROM keepers AS k JOIN ${d.quoteRelation(r.registry)} AS reg ON reg.profile_id = k.prev_profile_id
  WHERE k.rn = 1
)
SELECT s.component, COALESCE(v.profile_id, CONCAT('prf_', SUBSTR(${d.sha256Hex(`CONCAT(s.smallest, '|', ${d.stringLiteral(runId)})`)}, 1, 24))) AS profile_id,
  v.profile_id IS NULL AS minted
FROM sizes AS s LEFT JOIN survivors AS v ON v.component = s.component AND v.rn = 1`;
}

/**
 * What this run changed, for identity_merges: a previous id that now lives in a component with
 * another surviving id was merged (with the newest active edge that joined them); a previous id
 * whose identifiers are now partly elsewhere was split.
 */
export function changesSql(d: Dialect, r: GraphRelations, runId: string): string {
  const a = d.quoteRelation(r.assigned);
  const p = d.quoteRelation(r.profiles);
  return `WITH moves AS (
  SELECT DISTINCT x.prev_profile_id, x.component, p.profile_id
  FROM ${a} AS x JOIN ${p} AS p ON p.component = x.component
  WHERE x.prev_profile_id IS NOT NULL AND x.prev_profile_id <> p.profile_id
),
kept AS (
  SELECT DISTINCT profile_id FROM ${p}
),
merges AS (
  SELECT m.prev_profile_id AS merged_id, m.profile_id AS surviving_id, m.component, 'merge' AS reason
  FROM moves AS m WHERE m.prev_profile_id NOT IN (SELECT profile_id FROM kept)
),
splits AS (
  SELECT m.profile_id AS merged_id, m.prev_profile_id AS surviving_id, m.component, 'split' AS reason
  FROM moves AS m WHERE m.prev_profile_id IN (SELECT profile_id FROM kept)
),
events AS (
  SELECT * FROM merges UNION ALL SELECT * FROM splits
),
joining AS (
  SELECT ev.merged_id, ev.surviving_id, e.type_a, e.value_a, e.type_b, e.value_b, e.source,
    ROW_NUMBER() OVER (PARTITION BY ev.merged_id, ev.surviving_id ORDER BY e.first_seen DESC, e.source, e.type_a, e.value_a) AS rn
  FROM events AS ev
  JOIN ${a} AS xa ON xa.component = ev.component
  JOIN ${a} AS xb ON xb.component = ev.component
  JOIN ${d.quoteRelation(r.edges)} AS e
    ON e.status = 'active' AND e.type_a = xa.identifier_type AND e.value_a = xa.identifier_value
   AND e.type_b = xb.identifier_type AND e.value_b = xb.identifier_value
  WHERE ev.reason = 'merge'
    AND ((xa.prev_profile_id = ev.merged_id AND (xb.prev_profile_id IS NULL OR xb.prev_profile_id <> ev.merged_id))
      OR (xb.prev_profile_id = ev.merged_id AND (xa.prev_profile_id IS NULL OR xa.prev_profile_id <> ev.merged_id)))
)
SELECT DISTINCT ${d.stringLiteral(runId)} AS run_id, ${d.currentTimestamp()} AS logged_at, ev.surviving_id, ev.merged_id, ev.reason,
  j.type_a AS edge_type_a, j.value_a AS edge_value_a, j.type_b AS edge_type_b, j.value_b AS edge_value_b, j.source AS edge_source
FROM events AS ev
LEFT JOIN joining AS j ON j.merged_id = ev.merged_id AND j.surviving_id = ev.surviving_id AND j.rn = 1`;
}

export function graphOutputSql(d: Dialect, r: GraphRelations): string {
  return `SELECT x.identifier_type, x.identifier_value, p.profile_id, x.source, x.first_seen
FROM ${d.quoteRelation(r.assigned)} AS x JOIN ${d.quoteRelation(r.profiles)} AS p ON p.component = x.component`;
}

/**
 * The state updates of one run, applied atomically: log, registry, then the identifier map;
 * with `scope`, only the map entries of the identifiers in it are replaced (incremental runs).
 */
export function commitStateSql(d: Dialect, r: GraphRelations, runId: string, scope?: Relation): string[] {
  const cols = (names: readonly (readonly [string, string])[]) => names.map(([n]) => d.quoteIdentifier(n));
  const idMap = d.quoteRelation(r.idMap);
  const clearMap = scope
    ? `DELETE FROM ${idMap} AS tgt WHERE EXISTS (\n  SELECT 1 FROM ${d.quoteRelation(scope)} AS s WHERE s.identifier_type = tgt.identifier_type AND s.identifier_value = tgt.identifier_value\n)`
    : `DELETE FROM ${idMap} WHERE 1 = 1`;
  return [
    d.insertInto(r.mergeLog, STATE_COLUMNS.mergeLog.map(([n]) => n), `SELECT ${cols(STATE_COLUMNS.mergeLog).join(', ')} FROM ${d.quoteRelation(r.changes)}`),
    d.insertInto(r.registry, ['profile_id', 'issued_at', 'issued_run'], `SELECT profile_id, ${d.currentTimestamp()}, ${d.stringLiteral(runId)} FROM ${d.quoteRelation(r.profiles)} WHERE minted`),
    clearMap,
    d.insertInto(r.idMap, ['identifier_type', 'identifier_value', 'profile_id'], `SELECT x.identifier_type, x.identifier_value, p.profile_id\nFROM ${d.quoteRelation(r.assigned)} AS x JOIN ${d.quoteRelation(r.profiles)} AS p ON p.component = x.component`),
  ];
}
