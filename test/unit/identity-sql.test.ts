import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Relation } from '../../src/compile/node.js';
import { CdpError } from '../../src/errors.js';
import {
  droppedEdgesSql,
  identifierLookupSql,
  parseIdentifierArgument,
  profileEdgesSql,
  profileIdentifiersSql,
  profileMergesSql,
  profileRowSql,
  type IdentifierQuery,
  type IdentityRelations,
} from '../../src/identity/inspect.js';
import {
  CLUSTER_BUCKETS,
  clusterSizesSql,
  defaultSuperConnectorThreshold,
  largestClustersSql,
  limitViolationsSql,
  matchRateSql,
  mergeRunsSql,
  summarySql,
  superConnectorsSql,
} from '../../src/identity/report.js';
import { DEFAULT_NEVER_TRUSTED, type IdentifierType, type IdentityRules } from '../../src/identity/rules.js';
import { BigQueryDialect } from '../../src/warehouse/bigquery-dialect.js';
import type { Dialect } from '../../src/warehouse/dialect.js';
import { DuckDbDialect } from '../../src/warehouse/duckdb-dialect.js';
import { DuckDbWarehouse } from '../../src/warehouse/duckdb-warehouse.js';
import { SnowflakeDialect } from '../../src/warehouse/snowflake-dialect.js';
import type { Session } from '../../src/warehouse/warehouse.js';

/*
 * The SQL of `cdp identity inspect` and `cdp identity report`: exact text on DuckDB (golden),
 * results on a hand-written DuckDB fixture, and the quoting rules on BigQuery and Snowflake,
 * where generated-model columns are unquoted, merge-log and `<type>_count` columns quoted, and
 * result aliases quoted so rows come back with lower-case keys.
 */

const at = { file: '/p/identity.yml' };
const TYPES: IdentifierType[] = [
  { name: 'customer_id', normalizer: { kind: 'trim' }, limit: 1, priority: 1, at },
  { name: 'email', normalizer: { kind: 'email' }, limit: 5, priority: 2, at },
  { name: 'phone', normalizer: { kind: 'phone', defaultCallingCode: '351' }, limit: 3, priority: 3, at },
];
const RULES: IdentityRules = {
  file: '/p/identity.yml',
  types: TYPES,
  sources: [],
  neverTrusted: { ...DEFAULT_NEVER_TRUSTED, byType: new Map() },
  maxPartners: 2,
  splits: [],
};

function relations(database?: string, schema = 'main'): IdentityRelations {
  const rel = (name: string): Relation => (database ? { database, schema, name } : { schema, name });
  return { edges: rel('identity_edges'), graph: rel('identity_graph'), merges: rel('identity_merges'), profiles: rel('identity_profiles') };
}

const duck = new DuckDbDialect();
const R = relations();
const type = (name: string) => TYPES.find((t) => t.name === name)!;
const q = (name: string, value: string): IdentifierQuery => ({ type: type(name), value });

describe('parseIdentifierArgument', () => {
  it('splits at the first colon and finds the type', () => {
    expect(parseIdentifierArgument(RULES, 'email:a@x.com')).toEqual({ type: type('email'), value: 'a@x.com' });
    expect(parseIdentifierArgument(RULES, 'customer_id:GA1.2:3')).toEqual({ type: type('customer_id'), value: 'GA1.2:3' });
    expect(parseIdentifierArgument(RULES, 'phone:')).toEqual({ type: type('phone'), value: '' });
  });

  it('an unknown type or a missing colon is a ConfigError listing the declared types', () => {
    for (const [text, code] of [['emial:a@x.com', 'unknown-identifier-type'], ['a@x.com', 'bad-identifier'], [':x', 'bad-identifier']] as const) {
      let error: unknown;
      try {
        parseIdentifierArgument(RULES, text);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CdpError);
      expect((error as CdpError).code).toBe(code);
      expect((error as CdpError).exitCode).toBe(2);
      expect((error as CdpError).describe()).toContain('customer_id, email, phone');
    }
  });
});

