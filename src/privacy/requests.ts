import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, type SourceLocation } from '../errors.js';
import { didYouMean } from '../compile/suggest.js';
import { registerSecret } from '../project/secrets.js';

/** One deletion request as filed: an identifier (raw, normalised later by the identity rules). */
export interface DeletionRequest {
  requestId: string;
  type: string;
  value: string;
  reason?: string;
  /** `--identifier`, or the requests file and line. */
  at: SourceLocation;
}

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

export function newRequestId(): string {
  return `del_${randomUUID().replaceAll('-', '').slice(0, 20)}`;
}

function checkRequestId(id: string, at: SourceLocation): string {
  if (!REQUEST_ID.test(id)) throw new ConfigError('privacy-request-id', `Request id ${JSON.stringify(id)} must be 1–128 letters, digits, or . _ : -`, { at });
  return id;
}

/** `type:value`, the type one of identity.yml's identifier types. The value is registered as a secret: it is never printed. */
export function parseIdentifier(text: string, types: readonly string[], at: SourceLocation): { type: string; value: string } {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) {
    throw new ConfigError('privacy-identifier', 'An identifier must be written `<type>:<value>`, e.g. `email:ana@example.com`', { at, hint: `Identifier types: ${types.join(', ')}.` });
  }
  const type = text.slice(0, colon).trim();
  const value = text.slice(colon + 1);
  registerSecret(value.trim());
  if (!types.includes(type)) {
    throw new ConfigError('privacy-identifier-type', `Unknown identifier type \`${type}\``, { at, hint: `${didYouMean(type, [...types])} Identifier types (identity.yml): ${types.join(', ')}.`.trim() });
  }
  return { type, value };
}

export function requestFromFlags(identifier: string, types: readonly string[], requestId: string | undefined, reason: string | undefined): DeletionRequest {
  const at = { file: '--identifier' };
  const { type, value } = parseIdentifier(identifier, types, at);
  return { requestId: requestId === undefined ? newRequestId() : checkRequestId(requestId, { file: '--request-id' }), type, value, reason, at };
}

/**
 * A bulk requests file: JSON Lines (`{"identifier": "email:…", "request_id"?, "reason"?}`) or
 * CSV with a header naming `identifier` and optionally `request_id`, `reason`. Every line is
 * checked before anything is filed: one bad line fails the whole file, with its line number.
 */
export function readRequestsFile(file: string, types: readonly string[]): DeletionRequest[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError('privacy-requests-file', `Cannot read requests file ${file}: ${(error as Error).message}`);
  }
  const rows = path.extname(file).toLowerCase() === '.csv' ? csvRows(file, text) : jsonlRows(file, text);
  if (rows.length === 0) throw new ConfigError('privacy-requests-empty', `Requests file ${file} holds no request`, { at: { file } });
  const seen = new Map<string, number>();
  return rows.map(({ line, fields }) => {
    const at = { file, line };
    const identifier = fields['identifier'];
    if (typeof identifier !== 'string' || identifier.trim() === '') throw new ConfigError('privacy-requests-file', 'Line has no `identifier`', { at: { ...at, key: 'identifier' }, hint: 'Each request needs an identifier such as email:ana@example.com.' });
    const { type, value } = parseIdentifier(identifier, types, { ...at, key: 'identifier' });
    const given = fields['request_id'];
    if (given !== undefined && typeof given !== 'string') throw new ConfigError('privacy-requests-file', '`request_id` must be a string', { at: { ...at, key: 'request_id' } });
    const requestId = given === undefined || given === '' ? newRequestId() : checkRequestId(given, { ...at, key: 'request_id' });
    const previous = seen.get(requestId);
    if (previous !== undefined && given) throw new ConfigError('privacy-requests-file', `Request id ${JSON.stringify(requestId)} appears twice (also line ${previous})`, { at: { ...at, key: 'request_id' } });
    seen.set(requestId, line);
    const reason = fields['reason'];
    if (reason !== undefined && typeof reason !== 'string') throw new ConfigError('privacy-requests-file', '`reason` must be a string', { at: { ...at, key: 'reason' } });
    return { requestId, type, value, reason: reason === '' ? undefined : reason, at };
  });
}

interface RawRow {
  line: number;
  fields: Record<string, unknown>;
}

function jsonlRows(file: string, text: string): RawRow[] {
  const rows: RawRow[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    if (raw.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      throw new ConfigError('privacy-requests-file', 'Line is not valid JSON', { at: { file, line: i + 1 }, hint: 'Each line must be one JSON object, e.g. {"identifier": "email:ana@example.com", "reason": "GDPR art.17"}.' });
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ConfigError('privacy-requests-file', 'Line is not a JSON object', { at: { file, line: i + 1 } });
    rows.push({ line: i + 1, fields: value as Record<string, unknown> });
  }
  return rows;
}

const CSV_COLUMNS = ['identifier', 'request_id', 'reason'];

/** RFC 4180 fields (quotes, doubled quotes); a quoted field may not span lines here. */
function csvFields(line: string, at: SourceLocation): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new ConfigError('privacy-requests-file', 'Unterminated quoted field', { at });
        if (line[i] === '"' && line[i + 1] === '"') (field += '"'), (i += 2);
        else if (line[i] === '"') {
          i++;
          break;
        } else field += line[i++];
      }
      if (i < line.length && line[i] !== ',') throw new ConfigError('privacy-requests-file', 'Text after a closing quote', { at });
    } else {
      const end = line.indexOf(',', i);
      field = line.slice(i, end === -1 ? line.length : end);
      i = end === -1 ? line.length : end;
    }
    fields.push(field);
    if (i >= line.length) return fields;
    i++;
  }
}

function csvRows(file: string, text: string): RawRow[] {
  const lines = text.split(/\r?\n/);
  const header = csvFields(lines[0] ?? '', { file, line: 1 }).map((h) => h.trim());
  const unknown = header.find((h) => !CSV_COLUMNS.includes(h));
  if (!header.includes('identifier') || unknown !== undefined) {
    throw new ConfigError('privacy-requests-file', `The CSV header must name \`identifier\` and optionally \`request_id\`, \`reason\`; got ${JSON.stringify(lines[0] ?? '')}`, { at: { file, line: 1 } });
  }
  const rows: RawRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const at = { file, line: i + 1 };
    const values = csvFields(line, at);
    if (values.length !== header.length) throw new ConfigError('privacy-requests-file', `Line has ${values.length} field(s); the header has ${header.length}`, { at });
    rows.push({ line: i + 1, fields: Object.fromEntries(header.map((h, j) => [h, values[j]])) });
  }
  return rows;
}
