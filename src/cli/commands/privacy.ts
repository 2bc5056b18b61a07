import type { Command } from 'commander';
import type { ModelNode } from '../../compile/node.js';
import { ConfigError, ExitCode } from '../../errors.js';
import { graphRelations, stateTablesSql } from '../../identity/build-graph.js';
import { graphStateRelations, graphStateTablesSql } from '../../identity/incremental-graph-sql.js';
import { confirmErasureByHand } from '../../privacy/confirm.js';
import { fileDeletionRequests, type FiledRequest, type ManagedTables } from '../../privacy/file-requests.js';
import { loadPrivacyKey, requireKey } from '../../privacy/key.js';
import { readRequestsFile, requestFromFlags, type DeletionRequest } from '../../privacy/requests.js';
import { privacySummary, requestStatus, type RequestStatus } from '../../privacy/status.js';
import { privacyRelation } from '../../privacy/tables.js';
import { redact } from '../../project/secrets.js';
import { targetDatabase } from '../../project/target.js';
import { prepareInvocation, type PreparedInvocation } from '../../run/invocation.js';
import { DESTINATION_MATERIALIZATION } from '../../sync/destination-nodes.js';
import { ensureState } from '../../sync/engine.js';
import { stateRelation } from '../../sync/sql.js';
import { withWarehouseSession } from '../../warehouse/engines.js';
import type { Session } from '../../warehouse/warehouse.js';
import type { CommandContext } from '../context.js';
import { addProjectOptions, toProjectFlags, type CliFlags } from '../options.js';
import { cell, table, write } from '../text-output.js';

interface DeleteFlags extends CliFlags {
  identifier?: string;
  file?: string;
  reason?: string;
  requestId?: string;
  dryRun?: boolean;
  json?: boolean;
}

interface StatusFlags extends CliFlags {
  json?: boolean;
}

interface ConfirmFlags extends CliFlags {
  destination: string;
  note: string;
  json?: boolean;
}

interface RestoreFlags extends CliFlags {
  reason?: string;
  json?: boolean;
}

/** `cdp privacy delete | status | confirm | restore` (docs/privacy.md). */
export function registerPrivacyCommand(program: Command, ctx: CommandContext): void {
  const privacy = program.command('privacy').description('deletion requests: file them (tombstones), follow their propagation to every destination, lift one');
  addProjectOptions(privacy.command('delete'), { selection: false })
    .description('file a deletion request: the whole profile of the identifier is tombstoned, removed from cdp\'s tables now, and erased at every destination by the next sync')
    .option('--identifier <type:value>', 'the identifier, e.g. email:ana@example.com (types from identity.yml)')
    .option('--file <path>', 'bulk requests: JSON Lines or CSV with identifier[, request_id, reason]; all or nothing')
    .option('--reason <text>', 'why (recorded with the request), e.g. "GDPR art.17"')
    .option('--request-id <id>', 'your id for the request (default: generated); filing the same id and identifier again is a no-op')
    .option('--dry-run', 'show what would be affected: profiles, identifiers, destinations; write nothing')
    .option('--json', 'print the result as JSON')
    .action(async (flags: DeleteFlags) => {
      ctx.exitCode = await deleteCommand(flags, ctx);
    });
  addProjectOptions(privacy.command('status'), { selection: false })
    .description('per destination: pending, done or failed with the reason; deletion and consent propagation latency')
    .argument('[request-id]', 'one request; without it, a summary of all requests')
    .option('--json', 'print as JSON')
    .action(async (requestId: string | undefined, flags: StatusFlags) => {
      ctx.exitCode = await statusCommand(requestId, flags, ctx);
    });
  addProjectOptions(privacy.command('confirm'), { selection: false })
    .description('record an erasure done by hand at a destination whose contract was removed (cdp can no longer reach it); logged')
    .argument('<request-id>', 'the request')
    .requiredOption('--destination <name>', 'the removed destination, as `cdp privacy status <request-id>` lists it')
    .requiredOption('--note <text>', 'how and by whom the person was erased there (recorded as the reason)')
    .option('--json', 'print as JSON')
    .action(async (requestId: string, flags: ConfirmFlags) => {
      ctx.exitCode = await confirmCommand(requestId, flags, ctx);
    });
  addProjectOptions(privacy.command('restore'), { selection: false })
    .description('lift the suppression of a request for data arriving from now on (logged); erased data is not brought back')
    .argument('<request-id>', 'the request to lift')
    .requiredOption('--reason <text>', 'why the deletion is lifted (recorded in cdp_privacy.restores)')
    .option('--json', 'print as JSON')
    .action(async (requestId: string, flags: RestoreFlags) => {
      ctx.exitCode = await restoreCommand(requestId, flags, ctx);
    });
}

