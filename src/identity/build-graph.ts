import type { Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';
import { computeComponents, type ComponentsStats } from './connected-components.js';
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

/** Runs statements on one session, timing each one: target/run shows where the time went. */
export class GraphSteps {
  readonly executed: string[] = [];
  readonly components: ComponentsStats[] = [];
  private readonly temporary = new Set<Relation>();

  constructor(
    readonly session: Session,
    readonly d: Dialect,
    readonly r: GraphRelations,
    private readonly scratchSchema: { schema: string; database?: string },
  ) {}

  async run(sql: string) {
    const started = performance.now();
    const result = await this.session.execute(sql);
    this.executed.push(`-- ${seconds(started)}s\n${sql}`);
    return result;
  }

  async create(relation: Relation, sql: string) {
    this.temporary.add(relation);
    return this.run(this.d.createTableAs(relation, sql));
  }

  async count(relation: Relation): Promise<number> {
    const [row] = await this.session.query(`SELECT COUNT(*) AS n FROM ${this.d.quoteRelation(relation)}`);
    return Number(row?.['n'] ?? 0);
  }

  scratch(name: string): Relation {
    return { ...this.r.components, name: `__cdp_idg_${name}` };
  }

  /** Components of `nodes` over `edges` into `output`. */
  async computeComponents(nodes: Relation, edges: Relation, output: Relation): Promise<void> {
    const started = performance.now();
    this.temporary.add(output);
    const stats = await computeComponents(this.session, this.d, { nodes, edges, output, scratchSchema: this.scratchSchema.schema, database: this.scratchSchema.database });
    this.components.push(stats);
    this.executed.push(`-- ${seconds(started)}s: connected components of ${this.d.quoteRelation(edges)}, ${stats.rounds} rounds, ${stats.jumps} jumps, ${stats.statements} statements`);
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

  async dropScratch(): Promise<void> {
    for (const relation of this.temporary) await this.session.execute(this.d.dropRelation(relation, 'table')).catch(() => undefined);
  }
}

function seconds(started: number): string {
  return ((performance.now() - started) / 1000).toFixed(2);
}

export async function buildIdentityGraph(
  session: Session,
  d: Dialect,
  graph: Relation,
  edges: Relation,
  rules: IdentityRules,
  runId: string,
): Promise<GraphBuildResult> {
  const r = graphRelations(graph, edges);
  const steps = new GraphSteps(session, d, r, graph);
  try {
    for (const sql of stateTablesSql(d, r)) await steps.run(sql);
    await steps.create(r.nodes, nodesSql(d, r, rules));
    await steps.create(r.links, linksSql(d, r, rules));
    await steps.computeComponents(r.nodes, r.links, r.components);
    const demotions = await demoteUntilWithinLimits(steps, rules);
    const splits = await applyNeverJoin(steps, rules);
    await steps.create(r.assigned, assignedSql(d, r));
    await steps.create(r.profiles, profilesSql(d, r, runId));
    await steps.create(r.changes, changesSql(d, r, runId));

    const staging = d.stagingRelation(graph, 'tmp');
    await steps.run(d.dropRelation(staging, 'table'));
    await steps.create(staging, graphOutputSql(d, r));
    const rowsAffected = await steps.count(staging);
    const existing = await session.describe(graph);
    // The graph and the state that explains it move together: both or neither.
    const commit = d.atomically([...d.swapTable(graph, staging, existing?.kind), ...commitStateSql(d, r, runId)], 'ddl');
    try {
      for (const sql of commit) await steps.run(sql);
    } catch (error) {
      if (commit[0] === 'BEGIN TRANSACTION') await session.execute('ROLLBACK').catch(() => undefined);
      throw error;
    }
    return { executed: steps.executed, rowsAffected, components: steps.components, demotions, splits };
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
