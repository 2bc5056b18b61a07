import type { Command } from 'commander';
import type { Relation } from '../../compile/node.js';
import { ConfigError, ExitCode } from '../../errors.js';
import {
  droppedEdgesSql,
  identifierLookupSql,
  parseIdentifierArgument,
  profileEdgesSql,
  profileIdentifiersSql,
  profileMergesSql,
  profileRowSql,
  type IdentityRelations,
} from '../../identity/inspect.js';
import {
  clusterSizesSql,
  defaultSuperConnectorThreshold,
  largestClustersSql,
  limitViolationsSql,
  matchRateSql,
  mergeRunsSql,
  summarySql,
  superConnectorsSql,
} from '../../identity/report.js';
import type { IdentityRules } from '../../identity/rules.js';
import { redact } from '../../project/secrets.js';
import { prepareInvocation, type PreparedInvocation } from '../../run/invocation.js';
import { openWarehouse } from '../../warehouse/engines.js';
import type { Row, Session } from '../../warehouse/warehouse.js';
import type { CommandContext } from '../context.js';
import { cell, plain, plainRows, table, write } from '../text-output.js';
import { addProjectOptions, toProjectFlags, type CliFlags } from '../options.js';

interface InspectFlags extends CliFlags {
  json?: boolean;
}

interface ReportFlags extends CliFlags {
  json?: boolean;
  top: string;
  superConnectorThreshold?: string;
}

