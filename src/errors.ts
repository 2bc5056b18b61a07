/**
 * Typed errors. Every error a user can cause carries where it happened (file, line, YAML key)
 * and how to fix it; the CLI maps the error class to a documented exit code (docs/cli.md).
 */

export const ExitCode = {
  success: 0,
  nodeFailed: 1,
  usage: 2,
  testsFailed: 3,
  internal: 4,
  busy: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface SourceLocation {
  file: string;
  line?: number;
  column?: number;
  /** Dotted path of the YAML key, e.g. `targets.dev.type`. */
  key?: string;
}

export interface ErrorDetails {
  at?: SourceLocation;
  hint?: string;
  cause?: unknown;
}

export function formatLocation(at: SourceLocation): string {
  let where = at.file;
  if (at.line !== undefined) where += `:${at.line}`;
  if (at.line !== undefined && at.column !== undefined) where += `:${at.column}`;
  if (at.key) where += ` (key \`${at.key}\`)`;
  return where;
}

export class CdpError extends Error {
  readonly exitCode: ExitCode = ExitCode.usage;
  readonly at?: SourceLocation;
  readonly hint?: string;

  constructor(
    /** Stable kebab-case code, e.g. `ref-not-found`; documented and used in JSON logs. */
    readonly code: string,
    message: string,
    details: ErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.at = details.at;
    this.hint = details.hint;
  }

  /** The text printed to the user: location, message, then the fix. */
  describe(): string {
    const head = this.at ? `${formatLocation(this.at)}: ${this.message}` : this.message;
    return this.hint ? `${head}\n  hint: ${this.hint}` : head;
  }
}

/** Project files, profiles, flags or selectors are wrong; nothing was executed. */
export class ConfigError extends CdpError {}

/** A template or the dependency graph is wrong; nothing was executed. */
export class CompileError extends CdpError {}

/** The warehouse rejected a statement or the connection failed. */
export class WarehouseError extends CdpError {
  override readonly exitCode: ExitCode = ExitCode.nodeFailed;
}

/** Another process holds a lock we need (DuckDB file lock, sync lock). */
export class BusyError extends CdpError {
  override readonly exitCode: ExitCode = ExitCode.busy;
}

/** Several problems found in one pass, reported together (as dbt and Malloy do). */
export class ProblemsError extends CdpError {
  constructor(readonly problems: CdpError[]) {
    super(
      problems[0]?.code ?? 'problems',
      problems.length === 1 ? problems[0]!.message : `${problems.length} problems found`,
      { at: problems.length === 1 ? problems[0]!.at : undefined, hint: problems.length === 1 ? problems[0]!.hint : undefined },
    );
  }

  override describe(): string {
    return this.problems.length === 1 ? this.problems[0]!.describe() : this.problems.map((p) => `- ${p.describe()}`).join('\n');
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
