import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../cli/main.js';
import type { NodeResult } from '../run/result.js';
import { DuckDbWarehouse } from '../warehouse/duckdb-warehouse.js';
import { MemorySampler, timeMs, type BenchResult, type Scale, type Suite } from './report.js';

/**
 * golden_record.yml at scale: 15 survivorship traits and 10 computed traits over N profiles and
 * 20·N events (default 1M and 20M), built by `cdp run --select profile_traits golden_records`,
 * as a ratio to one full scan of the events table. Goal from the issue: ≤ 4×.
 *
 * Data is made in DuckDB from hashes of row numbers (deterministic, no files). identity_graph is
 * built by cdp from a customers table (one customer_id and one email per profile) before timing.
 */

const PROFILES = { small: 100_000, default: 1_000_000, large: 1_000_000 } as const;
const EVENTS_PER_PROFILE = 20;
const EVENTS = ['page_view', 'add_to_cart', 'purchase', 'class_booked', 'class_attended', 'class_cancelled'];

function projectFiles(): Record<string, string> {
  const attrs = Array.from({ length: 15 }, (_, i) => i);
  const rules = ['most_recent', 'first_seen', 'source_priority', 'most_frequent', 'verified_first'];
  const traits = attrs.map((i) => {
    const rule = rules[i % rules.length]!;
    const candidate = (source: string) => `      - { from: ref('${source}'), identifier: { type: customer_id, column: customer_id }, column: attr_${i}, timestamp: updated_at, source: ${source}${source === 'crm' ? ', verified: true' : ''} }`;
    return [`  attr_${i}:`, '    type: string', `    rule: ${rule}`, ...(rule === 'source_priority' ? ['    priority: [crm, app]'] : []), '    candidates:', candidate('crm'), candidate('app')].join('\n');
  });
  const computed = [
    "  events_total: { aggregate: count }",
    "  purchases: { aggregate: count, events: [purchase] }",
    "  carts_last_30_days: { aggregate: count, events: [add_to_cart], within_days: 30 }",
    "  attended_last_30_days: { aggregate: count, events: [class_attended], within_days: 30 }",
    "  lifetime_revenue: { aggregate: sum, property: amount, events: [purchase] }",
    "  largest_order: { aggregate: max, property: amount, events: [purchase] }",
    "  smallest_order: { aggregate: min, property: amount, events: [purchase] }",
    "  first_seen_at: { aggregate: first_time }",
    "  last_cancellation_at: { aggregate: last_time, events: [class_cancelled] }",
    "  days_since_last_activity: { aggregate: days_since_last }",
  ];
  return {
    'cdp_project.yml': 'name: bench_profiles\n',
    'profiles.yml': 'target: bench\ntargets:\n  bench:\n    type: duckdb\n    path: target/bench.duckdb\n    schema: main\n    threads: 2\n',
    'identity.yml': `identifier_types:
  customer_id: { limit: 1 }
  email: { normalize: email }
edge_sources:
  - name: customers
    from: source('raw', 'customers')
    identifiers: { customer_id: customer_id, email: email }
    timestamp: created_at
    verified: true
`,
    'models/sources.yml': 'sources:\n  - name: raw\n    tables:\n      - name: customers\n      - name: events\n      - name: crm\n      - name: app\n',
    'models/crm.sql': 'select * from {{ source "raw" "crm" }}\n',
    'models/app.sql': 'select * from {{ source "raw" "app" }}\n',
    'golden_record.yml': [
      `as_of: "CAST('2026-11-15' AS TIMESTAMP)"`,
      'event_sources:',
      "  - { name: events, from: \"source('raw', 'events')\", identifier: { type: customer_id, column: customer_id }, timestamp: occurred_at, event_sql: event_name, properties: [amount] }",
      'computed_traits:',
      ...computed,
      'traits:',
      ...traits,
      '',
    ].join('\n'),
  };
}

function dataSql(profiles: number): string[] {
  const events = profiles * EVENTS_PER_PROFILE;
  const attrColumns = Array.from({ length: 15 }, (_, i) => `'v' || (hash(range, ${i}) % 7) AS attr_${i}`).join(', ');
  return [
    'CREATE SCHEMA IF NOT EXISTS raw',
    `CREATE OR REPLACE TABLE raw.customers AS SELECT 'C' || range AS customer_id, 'c' || range || '@example.com' AS email, TIMESTAMP '2025-01-01' AS created_at FROM range(${profiles})`,
    `CREATE OR REPLACE TABLE raw.events AS
SELECT 'C' || (hash(range, 1) % ${profiles}) AS customer_id,
  TIMESTAMP '2025-11-15' + to_seconds(CAST(hash(range, 2) % 31536000 AS BIGINT)) AS occurred_at,
  ['${EVENTS.join("', '")}'][1 + CAST(hash(range, 3) % ${EVENTS.length} AS INTEGER)] AS event_name,
  CAST(hash(range, 4) % 20000 AS DOUBLE) / 100 AS amount
FROM range(${events})`,
    // Two attribute sources, about two rows per profile each.
    ...['crm', 'app'].map((source, k) => `CREATE OR REPLACE TABLE raw.${source} AS
SELECT 'C' || (hash(range, ${10 + k}) % ${profiles}) AS customer_id, TIMESTAMP '2025-01-01' + to_seconds(CAST(hash(range, ${20 + k}) % 31536000 AS BIGINT)) AS updated_at, ${attrColumns}
FROM range(${2 * profiles})`),
  ];
}

