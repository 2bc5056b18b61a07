import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { Dag } from '../../src/compile/graph.js';
import type { Materialization, ManifestNode, ModelNode, SeedNode, SourceNode, TestNode } from '../../src/compile/node.js';
import { evaluateSelector, parseSelector, selectNodes, withAttachedTests, type PreviousManifest } from '../../src/compile/selector.js';

// ---------------------------------------------------------------------------------------
// Fixture: a small project
//
//   seed countries ──┐
//   source raw.customers ─> stg_customers ─┐
//   source raw.bookings  ─> stg_bookings  ─┴─> bookings_enriched ─> revenue
//
//   tests: unique_stg_bookings_id (on stg_bookings),
//          relationships_enriched_customer (bookings_enriched -> stg_customers),
//          assert_revenue_positive (custom SQL test on revenue)

const base = (uniqueId: string, name: string, path: string, extra: { dependsOn?: string[]; tags?: string[] } = {}) => ({
  uniqueId,
  name,
  path,
  fqn: ['shop', ...path.split('/').slice(1, -1), name],
  tags: extra.tags ?? [],
  description: '',
  dependsOn: extra.dependsOn ?? [],
  checksum: `sum-${name}`,
});

const relation = (name: string) => ({ schema: 'main', name });

function seed(name: string): SeedNode {
  return { ...base(`seed.shop.${name}`, name, `seeds/${name}.csv`), resourceType: 'seed', relation: relation(name), file: `/abs/seeds/${name}.csv`, format: 'csv' };
}

function source(sourceName: string, name: string): SourceNode {
  return {
    ...base(`source.shop.${sourceName}.${name}`, `${sourceName}.${name}`, 'models/staging/sources.yml'),
    fqn: ['shop', sourceName, name],
    resourceType: 'source',
    sourceName,
    relation: relation(name),
  };
}

function model(name: string, path: string, dependsOn: string[], tags: string[] = [], materialized: Materialization = 'view'): ModelNode {
  return {
    ...base(`model.shop.${name}`, name, path, { dependsOn, tags }),
    resourceType: 'model',
    relation: relation(name),
    config: { materialized, uniqueKey: [], incrementalStrategy: 'merge', tags: [] },
    rawSql: 'select 1',
    columns: [],
  };
}

function test_(name: string, path: string, dependsOn: string[], testName: string): TestNode {
  return {
    ...base(`test.shop.${name}`, name, path, { dependsOn }),
    resourceType: 'test',
    config: { severity: 'error', attachedTo: dependsOn[0], testName },
  };
}

const ids = {
  countries: 'seed.shop.countries',
  rawCustomers: 'source.shop.raw.customers',
  rawBookings: 'source.shop.raw.bookings',
  stgCustomers: 'model.shop.stg_customers',
  stgBookings: 'model.shop.stg_bookings',
  enriched: 'model.shop.bookings_enriched',
  revenue: 'model.shop.revenue',
  uniqueTest: 'test.shop.unique_stg_bookings_id',
  relTest: 'test.shop.relationships_enriched_customer',
  customTest: 'test.shop.assert_revenue_positive',
};

const nodes: ManifestNode[] = [
  seed('countries'),
  source('raw', 'customers'),
  source('raw', 'bookings'),
  model('stg_customers', 'models/staging/stg_customers.sql', [ids.rawCustomers, ids.countries], ['staging', 'nightly']),
  model('stg_bookings', 'models/staging/stg_bookings.sql', [ids.rawBookings], ['staging']),
  model('bookings_enriched', 'models/marts/bookings_enriched.sql', [ids.stgBookings, ids.stgCustomers], ['nightly'], 'table'),
  model('revenue', 'models/marts/finance/revenue.sql', [ids.enriched], [], 'incremental'),
  test_('unique_stg_bookings_id', 'models/staging/schema.yml', [ids.stgBookings], 'unique'),
  test_('relationships_enriched_customer', 'models/marts/schema.yml', [ids.enriched, ids.stgCustomers], 'relationships'),
  test_('assert_revenue_positive', 'tests/assert_revenue_positive.sql', [ids.revenue], 'custom'),
];

