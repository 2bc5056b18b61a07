import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { main } from '../cli/main.js';
import { mappingHash, type Contract, type MappedField } from '../sync/contract.js';
import { ensureState } from '../sync/engine.js';
import { preflight } from '../sync/plan.js';
import { diffSql, fingerprintExpression, fingerprintVersionSql, payloadExpression, planCountsSql } from '../sync/sql.js';
import { DuckDbWarehouse } from '../warehouse/duckdb-warehouse.js';
import type { Session } from '../warehouse/warehouse.js';
import { collectGarbage, MemorySampler, timeMs, type BenchResult, type Figure, type Ratio, type Scale, type Suite } from './report.js';

/**
 * Reverse ETL (issue 5, "Performance"):
 * (a) the snapshot diff `cdp plan` runs, over two generated snapshots with 10 mapped columns
 *     (2% changed, 1% added, 1% removed), against one full scan of both snapshots;
 * (b) `cdp sync` end to end to a webhook destination pointing at a loopback receiver in this
 *     process (always 200, counts records), batch_size 1000, concurrency 4, no rate limit.
 * Both run the CLI in-process against a temporary DuckDB file project. CDP_BENCH_MEMORY_LIMIT
 * (e.g. 512MB) sets DuckDB's memory_limit in its profile, as a user would in profiles.yml.
 */

const DIFF_ROWS = { small: 500_000, default: 5_000_000, large: 5_000_000 } as const;
const SYNC_ROWS = { small: [100_000], default: [100_000], large: [100_000, 1_000_000] } as const;
const SECRET_ENV = 'CDP_BENCH_WEBHOOK_SECRET';

function memoryLimit(): string | undefined {
  const limit = process.env['CDP_BENCH_MEMORY_LIMIT'];
  if (limit !== undefined && !/^\d+(\.\d+)?\s*[KMGT]i?B$/i.test(limit)) throw new Error(`CDP_BENCH_MEMORY_LIMIT must look like 512MB, got ${limit}`);
  return limit;
}

/** Ten columns of a row from hashes of its number `i` and a `salt` (which changes c1 for changed rows). */
function columnsSql(i: string, salt: string): string {
  return [
    `'name-' || CAST(hash(${i}, 1, ${salt}) % 1000003 AS VARCHAR) AS c1`,
    `'mail' || CAST(hash(${i}, 2) % 999983 AS VARCHAR) || '@example.com' AS c2`,
    `'city-' || CAST(hash(${i}, 3) % 5000 AS VARCHAR) AS c3`,
    `'segment-' || CAST(hash(${i}, 4) % 40 AS VARCHAR) AS c4`,
    `md5(CAST(${i} AS VARCHAR)) AS c5`,
    `CAST(hash(${i}, 6) % 100000 AS BIGINT) AS c6`,
    `CAST(hash(${i}, 7) % 1000 AS BIGINT) AS c7`,
    `CAST(hash(${i}, 8) % 1000000 AS BIGINT) / 100.0 AS c8`,
    `CAST(hash(${i}, 9) % 2 = 0 AS BOOLEAN) AS c9`,
    `DATE '2020-01-01' + CAST(hash(${i}, 10) % 2000 AS INTEGER) AS c10`,
  ].join(', ');
}

const MAPPING: MappedField[] = ([
  { target: 'name', column: 'c1', type: 'string', transforms: [] },
  { target: 'email', column: 'c2', type: 'string', transforms: [] },
  { target: 'city', column: 'c3', type: 'string', transforms: [] },
  { target: 'segment', column: 'c4', type: 'string', transforms: [] },
  { target: 'token', column: 'c5', type: 'string', transforms: [] },
  { target: 'visits', column: 'c6', type: 'integer', transforms: [] },
  { target: 'orders', column: 'c7', type: 'integer', transforms: [] },
  { target: 'ltv', column: 'c8', type: 'number', transforms: [] },
  { target: 'active', column: 'c9', type: 'boolean', transforms: [] },
  { target: 'since', column: 'c10', type: 'string', transforms: [] },
] as MappedField[]).sort((a, b) => (a.target < b.target ? -1 : 1));

function mappingYaml(): string {
  return `mapping:\n${MAPPING.map((f) => `  ${f.target}: { column: ${f.column}, type: ${f.type} }`).join('\n')}\n`;
}

