import type { Relation } from '../compile/node.js';
import { WarehouseError } from '../errors.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';

/**
 * Connected components of the identity graph, computed in the warehouse in a number of rounds
 * that grows with log(n), not with the diameter: 4 rounds for the 7.4M-node bench graph, 7 for a
 * randomly numbered path of 2,000 nodes (the tests). That is measured, not a worst-case bound
 * (none is proven for hook-to-min with contraction), hence the round cap.
 *
 * Input: `edges (src BIGINT, dst BIGINT)` of dictionary-encoded node ids (undirected; duplicates,
 * self-loops and either orientation allowed; rows with a NULL end are ignored) and
 * `nodes (node BIGINT)` listing every node once, isolated nodes included. Output:
 * `(node BIGINT, component BIGINT)`, one row per row of `nodes`, where `component` is the smallest
 * node id of the node's component: deterministic (same graph, same labels), and a component keeps
 * its label as long as its smallest node stays in it.
 *
 * Algorithm: hook-to-min + pointer jumping + edge contraction. One round, on the current edges:
 *   1. hook: every node with a smaller neighbour points at its smallest neighbour:
 *      `SELECT GREATEST(src, dst) AS node, MIN(LEAST(src, dst)) ... GROUP BY node`, one pass over the
 *      edges. Nodes without a smaller neighbour (local minima) get no row: they are the roots, and
 *      a root's parent is itself implicitly. Parents are strictly smaller, so this is a forest.
 *   2. settle: one self-join marks the rows whose parent is a root (`settled`).
 *   3. pointer jumping on the unsettled rows only: `parent := parent(parent)`. The parent of an
 *      unsettled row is either settled (then its parent is a root: the row settles) or unsettled
 *      (the row stays unsettled), so `settled` stays exact. Each jump is one set-based statement
 *      that writes only the still-unsettled rows, doubles the distance they cover (ceil(log2 d)
 *      jumps for depth d), and its build side is the small unsettled set. The loop runs while
 *      `COUNT(*) ... WHERE NOT settled` > 0. The round's root map is the union of settled rows.
 *   4. contraction: each edge becomes (root(src), root(dst)) normalized to src < dst; self-loops
 *      (edges inside one tree) and duplicates are dropped. A component that collapsed into one
 *      tree leaves the edge set for good, so the graph shrinks every round.
 * The loop is driven from the host: it stops when a COUNT of the contracted edges is 0, never
 * after a fixed number of passes, and throws after `maxRounds`. The final labels compose the
 * round maps backwards (the later maps are small), and one last statement joins the node list to
 * round 1's map.
 *
 * Why this algorithm. Measured on DuckDB 1.5.6, 2 threads, on the identity bench's graph
 * (src/bench/identity-suite.ts: ~9.7M edge rows over ~7.4M identifiers, 1M persons), wall time
 * with CPU time in brackets, all variants giving the same components:
 * - this code: 4.0-5.5 s (~9.5 s CPU), 4 rounds, 9 jumps; edges 9.7M -> 2.5M -> 140k -> ~700 -> 0;
 * - large-star/small-star alternating (Kiveris et al. 2014): ~33 s (64 s CPU), 5 alternations.
 *   Its rounds are O(log n) too, but every step rewrites the whole edge set (finished stars stay
 *   in it until the global fixpoint) through a GROUP BY and a join over both edge directions;
 * - the first version of this code (every row jumped, a COUNT join before each jump, edges
 *   deduplicated up front): ~8.5 s (16.5 s CPU). Jumping only the unsettled rows is what pays:
 *   after hooking ~30% of the rows are unsettled, after one jump ~5%, after two ~0.05%;
 * - naive min-label propagation (one pass over all edges per round until nothing changes):
 *   84-101 s, 32 rounds; it needs ~diameter rounds (~n on a path of n nodes, see the tests).
 * No DuckDB-only fast path: the portable SQL already beats streaming the edges to Node for
 * union-find (bench), so a second code path had little to gain; DuckDB's
 * `WITH RECURSIVE ... USING KEY` was not tried.
 * Every statement is a plain GROUP BY / hash join / UNION ALL / CREATE TABLE AS, so the same SQL
 * runs on DuckDB, BigQuery and Snowflake: no recursive CTEs, UDFs or engine-specific syntax.
 *
 * Scratch tables are named `__cdp_cc_<tag>_...` in the scratch schema and are dropped before
 * returning, also when a statement fails.
 */

