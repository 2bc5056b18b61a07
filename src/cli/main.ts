import { Command, CommanderError } from 'commander';
import { CdpError, ExitCode, errorMessage } from '../errors.js';
import { redact } from '../project/secrets.js';
import { useCredentialEnvironment } from '../destinations/http-connector.js';
import type { LogSink } from '../run/events.js';
import { CDP_VERSION } from '../version.js';
import { registerAudienceCommand } from './commands/audience.js';
import { registerCompileCommand } from './commands/compile.js';
import { registerDebugCommand } from './commands/debug.js';
import { registerExecuteCommands } from './commands/execute.js';
import { registerIdentityCommand } from './commands/identity.js';
import { registerInitCommand } from './commands/init.js';
import { registerLsCommand } from './commands/ls.js';
import { registerPlanCommand } from './commands/plan.js';
import { registerPrivacyCommand } from './commands/privacy.js';
import { registerSyncCommand } from './commands/sync.js';
import { CommandContext } from './context.js';

export interface MainOptions {
  env?: NodeJS.ProcessEnv;
  out?: LogSink;
  err?: LogSink;
}

export function buildProgram(ctx: CommandContext): Command {
  const program = new Command('cdp')
    .description('Warehouse-native customer data platform: models, identity, profiles, audiences and activation as code')
    .version(CDP_VERSION)
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => ctx.out.write(s.trimEnd()), writeErr: (s) => ctx.err.write(s.trimEnd()) });
  registerInitCommand(program, ctx);
  registerDebugCommand(program, ctx);
  registerExecuteCommands(program, ctx);
  registerCompileCommand(program, ctx);
  registerLsCommand(program, ctx);
  registerIdentityCommand(program, ctx);
  registerAudienceCommand(program, ctx);
  registerPlanCommand(program, ctx);
  registerSyncCommand(program, ctx);
  registerPrivacyCommand(program, ctx);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs the CLI and returns the exit code (docs/cli.md); never calls process.exit itself. */
export async function main(argv: string[], options: MainOptions = {}): Promise<ExitCode> {
  const ctx = new CommandContext(
    options.env ?? process.env,
    options.out ?? { write: (line) => process.stdout.write(line + '\n') },
    options.err ?? { write: (line) => process.stderr.write(line + '\n') },
  );
  useCredentialEnvironment(ctx.env);
  try {
    await buildProgram(ctx).parseAsync(argv);
    return ctx.exitCode;
  } catch (error) {
    return reportError(error, ctx);
  } finally {
    useCredentialEnvironment(process.env);
  }
}

function reportError(error: unknown, ctx: CommandContext): ExitCode {
  if (error instanceof CommanderError) {
    // --help and --version exit through here with code 0.
    return error.exitCode === 0 ? ExitCode.success : ExitCode.usage;
  }
  const logger = ctx.activeLogger;
  if (error instanceof CdpError) {
    const text = `Error: ${error.describe()}`;
    if (logger) logger.emit('Error', 'error', text, { code: error.code, at: error.at, exit_code: error.exitCode });
    else ctx.err.write(redact(text));
    return error.exitCode;
  }
  const text = `Internal error: ${errorMessage(error)}\n${error instanceof Error ? (error.stack ?? '') : ''}\nThis is a bug in cdp; please report it with the command you ran.`;
  if (logger) logger.emit('Error', 'error', text, { code: 'internal', exit_code: ExitCode.internal });
  else ctx.err.write(redact(text));
  return ExitCode.internal;
}
