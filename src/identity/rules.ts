import { existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, type SourceLocation } from '../errors.js';
import { assertValidName } from '../project/names.js';
import { parseReference, type NodeReference } from '../project/schema-file.js';
import { YamlValue } from '../project/yaml-reader.js';

/**
 * identity.yml: which identifiers exist, how each is normalised, which models emit edges, which
 * values are never trusted, the per-profile limits with their priority, and split rules.
 * Documented in docs/identity.md; every rule there has a tested example.
 */

export const IDENTITY_FILE = 'identity.yml';

export type Normalizer =
  | { kind: 'email' }
  | { kind: 'phone'; defaultCallingCode: string }
  | { kind: 'trim' }
  | { kind: 'lower' }
  /** An SQL expression over `value`, e.g. `upper(trim(value))`. */
  | { kind: 'sql'; expression: string };

export interface IdentifierType {
  name: string;
  normalizer: Normalizer;
  /** Most identifiers of this type one profile may hold. */
  limit: number;
  /** 1 = highest. Lower-priority identifiers are demoted first when a limit would break. */
  priority: number;
  at: SourceLocation;
}

export interface EdgeSource {
  name: string;
  from: NodeReference;
  /** identifier type → column of the source model. */
  identifiers: { type: string; column: string }[];
  timestampColumn: string;
  /** `true`, `false`, or an SQL boolean expression over the source's columns. */
  verified: string;
  where?: string;
  at: SourceLocation;
}

export interface NeverTrusted {
  values: string[];
  patterns: string[];
  /** Per identifier type, on top of the global lists. */
  byType: Map<string, { values: string[]; patterns: string[] }>;
}

export interface IdentifierRef {
  type: string;
  /** As written; normalised with the type's rule when compiled. */
  value: string;
}

export type SplitRule =
  | { kind: 'isolate'; identifier: IdentifierRef; at: SourceLocation }
  | { kind: 'never_join'; identifiers: [IdentifierRef, IdentifierRef]; at: SourceLocation };

export interface IdentityRules {
  file: string;
  types: IdentifierType[];
  sources: EdgeSource[];
  neverTrusted: NeverTrusted;
  /** An identifier linked to more distinct identifiers than this is a super-connector and is cut off. */
  maxPartners: number;
  splits: SplitRule[];
}

/** Segment's suggested blocked values plus common placeholders; `include_defaults: false` turns them off. */
export const DEFAULT_NEVER_TRUSTED: NeverTrusted = {
  values: ['test@test.com', 'test@example.com', 'noemail@example.com', 'null', 'none', 'nan', 'undefined', 'anonymous', 'unknown', 'n/a', '-1', '0000000000'],
  patterns: ['^[0-]*$', '^\\s*$'],
  byType: new Map(),
};

const TYPE_KEYS = ['normalize', 'default_country_code', 'sql', 'limit'];
const NORMALIZERS = ['email', 'phone', 'trim', 'lower', 'sql'] as const;

export function identityFileOf(projectRoot: string): string | undefined {
  const file = path.join(projectRoot, IDENTITY_FILE);
  return existsSync(file) ? file : undefined;
}

export function loadIdentityRules(file: string): IdentityRules {
  const root = YamlValue.read(file).onlyKeys(['identifier_types', 'priority', 'edge_sources', 'never_trusted', 'max_partners', 'split_rules']);
  const typesNode = root.child('identifier_types');
  if (typesNode.keys().length === 0) throw typesNode.error('missing-key', 'identity.yml needs `identifier_types`', 'Declare at least two identifier types, e.g. email and user_id.');
  const priorityNode = root.child('priority');
  const priority = priorityNode.exists ? priorityNode.stringList() : [];
  for (const [i, name] of priority.entries()) {
    if (!typesNode.keys().includes(name)) throw priorityNode.child(i).error('unknown-identifier-type', `\`priority\` names \`${name}\`, which is not an identifier type`);
  }
  // Unlisted types follow the listed ones alphabetically, as Segment orders its defaults.
  const ordered = [...priority, ...typesNode.keys().filter((t) => !priority.includes(t)).sort()];
  const types = typesNode.entries().map(([name, node]) => readType(name, node, ordered.indexOf(name) + 1));
  const typeNames = types.map((t) => t.name);
  return {
    file,
    types,
    sources: readSources(root.child('edge_sources'), typeNames),
    neverTrusted: readNeverTrusted(root.child('never_trusted'), typeNames),
    maxPartners: root.child('max_partners').integer(100, 2),
    splits: readSplits(root.child('split_rules'), typeNames),
  };
}

function located(node: YamlValue): SourceLocation {
  return { file: node.file, line: node.line, key: node.key };
}

