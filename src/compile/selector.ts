/**
 * Node selection for `--select` / `--exclude`, with dbt's syntax and semantics
 * (https://docs.getdbt.com/reference/node-selection/syntax).
 *
 * Three stages, each pure: `tokenize` splits the text into punctuation and words,
 * `parseSelector` builds a typed AST by recursive descent (so every error can name the
 * column it happened at), and `evaluateSelector` turns the AST into a set of unique ids.
 *
 *   selection := term (SPACE term)*                     union
 *   term      := atom (',' atom)*                       intersection
 *   atom      := '@'? (DIGITS? '+')? (METHOD ':')? VALUE ('+' DIGITS?)?
 */
import { ConfigError } from '../errors.js';
import type { Dag } from './graph.js';
import { MATERIALIZATIONS, RESOURCE_TYPES, type ManifestNode, type SourceNode, type TestNode } from './node.js';

// ---------------------------------------------------------------------------------------
// AST

export type SelectorMethod =
  | 'fqn'
  | 'tag'
  | 'path'
  | 'file'
  | 'resource_type'
  | 'source'
  | 'config.materialized'
  | 'test_type'
  | 'state';

/** One selection criterion, e.g. `2+tag:nightly+1`. */
export interface AtomExpr {
  kind: 'atom';
  /** Explicit `method:`, or the default inferred from the value's shape (see `defaultMethod`). */
  method: SelectorMethod;
  value: string;
  /** Ancestor depth from an `N+` prefix; Infinity for a bare `+`; absent without a prefix. */
  parents?: number;
  /** Descendant depth from a `+N` suffix; Infinity for a bare `+`; absent without a suffix. */
  children?: number;
  /** `@`: the node, its descendants, and every ancestor of those descendants (dbt's "childrens_parents"). */
  childrensParents: boolean;
  /** The atom as written and its 1-based column in the selector text, for messages and warnings. */
  raw: string;
  column: number;
}

export interface IntersectionExpr {
  kind: 'intersection';
  operands: AtomExpr[];
}

export interface UnionExpr {
  kind: 'union';
  operands: (IntersectionExpr | AtomExpr)[];
}

/** Single-operand unions and intersections are collapsed, so `a` parses to a bare atom. */
export type SelectorExpr = UnionExpr | IntersectionExpr | AtomExpr;

/** What `state:` compares against: the previous run's manifest, keyed by unique id. */
export type PreviousManifest = ReadonlyMap<string, { checksum: string }>;

// ---------------------------------------------------------------------------------------
// Methods: each compiles its value once into a node predicate, so globs become regexes
// once per selector rather than once per node.

type NodePredicate = (node: ManifestNode) => boolean;
type MethodCompiler = (value: string, previous: PreviousManifest | undefined) => NodePredicate;

const STATES: Record<string, (checksum: string, before: { checksum: string } | undefined) => boolean> = {
  new: (_checksum, before) => before === undefined,
  modified: (checksum, before) => before === undefined || before.checksum !== checksum,
  unmodified: (checksum, before) => before !== undefined && before.checksum === checksum,
  old: (_checksum, before) => before !== undefined,
};

/** `singular` is dbt's name for what cdp calls `custom` (SQL files under tests/); accept both. */
const TEST_TYPES = ['generic', 'custom', 'singular'] as const;

const METHODS: Record<SelectorMethod, MethodCompiler> = {
  fqn: compileFqn,
  tag: (value) => {
    const tag = glob(value);
    return (node) => nodeTags(node).some(tag);
  },
  path: (value) => {
    const parts = pathSegments(value).map(glob);
    return (node) => segmentPrefixMatch(parts, pathSegments(node.path));
  },
  file: (value) => {
    const file = glob(value);
    // dbt matches the file name with or without its extension: `file:stg_orders` works too.
    return (node) => {
      const base = node.path.slice(node.path.lastIndexOf('/') + 1);
      return file(base) || file(base.replace(/\.[^.]*$/, ''));
    };
  },
  resource_type: (value) => (node) => node.resourceType === value,
  source: compileSource,
  'config.materialized': (value) => (node) => node.resourceType === 'model' && node.config.materialized === value,
  test_type: (value) => {
    const wanted = value === 'singular' ? 'custom' : value;
    return (node) => node.resourceType === 'test' && testType(node) === wanted;
  },
  state: (value, previous) => {
    const compare = STATES[value]!;
    return (node) => previous !== undefined && compare(node.checksum, previous.get(node.uniqueId));
  },
};

