import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

/**
 * Shared plumbing for the benchmark suites: timing, memory sampling, the machine and DuckDB
 * description, the console table and the dated rows appended to BENCHMARKS.md.
 */

/** `--scale`: a named size or an explicit count; each suite decides what the number counts. */
export type Scale = 'small' | 'default' | 'large' | number;

export interface Figure {
  label: string;
  value: number;
  unit: string;
  /** Shown in the console only, e.g. "min 412 ms". */
  detail?: string;
  /** Key figures also go into the BENCHMARKS.md row; the rest stay on the console. */
  key?: boolean;
}

export interface Ratio {
  label: string;
  /** measured / reference: below 1 means faster (or smaller) than the reference. */
  value: number;
  /** What the reference is, e.g. "goal 1 s for 1,000 models". */
  reference: string;
}

export interface BenchResult {
  suite: string;
  /** Human label, e.g. "default (1000 models)". */
  scale: string;
  figures: Figure[];
  ratios: Ratio[];
  peakRssMiB: number;
  peakHeapMiB: number;
  /** Extra console lines: caveats, sanity counts. */
  notes?: string[];
}

export interface Suite {
  name: string;
  description: string;
  run(scale: Scale): Promise<BenchResult>;
}

export const MiB = 1024 * 1024;

/** Milliseconds taken by `fn`, with its result. */
export function timed<T>(fn: () => T): { ms: number; value: T } {
  const start = performance.now();
  const value = fn();
  return { ms: performance.now() - start, value };
}

/** Wall time of one async call, in ms. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Collects garbage when node runs with --expose-gc (npm run bench does), so runs don't pay for each other's garbage. */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/**
 * Peak RSS and heapUsed. The timer only fires while the event loop is free, and the code under
 * test is mostly synchronous, so suites also call `sample()` at phase ends, where the phase's
 * result is still alive; `stop()` takes a final reading. Both are lower bounds of the true peak,
 * so `stop()` also returns the OS high-water mark (ru_maxrss) for the whole process as a check.
 */
export class MemorySampler {
  private rss = 0;
  private heap = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 20) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): void {
    const usage = process.memoryUsage();
    if (usage.rss > this.rss) this.rss = usage.rss;
    if (usage.heapUsed > this.heap) this.heap = usage.heapUsed;
  }

  stop(): { peakRssMiB: number; peakHeapMiB: number; processMaxRssMiB: number } {
    clearInterval(this.timer);
    this.sample();
    // resourceUsage().maxRSS is in KiB.
    return { peakRssMiB: this.rss / MiB, peakHeapMiB: this.heap / MiB, processMaxRssMiB: process.resourceUsage().maxRSS / 1024 };
  }
}

export function machineDescription(): string {
  const cpus = os.cpus();
  const model = (cpus[0]?.model ?? 'unknown CPU').replace(/\s+/g, ' ').trim();
  return `${cpus.length}× ${model}, ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB, node ${process.version}`;
}

/** The DuckDB library version bundled with @duckdb/node-api; loaded lazily so a broken binding only costs this field. */
export async function duckdbVersion(): Promise<string> {
  try {
    const duckdb = await import('@duckdb/node-api');
    if (typeof duckdb.version === 'function') return duckdb.version();
    const instance = await duckdb.DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    const reader = await connection.runAndReadAll('select version()');
    const value = String(reader.getRows()[0]?.[0] ?? 'unknown');
    connection.closeSync();
    instance.closeSync();
    return value;
  } catch (error) {
    return `unknown (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`;
  }
}

export function formatNumber(value: number, unit: string): string {
  const digits = unit === 'ms' ? (value < 10 ? 2 : value < 100 ? 1 : 0) : Number.isInteger(value) ? 0 : value < 10 ? 2 : 1;
  const text = value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return unit ? `${text} ${unit}` : text;
}

function formatRatio(ratio: Ratio): string {
  return `${ratio.value.toFixed(2)}× ${ratio.reference}`;
}

export function printResult(result: BenchResult, machine: string, duckdb: string): void {
  const rows: [string, string, string][] = [
    ...result.figures.map((f): [string, string, string] => [f.label, formatNumber(f.value, f.unit), f.detail ?? '']),
    ...result.ratios.map((r): [string, string, string] => [r.label, `${r.value.toFixed(2)}×`, r.reference]),
    ['peak RSS', formatNumber(result.peakRssMiB, 'MiB'), ''],
    ['peak heapUsed', formatNumber(result.peakHeapMiB, 'MiB'), ''],
  ];
  const widths = [0, 1].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log(`\n== ${result.suite} — ${result.scale}`);
  console.log(`   ${machine}; DuckDB ${duckdb}`);
  for (const [label, value, detail] of rows) {
    console.log(`   ${label.padEnd(widths[0]!)}  ${value.padStart(widths[1]!)}  ${detail}`.trimEnd());
  }
  for (const note of result.notes ?? []) console.log(`   note: ${note}`);
}

const TABLE_HEADER = [
  '| Date | Suite | Scale | Key figures | Ratios | Peak RSS MiB | Machine | DuckDB | Reproduce |',
  '|---|---|---|---|---|---|---|---|---|',
];

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function markdownRow(result: BenchResult, machine: string, duckdb: string, command: string): string {
  const figures = result.figures.filter((f) => f.key).map((f) => `${f.label} ${formatNumber(f.value, f.unit)}`).join('; ');
  const cells = [
    new Date().toISOString(),
    result.suite,
    result.scale,
    figures,
    result.ratios.map(formatRatio).join('; '),
    result.peakRssMiB.toFixed(0),
    machine,
    duckdb,
    `\`${command}\``,
  ];
  return `| ${cells.map(cell).join(' | ')} |`;
}

/**
 * Appends `row` to the table under `## <suite>` in BENCHMARKS.md, creating the file, the section
 * or the table header when missing. Rows are only ever appended, so the file is a history.
 */
export function appendBenchmarkRow(file: string, suite: string, row: string): void {
  const lines = existsSync(file)
    ? readFileSync(file, 'utf8').replace(/\n+$/, '').split('\n')
    : ['# Benchmarks', '', 'Rows are appended by `npm run bench`; see src/bench/.'];
  const heading = lines.findIndex((line) => line.trim() === `## ${suite}`);
  if (heading < 0) {
    lines.push('', `## ${suite}`, '', ...TABLE_HEADER, row);
  } else {
    // The section ends at the next heading of the same or a higher level.
    let end = lines.findIndex((line, i) => i > heading && /^#{1,2} /.test(line));
    if (end < 0) end = lines.length;
    while (end > heading + 1 && lines[end - 1]!.trim() === '') end--;
    let lastTableLine = -1;
    for (let i = heading + 1; i < end; i++) if (lines[i]!.startsWith('|')) lastTableLine = i;
    if (lastTableLine >= 0) lines.splice(lastTableLine + 1, 0, row);
    else lines.splice(end, 0, '', ...TABLE_HEADER, row, ...(end < lines.length && lines[end]!.trim() !== '' ? [''] : []));
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

export function benchmarksFile(): string {
  // dist/bench/report.js → the package root, wherever the command is run from.
  return fileURLToPath(new URL('../../BENCHMARKS.md', import.meta.url));
}