/** `cdp identity inspect` and `cdp identity report`: read-only views of a built identity graph. */
export function registerIdentityCommand(program: Command, ctx: CommandContext): void {
  const identity = program.command('identity').description('inspect and report on identity resolution (identity.yml); needs a built project');
  addProjectOptions(identity.command('inspect'), { selection: false })
    .description('show the profile of one identifier: its identifiers, edges, dropped edges and merges')
    .argument('<identifier>', 'type:value, e.g. email:ana@example.com (normalised like the edge sources)')
    .option('--json', 'print the result as JSON')
    .action(async (identifier: string, flags: InspectFlags) => {
      ctx.exitCode = await inspectCommand(identifier, flags, ctx);
    });
  addProjectOptions(identity.command('report'), { selection: false })
    .description('match rate, cluster sizes, largest profiles, super-connectors and what the limits cut')
    .option('--json', 'print the report as JSON')
    .option('--top <n>', 'how many of the largest profiles and super-connectors to list', '10')
    .option('--super-connector-threshold <n>', 'list identifiers with more than this many distinct partners (default: max_partners / 2)')
    .action(async (flags: ReportFlags) => {
      ctx.exitCode = await reportCommand(flags, ctx);
    });
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing

interface OpenIdentity<T> {
  /** What `check` returned: argument validation that needs the rules, done before connecting. */
  checked: T;
  prepared: PreparedInvocation;
  rules: IdentityRules;
  relations: IdentityRelations;
  session: Session;
  close: () => Promise<void>;
}

function identityRelations(prepared: PreparedInvocation): IdentityRelations {
  const { dag, projectName } = prepared.compiled;
  const relation = (name: string): Relation => {
    const node = dag.nodes.get(`model.${projectName}.${name}`);
    if (!node || !('relation' in node)) throw new Error(`compiled project has no ${name} model although it has identity rules`);
    return node.relation;
  };
  return { edges: relation('identity_edges'), graph: relation('identity_graph'), merges: relation('identity_merges'), profiles: relation('identity_profiles') };
}

/** Loads the project, checks it has identity rules and a built graph, and opens one session. */
async function openIdentity<T>(flags: CliFlags, ctx: CommandContext, check: (rules: IdentityRules) => T): Promise<OpenIdentity<T>> {
  const logger = ctx.logger(flags.logFormat);
  const prepared = prepareInvocation(toProjectFlags(flags), logger, ctx.env);
  const rules = prepared.compiled.identity;
  if (!rules) {
    throw new ConfigError('no-identity-rules', `Project \`${prepared.compiled.projectName}\` has no identity.yml`, {
      hint: 'Create identity.yml at the project root (identifier_types, edge_sources), then run `cdp build`.',
    });
  }
  const checked = check(rules);
  const relations = identityRelations(prepared);
  const warehouse = await openWarehouse(prepared.project.profile.target);
  let session: Session | undefined;
  try {
    session = await warehouse.session();
    const names = Object.entries({ identity_edges: relations.edges, identity_graph: relations.graph, identity_merges: relations.merges, identity_profiles: relations.profiles });
    const missing: string[] = [];
    for (const [name, relation] of names) if (!(await session.describe(relation))) missing.push(name);
    if (missing.length > 0) {
      const target = prepared.project.profile.target.name;
      const alsoEdges = missing.includes('identity_edges') ? ' (`--select +identity_graph+` also builds identity_edges and the models it reads)' : '';
      throw new ConfigError('identity-not-built', `The identity models are not built in target \`${target}\` (missing: ${missing.join(', ')})`, {
        hint: `Run \`cdp build --select identity_graph+\` first${alsoEdges}.`,
      });
    }
  } catch (error) {
    await session?.close().catch(() => undefined);
    await warehouse.close().catch(() => undefined);
    throw error;
  }
  const open = session;
  return {
    checked,
    prepared,
    rules,
    relations,
    session: open,
    close: async () => {
      await open.close().catch(() => undefined);
      await warehouse.close();
    },
  };
}

function num(value: unknown): number {
  const n = Number(plain(value) ?? 0);
  return Number.isFinite(n) ? n : 0;
}

function percent(part: number, whole: number): string {
  return whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)}%`;
}

function positiveInteger(flag: string, text: string, min: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new ConfigError('bad-option', `${flag} must be an integer of at least ${min}, got ${JSON.stringify(text)}`);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// inspect

async function inspectCommand(argument: string, flags: InspectFlags, ctx: CommandContext): Promise<ExitCode> {
  const open = await openIdentity(flags, ctx, (rules) => parseIdentifierArgument(rules, argument));
  const { checked: query, prepared, rules, relations: r, session, close } = open;
  try {
    const d = prepared.dialect;
    const [lookup] = await session.query(identifierLookupSql(d, r, rules, query));
    const normalized = plain(lookup?.['value']);
    const neverTrusted = lookup?.['never_trusted'] === true;
    const profileId = plain(lookup?.['profile_id']);
    const label = (value: unknown) => `${query.type.name}:${value === null ? JSON.stringify(query.value) : String(value)}`;
    const identifier = { type: query.type.name, input: query.value, value: normalized, never_trusted: neverTrusted };

    if (typeof profileId !== 'string') {
      const dropped = typeof normalized === 'string' ? plainRows(await session.query(droppedEdgesSql(d, r, query.type.name, normalized, undefined))) : [];
      const reason = notFoundReason(rules, query.type.name, normalized, neverTrusted, lookup ?? {});
      const message = `${label(normalized)} is in no profile: ${reason}`;
      if (flags.json) ctx.out.write(redact(JSON.stringify({ found: false, identifier, reason, dropped_edges: dropped }, null, 2)));
      ctx.activeLogger!.error(`Error: ${message}`, { code: 'identifier-not-found', identifier });
      return ExitCode.nodeFailed;
    }

    const identifiers = plainRows(await session.query(profileIdentifiersSql(d, r, profileId)));
    const edges = plainRows(await session.query(profileEdgesSql(d, r, profileId)));
    const [profileRow] = plainRows(await session.query(profileRowSql(d, r, rules, profileId)));
    const dropped = plainRows(await session.query(droppedEdgesSql(d, r, query.type.name, normalized as string, profileId)));
    const merges = plainRows(await session.query(profileMergesSql(d, r, profileId)));

    if (flags.json) {
      ctx.out.write(redact(JSON.stringify({ found: true, identifier, profile_id: profileId, profile: profileRow ?? null, identifiers, edges, dropped_edges: dropped, merges }, null, 2)));
      return ExitCode.success;
    }
    const lines: string[] = [];
    lines.push(`${query.type.name}:${query.value}${normalized !== query.value ? ` (normalised: ${String(normalized)})` : ''}`);
    lines.push(`Profile ${profileId}`);
    if (profileRow) {
      const counts = rules.types.map((t) => `${t.name} ${num(profileRow[`${t.name}_count`])}`).join(', ');
      lines.push(`  ${num(profileRow['identifiers'])} identifiers (${counts})`);
      lines.push(`  first seen ${cell(ts(profileRow['first_seen']))}, merge_confidence ${String(profileRow['merge_confidence'])} (${num(profileRow['unverified_identifiers'])} unverified)`);
    } else {
      lines.push('  (no identity_profiles row: rebuild with `cdp build --select identity_graph+`)');
    }
    lines.push('', `Identifiers (${identifiers.length})`);
    lines.push(...table(['TYPE', 'VALUE', 'SOURCE', 'FIRST SEEN'], identifiers.map((x) => [x['identifier_type'], x['identifier_value'], x['source'], ts(x['first_seen'])])));
    lines.push('', `Edges (${edges.length} active, both ends in the profile)`);
    lines.push(...table(['FROM', 'TO', 'SOURCE', 'FIRST SEEN', 'LAST SEEN', 'VERIFIED', 'ROWS'], edges.map((e) => [
      `${String(e['type_a'])}:${String(e['value_a'])}`, `${String(e['type_b'])}:${String(e['value_b'])}`, e['source'], ts(e['first_seen']), ts(e['last_seen']), e['verified'], e['row_count'],
    ])));
    lines.push('', `Dropped edges touching ${label(normalized)} (${dropped.length})`);
    lines.push(...droppedTable(dropped));
    lines.push('', `Merges and splits naming ${profileId} (${merges.length})`);
    lines.push(...table(['LOGGED AT', 'REASON', 'SURVIVING', 'MERGED', 'EDGE'], merges.map((m) => [
      ts(m['logged_at']), m['reason'], m['surviving_id'], m['merged_id'], m['edge_type_a'] === null ? '' : `${String(m['edge_type_a'])}:${String(m['edge_value_a'])} ~ ${String(m['edge_type_b'])}:${String(m['edge_value_b'])} (${String(m['edge_source'])})`,
    ])));
    write(ctx, lines);
    return ExitCode.success;
  } finally {
    await close();
  }
}

/** ISO text (from plainRows) back to a Date, so cells print it uniformly. */
function ts(value: unknown): unknown {
  return typeof value === 'string' && /^\d{4}-\d\d-\d\dT/.test(value) ? new Date(value) : value;
}

function droppedTable(rows: Record<string, unknown>[]): string[] {
  return table(['PARTNER', 'STATUS', 'SOURCE', 'FIRST SEEN', 'LAST SEEN', 'VERIFIED', 'PARTNER PROFILE'], rows.map((e) => [
    `${String(e['partner_type'])}:${String(e['partner_value'])}`, e['status'], e['source'], ts(e['first_seen']), ts(e['last_seen']), e['verified'], e['partner_profile_id'],
  ]));
}

function notFoundReason(rules: IdentityRules, type: string, normalized: unknown, neverTrusted: boolean, lookup: Row): string {
  const trust = neverTrusted
    ? `the value is never trusted (never_trusted in ${rules.file.split('/').pop()}), so no edge source links it to anyone`
    : 'the value is not a never-trusted value';
  if (normalized === null) return `the \`${type}\` normaliser rejects it (empty or not a valid ${type}), so it never becomes an identifier; ${trust}`;
  if (neverTrusted) return trust;
  const superEdges = num(lookup['super_connector_edges']);
  if (superEdges > 0 && num(lookup['active_edges']) === 0) {
    return `it is a super-connector: linked to more than max_partners (${rules.maxPartners}) identifiers, so all ${superEdges} of its edges were cut (status super_connector); ${trust}`;
  }
  if (num(lookup['edges']) === 0) return `no edge source row links it to another identifier (it is not in identity_edges); ${trust}`;
  return `it has ${num(lookup['edges'])} edge(s) in identity_edges but is not in identity_graph; the graph may be older than the edges (rebuild with \`cdp build --select identity_edges+\`); ${trust}`;
}