function writeProject(dir: string, destination: string): void {
  const limit = memoryLimit();
  mkdirSync(path.join(dir, 'models'), { recursive: true });
  mkdirSync(path.join(dir, 'destinations'), { recursive: true });
  writeFileSync(path.join(dir, 'cdp_project.yml'), 'name: sync_bench\n');
  writeFileSync(path.join(dir, 'profiles.yml'), `target: bench\ntargets:\n  bench:\n    type: duckdb\n    path: target/bench.duckdb\n    schema: main\n    threads: 2\n${limit ? `    settings: { memory_limit: '${limit}' }\n` : ''}`);
  writeFileSync(path.join(dir, 'models/current_rows.sql'), 'select * from raw.current_snapshot\n');
  writeFileSync(path.join(dir, 'destinations', 'bench.yml'), destination);
}

async function cdp(dir: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['node', 'cdp', ...args, '--project-dir', dir], { env, out: { write: (l) => out.push(l) }, err: { write: (l) => err.push(l) } });
  if (code !== 0) throw new Error(`cdp ${args.join(' ')} exited ${code}:\n${out.join('\n')}\n${err.join('\n')}`);
  return out.join('\n');
}

async function withSession<T>(dir: string, fn: (session: Session, warehouse: DuckDbWarehouse) => Promise<T>): Promise<T> {
  const limit = memoryLimit();
  const settings = limit ? { memory_limit: limit } : {};
  const warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'bench', path: path.join(dir, 'target/bench.duckdb'), schema: 'main', threads: 2, settings } as Parameters<typeof DuckDbWarehouse.open>[0]);
  const session = await warehouse.session();
  try {
    return await fn(session, warehouse);
  } finally {
    await session.close();
    await warehouse.close();
  }
}

/** Only what payloadExpression / diffSql read: the mapping, key, relation, mode and name. */
function benchContract(): Contract {
  return {
    name: 'bench', file: 'destinations/bench.yml', model: 'current_rows', relation: { schema: 'main', name: 'current_rows' }, primaryKey: 'id', mapping: MAPPING,
    mode: 'mirror', onRemove: 'delete', consent: [], mappingHash: mappingHash(MAPPING),
  } as unknown as Contract;
}


interface DiffFigures { figures: Figure[]; ratios: Ratio[]; notes: string[]; peakRss: number; peakHeap: number }

