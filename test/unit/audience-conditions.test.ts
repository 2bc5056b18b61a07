import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { conditionSql, parseCondition, traitsUsed, type ConditionSqlContext, type TraitCatalog, type TraitInfo } from '../../src/audiences/conditions.js';
import { sqlWhereProblem } from '../../src/audiences/rules.js';
import { CdpError } from '../../src/errors.js';
import { YamlValue } from '../../src/project/yaml-reader.js';
import { dialectFor } from '../../src/warehouse/engines.js';

/** The audience condition language: YAML → AST → SQL, against golden SQL. */

const traits: TraitCatalog = new Map<string, TraitInfo>([
  ['bookings_total', { name: 'bookings_total', type: 'number', model: 'profile_traits' }],
  ['lifetime_revenue', { name: 'lifetime_revenue', type: 'number', model: 'profile_traits' }],
  ['last_purchase_at', { name: 'last_purchase_at', type: 'timestamp', model: 'profile_traits' }],
]);

const d = dialectFor('duckdb');
const ctx: ConditionSqlContext = { dialect: d, asOf: '(NOW_SQL)', eventsRelation: 'EVENTS', alias: 't' };

function parse(yaml: string) {
  return parseCondition(YamlValue.parse('audiences/a.yml', `where: ${yaml}`).child('where'), traits);
}

function sql(yaml: string): string {
  return conditionSql(parse(yaml), ctx, traits);
}

function failure(yaml: string): CdpError {
  try {
    parse(yaml);
  } catch (error) {
    return error as CdpError;
  }
  throw new Error('expected a failure');
}

describe('audience conditions: parsing', () => {
  it('parses into a typed AST', () => {
    expect(parse('{ trait: bookings_total, gte: 3 }')).toMatchObject({ kind: 'compare', trait: 'bookings_total', op: 'gte', value: 3 });
    expect(parse('{ not: { event: [a, b], within_days: 2 } }')).toMatchObject({ kind: 'not', condition: { kind: 'event', events: ['a', 'b'], withinDays: 2 } });
    const nested = parse('{ all: [ { trait: bookings_total, in: [1, 2] }, { any: [ { trait: last_purchase_at, is_null: true }, { trait: lifetime_revenue, between: [10, 20] } ] } ] }');
    expect(nested.kind).toBe('all');
    expect(traitsUsed(nested)).toEqual(['bookings_total', 'last_purchase_at', 'lifetime_revenue']);
  });

  it.each([
    ['an unknown trait, with a did-you-mean', '{ trait: booking_total, gt: 1 }', 'unknown-trait', 'where.trait', /Did you mean `bookings_total`/],
    ['a string on a numeric trait', '{ trait: bookings_total, gt: "abc" }', 'type-mismatch', 'where.gt', /\(number\); expected a number/],
    ['a number on a timestamp trait', '{ trait: last_purchase_at, gt: 3 }', 'type-mismatch', 'where.gt', /\(timestamp\)/],
    ['within_days on a numeric trait', '{ trait: bookings_total, within_days: 3 }', 'type-mismatch', 'where.within_days', /timestamp trait/],
    ['a type mismatch inside in', '{ trait: bookings_total, in: [1, x] }', 'type-mismatch', 'where.in.1', /"x"/],
    ['an unknown operator', '{ trait: bookings_total, greater_than: 3 }', 'unknown-operator', 'where.greater_than', /Unknown operator `greater_than`/],
    ['an unknown condition head', '{ some: [] }', 'unknown-operator', 'where.some', /Allowed here: trait, event, not, all, any/],
    ['two operators', '{ trait: bookings_total, gt: 1, lt: 5 }', 'audience-condition', 'where', /exactly one operator/],
    ['between with one value', '{ trait: bookings_total, between: [1] }', 'audience-condition', 'where.between', /two values/],
    ['an empty all', '{ all: [] }', 'audience-condition', 'where.all', /non-empty list/],
    ['an unknown key on an event', '{ event: x, within_day: 2 }', 'unknown-operator', 'where.within_day', /Did you mean `within_days`/],
  ])('rejects %s with file and key', (_name, yaml, code, key, message) => {
    const error = failure(yaml);
    expect(error.code).toBe(code);
    expect(error.at).toMatchObject({ file: 'audiences/a.yml', line: 1, key });
    expect(error.describe()).toMatch(message);
  });
});

