import type { Relation } from '../compile/node.js';
import { ConfigError } from '../errors.js';
import type { Dialect } from '../warehouse/dialect.js';
import { neverTrustedSql, normalizeSql } from './normalize.js';
import type { IdentifierType, IdentityRules } from './rules.js';

/**
 * Pure SQL for `cdp identity inspect <type>:<value>`: where one identifier landed, the profile
 * around it, the edges that built that profile, the edges that were dropped, and the merge log.
 * The command (src/cli/commands/identity.ts) runs these in order; nothing here does I/O.
 *
 * Quoting, so the same text works on every engine: the columns of identity_edges,
 * identity_graph and identity_profiles were created from unquoted aliases (Snowflake stores
 * them upper case) and are referenced unquoted; the `<type>_count` columns of identity_profiles
 * and every column of the merge log were created quoted and are referenced quoted. Result
 * aliases are quoted so rows come back with lower-case keys everywhere. User input only ever
 * reaches the SQL as a string literal (Dialect.stringLiteral).
 */

/** The four generated identity relations of a compiled project. */
export interface IdentityRelations {
  edges: Relation;
  graph: Relation;
  merges: Relation;
  profiles: Relation;
}

export interface IdentifierQuery {
  type: IdentifierType;
  /** As typed by the user; normalised in the warehouse with the type's rule. */
  value: string;
}

/**
 * `type:value` → the identifier type and the raw value. The value may itself contain colons
 * (`anonymous_id:GA1.2:3`); only the first one separates.
 */
export function parseIdentifierArgument(rules: IdentityRules, text: string): IdentifierQuery {
  const colon = text.indexOf(':');
  const declared = rules.types.map((t) => t.name);
  const hint = `Declared identifier types: ${declared.join(', ')}. Example: cdp identity inspect ${declared[0] ?? 'email'}:<value>`;
  if (colon <= 0) {
    throw new ConfigError('bad-identifier', `Expected \`<type>:<value>\`, got ${JSON.stringify(text)}`, { hint });
  }
  const name = text.slice(0, colon);
  const type = rules.types.find((t) => t.name === name);
  if (!type) {
    throw new ConfigError('unknown-identifier-type', `\`${name}\` is not an identifier type of ${rules.file}`, { hint });
  }
  return { type, value: text.slice(colon + 1) };
}

const statusSum = (d: Dialect, status: string, column = 'status') =>
  `COALESCE(SUM(CASE WHEN ${column} = ${d.stringLiteral(status)} THEN 1 ELSE 0 END), 0)`;

/**
 * One row: the normalised value (NULL when the rule rejects it, e.g. a too-short phone),
 * whether it is never trusted, its profile (NULL when not in the graph) and how many edges of
 * each status touch it. A value is reported never trusted when its normalised form or its
 * trimmed input matches the never_trusted rules: the defaults (`0000000000`, `^[0-]*$`) are
 * written for input as typed, which normalisation can change (a phone gains `+`).
 */
export function identifierLookupSql(d: Dialect, r: IdentityRelations, rules: IdentityRules, query: IdentifierQuery): string {
  const type = d.stringLiteral(query.type.name);
  const literal = d.stringLiteral(query.value);
  const normalized = normalizeSql(d, query.type.normalizer, literal);
  const untrusted = (expr: string) => `COALESCE(${neverTrustedSql(d, rules.neverTrusted, query.type, expr)}, FALSE)`;
  return `WITH probe AS (
  SELECT ${normalized} AS v, NULLIF(TRIM(${literal}), '') AS as_typed
),
touching AS (
  SELECT e.status FROM ${d.quoteRelation(r.edges)} AS e JOIN probe AS p ON e.type_a = ${type} AND e.value_a = p.v
  UNION ALL
  SELECT e.status FROM ${d.quoteRelation(r.edges)} AS e JOIN probe AS p ON e.type_b = ${type} AND e.value_b = p.v
),
stats AS (
  SELECT COUNT(*) AS edges, ${statusSum(d, 'active')} AS active_edges, ${statusSum(d, 'limit')} AS limit_edges,
    ${statusSum(d, 'super_connector')} AS super_connector_edges
  FROM touching
)
SELECT p.v AS ${d.quoteIdentifier('value')},
  (${untrusted('p.v')} OR ${untrusted('p.as_typed')}) AS ${d.quoteIdentifier('never_trusted')},
  g.profile_id AS ${d.quoteIdentifier('profile_id')},
  s.edges AS ${d.quoteIdentifier('edges')}, s.active_edges AS ${d.quoteIdentifier('active_edges')},
  s.limit_edges AS ${d.quoteIdentifier('limit_edges')}, s.super_connector_edges AS ${d.quoteIdentifier('super_connector_edges')}
FROM probe AS p
CROSS JOIN stats AS s
LEFT JOIN ${d.quoteRelation(r.graph)} AS g ON g.identifier_type = ${type} AND g.identifier_value = p.v`;
}

/** Every identifier of the profile, earliest first. */
export function profileIdentifiersSql(d: Dialect, r: IdentityRelations, profileId: string): string {
  const q = (s: string) => d.quoteIdentifier(s);
  return `SELECT g.identifier_type AS ${q('identifier_type')}, g.identifier_value AS ${q('identifier_value')}, g.source AS ${q('source')}, g.first_seen AS ${q('first_seen')}
FROM ${d.quoteRelation(r.graph)} AS g
WHERE g.profile_id = ${d.stringLiteral(profileId)}
ORDER BY g.first_seen, g.identifier_type, g.identifier_value`;
}

