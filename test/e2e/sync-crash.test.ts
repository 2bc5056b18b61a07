import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, duckdbProject, expectCode, projectPool, spawnCdp, type TempProject } from '../helpers/project.js';

/**
 * Crash safety (invariant 4): `cdp sync` is SIGKILLed mid-run, at a random point, then rerun.
 * Every planned change must reach the outbox, and nothing acknowledged is sent again: the only
 * repeats allowed are records written but not yet acknowledged when the process died (at most
 * one batch), and they carry the same idempotency key.
 */
const track = projectPool();
const ROWS = 300;
const TRIALS = 3;

interface Line {
  op: string;
  key: string;
  idempotency_key: string;
  payload_hash: string;
}

function people(trial: number): string {
  const lines = ['id,profile_id,score'];
  // Each trial changes every third row, drops a few and adds a few.
  for (let i = 1; i <= ROWS + trial * 5; i++) {
    if (trial > 0 && i % 50 === trial) continue;
    lines.push(`${i},p${i},${i % 3 === 0 ? i * 10 + trial : i * 10}`);
  }
  return lines.join('\n') + '\n';
}

function outboxLines(p: TempProject, files: string[]): Line[] {
  const dir = p.path('target/outbox/bulk');
  return files.flatMap((f) => readFileSync(path.join(dir, f), 'utf8').split('\n').filter((l) => l !== '').flatMap((l) => {
    try {
      return [JSON.parse(l) as Line];
    } catch {
      return []; // a line cut by the kill was never acknowledged
    }
  }));
}

function outboxFiles(p: TempProject): string[] {
  const dir = p.path('target/outbox/bulk');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

async function snapshot(p: TempProject): Promise<Map<string, string>> {
  const rows = await p.query(`SELECT primary_key, payload_hash FROM cdp_sync.snapshots WHERE destination = 'bulk'`);
  return new Map(rows.map((r) => [String(r['primary_key']), String(r['payload_hash'])]));
}

/** Starts `cdp sync`, waits until the outbox of this run has `after` lines, and SIGKILLs it. */
async function killMidRun(p: TempProject, known: string[], after: number): Promise<boolean> {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin/cdp.js'), 'sync', '--project-dir', p.dir], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let killed = false;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && child.exitCode === null) {
    const fresh = outboxFiles(p).filter((f) => !known.includes(f));
    const written = fresh.length === 0 ? 0 : readFileSync(path.join(p.path('target/outbox/bulk'), fresh[0]!), 'utf8').split('\n').length - 1;
    if (written >= after) {
      killed = child.kill('SIGKILL');
      break;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  await exited;
  return killed;
}

describe('sync crash safety', () => {
  it(`delivers every change exactly once in effect across ${TRIALS} SIGKILLs`, async () => {
    const p = track(duckdbProject({
      'seeds/people.csv': people(0),
      'models/bulk_people.sql': 'select id, profile_id, score from {{ ref "people" }}\n',
      'destinations/bulk.yml': 'name: bulk\nmodel: bulk_people\ntype: file\nprimary_key: id\nmapping: { profile_id: profile_id, score: { column: score, type: integer } }\nmode: mirror\nbatch_size: 1\n',
    }));
    let kills = 0;
    let reconstructed = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      p.write({ 'seeds/people.csv': people(trial) });
      expectCode(await p.cdp(['build']), 0);
      const before = trial === 0 ? new Map<string, string>() : await snapshot(p);
      const known = outboxFiles(p);
      const plan = JSON.parse(expectCode(await p.cdp(['plan', '--json']), 0).stdout).destinations[0];
      const planned = plan.planned.add + plan.planned.change + plan.planned.remove;
      expect(planned).toBeGreaterThan(50);

      if (await killMidRun(p, known, 5 + Math.floor(Math.random() * (planned - 20)))) kills++;
      const rerun = spawnCdp(['sync', '--project-dir', p.dir], REPO_ROOT);
      expect(rerun.code, rerun.stderr).toBe(0);

      const after = await snapshot(p);
      // The expected changes, from the snapshots before and after: (key, op, hash).
      const expected = new Set<string>();
      for (const [key, hash] of after) if (before.get(key) !== hash) expected.add(`${before.has(key) ? 'change' : 'add'} ${key} ${hash}`);
      for (const [key, hash] of before) if (!after.has(key)) expected.add(`remove ${key} ${hash}`);
      expect(expected.size).toBe(planned);

      const lines = outboxLines(p, outboxFiles(p).filter((f) => !known.includes(f)));
      const delivered = lines.map((l) => `${l.op} ${l.key} ${l.payload_hash}`);
      expect(new Set(delivered)).toEqual(expected);
      // At most one batch (batch_size 1) was written but not acknowledged before the kill.
      expect(delivered.length - expected.size).toBeLessThanOrEqual(1);
      const byRecord = new Map<string, Set<string>>();
      for (const l of lines) byRecord.set(`${l.op} ${l.key} ${l.payload_hash}`, (byRecord.get(`${l.op} ${l.key} ${l.payload_hash}`) ?? new Set()).add(l.idempotency_key));
      for (const keys of byRecord.values()) expect(keys.size).toBe(1);
      // Reconciliation: the killed run's counts, reconstructed when the rerun found it, plus the
      // rerun's add up to the plan, op by op: each change acknowledged exactly once.
      const [rerunRow, killedRow] = await p.query(`SELECT status, succeeded_add AS a, succeeded_change AS c, succeeded_remove AS r FROM cdp_sync.runs ORDER BY started_at DESC LIMIT 2`);
      expect(killedRow!['status']).toBe('aborted');
      const sum = (k: string) => Number(rerunRow![k]) + Number(killedRow![k]);
      expect({ add: sum('a'), change: sum('c'), remove: sum('r') }).toEqual(plan.planned);
      reconstructed += Number(killedRow!['a']) + Number(killedRow!['c']) + Number(killedRow!['r']);
      // Settled: nothing left to send.
      expect(JSON.parse(expectCode(await p.cdp(['plan', '--json']), 0).stdout).destinations[0].planned).toEqual({ add: 0, change: 0, remove: 0 });
    }
    expect(kills).toBe(TRIALS);
    // The killed runs had acknowledged records, and their history says so.
    expect(reconstructed).toBeGreaterThan(0);
    const aborted = await p.query(`SELECT COUNT(*) AS n FROM cdp_sync.runs WHERE status = 'aborted'`);
    expect(Number(aborted[0]!['n'])).toBe(TRIALS);
  }, 120_000);
});
