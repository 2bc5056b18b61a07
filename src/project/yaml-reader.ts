import { readFileSync } from 'node:fs';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document, type Node as YamlAstNode } from 'yaml';
import { ConfigError } from '../errors.js';

/**
 * Typed, located access to a YAML file. Every accessor that rejects a value throws a
 * ConfigError naming the file, the line and the dotted key, so validation code reads as a
 * list of expectations instead of a tangle of `typeof` checks.
 */
export class YamlValue {
  private constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
    readonly path: (string | number)[],
    readonly value: unknown,
  ) {}

  static parse(file: string, text: string): YamlValue {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    const problem = doc.errors[0];
    if (problem) {
      const pos = problem.linePos?.[0] ?? lines.linePos(problem.pos[0]);
      throw new ConfigError('yaml-syntax', `Malformed YAML: ${problem.message.split('\n')[0]}`, {
        at: { file, line: pos?.line, column: pos?.col },
        hint: 'Fix the YAML syntax (indentation, a missing colon, an unclosed quote).',
      });
    }
    return new YamlValue(file, doc, lines, [], doc.toJS() ?? {});
  }

  static read(file: string): YamlValue {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError('file-unreadable', `Cannot read ${file}`, { at: { file }, cause: error });
    }
    return YamlValue.parse(file, text);
  }

  get key(): string {
    return this.path.join('.');
  }

  /** The line of this value's key in the file, when it exists there. */
  get line(): number | undefined {
    const node = this.path.length === 0 ? this.doc.contents : (this.keyNode() ?? (this.doc.getIn(this.path, true) as YamlAstNode | undefined));
    const offset = node && 'range' in node && node.range ? node.range[0] : undefined;
    return offset === undefined ? undefined : this.lines.linePos(offset).line;
  }

  /** The key of this value in its parent mapping: a block value starts on the line after its key. */
  private keyNode(): YamlAstNode | undefined {
    const parent = this.path.length === 1 ? this.doc.contents : this.doc.getIn(this.path.slice(0, -1), true);
    if (!isMap(parent)) return undefined;
    const last = this.path[this.path.length - 1];
    const pair = parent.items.find((item) => (isScalar(item.key) ? item.key.value : item.key) === last);
    return pair && isScalar(pair.key) ? (pair.key as YamlAstNode) : undefined;
  }

  error(code: string, message: string, hint?: string): ConfigError {
    return new ConfigError(code, message, { at: { file: this.file, line: this.line, key: this.key || undefined }, hint });
  }

  get exists(): boolean {
    return this.value !== undefined && this.value !== null;
  }

  child(key: string | number): YamlValue {
    const value = this.value !== null && typeof this.value === 'object' ? (this.value as Record<string | number, unknown>)[key] : undefined;
    return new YamlValue(this.file, this.doc, this.lines, [...this.path, key], value);
  }

  isMap(): boolean {
    return isMap(this.astNode()) || (this.value !== null && typeof this.value === 'object' && !Array.isArray(this.value));
  }

  isList(): boolean {
    return isSeq(this.astNode()) || Array.isArray(this.value);
  }

  isScalar(): boolean {
    return isScalar(this.astNode()) || (this.value !== null && typeof this.value !== 'object');
  }

  /** Keys of a mapping, in file order. Throws when the value is not a mapping. */
  keys(): string[] {
    if (!this.exists) return [];
    if (!this.isMap()) throw this.error('expected-map', `\`${this.key || '(root)'}\` must be a mapping of keys to values`);
    return Object.keys(this.value as object);
  }

  entries(): [string, YamlValue][] {
    return this.keys().map((k) => [k, this.child(k)]);
  }

  items(): YamlValue[] {
    if (!this.exists) return [];
    if (!Array.isArray(this.value)) throw this.error('expected-list', `\`${this.key}\` must be a list`);
    return this.value.map((_, i) => this.child(i));
  }

  /** Rejects keys outside `allowed`, listing the allowed ones. */
  onlyKeys(allowed: readonly string[]): this {
    for (const key of this.keys()) {
      if (!allowed.includes(key)) {
        const where = this.child(key);
        throw where.error('unknown-key', `Unknown key \`${where.key}\``, `Allowed keys here: ${allowed.join(', ')}.`);
      }
    }
    return this;
  }

  string(): string;
  string(fallback: string): string;
  string(fallback?: string): string {
    if (!this.exists) {
      if (fallback !== undefined) return fallback;
      throw this.error('missing-key', `Missing required key \`${this.key}\``);
    }
    if (typeof this.value === 'string') return this.value;
    if (typeof this.value === 'number' || typeof this.value === 'boolean') return String(this.value);
    throw this.error('expected-string', `\`${this.key}\` must be a string`);
  }

  optionalString(): string | undefined {
    return this.exists ? this.string() : undefined;
  }

  integer(fallback: number, min = 0): number {
    if (!this.exists) return fallback;
    const n = typeof this.value === 'string' && /^\d+$/.test(this.value) ? Number(this.value) : this.value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min) {
      throw this.error('expected-integer', `\`${this.key}\` must be an integer ≥ ${min}, got ${JSON.stringify(this.value)}`);
    }
    return n;
  }

  boolean(fallback: boolean): boolean {
    if (!this.exists) return fallback;
    if (typeof this.value !== 'boolean') throw this.error('expected-boolean', `\`${this.key}\` must be true or false`);
    return this.value;
  }

  /** A list of strings; a single string is accepted as a one-element list. */
  stringList(): string[] {
    if (!this.exists) return [];
    if (typeof this.value === 'string') return [this.value];
    return this.items().map((item) => item.string());
  }

  oneOf<T extends string>(allowed: readonly T[], fallback?: T): T {
    const value = fallback === undefined ? this.string() : this.string(fallback);
    if (!(allowed as readonly string[]).includes(value)) {
      throw this.error('invalid-value', `\`${this.key}\` is \`${value}\`; expected one of: ${allowed.join(', ')}`);
    }
    return value as T;
  }

  private astNode(): unknown {
    return this.path.length === 0 ? this.doc.contents : this.doc.getIn(this.path, true);
  }
}
