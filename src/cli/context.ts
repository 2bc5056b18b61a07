import type { ExitCode } from '../errors.js';
import { EventLogger, type LogFormat, type LogSink } from '../run/events.js';

/** What a command needs from its surroundings; tests replace the sinks and the environment. */
export class CommandContext {
  exitCode: ExitCode = 0;
  private current?: EventLogger;

  constructor(
    readonly env: NodeJS.ProcessEnv,
    readonly out: LogSink,
    readonly err: LogSink,
  ) {}

  logger(format: LogFormat): EventLogger {
    this.current = new EventLogger(format, this.out, this.err);
    return this.current;
  }

  /** The logger of the running command, so errors come out in its format. */
  get activeLogger(): EventLogger | undefined {
    return this.current;
  }
}
