import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Destination, DestinationContext, DestinationType, OptionProblem, OutboundRecord, RecordResult } from './destination.js';
import { payloadText, wireOp } from './wire-op.js';

/**
 * The file outbox (docs/connectors/file.md): one file per run and destination,
 * `<directory>/<destination>/<run_id>.jsonl` (or `.csv`). Each batch is appended and fsynced
 * before it is acknowledged, so whatever the engine committed is on disk; a batch written but not
 * committed (a crash in between) is written again by the next run with the same idempotency keys.
 * A privacy erasure is a deletion line (`op: "delete"`, `removal: "erase"`) keeping the payload
 * last sent, so the consumer knows what to delete.
 */
export const fileDestination: DestinationType = {
  type: 'file',
  capabilities: { modes: ['upsert', 'mirror', 'insert', 'add_remove'], maxBatchSize: 10_000, fields: 'any' },

  validateOptions(options: Record<string, unknown>): OptionProblem[] {
    const problems: OptionProblem[] = [];
    for (const [key, value] of Object.entries(options)) {
      if (key === 'format') {
        if (value !== 'jsonl' && value !== 'csv') problems.push({ key, message: `must be jsonl or csv, got ${JSON.stringify(value)}` });
      } else if (key === 'directory') {
        if (typeof value !== 'string' || value.trim() === '') problems.push({ key, message: 'must be a non-empty path' });
      } else {
        problems.push({ key, message: 'is not an option of the file destination (options: format, directory)' });
      }
    }
    return problems;
  },

  async open(context: DestinationContext): Promise<Destination> {
    const format = context.options['format'] === 'csv' ? 'csv' : 'jsonl';
    const directory = path.resolve(context.projectRoot, typeof context.options['directory'] === 'string' ? context.options['directory'] : 'target/outbox', context.destination);
    return new FileOutbox(path.join(directory, `${context.runId}.${format}`), format, this.capabilities);
  },
};

const CSV_HEADER = 'op,key,idempotency_key,payload_hash,removal,payload\n';

class FileOutbox implements Destination {
  private fd: number | undefined;

  constructor(
    readonly file: string,
    private readonly format: 'jsonl' | 'csv',
    readonly capabilities: DestinationType['capabilities'],
  ) {}

  async send(batch: readonly OutboundRecord[]): Promise<RecordResult[]> {
    if (this.fd === undefined) {
      mkdirSync(path.dirname(this.file), { recursive: true });
      this.fd = openSync(this.file, 'a');
      if (this.format === 'csv') writeSync(this.fd, CSV_HEADER);
    }
    const text = batch.map((r) => (this.format === 'csv' ? csvLine(r) : jsonLine(r))).join('');
    writeSync(this.fd, text);
    fsyncSync(this.fd);
    return batch.map((r) => ({ key: r.key, ok: true as const }));
  }

  async close(): Promise<void> {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

function jsonLine(r: OutboundRecord): string {
  const head = JSON.stringify({ op: wireOp(r), key: r.key, idempotency_key: r.idempotencyKey, payload_hash: r.payloadHash, ...(r.removal ? { removal: r.removal } : {}) });
  return `${head.slice(0, -1)},"payload":${payloadText(r)}}\n`;
}

function csvCell(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

function csvLine(r: OutboundRecord): string {
  return [wireOp(r), r.key, r.idempotencyKey, r.payloadHash, r.removal ?? '', payloadText(r)].map(csvCell).join(',') + '\n';
}