export const SCRATCH_PREFIX = '__cdp_cc_';
/** Outer rounds before giving up: the graphs we measured need ~log3(n); 64 is generous. */
export const DEFAULT_MAX_ROUNDS = 64;
/** Jumps per round: a forest of depth d needs ceil(log2 d) jumps, so 64 covers any graph. */
export const DEFAULT_MAX_JUMPS = 64;

export interface ComponentsSpec {
  /** `(node BIGINT)`, one row per node, isolated nodes included. */
  nodes: Relation;
  /** `(src BIGINT, dst BIGINT)`; undirected, duplicates and self-loops allowed. */
  edges: Relation;
  /** Created (or replaced) as `(node BIGINT, component BIGINT)`. */
  output: Relation;
  /** Schema (BigQuery: dataset) for the scratch tables; must exist. */
  scratchSchema: string;
  /** Database (BigQuery project, Snowflake database) of the scratch schema. */
  database?: string;
  /** Names the scratch tables apart from concurrent runs; default: the output table's name. */
  tag?: string;
  maxRounds?: number;
  maxJumps?: number;
}

export interface ComponentsStats {
  /** Hook + jump + contract rounds; the last one leaves no edges. */
  rounds: number;
  /** Pointer jumps, summed over all rounds. */
  jumps: number;
  /** Statements executed, counts and drops included. */
  statements: number;
  /** Distinct edges between different trees left after each round (the last is 0). */
  edgesPerRound: number[];
}

/** Column names; every generated statement quotes them. */
const NODE = 'node';
const PARENT = 'parent';
const SETTLED = 'settled';
const COMPONENT = 'component';
const SRC = 'src';
const DST = 'dst';
const COUNT = 'n';

/** The scratch relations of one run: pure, so the plan and the driver use the same names. */
export class ScratchNames {
  constructor(
    readonly schema: string,
    /** Full name prefix, `__cdp_cc_` included. */
    readonly prefix: string,
    readonly database?: string,
  ) {}

  static of(spec: Pick<ComponentsSpec, 'output' | 'tag' | 'scratchSchema' | 'database'>): ScratchNames {
    return new ScratchNames(spec.scratchSchema, `${SCRATCH_PREFIX}${spec.tag ?? spec.output.name}`, spec.database);
  }

  named(suffix: string): Relation {
    const name = `${this.prefix}_${suffix}`;
    return this.database === undefined ? { schema: this.schema, name } : { database: this.database, schema: this.schema, name };
  }

  /** Contracted edges after round `round`. */
  edges(round: number): Relation {
    return this.named(`e${round}`);
  }

  /** Round `round`'s hook forest, before settling. */
  hook(round: number): Relation {
    return this.named(`h${round}`);
  }

  /** Round `round`'s parent rows after `jump` jumps (jump 0: every hooked node, settled or not). */
  parents(round: number, jump: number): Relation {
    return this.named(`p${round}_${jump}`);
  }

  /** The maps of rounds `round`, `round + 1`, ... composed. */
  labels(round: number): Relation {
    return this.named(`l${round}`);
  }
}

/**
 * A node -> parent map: a table `(node, parent)`, or a round's root map, which is the union of
 * the settled rows of its jump tables (nodes missing from a map are their own parent).
 */
export type ParentMap = { table: Relation } | { pieces: Relation[] };

// ---------------------------------------------------------------------------------------------
// SQL, one pure function per step. Every identifier is quoted (Snowflake keeps the case).

function cols(d: Dialect) {
  const q = (s: string) => d.quoteIdentifier(s);
  return { q, node: q(NODE), parent: q(PARENT), settled: q(SETTLED), component: q(COMPONENT), src: q(SRC), dst: q(DST), n: q(COUNT) };
}

/** A map as something to join: a relation name, or a parenthesised union of settled rows. */
export function parentMapSql(d: Dialect, map: ParentMap): string {
  if ('table' in map) return d.quoteRelation(map.table);
  const { node, parent, settled } = cols(d);
  const parts = map.pieces.map((p) => `SELECT ${node}, ${parent} FROM ${d.quoteRelation(p)} WHERE ${settled}`);
  return `(\n  ${parts.join('\n  UNION ALL\n  ')}\n)`;
}

