import type { Command } from 'commander';
import type { ResourceType } from '../../compile/node.js';
import { ExitCode } from '../../errors.js';
import { EventLogger } from '../../run/events.js';
import { executeInvocation, prepareInvocation } from '../../run/invocation.js';
import type { NodeResult } from '../../run/result.js';
import { addProjectOptions, toProjectFlags, type CliFlags } from '../options.js';
import type { CommandContext } from '../context.js';

/** seed, run, test and build: the same pipeline over different resource types. */
const COMMANDS: { name: string; description: string; types: ResourceType[] }[] = [
  { name: 'seed', description: 'load CSV, Parquet and JSON files declared as seeds or file-backed sources', types: ['seed'] },
  { name: 'run', description: 'build the selected models in dependency order', types: ['model'] },
  { name: 'test', description: 'run the selected data tests', types: ['test'] },
  { name: 'build', description: 'seeds, models and tests together, in DAG order', types: ['seed', 'model', 'test'] },
];

export function registerExecuteCommands(program: Command, ctx: CommandContext): void {
  for (const spec of COMMANDS) {
    addProjectOptions(program.command(spec.name).description(spec.description)).action(async (flags: CliFlags) => {
      ctx.exitCode = await executeCommand(spec.name, new Set(spec.types), flags, ctx);
    });
  }
}

async function executeCommand(command: string, types: ReadonlySet<ResourceType>, cliFlags: CliFlags, ctx: CommandContext): Promise<ExitCode> {
  const logger = ctx.logger(cliFlags.logFormat);
  const flags = { ...toProjectFlags(cliFlags), indirectSelection: types.has('model') && types.has('test') ? ('buildable' as const) : ('eager' as const) };
  const prepared = prepareInvocation(flags, logger, ctx.env);
  logger.emit('InvocationStarted', 'info', `Running with cdp on target ${prepared.project.profile.target.name} (${prepared.project.profile.target.type})`, {
    command,
    target: prepared.project.profile.target.name,
  });
  prepared.artifacts.writeCompiledSql();
  prepared.artifacts.writeManifest();
  const summary = await executeInvocation(prepared, flags, types, logger);
  prepared.artifacts.writeRunResults(command, { ...flags }, summary.results, summary.elapsedSeconds);
  if (summary.results.length === 0) {
    const asked = [...(flags.select ?? []).map((x) => `--select ${x}`), ...(flags.exclude ?? []).map((x) => `--exclude ${x}`)].join(' ');
    logger.warn('SelectionEmpty', `Nothing to do: ${asked ? `\`${asked}\` matched` : 'the project has'} no node \`cdp ${command}\` runs (see \`cdp ls${asked ? ` ${asked}` : ''}\`).`);
  }
  reportSummary(logger, summary.results, summary.elapsedSeconds);
  return exitCodeFor(summary.results);
}

/** 1 when a node errored, 3 when only data tests failed, 0 otherwise (docs/cli.md). */
export function exitCodeFor(results: NodeResult[]): ExitCode {
  if (results.some((r) => r.status === 'error')) return ExitCode.nodeFailed;
  if (results.some((r) => r.status === 'fail')) return ExitCode.testsFailed;
  return ExitCode.success;
}

function reportSummary(logger: EventLogger, results: NodeResult[], elapsed: number): void {
  const count = (status: NodeResult['status']) => results.filter((r) => r.status === status).length;
  const pass = count('success') + count('pass');
  const counts = { PASS: pass, WARN: count('warn'), ERROR: count('error') + count('fail'), SKIP: count('skipped'), TOTAL: results.length };
  logger.emit('Summary', 'info', `\nFinished in ${elapsed.toFixed(2)}s. Done. ${Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(' ')}`, {
    counts,
    elapsed_time: elapsed,
  });
}
