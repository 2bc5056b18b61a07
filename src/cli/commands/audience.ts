import type { Command } from 'commander';
import { audienceModelName, MEMBERSHIP_MODEL } from '../../audiences/generator.js';
import { runsRelation } from '../../audiences/membership.js';
import { audienceFiles, audiencesDirOf, loadAudience, traitCatalog, type Audience } from '../../audiences/rules.js';
import type { ModelNode } from '../../compile/node.js';
import { didYouMean } from '../../compile/suggest.js';
import { ConfigError, ExitCode } from '../../errors.js';
import { redact } from '../../project/secrets.js';
import { prepareInvocation, type PreparedInvocation } from '../../run/invocation.js';
import { openWarehouse } from '../../warehouse/engines.js';
import type { Session } from '../../warehouse/warehouse.js';
import type { CommandContext } from '../context.js';
import { cell, plain, plainRows, table, write } from '../text-output.js';
import { addProjectOptions, toProjectFlags, type CliFlags } from '../options.js';

interface LsFlags extends CliFlags {
  json?: boolean;
}

interface PreviewFlags extends CliFlags {
  json?: boolean;
  limit: string;
}

/** `cdp audience ls` and `cdp audience preview`: read-only views of built audiences (docs/audiences.md). */
export function registerAudienceCommand(program: Command, ctx: CommandContext): void {
  const audience = program.command('audience').description('list and preview the audiences of audiences/*.yml; needs a built project');
  addProjectOptions(audience.command('ls'), { selection: false })
    .description('list audiences: name, owner, required consent and size')
    .option('--json', 'print the list as JSON')
    .action(async (flags: LsFlags) => {
      ctx.exitCode = await lsCommand(flags, ctx);
    });
  addProjectOptions(audience.command('preview'), { selection: false })
    .description('show an audience: size, sample members, entered/exited at the last membership run, and its compiled SQL')
    .argument('<name>', 'the audience name (as in its file), e.g. churn_risk')
    .option('--json', 'print the preview as JSON')
    .option('--limit <n>', 'how many sample members to show', '10')
    .action(async (name: string, flags: PreviewFlags) => {
      ctx.exitCode = await previewCommand(name, flags, ctx);
    });
}

interface OpenAudiences {
  prepared: PreparedInvocation;
  audiences: Audience[];
  session: Session;
  close: () => Promise<void>;
}

function modelNode(prepared: PreparedInvocation, name: string): ModelNode | undefined {
  const node = prepared.compiled.dag.nodes.get(`model.${prepared.compiled.projectName}.${name}`);
  return node?.resourceType === 'model' ? node : undefined;
}

async function openAudiences(flags: CliFlags, ctx: CommandContext): Promise<OpenAudiences> {
  const logger = ctx.logger(flags.logFormat);
  const prepared = prepareInvocation(toProjectFlags(flags), logger, ctx.env);
  const root = prepared.project.config.root;
  const dir = audiencesDirOf(root);
  const files = dir ? audienceFiles(dir) : [];
  if (files.length === 0) {
    throw new ConfigError('no-audiences', `Project \`${prepared.compiled.projectName}\` has no audiences`, {
      hint: 'Add one YAML file per audience under audiences/ (docs/audiences.md), then run `cdp build`.',
    });
  }
  // The project compiled, so every file loads; consent was checked against consent_state then.
  const env = { traits: traitCatalog(root, prepared.compiled.identity) ?? new Map(), hasConsentState: true };
  const audiences = files.map((file) => loadAudience(file, env));
  const warehouse = await openWarehouse(prepared.project.profile.target);
  try {
    const session = await warehouse.session();
    return {
      prepared,
      audiences,
      session,
      close: async () => {
        await session.close().catch(() => undefined);
        await warehouse.close();
      },
    };
  } catch (error) {
    await warehouse.close().catch(() => undefined);
    throw error;
  }
}

function notBuilt(prepared: PreparedInvocation, missing: string[]): ConfigError {
  return new ConfigError('audiences-not-built', `Audience models are not built in target \`${prepared.project.profile.target.name}\` (missing: ${missing.join(', ')})`, {
    hint: 'Run `cdp build` (or `cdp build --select +audience_membership`) first.',
  });
}

async function count(session: Session, sql: string): Promise<number> {
  const [row] = await session.query(sql);
  return Number(plain(row?.['n']) ?? 0);
}

// ---------------------------------------------------------------------------------------------

