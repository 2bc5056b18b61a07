import { parseArgs } from 'node:util';
import { compileSuite } from './compile-suite.js';
import { appendBenchmarkRow, benchmarksFile, collectGarbage, duckdbVersion, machineDescription, markdownRow, printResult, type Scale, type Suite } from './report.js';

/**
 * `npm run bench -- [suite] [--scale small|default|large|<number>]`
 * Runs one suite, or all of them (at `small` unless --scale says otherwise), prints the figures
 * and appends a dated row per suite to BENCHMARKS.md. Run through npm so node has --expose-gc
 * and dist/ is fresh.
 */

// One entry per suite, in the order `npm run bench` runs them.
const SUITES: Suite[] = [
  compileSuite,
  (await import('./identity-suite.js')).identitySuite,
  (await import('./identity-pipeline-suite.js')).identityPipelineSuite,
  (await import('./profiles-suite.js')).profilesSuite,
  (await import('./sync-suite.js')).syncSuite,
];

const USAGE = 'usage: npm run bench -- [suite] [--scale small|default|large|<number>]';

function fail(message: string): never {
  console.error(`${message}\n${USAGE}\nsuites:\n${SUITES.map((s) => `  ${s.name.padEnd(10)} ${s.description}`).join('\n')}`);
  process.exit(2);
}

function parseScale(text: string | undefined): Scale {
  if (text === undefined || text === 'default' || text === 'small' || text === 'large') return text ?? 'default';
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) fail(`--scale must be small, default, large or a positive integer, not ${JSON.stringify(text)}`);
  return n;
}

function reproduce(suite: string, scaleArg: string | undefined): string {
  return `npm run bench -- ${suite}${scaleArg && scaleArg !== 'default' ? ` --scale ${scaleArg}` : ''}`;
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({ options: { scale: { type: 'string' } }, allowPositionals: true });
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  if (args.positionals.length > 1) fail(`expected at most one suite, got ${args.positionals.join(' ')}`);
  const wanted = args.positionals[0];
  const suites = wanted === undefined ? SUITES : SUITES.filter((s) => s.name === wanted);
  if (suites.length === 0) fail(`unknown suite ${JSON.stringify(wanted)}`);
  // Every suite at once runs at `small` unless told otherwise, so `npm run bench` stays a few
  // minutes; one suite by name runs at its own default, the scale its issue's goal is set at.
  const scaleArg = args.values.scale ?? (wanted === undefined ? 'small' : undefined);
  const scale = parseScale(scaleArg);
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') {
    console.warn('warning: run with node --expose-gc (npm run bench does) so runs do not pay for earlier garbage');
  }

  const machine = machineDescription();
  const duckdb = await duckdbVersion();
  const file = benchmarksFile();
  let failed = 0;
  for (const suite of suites) {
    collectGarbage();
    try {
      const result = await suite.run(scale);
      printResult(result, machine, duckdb);
      appendBenchmarkRow(file, suite.name, markdownRow(result, machine, duckdb, reproduce(suite.name, scaleArg)));
    } catch (error) {
      failed++;
      console.error(`\n== ${suite.name} failed:`, error);
    }
  }
  console.log(`\n${failed ? `${failed} suite(s) failed; ` : ''}results appended to ${file}`);
  if (failed) process.exitCode = 1;
}

await main();
