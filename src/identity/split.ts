import type { Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { GraphSteps } from './build-graph.js';
import type { GraphRelations } from './graph-sql.js';
import { normalizeSql } from './normalize.js';
import type { IdentifierRef, IdentityRules } from './rules.js';

/**
 * `never_join: [x, y]` split rules. When x and y ended up in one component, the component is
 * divided by distance: a breadth-first search grows from both at once, each identifier goes to
 * the nearer one (x on a tie, as listed first), and the links between the two parts are cut.
 * A shared phone between two people thus stays with one of them instead of gluing both.
 * Rounds grow with the component's diameter, but only components named in a rule are visited.
 */

/** The node id of an identifier named in a split rule, normalised as its type says. */
export function nodeOf(d: Dialect, r: GraphRelations, rules: IdentityRules, ref: IdentifierRef): string {
  const type = rules.types.find((t) => t.name === ref.type)!;
  return `(SELECT node FROM ${d.quoteRelation(r.nodes)} WHERE identifier_type = ${d.stringLiteral(ref.type)} AND identifier_value = ${normalizeSql(d, type.normalizer, d.stringLiteral(ref.value))})`;
}

export function sameComponentSql(d: Dialect, r: GraphRelations, left: string, right: string): string {
  const c = d.quoteRelation(r.components);
  return `SELECT COUNT(*) AS ${d.quoteIdentifier('n')} FROM ${c} AS a JOIN ${c} AS b ON a.component = b.component WHERE a.node = ${left} AND b.node = ${right}`;
}

export function seedLabelsSql(left: string, right: string): string {
  return `SELECT ${left} AS node, 0 AS label UNION ALL SELECT ${right}, 1`;
}

/** One BFS step: unlabelled neighbours of labelled nodes take the smallest neighbouring label. */
export function growLabelsSql(d: Dialect, r: GraphRelations, labels: Relation): string {
  const l = d.quoteRelation(r.links);
  const lab = d.quoteRelation(labels);
  return `INSERT INTO ${lab} (node, label)
SELECT x.node, MIN(x.label) FROM (
  SELECT k.dst AS node, s.label FROM ${l} AS k JOIN ${lab} AS s ON s.node = k.src
  UNION ALL
  SELECT k.src AS node, s.label FROM ${l} AS k JOIN ${lab} AS s ON s.node = k.dst
) AS x
WHERE x.node NOT IN (SELECT node FROM ${lab})
GROUP BY x.node`;
}

export function cutBetweenLabelsSql(d: Dialect, r: GraphRelations, labels: Relation): string {
  const l = d.quoteRelation(r.links);
  const lab = d.quoteRelation(labels);
  return `DELETE FROM ${l} AS tgt
WHERE EXISTS (
  SELECT 1 FROM ${lab} AS a JOIN ${lab} AS b ON a.label <> b.label
  WHERE a.node = tgt.src AND b.node = tgt.dst
)`;
}

export async function applyNeverJoin(steps: GraphSteps, rules: IdentityRules): Promise<number> {
  const { d, r } = steps;
  const labels = steps.scratch('split_labels');
  const affected = steps.scratch('split_component');
  const count = async (sql: string) => Number((await steps.session.query(sql))[0]?.['n'] ?? 0);
  let applied = 0;
  for (const rule of rules.splits) {
    if (rule.kind !== 'never_join') continue;
    const left = nodeOf(d, r, rules, rule.identifiers[0]);
    const right = nodeOf(d, r, rules, rule.identifiers[1]);
    if ((await count(sameComponentSql(d, r, left, right))) === 0) continue;
    await steps.create(affected, `SELECT component FROM ${d.quoteRelation(r.components)} WHERE node = ${left}`);
    await steps.create(labels, seedLabelsSql(left, right));
    for (let size = 2, previous = 0; size !== previous; ) {
      await steps.run(growLabelsSql(d, r, labels));
      previous = size;
      size = await steps.count(labels);
    }
    await steps.run(cutBetweenLabelsSql(d, r, labels));
    await steps.recomputeComponents(affected);
    applied++;
  }
  return applied;
}