/** One session on the target, with the database its privacy and sync state live in. */
function withSession<T>(prepared: PreparedInvocation, body: (session: Session, database: string | undefined) => Promise<T>): Promise<T> {
  const target = prepared.project.profile.target;
  return withWarehouseSession(target, (session) => body(session, targetDatabase(target)));
}

/** Every table cdp built that may hold a person, found from the compiled project and the warehouse. */
async function managedTables(session: Session, prepared: PreparedInvocation, database: string | undefined): Promise<ManagedTables> {
  const { compiled, dialect } = prepared;
  const model = (name: string) => compiled.dag.nodes.get(`model.${compiled.projectName}.${name}`) as ModelNode | undefined;
  const edges = model('identity_edges');
  const graph = model('identity_graph');
  let identity: ManagedTables['identity'];
  if (edges && graph && (await session.describe(graph.relation)) && (await session.describe(edges.relation))) {
    const r = graphRelations(graph.relation, edges.relation);
    const state = graphStateRelations(graph.relation);
    identity = { edges: edges.relation, graph: graph.relation, idMap: r.idMap, mergeLog: r.mergeLog, nodes: state.nodes, components: state.components };
    for (const sql of [...stateTablesSql(dialect, r), ...graphStateTablesSql(dialect, state)]) await session.execute(sql);
  }
  const profileTables = [];
  for (const node of compiled.dag.nodes.values()) {
    if (node.resourceType !== 'model' || ['view', 'ephemeral', 'destination', 'identity_edges', 'identity_graph'].includes(node.config.materialized)) continue;
    const info = await session.describe(node.relation);
    if (info?.kind === 'table' && info.columns.some((c) => c.name.toLowerCase() === 'profile_id')) profileTables.push(node.relation);
  }
  let snapshots;
  if (await session.describe(stateRelation(database, 'snapshots'))) {
    await ensureState(session, dialect, database);
    snapshots = stateRelation(database, 'snapshots');
  }
  return { identity, profileTables, snapshots };
}

async function deleteCommand(flags: DeleteFlags, ctx: CommandContext): Promise<ExitCode> {
  if ((flags.identifier === undefined) === (flags.file === undefined)) {
    throw new ConfigError('bad-option', 'Give exactly one of --identifier <type:value> or --file <requests file>');
  }
  if (flags.file !== undefined && flags.requestId !== undefined) throw new ConfigError('bad-option', '--request-id goes with --identifier; a requests file carries request_id per line');
  const prepared = prepareInvocation({ ...toProjectFlags(flags), state: undefined }, ctx.logger(flags.logFormat), ctx.env);
  const rules = prepared.compiled.identity;
  if (!rules) throw new ConfigError('privacy-no-identity', `Project \`${prepared.compiled.projectName}\` has no identity.yml`, { hint: 'Deletion requests resolve an identifier to a whole profile through the identity graph (docs/identity.md).' });
  const secret = requireKey(prepared.privacyKey, 'filing a deletion request');
  const types = rules.types.map((t) => t.name);
  const requests: DeletionRequest[] = flags.file !== undefined
    ? readRequestsFile(flags.file, types).map((r) => ({ ...r, reason: r.reason ?? flags.reason }))
    : [requestFromFlags(flags.identifier!, types, flags.requestId, flags.reason)];
  const filed = await withSession(prepared, async (session, database) => {
    await loadPrivacyKey(session, prepared.dialect, database, prepared.privacyKey, 'filing a deletion request');
    const managed = await managedTables(session, prepared, database);
    return fileDeletionRequests(session, prepared.dialect, database, secret, rules, managed, requests, flags.dryRun ?? false);
  });
  if (flags.json) ctx.out.write(redact(JSON.stringify({ dry_run: flags.dryRun ?? false, requests: filed }, null, 2)));
  else write(ctx, filingText(filed, flags.dryRun ?? false));
  return ExitCode.success;
}