export const SELECTOR_METHODS = Object.keys(METHODS) as SelectorMethod[];

/** Methods whose values form a closed set: a typo there is an error, not an empty selection. */
const ALLOWED_VALUES: Partial<Record<SelectorMethod, readonly string[]>> = {
  resource_type: RESOURCE_TYPES,
  'config.materialized': MATERIALIZATIONS,
  test_type: TEST_TYPES,
  state: Object.keys(STATES),
};

/**
 * dbt's fqn rule: the value equals the node's name, or its dot-separated parts are a prefix
 * of the fqn (so `my_project.staging` selects everything under models/staging). `*` globs
 * within a part.
 */
function compileFqn(value: string): NodePredicate {
  const name = glob(value);
  const parts = value.split('.').map(glob);
  return (node) => name(node.name) || segmentPrefixMatch(parts, node.fqn);
}

/** `source:raw` (source name), `source:raw.bookings` (source.table) or `source:project.raw.bookings`. */
function compileSource(value: string): NodePredicate {
  const parts = value.split('.').map(glob);
  return (node) => node.resourceType === 'source' && sourceMatches(parts, node);
}

function sourceMatches(parts: ((s: string) => boolean)[], node: SourceNode): boolean {
  if (parts.length > 3) return false;
  const qualified = [node.fqn[0] ?? '', node.sourceName, node.fqn[2] ?? ''];
  const key = parts.length === 3 ? qualified : qualified.slice(1);
  return parts.every((part, i) => part(key[i]!));
}

/** A test is `custom` when it is a SQL file under tests/, per TestConfig.testName. */
function testType(node: TestNode): 'generic' | 'custom' {
  return node.config.testName === 'custom' ? 'custom' : 'generic';
}

/** Models carry tags both on the node and in config; read both so neither source of truth is missed. */
function nodeTags(node: ManifestNode): string[] {
  return node.resourceType === 'model' ? [...node.tags, ...node.config.tags] : node.tags;
}

/** Project-relative, separator-agnostic; `.` and empty parts drop out so `./models/` = `models`. */
function pathSegments(path: string): string[] {
  return path.split(/[\\/]/).filter((part) => part !== '' && part !== '.');
}

function segmentPrefixMatch(pattern: ((s: string) => boolean)[], segments: readonly string[]): boolean {
  return pattern.length <= segments.length && pattern.every((part, i) => part(segments[i]!));
}

/** `*` matches any run of characters; everything else is literal. */
function glob(pattern: string): (text: string) => boolean {
  if (!pattern.includes('*')) return (text) => text === pattern;
  const source = pattern
    .split('*')
    .map((piece) => piece.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  const regex = new RegExp(`^${source}$`);
  return (text) => regex.test(text);
}

// ---------------------------------------------------------------------------------------
// Tokenizer

type TokenKind = 'word' | 'space' | 'comma' | 'plus' | 'at' | 'colon' | 'end';

interface Token {
  kind: TokenKind;
  text: string;
  /** 1-based, in the selector text as given. */
  column: number;
}

const PUNCTUATION: Readonly<Record<string, TokenKind>> = { ',': 'comma', '+': 'plus', '@': 'at', ':': 'colon' };

/** Words are maximal runs of anything that is not whitespace or punctuation, so paths and globs stay whole. */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const pattern = /(\s+)|([,+@:])|([^\s,+@:]+)/y;
  let match: RegExpExecArray | null;
  while ((match = pattern.exec(text)) !== null) {
    const kind: TokenKind = match[1] ? 'space' : match[2] ? PUNCTUATION[match[2]]! : 'word';
    tokens.push({ kind, text: match[0], column: match.index + 1 });
  }
  tokens.push({ kind: 'end', text: '', column: text.length + 1 });
  return tokens;
}

