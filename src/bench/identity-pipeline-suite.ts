import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../cli/main.js';
import { generate } from '../generate/index.js';
import type { NodeResult } from '../run/result.js';
import { DuckDbWarehouse } from '../warehouse/duckdb-warehouse.js';
import { MemorySampler, type BenchResult, type Scale, type Suite } from './report.js';

/**
 * The identity layer as a user runs it: the repo-root project's identity.yml over generated
 * sources, through `cdp run --select identity_edges identity_graph`. A full run (from source
 * rows to identity_graph with stable ids), then 1% more source rows from new persons, then an
 * incremental run. The issue's goal: the incremental run costs ≤ 20% of the full one.
 */

const PERSONS = { small: 20_000, default: 100_000, large: 1_000_000 } as const;
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SOURCES: Record<string, string> = {
  bookings: 'booked_at',
  payments: 'paid_at',
  accounts: 'created_at',
  web_events: 'occurred_at',
  consent_events: 'occurred_at',
};

async function cdp(dir: string, args: string[]): Promise<void> {
  const lines: string[] = [];
  const code = await main(['node', 'cdp', ...args, '--project-dir', dir], {
    out: { write: (line) => lines.push(line) },
    err: { write: (line) => lines.push(line) },
  });
  if (code !== 0) throw new Error(`cdp ${args.join(' ')} exited ${code}:\n${lines.join('\n')}`);
}

function nodeSeconds(dir: string): Map<string, number> {
  const results = (JSON.parse(readFileSync(path.join(dir, 'target/run_results.json'), 'utf8')) as { results: NodeResult[] }).results;
  return new Map(results.map((r) => [r.unique_id.split('.').pop()!, r.execution_time * 1000]));
}

/** Rows of persons N+1.. (the generator's files for more persons extend those for fewer), dated after everything loaded. */
async function appendNewPersons(dir: string, extra: string, baseRows: Map<string, number>): Promise<number> {
  const warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'bench', path: path.join(dir, 'target/bench.duckdb'), schema: 'main', threads: 2, settings: {} });
  const session = await warehouse.session();
  let added = 0;
  try {
    for (const [source, ts] of Object.entries(SOURCES)) {
      const file = path.join(extra, `${source}.csv`).replaceAll("'", "''");
      const skip = baseRows.get(source)!;
      await session.execute(
        `INSERT INTO raw.${source} BY NAME
         SELECT * EXCLUDE (rn) REPLACE (TIMESTAMP '2026-11-16 00:00:00' + to_seconds(rn) AS ${ts})
         FROM (SELECT *, row_number() OVER () AS rn FROM read_csv('${file}', all_varchar = true)) WHERE rn > ${skip}`,
      );
      const [row] = await session.query(`SELECT COUNT(*) AS n FROM raw.${source} WHERE ${ts} >= TIMESTAMP '2026-11-16 00:00:00'`);
      added += Number(row?.['n'] ?? 0);
    }
  } finally {
    await session.close();
    await warehouse.close();
  }
  return added;
}

async function run(scale: Scale): Promise<BenchResult> {
  const persons = typeof scale === 'number' ? scale : PERSONS[scale];
  const extraPersons = Math.max(1, Math.round(persons / 100));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cdp-bench-pipeline-'));
  const extra = path.join(dir, 'extra');
  const memoryLimit = process.env['CDP_BENCH_MEMORY_LIMIT'];
  if (memoryLimit !== undefined && !/^\d+(\.\d+)?\s*[KMGT]i?B$/i.test(memoryLimit)) throw new Error(`CDP_BENCH_MEMORY_LIMIT must look like 3GB, got ${memoryLimit}`);
  try {
    for (const entry of ['cdp_project.yml', 'identity.yml', 'golden_record.yml', 'models', 'seeds']) cpSync(path.join(REPO_ROOT, entry), path.join(dir, entry), { recursive: true });
    // CDP_BENCH_MEMORY_LIMIT (e.g. 3GB) sets DuckDB's memory_limit, as a user would in profiles.yml.
    const settings = memoryLimit ? `    settings: { memory_limit: '${memoryLimit}' }\n` : '';
    writeFileSync(path.join(dir, 'profiles.yml'), `target: bench\ntargets:\n  bench:\n    type: duckdb\n    path: target/bench.duckdb\n    schema: main\n    threads: 2\n${settings}`);
    const base = await generate({ persons, seed: 11, out: path.join(dir, 'data') });
    await generate({ persons: persons + extraPersons, seed: 11, out: extra });
    const baseRows = new Map(Object.keys(SOURCES).map((s) => [s, base.files[s as keyof typeof base.files]!.rows]));
    const sourceRows = [...baseRows.values()].reduce((a, b) => a + b, 0);
    await cdp(dir, ['build', '--exclude', 'identity_edges+']);

    const sampler = new MemorySampler();
    const fullStarted = performance.now();
    await cdp(dir, ['run', '--select', 'identity_edges', 'identity_graph', '--full-refresh']);
    const fullMs = performance.now() - fullStarted;
    const full = nodeSeconds(dir);

    const added = await appendNewPersons(dir, extra, baseRows);
    const incStarted = performance.now();
    await cdp(dir, ['run', '--select', 'identity_edges', 'identity_graph']);
    const incMs = performance.now() - incStarted;
    const inc = nodeSeconds(dir);
    const memory = sampler.stop();

    return {
      suite: 'identity-pipeline',
      scale: `${typeof scale === 'number' ? 'custom' : scale} (${persons.toLocaleString('en-US')} persons, ${sourceRows.toLocaleString('en-US')} source rows, DuckDB file${memoryLimit ? `, memory_limit ${memoryLimit}` : ''})`,
      figures: [
        { label: 'source rows', value: sourceRows, unit: '', key: true },
        { label: 'full: identity_edges', value: full.get('identity_edges')!, unit: 'ms', key: true },
        { label: 'full: identity_graph', value: full.get('identity_graph')!, unit: 'ms', key: true },
        { label: 'full: cdp run (both, CLI included)', value: fullMs, unit: 'ms', key: true },
        { label: 'new source rows', value: added, unit: '', detail: `${((100 * added) / sourceRows).toFixed(2)}% (${extraPersons} new persons)`, key: true },
        { label: 'incremental: identity_edges', value: inc.get('identity_edges')!, unit: 'ms', key: true },
        { label: 'incremental: identity_graph', value: inc.get('identity_graph')!, unit: 'ms', key: true },
        { label: 'incremental: cdp run (both, CLI included)', value: incMs, unit: 'ms', key: true },
      ],
      ratios: [{ label: 'incremental / full', value: incMs / fullMs, reference: 'goal ≤ 0.2: cdp run of identity_edges + identity_graph after 1% new source rows vs --full-refresh' }],
      peakRssMiB: memory.peakRssMiB,
      peakHeapMiB: memory.peakHeapMiB,
      notes: [
        'Generation, loading the sources and staging views are not timed. Both runs go through the CLI in-process (compile included).',
        `process max RSS ${memory.processMaxRssMiB.toFixed(0)} MiB (DuckDB file database, threads=2, memory_limit ${memoryLimit ?? 'default: 80% of RAM'}).`,
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const identityPipelineSuite: Suite = {
  name: 'identity-pipeline',
  description: 'identity.yml end to end through cdp run: source rows → identity_graph with stable ids, full vs incremental after 1% new rows',
  run,
};