describe('golden SQL on DuckDB', () => {
  it('identifierLookupSql', () => {
    expect(identifierLookupSql(duck, R, RULES, q('email', " O'Brien@X.com "))).toMatchInlineSnapshot(`
      "WITH probe AS (
        SELECT NULLIF(LOWER(TRIM(CAST(' O''Brien@X.com ' AS VARCHAR))), '') AS v, NULLIF(TRIM(' O''Brien@X.com '), '') AS as_typed
      ),
      touching AS (
        SELECT e.status FROM "main"."identity_edges" AS e JOIN probe AS p ON e.type_a = 'email' AND e.value_a = p.v
        UNION ALL
        SELECT e.status FROM "main"."identity_edges" AS e JOIN probe AS p ON e.type_b = 'email' AND e.value_b = p.v
      ),
      stats AS (
        SELECT COUNT(*) AS edges, COALESCE(SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0) AS active_edges, COALESCE(SUM(CASE WHEN status = 'limit' THEN 1 ELSE 0 END), 0) AS limit_edges,
          COALESCE(SUM(CASE WHEN status = 'super_connector' THEN 1 ELSE 0 END), 0) AS super_connector_edges
        FROM touching
      )
      SELECT p.v AS "value",
        (COALESCE((LOWER(p.v) IN ('test@test.com', 'test@example.com', 'noemail@example.com', 'null', 'none', 'nan', 'undefined', 'anonymous', 'unknown', 'n/a', '-1', '0000000000') OR regexp_matches(p.v, '^[0-]*$') OR regexp_matches(p.v, '^\\s*$')), FALSE) OR COALESCE((LOWER(p.as_typed) IN ('test@test.com', 'test@example.com', 'noemail@example.com', 'null', 'none', 'nan', 'undefined', 'anonymous', 'unknown', 'n/a', '-1', '0000000000') OR regexp_matches(p.as_typed, '^[0-]*$') OR regexp_matches(p.as_typed, '^\\s*$')), FALSE)) AS "never_trusted",
        g.profile_id AS "profile_id",
        s.edges AS "edges", s.active_edges AS "active_edges",
        s.limit_edges AS "limit_edges", s.super_connector_edges AS "super_connector_edges"
      FROM probe AS p
      CROSS JOIN stats AS s
      LEFT JOIN "main"."identity_graph" AS g ON g.identifier_type = 'email' AND g.identifier_value = p.v"
    `);
  });

  it('profileIdentifiersSql', () => {
    expect(profileIdentifiersSql(duck, R, 'prf_1')).toMatchInlineSnapshot(`
      "SELECT g.identifier_type AS "identifier_type", g.identifier_value AS "identifier_value", g.source AS "source", g.first_seen AS "first_seen"
      FROM "main"."identity_graph" AS g
      WHERE g.profile_id = 'prf_1'
      ORDER BY g.first_seen, g.identifier_type, g.identifier_value"
    `);
  });

  it('profileEdgesSql', () => {
    expect(profileEdgesSql(duck, R, 'prf_1')).toMatchInlineSnapshot(`
      "WITH members AS (
        SELECT identifier_type, identifier_value FROM "main"."identity_graph" WHERE profile_id = 'prf_1'
      )
      SELECT e.type_a AS "type_a", e.value_a AS "value_a", e.type_b AS "type_b", e.value_b AS "value_b",
        e.source AS "source", e.first_seen AS "first_seen", e.last_seen AS "last_seen", e.verified AS "verified", e.row_count AS "row_count"
      FROM "main"."identity_edges" AS e
      JOIN members AS a ON a.identifier_type = e.type_a AND a.identifier_value = e.value_a
      JOIN members AS b ON b.identifier_type = e.type_b AND b.identifier_value = e.value_b
      WHERE e.status = 'active'
      ORDER BY e.first_seen, e.type_a, e.value_a, e.type_b, e.value_b, e.source"
    `);
  });

  it('profileRowSql', () => {
    expect(profileRowSql(duck, R, RULES, 'prf_1')).toMatchInlineSnapshot(`
      "SELECT p.profile_id AS "profile_id", p.identifiers AS "identifiers",
        p."customer_id_count" AS "customer_id_count", p."email_count" AS "email_count", p."phone_count" AS "phone_count",
        p.unverified_identifiers AS "unverified_identifiers", p.first_seen AS "first_seen", p.merge_confidence AS "merge_confidence"
      FROM "main"."identity_profiles" AS p
      WHERE p.profile_id = 'prf_1'"
    `);
  });

  it('droppedEdgesSql, with and without a profile', () => {
    expect(droppedEdgesSql(duck, R, 'email', 'a@x.com', 'prf_1')).toMatchInlineSnapshot(`
      "WITH touching AS (
        SELECT type_b AS partner_type, value_b AS partner_value, source, first_seen, last_seen, verified, row_count, status FROM "main"."identity_edges" WHERE type_a = 'email' AND value_a = 'a@x.com'
        UNION ALL
        SELECT type_a AS partner_type, value_a AS partner_value, source, first_seen, last_seen, verified, row_count, status FROM "main"."identity_edges" WHERE type_b = 'email' AND value_b = 'a@x.com'
      )
      SELECT t.partner_type AS "partner_type", t.partner_value AS "partner_value",
        CASE WHEN t.status = 'active' THEN 'cut_in_graph' ELSE t.status END AS "status",
        t.source AS "source", t.first_seen AS "first_seen", t.last_seen AS "last_seen", t.verified AS "verified", t.row_count AS "row_count",
        g.profile_id AS "partner_profile_id"
      FROM touching AS t
      LEFT JOIN "main"."identity_graph" AS g ON g.identifier_type = t.partner_type AND g.identifier_value = t.partner_value
      WHERE t.status <> 'active' OR g.profile_id IS NULL OR g.profile_id <> 'prf_1'
      ORDER BY t.first_seen, t.partner_type, t.partner_value, t.source"
    `);
    expect(droppedEdgesSql(duck, R, 'email', 'a@x.com', undefined)).toContain('WHERE TRUE\n');
  });

  it('profileMergesSql', () => {
    expect(profileMergesSql(duck, R, 'prf_1')).toMatchInlineSnapshot(`
      "SELECT m."run_id" AS "run_id", m."logged_at" AS "logged_at", m."reason" AS "reason", m."surviving_id" AS "surviving_id", m."merged_id" AS "merged_id", m."edge_type_a" AS "edge_type_a", m."edge_value_a" AS "edge_value_a", m."edge_type_b" AS "edge_type_b", m."edge_value_b" AS "edge_value_b", m."edge_source" AS "edge_source"
      FROM "main"."identity_merges" AS m
      WHERE m."surviving_id" = 'prf_1' OR m."merged_id" = 'prf_1'
      ORDER BY m."logged_at", m."run_id", m."reason", m."merged_id""
    `);
  });

  it('summarySql', () => {
    expect(summarySql(duck, R)).toMatchInlineSnapshot(`
      "WITH graph_totals AS (
        SELECT COUNT(*) AS identifiers, COUNT(DISTINCT profile_id) AS profiles FROM "main"."identity_graph"
      ),
      edge_totals AS (
        SELECT COUNT(*) AS edges, COALESCE(SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0) AS active_edges, COALESCE(SUM(CASE WHEN status = 'limit' THEN 1 ELSE 0 END), 0) AS limit_edges, COALESCE(SUM(CASE WHEN status = 'super_connector' THEN 1 ELSE 0 END), 0) AS super_connector_edges
        FROM "main"."identity_edges"
      )
      SELECT g.identifiers AS "identifiers", g.profiles AS "profiles", e.edges AS "edges", e.active_edges AS "active_edges",
        e.limit_edges AS "limit_edges", e.super_connector_edges AS "super_connector_edges"
      FROM graph_totals AS g CROSS JOIN edge_totals AS e"
    `);
  });

  it('matchRateSql', () => {
    expect(matchRateSql(duck, R)).toMatchInlineSnapshot(`
      "WITH sizes AS (
        SELECT profile_id, COUNT(*) AS size FROM "main"."identity_graph" GROUP BY profile_id
      )
      SELECT g.identifier_type AS "identifier_type", COUNT(*) AS "identifiers",
        SUM(CASE WHEN s.size >= 2 THEN 1 ELSE 0 END) AS "matched"
      FROM "main"."identity_graph" AS g
      JOIN sizes AS s ON s.profile_id = g.profile_id
      GROUP BY g.identifier_type
      ORDER BY g.identifier_type"
    `);
  });

  it('clusterSizesSql', () => {
    expect(clusterSizesSql(duck, R)).toMatchInlineSnapshot(`
      "WITH sizes AS (
        SELECT profile_id, COUNT(*) AS size FROM "main"."identity_graph" GROUP BY profile_id
      ),
      bucketed AS (
        SELECT CASE WHEN size <= 1 THEN 1 WHEN size <= 2 THEN 2 WHEN size <= 5 THEN 3 WHEN size <= 10 THEN 4 WHEN size <= 50 THEN 5 ELSE 6 END AS bucket_order, size FROM sizes
      ),
      buckets AS (
        SELECT 1 AS bucket_order, '1' AS bucket
        UNION ALL SELECT 2, '2'
        UNION ALL SELECT 3, '3-5'
        UNION ALL SELECT 4, '6-10'
        UNION ALL SELECT 5, '11-50'
        UNION ALL SELECT 6, '51+'
      )
      SELECT b.bucket AS "bucket", COUNT(x.size) AS "profiles", COALESCE(SUM(x.size), 0) AS "identifiers"
      FROM buckets AS b
      LEFT JOIN bucketed AS x ON x.bucket_order = b.bucket_order
      GROUP BY b.bucket_order, b.bucket
      ORDER BY b.bucket_order"
    `);
  });

  it('largestClustersSql', () => {
    expect(largestClustersSql(duck, R, RULES, 10)).toMatchInlineSnapshot(`
      "SELECT profile_id AS "profile_id", COUNT(*) AS "identifiers",
        SUM(CASE WHEN identifier_type = 'customer_id' THEN 1 ELSE 0 END) AS "customer_id_count",
        SUM(CASE WHEN identifier_type = 'email' THEN 1 ELSE 0 END) AS "email_count",
        SUM(CASE WHEN identifier_type = 'phone' THEN 1 ELSE 0 END) AS "phone_count",
        MIN(first_seen) AS "first_seen"
      FROM "main"."identity_graph"
      GROUP BY profile_id
      ORDER BY COUNT(*) DESC, MIN(first_seen), profile_id
      LIMIT 10"
    `);
  });

  it('superConnectorsSql', () => {
    expect(superConnectorsSql(duck, R, RULES, 1, 10)).toMatchInlineSnapshot(`
      "WITH endpoints AS (
        SELECT type_a AS t, value_a AS v, type_b AS pt, value_b AS pv, status FROM "main"."identity_edges"
        UNION ALL
        SELECT type_b AS t, value_b AS v, type_a AS pt, value_a AS pv, status FROM "main"."identity_edges"
      ),
      partners AS (
        SELECT t, v, COUNT(DISTINCT CONCAT(pt, ':', pv)) AS partners,
          SUM(CASE WHEN status = 'super_connector' THEN 1 ELSE 0 END) AS super_connector_edges
        FROM endpoints
        GROUP BY t, v
      )
      SELECT p.t AS "identifier_type", p.v AS "identifier_value", p.partners AS "partners",
        p.partners > 2 AS "cut", p.super_connector_edges AS "super_connector_edges",
        g.profile_id AS "profile_id", COUNT(*) OVER () AS "total"
      FROM partners AS p
      LEFT JOIN "main"."identity_graph" AS g ON g.identifier_type = p.t AND g.identifier_value = p.v
      WHERE p.partners > 1
      ORDER BY p.partners DESC, p.t, p.v
      LIMIT 10"
    `);
  });

  it('limitViolationsSql', () => {
    expect(limitViolationsSql(duck, R)).toMatchInlineSnapshot(`
      "SELECT e.type_a AS "type_a", e.type_b AS "type_b", SUM(CASE WHEN e.status = 'limit' THEN 1 ELSE 0 END) AS "limit_edges", SUM(CASE WHEN e.status = 'active' AND ga.profile_id <> gb.profile_id THEN 1 ELSE 0 END) AS "cut_in_graph"
      FROM "main"."identity_edges" AS e
      LEFT JOIN "main"."identity_graph" AS ga ON ga.identifier_type = e.type_a AND ga.identifier_value = e.value_a
      LEFT JOIN "main"."identity_graph" AS gb ON gb.identifier_type = e.type_b AND gb.identifier_value = e.value_b
      WHERE e.status IN ('limit', 'active')
      GROUP BY e.type_a, e.type_b
      HAVING SUM(CASE WHEN e.status = 'limit' THEN 1 ELSE 0 END) > 0 OR SUM(CASE WHEN e.status = 'active' AND ga.profile_id <> gb.profile_id THEN 1 ELSE 0 END) > 0
      ORDER BY SUM(CASE WHEN e.status = 'limit' THEN 1 ELSE 0 END) DESC, SUM(CASE WHEN e.status = 'active' AND ga.profile_id <> gb.profile_id THEN 1 ELSE 0 END) DESC, e.type_a, e.type_b"
    `);
  });

  it('mergeRunsSql', () => {
    expect(mergeRunsSql(duck, R)).toMatchInlineSnapshot(`
      "WITH merge_log AS (
        SELECT "run_id" AS run_id, "logged_at" AS logged_at, "reason" AS reason FROM "main"."identity_merges"
      ),
      runs AS (
        SELECT run_id, MAX(logged_at) AS logged_at,
          SUM(CASE WHEN reason = 'merge' THEN 1 ELSE 0 END) AS merges,
          SUM(CASE WHEN reason = 'split' THEN 1 ELSE 0 END) AS splits
        FROM merge_log
        GROUP BY run_id
      )
      SELECT run_id AS "run_id", logged_at AS "logged_at", merges AS "merges", splits AS "splits",
        COUNT(*) OVER () AS "runs", SUM(merges) OVER () AS "total_merges", SUM(splits) OVER () AS "total_splits"
      FROM runs
      ORDER BY logged_at DESC, run_id DESC
      LIMIT 1"
    `);
  });
});

