import path from 'node:path';
import type { SourceLocation } from '../errors.js';
import type { SeedFormat, Severity } from '../compile/node.js';
import { assertValidName } from './names.js';
import { readConfigEntries, type PartialModelConfig } from './project-file.js';
import { YamlValue } from './yaml-reader.js';

/** A reference from YAML to another node: `ref('x')`, `source('a', 'b')`, or a bare model name. */
export type NodeReference = { kind: 'ref'; name: string } | { kind: 'source'; source: string; table: string };

export type TestDecl =
  | { kind: 'unique' | 'not_null'; severity: Severity; at: SourceLocation }
  | { kind: 'accepted_values'; values: (string | number | boolean)[]; severity: Severity; at: SourceLocation }
  | { kind: 'relationships'; to: NodeReference; field: string; severity: Severity; at: SourceLocation };

export interface ColumnDecl {
  name: string;
  description: string;
  tests: TestDecl[];
}

export interface ResourceDecl {
  name: string;
  description: string;
  config: PartialModelConfig;
  columns: ColumnDecl[];
  at: SourceLocation;
}

export interface SourceTableDecl {
  sourceName: string;
  name: string;
  schema: string;
  description: string;
  columns: ColumnDecl[];
  /** A file that `cdp seed` loads into this source table. */
  file?: string;
  format?: SeedFormat;
  at: SourceLocation;
}

export interface SchemaFile {
  file: string;
  sources: SourceTableDecl[];
  models: ResourceDecl[];
  seeds: ResourceDecl[];
}

const GENERIC_TESTS = ['unique', 'not_null', 'accepted_values', 'relationships'];

export function seedFormatOf(file: string): SeedFormat | undefined {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.parquet') return 'parquet';
  if (ext === '.json' || ext === '.jsonl' || ext === '.ndjson') return 'json';
  return undefined;
}

/** Reads a YAML file beside the models: `sources:`, `models:` and `seeds:` with columns and tests. */
export function loadSchemaFile(file: string, projectRoot: string): SchemaFile {
  const root = YamlValue.read(file).onlyKeys(['version', 'sources', 'models', 'seeds']);
  return {
    file,
    sources: root.child('sources').items().flatMap((s) => readSource(s, projectRoot)),
    models: root.child('models').items().map(readResource),
    seeds: root.child('seeds').items().map(readResource),
  };
}

function located(value: YamlValue): SourceLocation {
  return { file: value.file, line: value.line, key: value.key };
}

function readSource(node: YamlValue, projectRoot: string): SourceTableDecl[] {
  node.onlyKeys(['name', 'description', 'schema', 'tables']);
  const sourceName = assertValidName(node.child('name').string(), 'Source name', located(node.child('name')));
  const schema = assertValidName(node.child('schema').string(sourceName), 'Schema', located(node.child('schema')));
  return node.child('tables').items().map((table) => {
    table.onlyKeys(['name', 'description', 'file', 'columns']);
    const fileValue = table.child('file');
    let file: string | undefined;
    let format: SeedFormat | undefined;
    if (fileValue.exists) {
      file = path.resolve(projectRoot, fileValue.string());
      format = seedFormatOf(file);
      if (!format) throw fileValue.error('bad-file-format', `\`${fileValue.key}\` must end in .csv, .parquet, .json or .jsonl`);
    }
    return {
      sourceName,
      name: assertValidName(table.child('name').string(), 'Table name', located(table.child('name'))),
      schema,
      description: table.child('description').string(''),
      columns: readColumns(table.child('columns')),
      file,
      format,
      at: located(table),
    };
  });
}

function readResource(node: YamlValue): ResourceDecl {
  node.onlyKeys(['name', 'description', 'config', 'columns']);
  return {
    name: node.child('name').string(),
    description: node.child('description').string(''),
    config: readConfigEntries(node.child('config').entries()),
    columns: readColumns(node.child('columns')),
    at: located(node),
  };
}

function readColumns(node: YamlValue): ColumnDecl[] {
  return node.items().map((column) => {
    column.onlyKeys(['name', 'description', 'tests', 'data_tests']);
    const tests = column.child('data_tests').exists ? column.child('data_tests') : column.child('tests');
    return {
      name: column.child('name').string(),
      description: column.child('description').string(''),
      tests: tests.items().map(readTest),
    };
  });
}

/** `unique`, or `{accepted_values: {values: [...], severity: warn}}`; dbt's `arguments:`/`config:` nesting is accepted too. */
function readTest(node: YamlValue): TestDecl {
  const at = located(node);
  if (typeof node.value === 'string') {
    const kind = node.oneOf(GENERIC_TESTS);
    if (kind !== 'unique' && kind !== 'not_null') {
      throw node.error('test-arguments', `Test \`${kind}\` needs arguments`, `Write it as a mapping, e.g. {${kind}: {...}}.`);
    }
    return { kind, severity: 'error', at };
  }
  const [kind, ...rest] = node.keys();
  if (!kind || rest.length > 0) throw node.error('test-shape', 'A test must be a name or a mapping with exactly one test name');
  if (!GENERIC_TESTS.includes(kind)) {
    throw node.child(kind).error('unknown-test', `Unknown generic test \`${kind}\``, `Generic tests: ${GENERIC_TESTS.join(', ')}. Write custom tests as SQL files under tests/.`);
  }
  const spec = node.child(kind);
  spec.onlyKeys(['values', 'to', 'field', 'severity', 'arguments', 'config']);
  const args = spec.child('arguments').exists ? spec.child('arguments') : spec;
  const config = spec.child('config');
  const severityNode = config.child('severity').exists ? config.child('severity') : spec.child('severity');
  const severity = severityNode.oneOf(['error', 'warn'] as const, 'error');
  switch (kind) {
    case 'unique':
    case 'not_null':
      return { kind, severity, at };
    case 'accepted_values': {
      const values = args.child('values');
      const list = values.items().map((v) => {
        if (typeof v.value !== 'string' && typeof v.value !== 'number' && typeof v.value !== 'boolean') {
          throw v.error('expected-scalar', `\`${v.key}\` must be a string, number or boolean`);
        }
        return v.value;
      });
      if (list.length === 0) throw values.error('missing-key', '`accepted_values` needs a non-empty `values` list');
      return { kind, values: list, severity, at };
    }
    default:
      return { kind: 'relationships', to: parseReference(args.child('to')), field: args.child('field').string(), severity, at };
  }
}

export function parseReference(node: YamlValue): NodeReference {
  const text = node.string().trim();
  const ref = /^ref\(\s*['"]([^'"]+)['"]\s*\)$/.exec(text);
  if (ref) return { kind: 'ref', name: ref[1]! };
  const source = /^source\(\s*['"]([^'"]+)['"]\s*,\s*['"]([^'"]+)['"]\s*\)$/.exec(text);
  if (source) return { kind: 'source', source: source[1]!, table: source[2]! };
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(text)) return { kind: 'ref', name: text };
  throw node.error('bad-reference', `\`${node.key}\` must be a model name, ref('model') or source('source', 'table'); got ${JSON.stringify(text)}`);
}
