import { createHash } from 'node:crypto';
import type { ModelNode, Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';
import { edgeStatusSql, partnerRanksSql } from './edges-sql.js';
import { createMetaSql, metaRelation, readMetaSql, writeMetaSql } from './meta.js';
import { StepRunner } from './steps.js';
import type { IdentityRules } from './rules.js';

/**
 * The identity_edges materialization. A full build (first run, --full-refresh, or changed
 * rules) writes every edge; later runs read only source rows past each source's watermark,
 * merge them into the table, and recompute ranks and status for the identifiers they touch.
 * Every row carries the `version` of the build that last changed it, so the graph step can
 * pick up exactly the changed edges (docs/identity.md, "Incremental runs").
 */

export interface EdgesBuildResult {
  executed: string[];
  rowsAffected: number;
  mode: 'full' | 'incremental';
}

/** What the edges depend on; locations are left out so editing comments does not force a rebuild. */
export function rulesChecksum(rules: IdentityRules): string {
  const replacer = (key: string, value: unknown) => (key === 'at' || key === 'file' ? undefined : value instanceof Map ? [...value] : value);
  return createHash('sha256').update(JSON.stringify(rules, replacer)).digest('hex');
}

export async function buildIdentityEdges(
  session: Session,
  d: Dialect,
  node: ModelNode,
  rules: IdentityRules,
  render: (isIncremental: boolean) => string,
  fullRefresh: boolean,
): Promise<EdgesBuildResult> {
  const meta = metaRelation(node.relation);
  const steps = new StepRunner(session, d, node.relation);
  const checksum = rulesChecksum(rules);
  try {
    await steps.run(createMetaSql(d, meta));
    const state = new Map((await session.query(readMetaSql(d, meta))).map((row) => [String(row['name']), String(row['value'])]));
    const version = Number(state.get('edges_version') ?? 0) + 1;
    const existing = await session.describe(node.relation);
    const incremental = !fullRefresh && existing?.kind === 'table' && existing.columns.some((c) => c.name.toLowerCase() === 'version') && state.get('edges_rules') === checksum;
    const updates: [string, string][] = [['edges_version', String(version)], ['edges_rules', checksum]];
    if (!incremental) {
      const staging = d.stagingRelation(node.relation, 'tmp');
      await steps.run(d.dropRelation(staging, 'table'));
      await steps.create(staging, `SELECT t.*, CAST(${version} AS ${d.types.bigint}) AS version FROM (\n${render(false)}\n) AS t`);
      const rowsAffected = await steps.count(staging);
      await steps.runAll(d.atomically([...d.swapTable(node.relation, staging, existing?.kind), ...writeMetaSql(d, meta, updates)], 'ddl'));
      return { executed: steps.executed, rowsAffected, mode: 'full' };
    }
    const delta = steps.scratch('edges_delta');
    await steps.create(delta, render(true));
    const rowsAffected = await steps.count(delta);
    if (rowsAffected === 0) return { executed: steps.executed, rowsAffected, mode: 'incremental' };
    const touched = steps.scratch('edges_touched');
    const links = steps.scratch('edges_links');
    const ranks = steps.scratch('edges_ranks');
    await steps.create(touched, touchedSql(d, delta));
    // Ranks are computed before the transaction, from the edges plus the delta (what the merge
    // will produce), so the transaction holds DML only: BigQuery allows no DDL in one, and
    // Snowflake would commit at the first.
    await steps.create(links, touchedLinksSql(d, node.relation, delta, touched));
    await steps.create(ranks, partnerRanksSql(d.quoteRelation(links), d.quoteRelation(touched)));
    await steps.runAll(d.atomically([
      mergeDeltaSql(d, node.relation, delta, version),
      ...updateRanksSql(d, node.relation, ranks, version),
      `UPDATE ${d.quoteRelation(node.relation)} AS tgt SET status = ${edgeStatusSql(d, rules, 'tgt')} WHERE tgt.version = ${version}`,
      ...writeMetaSql(d, meta, updates),
    ], 'dml'));
    return { executed: steps.executed, rowsAffected, mode: 'incremental' };
  } finally {
    await steps.dropScratch();
  }
}

export function touchedSql(d: Dialect, delta: Relation): string {
  const r = d.quoteRelation(delta);
  return `SELECT type_a AS t, value_a AS v FROM ${r} ${d.unionDistinct()} SELECT type_b, value_b FROM ${r}`;
}

/** Merged per (pair, source, rule): sightings widen, verification only ever turns on, counts add. */
export function mergeDeltaSql(d: Dialect, edges: Relation, delta: Relation, version: number): string {
  const key = ['type_a', 'value_a', 'type_b', 'value_b', 'source', 'rule'];
  return `MERGE INTO ${d.quoteRelation(edges)} AS tgt
USING ${d.quoteRelation(delta)} AS src
ON ${key.map((k) => `tgt.${k} = src.${k}`).join(' AND ')}
WHEN MATCHED THEN UPDATE SET first_seen = LEAST(tgt.first_seen, src.first_seen), last_seen = GREATEST(tgt.last_seen, src.last_seen),
  verified = tgt.verified OR src.verified, row_count = tgt.row_count + src.row_count, version = ${version}
WHEN NOT MATCHED THEN INSERT (type_a, value_a, type_b, value_b, source, rule, first_seen, last_seen, verified, row_count, partners_a, partners_b, rank_ab, rank_ba, status, version)
  VALUES (src.type_a, src.value_a, src.type_b, src.value_b, src.source, src.rule, src.first_seen, src.last_seen, src.verified, src.row_count, NULL, NULL, NULL, NULL, 'active', ${version})`;
}

/**
 * Every pair that touches a touched identifier, over the edges and the delta together (what the
 * merge will produce), aggregated over sources: what their ranks need. Every delta row touches
 * a touched identifier by definition, so the delta is taken whole. Rows may repeat; the
 * aggregates do not mind.
 */
export function touchedLinksSql(d: Dialect, edges: Relation, delta: Relation, touched: Relation): string {
  const e = d.quoteRelation(edges);
  const k = d.quoteRelation(touched);
  const columns = (alias: string) => ['type_a', 'value_a', 'type_b', 'value_b', 'verified', 'first_seen'].map((c) => `${alias}.${c}`).join(', ');
  return `SELECT type_a, value_a, type_b, value_b, ${d.boolOr('verified')} AS verified, MIN(first_seen) AS first_seen
FROM (
  SELECT ${columns('x')} FROM ${e} AS x JOIN ${k} AS k ON k.t = x.type_a AND k.v = x.value_a
  UNION ALL
  SELECT ${columns('x')} FROM ${e} AS x JOIN ${k} AS k ON k.t = x.type_b AND k.v = x.value_b
  UNION ALL
  SELECT ${columns('x')} FROM ${d.quoteRelation(delta)} AS x
) AS hit
GROUP BY type_a, value_a, type_b, value_b`;
}

export function updateRanksSql(d: Dialect, edges: Relation, ranks: Relation, version: number): string[] {
  const e = d.quoteRelation(edges);
  const r = d.quoteRelation(ranks);
  return [
    // The target is aliased: BigQuery does not resolve columns qualified by a project.dataset.table name.
    `UPDATE ${e} AS tgt SET partners_a = r.partners, rank_ab = r.partner_rank, version = ${version}
FROM ${r} AS r WHERE r.t = tgt.type_a AND r.v = tgt.value_a AND r.pt = tgt.type_b AND r.pv = tgt.value_b`,
    `UPDATE ${e} AS tgt SET partners_b = r.partners, rank_ba = r.partner_rank, version = ${version}
FROM ${r} AS r WHERE r.t = tgt.type_b AND r.v = tgt.value_b AND r.pt = tgt.type_a AND r.pv = tgt.value_a`,
  ];
}
