import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { csvProblem } from '../../src/run/csv-check.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cdp-csv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function check(text: string | Buffer) {
  const file = path.join(dir, 'seed.csv');
  writeFileSync(file, text);
  return csvProblem(file);
}

const HEADER = 'customer_id,email,signed_up_at,plan\n';

describe('csvProblem', () => {
  it.each([
    ['plain rows', `${HEADER}1,a@x.com,2026-01-01,free\n2,b@x.com,2026-01-02,pro\n`],
    ['no final newline', `${HEADER}1,a@x.com,2026-01-01,free`],
    ['CR LF line breaks', HEADER.replace('\n', '\r\n') + '1,a@x.com,2026-01-01,free\r\n'],
    ['blank lines', `${HEADER}\n1,a@x.com,2026-01-01,free\n\n\n`],
    ['a byte order mark before a quoted header', '\ufeff"customer_id",email\n1,a\n'],
    ['quoted commas, escaped quotes and line breaks', `${HEADER}1,"a,b@x.com","2026-01-01","say ""hi""\nand\r\nbye"\n2,,,\n`],
    ['a quote inside an unquoted value, as DuckDB reads it', `${HEADER}1,a@x.com,2026-01-01,5'10"\n`],
    ['empty values', `${HEADER},,,\n`],
    ['only a header', HEADER],
    ['one column', 'email\na@x.com\n'],
    ['a semicolon inside a value of a comma-separated file', `${HEADER}1,"a;b@x.com",2026-01-01,free\n`],
    ['an empty file', ''],
  ])('accepts %s', (_name, text) => {
    expect(check(text)).toBeUndefined();
  });

  it.each([
    ['a row with fewer fields', `${HEADER}1,a@x.com,2026-01-01,free\n2,b@x.com,2026-01-02\n`, 3, 'the row has 3 fields, the header has 4'],
    ['a row with more fields', `${HEADER}1,a@x.com,2026-01-01,free,extra\n`, 2, 'the row has 5 fields, the header has 4'],
    ['a quote that never closes', `${HEADER}1,a@x.com,2026-01-01,free\n2,"b@x.com,2026-01-02,pro\n3,c@x.com,2026-01-03,pro\n`, 3, 'never closed'],
    ['text after a closing quote', `${HEADER}1,"a"@x.com,2026-01-01,free\n`, 2, 'after its closing quote'],
    ['a ragged row after a multi-line quoted value', `${HEADER}1,a@x.com,"line\nbreak",free\n2,b@x.com\n`, 4, 'the row has 2 fields'],
    ['a semicolon-separated export', 'customer_id;email\n1;a@x.com\n', 1, 'separated by `;`, not commas'],
    ['a tab-separated export', 'customer_id\temail\n1\ta@x.com\n', 1, 'separated by a tab, not commas'],
  ])('rejects %s, naming the line', (_name, text, line, message) => {
    const problem = check(text);
    expect(problem?.line).toBe(line);
    expect(problem?.message).toContain(message);
  });

  it('finds a ragged row in a later chunk, with a CR LF split across the chunk boundary', () => {
    const tail = ',2026-01-01,free';
    // The first row ends with its CR at the last byte of the first 1 MiB chunk; its LF starts the second.
    const first = `1,${'a'.repeat((1 << 20) - 1 - HEADER.length - '1,'.length - tail.length)}${tail}\r\n`;
    const text = HEADER + first + '2,b@x.com,2026-01-02,pro\r\n'.repeat(3) + '3,c@x.com\r\n';
    expect(Buffer.from(text).subarray((1 << 20) - 1, (1 << 20) + 1).toString()).toBe('\r\n');
    expect(check(text)).toEqual({ line: 6, message: 'the row has 2 fields, the header has 4' });
  });
});