async function lsCommand(flags: LsFlags, ctx: CommandContext): Promise<ExitCode> {
  const { prepared, audiences, session, close } = await openAudiences(flags, ctx);
  try {
    const d = prepared.dialect;
    const rows: { name: string; owner: string; consent: string[]; size: number | null; description: string }[] = [];
    for (const audience of audiences) {
      const node = modelNode(prepared, audienceModelName(audience.name));
      const built = node ? await session.describe(node.relation) : undefined;
      const size = node && built ? await count(session, `SELECT COUNT(*) AS n FROM ${d.quoteRelation(node.relation)}`) : null;
      rows.push({ name: audience.name, owner: audience.owner, consent: audience.consent, size, description: audience.description });
    }
    if (rows.every((r) => r.size === null)) throw notBuilt(prepared, audiences.map((a) => audienceModelName(a.name)));
    if (flags.json) {
      ctx.out.write(redact(JSON.stringify(rows, null, 2)));
      return ExitCode.success;
    }
    write(ctx, table(['NAME', 'OWNER', 'CONSENT', 'SIZE'], rows.map((r) => [r.name, r.owner, r.consent.join(', ') || '(none)', r.size === null ? 'not built' : r.size]), ''));
    return ExitCode.success;
  } finally {
    await close();
  }
}

async function previewCommand(name: string, flags: PreviewFlags, ctx: CommandContext): Promise<ExitCode> {
  const limit = Number(flags.limit);
  if (!/^\d+$/.test(flags.limit.trim()) || !Number.isSafeInteger(limit)) {
    throw new ConfigError('bad-option', `--limit must be a non-negative integer, got ${JSON.stringify(flags.limit)}`);
  }
  const { prepared, audiences, session, close } = await openAudiences(flags, ctx);
  try {
    const wanted = name.startsWith('audience_') && !audiences.some((a) => a.name === name) ? name.slice('audience_'.length) : name;
    const audience = audiences.find((a) => a.name === wanted);
    if (!audience) {
      const names = audiences.map((a) => a.name);
      throw new ConfigError('audience-not-found', `No audience is named \`${name}\``, { hint: `${didYouMean(name, names)} Audiences: ${names.join(', ')}.`.trim() });
    }
    const d = prepared.dialect;
    const node = modelNode(prepared, audienceModelName(audience.name))!;
    if (!(await session.describe(node.relation))) throw notBuilt(prepared, [node.name]);
    const relation = d.quoteRelation(node.relation);
    const size = await count(session, `SELECT COUNT(*) AS n FROM ${relation}`);
    const sample = plainRows(await session.query(`SELECT * FROM ${relation} ORDER BY profile_id LIMIT ${limit}`));

    let changes: { last_run_at: string | null; entered: number; exited: number } | null = null;
    const membershipNode = modelNode(prepared, MEMBERSHIP_MODEL);
    if (membershipNode && (await session.describe(membershipNode.relation)) && (await session.describe(runsRelation(membershipNode.relation)))) {
      const m = d.quoteRelation(membershipNode.relation);
      const [last] = await session.query(`SELECT MAX(ran_at) AS ran_at FROM ${d.quoteRelation(runsRelation(membershipNode.relation))}`);
      const lastRun = `(SELECT MAX(ran_at) FROM ${d.quoteRelation(runsRelation(membershipNode.relation))})`;
      const audienceIs = `audience = ${d.stringLiteral(audience.name)}`;
      changes = {
        last_run_at: plain(last?.['ran_at']) as string | null,
        entered: await count(session, `SELECT COUNT(*) AS n FROM ${m} WHERE ${audienceIs} AND entered_at >= ${lastRun}`),
        exited: await count(session, `SELECT COUNT(*) AS n FROM ${m} WHERE ${audienceIs} AND exited_at >= ${lastRun}`),
      };
    }
    const sql = prepared.compiled.sql.get(node.uniqueId) ?? '';
    if (flags.json) {
      ctx.out.write(redact(JSON.stringify({
        name: audience.name,
        description: audience.description,
        owner: audience.owner,
        consent: audience.consent,
        size,
        sample,
        membership: changes,
        sql,
      }, null, 2)));
      return ExitCode.success;
    }
    const lines = [`Audience ${audience.name}${audience.description ? `: ${audience.description}` : ''}`];
    lines.push(`  owner: ${audience.owner || '-'}`, `  consent: ${audience.consent.join(', ') || '(none)'}`, `  size: ${size}`);
    lines.push(changes
      ? `  last membership run ${cell(changes.last_run_at)}: ${changes.entered} entered, ${changes.exited} exited`
      : '  membership: audience_membership is not built (run `cdp build --select +audience_membership`)');
    lines.push('', `Sample (${sample.length} of ${size})`);
    const headers = sample.length > 0 ? Object.keys(sample[0]!) : ['profile_id'];
    lines.push(...table(headers.map((h) => h.toUpperCase()), sample.map((row) => headers.map((h) => row[h]))));
    lines.push('', 'Compiled SQL', sql.trimEnd());
    write(ctx, lines);
    return ExitCode.success;
  } finally {
    await close();
  }
}
