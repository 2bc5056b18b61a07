import type { ModelNode, Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';
import { computeComponents, type ComponentsStats } from './connected-components.js';
import {
  STATE_COLUMNS,
  assignedSql,
  changesSql,
  commitStateSql,
  demoteLinksSql,
  graphOutputSql,
  limitViolationsSql,
  linksSql,
  nodesSql,
  profilesSql,
  type GraphRelations,
} from './graph-sql.js';
import type { IdentityRules } from './rules.js';
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

export async function buildIdentityGraph(
  session: Session,
  d: Dialect,
  node: ModelNode,
  edges: Relation,
  rules: IdentityRules,
  runId: string,
): Promise<GraphBuildResult> {
  const r = graphRelations(node.relation, edges);
  const executed: string[] = [];
  const run = async (sql: string) => {
    executed.push(sql);
    return session.execute(sql);
  };
  const create = (relation: Relation, sql: string) => run(d.createTableAs(relation, sql));
  const scratch = [r.nodes, r.links, r.components, r.assigned, r.profiles, r.changes];
  const result: GraphBuildResult = { executed, rowsAffected: 0, components: [], demotions: 0, splits: 0 };
  const components = async () => {
    result.components.push(await computeComponents(session, d, {
      nodes: r.nodes,
      edges: r.links,
      output: r.components,
      scratchSchema: node.relation.schema,
      database: node.relation.database,
    }));
  };
  try {
    for (const sql of stateTablesSql(d, r)) await run(sql);
    await create(r.nodes, nodesSql(d, r, rules));
    await create(r.links, linksSql(d, r, rules));
    await components();
    result.demotions = await demoteUntilWithinLimits(session, d, r, rules, run, components);
    result.splits = await applyNeverJoin(session, d, r, rules, run, components);
    await create(r.assigned, assignedSql(d, r));
    await create(r.profiles, profilesSql(d, r, runId));
    await create(r.changes, changesSql(d, r, runId));

    const staging = d.stagingRelation(node.relation, 'tmp');
    await run(d.dropRelation(staging, 'table'));
    await create(staging, graphOutputSql(d, r));
    const [count] = await session.query(`SELECT COUNT(*) AS n FROM ${d.quoteRelation(staging)}`);
    result.rowsAffected = Number(count?.['n'] ?? 0);
    const existing = await session.describe(node.relation);
    // The graph and the state that explains it move together: both or neither.
    await runAll(session, run, d.atomically([...d.swapTable(node.relation, staging, existing?.kind), ...commitStateSql(d, r, runId)], 'ddl'));
    return result;
  } finally {
    for (const relation of scratch) await session.execute(d.dropRelation(relation, 'table')).catch(() => undefined);
  }
}

async function runAll(session: Session, run: (sql: string) => Promise<unknown>, statements: string[]): Promise<void> {
  try {
    for (const sql of statements) await run(sql);
  } catch (error) {
    if (statements[0] === 'BEGIN TRANSACTION') await session.execute('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** Bounded by the number of identifier types: each pass demotes at least one type per component. */
async function demoteUntilWithinLimits(
  session: Session,
  d: Dialect,
  r: GraphRelations,
  rules: IdentityRules,
  run: (sql: string) => Promise<unknown>,
  recompute: () => Promise<void>,
): Promise<number> {
  const violations: Relation = { ...r.components, name: '__cdp_idg_violations' };
  let passes = 0;
  try {
    for (let pass = 0; pass < rules.types.length; pass++) {
      await run(d.createTableAs(violations, limitViolationsSql(d, r, rules)));
      const [row] = await session.query(`SELECT COUNT(*) AS n FROM ${d.quoteRelation(violations)}`);
      if (Number(row?.['n'] ?? 0) === 0) break;
      await run(demoteLinksSql(d, r, rules, violations));
      await recompute();
      passes++;
    }
    return passes;
  } finally {
    await session.execute(d.dropRelation(violations, 'table')).catch(() => undefined);
  }
}
