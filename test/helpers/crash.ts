import { Rng } from '../../src/generate/prng.js';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from './project.js';

/**
 * Kill tests against the HTTP fakes (test/e2e/sync-crash-connectors.test.ts): a seeded PRNG for
 * the trial parameters, and the built CLI run in a child process without blocking the test
 * process (the fakes answer from its event loop, so spawnSync would deadlock), SIGKILLed at a
 * point placed on the fake's request log: after the child's k-th request reached it, plus a delay.
 */

/** A seeded float source in [0, 1): the generator's mulberry32 (src/generate/prng.ts). */
export function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

/** A stable 32-bit seed from a base seed and labels (connector name, trial). */
export function seedFor(base: number, ...labels: (string | number)[]): number {
  let h = (base ^ 0x9e3779b9) >>> 0;
  for (const ch of labels.join('|')) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

/** An integer in [lo, hi]. */
export function between(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

/** What the kill needs of a fake: its request log (appended when the fake handles a request) and its latency. */
export interface KillableFake {
  readonly requests: readonly { method: string; path: string }[];
  latencyMs: number;
}

export interface KillPoint {
  /** The child's request (1-based, counted from the start of this run) after which it is killed. */
  afterRequest: number;
  /** Milliseconds between that request reaching the fake and the SIGKILL; 0: synchronously, before the fake answers. */
  delayMs: number;
}

export interface KilledRun {
  /** Whether SIGKILL ended the child (false: it finished first). */
  killed: boolean;
  /** `METHOD path` of the request the kill was placed after. */
  at: string | undefined;
  /** Requests the fake received from this run. */
  requests: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

function cdpChild(args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/cdp.js'), ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
  return { child, exited };
}

/**
 * Runs `cdp <args>` in a child process and SIGKILLs it `point.delayMs` after its
 * `point.afterRequest`-th request reached `fake` (with delay 0, before the fake has answered it,
 * though after it applied it: the acknowledgement is lost).
 */
export async function cdpKilled(fake: KillableFake, point: KillPoint, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<KilledRun> {
  const log = fake.requests as unknown as { push: (...items: unknown[]) => number; length: number } & { method: string; path: string }[];
  const start = log.length;
  const { child, exited } = cdpChild(args, env);
  let at: string | undefined;
  const timers: NodeJS.Timeout[] = [];
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  // The fakes append to their log synchronously as they handle a request (ScriptedServer.receive).
  Object.defineProperty(log, 'push', {
    configurable: true,
    writable: true,
    value(this: unknown[], ...items: unknown[]): number {
      const n = Array.prototype.push.apply(this, items);
      if (at === undefined && n - start >= point.afterRequest) {
        const r = log[start + point.afterRequest - 1]!;
        at = `${r.method} ${r.path.split('?')[0]}`;
        if (point.delayMs === 0) kill();
        else timers.push(setTimeout(kill, point.delayMs));
      }
      return n;
    },
  });
  timers.push(setTimeout(kill, timeoutMs));
  try {
    const { code, signal, stdout, stderr } = await exited;
    return { killed: signal === 'SIGKILL' && at !== undefined, at, requests: log.length - start, code, stdout, stderr };
  } finally {
    for (const t of timers) clearTimeout(t);
    delete (log as { push?: unknown }).push;
  }
}
