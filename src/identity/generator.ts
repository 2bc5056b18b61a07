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
  type GraphRelations,
} from './graph-sql.js';
import { graphRelations, stateTablesSql, STATE_TABLES } from './build-graph.js';
import {
  appendNodesSql,
  changedEdgesSql,
  changedIdentifiersSql,
  commitScopeStateSql,
  deleteScopeSql,
  graphStateRelations,
  graphStateTablesSql,
  saveGraphStateSql,
  scopeSql,
  scopedNodesSql,
} from './incremental-graph-sql.js';
import { createMetaSql, metaRelation, writeMetaSql } from './meta.js';
import { cutBetweenLabelsSql, growLabelsSql, nodeOf, seedLabelsSql } from './split.js';
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
      template: identityEdgesTemplate(d, rules, schemaRelation(STATE_TABLES.idMap).database),
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
  const state = graphStateRelations(graph);
  const meta = metaRelation(graph);
  const runId = '<run id>';
  const violations = at('__cdp_idg_violations');
  const demoted = at('__cdp_idg_demoted');
  const labels = at('__cdp_idg_split_labels');
  const changed = at('__cdp_idg_changed_edges');
  const changedIds = at('__cdp_idg_changed_ids');
  const scope = at('__cdp_idg_scope');
  const scoped: GraphRelations = { ...r, nodes: at('__cdp_idg_scoped_nodes'), links: at('__cdp_idg_scoped_links'), components: at('__cdp_idg_scoped_components') };
  const section = (title: string, sql: string | string[]) => `-- ${title}\n${([] as string[]).concat(sql).map((s) => `${s};`).join('\n\n')}`;
  const splits = rules.splits.flatMap((rule) => {
    if (rule.kind !== 'never_join') return [];
    const [left, right] = rule.identifiers.map((ref) => nodeOf(d, r, rules, ref)) as [string, string];
    return [
      section(`5. never_join ${rule.identifiers.map((i) => `${i.type}:${i.value}`).join(' / ')}: when both are in one component, grow labels from both (repeated until no row is added), cut between, recompute 3`, [
        d.createTableAs(labels, seedLabelsSql(left, right)),
        growLabelsSql(d, r, labels),
        cutBetweenLabelsSql(d, r, labels),
      ]),
    ];
  });
  return [
    `-- identity_graph: executed by cdp, in loops driven until convergence (docs/identity.md).`,
    section('State tables (kept across runs, even with --full-refresh)', [...stateTablesSql(d, r), ...graphStateTablesSql(d, state), createMetaSql(d, meta)]),
    '-- FULL RUN (first run, --full-refresh, or after most edges changed)',
    section('1. Dictionary-encode identifiers', d.createTableAs(r.nodes, nodesSql(d, r, rules))),
    section('2. Encoded active edges (isolate rules applied)', d.createTableAs(r.links, linksSql(d, r, rules))),
    `-- 3. Connected components: repeated until no edge is left\n${componentsPlan(d, { nodes: r.nodes, edges: r.links, output: r.components, scratchSchema: graph.schema, database: graph.database })}`,
    section('4. Limits: repeated while a component breaks one (demote its lowest-priority type, recompute 3 on those components only)', [
      d.createTableAs(violations, limitViolationsSql(d, r, rules)),
      d.createTableAs(demoted, demotedNodesSql(d, r, rules, violations)),
      cutLinksSql(d, r, demoted),
    ]),
    ...(splits.length > 0 ? splits : ['-- 5. never_join split rules: none declared']),
    section('6. Previous ids', d.createTableAs(r.assigned, assignedSql(d, r))),
    section('7. Stable ids', d.createTableAs(r.profiles, profilesSql(d, r, runId))),
    section('8. Merges and splits of this run', d.createTableAs(r.changes, changesSql(d, r, runId))),
    section('9. Output and state: the state commits as one transaction, then the graph is swapped in (one transaction on DuckDB)', [
      d.createTableAs(d.stagingRelation(graph, 'tmp'), graphOutputSql(d, r)),
      ...commitStateSql(d, r, runId),
      ...saveGraphStateSql(d, state, r),
      ...writeMetaSql(d, meta, [['graph_version', '<edges version>']]),
    ]),
    '-- INCREMENTAL RUN (the default once state exists): only the components that changed edges touch',
    section('I1. Edges changed since the last graph run, their identifiers, new dictionary entries, and the scope: every identifier of a touched component', [
      d.createTableAs(changed, changedEdgesSql(d, r.edges, 0).replace('version > 0', 'version > <graph_version>')),
      d.createTableAs(changedIds, changedIdentifiersSql(d, changed)),
      appendNodesSql(d, state, changedIds),
      d.createTableAs(scope, scopeSql(d, state, changedIds)),
      d.createTableAs(scoped.nodes, scopedNodesSql(d, scoped, rules, scope)),
      d.createTableAs(scoped.links, linksSql(d, scoped, rules)),
    ]),
    '-- I2. Steps 3 to 8 on the scoped nodes, links and components',
    section('I3. Patch the graph, the id map and the state for the scope, in one transaction', [
      deleteScopeSql(d, graph, scope),
      d.insertInto(graph, ['identifier_type', 'identifier_value', 'profile_id', 'source', 'first_seen'], graphOutputSql(d, scoped)),
      ...commitStateSql(d, scoped, runId, scope),
      ...commitScopeStateSql(d, state, scoped, scope),
    ]),
  ].join('\n\n') + '\n';
}
