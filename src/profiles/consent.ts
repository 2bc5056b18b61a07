import type { SourceLocation } from '../errors.js';
import type { IdentityRules } from '../identity/rules.js';
import { assertValidName } from '../project/names.js';
import { parseReference, type NodeReference } from '../project/schema-file.js';
import type { YamlValue } from '../project/yaml-reader.js';
import type { Dialect } from '../warehouse/dialect.js';
import { failWhenSql, identifierJoinsSql, referenceTemplate, requiredChild } from './sql.js';

/**
 * The `consent:` section of golden_record.yml (docs/golden-record.md): declared scopes with their
 * default, and consent event sources. It generates `consent_history` (every event, attached to
 * its profile) and `consent_state` (per profile and declared scope: the latest event wins, a
 * revoke wins a tie in time, and the scope's default applies when there is no event).
 */

export const CONSENT_STATUSES = ['granted', 'revoked'] as const;
export type ConsentStatus = (typeof CONSENT_STATUSES)[number];

export interface ConsentScope {
  name: string;
  default: ConsentStatus;
  at: SourceLocation;
}

export interface ConsentEventSource {
  name: string;
  from: NodeReference;
  /** Identifier types of identity.yml and their columns; the first that resolves finds the profile. */
  identifiers: { type: string; column: string }[];
  scopeColumn: string;
  statusColumn: string;
  timestampColumn: string;
  /** The column that names where the consent was given; the event source name when absent. */
  sourceColumn?: string;
  at: SourceLocation;
}

export interface ConsentRules {
  scopes: ConsentScope[];
  events: ConsentEventSource[];
}

function located(node: YamlValue): SourceLocation {
  return { file: node.file, line: node.line, key: node.key };
}

function column(node: YamlValue): string {
  return assertValidName(node.string(), 'Column', located(node));
}

export function readConsent(node: YamlValue, identityTypes: string[]): ConsentRules {
  node.onlyKeys(['scopes', 'events']);
  if (!node.isMap()) throw node.error('expected-map', '`consent` must be a mapping with `scopes` and `events`');
  const scopesNode = requiredChild(node, 'scopes', 'the consent scopes and their defaults, e.g. `scopes: { email_marketing: { default: revoked } }`');
  const scopes = scopesNode.entries().map(([name, scope]): ConsentScope => {
    assertValidName(name, 'Consent scope', located(scope));
    scope.onlyKeys(['default']);
    const status = requiredChild(scope, 'default', 'granted (opt-out: granted until revoked) or revoked (opt-in: revoked until granted)');
    return { name, default: status.oneOf(CONSENT_STATUSES), at: located(scope) };
  });
  if (scopes.length === 0) throw scopesNode.error('missing-key', '`consent.scopes` needs at least one scope');
  const eventsNode = requiredChild(node, 'events', 'the consent event sources');
  const events = eventsNode.items().map((item) => readEventSource(item, identityTypes));
  if (events.length === 0) throw eventsNode.error('missing-key', '`consent.events` needs at least one consent event source');
  const names = new Set<string>();
  for (const event of events) {
    if (names.has(event.name)) throw eventsNode.error('duplicate-consent-source', `Consent event source \`${event.name}\` is declared twice`);
    names.add(event.name);
  }
  return { scopes, events };
}

function readEventSource(node: YamlValue, identityTypes: string[]): ConsentEventSource {
  node.onlyKeys(['name', 'from', 'identifiers', 'scope', 'status', 'timestamp', 'source']);
  const name = assertValidName(requiredChild(node, 'name').string(), 'Consent event source name', located(node.child('name')));
  const ids = requiredChild(node, 'identifiers', 'identifier types of identity.yml and their columns');
  const identifiers = ids.entries().map(([type, col]) => {
    if (!identityTypes.includes(type)) {
      throw col.error('unknown-identifier-type', `\`${col.key}\`: \`${type}\` is not an identifier type of identity.yml`, `Types: ${identityTypes.join(', ')}.`);
    }
    return { type, column: column(col) };
  });
  if (identifiers.length === 0) throw ids.error('missing-key', `\`${ids.key}\` needs at least one identifier`);
  const source = node.child('source');
  return {
    name,
    from: parseReference(requiredChild(node, 'from')),
    identifiers,
    scopeColumn: column(requiredChild(node, 'scope', 'the column that holds the scope')),
    statusColumn: column(requiredChild(node, 'status', 'the column that holds granted or revoked')),
    timestampColumn: column(requiredChild(node, 'timestamp', 'the column that dates the event')),
    sourceColumn: source.exists ? column(source) : undefined,
    at: located(node),
  };
}

export function consentHistoryTemplate(d: Dialect, consent: ConsentRules, identity: IdentityRules, file: string): string {
  const str = d.types.string;
  const c = (name: string) => `src.${d.quoteIdentifier(name)}`;
  const selects = consent.events.map((event, index) => {
    const { joins, profileId } = identifierJoinsSql(d, identity, event.identifiers);
    return [
      `SELECT ${profileId} AS profile_id,`,
      `  TRIM(CAST(${c(event.scopeColumn)} AS ${str})) AS scope,`,
      `  LOWER(TRIM(CAST(${c(event.statusColumn)} AS ${str}))) AS status,`,
      `  ${event.sourceColumn ? `CAST(${c(event.sourceColumn)} AS ${str})` : d.stringLiteral(event.name)} AS source,`,
      `  CAST(${c(event.timestampColumn)} AS ${d.types.timestamp}) AS occurred_at,`,
      `  ${index} AS event_source`,
      `FROM ${referenceTemplate(event.from)} AS src`,
      ...joins,
    ].join('\n');
  });
  return `-- Generated from golden_record.yml by cdp: every consent event with its profile, never overwritten.
-- The build fails (with counts and examples) on an undeclared scope or a status other than granted/revoked.
WITH events AS (
${selects.join('\nUNION ALL\n')}
),
${consentChecksSql(d, consent, file)}
SELECT e.profile_id, e.scope, e.status, e.source, e.occurred_at
FROM events AS e
WHERE e.profile_id IS NOT NULL AND (SELECT failures FROM checked) = 0
`;
}

