import { CompileError } from '../errors.js';
import type { ManifestNode } from './node.js';

/**
 * The project DAG. Edges point from a node to the nodes it depends on. Built once per
 * invocation; every query (topological order, ancestors, descendants) is O(V+E).
 */
export class Dag {
  readonly nodes: ReadonlyMap<string, ManifestNode>;
  private readonly parentMap = new Map<string, string[]>();
  private readonly childMap = new Map<string, string[]>();

  constructor(nodes: Iterable<ManifestNode>) {
    const map = new Map<string, ManifestNode>();
    for (const node of nodes) map.set(node.uniqueId, node);
    this.nodes = map;
    for (const id of map.keys()) {
      this.parentMap.set(id, []);
      this.childMap.set(id, []);
    }
    for (const node of map.values()) {
      for (const parent of node.dependsOn) {
        if (!map.has(parent)) continue;
        this.parentMap.get(node.uniqueId)!.push(parent);
        this.childMap.get(parent)!.push(node.uniqueId);
      }
    }
  }

  get(id: string): ManifestNode {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`unknown node ${id}`);
    return node;
  }

  parents(id: string): readonly string[] {
    return this.parentMap.get(id) ?? [];
  }

  children(id: string): readonly string[] {
    return this.childMap.get(id) ?? [];
  }

  /** Ancestors up to `depth` hops (Infinity = all), excluding the start nodes unless reached again. */
  ancestors(ids: Iterable<string>, depth = Infinity): Set<string> {
    return this.walk(ids, depth, (id) => this.parents(id));
  }

  descendants(ids: Iterable<string>, depth = Infinity): Set<string> {
    return this.walk(ids, depth, (id) => this.children(id));
  }

  /** Kahn's algorithm; on a cycle, throws with the full cycle path. Ties keep insertion order. */
  topologicalOrder(): string[] {
    const indegree = new Map<string, number>();
    for (const id of this.nodes.keys()) indegree.set(id, this.parents(id).length);
    const ready = [...this.nodes.keys()].filter((id) => indegree.get(id) === 0);
    const order: string[] = [];
    for (let i = 0; i < ready.length; i++) {
      const id = ready[i]!;
      order.push(id);
      for (const child of this.children(id)) {
        const left = indegree.get(child)! - 1;
        indegree.set(child, left);
        if (left === 0) ready.push(child);
      }
    }
    if (order.length < this.nodes.size) {
      const cycle = this.findCycle(new Set([...this.nodes.keys()].filter((id) => indegree.get(id)! > 0)));
      const first = this.get(cycle[0]!);
      throw new CompileError('dependency-cycle', `Found a cycle: ${cycle.map((id) => this.get(id).name).join(' --> ')} (each node refs the next)`, {
        at: { file: first.path },
        hint: `Break the cycle by removing one of these refs. Files: ${[...new Set(cycle.map((id) => this.get(id).path))].join(', ')}`,
      });
    }
    return order;
  }

  private walk(starts: Iterable<string>, depth: number, next: (id: string) => readonly string[]): Set<string> {
    const seen = new Set<string>();
    let frontier = [...starts];
    for (let hop = 0; hop < depth && frontier.length > 0; hop++) {
      const upcoming: string[] = [];
      for (const id of frontier) {
        for (const n of next(id)) {
          if (!seen.has(n)) {
            seen.add(n);
            upcoming.push(n);
          }
        }
      }
      frontier = upcoming;
    }
    return seen;
  }

  /** A DFS restricted to nodes left over by Kahn's algorithm; every such node lies on or leads into a cycle. */
  private findCycle(candidates: Set<string>): string[] {
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (id: string): string[] | undefined => {
      state.set(id, 'open');
      stack.push(id);
      for (const parent of this.parents(id)) {
        if (!candidates.has(parent)) continue;
        if (state.get(parent) === 'open') {
          const cycle = stack.slice(stack.indexOf(parent));
          return [...cycle, cycle[0]!];
        }
        if (!state.has(parent)) {
          const found = visit(parent);
          if (found) return found;
        }
      }
      stack.pop();
      state.set(id, 'done');
      return undefined;
    };
    for (const id of candidates) {
      if (!state.has(id)) {
        const found = visit(id);
        if (found) return found;
      }
    }
    return [...candidates];
  }
}
