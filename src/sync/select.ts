import type { Dag } from '../compile/graph.js';
import { selectNodes } from '../compile/selector.js';
import type { Contract } from './contract.js';

/**
 * Which contracts `--select` / `--exclude` pick. A word that names a destination picks it
 * (also as `destination:<name>`); every other word is a node selector. Destinations are DAG
 * nodes, so a selector that reaches destination nodes (`+high_value_outbox`, `path:destinations`,
 * `audience_high_value+`) picks exactly those; one that reaches none picks the destinations whose
 * model it selects (`--select audience_high_value`, `tag:marts`).
 */
export function selectContracts(contracts: Contract[], dag: Dag, projectName: string, select?: string[], exclude?: string[]): Contract[] {
  const pick = (list: string[] | undefined): Set<string> | undefined => {
    const words = (list ?? []).flatMap((s) => s.split(/\s+/)).filter((w) => w.length > 0);
    if (words.length === 0) return undefined;
    const names = new Set(contracts.map((c) => c.name));
    const picked = new Set<string>();
    const rest: string[] = [];
    for (const word of words) {
      const bare = word.startsWith('destination:') ? word.slice('destination:'.length) : word;
      if (names.has(bare)) picked.add(bare);
      else rest.push(word);
    }
    if (rest.length > 0) {
      const nodes = selectNodes(dag, { select: rest });
      const destinationNode = (c: Contract) => `destination.${projectName}.${c.name}`;
      const direct = contracts.filter((c) => nodes.has(destinationNode(c)));
      const viaModel = contracts.filter((c) => nodes.has(`model.${projectName}.${c.model}`) || nodes.has(`seed.${projectName}.${c.model}`));
      for (const c of direct.length > 0 ? direct : viaModel) picked.add(c.name);
    }
    return picked;
  };
  const chosen = pick(select);
  const dropped = pick(exclude) ?? new Set<string>();
  return contracts.filter((c) => (chosen ? chosen.has(c.name) : true) && !dropped.has(c.name));
}