// -------------------------------------------------------------------------------------------
// Results on a fixture. Profiles: P1 = {customer_id:C1, email:a@x.com, phone:+351911000001},
// P2 = {email:b@x.com}, P3 = {customer_id:C2, email:c@x.com}. Edges: C1~a and C2~c verified,
// a~phone unverified, C1~b cut by the customer_id limit, b~phone active but in two profiles
// (cut by the graph step), and shared@x.com linked to X1..X3: a super-connector (max_partners 2).

let warehouse: DuckDbWarehouse;
let session: Session;

function rowsSql(rows: (string | number | boolean | null)[][]): string {
  return rows.map((r) => `(${r.map((v) => duck.literal(v)).join(', ')})`).join(',\n');
}

const EDGES: (string | number | boolean | null)[][] = [
  ['customer_id', 'C1', 'email', 'a@x.com', 'crm', 'crm:id~email', '2026-01-01 10:00:00', '2026-01-03 10:00:00', true, 3, 'active'],
  ['email', 'a@x.com', 'phone', '+351911000001', 'crm', 'crm:email~phone', '2026-01-02 10:00:00', '2026-01-02 10:00:00', false, 1, 'active'],
  ['customer_id', 'C2', 'email', 'c@x.com', 'crm', 'crm:id~email', '2026-01-04 10:00:00', '2026-01-04 10:00:00', true, 1, 'active'],
  ['customer_id', 'C1', 'email', 'b@x.com', 'crm', 'crm:id~email', '2026-01-05 10:00:00', '2026-01-05 10:00:00', true, 1, 'limit'],
  ['email', 'b@x.com', 'phone', '+351911000001', 'web', 'web:email~phone', '2026-01-06 10:00:00', '2026-01-07 10:00:00', false, 2, 'active'],
  ['customer_id', 'X1', 'email', 'shared@x.com', 'crm', 'crm:id~email', '2026-01-08 10:00:00', '2026-01-08 10:00:00', true, 1, 'super_connector'],
  ['customer_id', 'X2', 'email', 'shared@x.com', 'crm', 'crm:id~email', '2026-01-08 11:00:00', '2026-01-08 11:00:00', true, 1, 'super_connector'],
  ['customer_id', 'X3', 'email', 'shared@x.com', 'crm', 'crm:id~email', '2026-01-08 12:00:00', '2026-01-08 12:00:00', true, 1, 'super_connector'],
];