/** The active edges with both ends in the profile: the evidence that holds it together. */
export function profileEdgesSql(d: Dialect, r: IdentityRelations, profileId: string): string {
  const q = (s: string) => d.quoteIdentifier(s);
  return `WITH members AS (
  SELECT identifier_type, identifier_value FROM ${d.quoteRelation(r.graph)} WHERE profile_id = ${d.stringLiteral(profileId)}
)
SELECT e.type_a AS ${q('type_a')}, e.value_a AS ${q('value_a')}, e.type_b AS ${q('type_b')}, e.value_b AS ${q('value_b')},
  e.source AS ${q('source')}, e.first_seen AS ${q('first_seen')}, e.last_seen AS ${q('last_seen')}, e.verified AS ${q('verified')}, e.row_count AS ${q('row_count')}
FROM ${d.quoteRelation(r.edges)} AS e
JOIN members AS a ON a.identifier_type = e.type_a AND a.identifier_value = e.value_a
JOIN members AS b ON b.identifier_type = e.type_b AND b.identifier_value = e.value_b
WHERE e.status = 'active'
ORDER BY e.first_seen, e.type_a, e.value_a, e.type_b, e.value_b, e.source`;
}

/** The profile's identity_profiles row: counts per type, unverified identifiers, merge_confidence. */
export function profileRowSql(d: Dialect, r: IdentityRelations, rules: IdentityRules, profileId: string): string {
  const q = (s: string) => d.quoteIdentifier(s);
  const counts = rules.types.map((t) => `p.${q(`${t.name}_count`)} AS ${q(`${t.name}_count`)}`);
  return `SELECT p.profile_id AS ${q('profile_id')}, p.identifiers AS ${q('identifiers')},
  ${counts.join(', ')},
  p.unverified_identifiers AS ${q('unverified_identifiers')}, p.first_seen AS ${q('first_seen')}, p.merge_confidence AS ${q('merge_confidence')}
FROM ${d.quoteRelation(r.profiles)} AS p
WHERE p.profile_id = ${d.stringLiteral(profileId)}`;
}

/**
 * Edges touching the identifier that do not hold it in its profile: cut by the edge guards
 * (`limit`, `super_connector`), or active but cut by the graph step (a component limit or a
 * split rule), reported as `cut_in_graph`. With no profile, every touching edge is listed.
 */
export function droppedEdgesSql(d: Dialect, r: IdentityRelations, typeName: string, normalizedValue: string, profileId: string | undefined): string {
  const q = (s: string) => d.quoteIdentifier(s);
  const type = d.stringLiteral(typeName);
  const value = d.stringLiteral(normalizedValue);
  const edges = d.quoteRelation(r.edges);
  const cols = 'source, first_seen, last_seen, verified, row_count, status';
  return `WITH touching AS (
  SELECT type_b AS partner_type, value_b AS partner_value, ${cols} FROM ${edges} WHERE type_a = ${type} AND value_a = ${value}
  UNION ALL
  SELECT type_a AS partner_type, value_a AS partner_value, ${cols} FROM ${edges} WHERE type_b = ${type} AND value_b = ${value}
)
SELECT t.partner_type AS ${q('partner_type')}, t.partner_value AS ${q('partner_value')},
  CASE WHEN t.status = 'active' THEN 'cut_in_graph' ELSE t.status END AS ${q('status')},
  t.source AS ${q('source')}, t.first_seen AS ${q('first_seen')}, t.last_seen AS ${q('last_seen')}, t.verified AS ${q('verified')}, t.row_count AS ${q('row_count')},
  g.profile_id AS ${q('partner_profile_id')}
FROM touching AS t
LEFT JOIN ${d.quoteRelation(r.graph)} AS g ON g.identifier_type = t.partner_type AND g.identifier_value = t.partner_value
WHERE ${profileId === undefined ? 'TRUE' : `t.status <> 'active' OR g.profile_id IS NULL OR g.profile_id <> ${d.stringLiteral(profileId)}`}
ORDER BY t.first_seen, t.partner_type, t.partner_value, t.source`;
}

/** Merge-log rows naming the profile, as survivor or as merged id, oldest first. */
export function profileMergesSql(d: Dialect, r: IdentityRelations, profileId: string): string {
  const q = (s: string) => d.quoteIdentifier(s);
  const id = d.stringLiteral(profileId);
  const columns = ['run_id', 'logged_at', 'reason', 'surviving_id', 'merged_id', 'edge_type_a', 'edge_value_a', 'edge_type_b', 'edge_value_b', 'edge_source'];
  return `SELECT ${columns.map((c) => `m.${q(c)} AS ${q(c)}`).join(', ')}
FROM ${d.quoteRelation(r.merges)} AS m
WHERE m.${q('surviving_id')} = ${id} OR m.${q('merged_id')} = ${id}
ORDER BY m.${q('logged_at')}, m.${q('run_id')}, m.${q('reason')}, m.${q('merged_id')}`;
}