const dag = new Dag(nodes);
const all = nodes.map((n) => n.uniqueId);

/** Direct selection (no indirect tests), sorted for order-independent comparison. */
const evalSel = (text: string, previous?: PreviousManifest) => [...evaluateSelector(dag, parseSelector(text), previous)].sort();
const sorted = (...list: string[]) => [...list].sort();

// ---------------------------------------------------------------------------------------
// Parser

describe('parseSelector', () => {
  it('parses a bare name as an fqn atom', () => {
    expect(parseSelector('orders')).toEqual({ kind: 'atom', method: 'fqn', value: 'orders', childrensParents: false, raw: 'orders', column: 1 });
  });

  it.each([
    ['+orders', Infinity, undefined],
    ['orders+', undefined, Infinity],
    ['2+orders', 2, undefined],
    ['orders+1', undefined, 1],
    ['3+orders+0', 3, 0],
    ['+orders+', Infinity, Infinity],
  ])('parses graph operators in %s', (text, parents, children) => {
    const atom = parseSelector(text);
    expect(atom).toMatchObject({ kind: 'atom', method: 'fqn', value: 'orders', childrensParents: false, raw: text, column: 1 });
    expect(atom.kind === 'atom' && [atom.parents, atom.children]).toEqual([parents, children]);
  });

  it('parses @ as childrens-parents', () => {
    expect(parseSelector('@orders')).toMatchObject({ kind: 'atom', value: 'orders', childrensParents: true });
    expect(parseSelector('@orders')).not.toHaveProperty('children');
  });

  it('treats digits followed by a bare + as a name, like dbt', () => {
    expect(parseSelector('2+')).toMatchObject({ kind: 'atom', value: '2', children: Infinity });
    expect(parseSelector('2')).toMatchObject({ kind: 'atom', value: '2' });
  });

  it.each([
    ['tag:nightly', 'tag', 'nightly'],
    ['path:models/staging', 'path', 'models/staging'],
    ['state:modified', 'state', 'modified'],
    ['state:new', 'state', 'new'],
    ['resource_type:model', 'resource_type', 'model'],
    ['source:raw.bookings', 'source', 'raw.bookings'],
    ['config.materialized:table', 'config.materialized', 'table'],
    ['test_type:generic', 'test_type', 'generic'],
    ['fqn:shop.staging.*', 'fqn', 'shop.staging.*'],
    ['file:revenue.sql', 'file', 'revenue.sql'],
  ])('parses method %s', (text, method, value) => {
    expect(parseSelector(text)).toMatchObject({ kind: 'atom', method, value });
  });

  it('combines a method with graph operators', () => {
    expect(parseSelector('2+tag:nightly+1')).toMatchObject({ method: 'tag', value: 'nightly', parents: 2, children: 1, raw: '2+tag:nightly+1' });
    expect(parseSelector('@state:modified')).toMatchObject({ method: 'state', value: 'modified', childrensParents: true });
  });

  it('infers path for values with a slash and file for .sql/.csv', () => {
    expect(parseSelector('models/staging')).toMatchObject({ method: 'path', value: 'models/staging' });
    expect(parseSelector('models/staging/')).toMatchObject({ method: 'path' });
    expect(parseSelector('models/marts/revenue.sql')).toMatchObject({ method: 'path' });
    expect(parseSelector('revenue.sql')).toMatchObject({ method: 'file' });
    expect(parseSelector('countries.csv')).toMatchObject({ method: 'file' });
    expect(parseSelector('shop.marts.revenue')).toMatchObject({ method: 'fqn' });
  });

  it('parses spaces as union and commas as intersection', () => {
    expect(parseSelector('a b,tag:x  +c')).toEqual({
      kind: 'union',
      operands: [
        { kind: 'atom', method: 'fqn', value: 'a', childrensParents: false, raw: 'a', column: 1 },
        {
          kind: 'intersection',
          operands: [
            { kind: 'atom', method: 'fqn', value: 'b', childrensParents: false, raw: 'b', column: 3 },
            { kind: 'atom', method: 'tag', value: 'x', childrensParents: false, raw: 'tag:x', column: 5 },
          ],
        },
        { kind: 'atom', method: 'fqn', value: 'c', parents: Infinity, childrensParents: false, raw: '+c', column: 12 },
      ],
    });
  });

  it('ignores leading and trailing whitespace', () => {
    expect(parseSelector('  a  ')).toMatchObject({ kind: 'atom', value: 'a', column: 3 });
  });

  function invalid(text: string): ConfigError {
    try {
      parseSelector(text);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return error as ConfigError;
    }
    throw new Error(`expected "${text}" to be rejected`);
  }

  it.each([
    ['a,,b', 2],
    ['a,', 2],
    [',a', 1],
    ['a, b', 2],
    ['+', 2],
    ['@', 2],
    ['++a', 2],
    ['a++', 3],
    ['x+abc', 3],
    ['x+-1', 3],
    ['-1+x', 1],
    ['foo:bar', 1],
    ['tag:', 5],
    ['tag: x', 5],
    [':x', 1],
    ['a:b:c', 1],
    ['tag:a:b', 6],
    ['a@b', 2],
    ['@a+', 1],
    ['resource_type:modle', 15],
    ['state:changed', 7],
    ['test_type:unit', 11],
    ['config.materialized:snapshot', 21],
    ['', 1],
    ['   ', 4],
  ])('rejects %j at column %i', (text, column) => {
    const error = invalid(text);
    expect(error.code).toBe('invalid-selector');
    expect(error.message).toContain(`"${text}"`);
    expect(error.message).toContain(`column ${column}`);
    expect(error.hint).toContain('tag');
    expect(error.hint).toContain('config.materialized');
  });

  it('names the unknown method', () => {
    expect(invalid('models/x tagz:nightly').message).toContain("unknown selector method 'tagz'");
    expect(invalid('models/x tagz:nightly').message).toContain('column 10');
  });
});

