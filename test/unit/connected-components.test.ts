import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { naiveMinLabel } from '../../src/bench/identity-suite.js';
import type { Relation } from '../../src/compile/node.js';
import {
  composeSql,
  componentsPlan,
  computeComponents,
  contractSql,
  countSql,
  finalizeSql,
  hookSql,
  jumpSql,
  mergeBackSql,
  parentMapSql,
  recomputeTouched,
  settleSql,
  subEdgesSql,
  subNodesSql,
  touchedComponentsSql,
  touchedNodesSql,
  unsettledCountSql,
  type ComponentsStats,
} from '../../src/identity/connected-components.js';
import { UnionFind, unionFindLabels } from '../../src/identity/union-find.js';
import { BigQueryDialect } from '../../src/warehouse/bigquery-dialect.js';
import type { Dialect, DialectName } from '../../src/warehouse/dialect.js';
import { DuckDbDialect } from '../../src/warehouse/duckdb-dialect.js';
import { DuckDbWarehouse } from '../../src/warehouse/duckdb-warehouse.js';
import { SnowflakeDialect, foldName } from '../../src/warehouse/snowflake-dialect.js';
import type { Session } from '../../src/warehouse/warehouse.js';
import { Rng } from '../../src/generate/prng.js';

/*
 * Golden SQL per step and dialect (Kysely style: one table of exact SQL per step), then the
 * driver on a real in-memory DuckDB against union-find: hand graphs, seeded random graphs,
 * deep graphs whose round count must stay logarithmic, and the incremental helper.
 */

// ---------------------------------------------------------------------------------------------
// Golden SQL

const DIALECTS: Dialect[] = [new DuckDbDialect(), new BigQueryDialect(), new SnowflakeDialect()];
type PerDialect<T> = Record<DialectName, T>;
type Q = (s: string) => string;

function sqlCase<T>(feature: string, render: (d: Dialect) => T, expected: PerDialect<T>): void {
  describe(feature, () => {
    for (const dialect of DIALECTS) {
      it(dialect.name, () => expect(render(dialect)).toEqual(expected[dialect.name]));
    }
  });
}

const sfq: Q = (s) => `"${foldName(s)}"`;

/** Same SQL on every engine once the quoting style is filled in. */
function quoted<T>(template: (q: Q) => T): PerDialect<T> {
  return {
    duckdb: template((s) => `"${s}"`),
    bigquery: template((s) => `\`${s}\``),
    // Snowflake quotes simple names in their folded, upper-case form.
    snowflake: template(sfq),
  };
}

const rel = (name: string): Relation => ({ database: 'analytics', schema: 'scratch', name });
const R = (q: Q, name: string) => `${q('analytics')}.${q('scratch')}.${q(name)}`;
const ctas = (q: Q, name: string, ...lines: string[]) => [`CREATE OR REPLACE TABLE ${R(q, name)} AS (`, ...lines, ')'].join('\n');
const settledRows = (q: Q, ...pieces: string[]) => pieces.map((p) => `SELECT ${q('node')}, ${q('parent')} FROM ${R(q, p)} WHERE ${q('settled')}`);

sqlCase('hookSql', (d) => hookSql(d, rel('edges'), rel('h1')), quoted((q) =>
  ctas(q, 'h1',
    `SELECT GREATEST(${q('src')}, ${q('dst')}) AS ${q('node')}, MIN(LEAST(${q('src')}, ${q('dst')})) AS ${q('parent')}`,
    `FROM ${R(q, 'edges')}`,
    `WHERE ${q('src')} <> ${q('dst')}`,
    `GROUP BY GREATEST(${q('src')}, ${q('dst')})`),
));

sqlCase('settleSql', (d) => settleSql(d, rel('h1'), rel('p1_0')), quoted((q) =>
  ctas(q, 'p1_0',
    `SELECT a.${q('node')} AS ${q('node')}, a.${q('parent')} AS ${q('parent')}, b.${q('node')} IS NULL AS ${q('settled')}`,
    `FROM ${R(q, 'h1')} AS a`,
    `LEFT JOIN ${R(q, 'h1')} AS b ON a.${q('parent')} = b.${q('node')}`),
));