const GRAPH: string[][] = [
  ['customer_id', 'C1', 'P1', 'crm', '2026-01-01 10:00:00'],
  ['email', 'a@x.com', 'P1', 'crm', '2026-01-01 10:00:00'],
  ['phone', '+351911000001', 'P1', 'crm', '2026-01-02 10:00:00'],
  ['email', 'b@x.com', 'P2', 'crm', '2026-01-05 10:00:00'],
  ['customer_id', 'C2', 'P3', 'crm', '2026-01-04 10:00:00'],
  ['email', 'c@x.com', 'P3', 'crm', '2026-01-04 10:00:00'],
];

beforeAll(async () => {
  warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'test', schema: 'main', threads: 1, path: ':memory:', settings: {} });
  session = await warehouse.session();
  await session.execute(`CREATE TABLE identity_edges AS SELECT * REPLACE (CAST(first_seen AS TIMESTAMP) AS first_seen, CAST(last_seen AS TIMESTAMP) AS last_seen, CAST(row_count AS BIGINT) AS row_count)
FROM (VALUES ${rowsSql(EDGES)}) AS t(type_a, value_a, type_b, value_b, source, rule, first_seen, last_seen, verified, row_count, status)`);
  await session.execute(`CREATE TABLE identity_graph AS SELECT * REPLACE (CAST(first_seen AS TIMESTAMP) AS first_seen)
FROM (VALUES ${rowsSql(GRAPH)}) AS t(identifier_type, identifier_value, profile_id, source, first_seen)`);
  await session.execute(`CREATE TABLE identity_profiles AS SELECT * REPLACE (CAST(first_seen AS TIMESTAMP) AS first_seen)
FROM (VALUES ${rowsSql([
    ['P1', 3, 1, 1, 1, 1, '2026-01-01 10:00:00', 0.8333],
    ['P2', 1, 0, 1, 0, 1, '2026-01-05 10:00:00', 1.0],
    ['P3', 2, 1, 1, 0, 0, '2026-01-04 10:00:00', 1.0],
  ])}) AS t(profile_id, identifiers, "customer_id_count", "email_count", "phone_count", unverified_identifiers, first_seen, merge_confidence)`);
  await session.execute(`CREATE TABLE identity_merges AS SELECT * REPLACE (CAST(logged_at AS TIMESTAMP) AS logged_at)
FROM (VALUES ${rowsSql([
    ['r1', '2026-01-02 12:00:00', 'P1', 'P9', 'merge', 'email', 'a@x.com', 'phone', '+351911000001', 'crm'],
    ['r2', '2026-01-05 12:00:00', 'P1', 'P2', 'split', null, null, null, null, null],
  ])}) AS t(run_id, logged_at, surviving_id, merged_id, reason, edge_type_a, edge_value_a, edge_type_b, edge_value_b, edge_source)`);
});