// ---------------------------------------------------------------------------------------
// Parser

class Cursor {
  private position = 0;

  constructor(
    readonly text: string,
    private readonly tokens: readonly Token[],
  ) {}

  peek(offset = 0): Token {
    return this.tokens[Math.min(this.position + offset, this.tokens.length - 1)]!;
  }

  next(): Token {
    const token = this.peek();
    if (token.kind !== 'end') this.position++;
    return token;
  }

  accept(kind: TokenKind): Token | undefined {
    return this.peek().kind === kind ? this.next() : undefined;
  }

  fail(column: number, problem: string): never {
    throw invalidSelector(this.text, column, problem);
  }
}

/** Parses one `--select` or `--exclude` list, its argv elements joined with spaces. */
export function parseSelector(text: string): SelectorExpr {
  const cursor = new Cursor(text, tokenize(text));
  cursor.accept('space');
  if (cursor.peek().kind === 'end') cursor.fail(cursor.peek().column, 'the selector is empty');
  const terms = [parseTerm(cursor)];
  while (cursor.accept('space') && cursor.peek().kind !== 'end') terms.push(parseTerm(cursor));
  return terms.length === 1 ? terms[0]! : { kind: 'union', operands: terms };
}

function parseTerm(cursor: Cursor): IntersectionExpr | AtomExpr {
  if (cursor.peek().kind === 'comma') cursor.fail(cursor.peek().column, "nothing before ','");
  const atoms = [parseAtom(cursor)];
  while (cursor.peek().kind === 'comma') {
    const comma = cursor.next();
    const after = cursor.peek();
    if (after.kind === 'comma' || after.kind === 'space' || after.kind === 'end') {
      cursor.fail(comma.column, "nothing after ',' (write `a,b` with no spaces to intersect)");
    }
    atoms.push(parseAtom(cursor));
  }
  const stray = cursor.peek();
  if (stray.kind !== 'space' && stray.kind !== 'end') cursor.fail(stray.column, `unexpected '${stray.text}'`);
  return atoms.length === 1 ? atoms[0]! : { kind: 'intersection', operands: atoms };
}

function parseAtom(cursor: Cursor): AtomExpr {
  const start = cursor.peek().column;
  const childrensParents = cursor.accept('at') !== undefined;
  const parents = parseParents(cursor);
  const { method, value } = parseMethodValue(cursor);
  const children = parseChildren(cursor);
  const raw = cursor.text.slice(start - 1, cursor.peek().column - 1);
  if (childrensParents && children !== undefined) {
    // Same rule as dbt: `@` already takes every descendant, so a depth-limited suffix is contradictory.
    cursor.fail(start, `'@' and a '+' suffix cannot be combined in '${raw}'`);
  }
  const atom: AtomExpr = { kind: 'atom', method, value, childrensParents, raw, column: start };
  if (parents !== undefined) atom.parents = parents;
  if (children !== undefined) atom.children = children;
  return atom;
}

/**
 * `+x` or `N+x`. Digits followed by `+` only form a depth when a selector follows, as in
 * dbt's regex, so `2+` still means "the node named 2 and its descendants".
 */
function parseParents(cursor: Cursor): number | undefined {
  if (cursor.accept('plus')) return Infinity;
  const depth = cursor.peek();
  const isDepth = depth.kind === 'word' && /^-?\d+$/.test(depth.text) && cursor.peek(1).kind === 'plus' && cursor.peek(2).kind === 'word';
  if (!isDepth) return undefined;
  cursor.next();
  cursor.next();
  return parseDepth(cursor, depth);
}

