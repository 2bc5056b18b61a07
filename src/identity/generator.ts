import type { GeneratedModel } from '../compile/generated-model.js';
import type { Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import { componentsPlan } from './connected-components.js';
import { identityEdgesTemplate } from './edges-sql.js';
import {
  assignedSql,
  changesSql,
  commitStateSql,
  cutLinksSql,
  demotedNodesSql,
  graphOutputSql,
  limitViolationsSql,
  linksSql,
  nodesSql,
  profilesSql,
} from './graph-sql.js';
import { graphRelations, stateTablesSql, STATE_TABLES } from './build-graph.js';
import { identityProfilesTemplate } from './profiles-sql.js';
import type { IdentityRules } from './rules.js';

/**
 * identity.yml → the four DAG nodes the compiler adds (docs/identity.md). Each is an ordinary
 * model: `cdp compile` writes its SQL, `--select identity_graph+` selects it and what follows.
 */

export const IDENTITY_NODES = ['identity_edges', 'identity_graph', 'identity_merges', 'identity_profiles'] as const;
export type IdentityNodeName = (typeof IDENTITY_NODES)[number];


export function identityModels(d: Dialect, rules: IdentityRules, schemaRelation: (name: string) => Relation): GeneratedModel[] {
  const mergeLog = schemaRelation(STATE_TABLES.mergeLog);
  return [
    {
      name: 'identity_edges',
      materialized: 'identity_edges',
      template: identityEdgesTemplate(d, rules),
      extraRefs: [],
      description: 'Normalised, filtered, deduplicated identity edges, one row per identifier pair and source, with the guard status.',
    },
    {
      name: 'identity_graph',
      materialized: 'identity_graph',
      template: identityGraphPlan(d, rules, schemaRelation),
      extraRefs: ['identity_edges'],
      description: 'Every identifier with its stable profile_id, first source and first sighting.',
    },
    {
      name: 'identity_merges',
      materialized: 'view',
      template: `-- Append-only: written by the identity_graph step of every run.\nSELECT * FROM ${d.quoteRelation(mergeLog)}\n`,
      extraRefs: ['identity_graph'],
      description: 'Profile merges and splits: run, surviving id, merged id, the edge that caused it, the reason.',
    },
    {
      name: 'identity_profiles',
      materialized: 'table',
      template: identityProfilesTemplate(d, rules),
      extraRefs: [],
      description: 'Per profile: identifier counts per type and merge_confidence.',
    },
  ];
}

/** The graph step is a loop driven by cdp; reviewers get every statement it runs, in order. */
function identityGraphPlan(d: Dialect, rules: IdentityRules, at: (name: string) => Relation): string {
  const graph = at('identity_graph');
  const r = graphRelations(graph, at('identity_edges'));
  const runId = '<run id>';
  const violations = at('__cdp_idg_violations');
  const demoted = at('__cdp_idg_demoted');
  const section = (title: string, sql: string | string[]) => `-- ${title}\n${([] as string[]).concat(sql).map((s) => `${s};`).join('\n\n')}`;
  return [
    `-- identity_graph: executed by cdp as a loop until convergence (docs/identity.md).`,
    section('State tables (kept across runs, even with --full-refresh)', stateTablesSql(d, r)),
    section('1. Dictionary-encode identifiers', d.createTableAs(r.nodes, nodesSql(d, r, rules))),
    section('2. Encoded active edges (isolate rules applied)', d.createTableAs(r.links, linksSql(d, r, rules))),
    `-- 3. Connected components: repeated until no edge is left\n${componentsPlan(d, { nodes: r.nodes, edges: r.links, output: r.components, scratchSchema: graph.schema, database: graph.database })}`,
    section('4. Limits: repeated while a component breaks one (demote its lowest-priority type, recompute 3 on those components only)', [
      d.createTableAs(violations, limitViolationsSql(d, r, rules)),
      d.createTableAs(demoted, demotedNodesSql(d, r, rules, violations)),
      cutLinksSql(d, r, demoted),
    ]),
    `-- 5. never_join split rules: breadth-first partition from both identifiers, cut between, recompute 3`,
    section('6. Previous ids', d.createTableAs(r.assigned, assignedSql(d, r))),
    section('7. Stable ids', d.createTableAs(r.profiles, profilesSql(d, r, runId))),
    section('8. Merges and splits of this run', d.createTableAs(r.changes, changesSql(d, r, runId))),
    section('9. Output, swapped in together with the state commit', [d.createTableAs(d.stagingRelation(graph, 'tmp'), graphOutputSql(d, r)), ...commitStateSql(d, r, runId)]),
  ].join('\n\n') + '\n';
}