function filingText(filed: FiledRequest[], dryRun: boolean): string[] {
  const lines = [dryRun ? `Dry run: ${filed.length} deletion request(s) would be filed; nothing was written.` : `Filed ${filed.length} deletion request(s).`];
  for (const r of filed) {
    if (r.already_filed) {
      lines.push(`  ${r.request_id} (${r.identifier_type}): already filed with this identifier; nothing new written`);
      continue;
    }
    const who = r.profiles_matched === 0
      ? 'no profile matched: the tombstone is recorded anyway, so data for this identifier arriving later stays suppressed'
      : `${r.profiles_matched} profile(s), ${r.identifiers_tombstoned} identifier(s) tombstoned${dryRun ? '' : ', removed from cdp\'s tables'}`;
    lines.push(`  ${r.request_id} (${r.identifier_type}): ${who}`);
    if (r.destinations.length > 0) lines.push(`    erasure ${dryRun ? 'would be ' : ''}pending at: ${r.destinations.join(', ')} (sent by the next \`cdp sync\`)`);
  }
  return lines;
}

async function statusCommand(requestId: string | undefined, flags: StatusFlags, ctx: CommandContext): Promise<ExitCode> {
  const prepared = prepareInvocation({ ...toProjectFlags(flags), state: undefined }, ctx.logger(flags.logFormat), ctx.env);
  const result = await withSession(prepared, async (session, database) => {
    if (!(await session.describe(privacyRelation(database, 'requests')))) return undefined;
    return requestId === undefined ? privacySummary(session, prepared.dialect, database) : requestStatus(session, prepared.dialect, database, requestId);
  });
  if (result === undefined) {
    throw new ConfigError('privacy-request-unknown', requestId === undefined ? 'No deletion request has been filed in this target' : `No deletion request \`${requestId}\` in this target`, {
      hint: 'File one with `cdp privacy delete --identifier <type:value>`.',
    });
  }
  const live = liveDestinations(prepared);
  if ('request_id' in result) {
    // Whether a contract still exists: without one, only `cdp privacy confirm` can close the erasure.
    const annotated = { ...result, destinations: result.destinations.map((x) => ({ ...x, contract: live.has(x.destination) })) };
    if (flags.json) ctx.out.write(redact(JSON.stringify(annotated, null, 2)));
    else write(ctx, requestText(result, live));
  } else if (flags.json) ctx.out.write(redact(JSON.stringify(result, null, 2)));
  else write(ctx, summaryText(result));
  return ExitCode.success;
}

/** The destinations of the project's contracts: where `cdp sync` can still erase. */
function liveDestinations(prepared: PreparedInvocation): Set<string> {
  return new Set([...prepared.compiled.dag.nodes.values()].filter((n) => n.resourceType === 'model' && n.config.materialized === DESTINATION_MATERIALIZATION).map((n) => n.name));
}