/** `x+` or `x+N`. */
function parseChildren(cursor: Cursor): number | undefined {
  if (!cursor.accept('plus')) return undefined;
  const depth = cursor.peek();
  if (depth.kind !== 'word') return Infinity;
  cursor.next();
  if (!/^\d+$/.test(depth.text)) {
    // `3x+orders`: the depth prefix was mistyped, and `orders` read as a descendant depth.
    cursor.fail(depth.column, `'+' after a node name ends the selector or takes a descendant depth (a number), got '${depth.text}'; an ancestor depth goes first and is a number too: N+name`);
  }
  return parseDepth(cursor, depth);
}

function parseDepth(cursor: Cursor, token: Token): number {
  if (!/^\d+$/.test(token.text)) cursor.fail(token.column, `graph depth must be a non-negative whole number, got '${token.text}'`);
  return Number(token.text);
}

function parseMethodValue(cursor: Cursor): { method: SelectorMethod; value: string } {
  const first = expectWord(cursor, 'a node name or method:value');
  if (!cursor.accept('colon')) return { method: defaultMethod(first.text), value: first.text };
  const method = resolveMethod(cursor, first);
  const value = expectWord(cursor, `a value after '${first.text}:'`);
  checkValue(cursor, method, value);
  return { method, value: value.text };
}

function expectWord(cursor: Cursor, what: string): Token {
  const token = cursor.peek();
  if (token.kind === 'word') return cursor.next();
  const found = token.kind === 'end' ? 'the end of the selector' : token.kind === 'space' ? 'a space' : `'${token.text}'`;
  return cursor.fail(token.column, `expected ${what}, found ${found}`);
}

function resolveMethod(cursor: Cursor, token: Token): SelectorMethod {
  if ((SELECTOR_METHODS as string[]).includes(token.text)) return token.text as SelectorMethod;
  return cursor.fail(token.column, `unknown selector method '${token.text}'`);
}

function checkValue(cursor: Cursor, method: SelectorMethod, token: Token): void {
  const allowed = ALLOWED_VALUES[method];
  if (allowed && !allowed.includes(token.text)) {
    cursor.fail(token.column, `'${token.text}' is not a valid ${method}; expected one of ${allowed.join(', ')}`);
  }
}

/**
 * As in dbt: a value with a path separator is a `path`, one ending in a file extension we
 * author (`.sql`, `.csv`) is a `file` basename, anything else a name / fqn.
 */
function defaultMethod(value: string): SelectorMethod {
  if (/[\\/]/.test(value)) return 'path';
  if (/\.(sql|csv)$/i.test(value)) return 'file';
  return 'fqn';
}

function invalidSelector(text: string, column: number, problem: string): ConfigError {
  return new ConfigError('invalid-selector', `Invalid selector "${text}" at column ${column}: ${problem}`, {
    hint:
      `Write [@][N+][method:]value[+N]; separate selectors with spaces (union) or commas (intersection). ` +
      `Methods: ${SELECTOR_METHODS.join(', ')}.`,
  });
}

// ---------------------------------------------------------------------------------------
// Evaluator

/** The unique ids `expr` selects in `dag`, before indirect test selection. */
export function evaluateSelector(dag: Dag, expr: SelectorExpr, previous?: PreviousManifest): Set<string> {
  switch (expr.kind) {
    case 'union':
      return union(expr.operands.map((operand) => evaluateSelector(dag, operand, previous)));
    case 'intersection':
      return intersection(expr.operands.map((operand) => evaluateSelector(dag, operand, previous)));
    case 'atom':
      return expandGraph(dag, expr, matchAtom(dag, expr, previous));
  }
}

function matchAtom(dag: Dag, atom: AtomExpr, previous: PreviousManifest | undefined): Set<string> {
  if (atom.method === 'state' && previous === undefined) throw stateMissing(atom.raw);
  const predicate = METHODS[atom.method](atom.value, previous);
  const matched = new Set<string>();
  for (const node of dag.nodes.values()) if (predicate(node)) matched.add(node.uniqueId);
  return matched;
}

