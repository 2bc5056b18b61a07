import { Rng } from '../generate/prng.js';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DuckDbWarehouse } from '../warehouse/duckdb-warehouse.js';

/**
 * Crash-safety trials (issue 5): `node dist/bench/kill-trials.js --trials N [--seed S] [--rows R]`.
 * Each trial: a fresh project with R rows (default 2,000) and a file-outbox destination with
 * batch_size 10; `node bin/cdp.js sync` is started as a child and SIGKILLed after a seeded random
 * delay, then rerun to completion. Checked from the outbox files: the set of delivered
 * (op, key, payload_hash) equals the planned changes, every repeat is a record the killed run
 * wrote in its last unacknowledged batch (same idempotency key) and no record is written again
 * after its acknowledgement; a final `cdp plan` is empty. Exit 1 on any failure.
 */

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CDP = path.join(REPO_ROOT, 'bin/cdp.js');
const BATCH = 10;

interface Line { op: string; key: string; idempotency_key: string; payload_hash: string }

/** A seeded float source, so a failing trial can be replayed with the same --seed. */
function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

function cdpSync(args: string[], dir: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CDP, ...args, '--project-dir', dir], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(args: string[], dir: string): string {
  const r = cdpSync(args, dir);
  if (r.code !== 0) throw new Error(`cdp ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function makeProject(rows: number): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cdp-kill-trial-'));
  for (const d of ['seeds', 'models', 'destinations']) mkdirSync(path.join(dir, d));
  writeFileSync(path.join(dir, 'cdp_project.yml'), 'name: kill_trial\n');
  writeFileSync(path.join(dir, 'profiles.yml'), 'target: dev\ntargets:\n  dev:\n    type: duckdb\n    path: target/trial.duckdb\n    schema: main\n    threads: 2\n');
  const lines = ['id,profile_id,email,score'];
  for (let i = 1; i <= rows; i++) lines.push(`${i},p${i},user${i}@example.com,${(i * 7919) % 1000}`);
  writeFileSync(path.join(dir, 'seeds/people.csv'), `${lines.join('\n')}\n`);
  writeFileSync(path.join(dir, 'models/outbox_people.sql'), 'select id, profile_id, email, score from {{ ref "people" }}\n');
  writeFileSync(path.join(dir, 'destinations/outbox.yml'),
    `name: outbox\nmodel: outbox_people\ntype: file\nprimary_key: id\nmapping: { profile_id: profile_id, email: email, score: { column: score, type: integer } }\nmode: mirror\nbatch_size: ${BATCH}\n`);
  return dir;
}

function outboxDir(dir: string): string {
  return path.join(dir, 'target/outbox/outbox');
}

/** The run files (run ids are random: `earlier` files, those of the killed run, come first), with their complete lines. */
function outboxRuns(dir: string, earlier: readonly string[] = []): { file: string; lines: Line[] }[] {
  const out = outboxDir(dir);
  if (!existsSync(out)) return [];
  const files = readdirSync(out).sort((a, b) => Number(!earlier.includes(a)) - Number(!earlier.includes(b)) || (a < b ? -1 : 1));
  return files.map((file) => ({
    file,
    lines: readFileSync(path.join(out, file), 'utf8').split('\n').filter((l) => l !== '').flatMap((l) => {
      try {
        return [JSON.parse(l) as Line];
      } catch {
        return []; // a line cut by the kill was never acknowledged
      }
    }),
  }));
}

async function snapshots(dir: string): Promise<Map<string, string>> {
  const warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'trial', path: path.join(dir, 'target/trial.duckdb'), schema: 'main', threads: 1, settings: {} } as Parameters<typeof DuckDbWarehouse.open>[0]);
  const session = await warehouse.session();
  try {
    const rows = await session.query(`SELECT primary_key, payload_hash FROM cdp_sync.snapshots WHERE destination = 'outbox'`);
    return new Map(rows.map((r) => [String(r['primary_key']), String(r['payload_hash'])]));
  } finally {
    await session.close();
    await warehouse.close();
  }
}

interface Outcome { ok: boolean; killedMidRun: boolean; delayMs: number; linesBeforeKill: number; repeats: number; problems: string[] }

async function trial(rows: number, delayMs: number): Promise<Outcome> {
  const dir = makeProject(rows);
  const problems: string[] = [];
  try {
    must(['build'], dir);
    const plan = (JSON.parse(must(['plan', '--json'], dir)) as { destinations: { planned: Record<string, number> }[] }).destinations[0]!.planned;
    const planned = plan['add']! + plan['change']! + plan['remove']!;
    if (planned !== rows || plan['add'] !== rows) problems.push(`the first plan should add ${rows} rows, got ${JSON.stringify(plan)}`);

    const child = spawn(process.execPath, [CDP, 'sync', '--project-dir', dir], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise((r) => setTimeout(r, delayMs));
    const killedMidRun = child.exitCode === null && child.kill('SIGKILL');
    await exited;
    const killedRuns = outboxRuns(dir);
    const linesBeforeKill = killedRuns.reduce((n, r) => n + r.lines.length, 0);

    const rerun = cdpSync(['sync'], dir);
    if (rerun.code !== 0) problems.push(`the rerun exited ${rerun.code}: ${rerun.stderr.trim().split('\n')[0]}`);

    const after = await snapshots(dir);
    const expected = new Set([...after].map(([key, hash]) => `add ${key} ${hash}`));
    const keys = new Set(after.keys());
    for (let i = 1; i <= rows; i++) if (!keys.has(String(i))) problems.push(`key ${i} missing from the snapshot`);
    if (expected.size !== planned) problems.push(`${expected.size} acknowledged changes, ${planned} planned`);

    const runs = outboxRuns(dir, killedRuns.map((r) => r.file));
    if (killedRuns.length > 1) problems.push(`the killed sync wrote ${killedRuns.length} outbox files`);
    const delivered = runs.flatMap((r) => r.lines.map((l) => `${l.op} ${l.key} ${l.payload_hash}`));
    const deliveredSet = new Set(delivered);
    for (const e of expected) if (!deliveredSet.has(e)) problems.push(`planned ${e} never delivered`);
    for (const d of deliveredSet) if (!expected.has(d)) problems.push(`delivered ${d}, which was not planned`);
    // Repeats: only records of the killed run's last (unacknowledged) batch, sent again with the same key.
    const seen = new Map<string, { run: number; idempotency: string }>();
    let repeats = 0;
    runs.forEach((r, runIndex) => r.lines.forEach((l) => {
      const id = `${l.op} ${l.key} ${l.payload_hash}`;
      const first = seen.get(id);
      if (!first) {
        seen.set(id, { run: runIndex, idempotency: l.idempotency_key });
        return;
      }
      repeats++;
      if (first.idempotency !== l.idempotency_key) problems.push(`${id} resent with another idempotency key`);
      if (first.run === runIndex) problems.push(`${id} written twice in one run`);
      const firstRun = runs[first.run]!;
      const position = firstRun.lines.findIndex((x) => `${x.op} ${x.key} ${x.payload_hash}` === id);
      if (first.run !== runs.length - 2 || position < firstRun.lines.length - BATCH) problems.push(`${id} sent again after it was acknowledged (first write not in the killed run's last batch)`);
    }));
    if (repeats > BATCH) problems.push(`${repeats} repeats, more than one batch (${BATCH})`);

    const final = (JSON.parse(must(['plan', '--json'], dir)) as { destinations: { planned: Record<string, number> }[] }).destinations[0]!.planned;
    if (final['add'] !== 0 || final['change'] !== 0 || final['remove'] !== 0) problems.push(`final plan not empty: ${JSON.stringify(final)}`);
    return { ok: problems.length === 0, killedMidRun, delayMs, linesBeforeKill, repeats, problems };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = parseArgs({ options: { trials: { type: 'string', default: '10' }, seed: { type: 'string', default: '1' }, rows: { type: 'string', default: '2000' }, 'max-delay-ms': { type: 'string' } } });
  const trials = Number(args.values.trials);
  const seed = Number(args.values.seed);
  const rows = Number(args.values.rows);
  if (![trials, seed, rows].every((n) => Number.isInteger(n) && n > 0)) {
    console.error('usage: node dist/bench/kill-trials.js --trials N [--seed S] [--rows R] [--max-delay-ms MS]');
    process.exit(2);
  }
  const random = prng(seed);
  // Kill points are spread over one undisturbed sync of the same project (startup included), unless given.
  let maxDelay = Number(args.values['max-delay-ms'] ?? NaN);
  if (!Number.isFinite(maxDelay)) {
    const dir = makeProject(rows);
    try {
      must(['build'], dir);
      const start = performance.now();
      must(['sync'], dir);
      maxDelay = performance.now() - start;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`kill trials: ${trials} × ${rows} rows, batch_size ${BATCH}, seed ${seed}, kill delay uniform in [0, ${maxDelay.toFixed(0)}] ms`);
  let failed = 0;
  let killed = 0;
  for (let i = 1; i <= trials; i++) {
    const delay = Math.round(random() * maxDelay);
    let outcome: Outcome;
    try {
      outcome = await trial(rows, delay);
    } catch (error) {
      outcome = { ok: false, killedMidRun: false, delayMs: delay, linesBeforeKill: 0, repeats: 0, problems: [error instanceof Error ? error.message : String(error)] };
    }
    if (!outcome.ok) failed++;
    if (outcome.killedMidRun) killed++;
    console.log(`trial ${i}: ${outcome.ok ? 'pass' : 'FAIL'}  kill at ${outcome.delayMs} ms${outcome.killedMidRun ? '' : ' (sync had already exited)'}, ${outcome.linesBeforeKill} outbox lines before the rerun, ${outcome.repeats} repeated`);
    for (const p of outcome.problems.slice(0, 5)) console.log(`  - ${p}`);
  }
  console.log(`summary: ${trials - failed}/${trials} passed, ${killed} killed mid-run, seed ${seed}`);
  if (failed > 0) process.exitCode = 1;
}

await main();