// ---------------------------------------------------------------------------------------
// Evaluator

describe('evaluateSelector', () => {
  it('selects by name and by fqn prefix, with globs', () => {
    expect(evalSel('revenue')).toEqual([ids.revenue]);
    expect(evalSel('stg_*')).toEqual(sorted(ids.stgBookings, ids.stgCustomers));
    expect(evalSel('shop.marts')).toEqual(sorted(ids.enriched, ids.revenue, ids.relTest));
    expect(evalSel('fqn:shop.marts.finance.revenue')).toEqual([ids.revenue]);
    expect(evalSel('fqn:shop.*.stg_bookings')).toEqual([ids.stgBookings]);
    expect(evalSel('nothing_here')).toEqual([]);
  });

  it('selects by tag, including model config tags', () => {
    expect(evalSel('tag:nightly')).toEqual(sorted(ids.stgCustomers, ids.enriched));
    const tagged = model('tagged_in_config', 'models/x.sql', []);
    tagged.config.tags = ['hourly'];
    expect([...evaluateSelector(new Dag([tagged]), parseSelector('tag:hourly'))]).toEqual([tagged.uniqueId]);
  });

  it('selects by path prefix on whole directories or an exact file', () => {
    const staging = sorted(ids.rawCustomers, ids.rawBookings, ids.stgCustomers, ids.stgBookings, ids.uniqueTest);
    expect(evalSel('path:models/staging')).toEqual(staging);
    expect(evalSel('models/staging/')).toEqual(staging);
    expect(evalSel('./models/staging')).toEqual(staging);
    expect(evalSel('path:models/stag')).toEqual([]);
    expect(evalSel('models/marts/finance/revenue.sql')).toEqual([ids.revenue]);
    expect(evalSel('path:models/marts/*')).toEqual(sorted(ids.enriched, ids.revenue, ids.relTest));
  });

  it('selects by file basename, with or without extension', () => {
    expect(evalSel('revenue.sql')).toEqual([ids.revenue]);
    expect(evalSel('countries.csv')).toEqual([ids.countries]);
    expect(evalSel('file:revenue')).toEqual([ids.revenue]);
  });

  it('selects by resource_type, source, materialization and test_type', () => {
    expect(evalSel('resource_type:seed')).toEqual([ids.countries]);
    expect(evalSel('source:raw')).toEqual(sorted(ids.rawBookings, ids.rawCustomers));
    expect(evalSel('source:raw.bookings')).toEqual([ids.rawBookings]);
    expect(evalSel('source:shop.raw.bookings')).toEqual([ids.rawBookings]);
    expect(evalSel('source:other')).toEqual([]);
    expect(evalSel('config.materialized:table')).toEqual([ids.enriched]);
    expect(evalSel('test_type:generic')).toEqual(sorted(ids.uniqueTest, ids.relTest));
    expect(evalSel('test_type:custom')).toEqual([ids.customTest]);
    expect(evalSel('test_type:singular')).toEqual([ids.customTest]);
  });

  it('expands ancestors and descendants with depth', () => {
    expect(evalSel('+bookings_enriched')).toEqual(
      sorted(ids.enriched, ids.stgBookings, ids.stgCustomers, ids.rawBookings, ids.rawCustomers, ids.countries),
    );
    expect(evalSel('1+bookings_enriched')).toEqual(sorted(ids.enriched, ids.stgBookings, ids.stgCustomers));
    expect(evalSel('0+bookings_enriched')).toEqual([ids.enriched]);
    expect(evalSel('stg_bookings+1')).toEqual(sorted(ids.stgBookings, ids.enriched, ids.uniqueTest));
    expect(evalSel('revenue+')).toEqual(sorted(ids.revenue, ids.customTest));
  });

  it('expands @ to descendants and all their ancestors', () => {
    // unique_stg_bookings_id hangs off an ancestor, not a descendant: @ does not reach it.
    expect(evalSel('@stg_customers')).toEqual(sorted(...all.filter((id) => id !== ids.uniqueTest)));
    expect(evalSel('@revenue')).toEqual(sorted(ids.revenue, ids.customTest, ids.enriched, ids.stgBookings, ids.stgCustomers, ids.rawBookings, ids.rawCustomers, ids.countries));
  });

  it('unions space-separated terms and intersects comma-separated atoms', () => {
    expect(evalSel('revenue countries')).toEqual(sorted(ids.revenue, ids.countries));
    expect(evalSel('tag:nightly,path:models/marts')).toEqual([ids.enriched]);
    expect(evalSel('+revenue,resource_type:source')).toEqual(sorted(ids.rawBookings, ids.rawCustomers));
    expect(evalSel('tag:nightly,tag:staging countries')).toEqual(sorted(ids.stgCustomers, ids.countries));
  });

  describe('state', () => {
    const previous: PreviousManifest = new Map([
      [ids.stgBookings, { checksum: 'sum-stg_bookings' }],
      [ids.enriched, { checksum: 'old-sum' }],
    ]);

    it('compares checksums with the previous manifest', () => {
      const others = all.filter((id) => id !== ids.stgBookings && id !== ids.enriched);
      expect(evalSel('state:new', previous)).toEqual(sorted(...others));
      expect(evalSel('state:modified', previous)).toEqual(sorted(...others, ids.enriched));
      expect(evalSel('state:unmodified', previous)).toEqual([ids.stgBookings]);
      expect(evalSel('state:old', previous)).toEqual(sorted(ids.stgBookings, ids.enriched));
      // stg_bookings itself is unmodified but sits downstream of the new source raw.bookings.
      expect(evalSel('state:modified+,state:old', previous)).toEqual(sorted(ids.stgBookings, ids.enriched));
      expect(evalSel('state:modified,state:old', previous)).toEqual([ids.enriched]);
    });

    it('requires a previous manifest', () => {
      for (const text of ['state:modified', 'a state:new+']) {
        expect(() => evalSel(text)).toThrow(ConfigError);
        try {
          evalSel(text);
        } catch (error) {
          expect((error as ConfigError).code).toBe('state-missing');
          expect((error as ConfigError).hint).toContain('--state');
        }
      }
    });
  });
});