function readType(name: string, node: YamlValue, priority: number): IdentifierType {
  assertValidName(name, 'Identifier type', located(node));
  node.onlyKeys(TYPE_KEYS);
  const kind = node.child('normalize').oneOf(NORMALIZERS, 'trim');
  const limitNode = node.child('limit');
  const limit = limitNode.integer(5, 0);
  if (limit === 0) {
    throw limitNode.error('limit-zero', `\`${limitNode.key}\` is 0: no profile could hold a ${name}`, 'Use 1 or more, or remove the type if it should never be an identifier.');
  }
  let normalizer: Normalizer;
  switch (kind) {
    case 'phone': {
      const code = node.child('default_country_code').string('1').replace(/^\+/, '');
      if (!/^\d{1,3}$/.test(code)) throw node.child('default_country_code').error('bad-country-code', `\`${node.key}.default_country_code\` must be a calling code like 351 or +44`);
      normalizer = { kind, defaultCallingCode: code };
      break;
    }
    case 'sql': {
      const expression = node.child('sql').string();
      if (!/\bvalue\b/.test(expression)) throw node.child('sql').error('sql-normalizer', `\`${node.key}.sql\` must use \`value\`, e.g. upper(trim(value))`);
      normalizer = { kind, expression };
      break;
    }
    default:
      normalizer = { kind };
  }
  return { name, normalizer, limit, priority, at: located(node) };
}

function readSources(node: YamlValue, types: string[]): EdgeSource[] {
  const sources = node.items().map((item) => {
    item.onlyKeys(['name', 'from', 'identifiers', 'timestamp', 'verified', 'where']);
    const name = assertValidName(item.child('name').string(), 'Edge source name', located(item.child('name')));
    const identifiers = item.child('identifiers').entries().map(([type, column]) => {
      if (!types.includes(type)) {
        throw column.error('unknown-identifier-type', `\`${column.key}\`: \`${type}\` is not a declared identifier type`, `Declared types: ${types.join(', ')}.`);
      }
      return { type, column: assertValidName(column.string(), 'Column', located(column)) };
    });
    if (identifiers.length < 2) {
      throw item.child('identifiers').error('too-few-identifiers', `Edge source \`${name}\` maps ${identifiers.length} identifier(s); an edge needs at least two`);
    }
    const verified = item.child('verified');
    return {
      name,
      from: parseReference(item.child('from')),
      identifiers,
      timestampColumn: assertValidName(item.child('timestamp').string(), 'Column', located(item.child('timestamp'))),
      verified: typeof verified.value === 'boolean' ? String(verified.value) : verified.string('false'),
      where: item.child('where').optionalString(),
      at: located(item),
    };
  });
  if (sources.length === 0) throw node.error('missing-key', 'identity.yml needs at least one entry under `edge_sources`');
  const seen = new Set<string>();
  for (const source of sources) {
    if (seen.has(source.name)) throw new ConfigError('duplicate-edge-source', `Edge source \`${source.name}\` is declared twice`, { at: source.at });
    seen.add(source.name);
  }
  return sources;
}

function readPatternList(node: YamlValue): string[] {
  return node.stringList().map((pattern, i) => {
    const at = node.isList() ? node.child(i) : node;
    try {
      new RegExp(pattern);
    } catch (error) {
      throw at.error('bad-regex', `\`${at.key}\` is not a valid regular expression: ${(error as Error).message}`);
    }
    // The warehouse compiles it again (RE2 on BigQuery and DuckDB); keep to their common subset.
    if (/\(\?[=!<]|\\[1-9]/.test(pattern)) {
      throw at.error('bad-regex', `\`${at.key}\` uses lookaround or backreferences, which warehouse regex engines do not support`);
    }
    return pattern;
  });
}

function readNeverTrusted(node: YamlValue, types: string[]): NeverTrusted {
  node.onlyKeys(['include_defaults', 'values', 'patterns', 'by_type']);
  const includeDefaults = node.child('include_defaults').boolean(true);
  const byType = new Map<string, { values: string[]; patterns: string[] }>();
  for (const [type, entry] of node.child('by_type').entries()) {
    if (!types.includes(type)) throw entry.error('unknown-identifier-type', `\`${entry.key}\`: \`${type}\` is not a declared identifier type`);
    entry.onlyKeys(['values', 'patterns']);
    byType.set(type, { values: entry.child('values').stringList(), patterns: readPatternList(entry.child('patterns')) });
  }
  return {
    values: [...(includeDefaults ? DEFAULT_NEVER_TRUSTED.values : []), ...node.child('values').stringList()],
    patterns: [...(includeDefaults ? DEFAULT_NEVER_TRUSTED.patterns : []), ...readPatternList(node.child('patterns'))],
    byType,
  };
}

function readIdentifierRef(node: YamlValue, types: string[]): IdentifierRef {
  const text = node.string();
  const colon = text.indexOf(':');
  const type = colon > 0 ? text.slice(0, colon) : '';
  if (!types.includes(type)) {
    throw node.error('bad-identifier', `\`${node.key}\` must be \`<type>:<value>\` with a declared type; got ${JSON.stringify(text)}`, `Declared types: ${types.join(', ')}.`);
  }
  return { type, value: text.slice(colon + 1) };
}

function readSplits(node: YamlValue, types: string[]): SplitRule[] {
  return node.items().map((item): SplitRule => {
    item.onlyKeys(['isolate', 'never_join', 'reason']);
    if (item.child('isolate').exists) return { kind: 'isolate', identifier: readIdentifierRef(item.child('isolate'), types), at: located(item) };
    const pair = item.child('never_join').items();
    if (pair.length !== 2) throw item.error('bad-split-rule', `\`${item.key}\` needs \`isolate: type:value\` or \`never_join: [type:a, type:b]\``);
    return { kind: 'never_join', identifiers: [readIdentifierRef(pair[0]!, types), readIdentifierRef(pair[1]!, types)], at: located(item) };
  });
}
