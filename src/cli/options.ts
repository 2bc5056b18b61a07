import { Option, type Command } from 'commander';
import { ConfigError } from '../errors.js';
import type { LogFormat } from '../run/events.js';
import type { ProjectFlags } from '../run/invocation.js';

/** What commander hands over: the project flags, with --threads still text, plus output options. */
export interface CliFlags extends Omit<ProjectFlags, 'threads' | 'indirectSelection'> {
  threads?: string;
  logFormat: LogFormat;
}

/**
 * `selection`: --select, --exclude, --state. `execution` (commands that build: seed, run, test,
 * build, compile): --threads, --full-refresh, --fail-fast; elsewhere they would be accepted and
 * silently do nothing.
 */
export function addProjectOptions(command: Command, { selection = true, execution = selection }: { selection?: boolean; execution?: boolean } = {}): Command {
  command
    .option('--project-dir <dir>', 'directory containing cdp_project.yml', process.env['CDP_PROJECT_DIR'] ?? '.')
    .option('--profiles-dir <dir>', 'directory containing profiles.yml (default: $CDP_PROFILES_DIR, the project, ~/.cdp)')
    .option('-t, --target <name>', 'target in profiles.yml to use')
    .option('--vars <yaml>', "override project vars, as YAML: --vars '{days: 30}'")
    .addOption(new Option('--log-format <format>', 'console output format').choices(['text', 'json']).default('text'));
  if (selection) {
    command
      .option('-s, --select <selector...>', 'nodes to include (dbt selector syntax: name, +name, name+, tag:x, path:dir, state:modified)')
      .option('--exclude <selector...>', 'nodes to exclude')
      .option('--state <dir>', 'directory of a previous manifest.json, for state: selectors');
  }
  if (execution) {
    command
      .option('--threads <n>', 'number of threads (default: the target\'s threads)')
      .option('--full-refresh', 'rebuild incremental models from scratch')
      .option('-x, --fail-fast', 'stop at the first failure');
  }
  return command;
}

export function toProjectFlags(flags: CliFlags): ProjectFlags {
  let threads: number | undefined;
  if (flags.threads !== undefined) {
    threads = Number(flags.threads);
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
      throw new ConfigError('bad-threads', `--threads must be an integer between 1 and 64, got ${JSON.stringify(flags.threads)}`);
    }
  }
  return {
    projectDir: flags.projectDir,
    profilesDir: flags.profilesDir,
    target: flags.target,
    vars: flags.vars,
    select: flags.select,
    exclude: flags.exclude,
    threads,
    fullRefresh: flags.fullRefresh,
    failFast: flags.failFast,
    state: flags.state,
  };
}
