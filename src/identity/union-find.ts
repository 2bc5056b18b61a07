/**
 * In-memory union-find (disjoint sets) over dense integer ids 0..n-1: path halving + union by
 * size, near-constant amortized time per operation. The baseline of the identity benchmark and
 * the oracle of the connected-components tests; production components are computed in SQL
 * (connected-components.ts), where the data is.
 */
export class UnionFind {
  private readonly parent: Int32Array;
  private readonly size: Int32Array;
  private sets: number;

  constructor(readonly n: number) {
    if (!Number.isInteger(n) || n < 0 || n > 0x7fffffff) throw new RangeError(`UnionFind: n must be an integer in [0, 2^31), not ${n}`);
    this.parent = new Int32Array(n);
    this.size = new Int32Array(n).fill(1);
    for (let i = 0; i < n; i++) this.parent[i] = i;
    this.sets = n;
  }

  /** The representative of `x`'s set (not necessarily its smallest member). */
  find(x: number): number {
    const parent = this.parent;
    let p = parent[x]!;
    while (p !== x) {
      const grand = parent[p]!;
      parent[x] = grand; // path halving: every other node on the path skips a level
      x = grand;
      p = parent[x]!;
    }
    return x;
  }

  /** Joins the sets of `a` and `b`; false when they were already one. */
  union(a: number, b: number): boolean {
    let ra = this.find(a);
    let rb = this.find(b);
    if (ra === rb) return false;
    if (this.size[ra]! < this.size[rb]!) [ra, rb] = [rb, ra];
    this.parent[rb] = ra;
    this.size[ra]! += this.size[rb]!;
    this.sets--;
    return true;
  }

  /** Number of disjoint sets (components, isolated ids included). */
  get count(): number {
    return this.sets;
  }

  /** For every id, the smallest id of its set: the labels `computeComponents` produces. */
  minLabels(): Int32Array {
    const n = this.n;
    const min = new Int32Array(n).fill(-1);
    const labels = new Int32Array(n);
    // Ascending ids: the first id seen for a representative is its set's smallest.
    for (let i = 0; i < n; i++) {
      const r = this.find(i);
      if (min[r] === -1) min[r] = i;
      labels[i] = min[r]!;
    }
    return labels;
  }
}

/** Components of an edge list over ids 0..n-1, as smallest-member labels. */
export function unionFindLabels(n: number, edges: Iterable<readonly [number, number]>): Int32Array {
  const uf = new UnionFind(n);
  for (const [a, b] of edges) uf.union(a, b);
  return uf.minLabels();
}