/**
 * Hook to min: every node with a smaller neighbour points at the smallest one; roots get no
 * row. Works on raw input (either orientation, duplicates, self-loops, NULLs) and on contracted
 * edges alike.
 */
export function hookSql(d: Dialect, edges: Relation, out: Relation): string {
  const { node, parent, src, dst } = cols(d);
  return d.createTableAs(
    out,
    [
      `SELECT GREATEST(${src}, ${dst}) AS ${node}, MIN(LEAST(${src}, ${dst})) AS ${parent}`,
      `FROM ${d.quoteRelation(edges)}`,
      `WHERE ${src} <> ${dst}`,
      `GROUP BY GREATEST(${src}, ${dst})`,
    ].join('\n'),
  );
}

/** The hook forest with `settled` = the parent is a root (has no parent row itself). */
export function settleSql(d: Dialect, hook: Relation, out: Relation): string {
  const { node, parent, settled } = cols(d);
  const h = d.quoteRelation(hook);
  return d.createTableAs(
    out,
    [`SELECT a.${node} AS ${node}, a.${parent} AS ${parent}, b.${node} IS NULL AS ${settled}`, `FROM ${h} AS a`, `LEFT JOIN ${h} AS b ON a.${parent} = b.${node}`].join('\n'),
  );
}

/** Rows of the last jump table still pointing at a non-root: 0 ends the jumping. */
export function unsettledCountSql(d: Dialect, parents: Relation): string {
  const { settled, n } = cols(d);
  return `SELECT COUNT(*) AS ${n} FROM ${d.quoteRelation(parents)} WHERE NOT ${settled}`;
}

/**
 * One pointer jump of the unsettled rows of `last`: parent := parent(parent). `settledSoFar`
 * holds every settled row of the round (`last` included). A parent is either settled — then its
 * parent is a root and the row settles — or unsettled in `last`.
 */
export function jumpSql(d: Dialect, settledSoFar: Relation[], last: Relation, out: Relation): string {
  const { node, parent, settled } = cols(d);
  const unsettled = `(SELECT ${node}, ${parent} FROM ${d.quoteRelation(last)} WHERE NOT ${settled})`;
  return d.createTableAs(
    out,
    [
      `SELECT a.${node} AS ${node}, COALESCE(s.${parent}, b.${parent}) AS ${parent}, s.${node} IS NOT NULL AS ${settled}`,
      `FROM ${unsettled} AS a`,
      `LEFT JOIN ${parentMapSql(d, { pieces: settledSoFar })} AS s ON a.${parent} = s.${node}`,
      `LEFT JOIN ${unsettled} AS b ON a.${parent} = b.${node}`,
    ].join('\n'),
  );
}

/**
 * Edges between the roots of their ends, normalized to src < dst; edges inside one tree (and
 * self-loops, NULL ends, duplicates) disappear.
 */
export function contractSql(d: Dialect, edges: Relation, roots: ParentMap, out: Relation): string {
  const { node, parent, src, dst, q } = cols(d);
  const a = q('a');
  const b = q('b');
  const r = parentMapSql(d, roots).replaceAll('\n', '\n  ');
  return d.createTableAs(
    out,
    [
      `SELECT DISTINCT LEAST(${a}, ${b}) AS ${src}, GREATEST(${a}, ${b}) AS ${dst}`,
      'FROM (',
      `  SELECT COALESCE(rs.${parent}, e.${src}) AS ${a}, COALESCE(rd.${parent}, e.${dst}) AS ${b}`,
      `  FROM ${d.quoteRelation(edges)} AS e`,
      `  LEFT JOIN ${r} AS rs ON e.${src} = rs.${node}`,
      `  LEFT JOIN ${r} AS rd ON e.${dst} = rd.${node}`,
      ') AS c',
      `WHERE ${a} <> ${b}`,
    ].join('\n'),
  );
}

/** Row count, read back as `n`: the outer loop's convergence check. */
export function countSql(d: Dialect, relation: Relation): string {
  return `SELECT COUNT(*) AS ${d.quoteIdentifier(COUNT)} FROM ${d.quoteRelation(relation)}`;
}