function requestText(r: RequestStatus, live: ReadonlySet<string>): string[] {
  const removed = r.destinations.filter((x) => x.status !== 'done' && !live.has(x.destination)).map((x) => x.destination);
  return [
    `Request ${r.request_id} (${r.identifier_type}), filed ${cell(r.requested_at)} from ${r.filed_from}${r.reason ? `: ${r.reason}` : ''}`,
    `  status: ${r.status.toUpperCase()}; ${r.profiles_matched} profile(s), ${r.identifiers_tombstoned} identifier(s) tombstoned${r.restored_at ? `; restored ${cell(r.restored_at)}` : ''}`,
    ...(r.deletion_propagation_latency_seconds !== null ? [`  deletion propagation latency: ${r.deletion_propagation_latency_seconds}s`] : []),
    ...table(['destination', 'status', 'attempts', 'confirmed_at', 'reason'], r.destinations.map((x) => [x.destination, x.status, x.attempts, x.confirmed_at, x.reason])),
    ...removed.map((name) => `  ${name}: no contract in destinations/ any more, so no sync will erase there. Erase the person there by hand, then: cdp privacy confirm ${r.request_id} --destination ${name} --note "<how, by whom>"`),
  ];
}

function summaryText(s: Awaited<ReturnType<typeof privacySummary>>): string[] {
  const l = s.deletion_propagation_latency;
  return [
    `Deletion requests: ${s.requests.done} done, ${s.requests.pending} pending, ${s.requests.failed} failed, ${s.requests.restored} restored`,
    `Deletion propagation latency: ${l.count > 0 ? `avg ${l.avg_seconds}s, max ${l.max_seconds}s over ${l.count} request(s)` : 'no completed request yet'}`,
    'Consent propagation latency (revocation → removal, per destination):',
    ...table(['destination', 'removals', 'avg_seconds', 'max_seconds'], s.consent_propagation_latency.map((c) => [c.destination, c.count, c.avg_seconds, c.max_seconds])),
  ];
}

async function confirmCommand(requestId: string, flags: ConfirmFlags, ctx: CommandContext): Promise<ExitCode> {
  const prepared = prepareInvocation({ ...toProjectFlags(flags), state: undefined }, ctx.logger(flags.logFormat), ctx.env);
  const confirmed = await withSession(prepared, async (session, database) => {
    if (!(await session.describe(privacyRelation(database, 'requests')))) throw new ConfigError('privacy-request-unknown', `No deletion request \`${requestId}\` in this target`);
    return confirmErasureByHand(session, prepared.dialect, database, requestId, flags.destination, flags.note, liveDestinations(prepared));
  });
  if (flags.json) ctx.out.write(redact(JSON.stringify(confirmed, null, 2)));
  else write(ctx, [`Confirmed by hand: ${requestId} erased at ${confirmed.destination} (${confirmed.note}); ${confirmed.snapshot_rows} snapshot row(s) cdp kept for it there were dropped.`]);
  return ExitCode.success;
}

async function restoreCommand(requestId: string, flags: RestoreFlags, ctx: CommandContext): Promise<ExitCode> {
  const prepared = prepareInvocation({ ...toProjectFlags(flags), state: undefined }, ctx.logger(flags.logFormat), ctx.env);
  const d = prepared.dialect;
  await withSession(prepared, async (session, database) => {
    const status = (await session.describe(privacyRelation(database, 'requests'))) ? await requestStatus(session, d, database, requestId) : undefined;
    if (!status) throw new ConfigError('privacy-request-unknown', `No deletion request \`${requestId}\` in this target`);
    if (status.restored_at !== null) throw new ConfigError('privacy-already-restored', `Request \`${requestId}\` was already restored at ${cell(status.restored_at)}`);
    await session.execute(`INSERT INTO ${d.quoteRelation(privacyRelation(database, 'restores'))} (request_id, restored_at, reason) VALUES (${d.stringLiteral(requestId)}, ${d.currentTimestamp()}, ${d.stringLiteral(flags.reason ?? '')})`);
  });
  const message = `Restored ${requestId}: data for its identifiers arriving from now on is no longer suppressed. What was erased stays erased; the audit row is in cdp_privacy.restores.`;
  if (flags.json) ctx.out.write(redact(JSON.stringify({ request_id: requestId, restored: true, reason: flags.reason }, null, 2)));
  else write(ctx, [message]);
  return ExitCode.success;
}