sqlCase('unsettledCountSql', (d) => unsettledCountSql(d, rel('p1_0')), quoted((q) =>
  `SELECT COUNT(*) AS ${q('n')} FROM ${R(q, 'p1_0')} WHERE NOT ${q('settled')}`,
));

sqlCase('parentMapSql (table)', (d) => parentMapSql(d, { table: rel('l2') }), quoted((q) => R(q, 'l2')));

sqlCase('parentMapSql (pieces)', (d) => parentMapSql(d, { pieces: [rel('p1_0'), rel('p1_1')] }), quoted((q) =>
  ['(', `  ${settledRows(q, 'p1_0')[0]}`, '  UNION ALL', `  ${settledRows(q, 'p1_1')[0]}`, ')'].join('\n'),
));

sqlCase('jumpSql', (d) => jumpSql(d, [rel('p1_0'), rel('p1_1')], rel('p1_1'), rel('p1_2')), quoted((q) => {
  const unsettled = `(SELECT ${q('node')}, ${q('parent')} FROM ${R(q, 'p1_1')} WHERE NOT ${q('settled')})`;
  return ctas(q, 'p1_2',
    `SELECT a.${q('node')} AS ${q('node')}, COALESCE(s.${q('parent')}, b.${q('parent')}) AS ${q('parent')}, s.${q('node')} IS NOT NULL AS ${q('settled')}`,
    `FROM ${unsettled} AS a`,
    'LEFT JOIN (',
    `  ${settledRows(q, 'p1_0')[0]}`,
    '  UNION ALL',
    `  ${settledRows(q, 'p1_1')[0]}`,
    `) AS s ON a.${q('parent')} = s.${q('node')}`,
    `LEFT JOIN ${unsettled} AS b ON a.${q('parent')} = b.${q('node')}`);
}));

sqlCase('contractSql (a round\'s root map)', (d) => contractSql(d, rel('edges'), { pieces: [rel('p1_0')] }, rel('e1')), quoted((q) =>
  ctas(q, 'e1',
    `SELECT DISTINCT LEAST(${q('a')}, ${q('b')}) AS ${q('src')}, GREATEST(${q('a')}, ${q('b')}) AS ${q('dst')}`,
    'FROM (',
    `  SELECT COALESCE(rs.${q('parent')}, e.${q('src')}) AS ${q('a')}, COALESCE(rd.${q('parent')}, e.${q('dst')}) AS ${q('b')}`,
    `  FROM ${R(q, 'edges')} AS e`,
    '  LEFT JOIN (',
    `    ${settledRows(q, 'p1_0')[0]}`,
    `  ) AS rs ON e.${q('src')} = rs.${q('node')}`,
    '  LEFT JOIN (',
    `    ${settledRows(q, 'p1_0')[0]}`,
    `  ) AS rd ON e.${q('dst')} = rd.${q('node')}`,
    ') AS c',
    `WHERE ${q('a')} <> ${q('b')}`),
));

sqlCase('contractSql (a table)', (d) => contractSql(d, rel('e1'), { table: rel('m') }, rel('e2')), quoted((q) =>
  ctas(q, 'e2',
    `SELECT DISTINCT LEAST(${q('a')}, ${q('b')}) AS ${q('src')}, GREATEST(${q('a')}, ${q('b')}) AS ${q('dst')}`,
    'FROM (',
    `  SELECT COALESCE(rs.${q('parent')}, e.${q('src')}) AS ${q('a')}, COALESCE(rd.${q('parent')}, e.${q('dst')}) AS ${q('b')}`,
    `  FROM ${R(q, 'e1')} AS e`,
    `  LEFT JOIN ${R(q, 'm')} AS rs ON e.${q('src')} = rs.${q('node')}`,
    `  LEFT JOIN ${R(q, 'm')} AS rd ON e.${q('dst')} = rd.${q('node')}`,
    ') AS c',
    `WHERE ${q('a')} <> ${q('b')}`),
));