function expandGraph(dag: Dag, atom: AtomExpr, matched: Set<string>): Set<string> {
  if (atom.childrensParents) {
    // Everything needed to build the descendants: an `N+` prefix adds nothing beyond this.
    const family = union([matched, dag.descendants(matched)]);
    return union([family, dag.ancestors(family)]);
  }
  const result = new Set(matched);
  if (atom.parents !== undefined) for (const id of dag.ancestors(matched, atom.parents)) result.add(id);
  if (atom.children !== undefined) for (const id of dag.descendants(matched, atom.children)) result.add(id);
  return result;
}

function stateMissing(raw: string): ConfigError {
  return new ConfigError('state-missing', `Selector '${raw}' compares against a previous run, but no previous manifest was given`, {
    hint: 'Pass --state DIR, where DIR holds the manifest.json of the run to compare against (e.g. a copy of target/ from production).',
  });
}

function union(sets: Iterable<ReadonlySet<string>>): Set<string> {
  const result = new Set<string>();
  for (const set of sets) for (const id of set) result.add(id);
  return result;
}

function intersection(sets: ReadonlySet<string>[]): Set<string> {
  const [first, ...rest] = sets;
  return new Set([...(first ?? [])].filter((id) => rest.every((set) => set.has(id))));
}

// ---------------------------------------------------------------------------------------
// Indirect test selection and the top-level entry point

/**
 * How tests join a selection of the nodes they test (dbt's indirect selection):
 * - `eager`: a test joins when ANY node it depends on (or is attached to) is selected, so
 *   `--select orders` runs the tests on orders, including relationship tests that merely point
 *   at it. Used by `cdp test`, where the tables exist already.
 * - `buildable`: additionally, every node the test reads must be selected or upstream of the
 *   selection. Used when the same invocation builds the models (`cdp build`), so a
 *   relationships test never reads a table this run did not build.
 */
export type IndirectSelection = 'eager' | 'buildable';

export function withAttachedTests(dag: Dag, selected: ReadonlySet<string>, mode: IndirectSelection = 'eager'): Set<string> {
  const result = new Set(selected);
  const available = mode === 'buildable' ? new Set([...selected, ...dag.ancestors(selected)]) : undefined;
  for (const node of dag.nodes.values()) {
    if (node.resourceType !== 'test' || result.has(node.uniqueId)) continue;
    const parents = [...dag.parents(node.uniqueId), ...(node.config.attachedTo ? [node.config.attachedTo] : [])];
    if (!parents.some((id) => selected.has(id))) continue;
    if (available && !parents.every((id) => available.has(id))) continue;
    result.add(node.uniqueId);
  }
  return result;
}

export interface SelectOptions {
  select?: readonly string[];
  exclude?: readonly string[];
  previous?: PreviousManifest;
  /** For tests joining `--select` (default `eager`); `--exclude` is always eager. */
  indirectSelection?: IndirectSelection;
}

/**
 * `--select` (everything when absent) minus `--exclude`, in DAG insertion order. Both sides
 * get their attached tests, as dbt does: `--exclude orders` also drops the tests on orders
 * (they would test a table this run did not build), and a test excluded by name stays
 * excluded even though its model is selected. A selection that matches nothing is an empty
 * set, not an error: the CLI decides how to warn.
 */
export function selectNodes(dag: Dag, options: SelectOptions): Set<string> {
  // Parse both lists before evaluating either, so a typo in --exclude is reported first-hand.
  const select = parseList(options.select);
  const exclude = parseList(options.exclude);
  const chosen = select ? withAttachedTests(dag, evaluateSelector(dag, select, options.previous), options.indirectSelection) : new Set(dag.nodes.keys());
  const dropped = exclude ? withAttachedTests(dag, evaluateSelector(dag, exclude, options.previous)) : new Set<string>();
  return new Set([...dag.nodes.keys()].filter((id) => chosen.has(id) && !dropped.has(id)));
}

function parseList(list: readonly string[] | undefined): SelectorExpr | undefined {
  return list && list.length > 0 ? parseSelector(list.join(' ')) : undefined;
}
