import { redact } from '../project/secrets.js';
import type { Row } from '../warehouse/warehouse.js';
import type { CommandContext } from './context.js';

/** Output helpers shared by the commands that print warehouse rows (identity, audience). */

/** Warehouse values as JSON-friendly scalars: timestamps as ISO text, BigQuery wrappers unwrapped. */
export function plain(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (typeof value === 'object' && 'value' in value) return plain((value as { value: unknown }).value);
  return value;
}

export function plainRows(rows: Row[]): Record<string, unknown>[] {
  return rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, plain(v)])));
}

/** One table cell: timestamps without the `T`/`Z` noise, control characters made visible. */
export function cell(value: unknown): string {
  const v = plain(value);
  if (v === null) return '';
  if (value instanceof Date) return value.toISOString().replace('T', ' ').replace(/(\.000)?Z$/, '');
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v).replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

/** A plain-text table; numeric columns align right. */
export function table(headers: string[], rows: unknown[][], indent = '  '): string[] {
  if (rows.length === 0) return [`${indent}(none)`];
  const cells = rows.map((r) => r.map(cell));
  const numeric = headers.map((_, i) => rows.every((r) => typeof plain(r[i]) === 'number'));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    (indent + values.map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : i === values.length - 1 ? v : v.padEnd(widths[i]!))).join('  ')).trimEnd();
  return [line(headers), ...cells.map(line)];
}

/** Every line through the secret redactor. */
export function write(ctx: CommandContext, lines: string[]): void {
  for (const line of lines) ctx.out.write(redact(line));
}