/**
 * The `problems` and `checked` CTEs over `events`: one check that fails the query when any event
 * has an undeclared scope or a bad status, with a message that reports both kinds at once (the
 * count, up to two examples, and the key of golden_record.yml to fix).
 */
function consentChecksSql(d: Dialect, consent: ConsentRules, file: string): string {
  const str = d.types.string;
  const scopes = consent.scopes.map((s) => d.stringLiteral(s.name)).join(', ');
  const statuses = CONSENT_STATUSES.map((s) => d.stringLiteral(s)).join(', ');
  const unknownScope = `e.scope IS NULL OR e.scope NOT IN (${scopes})`;
  const badStatus = `e.status IS NULL OR e.status NOT IN (${statuses})`;
  const fileName = d.stringLiteral(file);
  const examples = (first: string, last: string, distinct: string) =>
    `${first}, CASE WHEN ${distinct} > 1 THEN CONCAT(', ', ${last}) ELSE '' END, CASE WHEN ${distinct} > 2 THEN ' (and others)' ELSE '' END`;
  const scopeMessage = `CONCAT(CAST(unknown_scopes AS ${str}), ' consent event(s) have a scope not declared under consent.scopes of ', ${fileName}, ': ', ${examples('first_unknown_scope', 'last_unknown_scope', 'distinct_unknown_scopes')})`;
  const statusMessage = `CONCAT(CAST(bad_statuses AS ${str}), ' consent event(s) have a status other than granted or revoked (consent.events.', CAST(first_bad_status_source AS ${str}), '.status of ', ${fileName}, '): ', ${examples('first_bad_status', 'last_bad_status', 'distinct_bad_statuses')})`;
  return `problems AS (
  SELECT
    SUM(CASE WHEN ${unknownScope} THEN 1 ELSE 0 END) AS unknown_scopes,
    COUNT(DISTINCT CASE WHEN ${unknownScope} THEN COALESCE(e.scope, '(null)') END) AS distinct_unknown_scopes,
    MIN(CASE WHEN ${unknownScope} THEN COALESCE(e.scope, '(null)') END) AS first_unknown_scope,
    MAX(CASE WHEN ${unknownScope} THEN COALESCE(e.scope, '(null)') END) AS last_unknown_scope,
    SUM(CASE WHEN ${badStatus} THEN 1 ELSE 0 END) AS bad_statuses,
    COUNT(DISTINCT CASE WHEN ${badStatus} THEN COALESCE(e.status, '(null)') END) AS distinct_bad_statuses,
    MIN(CASE WHEN ${badStatus} THEN COALESCE(e.status, '(null)') END) AS first_bad_status,
    MAX(CASE WHEN ${badStatus} THEN COALESCE(e.status, '(null)') END) AS last_bad_status,
    MIN(CASE WHEN ${badStatus} THEN e.event_source END) AS first_bad_status_source
  FROM events AS e
),
checked AS (
  SELECT ${failWhenSql(d, 'unknown_scopes > 0 OR bad_statuses > 0', [
    `CASE WHEN unknown_scopes > 0 THEN ${scopeMessage} ELSE '' END`,
    `CASE WHEN unknown_scopes > 0 AND bad_statuses > 0 THEN '; ' ELSE '' END`,
    `CASE WHEN bad_statuses > 0 THEN ${statusMessage} ELSE '' END`,
  ])} AS failures
  FROM problems
)`;
}

export function consentStateTemplate(d: Dialect, consent: ConsentRules): string {
  const scopes = consent.scopes
    .map((s) => `  SELECT ${d.stringLiteral(s.name)} AS scope, ${d.stringLiteral(s.default)} AS default_status`)
    .join('\n  UNION ALL\n');
  return `-- Generated from golden_record.yml by cdp: consent per profile and declared scope.
-- The latest event wins; on a tie in time, revoked wins; with no event, the scope's default applies.
-- An undated revocation wins over everything (fail safe: its time is unknown, so no grant can be
-- shown to come after it); an undated grant never sets the state.
WITH scopes AS (
${scopes}
),
ranked AS (
  SELECT h.profile_id, h.scope, h.status, h.source, h.occurred_at,
    ROW_NUMBER() OVER (
      PARTITION BY h.profile_id, h.scope
      ORDER BY CASE WHEN h.occurred_at IS NULL THEN 0 ELSE 1 END, h.occurred_at DESC, CASE WHEN h.status = 'revoked' THEN 0 ELSE 1 END, h.source
    ) AS rn
  FROM {{ ref "consent_history" }} AS h
  WHERE h.occurred_at IS NOT NULL OR h.status = 'revoked'
)
SELECT p.profile_id, s.scope,
  COALESCE(r.status, s.default_status) AS status,
  r.occurred_at AS set_at,
  r.source AS set_by_source,
  r.profile_id IS NULL AS is_default
FROM {{ ref "identity_profiles" }} AS p
CROSS JOIN scopes AS s
LEFT JOIN ranked AS r ON r.profile_id = p.profile_id AND r.scope = s.scope AND r.rn = 1
ORDER BY p.profile_id, s.scope
`;
}