/**
 * Round k's root map followed through the later rounds' composed map. Later rounds only see
 * round-k roots, so the two key sets are disjoint and UNION ALL keeps one row per node.
 */
export function composeSql(d: Dialect, roots: ParentMap, later: ParentMap, out: Relation): string {
  const { node, parent } = cols(d);
  const l = parentMapSql(d, later);
  return d.createTableAs(
    out,
    [
      `SELECT r.${node} AS ${node}, COALESCE(l.${parent}, r.${parent}) AS ${parent}`,
      `FROM ${parentMapSql(d, roots)} AS r`,
      `LEFT JOIN ${l} AS l ON r.${parent} = l.${node}`,
      'UNION ALL',
      `SELECT ${node}, ${parent} FROM ${l} AS l`,
    ].join('\n'),
  );
}

/**
 * The output: every node with its component. `first` is round 1's root map, `later` the
 * composed map of rounds 2.. (absent after one round).
 */
export function finalizeSql(d: Dialect, nodes: Relation, output: Relation, first: ParentMap, later?: ParentMap): string {
  const { node, parent, component } = cols(d);
  const lines = [
    `SELECT x.${node} AS ${node}, ${later ? `COALESCE(l.${parent}, r.${parent}, x.${node})` : `COALESCE(r.${parent}, x.${node})`} AS ${component}`,
    `FROM ${d.quoteRelation(nodes)} AS x`,
    `LEFT JOIN ${parentMapSql(d, first)} AS r ON x.${node} = r.${node}`,
  ];
  if (later) lines.push(`LEFT JOIN ${parentMapSql(d, later)} AS l ON COALESCE(r.${parent}, x.${node}) = l.${node}`);
  return d.createTableAs(output, lines.join('\n'));
}

// ---------------------------------------------------------------------------------------------
// The whole plan as text, for `cdp compile`.

/**
 * The statements `computeComponents` runs, as one readable SQL script. The loops are unrolled
 * once (round 1 with one jump, finalize after 3 rounds) and the repetition is in comments.
 */
