import { describe, expect, it } from 'vitest';
import { Dag } from '../../src/compile/graph.js';
import type { ManifestNode, Materialization, ModelNode } from '../../src/compile/node.js';
import { executeGraph, type ExecuteOptions } from '../../src/run/executor.js';
import type { NodeResult, RunStatus } from '../../src/run/result.js';

/*
 * executeGraph on hand-built DAGs with fake runNode functions. Nodes are named by letters;
 * `edges` maps a node to the nodes it depends on.
 */

function model(name: string, dependsOn: string[], materialized: Materialization = 'table'): ModelNode {
  return {
    resourceType: 'model',
    uniqueId: name,
    name,
    path: `models/${name}.sql`,
    fqn: ['p', name],
    tags: [],
    description: '',
    dependsOn,
    checksum: name,
    relation: { schema: 'main', name },
    config: { materialized, uniqueKey: [], incrementalStrategy: 'merge', tags: [] },
    rawSql: 'select 1',
    columns: [],
  };
}

function dag(edges: Record<string, string[]>, ephemeral: string[] = []): Dag {
  return new Dag(Object.entries(edges).map(([name, deps]) => model(name, deps, ephemeral.includes(name) ? 'ephemeral' : 'table')));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Recorder {
  events: string[];
  maxInFlight: number;
  workers: Map<string, number>;
  options: ExecuteOptions;
  calls: string[];
}

/** A fake runner: each node sleeps `delay(name)` ms and ends with `status(name)`. */
function recorder(opts: {
  threads: number;
  failFast?: boolean;
  delay?: (name: string) => number;
  status?: (name: string) => RunStatus;
  transparent?: (node: ManifestNode) => boolean;
}): Recorder {
  const rec: Recorder = { events: [], maxInFlight: 0, workers: new Map(), calls: [], options: undefined as unknown as ExecuteOptions };
  let inFlight = 0;
  const result = (node: ManifestNode, status: RunStatus, message: string = status): NodeResult => ({
    unique_id: node.uniqueId,
    status,
    timing: [],
    thread_id: 'x',
    execution_time: 0,
    message,
  });
  rec.options = {
    threads: opts.threads,
    failFast: opts.failFast ?? false,
    transparent: opts.transparent,
    runNode: async (node, worker) => {
      rec.calls.push(node.name);
      rec.workers.set(node.name, worker);
      rec.events.push(`start:${node.name}`);
      inFlight++;
      rec.maxInFlight = Math.max(rec.maxInFlight, inFlight);
      await sleep(opts.delay?.(node.name) ?? 5);
      inFlight--;
      rec.events.push(`end:${node.name}`);
      return result(node, opts.status?.(node.name) ?? 'success');
    },
    skipped: (node, reason) => {
      rec.events.push(`skip:${node.name}`);
      return result(node, 'skipped', reason);
    },
  };
  return rec;
}

function statusMap(results: NodeResult[]): Record<string, string> {
  return Object.fromEntries(results.map((r) => [r.unique_id, r.status]));
}

/** Every node started only after all of `parents` ended. */
function expectOrder(events: string[], edges: Record<string, string[]>): void {
  for (const [child, parents] of Object.entries(edges)) {
    const start = events.indexOf(`start:${child}`);
    if (start < 0) continue;
    for (const parent of parents) {
      const end = events.indexOf(`end:${parent}`);
      expect(end, `${parent} must end before ${child} starts`).toBeGreaterThanOrEqual(0);
      expect(end, `${parent} must end before ${child} starts`).toBeLessThan(start);
    }
  }
}

const all = (d: Dag) => new Set(d.nodes.keys());

// ---------------------------------------------------------------------------------------

describe('executeGraph ordering', () => {
  //   a ─┬─> c ─┬─> f ─> h
  //   b ─┘      │
  //   d ─> e ───┘
  //   g (independent, slow)
  const EDGES: Record<string, string[]> = { a: [], b: [], c: ['a', 'b'], d: [], e: ['d'], f: ['c', 'e'], g: [], h: ['f'] };

  for (const threads of [1, 2, 3, 8]) {
    it(`never starts a node before its parents finish (threads=${threads})`, async () => {
      const d = dag(EDGES);
      // Uneven delays so completion order differs from start order.
      const delays: Record<string, number> = { a: 15, b: 2, c: 4, d: 1, e: 12, f: 3, g: 25, h: 1 };
      const rec = recorder({ threads, delay: (n) => delays[n]! });
      const results = await executeGraph(d, all(d), rec.options);
      expect(results.every((r) => r.status === 'success')).toBe(true);
      expectOrder(rec.events, EDGES);
      expect(rec.calls.sort()).toEqual(Object.keys(EDGES).sort());
      expect(rec.maxInFlight).toBeLessThanOrEqual(threads);
      for (const worker of rec.workers.values()) expect(worker).toBeLessThan(threads);
    });
  }

  it('returns one result per selected node, in topological order', async () => {
    const d = dag({ z: ['y'], y: ['x'], x: [] });
    const rec = recorder({ threads: 3 });
    const results = await executeGraph(d, all(d), rec.options);
    expect(results.map((r) => r.unique_id)).toEqual(['x', 'y', 'z']);
  });

  it('calls onResult exactly once per node, as each finishes', async () => {
    const d = dag({ a: [], b: ['a'], c: [] });
    const rec = recorder({ threads: 2, delay: (n) => (n === 'c' ? 20 : 1) });
    const seen: string[] = [];
    await executeGraph(d, all(d), { ...rec.options, onResult: (r, node) => seen.push(`${node.name}:${r.status}`) });
    expect(seen).toEqual(['a:success', 'b:success', 'c:success']);
  });

  it('ignores unselected nodes that are not transparent: their children do not wait', async () => {
    const d = dag({ a: [], b: ['a'] });
    const rec = recorder({ threads: 2 });
    const results = await executeGraph(d, new Set(['b']), rec.options);
    expect(statusMap(results)).toEqual({ b: 'success' });
    expect(rec.calls).toEqual(['b']);
  });

  it('handles an empty selection', async () => {
    const d = dag({ a: [] });
    const rec = recorder({ threads: 4 });
    expect(await executeGraph(d, new Set(), rec.options)).toEqual([]);
  });

  it('treats threads < 1 as one worker', async () => {
    const d = dag({ a: [], b: [], c: ['a'] });
    const rec = recorder({ threads: 0 });
    const results = await executeGraph(d, all(d), rec.options);
    expect(results.map((r) => r.status)).toEqual(['success', 'success', 'success']);
    expect(rec.maxInFlight).toBe(1);
  });
});

describe('executeGraph concurrency', () => {
  it('reaches N concurrent nodes when N are ready, and never more', async () => {
    const edges: Record<string, string[]> = {};
    for (let i = 0; i < 10; i++) edges[`n${i}`] = [];
    const d = dag(edges);
    const rec = recorder({ threads: 4, delay: () => 15 });
    await executeGraph(d, all(d), rec.options);
    expect(rec.maxInFlight).toBe(4);
    expect(new Set(rec.workers.values())).toEqual(new Set([0, 1, 2, 3]));
  });

  it('runs the independent branches of a DAG in parallel', async () => {
    // Two chains of three 20 ms nodes: with 2 threads the whole run takes about 60 ms, not 120.
    const d = dag({ a1: [], a2: ['a1'], a3: ['a2'], b1: [], b2: ['b1'], b3: ['b2'] });
    const rec = recorder({ threads: 2, delay: () => 20 });
    await executeGraph(d, all(d), rec.options);
    expect(rec.maxInFlight).toBe(2);
    expectOrder(rec.events, { a2: ['a1'], a3: ['a2'], b2: ['b1'], b3: ['b2'] });
    // b1 started before a1 ended: the chains overlapped.
    expect(rec.events.indexOf('start:b1')).toBeLessThan(rec.events.indexOf('end:a1'));
  });

  it('starts a child as soon as its last parent finishes, while other work is still running', async () => {
    // slow runs 60 ms; a -> b -> c is 3 x 5 ms and must complete in the meantime on the other worker.
    const d = dag({ slow: [], a: [], b: ['a'], c: ['b'] });
    const rec = recorder({ threads: 2, delay: (n) => (n === 'slow' ? 60 : 5) });
    await executeGraph(d, all(d), rec.options);
    expect(rec.events.indexOf('end:c')).toBeLessThan(rec.events.indexOf('end:slow'));
  });
});

describe('executeGraph failures', () => {
  //   a ─> b ─> c ─> d
  //   a ─> e
  //   x ─> y   (independent)
  const EDGES: Record<string, string[]> = { a: [], b: ['a'], c: ['b'], d: ['c'], e: ['a'], x: [], y: ['x'] };

  for (const failing of ['error', 'fail'] as const) {
    it(`skips every descendant of a node with status ${failing}, transitively`, async () => {
      const d = dag(EDGES);
      const rec = recorder({ threads: 2, status: (n) => (n === 'a' ? failing : 'success') });
      const results = await executeGraph(d, all(d), rec.options);
      expect(statusMap(results)).toEqual({ a: failing, b: 'skipped', c: 'skipped', d: 'skipped', e: 'skipped', x: 'success', y: 'success' });
      expect(rec.calls.sort()).toEqual(['a', 'x', 'y']);
      const message = (id: string) => results.find((r) => r.unique_id === id)!.message;
      expect(message('b')).toContain('upstream a');
      expect(message('c')).toContain('upstream b');
      expect(message('e')).toContain('upstream a');
    });
  }

  it('a warn result does not block descendants', async () => {
    const d = dag({ a: [], b: ['a'] });
    const rec = recorder({ threads: 1, status: (n) => (n === 'a' ? 'warn' : 'success') });
    expect(statusMap(await executeGraph(d, all(d), rec.options))).toEqual({ a: 'warn', b: 'success' });
  });

  it('a node with one failed and one successful parent is skipped', async () => {
    const d = dag({ ok: [], bad: [], both: ['ok', 'bad'] });
    const rec = recorder({ threads: 2, status: (n) => (n === 'bad' ? 'error' : 'success') });
    const results = await executeGraph(d, all(d), rec.options);
    expect(statusMap(results)).toEqual({ ok: 'success', bad: 'error', both: 'skipped' });
    expect(rec.calls).not.toContain('both');
  });

  it('without failFast, independent work continues after a failure', async () => {
    const edges: Record<string, string[]> = { bad: [] };
    for (let i = 0; i < 5; i++) edges[`m${i}`] = [];
    const d = dag(edges);
    const rec = recorder({ threads: 1, status: (n) => (n === 'bad' ? 'error' : 'success') });
    const results = await executeGraph(d, all(d), rec.options);
    expect(results.filter((r) => r.status === 'success')).toHaveLength(5);
  });

  it('failFast (1 thread): nothing starts after the first failure; the rest is skipped', async () => {
    const d = dag({ a: [], bad: [], c: [], d: ['a'], e: [] });
    const rec = recorder({ threads: 1, failFast: true, status: (n) => (n === 'bad' ? 'error' : 'success') });
    const results = await executeGraph(d, all(d), rec.options);
    expect(statusMap(results)).toEqual({ a: 'success', bad: 'error', c: 'skipped', d: 'skipped', e: 'skipped' });
    expect(rec.calls).toEqual(['a', 'bad']);
    for (const id of ['c', 'd', 'e']) expect(results.find((r) => r.unique_id === id)!.message).toMatch(/fail-fast/);
  });

  it('failFast (several threads): in-flight nodes finish, queued ones are skipped', async () => {
    const edges: Record<string, string[]> = { bad: [], slow: [] };
    for (let i = 0; i < 6; i++) edges[`q${i}`] = [];
    const d = dag(edges);
    const rec = recorder({
      threads: 2,
      failFast: true,
      delay: (n) => (n === 'bad' ? 2 : n === 'slow' ? 30 : 5),
      status: (n) => (n === 'bad' ? 'error' : 'success'),
    });
    const results = await executeGraph(d, all(d), rec.options);
    const status = statusMap(results);
    expect(status['bad']).toBe('error');
    expect(status['slow']).toBe('success');
    // bad fails at ~2 ms; the second worker picks up at most one more queued node in that time.
    const started = rec.calls.filter((n) => n.startsWith('q'));
    expect(started.length).toBeLessThanOrEqual(1);
    for (let i = 0; i < 6; i++) {
      const id = `q${i}`;
      expect(status[id]).toBe(started.includes(id) ? 'success' : 'skipped');
    }
    expect(results).toHaveLength(8);
  });

  it('failFast also stops on a failing test (status fail)', async () => {
    const d = dag({ t: [], a: [], b: [] });
    const rec = recorder({ threads: 1, failFast: true, status: (n) => (n === 't' ? 'fail' : 'success') });
    expect(statusMap(await executeGraph(d, all(d), rec.options))).toEqual({ t: 'fail', a: 'skipped', b: 'skipped' });
  });

  it('failFast does not stop on warn', async () => {
    const d = dag({ w: [], a: [] });
    const rec = recorder({ threads: 1, failFast: true, status: (n) => (n === 'w' ? 'warn' : 'success') });
    expect(statusMap(await executeGraph(d, all(d), rec.options))).toEqual({ w: 'warn', a: 'success' });
  });
});

describe('executeGraph transparent nodes', () => {
  //   slow ─> eph1 (transparent) ─> eph2 (transparent) ─> final
  //   quick (independent)
  const EDGES: Record<string, string[]> = { slow: [], eph1: ['slow'], eph2: ['eph1'], final: ['eph2'], quick: [] };
  const isEphemeral = (node: ManifestNode) => node.resourceType === 'model' && node.config.materialized === 'ephemeral';

  it('a child of transparent nodes waits for their parents', async () => {
    const d = dag(EDGES, ['eph1', 'eph2']);
    const selected = new Set(['slow', 'final', 'quick']);
    const rec = recorder({ threads: 3, delay: (n) => (n === 'slow' ? 25 : 2), transparent: isEphemeral });
    const results = await executeGraph(d, selected, rec.options);
    expect(statusMap(results)).toEqual({ slow: 'success', final: 'success', quick: 'success' });
    expect(rec.calls).not.toContain('eph1');
    expect(rec.calls).not.toContain('eph2');
    expectOrder(rec.events, { final: ['slow'] });
  });

  it('without transparency the same child would not wait (control)', async () => {
    const d = dag(EDGES, ['eph1', 'eph2']);
    const rec = recorder({ threads: 3, delay: (n) => (n === 'slow' ? 25 : 2) });
    await executeGraph(d, new Set(['slow', 'final', 'quick']), rec.options);
    expect(rec.events.indexOf('start:final')).toBeLessThan(rec.events.indexOf('end:slow'));
  });

  it('a failure behind transparent nodes skips the child', async () => {
    const d = dag(EDGES, ['eph1', 'eph2']);
    const rec = recorder({ threads: 2, status: (n) => (n === 'slow' ? 'error' : 'success'), transparent: isEphemeral });
    const results = await executeGraph(d, new Set(['slow', 'final', 'quick']), rec.options);
    expect(statusMap(results)).toEqual({ slow: 'error', final: 'skipped', quick: 'success' });
    expect(results.find((r) => r.unique_id === 'final')!.message).toContain('upstream slow');
  });

  it('a transparent node with several parents passes all of them through, once each', async () => {
    //   p1 ─┐
    //   p2 ─┼─> eph ─┬─> c1
    //   p3 ─┘        └─> c2 <─ p1
    const d = dag({ p1: [], p2: [], p3: [], eph: ['p1', 'p2', 'p3'], c1: ['eph'], c2: ['eph', 'p1'] }, ['eph']);
    const delays: Record<string, number> = { p1: 5, p2: 20, p3: 10, c1: 1, c2: 1 };
    const rec = recorder({ threads: 4, delay: (n) => delays[n]!, transparent: isEphemeral });
    const selected = new Set(['p1', 'p2', 'p3', 'c1', 'c2']);
    const results = await executeGraph(d, selected, rec.options);
    expect(results.every((r) => r.status === 'success')).toBe(true);
    expect(results).toHaveLength(5);
    expectOrder(rec.events, { c1: ['p1', 'p2', 'p3'], c2: ['p1', 'p2', 'p3'] });
  });

  it('an unselected transparent node whose parents are unselected adds no dependency', async () => {
    const d = dag(EDGES, ['eph1', 'eph2']);
    const rec = recorder({ threads: 2, transparent: isEphemeral });
    const results = await executeGraph(d, new Set(['final']), rec.options);
    expect(statusMap(results)).toEqual({ final: 'success' });
  });
});
