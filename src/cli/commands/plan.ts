import type { Command } from 'commander';
import { ConfigError, ExitCode } from '../../errors.js';
import { redact } from '../../project/secrets.js';
import { planDestination } from '../../sync/plan.js';
import { destinationFailure, planMarkdown, planText, type PlanEntry } from '../../sync/report.js';
import { prepareSync } from '../../sync/session.js';
import { withWarehouseSession } from '../../warehouse/engines.js';
import type { CommandContext } from '../context.js';
import { addProjectOptions, toProjectFlags, type CliFlags } from '../options.js';
import { write } from '../text-output.js';

interface PlanFlags extends CliFlags {
  json?: boolean;
  format?: string;
}

/** `cdp plan`: what `cdp sync` would send, per destination (docs/destinations.md). Sends nothing, writes no state. */
export function registerPlanCommand(program: Command, ctx: CommandContext): void {
  addProjectOptions(program.command('plan'), { execution: false })
    .description('show what `cdp sync` would send per destination: adds, changes, removes, samples and rejected rows; sends nothing')
    .option('--json', 'print the plan as JSON')
    .option('--format <format>', 'text, markdown (for a pull-request comment) or json (same as --json); default text')
    .action(async (flags: PlanFlags) => {
      ctx.exitCode = await planCommand(flags, ctx);
    });
}

async function planCommand(flags: PlanFlags, ctx: CommandContext): Promise<ExitCode> {
  if (flags.json && flags.format !== undefined && flags.format !== 'json') {
    throw new ConfigError('bad-option', `--json and --format ${flags.format} ask for two outputs; give one of them`);
  }
  const format = flags.json ? 'json' : flags.format ?? 'text';
  if (!['text', 'json', 'markdown'].includes(format)) throw new ConfigError('bad-option', `--format must be text, json or markdown, got ${JSON.stringify(flags.format)}`);
  const logger = ctx.logger(flags.logFormat);
  const { prepared, contracts } = prepareSync(toProjectFlags(flags), logger, ctx.env);
  const entries: PlanEntry[] = [];
  await withWarehouseSession(prepared.project.profile.target, async (session) => {
    for (const contract of contracts) {
      try {
        entries.push({ contract, plan: await planDestination(session, prepared.dialect, contract, prepared.privacyKey) });
      } catch (error) {
        // One destination's failure (a bad plan, SQL the warehouse refuses) does not hide the others'.
        const failure = destinationFailure(contract.name, error);
        if (failure === undefined) throw error;
        entries.push({ contract, error: failure });
      }
    }
  }, { existing: true });
  const target = prepared.project.profile.target.name;
  if (format === 'json') {
    const json = {
      target,
      destinations: entries.map(({ contract: c, plan, error }) => (plan ? { status: 'planned', ...plan } : { destination: c.name, model: c.model, type: c.type, status: 'failed', error })),
    };
    ctx.out.write(redact(JSON.stringify(json, null, 2)));
  } else {
    write(ctx, format === 'markdown' ? planMarkdown(entries, target) : planText(entries, target));
  }
  const failed = entries.filter((e) => !e.plan);
  for (const e of failed) if (format !== 'text') ctx.err.write(redact(`Error: ${e.error ?? ''}`));
  return failed.length > 0 ? ExitCode.nodeFailed : ExitCode.success;
}
