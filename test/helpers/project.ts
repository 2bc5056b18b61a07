import { cpSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach } from 'vitest';
import { main } from '../../src/cli/main.js';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

/** A throwaway project directory; `files` maps relative paths to contents. */
export class TempProject {
  readonly dir: string;

  constructor(files: Record<string, string> = {}) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'cdp-test-'));
    this.write(files);
  }

  /** A copy of the repo-root project (models, seeds, data, tests, profiles). */
  static fromRepoRoot(): TempProject {
    const project = new TempProject();
    for (const entry of ['cdp_project.yml', 'profiles.yml', 'identity.yml', 'golden_record.yml', 'audiences', 'destinations', 'models', 'seeds', 'data', 'tests']) {
      cpSync(path.join(REPO_ROOT, entry), path.join(project.dir, entry), { recursive: true });
    }
    return project;
  }

  write(files: Record<string, string>): this {
    for (const [file, text] of Object.entries(files)) {
      const target = path.join(this.dir, file);
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, text);
    }
    return this;
  }

  remove(file: string): this {
    rmSync(path.join(this.dir, file), { force: true, recursive: true });
    return this;
  }

  read(file: string): string {
    return readFileSync(path.join(this.dir, file), 'utf8');
  }

  json<T = Record<string, unknown>>(file: string): T {
    return JSON.parse(this.read(file)) as T;
  }

  path(file = ''): string {
    return path.join(this.dir, file);
  }

  /** Runs the CLI in-process, as `cdp <args> --project-dir <dir>`. */
  async cdp(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
    const out: string[] = [];
    const err: string[] = [];
    const withDir = args[0] === 'init' ? args : [...args, '--project-dir', this.dir];
    const code = await main(['node', 'cdp', ...withDir], {
      env: { ...process.env, ...env },
      out: { write: (line) => out.push(line) },
      err: { write: (line) => err.push(line) },
    });
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  }

  /** Query the project's DuckDB file after a run. */
  async query(sql: string, file = 'target/test.duckdb'): Promise<Record<string, unknown>[]> {
    const instance = await DuckDBInstance.create(this.path(file));
    const connection = await instance.connect();
    try {
      const reader = await connection.runAndReadAll(sql);
      return reader.getRowObjectsJS() as Record<string, unknown>[];
    } finally {
      connection.disconnectSync();
      instance.closeSync();
    }
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (`bin/cdp.js`) in a child process, for exit codes and process-level behaviour. */
export function spawnCdp(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): CliRun {
  const result = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin/cdp.js'), ...args], {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** A minimal DuckDB project writing to target/test.duckdb, plus extra files. */
export function duckdbProject(files: Record<string, string> = {}): TempProject {
  return new TempProject({
    'cdp_project.yml': 'name: test_project\n',
    'profiles.yml': 'target: dev\ntargets:\n  dev:\n    type: duckdb\n    path: target/test.duckdb\n    schema: main\n    threads: 2\n',
    ...files,
  });
}

/**
 * The temporary projects of one test file: `track(p)` registers a project, and `hook` (afterEach
 * by default, afterAll for suites that share built projects) removes them.
 */
export function projectPool(hook: (fn: () => void) => void = afterEach): <T extends TempProject>(p: T) => T {
  const projects: TempProject[] = [];
  hook(() => {
    for (const p of projects.splice(0)) p.cleanup();
  });
  return (p) => {
    projects.push(p);
    return p;
  };
}

/** Everything the CLI printed, for message assertions. */
export function output(run: CliRun): string {
  return `${run.stdout}\n${run.stderr}`;
}

/** Asserts the exit code, showing the whole output when it differs. */
export function expectCode(run: CliRun, code: number): CliRun {
  if (run.code !== code) throw new Error(`expected exit ${code}, got ${run.code}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`);
  return run;
}
