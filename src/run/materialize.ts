import { WarehouseError } from '../errors.js';
import type { ModelNode, Relation } from '../compile/node.js';
import { buildAudienceMembership } from '../audiences/membership.js';
import { buildIdentityEdges } from '../identity/build-edges.js';
import { buildIdentityGraph } from '../identity/build-graph.js';
import type { IdentityRules } from '../identity/rules.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { RelationInfo, Session } from '../warehouse/warehouse.js';

/**
 * Materializations. Each one states how a model's SELECT becomes a relation and what a failure
 * leaves behind: nothing half-built, ever. `sql` is the rendered SELECT; the returned statements
 * are what was executed (written to target/run for review).
 */

export interface MaterializeContext {
  session: Session;
  dialect: Dialect;
  node: ModelNode;
  fullRefresh: boolean;
  /** The invocation id: recorded by generators that keep state (the identity merge log). */
  runId: string;
  identity?: { rules: IdentityRules; edges: Relation };
  /** Renders the model; `isIncremental` is decided here, once the target's state is known. */
  render(isIncremental: boolean): string;
}

export interface MaterializeResult {
  rowsAffected?: number;
  executed: string[];
}

class StatementLog {
  readonly executed: string[] = [];
  constructor(readonly session: Session) {}

  async run(sql: string) {
    this.executed.push(sql);
    return this.session.execute(sql);
  }

}

