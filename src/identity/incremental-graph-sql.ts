import type { Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { GraphRelations } from './graph-sql.js';
import type { IdentityRules } from './rules.js';

/**
 * SQL of an incremental identity_graph run. The graph step keeps its dictionary
 * (`cdp_identity_nodes`) and its final components (`cdp_identity_components`); a run reads only
 * the edges whose `version` is newer than the last graph run, and recomputes the components
 * those edges touch, whole: the cost follows the change.
 */

export interface GraphState {
  nodes: Relation;
  components: Relation;
}

export function graphStateRelations(graph: Relation): GraphState {
  return { nodes: { ...graph, name: 'cdp_identity_nodes' }, components: { ...graph, name: 'cdp_identity_components' } };
}

export function graphStateTablesSql(d: Dialect, state: GraphState): string[] {
  return [
    d.createTableIfNotExists(state.nodes, [['node', 'bigint'], ['identifier_type', 'string'], ['identifier_value', 'string'], ['first_seen', 'timestamp'], ['source', 'string']]),
    d.createTableIfNotExists(state.components, [['node', 'bigint'], ['component', 'bigint']]),
  ];
}

/** After a full build: the dictionary and components become the state the next run starts from. */
export function saveGraphStateSql(d: Dialect, state: GraphState, r: GraphRelations): string[] {
  return [
    `DELETE FROM ${d.quoteRelation(state.nodes)} WHERE 1 = 1`,
    `INSERT INTO ${d.quoteRelation(state.nodes)} (node, identifier_type, identifier_value, first_seen, source) SELECT node, identifier_type, identifier_value, first_seen, source FROM ${d.quoteRelation(r.nodes)}`,
    `DELETE FROM ${d.quoteRelation(state.components)} WHERE 1 = 1`,
    `INSERT INTO ${d.quoteRelation(state.components)} (node, component) SELECT node, component FROM ${d.quoteRelation(r.components)}`,
  ];
}

/** Edges changed since the last graph run. */
export function changedEdgesSql(d: Dialect, edges: Relation, sinceVersion: number): string {
  return `SELECT * FROM ${d.quoteRelation(edges)} WHERE version > ${Math.trunc(sinceVersion)}`;
}

/** Their endpoints, with the earliest sighting among the changed edges. */
export function changedIdentifiersSql(d: Dialect, changed: Relation): string {
  const c = d.quoteRelation(changed);
  return `SELECT identifier_type, identifier_value, MIN(first_seen) AS first_seen, ${d.argMin('source', 'first_seen')} AS source
FROM (
  SELECT type_a AS identifier_type, value_a AS identifier_value, first_seen, source FROM ${c}
  UNION ALL
  SELECT type_b, value_b, first_seen, source FROM ${c}
) AS x
GROUP BY identifier_type, identifier_value`;
}

/** New identifiers join the dictionary with ids above every existing one. */
export function appendNodesSql(d: Dialect, state: GraphState, changedIds: Relation): string {
  const n = d.quoteRelation(state.nodes);
  return `INSERT INTO ${n} (node, identifier_type, identifier_value, first_seen, source)
SELECT (SELECT COALESCE(MAX(node), 0) FROM ${n}) + ${d.rowNumber()}, k.identifier_type, k.identifier_value, k.first_seen, k.source
FROM ${d.quoteRelation(changedIds)} AS k
WHERE NOT EXISTS (SELECT 1 FROM ${n} AS n WHERE n.identifier_type = k.identifier_type AND n.identifier_value = k.identifier_value)`;
}

/**
 * The identifiers this run re-decides: every identifier of a component a changed edge touches,
 * and every endpoint of a changed edge. Whole components, so every previous profile id that is
 * affected has all its identifiers here.
 */
export function scopeSql(d: Dialect, state: GraphState, changedIds: Relation): string {
  const n = d.quoteRelation(state.nodes);
  const c = d.quoteRelation(state.components);
  return `WITH changed_nodes AS (
  SELECT n.node FROM ${n} AS n JOIN ${d.quoteRelation(changedIds)} AS k ON k.identifier_type = n.identifier_type AND k.identifier_value = n.identifier_value
),
touched AS (
  SELECT DISTINCT c.component FROM ${c} AS c JOIN changed_nodes AS x ON x.node = c.node
)
SELECT n.node, n.identifier_type, n.identifier_value, n.first_seen, n.source
FROM ${n} AS n
WHERE n.node IN (SELECT node FROM changed_nodes)
   OR n.node IN (SELECT c.node FROM ${c} AS c JOIN touched AS t ON t.component = c.component)`;
}

/** The scope without super-connectors: they keep no profile, as in a full build. */
export function scopedNodesSql(d: Dialect, r: GraphRelations, rules: IdentityRules, scope: Relation): string {
  const e = d.quoteRelation(r.edges);
  return `SELECT s.* FROM ${d.quoteRelation(scope)} AS s
WHERE NOT EXISTS (SELECT 1 FROM ${e} AS e WHERE e.type_a = s.identifier_type AND e.value_a = s.identifier_value AND e.partners_a > ${rules.maxPartners})
  AND NOT EXISTS (SELECT 1 FROM ${e} AS e WHERE e.type_b = s.identifier_type AND e.value_b = s.identifier_value AND e.partners_b > ${rules.maxPartners})`;
}

/** Rows of `table` whose identifier is in `scope` are removed (before the scope's new rows go in). */
export function deleteScopeSql(d: Dialect, table: Relation, scope: Relation): string {
  const t = d.quoteRelation(table);
  return `DELETE FROM ${t} AS tgt WHERE EXISTS (
  SELECT 1 FROM ${d.quoteRelation(scope)} AS s WHERE s.identifier_type = tgt.identifier_type AND s.identifier_value = tgt.identifier_value
)`;
}

/** The scope's part of the graph state is replaced by this run's result. */
export function commitScopeStateSql(d: Dialect, state: GraphState, r: GraphRelations, scope: Relation): string[] {
  const c = d.quoteRelation(state.components);
  return [
    `DELETE FROM ${c} WHERE node IN (SELECT node FROM ${d.quoteRelation(scope)})`,
    `INSERT INTO ${c} (node, component) SELECT node, component FROM ${d.quoteRelation(r.components)}`,
  ];
}