// ---------------------------------------------------------------------------------------
// Indirect test selection and selectNodes

describe('withAttachedTests', () => {
  it('adds every test with any selected parent (eager)', () => {
    expect([...withAttachedTests(dag, new Set([ids.stgCustomers]))].sort()).toEqual(sorted(ids.stgCustomers, ids.relTest));
    expect([...withAttachedTests(dag, new Set([ids.stgBookings, ids.revenue]))].sort()).toEqual(
      sorted(ids.stgBookings, ids.revenue, ids.uniqueTest, ids.customTest),
    );
    expect([...withAttachedTests(dag, new Set([ids.countries]))]).toEqual([ids.countries]);
  });

  it('with buildable, adds a test only when everything it reads is selected or upstream', () => {
    // The relationships test reads enriched and stg_customers; stg_customers alone cannot build enriched.
    expect([...withAttachedTests(dag, new Set([ids.stgCustomers]), 'buildable')]).toEqual([ids.stgCustomers]);
    expect([...withAttachedTests(dag, new Set([ids.stgCustomers, ids.enriched]), 'buildable')].sort()).toEqual(sorted(ids.stgCustomers, ids.enriched, ids.relTest));
    expect([...selectNodes(dag, { select: ['stg_customers'], indirectSelection: 'buildable' })]).toEqual([ids.stgCustomers]);
  });

  it('also honours config.attachedTo when it is not a dependency', () => {
    const orphan: TestNode = { ...test_('orphan', 'tests/orphan.sql', [], 'custom'), config: { severity: 'warn', attachedTo: ids.countries, testName: 'custom' } };
    const withOrphan = new Dag([...nodes, orphan]);
    expect(withAttachedTests(withOrphan, new Set([ids.countries])).has(orphan.uniqueId)).toBe(true);
  });
});

