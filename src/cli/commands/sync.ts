import type { Command } from 'commander';
import { BusyError, ExitCode } from '../../errors.js';
import { redact } from '../../project/secrets.js';
import { syncDestination, type SyncResult } from '../../sync/engine.js';
import { SyncPlanError } from '../../sync/plan.js';
import { syncText } from '../../sync/report.js';
import { prepareSync } from '../../sync/session.js';
import { openWarehouse } from '../../warehouse/engines.js';
import type { CommandContext } from '../context.js';
import { addProjectOptions, toProjectFlags, type CliFlags } from '../options.js';
import { write } from '../text-output.js';

interface SyncFlags extends CliFlags {
  json?: boolean;
}

/** `cdp sync`: send each selected destination its changes (docs/destinations.md). */
export function registerSyncCommand(program: Command, ctx: CommandContext): void {
  addProjectOptions(program.command('sync'))
    .description('send the planned adds, changes and removes to each selected destination; state advances per acknowledged batch')
    .option('--json', 'print the run summary as JSON (planned/succeeded/failed × add/change/remove)')
    .action(async (flags: SyncFlags) => {
      ctx.exitCode = await syncCommand(flags, ctx);
    });
}

async function syncCommand(flags: SyncFlags, ctx: CommandContext): Promise<ExitCode> {
  const logger = ctx.logger(flags.logFormat);
  const { prepared, contracts, projectRoot } = prepareSync(toProjectFlags(flags), logger, ctx.env);
  const runId = prepared.artifacts.invocationId;
  const warehouse = await openWarehouse(prepared.project.profile.target);
  const results: SyncResult[] = [];
  const errors: { destination: string; error: string; busy: boolean }[] = [];
  try {
    const writer = await warehouse.session();
    const reader = await warehouse.session();
    try {
      for (const contract of contracts) {
        try {
          results.push(await syncDestination(writer, reader, prepared.dialect, contract, { runId, projectRoot }));
        } catch (error) {
          // A destination whose plan fails (or whose lock is held) sends nothing; the others go on.
          if (!(error instanceof SyncPlanError) && !(error instanceof BusyError)) throw error;
          errors.push({ destination: contract.name, error: error.describe(), busy: error instanceof BusyError });
        }
      }
    } finally {
      await reader.close().catch(() => undefined);
      await writer.close().catch(() => undefined);
    }
  } finally {
    await warehouse.close();
  }
  const status = errors.some((e) => e.busy) ? 'busy' : errors.length > 0 || results.some((r) => r.status !== 'success') ? 'failed' : 'success';
  if (flags.json) {
    ctx.out.write(redact(JSON.stringify({ run_id: runId, status, destinations: results, errors: errors.map(({ destination, error }) => ({ destination, error })) }, null, 2)));
  } else {
    write(ctx, syncText(results, errors));
  }
  for (const e of errors) ctx.err.write(redact(`Error: ${e.error}`));
  return status === 'busy' ? ExitCode.busy : status === 'failed' ? ExitCode.nodeFailed : ExitCode.success;
}