// ---------------------------------------------------------------------------------------------
// report

async function reportCommand(flags: ReportFlags, ctx: CommandContext): Promise<ExitCode> {
  const top = positiveInteger('--top', flags.top, 1);
  const thresholdFlag = flags.superConnectorThreshold === undefined ? undefined : positiveInteger('--super-connector-threshold', flags.superConnectorThreshold, 0);
  const { prepared, rules, relations: r, session, close } = await openIdentity(flags, ctx, () => undefined);
  try {
    const d = prepared.dialect;
    const threshold = thresholdFlag ?? defaultSuperConnectorThreshold(rules);
    const [summary] = plainRows(await session.query(summarySql(d, r)));
    const byType = plainRows(await session.query(matchRateSql(d, r)));
    const clusters = plainRows(await session.query(clusterSizesSql(d, r)));
    const largest = plainRows(await session.query(largestClustersSql(d, r, rules, top)));
    const superConnectors = plainRows(await session.query(superConnectorsSql(d, r, rules, threshold, top)));
    const limits = plainRows(await session.query(limitViolationsSql(d, r)));
    const [lastRun] = plainRows(await session.query(mergeRunsSql(d, r, 1)));

    const identifiers = byType.reduce((s, row) => s + num(row['identifiers']), 0);
    const matched = byType.reduce((s, row) => s + num(row['matched']), 0);
    const rate = (m: number, n: number) => (n === 0 ? null : Math.round((10000 * m) / n) / 10000);
    const superTotal = num(superConnectors[0]?.['total']);
    const report = {
      target: prepared.project.profile.target.name,
      summary: summary ?? {},
      match_rate: {
        identifiers,
        matched,
        rate: rate(matched, identifiers),
        by_type: byType.map((row) => ({ ...row, rate: rate(num(row['matched']), num(row['identifiers'])) })),
      },
      cluster_sizes: clusters,
      largest_clusters: largest,
      super_connectors: {
        threshold,
        max_partners: rules.maxPartners,
        total: superTotal,
        identifiers: superConnectors.map(({ total: _total, ...row }) => row),
      },
      limits: {
        by_type_pair: limits,
        limit_edges: limits.reduce((s, row) => s + num(row['limit_edges']), 0),
        cut_in_graph: limits.reduce((s, row) => s + num(row['cut_in_graph']), 0),
      },
      last_run: lastRun
        ? { run_id: lastRun['run_id'], logged_at: lastRun['logged_at'], merges: num(lastRun['merges']), splits: num(lastRun['splits']) }
        : null,
      all_runs: lastRun
        ? { runs: num(lastRun['runs']), merges: num(lastRun['total_merges']), splits: num(lastRun['total_splits']) }
        : { runs: 0, merges: 0, splits: 0 },
    };
    if (flags.json) {
      ctx.out.write(redact(JSON.stringify(report, null, 2)));
      return ExitCode.success;
    }
    const s = report.summary as Record<string, unknown>;
    const lines: string[] = [
      `Identity report (target ${report.target})`,
      `  ${num(s['profiles'])} profiles, ${num(s['identifiers'])} identifiers; ${num(s['edges'])} edges: ${num(s['active_edges'])} active, ${num(s['limit_edges'])} limit, ${num(s['super_connector_edges'])} super_connector`,
      '',
      `Match rate: ${percent(matched, identifiers)} (${matched} of ${identifiers} identifiers share their profile with another identifier)`,
      ...table(['TYPE', 'IDENTIFIERS', 'MATCHED', 'RATE'], byType.map((row) => [row['identifier_type'], num(row['identifiers']), num(row['matched']), percent(num(row['matched']), num(row['identifiers']))])),
      '',
      'Cluster sizes (identifiers per profile)',
      ...table(['SIZE', 'PROFILES', 'IDENTIFIERS'], clusters.map((row) => [row['bucket'], num(row['profiles']), num(row['identifiers'])])),
      '',
      `Largest profiles (top ${top})`,
      ...table(['PROFILE', 'IDENTIFIERS', ...rules.types.map((t) => t.name), 'FIRST SEEN'], largest.map((row) => [
        row['profile_id'], num(row['identifiers']), ...rules.types.map((t) => num(row[`${t.name}_count`])), ts(row['first_seen']),
      ])),
      '',
      `Super-connectors: ${superTotal} identifier(s) with more than ${Math.min(threshold, rules.maxPartners)} distinct partners (cut above max_partners ${rules.maxPartners})${superTotal > superConnectors.length ? `, top ${superConnectors.length} shown` : ''}`,
      ...table(['TYPE', 'VALUE', 'PARTNERS', 'STATUS', 'PROFILE'], superConnectors.map((row) => [
        row['identifier_type'], row['identifier_value'], num(row['partners']), row['cut'] === true ? 'cut (super_connector)' : 'watch', row['profile_id'],
      ])),
      '',
      `Limit violations resolved: ${report.limits.limit_edges} edge(s) dropped by limits, ${report.limits.cut_in_graph} active edge(s) cut by the graph step (component limits, split rules)`,
      ...table(['TYPES', 'LIMIT EDGES', 'CUT IN GRAPH'], limits.map((row) => [`${String(row['type_a'])} ~ ${String(row['type_b'])}`, num(row['limit_edges']), num(row['cut_in_graph'])])),
      '',
      report.last_run
        ? `Last run with profile changes: ${String(report.last_run.run_id)} at ${cell(ts(report.last_run.logged_at))}: ${report.last_run.merges} merge(s), ${report.last_run.splits} split(s)`
          + ` (${report.all_runs.runs} run(s) logged: ${report.all_runs.merges} merge(s), ${report.all_runs.splits} split(s) in total)`
        : 'Merges and splits: none logged yet (identity_merges is empty).',
    ];
    write(ctx, lines);
    return ExitCode.success;
  } finally {
    await close();
  }
}