describe('selectNodes', () => {
  it('selects everything, in DAG order, without --select', () => {
    expect([...selectNodes(dag, {})]).toEqual(all);
    expect([...selectNodes(dag, { select: [] })]).toEqual(all);
  });

  it('joins argv elements with spaces and adds attached tests', () => {
    expect([...selectNodes(dag, { select: ['stg_bookings revenue', 'countries'] })]).toEqual([
      ids.countries,
      ids.stgBookings,
      ids.revenue,
      ids.uniqueTest,
      ids.customTest,
    ]);
  });

  it('subtracts --exclude, keeping excluded tests excluded', () => {
    expect([...selectNodes(dag, { select: ['stg_bookings+'], exclude: ['unique_stg_bookings_id'] })]).toEqual([
      ids.stgBookings,
      ids.enriched,
      ids.revenue,
      ids.relTest,
      ids.customTest,
    ]);
  });

  it('drops the tests of excluded models, as dbt does', () => {
    const selected = selectNodes(dag, { exclude: ['revenue stg_customers'] });
    expect(selected.has(ids.revenue)).toBe(false);
    expect(selected.has(ids.customTest)).toBe(false);
    expect(selected.has(ids.relTest)).toBe(false);
    expect(selected.has(ids.uniqueTest)).toBe(true);
  });

  it('returns an empty set when nothing matches', () => {
    expect(selectNodes(dag, { select: ['tag:nope'] }).size).toBe(0);
  });

  it('reports invalid --exclude text and missing state', () => {
    expect(() => selectNodes(dag, { select: ['a'], exclude: ['a,,b'] })).toThrow(/"a,,b"/);
    // A mistyped ancestor depth: the message says what '+' takes, not just "bad depth".
    expect(() => selectNodes(dag, { select: ['3x+stg_orders'] })).toThrow(/'\+' after a node name ends the selector or takes a descendant depth \(a number\), got 'stg_orders'; an ancestor depth goes first and is a number too: N\+name/);
    expect(() => selectNodes(dag, { select: ['state:modified'] })).toThrow(expect.objectContaining({ code: 'state-missing' }));
    const previous = new Map(nodes.map((n) => [n.uniqueId, { checksum: n.checksum }]));
    expect(selectNodes(dag, { select: ['state:modified'], previous }).size).toBe(0);
  });
});