afterAll(async () => {
  await session?.close();
  await warehouse?.close();
});

const iso = (text: string) => new Date(`${text.replace(' ', 'T')}Z`);

describe('results on a DuckDB fixture', () => {
  it('lookup: normalises, finds the profile and counts the touching edges', async () => {
    expect(await session.query(identifierLookupSql(duck, R, RULES, q('email', '  A@X.com ')))).toEqual([
      { value: 'a@x.com', never_trusted: false, profile_id: 'P1', edges: 2, active_edges: 2, limit_edges: 0, super_connector_edges: 0 },
    ]);
    expect(await session.query(identifierLookupSql(duck, R, RULES, q('phone', '911 000 001')))).toMatchObject([{ value: '+351911000001', profile_id: 'P1', edges: 2 }]);
  });

  it('lookup: a super-connector, never-trusted values and a rejected value', async () => {
    expect(await session.query(identifierLookupSql(duck, R, RULES, q('email', 'shared@x.com')))).toEqual([
      { value: 'shared@x.com', never_trusted: false, profile_id: null, edges: 3, active_edges: 0, limit_edges: 0, super_connector_edges: 3 },
    ]);
    expect(await session.query(identifierLookupSql(duck, R, RULES, q('email', 'Test@Test.com')))).toMatchObject([{ value: 'test@test.com', never_trusted: true, profile_id: null, edges: 0 }]);
    // Normalised to +00000000, but the default list names the value as typed.
    expect(await session.query(identifierLookupSql(duck, R, RULES, q('phone', '0000000000')))).toMatchObject([{ value: '+00000000', never_trusted: true }]);
    expect(await session.query(identifierLookupSql(duck, R, RULES, q('phone', '12')))).toMatchObject([{ value: null, never_trusted: false, profile_id: null }]);
    expect(await session.query(identifierLookupSql(duck, R, RULES, q('email', '   ')))).toMatchObject([{ value: null, never_trusted: false }]);
  });

  it('lookup: quotes in the value are data', async () => {
    expect(await session.query(identifierLookupSql(duck, R, RULES, q('email', "x' OR '1'='1")))).toMatchObject([{ value: "x' or '1'='1", profile_id: null, edges: 0 }]);
  });

  it("a profile's identifiers, edges and row", async () => {
    expect(await session.query(profileIdentifiersSql(duck, R, 'P1'))).toEqual([
      { identifier_type: 'customer_id', identifier_value: 'C1', source: 'crm', first_seen: iso('2026-01-01 10:00:00') },
      { identifier_type: 'email', identifier_value: 'a@x.com', source: 'crm', first_seen: iso('2026-01-01 10:00:00') },
      { identifier_type: 'phone', identifier_value: '+351911000001', source: 'crm', first_seen: iso('2026-01-02 10:00:00') },
    ]);
    const edges = await session.query(profileEdgesSql(duck, R, 'P1'));
    expect(edges.map((e) => `${String(e['value_a'])}~${String(e['value_b'])}:${String(e['verified'])}:${String(e['row_count'])}`)).toEqual(['C1~a@x.com:true:3', 'a@x.com~+351911000001:false:1']);
    expect(await session.query(profileRowSql(duck, R, RULES, 'P1'))).toEqual([{
      profile_id: 'P1', identifiers: 3, customer_id_count: 1, email_count: 1, phone_count: 1, unverified_identifiers: 1, first_seen: iso('2026-01-01 10:00:00'), merge_confidence: 0.8333,
    }]);
  });

  it('dropped edges: limit and cut-in-graph; every edge when there is no profile', async () => {
    const dropped = await session.query(droppedEdgesSql(duck, R, 'email', 'b@x.com', 'P2'));
    expect(dropped.map((e) => [e['partner_type'], e['partner_value'], e['status'], e['partner_profile_id']])).toEqual([
      ['customer_id', 'C1', 'limit', 'P1'],
      ['phone', '+351911000001', 'cut_in_graph', 'P1'],
    ]);
    expect(await session.query(droppedEdgesSql(duck, R, 'email', 'a@x.com', 'P1'))).toEqual([]);
    const shared = await session.query(droppedEdgesSql(duck, R, 'email', 'shared@x.com', undefined));
    expect(shared.map((e) => [e['partner_value'], e['status']])).toEqual([['X1', 'super_connector'], ['X2', 'super_connector'], ['X3', 'super_connector']]);
  });

  it('merge-log rows naming the profile, oldest first', async () => {
    expect((await session.query(profileMergesSql(duck, R, 'P1'))).map((m) => [m['run_id'], m['reason'], m['merged_id']])).toEqual([['r1', 'merge', 'P9'], ['r2', 'split', 'P2']]);
    expect((await session.query(profileMergesSql(duck, R, 'P3')))).toEqual([]);
  });

  it('summary and match rate', async () => {
    expect(await session.query(summarySql(duck, R))).toEqual([{ identifiers: 6, profiles: 3, edges: 8, active_edges: 4, limit_edges: 1, super_connector_edges: 3 }]);
    expect(await session.query(matchRateSql(duck, R))).toEqual([
      { identifier_type: 'customer_id', identifiers: 2, matched: 2 },
      { identifier_type: 'email', identifiers: 3, matched: 2 },
      { identifier_type: 'phone', identifiers: 1, matched: 1 },
    ]);
  });

  it('cluster sizes: every bucket, empty ones too', async () => {
    expect(await session.query(clusterSizesSql(duck, R))).toEqual([
      { bucket: '1', profiles: 1, identifiers: 1 },
      { bucket: '2', profiles: 1, identifiers: 2 },
      { bucket: '3-5', profiles: 1, identifiers: 3 },
      { bucket: '6-10', profiles: 0, identifiers: 0 },
      { bucket: '11-50', profiles: 0, identifiers: 0 },
      { bucket: '51+', profiles: 0, identifiers: 0 },
    ]);
    expect(CLUSTER_BUCKETS.map((b) => b.label)).toEqual(['1', '2', '3-5', '6-10', '11-50', '51+']);
  });

  it('largest clusters with counts per type', async () => {
    expect(await session.query(largestClustersSql(duck, R, RULES, 2))).toEqual([
      { profile_id: 'P1', identifiers: 3, customer_id_count: 1, email_count: 1, phone_count: 1, first_seen: iso('2026-01-01 10:00:00') },
      { profile_id: 'P3', identifiers: 2, customer_id_count: 1, email_count: 1, phone_count: 0, first_seen: iso('2026-01-04 10:00:00') },
    ]);
  });

  it('super-connectors: above the threshold, cut ones flagged, total before the limit', async () => {
    expect(defaultSuperConnectorThreshold(RULES)).toBe(1);
    const rows = await session.query(superConnectorsSql(duck, R, RULES, 1, 3));
    expect(rows).toEqual([
      { identifier_type: 'email', identifier_value: 'shared@x.com', partners: 3, cut: true, super_connector_edges: 3, profile_id: null, total: 5 },
      { identifier_type: 'customer_id', identifier_value: 'C1', partners: 2, cut: false, super_connector_edges: 0, profile_id: 'P1', total: 5 },
      { identifier_type: 'email', identifier_value: 'a@x.com', partners: 2, cut: false, super_connector_edges: 0, profile_id: 'P1', total: 5 },
    ]);
    // A threshold above max_partners still lists what the guard cut.
    expect((await session.query(superConnectorsSql(duck, R, RULES, 100, 10))).map((r) => r['identifier_value'])).toEqual(['shared@x.com']);
  });

  it('limit violations per pair of types', async () => {
    expect(await session.query(limitViolationsSql(duck, R))).toEqual([
      { type_a: 'customer_id', type_b: 'email', limit_edges: 1, cut_in_graph: 0 },
      { type_a: 'email', type_b: 'phone', limit_edges: 0, cut_in_graph: 1 },
    ]);
  });

  it('merge runs: the latest with totals', async () => {
    expect(await session.query(mergeRunsSql(duck, R))).toEqual([
      { run_id: 'r2', logged_at: iso('2026-01-05 12:00:00'), merges: 0, splits: 1, runs: 2, total_merges: 1, total_splits: 1 },
    ]);
  });
});