sqlCase('countSql', (d) => countSql(d, rel('e1')), quoted((q) => `SELECT COUNT(*) AS ${q('n')} FROM ${R(q, 'e1')}`));

sqlCase('composeSql', (d) => composeSql(d, { pieces: [rel('p2_0'), rel('p2_1')] }, { table: rel('l3') }, rel('l2')), quoted((q) =>
  ctas(q, 'l2',
    `SELECT r.${q('node')} AS ${q('node')}, COALESCE(l.${q('parent')}, r.${q('parent')}) AS ${q('parent')}`,
    'FROM (',
    `  ${settledRows(q, 'p2_0')[0]}`,
    '  UNION ALL',
    `  ${settledRows(q, 'p2_1')[0]}`,
    ') AS r',
    `LEFT JOIN ${R(q, 'l3')} AS l ON r.${q('parent')} = l.${q('node')}`,
    'UNION ALL',
    `SELECT ${q('node')}, ${q('parent')} FROM ${R(q, 'l3')} AS l`),
));

sqlCase('finalizeSql (one round)', (d) => finalizeSql(d, rel('nodes'), rel('out'), { pieces: [rel('p1_0')] }), quoted((q) =>
  ctas(q, 'out',
    `SELECT x.${q('node')} AS ${q('node')}, COALESCE(r.${q('parent')}, x.${q('node')}) AS ${q('component')}`,
    `FROM ${R(q, 'nodes')} AS x`,
    'LEFT JOIN (',
    `  ${settledRows(q, 'p1_0')[0]}`,
    `) AS r ON x.${q('node')} = r.${q('node')}`),
));

sqlCase('finalizeSql (later rounds)', (d) => finalizeSql(d, rel('nodes'), rel('out'), { pieces: [rel('p1_0')] }, { table: rel('l2') }), quoted((q) =>
  ctas(q, 'out',
    `SELECT x.${q('node')} AS ${q('node')}, COALESCE(l.${q('parent')}, r.${q('parent')}, x.${q('node')}) AS ${q('component')}`,
    `FROM ${R(q, 'nodes')} AS x`,
    'LEFT JOIN (',
    `  ${settledRows(q, 'p1_0')[0]}`,
    `) AS r ON x.${q('node')} = r.${q('node')}`,
    `LEFT JOIN ${R(q, 'l2')} AS l ON COALESCE(r.${q('parent')}, x.${q('node')}) = l.${q('node')}`),
));

sqlCase('touchedNodesSql', (d) => touchedNodesSql(d, rel('new_edges'), rel('t'), rel('new_nodes')), quoted((q) =>
  ctas(q, 't',
    `SELECT DISTINCT ${q('node')}`,
    'FROM (',
    `  SELECT ${q('src')} AS ${q('node')} FROM ${R(q, 'new_edges')}`,
    '  UNION ALL',
    `  SELECT ${q('dst')} AS ${q('node')} FROM ${R(q, 'new_edges')}`,
    '  UNION ALL',
    `  SELECT ${q('node')} FROM ${R(q, 'new_nodes')}`,
    ') AS t',
    `WHERE ${q('node')} IS NOT NULL`),
));

sqlCase('touchedComponentsSql', (d) => touchedComponentsSql(d, rel('components'), rel('t'), rel('k')), quoted((q) =>
  ctas(q, 'k',
    `SELECT DISTINCT c.${q('component')} AS ${q('component')}`,
    `FROM ${R(q, 'components')} AS c`,
    `JOIN ${R(q, 't')} AS t ON c.${q('node')} = t.${q('node')}`),
));

sqlCase('subNodesSql', (d) => subNodesSql(d, rel('components'), rel('t'), rel('k'), rel('sn')), quoted((q) =>
  ctas(q, 'sn',
    `SELECT c.${q('node')} AS ${q('node')}`,
    `FROM ${R(q, 'components')} AS c`,
    `JOIN ${R(q, 'k')} AS k ON c.${q('component')} = k.${q('component')}`,
    'UNION ALL',
    `SELECT t.${q('node')} AS ${q('node')}`,
    `FROM ${R(q, 't')} AS t`,
    `WHERE NOT EXISTS (SELECT 1 FROM ${R(q, 'components')} AS c WHERE c.${q('node')} = t.${q('node')})`),
));

