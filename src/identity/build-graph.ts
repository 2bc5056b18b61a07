import type { Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';
import type { ComponentsStats } from './connected-components.js';
import { StepRunner } from './steps.js';
import {
  STATE_COLUMNS,
  assignedSql,
  changesSql,
  commitStateSql,
  componentNodesSql,
  cutLinksSql,
  demotedNodesSql,
  graphOutputSql,
  limitViolationsSql,
  linksSql,
  linksWithinSql,
  nodesSql,
  profilesSql,
  replaceComponentsSql,
  type GraphRelations,
} from './graph-sql.js';
import type { IdentityRules } from './rules.js';
import { appendNodesSql, changedEdgesSql, changedIdentifiersSql, commitScopeStateSql, deleteScopeSql, graphStateRelations, graphStateTablesSql, saveGraphStateSql, scopeSql, scopedNodesSql, type GraphState } from './incremental-graph-sql.js';
import { createMetaSql, metaRelation, readMetaSql, writeMetaSql } from './meta.js';
import { applyNeverJoin } from './split.js';

/**
 * Builds `identity_graph` from `identity_edges`: encode, connected components, limit
 * demotion, split rules, stable ids, then the state commit (merge log, id registry, identifier
 * map) in one transaction. The state tables are never dropped, not even by --full-refresh:
 * they are what keeps profile ids stable.
 */

export const STATE_TABLES = { idMap: 'cdp_identity_id_map', registry: 'cdp_identity_registry', mergeLog: 'cdp_identity_merge_log' } as const;

export interface GraphBuildResult {
  executed: string[];
  rowsAffected: number;
  components: ComponentsStats[];
  demotions: number;
  splits: number;
  mode: 'full' | 'incremental';
}

export function graphRelations(graph: Relation, edges: Relation): GraphRelations {
  const at = (name: string): Relation => ({ ...graph, name });
  const scratch = (suffix: string) => at(`__cdp_idg_${suffix}`);
  return {
    edges,
    nodes: scratch('nodes'),
    links: scratch('links'),
    components: scratch('components'),
    assigned: scratch('assigned'),
    profiles: scratch('profiles'),
    changes: scratch('changes'),
    idMap: at(STATE_TABLES.idMap),
    registry: at(STATE_TABLES.registry),
    mergeLog: at(STATE_TABLES.mergeLog),
  };
}

export function stateTablesSql(d: Dialect, r: GraphRelations): string[] {
  return [
    d.createTableIfNotExists(r.idMap, STATE_COLUMNS.idMap),
    d.createTableIfNotExists(r.registry, STATE_COLUMNS.registry),
    d.createTableIfNotExists(r.mergeLog, STATE_COLUMNS.mergeLog),
  ];
}

/** StepRunner plus the graph's relations, for the steps that recompute components. */
export class GraphSteps extends StepRunner {
  constructor(
    session: Session,
    d: Dialect,
    readonly r: GraphRelations,
    home: Relation,
  ) {
    super(session, d, home);
  }

  /**
   * Recompute only the components listed in `affected` (a relation with a `component` column),
   * on the links left inside them: cost follows the affected part, not the whole graph.
   */
  async recomputeComponents(affected: Relation): Promise<void> {
    const nodes = this.scratch('sub_nodes');
    const links = this.scratch('sub_links');
    const output = this.scratch('sub_components');
    await this.create(nodes, componentNodesSql(this.d, this.r, affected));
    await this.create(links, linksWithinSql(this.d, this.r, nodes));
    await this.computeComponents(nodes, links, output);
    for (const sql of replaceComponentsSql(this.d, this.r, nodes, output)) await this.run(sql);
  }
}

export async function buildIdentityGraph(
  session: Session,
  d: Dialect,
  graph: Relation,
  edges: Relation,
  rules: IdentityRules,
  runId: string,
  fullRefresh = false,
): Promise<GraphBuildResult> {
  const r = graphRelations(graph, edges);
  const steps = new GraphSteps(session, d, r, graph);
  const state = graphStateRelations(graph);
  const meta = metaRelation(graph);
  try {
    for (const sql of [...stateTablesSql(d, r), ...graphStateTablesSql(d, state), createMetaSql(d, meta)]) await steps.run(sql);
    const stored = new Map((await session.query(readMetaSql(d, meta))).map((row) => [String(row['name']), String(row['value'])]));
    const edgesInfo = await session.describe(edges);
    const versioned = edgesInfo?.columns.some((c) => c.name.toLowerCase() === 'version') ?? false;
    const edgesVersion = versioned ? Number((await session.query(`SELECT COALESCE(MAX(version), 0) AS ${d.quoteIdentifier('v')} FROM ${d.quoteRelation(edges)}`))[0]?.['v'] ?? 0) : 0;
    const graphVersion = stored.get('graph_version');
    const existing = await session.describe(graph);
    const versionEntry: [string, string][] = versioned ? [['graph_version', String(edgesVersion)]] : [];
    if (!fullRefresh && versioned && graphVersion !== undefined && existing?.kind === 'table' && (await mostlyUnchanged(steps, Number(graphVersion)))) {
      return await buildIncrementally(steps, rules, runId, state, Number(graphVersion), writeMetaSql(d, meta, versionEntry));
    }

    await steps.create(r.nodes, nodesSql(d, r, rules));
    await steps.create(r.links, linksSql(d, r, rules));
    await steps.computeComponents(r.nodes, r.links, r.components);
    const { demotions, splits } = await settleComponents(steps, rules, runId);
    const staging = d.stagingRelation(graph, 'tmp');
    await steps.run(d.dropRelation(staging, 'table'));
    await steps.create(staging, graphOutputSql(d, r));
    const rowsAffected = await steps.count(staging);
    // The state that keeps ids stable commits as one DML transaction; where DDL is transactional
    // (DuckDB) the graph swap joins it. Elsewhere the state goes first: after a crash between the
    // two, the next run recomputes the graph from the committed state, with the same ids.
    const stateSql = [...commitStateSql(d, r, runId), ...saveGraphStateSql(d, state, r), ...writeMetaSql(d, meta, versionEntry)];
    const swap = d.swapTable(graph, staging, existing?.kind);
    await steps.runAll(d.capabilities.transactionalDdl ? d.atomically([...swap, ...stateSql], 'ddl') : d.atomically(stateSql, 'dml'));
    if (!d.capabilities.transactionalDdl) await steps.runAll(swap);
    return { executed: steps.executed, rowsAffected, components: steps.components, demotions, splits, mode: 'full' };
  } finally {
    await steps.dropScratch();
  }
}

/** An incremental run pays off while most edges are unchanged (after a full edges rebuild, none are). */
async function mostlyUnchanged(steps: GraphSteps, sinceVersion: number): Promise<boolean> {
  const [row] = await steps.session.query(
    `SELECT SUM(CASE WHEN version > ${Math.trunc(sinceVersion)} THEN 1 ELSE 0 END) AS ${steps.d.quoteIdentifier('changed')}, COUNT(*) AS ${steps.d.quoteIdentifier('total')} FROM ${steps.d.quoteRelation(steps.r.edges)}`,
  );
  return Number(row?.['changed'] ?? 0) * 2 <= Number(row?.['total'] ?? 0);
}

/** Limits, split rules, then the stable-id assignment: the same for full and incremental runs. */
async function settleComponents(steps: GraphSteps, rules: IdentityRules, runId: string): Promise<{ demotions: number; splits: number }> {
  const { d, r } = steps;
  const demotions = await demoteUntilWithinLimits(steps, rules);
  const splits = await applyNeverJoin(steps, rules);
  await steps.create(r.assigned, assignedSql(d, r));
  await steps.create(r.profiles, profilesSql(d, r, runId));
  await steps.create(r.changes, changesSql(d, r, runId));
  return { demotions, splits };
}

/**
 * Only the edges changed since the last graph run are read; the components they touch are
 * recomputed whole, and the graph, the id map and the state are patched for those identifiers.
 */
async function buildIncrementally(
  outer: GraphSteps,
  rules: IdentityRules,
  runId: string,
  state: GraphState,
  sinceVersion: number,
  metaUpdate: string[],
): Promise<GraphBuildResult> {
  const { d, r: full } = outer;
  const changed = outer.scratch('changed_edges');
  const changedIds = outer.scratch('changed_ids');
  const scope = outer.scratch('scope');
  await outer.create(changed, changedEdgesSql(d, full.edges, sinceVersion));
  if ((await outer.count(changed)) === 0) {
    return { executed: outer.executed, rowsAffected: 0, components: outer.components, demotions: 0, splits: 0, mode: 'incremental' };
  }
  await outer.create(changedIds, changedIdentifiersSql(d, changed));
  await outer.run(appendNodesSql(d, state, changedIds));
  await outer.create(scope, scopeSql(d, state, changedIds));
  // The rest runs on the scope only: the same steps as a full build, on smaller relations.
  const r: GraphRelations = { ...full, nodes: outer.scratch('scoped_nodes'), links: outer.scratch('scoped_links'), components: outer.scratch('scoped_components') };
  const steps = new GraphSteps(outer.session, d, r, outer.home);
  try {
    await steps.create(r.nodes, scopedNodesSql(d, r, rules, scope));
    await steps.create(r.links, linksSql(d, r, rules));
    await steps.computeComponents(r.nodes, r.links, r.components);
    const { demotions, splits } = await settleComponents(steps, rules, runId);
    const graph = outer.home;
    const rowsAffected = await steps.count(r.assigned);
    await steps.runAll(d.atomically([
      deleteScopeSql(d, graph, scope),
      d.insertInto(graph, ['identifier_type', 'identifier_value', 'profile_id', 'source', 'first_seen'], graphOutputSql(d, r)),
      ...commitStateSql(d, r, runId, scope),
      ...commitScopeStateSql(d, state, r, scope),
      ...metaUpdate,
    ], 'dml'));
    return { executed: [...outer.executed, ...steps.executed], rowsAffected, components: [...outer.components, ...steps.components], demotions, splits, mode: 'incremental' };
  } finally {
    await steps.dropScratch();
  }
}

/** Bounded by the number of identifier types: each pass demotes at least one type per component. */
async function demoteUntilWithinLimits(steps: GraphSteps, rules: IdentityRules): Promise<number> {
  const { d, r } = steps;
  const violations = steps.scratch('violations');
  const demoted = steps.scratch('demoted');
  let passes = 0;
  for (let pass = 0; pass < rules.types.length; pass++) {
    await steps.create(violations, limitViolationsSql(d, r, rules));
    if ((await steps.count(violations)) === 0) break;
    await steps.create(demoted, demotedNodesSql(d, r, rules, violations));
    await steps.run(cutLinksSql(d, r, demoted));
    await steps.recomputeComponents(violations);
    passes++;
  }
  return passes;
}
