#!/usr/bin/env node
import { statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_AS_OF, DEFAULT_DAYS, DEFAULT_JUNK_RATE, generate, generateEcommerce, SCENARIOS, type OutputFormat } from './index.js';

/**
 * `npm run generate -- --persons N --seed S --out DIR [--format csv|parquet] [--scenario studio|ecommerce]`
 * (docs/generator.md). Prints one line per file (rows, bytes) and the elapsed time.
 */

function positiveInt(value: string): number {
  const n = Number(value.replaceAll('_', ''));
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function rate(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('expected a number between 0 and 1');
  return n;
}

export function buildGenerateProgram(): Command {
  return new Command('generate')
    .description('Write deterministic, seeded ground-truth CDP sources (bookings, payments, accounts, web events, consent) and truth.csv')
    .requiredOption('--persons <n>', 'number of true people', positiveInt)
    .option('--seed <seed>', 'PRNG seed (integer or any text)', '1')
    .requiredOption('--out <dir>', 'output directory')
    .option('--format <format>', 'csv or parquet', 'csv')
    .option('--as-of <date>', 'end of the time window (UTC date)', DEFAULT_AS_OF)
    .option('--days <n>', 'length of the time window in days', positiveInt, DEFAULT_DAYS)
    .option('--junk-rate <p>', 'share of rows with a junk identifier (studio scenario)', rate, DEFAULT_JUNK_RATE)
    .option('--scenario <name>', `what to generate: ${SCENARIOS.join(' or ')}`, 'studio')
    .option('--quiet', 'print nothing but errors')
    .showHelpAfterError('(run with --help for usage)');
}

export async function runGenerate(argv: string[]): Promise<void> {
  const program = buildGenerateProgram();
  program.parse(argv);
  const opts = program.opts<{ persons: number; seed: string; out: string; format: string; asOf: string; days: number; junkRate: number; scenario: string; quiet?: boolean }>();
  if (opts.format !== 'csv' && opts.format !== 'parquet') program.error(`error: --format must be csv or parquet, got ${opts.format}`);
  if (!(SCENARIOS as readonly string[]).includes(opts.scenario)) program.error(`error: --scenario must be ${SCENARIOS.join(' or ')}, got ${opts.scenario}`);
  const log = opts.quiet ? () => {} : (line: string) => process.stderr.write(line + '\n');
  const started = performance.now();
  const result = await (opts.scenario === 'ecommerce' ? generateEcommerce : generate)({
    persons: opts.persons,
    seed: opts.seed,
    out: opts.out,
    format: opts.format as OutputFormat,
    asOf: opts.asOf,
    days: opts.days,
    junkRate: opts.junkRate,
    onProgress: (done) => log(`  ${done.toLocaleString('en-US')} persons (${((performance.now() - started) / 1000).toFixed(1)} s)`),
  });
  const seconds = (performance.now() - started) / 1000;
  if (opts.quiet) return;
  let bytes = 0;
  for (const file of Object.values(result.files)) {
    const size = statSync(file.path).size;
    bytes += size;
    process.stdout.write(`${path.relative(process.cwd(), file.path).padEnd(40)} ${String(file.rows).padStart(12)} rows ${(size / 1e6).toFixed(1).padStart(9)} MB\n`);
  }
  process.stdout.write(
    `${result.persons} persons, seed ${result.seed}, ${result.sourceRows} source rows + ${result.files.truth.rows} truth rows, ` +
      `${(bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s\n`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  runGenerate(process.argv).catch((error: unknown) => {
    process.stderr.write(`generate: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