async function cdp(dir: string, args: string[]): Promise<Map<string, number>> {
  const lines: string[] = [];
  const code = await main(['node', 'cdp', ...args, '--project-dir', dir], { out: { write: (l) => lines.push(l) }, err: { write: (l) => lines.push(l) } });
  if (code !== 0) throw new Error(`cdp ${args.join(' ')} exited ${code}:\n${lines.join('\n')}`);
  const results = (JSON.parse(readFileSync(path.join(dir, 'target/run_results.json'), 'utf8')) as { results: NodeResult[] }).results;
  return new Map(results.map((r) => [r.unique_id.split('.').pop()!, r.execution_time * 1000]));
}

async function withSession<T>(dir: string, fn: (session: Awaited<ReturnType<DuckDbWarehouse['session']>>) => Promise<T>): Promise<T> {
  const warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'bench', path: path.join(dir, 'target/bench.duckdb'), schema: 'main', threads: 2, settings: {} });
  const session = await warehouse.session();
  try {
    return await fn(session);
  } finally {
    await session.close();
    await warehouse.close();
  }
}

/** The fastest of `n` runs of `query`, in ms. */
async function fastestOf(n: number, query: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push(await timeMs(query));
  return Math.min(...times);
}

async function run(scale: Scale): Promise<BenchResult> {
  const profiles = typeof scale === 'number' ? scale : PROFILES[scale];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cdp-bench-profiles-'));
  try {
    for (const [file, text] of Object.entries(projectFiles())) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), text);
    }
    mkdirSync(path.join(dir, 'target'), { recursive: true });
    await withSession(dir, async (session) => {
      for (const sql of dataSql(profiles)) await session.execute(sql);
    });
    await cdp(dir, ['build', '--exclude', 'profile_traits', 'golden_records']);

    const sampler = new MemorySampler();
    // The reference: one scan of the events table that reads every column the traits use. The
    // fastest of three, so a scan slowed by a busy machine never flatters the ratio.
    const scanMs = await withSession(dir, (session) => fastestOf(3, () => session.query('SELECT COUNT(*), COUNT(DISTINCT customer_id), MAX(occurred_at), SUM(amount), COUNT(DISTINCT event_name) FROM raw.events')));
    // A floor for golden_records, not a goal: the cheapest query that yields 15 string values per
    // customer from the same attribute rows (one MAX per column, no identity lookup, no rule, no
    // provenance, nothing written). Survivorship cannot be cheaper than reading and aggregating
    // those strings, so golden_records / floor says how much of its time the rules cost.
    const attrs = Array.from({ length: 15 }, (_, i) => i);
    const floorMs = await withSession(dir, (session) => fastestOf(3, () => session.query(`SELECT SUM(${attrs.map((i) => `length(a${i})`).join(' + ')}) FROM (
  SELECT customer_id, ${attrs.map((i) => `MAX(attr_${i}) AS a${i}`).join(', ')}
  FROM (SELECT * FROM raw.crm UNION ALL SELECT * FROM raw.app) GROUP BY customer_id)`)));
    // One node at a time (--threads 1; each query still uses DuckDB's 2 threads): with the
    // profile's 2 runner threads both nodes would share the 2 cores and each one's time would
    // count the other's work, so their sum would overstate the build.
    const started = performance.now();
    const times = await cdp(dir, ['run', '--select', 'profile_traits', 'golden_records', '--threads', '1']);
    const runMs = performance.now() - started;
    const memory = sampler.stop();
    const traitsMs = times.get('profile_traits')!;
    const goldenMs = times.get('golden_records')!;
    return {
      suite: 'profiles',
      scale: `${typeof scale === 'number' ? 'custom' : scale} (${profiles.toLocaleString('en-US')} profiles, ${(profiles * EVENTS_PER_PROFILE).toLocaleString('en-US')} events, DuckDB file)`,
      figures: [
        { label: 'one full scan of events (fastest of 3)', value: scanMs, unit: 'ms', key: true },
        { label: 'floor: 15 × MAX per customer over the attribute rows (fastest of 3)', value: floorMs, unit: 'ms', key: true },
        { label: 'profile_traits (10 computed traits)', value: traitsMs, unit: 'ms', key: true },
        { label: 'golden_records (15 survivorship traits)', value: goldenMs, unit: 'ms', key: true },
        { label: 'both', value: traitsMs + goldenMs, unit: 'ms', key: true },
        { label: 'cdp run (both, CLI included)', value: runMs, unit: 'ms', key: true },
      ],
      ratios: [
        { label: 'profile_traits / scan', value: traitsMs / scanMs, reference: 'computed traits vs one full scan of the events table' },
        { label: 'golden / floor', value: goldenMs / floorMs, reference: 'golden_records vs the floor (15 × MAX per customer, no survivorship)' },
        { label: '(traits + golden) / scan', value: (traitsMs + goldenMs) / scanMs, reference: 'goal ≤ 4: profiles with 15 traits and 10 computed traits vs one full scan of the events table' },
      ],
      peakRssMiB: memory.peakRssMiB,
      peakHeapMiB: memory.peakHeapMiB,
      notes: [
        'Survivorship reads two attribute tables of 2 rows per profile each (15 string attributes), not the events table; its time is included in the goal ratio as the issue states it.',
        `process max RSS ${memory.processMaxRssMiB.toFixed(0)} MiB (DuckDB file, threads=2). Data generation and identity_graph are not timed.`,
        'The two nodes are built one after the other (cdp run --threads 1), so "both" is their sequential cost (rows without a "cdp run" figure built them concurrently, each time including the other\'s work).',
      ],
    };
  } finally {
    if (process.env['CDP_BENCH_KEEP'] === undefined) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

export const profilesSuite: Suite = {
  name: 'profiles',
  description: 'golden_record.yml: 15 survivorship + 10 computed traits over 1M profiles and 20M events vs one scan of the events',
  run,
};
