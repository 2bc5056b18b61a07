import { closeSync, openSync, readSync } from 'node:fs';

/**
 * The structure check run on every CSV seed and file-backed source before anything is loaded.
 * DuckDB's sniffer adapts to a malformed file instead of rejecting it (a ragged row near the top
 * turns the whole file into one column, an unclosed quote loads as a stray `"`), and the cloud
 * loaders are lenient about column counts, so cdp checks RFC 4180 itself: every record has the
 * header's number of fields, a quote opens only at the start of a field and closes before the
 * next delimiter, and no quoted field runs to the end of the file. One pass over the bytes, read
 * in chunks; it does not parse values.
 */

export interface CsvProblem {
  /** 1-based physical line where the faulty record (or quoted field) starts. */
  line: number;
  message: string;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;
const BOM = [0xef, 0xbb, 0xbf];

const enum State {
  FieldStart,
  Unquoted,
  Quoted,
  /** A quote inside a quoted field: the closing one, or the first of an escaped `""`. */
  QuoteInQuoted,
}

export function csvProblem(file: string): CsvProblem | undefined {
  const scanner = new CsvScanner();
  const buffer = Buffer.alloc(1 << 20);
  const fd = openSync(file, 'r');
  try {
    for (let n = readSync(fd, buffer), first = true; n > 0; n = readSync(fd, buffer), first = false) {
      const problem = (first ? otherDelimiter(buffer.subarray(0, n)) : undefined) ?? scanner.feed(buffer.subarray(0, n));
      if (problem) return problem;
    }
  } finally {
    closeSync(fd);
  }
  return scanner.end();
}

/**
 * A header with no comma but a semicolon or a tab: a `;`- or tab-separated export, which would
 * pass the field count check (one field per row) and load as one column named after the header.
 */
function otherDelimiter(firstChunk: Buffer): CsvProblem | undefined {
  const end = firstChunk.indexOf(LF);
  const header = firstChunk.subarray(0, end === -1 ? firstChunk.length : end).toString('utf8');
  if (header.includes(',')) return undefined;
  const delimiter = header.includes(';') ? ';' : header.includes('\t') ? 'a tab' : undefined;
  return delimiter ? { line: 1, message: `the header is separated by ${delimiter === ';' ? '`;`' : delimiter}, not commas: cdp reads comma-separated CSV (export the file with commas)` } : undefined;
}

class CsvScanner {
  private state = State.FieldStart;
  private line = 1;
  private afterCr = false;
  private atFileStart = true;
  private recordLine = 1;
  private quoteLine = 1;
  /** Delimiters seen in the current record. */
  private commas = 0;
  /** Whether the current record has any byte at all: an empty line is not a record. */
  private recordHasContent = false;
  private expected: number | undefined;

  feed(bytes: Buffer): CsvProblem | undefined {
    let i = 0;
    if (this.atFileStart) {
      this.atFileStart = false;
      if (BOM.every((b, k) => bytes[k] === b)) i = BOM.length;
    }
    for (; i < bytes.length; i++) {
      const byte = bytes[i]!;
      // The bytes that matter (quote, comma, CR, LF) all sort at or below the comma: most bytes
      // are ordinary text and take this one comparison (in a field already started, nothing else).
      if (byte > COMMA) {
        this.afterCr = false;
        if (this.state === State.Unquoted || this.state === State.Quoted) continue;
        if (this.state === State.QuoteInQuoted) return this.textAfterClosingQuote();
        this.state = State.Unquoted;
        this.recordHasContent = true;
        continue;
      }
      const problem = this.special(byte);
      if (problem) return problem;
    }
    return undefined;
  }

  private special(byte: number): CsvProblem | undefined {
    // A CR LF pair is one line break; the LF was counted with the CR.
    if (byte === LF && this.afterCr) {
      this.afterCr = false;
      return undefined;
    }
    this.afterCr = byte === CR;
    const newline = byte === LF || byte === CR;
    switch (this.state) {
      case State.Quoted:
        if (byte === QUOTE) this.state = State.QuoteInQuoted;
        else if (newline) this.line++;
        return undefined;
      case State.QuoteInQuoted:
        if (byte === QUOTE) {
          this.state = State.Quoted;
          return undefined;
        }
        if (byte !== COMMA && !newline) return this.textAfterClosingQuote();
        break;
      case State.FieldStart:
        if (byte === QUOTE) {
          this.state = State.Quoted;
          this.quoteLine = this.line;
          this.recordHasContent = true;
          return undefined;
        }
        break;
      case State.Unquoted:
        break;
    }
    if (byte === COMMA) {
      this.commas++;
      this.recordHasContent = true;
      this.state = State.FieldStart;
    } else if (newline) {
      const problem = this.endRecord();
      if (problem) return problem;
      this.line++;
      this.recordLine = this.line;
    } else {
      this.recordHasContent = true;
      this.state = State.Unquoted;
    }
    return undefined;
  }

  private textAfterClosingQuote(): CsvProblem {
    return { line: this.line, message: 'a quoted field goes on after its closing quote (write a quote inside a quoted field as "")' };
  }

  end(): CsvProblem | undefined {
    if (this.state === State.Quoted) {
      return { line: this.quoteLine, message: 'a quoted field opened here is never closed (a stray `"`?)' };
    }
    return this.endRecord();
  }

  private endRecord(): CsvProblem | undefined {
    const fields = this.commas + 1;
    const hasContent = this.recordHasContent;
    this.commas = 0;
    this.recordHasContent = false;
    this.state = State.FieldStart;
    if (!hasContent) return undefined;
    if (this.expected === undefined) {
      this.expected = fields;
      return undefined;
    }
    if (fields === this.expected) return undefined;
    return { line: this.recordLine, message: `the row has ${fields} field${fields === 1 ? '' : 's'}, the header has ${this.expected}` };
  }
}