describe('audience conditions: SQL', () => {
  it.each([
    ['{ trait: bookings_total, eq: 3 }', 't."bookings_total" = 3'],
    ['{ trait: bookings_total, ne: -1 }', 't."bookings_total" <> (-1)'],
    ['{ trait: lifetime_revenue, lte: 2.5 }', 't."lifetime_revenue" <= 2.5'],
    ['{ trait: bookings_total, in: [1, 2] }', 't."bookings_total" IN (1, 2)'],
    ['{ trait: bookings_total, between: [1, 5] }', 't."bookings_total" BETWEEN 1 AND 5'],
    ['{ trait: last_purchase_at, gte: "2026-11-01" }', `t."last_purchase_at" >= CAST('2026-11-01' AS TIMESTAMP)`],
    ['{ trait: last_purchase_at, is_null: false }', 't."last_purchase_at" IS NOT NULL'],
    ['{ trait: last_purchase_at, within_days: 30 }', `t."last_purchase_at" >= ((NOW_SQL) + INTERVAL (-30) DAY) AND t."last_purchase_at" <= (NOW_SQL)`],
    ['{ not: { trait: bookings_total, gt: 3 } }', 'NOT COALESCE(t."bookings_total" > 3, FALSE)'],
  ])('%s', (yaml, expected) => {
    expect(sql(yaml)).toBe(expected);
  });

  it('nests all/any with parentheses', () => {
    expect(sql('{ all: [ { trait: bookings_total, gte: 3 }, { any: [ { trait: lifetime_revenue, gt: 100 }, { trait: last_purchase_at, is_null: true } ] } ] }')).toBe([
      '(',
      '  (t."bookings_total" >= 3)',
      '  AND (',
      '    (t."lifetime_revenue" > 100)',
      '    OR (t."last_purchase_at" IS NULL)',
      '  )',
      ')',
    ].join('\n'));
  });

  it('compiles events to a correlated EXISTS over the timeline', () => {
    expect(sql('{ event: add_to_cart, within_days: 2, not_followed_by: { event: [purchase, payment], within_hours: 2 } }')).toBe([
      'EXISTS (',
      '  SELECT 1 FROM EVENTS AS e',
      `  WHERE e.profile_id = t.profile_id AND e.event_name = 'add_to_cart'`,
      `    AND e.occurred_at >= ((NOW_SQL) + INTERVAL (-2) DAY) AND e.occurred_at <= (NOW_SQL)`,
      '    AND NOT EXISTS (',
      '      SELECT 1 FROM EVENTS AS f',
      `      WHERE f.profile_id = e.profile_id AND f.event_name IN ('purchase', 'payment')`,
      '        AND f.occurred_at >= e.occurred_at AND f.occurred_at <= (e.occurred_at + INTERVAL (2) HOUR)',
      '    )',
      ')',
    ].join('\n'));
    expect(sql('{ event: [a, b] }')).toBe(`EXISTS (\n  SELECT 1 FROM EVENTS AS e\n  WHERE e.profile_id = t.profile_id AND e.event_name IN ('a', 'b')\n)`);
  });

  it('escapes string values', () => {
    const strings: TraitCatalog = new Map([['plan', { name: 'plan', type: 'string', model: 'profile_traits' }]]);
    const condition = parseCondition(YamlValue.parse('a.yml', `where: { trait: plan, eq: "o'brien" }`).child('where'), strings);
    expect(conditionSql(condition, ctx, strings)).toBe(`t."plan" = 'o''brien'`);
  });
});

