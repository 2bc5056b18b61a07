import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Salesforce Bulk API 2.0 ingest, for upserting a batch too large to be worth 200-record sObject
 * Collections calls (docs/connectors/salesforce.md, "Bulk API 2.0"). One batch is one job:
 * create (`POST /jobs/ingest`), upload the CSV (`PUT …/batches`), close (`PATCH` state
 * `UploadComplete`), poll (`GET …/{id}`) until `JobComplete`, `Failed` or `Aborted`, then read
 * `successfulResults` (`sf__Id`, `sf__Created`) and `failedResults` (`sf__Error`). Results come in
 * no particular order, so rows are matched back by their external id value.
 */

/** The HTTP side, provided by the connector: resolves with the response text, throws a DeliveryError otherwise. */
export interface BulkApi {
  call(method: string, path: string, body?: { json: unknown } | { csv: string }): Promise<string>;
}

export interface BulkSettings {
  object: string;
  externalIdField: string;
  pollIntervalMs: number;
  /** How long a job may take from close to an outcome before it is aborted. */
  timeoutMs: number;
}

/** One row to upsert: its external id value and its fields (the external id field included). */
export interface BulkRow {
  externalId: string;
  fields: Record<string, unknown>;
}

export type BulkOutcome = { ok: true; id: string; created: boolean } | { ok: false; reason: string };

interface JobInfo {
  id?: string;
  state?: string;
  errorMessage?: string;
}

const FINAL_STATES = ['JobComplete', 'Failed', 'Aborted'];

/** Thrown when a job outlives `timeoutMs`: not a DeliveryError, so the engine stops the destination instead of starting another job. */
class BulkJobTimeout extends Error {
  override readonly name = 'BulkJobTimeout';
}

/** Upserts `rows` in one ingest job; the outcome of each row, by lower-cased external id value. */
export async function bulkUpsert(api: BulkApi, settings: BulkSettings, rows: readonly BulkRow[]): Promise<Map<string, BulkOutcome>> {
  const created = JSON.parse(
    await api.call('POST', '/jobs/ingest', {
      json: { object: settings.object, externalIdFieldName: settings.externalIdField, contentType: 'CSV', operation: 'upsert', lineEnding: 'LF' },
    }),
  ) as JobInfo;
  const jobId = created.id;
  if (typeof jobId !== 'string' || !/^\w+$/.test(jobId)) throw new Error(`POST /jobs/ingest answered without a job id`);
  const job = `/jobs/ingest/${jobId}`;
  let info: JobInfo;
  try {
    await api.call('PUT', `${job}/batches`, { csv: toCsv(settings.externalIdField, rows) });
    await api.call('PATCH', job, { json: { state: 'UploadComplete' } });
    info = await waitForOutcome(api, job, settings);
  } catch (error) {
    // An unfinished job would otherwise sit open (or keep running) at Salesforce; a retry starts a new one.
    await api.call('PATCH', job, { json: { state: 'Aborted' } }).catch(() => undefined);
    throw error;
  }
  const outcomes = new Map<string, BulkOutcome>();
  const key = (row: Record<string, string>) => (row[settings.externalIdField] ?? '').toLowerCase();
  for (const row of parseCsv(await api.call('GET', `${job}/successfulResults`))) {
    outcomes.set(key(row), { ok: true, id: row['sf__Id'] ?? '', created: row['sf__Created'] === 'true' });
  }
  for (const row of parseCsv(await api.call('GET', `${job}/failedResults`))) {
    outcomes.set(key(row), { ok: false, reason: row['sf__Error'] || 'failed in the bulk job, without a reason' });
  }
  // Rows in neither file were not processed (a Failed or Aborted job): they go again next run.
  const unprocessed = `not processed: bulk job ${jobId} ended ${info.state}${info.errorMessage ? `: ${info.errorMessage}` : ''}`;
  for (const row of rows) if (!outcomes.has(row.externalId.toLowerCase())) outcomes.set(row.externalId.toLowerCase(), { ok: false, reason: unprocessed });
  return outcomes;
}

async function waitForOutcome(api: BulkApi, job: string, settings: BulkSettings): Promise<JobInfo> {
  const deadline = performance.now() + settings.timeoutMs;
  for (;;) {
    const info = JSON.parse(await api.call('GET', job)) as JobInfo;
    if (FINAL_STATES.includes(info.state ?? '')) return info;
    if (performance.now() + settings.pollIntervalMs > deadline) {
      throw new BulkJobTimeout(`bulk job ${info.id ?? job} was still ${info.state} after ${settings.timeoutMs} ms (bulk_timeout_ms); it was aborted, and its rows go again next run`);
    }
    await sleep(settings.pollIntervalMs);
  }
}

/**
 * The job's CSV: the external id field first, then the other fields. `#N/A` sets a field to null
 * (an empty cell would leave it unchanged), so NULL and "" both clear, as they do in the JSON calls.
 */
function toCsv(externalIdField: string, rows: readonly BulkRow[]): string {
  const others = [...new Set(rows.flatMap((r) => Object.keys(r.fields)))].filter((f) => f !== externalIdField).sort();
  const columns = [externalIdField, ...others];
  const lines = [columns.map(csvCell).join(',')];
  for (const row of rows) lines.push(columns.map((c) => (c === externalIdField ? csvCell(row.externalId) : csvValue(row.fields[c]))).join(','));
  return lines.join('\n') + '\n';
}

function csvValue(value: unknown): string {
  if (value === null || value === undefined || value === '') return '#N/A';
  return csvCell(typeof value === 'object' ? JSON.stringify(value) : String(value));
}

function csvCell(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** RFC 4180 CSV with a header row, into one object per row. */
function parseCsv(text: string): Record<string, string>[] {
  const records: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c !== '"') cell += c;
      else if (text[i + 1] === '"') cell += text[++i];
      else quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      records.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length > 0) records.push([...row, cell]);
  const [header, ...body] = records;
  if (!header) return [];
  return body.filter((r) => r.length > 1 || r[0] !== '').map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] ?? ''])));
}
