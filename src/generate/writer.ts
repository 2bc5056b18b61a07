import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { RowSink } from './sources.js';

/**
 * Streaming CSV writer: rows are appended to a buffer that is flushed with `writeSync` every
 * ~1 MiB, so memory stays constant whatever the row count. RFC 4180 quoting; `\n` line ends.
 */
export class CsvFileWriter implements RowSink {
  private readonly fd: number;
  private readonly buffer: Buffer;
  private used = 0;
  rows = 0;

  constructor(readonly path: string, header: readonly string[], bufferSize = 1 << 20) {
    this.fd = openSync(path, 'w');
    this.buffer = Buffer.allocUnsafe(bufferSize);
    this.append(header.map(csvField).join(',') + '\n');
  }

  write(values: readonly string[]): void {
    let line = csvField(values[0]!);
    for (let i = 1; i < values.length; i++) line += ',' + csvField(values[i]!);
    this.append(line + '\n');
    this.rows++;
  }

  private append(text: string): void {
    // UTF-8 needs at most 3 bytes per UTF-16 code unit.
    if (this.used + text.length * 3 > this.buffer.length) {
      this.flush();
      if (text.length * 3 > this.buffer.length) {
        writeSync(this.fd, text);
        return;
      }
    }
    this.used += this.buffer.write(text, this.used, 'utf8');
  }

  private flush(): void {
    if (this.used > 0) writeSync(this.fd, this.buffer, 0, this.used);
    this.used = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

const NEEDS_QUOTES = /[",\r\n]/;

export function csvField(value: string): string {
  return NEEDS_QUOTES.test(value) ? '"' + value.replaceAll('"', '""') + '"' : value;
}

function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/**
 * Converts generated CSV files to Parquet with DuckDB, streaming (DuckDB spills; Node holds no
 * rows). Columns are read with the declared types, never sniffed, so a junk value cannot change
 * a column's type. Empty CSV fields become NULL. Each CSV is deleted once converted.
 */
export async function csvToParquet(
  jobs: { csv: string; parquet: string; columns: readonly (readonly [string, string])[] }[],
  options: { memoryLimit?: string; threads?: number; keepCsv?: boolean } = {},
): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:', {
    memory_limit: options.memoryLimit ?? '1GB',
    threads: String(options.threads ?? 2),
    preserve_insertion_order: 'true',
  });
  const connection = await instance.connect();
  try {
    for (const job of jobs) {
      const columns = `{${job.columns.map(([name, type]) => `${sqlString(name)}: ${sqlString(type)}`).join(', ')}}`;
      await connection.run(
        `COPY (SELECT * FROM read_csv(${sqlString(job.csv)}, header = true, auto_detect = false, delim = ',', quote = '"', escape = '"', ` +
          `timestampformat = '%Y-%m-%d %H:%M:%S', columns = ${columns})) ` +
          `TO ${sqlString(job.parquet)} (FORMAT parquet, COMPRESSION zstd)`,
      );
      if (!options.keepCsv) rmSync(job.csv);
    }
  } finally {
    connection.disconnectSync();
    instance.closeSync();
  }
}

/** One generated file: where it is, and how many data rows it holds. */
export interface GeneratedFile {
  path: string;
  rows: number;
}

/** What a scenario wrote: its files, and the settings that reproduce them. */
export interface GenerationResult<N extends string> {
  outDir: string;
  format: 'csv' | 'parquet';
  persons: number;
  seed: number;
  asOf: string;
  days: number;
  files: Record<N, GeneratedFile>;
  /** Rows over the source files (`sources`), reference files such as truth excluded. */
  sourceRows: number;
}

/** The settings a result reports. */
export interface GenerationSettings {
  persons: number;
  seed: number;
  asOfMs: number;
  windowMs: number;
}

/**
 * Writes one file per source into `out`: `fill` streams rows into a CSV writer per source; for
 * Parquet the CSVs go to a scratch folder and are converted with the declared column types.
 * `sources` are the files whose rows count as source rows.
 */
export async function writeSourceFiles<N extends string>(
  out: string,
  format: 'csv' | 'parquet',
  schemas: Record<N, readonly (readonly [string, string])[]>,
  settings: GenerationSettings,
  sources: readonly NoInfer<N>[],
  fill: (writers: Record<N, CsvFileWriter>) => void,
): Promise<GenerationResult<N>> {
  const outDir = path.resolve(out);
  mkdirSync(outDir, { recursive: true });
  const csvDir = format === 'csv' ? outDir : path.join(outDir, '.csv-tmp');
  mkdirSync(csvDir, { recursive: true });
  const names = Object.keys(schemas) as N[];
  const writers = Object.fromEntries(names.map((name) => [name, new CsvFileWriter(path.join(csvDir, `${name}.csv`), schemas[name].map(([column]) => column))])) as Record<N, CsvFileWriter>;
  try {
    fill(writers);
  } finally {
    for (const writer of Object.values<CsvFileWriter>(writers)) writer.close();
  }
  const files = Object.fromEntries(names.map((name) => [name, { path: path.join(outDir, `${name}.${format}`), rows: writers[name].rows }])) as Record<N, GeneratedFile>;
  if (format === 'parquet') {
    await csvToParquet(names.map((name) => ({ csv: writers[name].path, parquet: files[name].path, columns: schemas[name] })));
    rmSync(csvDir, { recursive: true, force: true });
  }
  return {
    outDir,
    format,
    persons: settings.persons,
    seed: settings.seed,
    asOf: new Date(settings.asOfMs).toISOString(),
    days: settings.windowMs / 86_400_000,
    files,
    sourceRows: sources.reduce((sum, name) => sum + files[name].rows, 0),
  };
}