async function diffBench(rows: number): Promise<DiffFigures> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cdp-bench-sync-diff-'));
  try {
    writeProject(dir, `name: bench\nmodel: current_rows\ntype: file\nprimary_key: id\n${mappingYaml()}mode: mirror\n`);
    // previous: ids 0..rows-1. current: 1% removed, 2% with c1 changed, 1% added after the end.
    await withSession(dir, async (s, w) => {
      await s.execute('CREATE SCHEMA IF NOT EXISTS raw');
      await s.execute(`CREATE TABLE raw.previous_snapshot AS SELECT i AS id, ${columnsSql('i', '0')} FROM range(${rows}) AS t(i)`);
      await s.execute(`CREATE TABLE raw.current_snapshot AS
        SELECT i AS id, ${columnsSql('i', 'CASE WHEN hash(i, 99) % 100 IN (1, 2) THEN 1 ELSE 0 END')} FROM range(${rows}) AS t(i) WHERE hash(i, 99) % 100 <> 0
        UNION ALL SELECT i AS id, ${columnsSql('i', '0')} FROM range(${rows}, ${rows + Math.round(rows / 100)}) AS t(i)`);
      // The last acknowledged snapshot, hashed and fingerprinted by the engine's own SQL.
      await ensureState(s, w.dialect, undefined);
      const d = w.dialect;
      const contract = benchContract();
      const info = await s.describe({ schema: 'raw', name: 'previous_snapshot' });
      const columnTypes = Object.fromEntries((info?.columns ?? []).map((c) => [c.name.toLowerCase(), c.type]));
      await s.execute(`INSERT INTO cdp_sync.snapshots (destination, primary_key, payload_hash, payload, synced_at, fingerprint, fingerprint_version)
        SELECT 'bench', primary_key, ${d.sha256Hex('payload')}, payload, now(), fingerprint, ${fingerprintVersionSql(d, contract, columnTypes)} FROM (
          SELECT CAST(m.id AS VARCHAR) AS primary_key, ${payloadExpression(d, contract)} AS payload, ${fingerprintExpression(d, contract)} AS fingerprint FROM raw.previous_snapshot AS m)`);
      await s.execute('CHECKPOINT');
    });
    await cdp(dir, ['build']);
    collectGarbage();

    const sampler = new MemorySampler();
    const all = `id, ${MAPPING.map((f) => f.column).join(', ')}`;
    const scans: number[] = [];
    const diffs: number[] = [];
    const textDiffs: number[] = [];
    let counts: Record<string, number> = {};
    await withSession(dir, async (s, w) => {
      const inputs = await preflight(s, w.dialect, benchContract());
      if (inputs.fingerprints !== 'current') throw new Error(`the bench snapshot's fingerprints are ${inputs.fingerprints}, expected current`);
      const diff = planCountsSql(diffSql(w.dialect, benchContract(), inputs));
      // The same diff for a snapshot written by an older cdp (no fingerprints): payload text compared.
      const textDiff = planCountsSql(diffSql(w.dialect, benchContract(), { ...inputs, fingerprints: 'absent' }));
      for (let i = 0; i < 2; i++) {
        scans.push(await timeMs(async () => {
          await s.query(`SELECT COUNT(*) AS n, SUM(hash(${all})) AS h FROM raw.previous_snapshot`);
          await s.query(`SELECT COUNT(*) AS n, SUM(hash(${all})) AS h FROM raw.current_snapshot`);
        }));
        sampler.sample();
        diffs.push(await timeMs(async () => {
          counts = {};
          for (const r of await s.query(diff)) counts[String(r['op'])] = (counts[String(r['op'])] ?? 0) + Number(r['n']);
        }));
        sampler.sample();
        textDiffs.push(await timeMs(() => s.query(textDiff)));
      }
    });
    const plans: number[] = [];
    let planned: Record<string, number> = {};
    for (let i = 0; i < 2; i++) {
      let json = '';
      plans.push(await timeMs(async () => { json = await cdp(dir, ['plan', '--json']); }));
      planned = (JSON.parse(json) as { destinations: { planned: Record<string, number> }[] }).destinations[0]!.planned;
      sampler.sample();
    }
    const memory = sampler.stop();
    const scan = Math.min(...scans);
    const diff = Math.min(...diffs);
    const plan = Math.min(...plans);
    return {
      figures: [
        { label: 'diff: rows per snapshot', value: rows, unit: '', key: true },
        { label: 'diff: full scan of both snapshots', value: scan, unit: 'ms', detail: `runs ${scans.map((x) => x.toFixed(0)).join(', ')}`, key: true },
        { label: 'diff: engine diff query (planCountsSql)', value: diff, unit: 'ms', detail: `runs ${diffs.map((x) => x.toFixed(0)).join(', ')}`, key: true },
        { label: 'diff: snapshot without fingerprints (older cdp), payload text compared', value: Math.min(...textDiffs), unit: 'ms', detail: `runs ${textDiffs.map((x) => x.toFixed(0)).join(', ')}; once per destination: cdp sync then refreshes the fingerprints` },
        { label: 'diff: cdp plan --json (in-process)', value: plan, unit: 'ms', detail: `runs ${plans.map((x) => x.toFixed(0)).join(', ')}`, key: true },
        { label: 'diff: planned add/change/remove', value: planned['add']! + planned['change']! + planned['remove']!, unit: '', detail: `${planned['add']}/${planned['change']}/${planned['remove']}` },
      ],
      ratios: [
        { label: 'diff query / full scan', value: diff / scan, reference: `goal ≤ 3: engine diff SQL vs one full scan of both ${rows.toLocaleString('en-US')}-row snapshots` },
        { label: 'cdp plan / full scan', value: plan / scan, reference: 'goal ≤ 3: the whole cdp plan --json (compile, preflight, counts, samples)' },
      ],
      notes: [
        `diff counts by op: ${JSON.stringify(counts)}; cdp plan planned ${JSON.stringify(planned)}`,
        `diff phase peak RSS ${memory.peakRssMiB.toFixed(0)} MiB (sampled), process max RSS ${memory.processMaxRssMiB.toFixed(0)} MiB; DuckDB file database, threads=2. Times are the min of 2 runs.`,
      ],
      peakRss: memory.peakRssMiB,
      peakHeap: memory.peakHeapMiB,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A loopback webhook receiver: counts records, always answers 200 with no body. */
async function startReceiver(): Promise<{ server: Server; url: string; records: () => number; requests: () => number; firstAt: () => number | undefined }> {
  let records = 0;
  let requests = 0;
  let firstAt: number | undefined;
  const server = createServer((req, res) => {
    firstAt ??= performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests++;
      records += (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { records: unknown[] }).records.length;
      res.writeHead(200).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}/hook`, records: () => records, requests: () => requests, firstAt: () => firstAt };
}

interface SyncFigures { rows: number; ms: number; firstRecordMs: number; received: number; requests: number; peakRss: number; peakHeap: number; processMaxRss: number }

async function syncBench(rows: number): Promise<SyncFigures> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cdp-bench-sync-hook-'));
  const receiver = await startReceiver();
  const env = { ...process.env, [SECRET_ENV]: 'bench-secret' };
  process.env[SECRET_ENV] = 'bench-secret';
  try {
    writeProject(dir, `name: bench\nmodel: current_rows\ntype: webhook\nprimary_key: id\n${mappingYaml()}mode: upsert\nbatch_size: 1000\n`
      + `options:\n  url: ${receiver.url}\n  secret: '{{ env "${SECRET_ENV}" }}'\ndelivery:\n  concurrency: 4\n`);
    await withSession(dir, async (s) => {
      await s.execute('CREATE SCHEMA IF NOT EXISTS raw');
      // No snapshot yet: every row is a planned add (a changed row for the destination).
      await s.execute(`CREATE TABLE raw.current_snapshot AS SELECT i AS id, ${columnsSql('i', '0')} FROM range(${rows}) AS t(i)`);
    });
    await cdp(dir, ['build'], env);
    collectGarbage();
    const sampler = new MemorySampler();
    const started = performance.now();
    const ms = await timeMs(() => cdp(dir, ['sync'], env));
    const memory = sampler.stop();
    if (receiver.records() !== rows) throw new Error(`the receiver got ${receiver.records()} records, expected ${rows}`);
    return { rows, ms, firstRecordMs: (receiver.firstAt() ?? started) - started, received: receiver.records(), requests: receiver.requests(), peakRss: memory.peakRssMiB, peakHeap: memory.peakHeapMiB, processMaxRss: memory.processMaxRssMiB };
  } finally {
    await new Promise<void>((resolve) => { receiver.server.closeAllConnections(); receiver.server.close(() => resolve()); });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function run(scale: Scale): Promise<BenchResult> {
  const diffRows = typeof scale === 'number' ? scale : DIFF_ROWS[scale];
  const syncRows: readonly number[] = typeof scale === 'number' ? [100_000] : SYNC_ROWS[scale];
  const diff = await diffBench(diffRows);
  const syncs: SyncFigures[] = [];
  for (const n of syncRows) {
    collectGarbage();
    syncs.push(await syncBench(n));
  }
  const figures: Figure[] = [...diff.figures, { label: 'diff: peak RSS', value: diff.peakRss, unit: 'MiB', key: true }];
  const ratios: Ratio[] = [...diff.ratios];
  for (const s of syncs) {
    const k = `${s.rows / 1000}k`;
    figures.push(
      { label: `sync ${k}: cdp sync (in-process)`, value: s.ms, unit: 'ms', detail: `${s.requests} requests; first record after ${s.firstRecordMs.toFixed(0)} ms (compile, checks, plan)`, key: true },
      { label: `sync ${k}: rows/s`, value: Math.round(s.rows / (s.ms / 1000)), unit: 'rows/s', key: true },
      { label: `sync ${k}: peak RSS`, value: s.peakRss, unit: 'MiB', detail: `heapUsed ${s.peakHeap.toFixed(0)} MiB`, key: true },
    );
    ratios.push({ label: `sync ${k} rows/s / goal`, value: s.rows / (s.ms / 1000) / 50_000, reference: `goal ≥ 1: ${k} adds to the webhook at ≥ 50k rows/s` });
  }
  return {
    suite: 'sync',
    scale: `${typeof scale === 'number' ? 'custom' : scale} (diff ${diffRows.toLocaleString('en-US')} rows, sync ${syncRows.map((n) => n.toLocaleString('en-US')).join(' + ')} rows${memoryLimit() ? `, memory_limit ${memoryLimit()}` : ''})`,
    figures,
    ratios,
    peakRssMiB: Math.max(diff.peakRss, ...syncs.map((s) => s.peakRss)),
    peakHeapMiB: Math.max(diff.peakHeap, ...syncs.map((s) => s.peakHeap)),
    notes: [
      ...diff.notes,
      'sync: the loopback receiver runs in the same process and event loop as cdp sync (it parses each body to count records), so its cost is included in rows/s and RSS.',
      ...syncs.map((s) => `sync ${s.rows}: receiver got ${s.received} records in ${s.requests} requests; first after ${s.firstRecordMs.toFixed(0)} ms; peak heapUsed ${s.peakHeap.toFixed(0)} MiB; process max RSS so far ${s.processMaxRss.toFixed(0)} MiB.`),
      `DuckDB memory_limit: ${memoryLimit() ?? 'default (80% of RAM)'}; 1-min load average at the end ${os.loadavg()[0]!.toFixed(2)} (${os.cpus().length} cores).`,
    ],
  };
}

export const syncSuite: Suite = {
  name: 'sync',
  description: 'reverse ETL: snapshot diff (2% changed, 1% added, 1% removed) vs a full scan, and cdp sync throughput to a loopback webhook',
  run,
};
