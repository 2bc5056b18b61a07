import type { Dag } from '../compile/graph.js';
import type { ManifestNode } from '../compile/node.js';
import { blocksDescendants, type NodeResult } from './result.js';

/**
 * Runs the selected nodes in dependency order on `threads` workers. A node starts once every
 * selected parent has finished; if any of them failed or was skipped, it is skipped too. With
 * `failFast`, the first failure stops new work and the rest is reported as skipped.
 */

export interface ExecuteOptions {
  threads: number;
  failFast: boolean;
  runNode(node: ManifestNode, worker: number): Promise<NodeResult>;
  skipped(node: ManifestNode, reason: string): NodeResult;
  onResult?(result: NodeResult, node: ManifestNode): void;
  /** Nodes that are never executed but pass dependencies through (ephemeral models). */
  transparent?(node: ManifestNode): boolean;
  /** Scheduling-only dependencies that are not DAG edges (data tests gating downstream models). */
  extraParents?: ReadonlyMap<string, readonly string[]>;
}

/**
 * The dependencies that matter for scheduling: selected parents, looking through transparent
 * nodes, so a model that refs an ephemeral waits for what the ephemeral reads.
 */
function scheduledParents(dag: Dag, selected: ReadonlySet<string>, transparent: (node: ManifestNode) => boolean): Map<string, string[]> {
  const memo = new Map<string, string[]>();
  const through = (id: string): string[] => {
    let found = memo.get(id);
    if (found) return found;
    found = [];
    for (const parent of dag.parents(id)) {
      if (selected.has(parent)) found.push(parent);
      else if (transparent(dag.get(parent))) found.push(...through(parent));
    }
    found = [...new Set(found)];
    memo.set(id, found);
    return found;
  };
  return new Map([...selected].map((id) => [id, through(id)]));
}

export async function executeGraph(dag: Dag, selected: ReadonlySet<string>, options: ExecuteOptions): Promise<NodeResult[]> {
  const order = dag.topologicalOrder().filter((id) => selected.has(id));
  const parents = scheduledParents(dag, selected, options.transparent ?? (() => false));
  for (const [id, extra] of options.extraParents ?? []) parents.set(id, [...new Set([...parents.get(id)!, ...extra])]);
  const children = new Map<string, string[]>(order.map((id) => [id, []]));
  for (const [id, ps] of parents) for (const p of ps) children.get(p)!.push(id);
  const waitingOn = new Map<string, number>();
  for (const id of order) waitingOn.set(id, parents.get(id)!.length);
  const ready = order.filter((id) => waitingOn.get(id) === 0);
  const results = new Map<string, NodeResult>();
  const idle = new Set<() => void>();
  let stopped = false;

  const finish = (id: string, result: NodeResult) => {
    results.set(id, result);
    options.onResult?.(result, dag.get(id));
    if (options.failFast && (result.status === 'error' || result.status === 'fail')) stopped = true;
    for (const child of children.get(id)!) {
      const left = waitingOn.get(child)! - 1;
      waitingOn.set(child, left);
      if (left === 0) ready.push(child);
    }
    for (const resume of idle) resume();
    idle.clear();
  };

  const blockerOf = (id: string): string | undefined => parents.get(id)!.find((p) => blocksDescendants(results.get(p)!));

  let running = 0;
  const worker = async (index: number): Promise<void> => {
    while (results.size < order.length) {
      const id = ready.shift();
      if (id === undefined) {
        // Nothing ready and nothing running means nothing ever will be: a scheduling cycle.
        if (running === 0) throw new Error(`scheduler stalled with ${order.length - results.size} node(s) waiting: a dependency cycle among ${order.filter((n) => !results.has(n)).slice(0, 5).join(', ')}`);
        await new Promise<void>((resolve) => idle.add(resolve));
        continue;
      }
      const node = dag.get(id);
      const blocker = blockerOf(id);
      if (stopped) finish(id, options.skipped(node, 'skipped: --fail-fast stopped the run after a failure'));
      else if (blocker) finish(id, options.skipped(node, `skipped: upstream ${dag.get(blocker).name} did not succeed`));
      else {
        running++;
        let result: NodeResult;
        try {
          result = await options.runNode(node, index);
        } finally {
          running--;
        }
        finish(id, result);
      }
    }
    for (const resume of idle) resume();
  };

  await Promise.all(Array.from({ length: Math.max(1, options.threads) }, (_, i) => worker(i)));
  return order.map((id) => results.get(id)!);
}