/** Runs statements; if one fails inside a transaction, rolls back so the session stays usable. */
async function runAtomically(log: StatementLog, statements: string[]): Promise<number> {
  let rowsAffected = 0;
  try {
    for (const sql of statements) rowsAffected += (await log.run(sql)).rowsAffected ?? 0;
    return rowsAffected;
  } catch (error) {
    if (statements[0] === 'BEGIN TRANSACTION') await log.session.execute('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

export async function materialize(ctx: MaterializeContext): Promise<MaterializeResult> {
  const { session, node } = ctx;
  const log = new StatementLog(session);
  const existing = await session.describe(node.relation);
  switch (node.config.materialized) {
    case 'view':
      return buildView(ctx, log, existing);
    case 'table':
      return buildTable(ctx, log, existing, ctx.render(false));
    case 'incremental':
      if (!existing || existing.kind === 'view' || ctx.fullRefresh) return buildTable(ctx, log, existing, ctx.render(false));
      return buildIncremental(ctx, log, existing);
    case 'ephemeral':
      return { executed: [] };
    case 'identity_edges': {
      if (!ctx.identity) throw new Error(`${node.name}: identity_edges needs the project's identity rules`);
      const built = await buildIdentityEdges(session, ctx.dialect, node, ctx.identity.rules, ctx.render, ctx.fullRefresh);
      return { rowsAffected: built.rowsAffected, executed: built.executed };
    }
    case 'identity_graph': {
      if (!ctx.identity) throw new Error(`${node.name}: identity_graph needs the project's identity rules`);
      const built = await buildIdentityGraph(session, ctx.dialect, node.relation, ctx.identity.edges, ctx.identity.rules, ctx.runId, ctx.fullRefresh);
      return { rowsAffected: built.rowsAffected, executed: built.executed };
    }
    case 'audience_membership': {
      const built = await buildAudienceMembership(session, ctx.dialect, node.relation, ctx.render(false), ctx.runId);
      return { rowsAffected: built.rowsAffected, executed: built.executed };
    }
    case 'destination':
      throw new Error(`${node.name}: a destination is sent by cdp sync, never materialized`);
  }
}

async function buildView(ctx: MaterializeContext, log: StatementLog, existing: RelationInfo | undefined): Promise<MaterializeResult> {
  const { dialect, node } = ctx;
  // CREATE OR REPLACE VIEW cannot replace a table: drop it in the same transaction where DDL is transactional.
  const statements = existing?.kind === 'table' ? [dialect.dropRelation(node.relation, 'table')] : [];
  statements.push(dialect.createViewAs(node.relation, ctx.render(false)));
  await runAtomically(log, dialect.atomically(statements, 'ddl'));
  return { executed: log.executed };
}

/** Build under a staging name, then swap: a failed build leaves the old table untouched. */
async function buildTable(ctx: MaterializeContext, log: StatementLog, existing: RelationInfo | undefined, sql: string): Promise<MaterializeResult> {
  const { dialect, node } = ctx;
  const staging = dialect.stagingRelation(node.relation, 'tmp');
  await log.run(dialect.dropRelation(staging, 'table'));
  try {
    await log.run(dialect.createTableAs(staging, sql));
    // CTAS reports no row count on DuckDB; counting a fresh table is a metadata read on every engine.
    const [row] = await ctx.session.query(`SELECT COUNT(*) AS n FROM ${dialect.quoteRelation(staging)}`);
    await runAtomically(log, dialect.atomically(dialect.swapTable(node.relation, staging, existing?.kind), 'ddl'));
    return { rowsAffected: Number(row?.['n'] ?? 0), executed: log.executed };
  } catch (error) {
    await dropQuietly(ctx.session, dialect, staging);
    throw error;
  }
}

async function buildIncremental(ctx: MaterializeContext, log: StatementLog, existing: RelationInfo): Promise<MaterializeResult> {
  const { dialect, node, session } = ctx;
  const staging = dialect.stagingRelation(node.relation, 'new');
  await log.run(dialect.dropRelation(staging, 'table'));
  try {
    await log.run(dialect.createTableAs(staging, ctx.render(true)));
    await checkKeys(session, dialect, node, staging);
    const stagedColumns = (await session.describe(staging))?.columns.map((c) => c.name) ?? [];
    checkSchema(node, existing.columns.map((c) => c.name), stagedColumns);
    const spec = { target: node.relation, source: staging, uniqueKey: node.config.uniqueKey, columns: stagedColumns };
    const statements = node.config.incrementalStrategy === 'merge' ? [dialect.merge(spec)] : dialect.deleteInsert(spec);
    const rowsAffected = await runAtomically(log, dialect.atomically(statements, 'dml'));
    await log.run(dialect.dropRelation(staging, 'table'));
    return { rowsAffected, executed: log.executed };
  } catch (error) {
    await dropQuietly(session, dialect, staging);
    throw error;
  }
}

/**
 * A NULL key never matches in MERGE, so it would be inserted again on every run (dbt-core#6415);
 * a duplicated key makes MERGE ambiguous. Both fail the model before anything is written.
 */
async function checkKeys(session: Session, dialect: Dialect, node: ModelNode, staging: Relation): Promise<void> {
  const [row] = await session.query(dialect.keyViolations(staging, node.config.uniqueKey));
  const nullKeys = Number(row?.['null_keys'] ?? 0);
  const duplicateKeys = Number(row?.['duplicate_keys'] ?? 0);
  const key = node.config.uniqueKey.join(', ');
  if (nullKeys > 0) {
    throw new WarehouseError('incremental-null-key', `${nullKeys} new row(s) of ${node.name} have a NULL unique_key (${key}); nothing was written`, {
      at: { file: node.path },
      hint: 'NULL keys cannot be matched and would duplicate on every run. Filter them out or coalesce the key in the model.',
    });
  }
  if (duplicateKeys > 0) {
    throw new WarehouseError('incremental-duplicate-key', `${duplicateKeys} unique_key value(s) (${key}) appear more than once in the new rows of ${node.name}; nothing was written`, {
      at: { file: node.path },
      hint: 'Deduplicate the new rows in the model (e.g. QUALIFY row_number() OVER (PARTITION BY key ORDER BY updated_at DESC) = 1).',
    });
  }
}

function checkSchema(node: ModelNode, existing: string[], staged: string[]): void {
  const added = staged.filter((c) => !existing.includes(c));
  const removed = existing.filter((c) => !staged.includes(c));
  if (added.length > 0 || removed.length > 0) {
    const parts = [added.length ? `new columns: ${added.join(', ')}` : '', removed.length ? `missing columns: ${removed.join(', ')}` : ''].filter(Boolean);
    throw new WarehouseError('incremental-schema-change', `The columns of incremental model ${node.name} changed (${parts.join('; ')}); nothing was written`, {
      at: { file: node.path },
      hint: `Rebuild it with: cdp run --select ${node.name} --full-refresh`,
    });
  }
  for (const key of node.config.uniqueKey) {
    // Compared without case: Snowflake reports unquoted names upper-cased.
    if (!staged.some((column) => column.toLowerCase() === key.toLowerCase())) {
      throw new WarehouseError('unique-key-missing', `unique_key column \`${key}\` is not a column of ${node.name}`, { at: { file: node.path } });
    }
  }
}

async function dropQuietly(session: Session, dialect: Dialect, relation: Relation): Promise<void> {
  await session.execute(dialect.dropRelation(relation, 'table')).catch(() => undefined);
}