sqlCase('subEdgesSql', (d) => subEdgesSql(d, rel('edges'), rel('sn'), rel('new_edges'), rel('se')), quoted((q) =>
  ctas(q, 'se',
    `SELECT e.${q('src')} AS ${q('src')}, e.${q('dst')} AS ${q('dst')}`,
    `FROM ${R(q, 'edges')} AS e`,
    `JOIN ${R(q, 'sn')} AS s ON e.${q('src')} = s.${q('node')}`,
    'UNION ALL',
    `SELECT ${q('src')}, ${q('dst')} FROM ${R(q, 'new_edges')}`),
));

const deleteExists = (q: Q) =>
  `DELETE FROM ${R(q, 'components')} AS tgt WHERE EXISTS (SELECT 1 FROM ${R(q, 'rc')} AS src WHERE tgt.${q('node')} = src.${q('node')})`;
const insertBack = (q: Q) => `INSERT INTO ${R(q, 'components')} (${q('node')}, ${q('component')}) SELECT ${q('node')}, ${q('component')} FROM ${R(q, 'rc')}`;
const dq: Q = (s) => `"${s}"`;
const bq: Q = (s) => `\`${s}\``;

sqlCase('mergeBackSql', (d) => mergeBackSql(d, rel('components'), rel('rc')), {
  duckdb: ['BEGIN TRANSACTION', deleteExists(dq), insertBack(dq), 'COMMIT'],
  // One script: BigQuery has no transaction spanning separate jobs.
  bigquery: [`BEGIN TRANSACTION;\n${deleteExists(bq)};\n${insertBack(bq)};\nCOMMIT TRANSACTION;`],
  snowflake: ['BEGIN TRANSACTION', `DELETE FROM ${R(sfq, 'components')} AS tgt USING ${R(sfq, 'rc')} AS src WHERE tgt."NODE" = src."NODE"`, insertBack(sfq), 'COMMIT'],
});

