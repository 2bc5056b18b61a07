import type { Command } from 'commander';
import { BusyError, ConfigError, ExitCode } from '../../errors.js';
import { targetDatabase } from '../../project/target.js';
import { prepareInvocation } from '../../run/invocation.js';
import { redact } from '../../project/secrets.js';
import { syncDestination, type SyncResult } from '../../sync/engine.js';
import { DEFAULT_HISTORY_LIMIT, historyText, readHistory } from '../../sync/history.js';
import { destinationFailure, syncText } from '../../sync/report.js';
import { prepareSync } from '../../sync/session.js';
import { openWarehouse, withWarehouseSession } from '../../warehouse/engines.js';
import type { CommandContext } from '../context.js';
import { addProjectOptions, toProjectFlags, type CliFlags } from '../options.js';
import { write } from '../text-output.js';

interface SyncFlags extends CliFlags {
  json?: boolean;
  resendInDoubt?: boolean;
  allowMassRemoves?: boolean;
}

interface HistoryFlags extends CliFlags {
  json?: boolean;
  limit: string;
}

/** `cdp sync`: send each selected destination its changes (docs/destinations.md). */
export function registerSyncCommand(program: Command, ctx: CommandContext): void {
  const sync = addProjectOptions(program.command('sync'), { execution: false });
  sync
    .description('send the planned adds, changes and removes to each selected destination; state advances per acknowledged batch')
    .option('--json', 'print the run summary as JSON (planned/succeeded/failed × add/change/remove)')
    .option('--resend-in-doubt', 'send again the records a crashed run may have delivered to a destination that cannot deduplicate (Braze events)')
    .option('--allow-mass-removes', 'send removals above a contract\'s `max_removes` this once (after checking the model)')
    .action(async (flags: SyncFlags) => {
      ctx.exitCode = await syncCommand(flags, ctx);
    });
  addProjectOptions(sync.command('history'), { execution: false })
    .description('show past sync runs from cdp_sync.runs: status, timing, planned/succeeded/failed × add/change/remove, rejected records; newest first')
    .option('--json', 'print the runs as JSON')
    .option('--limit <n>', 'how many runs to show (newest first)', String(DEFAULT_HISTORY_LIMIT))
    .action(async (_flags: HistoryFlags, command: Command) => {
      // `sync` parses the options it shares with `history` (--select, --json, --project-dir, ...)
      // wherever they appear, so they are read back merged with the parent's.
      ctx.exitCode = await historyCommand(command.optsWithGlobals<HistoryFlags>(), ctx);
    });
}

async function historyCommand(flags: HistoryFlags, ctx: CommandContext): Promise<ExitCode> {
  const limit = Number(flags.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new ConfigError('bad-option', `--limit must be a positive whole number, got ${JSON.stringify(flags.limit)}`);
  const logger = ctx.logger(flags.logFormat);
  const projectFlags = toProjectFlags(flags);
  const selecting = (flags.select?.length ?? 0) > 0 || (flags.exclude?.length ?? 0) > 0;
  // With a selection, the same rules as `cdp sync --select` pick the destinations; without one,
  // every recorded run is shown, including those of contracts since removed.
  const { prepared, destinations } = selecting
    ? (({ prepared, contracts }) => ({ prepared, destinations: contracts.map((c) => c.name) }))(prepareSync(projectFlags, logger, ctx.env, { credentials: false }))
    : { prepared: prepareInvocation({ ...projectFlags, state: undefined }, logger, ctx.env), destinations: undefined };
  const target = prepared.project.profile.target;
  const runs = await withWarehouseSession(target, (session) => readHistory(session, prepared.dialect, targetDatabase(target), { destinations, limit }, `target \`${target.name}\``), { existing: true });
  if (flags.json) ctx.out.write(redact(JSON.stringify({ target: target.name, runs }, null, 2)));
  else write(ctx, historyText(runs, target.name));
  return ExitCode.success;
}

/**
 * A progress bar on an interactive terminal's stderr, redrawn in place per acknowledged batch;
 * nothing when stderr is not a TTY (CI logs, cron, Airflow), where the summary is enough.
 */
function progressBar(destination: string, stream: NodeJS.WriteStream = process.stderr): { update: (done: number, total: number) => void; end: () => void } | undefined {
  if (!stream.isTTY) return undefined;
  const width = 30;
  let drawn = false;
  return {
    update: (done, total) => {
      const filled = total > 0 ? Math.round((done / total) * width) : width;
      stream.write(`\r${destination} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`);
      drawn = true;
    },
    end: () => {
      if (drawn) stream.write('\n');
    },
  };
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
    // The lock's heartbeat has a session of its own: the writer may be busy committing.
    const heartbeatSession = await warehouse.session();
    try {
      for (const contract of contracts) {
        const progress = flags.json || flags.logFormat === 'json' ? undefined : progressBar(contract.name);
        try {
          results.push(await syncDestination(writer, reader, prepared.dialect, contract, { runId, projectRoot, privacyKey: prepared.privacyKey, resendInDoubt: flags.resendInDoubt ?? false, allowMassRemoves: flags.allowMassRemoves ?? false, onBatch: progress?.update, heartbeatSession }));
        } catch (error) {
          // A destination whose plan fails, whose lock is held, or whose SQL the warehouse refuses
          // (a mapped value that does not fit its type) stops alone, state intact; the others go on.
          const failure = error instanceof BusyError ? error.describe() : destinationFailure(contract.name, error);
          if (failure === undefined) throw error;
          errors.push({ destination: contract.name, error: failure, busy: error instanceof BusyError });
        } finally {
          progress?.end();
        }
      }
    } finally {
      await heartbeatSession.close().catch(() => undefined);
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