// -------------------------------------------------------------------------------------------
// Every engine: the SQL is generated, values are escaped literals, quoting follows the rules.

const ENGINES: { dialect: Dialect; relations: IdentityRelations }[] = [
  { dialect: duck, relations: R },
  { dialect: new BigQueryDialect(), relations: relations('my-project', 'cdp') },
  { dialect: new SnowflakeDialect(), relations: relations('ANALYTICS', 'cdp') },
];

function everyQuery(d: Dialect, r: IdentityRelations, value: string): Record<string, string> {
  return {
    lookup: identifierLookupSql(d, r, RULES, q('phone', value)),
    identifiers: profileIdentifiersSql(d, r, value),
    edges: profileEdgesSql(d, r, value),
    row: profileRowSql(d, r, RULES, value),
    dropped: droppedEdgesSql(d, r, 'email', value, value),
    merges: profileMergesSql(d, r, value),
    summary: summarySql(d, r),
    matchRate: matchRateSql(d, r),
    clusters: clusterSizesSql(d, r),
    largest: largestClustersSql(d, r, RULES, 5),
    superConnectors: superConnectorsSql(d, r, RULES, 1, 5),
    limits: limitViolationsSql(d, r),
    runs: mergeRunsSql(d, r),
  };
}

describe.each(ENGINES)('every query on $dialect.name', ({ dialect: d, relations: r }) => {
  const hostile = "o'hara\\'; DROP TABLE x; --";
  const queries = everyQuery(d, r, hostile);

  it('compiles every query, reading the identity relations by their quoted names', () => {
    for (const [name, sql] of Object.entries(queries)) {
      expect(sql.length, name).toBeGreaterThan(0);
      // ('undefined' as a quoted never-trusted default is fine; a bare one would be a bug.)
      expect(sql, name).not.toMatch(/(?<!')undefined|\[object |NaN/);
      expect(Object.values(r).some((rel) => sql.includes(d.quoteRelation(rel))), name).toBe(true);
    }
  });

  it('puts user input in as escaped string literals only', () => {
    for (const name of ['lookup', 'identifiers', 'edges', 'row', 'dropped', 'merges']) {
      const sql = queries[name]!;
      expect(sql, name).toContain(d.stringLiteral(hostile));
      // With the escaped literal taken out, no fragment of the input is left to run.
      expect(sql.replaceAll(d.stringLiteral(hostile), "''"), name).not.toContain('DROP TABLE');
    }
  });

  it('quotes result aliases, merge-log and per-type count columns; leaves model columns unquoted', () => {
    const Q = (s: string) => d.quoteIdentifier(s);
    expect(queries['lookup']).toContain(`AS ${Q('profile_id')}`);
    expect(queries['row']).toContain(`p.${Q('email_count')} AS ${Q('email_count')}`);
    expect(queries['row']).toContain(`p.merge_confidence AS ${Q('merge_confidence')}`);
    expect(queries['merges']).toContain(`m.${Q('surviving_id')} = `);
    expect(queries['runs']).toContain(`${Q('run_id')} AS run_id`);
    expect(queries['edges']).toContain('e.type_a AS ');
    expect(queries['largest']).toContain(`AS ${Q('phone_count')}`);
  });
});

describe('BigQuery and Snowflake text', () => {
  it('BigQuery: backticks and backslash escapes', () => {
    const bq = new BigQueryDialect();
    const sql = identifierLookupSql(bq, relations('my-project', 'cdp'), RULES, q('email', "o'hara@x.com"));
    expect(sql).toContain("NULLIF(LOWER(TRIM(CAST('o\\'hara@x.com' AS STRING))), '') AS v");
    expect(sql).toContain('`my-project`.`cdp`.`identity_graph` AS g');
    expect(sql).toContain('AS `never_trusted`');
    expect(sql).toContain('REGEXP_CONTAINS(');
  });

  it('Snowflake: simple names quoted in their folded upper case; the session lower-cases result keys', () => {
    const sf = new SnowflakeDialect();
    const sql = mergeRunsSql(sf, relations('ANALYTICS', 'cdp'));
    expect(sql).toContain('SELECT "RUN_ID" AS run_id, "LOGGED_AT" AS logged_at, "REASON" AS reason FROM "ANALYTICS"."CDP"."IDENTITY_MERGES"');
    expect(sql).toContain('SELECT run_id AS "RUN_ID", logged_at AS "LOGGED_AT", merges AS "MERGES", splits AS "SPLITS"');
  });
});