describe('componentsPlan', () => {
  const spec = { nodes: rel('nodes'), edges: rel('edges'), output: rel('identity_components'), scratchSchema: 'scratch', database: 'analytics' };
  for (const d of DIALECTS) {
    it(`${d.name}: shows every step with the run's scratch names`, () => {
      const plan = componentsPlan(d, spec);
      const s = (name: string): Relation => rel(`__cdp_cc_identity_components_${name}`);
      for (const sql of [
        hookSql(d, spec.edges, s('h1')),
        settleSql(d, s('h1'), s('p1_0')),
        unsettledCountSql(d, s('p1_0')),
        jumpSql(d, [s('p1_0')], s('p1_0'), s('p1_1')),
        contractSql(d, spec.edges, { pieces: [s('p1_0'), s('p1_1')] }, s('e1')),
        countSql(d, s('e1')),
        finalizeSql(d, spec.nodes, spec.output, { pieces: [s('p1_0'), s('p1_1')] }, { table: s('l2') }),
      ]) {
        expect(plan).toContain(`${sql};`);
      }
      expect(plan).toContain('64 rounds');
      expect(plan).not.toMatch(/undefined|NaN/);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Execution on DuckDB

const dialect = new DuckDbDialect();
let warehouse: DuckDbWarehouse;
let session: Session;
const MAIN = 'main';
const local = (name: string): Relation => ({ schema: MAIN, name });

beforeAll(async () => {
  warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'test', path: ':memory:', schema: MAIN, threads: 2, settings: { threads: '2' } });
  session = await warehouse.session();
});

afterAll(async () => {
  await session?.close();
  await warehouse?.close();
});

type Edge = readonly [number | null, number | null];

async function load(table: string, columns: string[], rows: (number | null)[][]): Promise<void> {
  await session.execute(`CREATE OR REPLACE TABLE ${table} (${columns.map((c) => `${c} BIGINT`).join(', ')})`);
  for (let i = 0; i < rows.length; i += 1000) {
    const values = rows.slice(i, i + 1000).map((r) => `(${r.map((v) => (v === null ? 'NULL' : String(v))).join(', ')})`);
    await session.execute(`INSERT INTO ${table} VALUES ${values.join(', ')}`);
  }
}

async function loadGraph(prefix: string, nodes: number[], edges: Edge[]): Promise<{ nodes: Relation; edges: Relation }> {
  await load(`${prefix}_nodes`, ['node'], nodes.map((n) => [n]));
  await load(`${prefix}_edges`, ['src', 'dst'], edges.map(([a, b]) => [a, b]));
  return { nodes: local(`${prefix}_nodes`), edges: local(`${prefix}_edges`) };
}

async function readComponents(table: string): Promise<Map<number, number>> {
  const rows = await session.query(`SELECT node, component FROM ${table} ORDER BY node`);
  return new Map(rows.map((r) => [Number(r['node']), Number(r['component'])]));
}

async function scratchLeft(): Promise<string[]> {
  const rows = await session.query("SELECT table_name FROM information_schema.tables WHERE starts_with(table_name, '__cdp_')");
  return rows.map((r) => String(r['table_name']));
}

/** Components of a graph, via computeComponents; checks the output has one row per node. */
async function components(prefix: string, nodes: number[], edges: Edge[], options: { maxRounds?: number } = {}): Promise<{ labels: Map<number, number>; stats: ComponentsStats }> {
  const graph = await loadGraph(prefix, nodes, edges);
  const stats = await computeComponents(session, dialect, { ...graph, output: local(`${prefix}_out`), scratchSchema: MAIN, ...options });
  const labels = await readComponents(`${prefix}_out`);
  expect(labels.size).toBe(nodes.length);
  expect(await scratchLeft()).toEqual([]);
  return { labels, stats };
}

/** The oracle: union-find over dense ids 0..n-1. */
function oracle(n: number, edges: Edge[]): Map<number, number> {
  const labels = unionFindLabels(n, edges.filter((e): e is [number, number] => e[0] !== null && e[1] !== null));
  return new Map(Array.from(labels, (label, node) => [node, label]));
}

/** The generator's seeded PRNG, as a plain function. */
function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

function shuffled(n: number, rand: () => number): number[] {
  const ids = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  return ids;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('computeComponents on DuckDB: hand graphs', () => {
  it('no edges: every node is its own component', async () => {
    const { labels, stats } = await components('empty', [3, 1, 2], []);
    expect([...labels]).toEqual([[1, 1], [2, 2], [3, 3]]);
    expect(stats.rounds).toBe(1);
    expect(stats.edgesPerRound).toEqual([0]);
  });

  it('self-loops, duplicates, both orientations, NULL ends and isolated nodes', async () => {
    const edges: Edge[] = [
      [5, 5], // self-loop only: 5 stays alone
      [2, 1], [1, 2], [1, 2], [2, 3], [3, 3], // 1-2-3, duplicated and reversed
      [7, 9], [9, 8], [8, 7], // triangle 7-8-9
      [10, null], [null, 11], [null, null], // ignored
    ];
    const { labels } = await components('hand', range(12), edges);
    expect([...labels]).toEqual([
      [0, 0], [1, 1], [2, 1], [3, 1], [4, 4], [5, 5], [6, 6], [7, 7], [8, 7], [9, 7], [10, 10], [11, 11],
    ]);
  });

  it('keeps BIGINT ids beyond 2^32 and labels with the smallest id', async () => {
    const big = 9_000_000_000_000;
    const { labels } = await components('big', [big, big + 1, big + 2, 4], [[big + 2, big + 1], [big + 1, big], [4, big + 2]]);
    expect(new Set(labels.values())).toEqual(new Set([4]));
  });

  it('a star whose centre is the largest id needs a second round', async () => {
    const n = 200;
    const edges: Edge[] = range(n - 1).map((i) => [n - 1, i]);
    const { labels, stats } = await components('star_max', range(n), edges);
    expect(new Set(labels.values())).toEqual(new Set([0]));
    expect(stats.rounds).toBe(2);
  });

  it('a star centred on the smallest id takes one round and no jump', async () => {
    const { labels, stats } = await components('star_min', range(300), range(299).map((i): Edge => [0, i + 1]));
    expect(new Set(labels.values())).toEqual(new Set([0]));
    expect(stats).toMatchObject({ rounds: 1, jumps: 0 });
  });

  it('throws cc-not-converged when the round cap is hit, and drops its scratch tables', async () => {
    const n = 50;
    await expect(components('capped', range(n), range(n - 1).map((i): Edge => [n - 1, i]), { maxRounds: 1 })).rejects.toMatchObject({
      code: 'cc-not-converged',
    });
    expect(await scratchLeft()).toEqual([]);
  });
});

describe('computeComponents on DuckDB: random graphs vs union-find', () => {
  const cases = [
    { n: 500, m: 250, seed: 1 },
    { n: 500, m: 500, seed: 2 }, // around the giant-component threshold: long paths
    { n: 1000, m: 700, seed: 3 },
    { n: 300, m: 1500, seed: 4 }, // dense
    { n: 2000, m: 1200, seed: 5 },
  ];
  for (const { n, m, seed } of cases) {
    it(`n=${n} m=${m} seed=${seed} (with duplicates and self-loops)`, async () => {
      const rand = prng(seed);
      const edges: Edge[] = [];
      for (let i = 0; i < m; i++) {
        const a = Math.floor(rand() * n);
        const b = rand() < 0.02 ? a : Math.floor(rand() * n);
        edges.push(rand() < 0.5 ? [a, b] : [b, a]);
        if (rand() < 0.1) edges.push([b, a]);
      }
      const { labels, stats } = await components(`rnd${seed}`, range(n), edges);
      expect(labels).toEqual(oracle(n, edges));
      expect(stats.rounds).toBeLessThanOrEqual(2 * Math.log2(n));
    });
  }
});

describe('computeComponents on DuckDB: rounds grow with log(n), not with the diameter', () => {
  const n = 2000;

  it('a path of 2,000 randomly numbered nodes (diameter 1,999)', async () => {
    const ids = shuffled(n, prng(42));
    const edges: Edge[] = range(n - 1).map((i) => [ids[i]!, ids[i + 1]!]);
    const { labels, stats } = await components('path', range(n), edges);
    expect(new Set(labels.values())).toEqual(new Set([0]));
    expect(stats.rounds).toBeLessThanOrEqual(24); // 2·log2(2000) ≈ 22
    expect(stats.jumps).toBeLessThanOrEqual(24 * 12);
  });

  it('a path numbered in order: one round, ~log2(n) jumps', async () => {
    const { labels, stats } = await components('sorted_path', range(n), range(n - 1).map((i): Edge => [i, i + 1]));
    expect(new Set(labels.values())).toEqual(new Set([0]));
    expect(stats.rounds).toBe(1);
    expect(stats.jumps).toBeLessThanOrEqual(Math.ceil(Math.log2(n)) + 1);
  });

  it('a complete binary tree of 2,047 randomly numbered nodes, plus a second tree', async () => {
    const size = 2047;
    const ids = shuffled(2 * size, prng(7));
    const edges: Edge[] = [];
    for (const offset of [0, size]) for (let i = 1; i < size; i++) edges.push([ids[offset + i]!, ids[offset + Math.floor((i - 1) / 2)]!]);
    const { labels, stats } = await components('btree', range(2 * size), edges);
    expect(labels).toEqual(oracle(2 * size, edges));
    expect(new Set(labels.values()).size).toBe(2);
    expect(stats.rounds).toBeLessThanOrEqual(24);
  });

  it('naive min-label propagation needs ~diameter rounds where computeComponents needs a few', async () => {
    const len = 200;
    const ids = shuffled(len, prng(9));
    const edges: Edge[] = range(len - 1).map((i) => [ids[i]!, ids[i + 1]!]);
    const { stats } = await components('contrast', range(len), edges);
    const naive = await naiveMinLabel(session, dialect, { nodes: local('contrast_nodes'), edges: local('contrast_edges'), output: local('contrast_naive'), scratchSchema: MAIN });
    expect(await readComponents('contrast_naive')).toEqual(oracle(len, edges));
    // The smallest id sits somewhere on the path; its label must walk to the farther end.
    const at = ids.indexOf(0);
    expect(naive.rounds).toBe(Math.max(at, len - 1 - at) + 1);
    expect(naive.rounds).toBeGreaterThanOrEqual(len / 2);
    expect(stats.rounds).toBeLessThanOrEqual(16);
  });
});

describe('recomputeTouched on DuckDB', () => {
  async function scenario(prefix: string, seed: number, newEdgesInEdges: boolean) {
    const rand = prng(seed);
    const nOld = 600;
    const n = 650;
    const oldEdges: Edge[] = range(450).map(() => [Math.floor(rand() * nOld), Math.floor(rand() * nOld)]);
    // New edges: inside old components, between them, and to new nodes; 645..649 stay isolated.
    const newEdges: Edge[] = range(40).map((i) => [Math.floor(rand() * (i < 30 ? nOld : 645)), Math.floor(rand() * 645)]);
    await computeComponents(session, dialect, { ...(await loadGraph(`${prefix}_old`, range(nOld), oldEdges)), output: local(`${prefix}_cc`), scratchSchema: MAIN });
    await load(`${prefix}_new_edges`, ['src', 'dst'], newEdges.map(([a, b]) => [a, b]));
    await load(`${prefix}_new_nodes`, ['node'], range(n - nOld).map((i) => [nOld + i]));
    if (newEdgesInEdges) await session.execute(`INSERT INTO ${prefix}_old_edges SELECT * FROM ${prefix}_new_edges`);
    const stats = await recomputeTouched(session, dialect, {
      components: local(`${prefix}_cc`),
      edges: local(`${prefix}_old_edges`),
      newEdges: local(`${prefix}_new_edges`),
      newNodes: local(`${prefix}_new_nodes`),
      scratchSchema: MAIN,
    });
    expect(await readComponents(`${prefix}_cc`)).toEqual(oracle(n, [...oldEdges, ...newEdges]));
    expect(await scratchLeft()).toEqual([]);
    expect(stats.touchedComponents).toBeGreaterThan(0);
    expect(stats.subNodes).toBeLessThan(n);
  }

  it('equals a full recomputation (new edges given separately)', () => scenario('inc1', 11, false));
  it('equals a full recomputation (new edges already in the edge table)', () => scenario('inc2', 12, true));
});

// ---------------------------------------------------------------------------------------------
// Union-find itself

describe('UnionFind', () => {
  it('unions, counts and labels with the smallest member', () => {
    const uf = new UnionFind(8);
    expect(uf.union(5, 3)).toBe(true);
    expect(uf.union(3, 5)).toBe(false);
    uf.union(7, 6);
    uf.union(6, 3);
    expect(uf.count).toBe(5);
    expect(uf.find(7)).toBe(uf.find(5));
    expect(Array.from(uf.minLabels())).toEqual([0, 1, 2, 3, 4, 3, 3, 3]);
  });

  it('matches a naive flood fill on random graphs', () => {
    const rand = prng(99);
    const n = 3000;
    const edges = range(2500).map((): [number, number] => [Math.floor(rand() * n), Math.floor(rand() * n)]);
    const adjacency = Array.from({ length: n }, () => [] as number[]);
    for (const [a, b] of edges) adjacency[a]!.push(b), adjacency[b]!.push(a);
    const expected = new Int32Array(n).fill(-1);
    for (let s = 0; s < n; s++) {
      if (expected[s] !== -1) continue;
      const stack = [s];
      expected[s] = s;
      while (stack.length) for (const v of adjacency[stack.pop()!]!) if (expected[v] === -1) (expected[v] = s), stack.push(v);
    }
    expect(unionFindLabels(n, edges)).toEqual(expected);
  });

  it('rejects sizes an Int32Array cannot index', () => {
    expect(() => new UnionFind(-1)).toThrow(RangeError);
    expect(() => new UnionFind(2 ** 31)).toThrow(RangeError);
  });
});