/*
 * Every condition and its `not` on DuckDB, against members computed by hand. p3 has NULL traits
 * and no events: under SQL's three-valued logic `NOT (t.x >= 2)` is NULL for it, so a bare NOT
 * would leave p3 out of both a condition and its negation.
 */
describe('audience conditions on DuckDB: not is the complement, NULL traits included', () => {
  const nullable: TraitCatalog = new Map<string, TraitInfo>([
    ['x', { name: 'x', type: 'number', model: 'profile_traits' }],
    ['ts', { name: 'ts', type: 'timestamp', model: 'profile_traits' }],
  ]);
  const duck: ConditionSqlContext = { dialect: d, asOf: "CAST('2026-11-15' AS TIMESTAMP)", eventsRelation: 'events', alias: 't' };
  const SETUP = [
    `CREATE TABLE profiles AS SELECT * FROM (VALUES ('p1', 1, TIMESTAMP '2026-11-10'), ('p2', 5, TIMESTAMP '2026-01-01'), ('p3', NULL, NULL)) AS v(profile_id, x, ts)`,
    // p2's order is refunded within the hour; p1's is not.
    `CREATE TABLE events AS SELECT * FROM (VALUES ('p1', 'order', TIMESTAMP '2026-11-10'), ('p2', 'order', TIMESTAMP '2026-01-01'), ('p2', 'refund', TIMESTAMP '2026-01-01 01:00:00')) AS v(profile_id, event_name, occurred_at)`,
  ];
  const EVERYONE = ['p1', 'p2', 'p3'];

  async function membersOf(yaml: string): Promise<string[]> {
    const condition = parseCondition(YamlValue.parse('audiences/a.yml', `where: ${yaml}`).child('where'), nullable);
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      for (const statement of SETUP) await connection.run(statement);
      const reader = await connection.runAndReadAll(`SELECT t.profile_id FROM profiles AS t WHERE (${conditionSql(condition, duck, nullable)}) ORDER BY 1`);
      return reader.getRows().map((row) => String(row[0]));
    } finally {
      connection.disconnectSync();
      instance.closeSync();
    }
  }

  it.each([
    ['{ trait: x, gte: 2 }', ['p2']],
    ['{ trait: x, ne: 1 }', ['p2']],
    ['{ trait: x, in: [1, 2] }', ['p1']],
    ['{ trait: x, between: [0, 3] }', ['p1']],
    ['{ trait: ts, within_days: 30 }', ['p1']],
    ['{ trait: ts, lt: "2026-06-01" }', ['p2']],
    ['{ trait: x, is_null: true }', ['p3']],
    ['{ all: [ { trait: x, gte: 1 }, { trait: ts, within_days: 30 } ] }', ['p1']],
    ['{ any: [ { trait: x, gt: 3 }, { trait: ts, within_days: 30 } ] }', ['p1', 'p2']],
    ['{ any: [ { trait: x, gt: 3 }, { not: { trait: ts, within_days: 30 } } ] }', ['p2', 'p3']],
    ['{ event: order, within_days: 30 }', ['p1']],
    ['{ event: order, not_followed_by: { event: refund, within_hours: 2 } }', ['p1']],
    ['{ not: { trait: x, gte: 2 } }', ['p1', 'p3']],
  ])('%s', async (yaml, expected) => {
    expect(await membersOf(yaml)).toEqual(expected);
    expect(await membersOf(`{ not: ${yaml} }`)).toEqual(EVERYONE.filter((p) => !expected.includes(p)));
  });
});

describe('sql_where', () => {
  it.each([
    ['t.lifetime_revenue > 10', undefined],
    [`t.plan = 'select from join'`, undefined],
    ['t.profile_id IN (SELECT profile_id FROM x)', 'SELECT'],
    ['1 = 1; DROP TABLE x', ';'],
    ['EXISTS (SELECT 1)', 'SELECT'],
    ['t.a JOIN x', 'JOIN'],
    ['t.profile_id = {{ ref "x" }}', '{{ ref'],
  ])('%s → %s', (text, problem) => {
    expect(sqlWhereProblem(text)).toBe(problem);
  });
});