export function componentsPlan(d: Dialect, spec: ComponentsSpec): string {
  const s = ScratchNames.of(spec);
  const maxRounds = spec.maxRounds ?? DEFAULT_MAX_ROUNDS;
  const round1: ParentMap = { pieces: [s.parents(1, 0), s.parents(1, 1)] };
  return [
    `-- Connected components of ${d.quoteRelation(spec.edges)} over ${d.quoteRelation(spec.nodes)} into ${d.quoteRelation(spec.output)}.`,
    '-- Hook-to-min + pointer jumping + edge contraction; component = smallest node id.',
    `-- Rounds r = 1, 2, ... run while the last count is > 0 (an error after ${maxRounds} rounds).`,
    '-- Round 1 reads the input edges; round r reads the edges contracted by round r - 1.',
    '',
    '-- round 1. hook: every node points at its smallest neighbour; roots (local minima) get no row',
    `${hookSql(d, spec.edges, s.hook(1))};`,
    '-- settle: mark the rows whose parent is a root',
    `${settleSql(d, s.hook(1), s.parents(1, 0))};`,
    `${d.dropRelation(s.hook(1), 'table')};`,
    '-- pointer jumping, j = 1, 2, ... while this count is > 0 (only unsettled rows move)',
    `${unsettledCountSql(d, s.parents(1, 0))};`,
    `${jumpSql(d, [s.parents(1, 0)], s.parents(1, 0), s.parents(1, 1))};`,
    `${unsettledCountSql(d, s.parents(1, 1))};`,
    '-- contract: edges between roots; edges inside a tree disappear',
    `${contractSql(d, spec.edges, round1, s.edges(1))};`,
    '-- convergence: stop when no edges remain',
    `${countSql(d, s.edges(1))};`,
    '',
    '-- round 2 and later: the same statements on the previous round\'s edges, which are dropped after contracting',
    `${d.dropRelation(s.edges(1), 'table')};`,
    '',
    '-- finalize after R rounds (shown for R = 3): compose the root maps backwards, k = R-1 .. 2,',
    '-- then join the nodes to round 1\'s map and the composed rest',
    `${composeSql(d, { pieces: [s.parents(2, 0)] }, { pieces: [s.parents(3, 0)] }, s.labels(2))};`,
    `${finalizeSql(d, spec.nodes, spec.output, round1, { table: s.labels(2) })};`,
    '',
    '-- cleanup: every scratch table left, e.g.',
    `${d.dropRelation(s.labels(2), 'table')};`,
    `${d.dropRelation(s.parents(1, 1), 'table')};`,
    `${d.dropRelation(s.parents(1, 0), 'table')};`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// The driver.

async function countOf(session: Session, sql: string): Promise<number> {
  const rows = await session.query(sql);
  const n = Number(rows[0]?.[COUNT]);
  if (rows.length !== 1 || !Number.isFinite(n)) throw new WarehouseError('cc-count-unreadable', `connected components: could not read a count from: ${sql}`);
  return n;
}

/** Runs statements and remembers the scratch tables not yet dropped. */
class Scratch {
  private readonly live = new Map<string, Relation>();
  statements = 0;

  constructor(
    private readonly session: Session,
    private readonly dialect: Dialect,
  ) {}

  async run(sql: string): Promise<void> {
    this.statements++;
    await this.session.execute(sql);
  }

  async count(sql: string): Promise<number> {
    this.statements++;
    return countOf(this.session, sql);
  }

  /** Registered before running, so a half-created table is dropped too. */
  async create(relation: Relation, sql: string): Promise<Relation> {
    this.track(relation);
    await this.run(sql);
    return relation;
  }

  track(relation: Relation): void {
    this.live.set(this.dialect.quoteRelation(relation), relation);
  }

  async drop(relation: Relation): Promise<void> {
    await this.run(this.dialect.dropRelation(relation, 'table'));
    this.live.delete(this.dialect.quoteRelation(relation));
  }

  /** Drops what is left, newest first. After a failure, drop errors must not hide the original. */
  async dropAll(quietly: boolean): Promise<void> {
    for (const relation of [...this.live.values()].reverse()) {
      if (quietly) await this.session.execute(this.dialect.dropRelation(relation, 'table')).catch(() => undefined);
      else await this.drop(relation);
    }
    this.live.clear();
  }
}

/**
 * Computes the components of `spec.edges` over `spec.nodes` into `spec.output` (created or
 * replaced). Every statement runs on `session`; scratch tables go to `spec.scratchSchema` and
 * are dropped before returning, also on failure. Throws `cc-not-converged` if edges remain after
 * `maxRounds` rounds (or a round's forest needs more than `maxJumps` jumps): that is a bug or a
 * cap set too low, never a silently partial result.
 */
export async function computeComponents(session: Session, d: Dialect, spec: ComponentsSpec): Promise<ComponentsStats> {
  const scratch = new Scratch(session, d);
  let stats: Omit<ComponentsStats, 'statements'>;
  try {
    stats = await runComponents(scratch, d, spec);
  } catch (error) {
    await scratch.dropAll(true);
    throw error;
  }
  await scratch.dropAll(false);
  return { ...stats, statements: scratch.statements };
}

async function runComponents(scratch: Scratch, d: Dialect, spec: ComponentsSpec): Promise<Omit<ComponentsStats, 'statements'>> {
  const s = ScratchNames.of(spec);
  const maxRounds = spec.maxRounds ?? DEFAULT_MAX_ROUNDS;
  const maxJumps = spec.maxJumps ?? DEFAULT_MAX_JUMPS;
  const maps: ParentMap[] = [];
  const edgesPerRound: number[] = [];
  let edges = spec.edges;
  let jumps = 0;
  for (let round = 1; ; round++) {
    if (round > maxRounds) {
      throw new WarehouseError(
        'cc-not-converged',
        `connected components of ${d.quoteRelation(spec.edges)} did not converge in ${maxRounds} rounds (${edgesPerRound.at(-1)} edges left)`,
        { hint: 'Every round contracts each tree of the hook forest into one node; this is a bug, or maxRounds is set too low.' },
      );
    }
    const hook = await scratch.create(s.hook(round), hookSql(d, edges, s.hook(round)));
    const pieces = [await scratch.create(s.parents(round, 0), settleSql(d, hook, s.parents(round, 0)))];
    await scratch.drop(hook);
    for (let jump = 1; (await scratch.count(unsettledCountSql(d, pieces.at(-1)!))) > 0; jump++) {
      if (jump > maxJumps) {
        throw new WarehouseError('cc-not-converged', `connected components: round ${round} needed more than ${maxJumps} pointer jumps`);
      }
      const next = s.parents(round, jump);
      pieces.push(await scratch.create(next, jumpSql(d, pieces, pieces.at(-1)!, next)));
      jumps++;
    }
    maps.push({ pieces });
    const contracted = await scratch.create(s.edges(round), contractSql(d, edges, { pieces }, s.edges(round)));
    if (edges !== spec.edges) await scratch.drop(edges);
    edges = contracted;
    edgesPerRound.push(await scratch.count(countSql(d, edges)));
    if (edgesPerRound.at(-1) === 0) break;
  }
  await scratch.drop(edges);

  // Compose rounds R..2 backwards (small tables), then join the node list to round 1 once.
  const dropMap = async (map: ParentMap) => {
    for (const relation of 'table' in map ? [map.table] : map.pieces) await scratch.drop(relation);
  };
  let later: ParentMap | undefined = maps.length > 1 ? maps.at(-1) : undefined;
  for (let k = maps.length - 1; k >= 2; k--) {
    const composed = await scratch.create(s.labels(k), composeSql(d, maps[k - 1]!, later!, s.labels(k)));
    await dropMap(later!);
    await dropMap(maps[k - 1]!);
    later = { table: composed };
  }
  await scratch.run(finalizeSql(d, spec.nodes, spec.output, maps[0]!, later));
  return { rounds: maps.length, jumps, edgesPerRound };
}

// ---------------------------------------------------------------------------------------------
// Incremental: recompute only the components that new edges touch.

export interface TouchedSpec {
  /** `(node, component)` from an earlier run, one row per node; updated in place. */
  components: Relation;
  /** The edges `components` was computed from; may already contain `newEdges`. */
  edges: Relation;
  /** `(src BIGINT, dst BIGINT)`: the edges added since. New node ids are allowed. */
  newEdges: Relation;
  /** `(node BIGINT)`: new isolated nodes, if any (the nodes of `newEdges` are found anyway). */
  newNodes?: Relation;
  scratchSchema: string;
  database?: string;
  /** Names the scratch tables; default: the components table's name + `_inc`. */
  tag?: string;
  maxRounds?: number;
  maxJumps?: number;
}

export interface TouchedStats extends ComponentsStats {
  /** Existing components that new edges or nodes touch (merged or grown). */
  touchedComponents: number;
  /** Nodes and edge rows of the recomputed subgraph. */
  subNodes: number;
  subEdges: number;
}

/** The ends of the new edges, plus the new isolated nodes, once each. */
export function touchedNodesSql(d: Dialect, newEdges: Relation, out: Relation, newNodes?: Relation): string {
  const { node, src, dst } = cols(d);
  const e = d.quoteRelation(newEdges);
  const parts = [`SELECT ${src} AS ${node} FROM ${e}`, `SELECT ${dst} AS ${node} FROM ${e}`];
  if (newNodes) parts.push(`SELECT ${node} FROM ${d.quoteRelation(newNodes)}`);
  return d.createTableAs(out, [`SELECT DISTINCT ${node}`, 'FROM (', `  ${parts.join('\n  UNION ALL\n  ')}`, ') AS t', `WHERE ${node} IS NOT NULL`].join('\n'));
}

/** The existing components of the touched nodes. */
export function touchedComponentsSql(d: Dialect, components: Relation, touchedNodes: Relation, out: Relation): string {
  const { node, component } = cols(d);
  return d.createTableAs(
    out,
    [`SELECT DISTINCT c.${component} AS ${component}`, `FROM ${d.quoteRelation(components)} AS c`, `JOIN ${d.quoteRelation(touchedNodes)} AS t ON c.${node} = t.${node}`].join('\n'),
  );
}

/** Every node of a touched component, plus the touched nodes that are new. */
export function subNodesSql(d: Dialect, components: Relation, touchedNodes: Relation, touchedComponents: Relation, out: Relation): string {
  const { node, component } = cols(d);
  const c = d.quoteRelation(components);
  return d.createTableAs(
    out,
    [
      `SELECT c.${node} AS ${node}`,
      `FROM ${c} AS c`,
      `JOIN ${d.quoteRelation(touchedComponents)} AS k ON c.${component} = k.${component}`,
      'UNION ALL',
      `SELECT t.${node} AS ${node}`,
      `FROM ${d.quoteRelation(touchedNodes)} AS t`,
      `WHERE NOT EXISTS (SELECT 1 FROM ${c} AS c WHERE c.${node} = t.${node})`,
    ].join('\n'),
  );
}

/** The old edges of touched components (an edge never leaves its component), plus the new ones. */
export function subEdgesSql(d: Dialect, edges: Relation, subNodes: Relation, newEdges: Relation, out: Relation): string {
  const { node, src, dst } = cols(d);
  return d.createTableAs(
    out,
    [
      `SELECT e.${src} AS ${src}, e.${dst} AS ${dst}`,
      `FROM ${d.quoteRelation(edges)} AS e`,
      `JOIN ${d.quoteRelation(subNodes)} AS s ON e.${src} = s.${node}`,
      'UNION ALL',
      `SELECT ${src}, ${dst} FROM ${d.quoteRelation(newEdges)}`,
    ].join('\n'),
  );
}

/** Statements that replace the rows of the recomputed nodes in `components`, atomically. */
export function mergeBackSql(d: Dialect, components: Relation, recomputed: Relation): string[] {
  return d.atomically(d.deleteInsert({ target: components, source: recomputed, uniqueKey: [NODE], columns: [NODE, COMPONENT] }), 'dml');
}

/**
 * Adds `newEdges` (and `newNodes`) to a components table computed earlier, recomputing only the
 * components they touch: the nodes and edges of those components plus the new ones go through
 * `computeComponents`, and the result replaces their rows (delete + insert in one transaction).
 * The outcome equals a full recomputation over `edges ∪ newEdges`: labels are smallest node ids
 * either way. The cost is one scan of `components` and of `edges` plus work proportional to the
 * touched components — so a new edge into a giant component costs that component.
 */
export async function recomputeTouched(session: Session, d: Dialect, spec: TouchedSpec): Promise<TouchedStats> {
  const scratch = new Scratch(session, d);
  const tag = spec.tag ?? `${spec.components.name}_inc`;
  const s = new ScratchNames(spec.scratchSchema, `${SCRATCH_PREFIX}${tag}`, spec.database);
  const touchedNodes = s.named('touched_nodes');
  const touchedComponents = s.named('touched_components');
  const subNodes = s.named('sub_nodes');
  const subEdges = s.named('sub_edges');
  const recomputed = s.named('recomputed');
  try {
    await scratch.create(touchedNodes, touchedNodesSql(d, spec.newEdges, touchedNodes, spec.newNodes));
    await scratch.create(touchedComponents, touchedComponentsSql(d, spec.components, touchedNodes, touchedComponents));
    await scratch.create(subNodes, subNodesSql(d, spec.components, touchedNodes, touchedComponents, subNodes));
    await scratch.create(subEdges, subEdgesSql(d, spec.edges, subNodes, spec.newEdges, subEdges));
    const counts = {
      touchedComponents: await scratch.count(countSql(d, touchedComponents)),
      subNodes: await scratch.count(countSql(d, subNodes)),
      subEdges: await scratch.count(countSql(d, subEdges)),
    };
    scratch.track(recomputed);
    const stats = await computeComponents(session, d, {
      nodes: subNodes,
      edges: subEdges,
      output: recomputed,
      scratchSchema: spec.scratchSchema,
      database: spec.database,
      tag: `${tag}_cc`,
      maxRounds: spec.maxRounds,
      maxJumps: spec.maxJumps,
    });
    const merge = mergeBackSql(d, spec.components, recomputed);
    try {
      for (const sql of merge) await scratch.run(sql);
    } catch (error) {
      if (merge[0] === 'BEGIN TRANSACTION') await session.execute('ROLLBACK').catch(() => undefined);
      throw error;
    }
    await scratch.dropAll(false);
    return { ...counts, ...stats, statements: scratch.statements + stats.statements };
  } catch (error) {
    await scratch.dropAll(true);
    throw error;
  }
}
