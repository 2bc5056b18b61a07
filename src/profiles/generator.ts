import type { GeneratedModel } from '../compile/generated-model.js';
import { normalizeSql } from '../identity/normalize.js';
import type { IdentityRules } from '../identity/rules.js';
import type { Dialect } from '../warehouse/dialect.js';
import { consentHistoryTemplate, consentStateTemplate } from './consent.js';
import { GOLDEN_RECORD_FILE, type ComputedTrait, type EventSource, type GoldenRecordRules } from './rules.js';
import { referenceTemplate } from './sql.js';
import { goldenRecordsTemplate } from './survivorship-sql.js';

/**
 * golden_record.yml → `consent_history` and `consent_state` (consent.ts), `golden_records`
 * (survivorship.ts), and two models: `profile_events`, every event of every source attached to its
 * profile through the identity graph and ordered per profile; and `profile_traits`, the computed
 * traits, with one aggregation pass per source (never one query per trait) combined per profile.
 */

export function profileModels(d: Dialect, rules: GoldenRecordRules, identity: IdentityRules): GeneratedModel[] {
  const models: GeneratedModel[] = [];
  if (rules.sources.length > 0) models.push(...eventModels(d, rules, identity));
  if (rules.consent) {
    models.push(
      {
        name: 'consent_history',
        materialized: 'table',
        template: consentHistoryTemplate(d, rules.consent, identity, GOLDEN_RECORD_FILE),
        extraRefs: [],
        description: 'Every consent event with its profile: profile_id, scope, status, source, occurred_at.',
      },
      {
        name: 'consent_state',
        materialized: 'table',
        template: consentStateTemplate(d, rules.consent),
        extraRefs: [],
        description: 'Current consent per profile and declared scope: status, set_at, set_by_source, is_default.',
      },
    );
  }
  if (rules.traits.length > 0) {
    models.push({
      name: 'golden_records',
      materialized: 'table',
      template: goldenRecordsTemplate(d, rules.traits, identity),
      extraRefs: [],
      description: 'The golden record: one row per profile; per trait `<trait>`, `<trait>__source`, `<trait>__at`.',
    });
  }
  return models;
}

function eventModels(d: Dialect, rules: GoldenRecordRules, identity: IdentityRules): GeneratedModel[] {
  return [
    {
      name: 'profile_events',
      materialized: 'table',
      template: profileEventsTemplate(d, rules, identity),
      extraRefs: [],
      description: 'The event timeline: profile_id, event_seq, occurred_at, event_name, source, properties.',
    },
    {
      name: 'profile_traits',
      materialized: 'table',
      template: profileTraitsTemplate(d, rules, identity),
      extraRefs: [],
      description: 'Computed traits per profile, from golden_record.yml.',
    },
  ];
}

function col(d: Dialect, column: string): string {
  return `src.${d.quoteIdentifier(column)}`;
}

function eventSql(d: Dialect, source: EventSource): string {
  return source.event.kind === 'name' ? d.stringLiteral(source.event.name) : `(${source.event.expression})`;
}

function timestampSql(d: Dialect, source: EventSource): string {
  return `CAST(${col(d, source.timestampColumn)} AS ${d.types.timestamp})`;
}

/** Rows of the source with their profile: the identifier normalised as identity.yml says, then looked up. */
function sourceFrom(d: Dialect, source: EventSource, identity: IdentityRules): string {
  const type = identity.types.find((t) => t.name === source.identifier.type)!;
  return [
    `FROM ${referenceTemplate(source.from)} AS src`,
    `JOIN {{ ref "identity_graph" }} AS g`,
    `  ON g.identifier_type = ${d.stringLiteral(type.name)} AND g.identifier_value = ${normalizeSql(d, type.normalizer, col(d, source.identifier.column))}`,
  ].join('\n');
}

function asOfSql(d: Dialect, rules: GoldenRecordRules): string {
  return rules.asOf ? `(${rules.asOf})` : d.currentTimestamp();
}

export function profileEventsTemplate(d: Dialect, rules: GoldenRecordRules, identity: IdentityRules): string {
  const selects = rules.sources.map((source) => [
    `SELECT g.profile_id, ${timestampSql(d, source)} AS occurred_at, ${eventSql(d, source)} AS event_name, ${d.stringLiteral(source.name)} AS source,`,
    `  ${d.jsonObject(source.properties.map((p) => [p, col(d, p)]))} AS properties`,
    sourceFrom(d, source, identity),
  ].join('\n'));
  return `-- Generated from golden_record.yml by cdp: the event timeline, ordered per profile.
WITH events AS (
${selects.join('\nUNION ALL\n')}
)
SELECT profile_id,
  ROW_NUMBER() OVER (PARTITION BY profile_id ORDER BY occurred_at, source, event_name) AS event_seq,
  occurred_at, event_name, source, properties
FROM events
WHERE occurred_at IS NOT NULL
ORDER BY profile_id, event_seq
`;
}

/** Whether a trait can draw from a source at all: its property is there, and the event can match. */
function contributes(trait: ComputedTrait, source: EventSource): boolean {
  if (trait.property && !source.properties.includes(trait.property)) return false;
  if (trait.events && source.event.kind === 'name' && !trait.events.includes(source.event.name)) return false;
  return true;
}

function traitCondition(d: Dialect, rules: GoldenRecordRules, trait: ComputedTrait, source: EventSource): string | undefined {
  const conditions: string[] = [];
  if (trait.events && source.event.kind === 'sql') conditions.push(`${eventSql(d, source)} IN (${trait.events.map((e) => d.stringLiteral(e)).join(', ')})`);
  if (trait.withinDays) conditions.push(`${timestampSql(d, source)} >= ${d.dateAdd(asOfSql(d, rules), -trait.withinDays, 'day')}`);
  return conditions.length > 0 ? conditions.join(' AND ') : undefined;
}

/** The per-source partial aggregate of a trait, combined across sources by `combine`. */
function partialSql(d: Dialect, rules: GoldenRecordRules, trait: ComputedTrait, source: EventSource): string {
  const when = traitCondition(d, rules, trait, source);
  const guarded = (value: string) => (when ? `CASE WHEN ${when} THEN ${value} END` : value);
  const ts = timestampSql(d, source);
  switch (trait.aggregate) {
    case 'count':
      return when ? `SUM(CASE WHEN ${when} THEN 1 ELSE 0 END)` : 'COUNT(*)';
    case 'sum':
      return `SUM(${guarded(col(d, trait.property!))})`;
    case 'min':
      return `MIN(${guarded(col(d, trait.property!))})`;
    case 'max':
      return `MAX(${guarded(col(d, trait.property!))})`;
    case 'first_time':
      return `MIN(${guarded(ts)})`;
    case 'last_time':
    case 'days_since_last':
      return `MAX(${guarded(ts)})`;
  }
}

/** The partial aggregates of a trait combined per profile: counts and sums add, minimums and maximums combine. */
function combineSql(d: Dialect, trait: ComputedTrait): string {
  const c = `p.${d.quoteIdentifier(trait.name)}`;
  switch (trait.aggregate) {
    case 'count':
    case 'sum':
      return `SUM(${c})`;
    case 'min':
    case 'first_time':
      return `MIN(${c})`;
    case 'max':
    case 'last_time':
    case 'days_since_last':
      return `MAX(${c})`;
  }
}

/** A trait's value for a profile of identity_profiles, with or without events (`c` is absent then). */
function finalSql(d: Dialect, rules: GoldenRecordRules, trait: ComputedTrait): string {
  const c = `c.${d.quoteIdentifier(trait.name)}`;
  switch (trait.aggregate) {
    case 'count':
    case 'sum':
      return `COALESCE(${c}, 0)`;
    case 'days_since_last':
      return d.dateDiff('day', c, asOfSql(d, rules));
    default:
      return c;
  }
}

/**
 * One source's partial aggregates. Events are grouped by their raw identifier first and only the
 * groups are resolved: the identifier is normalised and looked up once per distinct value instead
 * of once per event, and the join reads one row per identifier. Raw values that normalise alike
 * (` C1`, `C1`) are separate groups of the same profile; the combine step adds them up, as it
 * adds up sources.
 */
function partialsSql(d: Dialect, rules: GoldenRecordRules, source: EventSource, identity: IdentityRules): string {
  const q = (name: string) => d.quoteIdentifier(name);
  const type = identity.types.find((t) => t.name === source.identifier.type)!;
  const columns = rules.computedTraits.map((trait) => `${contributes(trait, source) ? partialSql(d, rules, trait, source) : 'NULL'} AS ${q(trait.name)}`);
  return [
    `SELECT g.profile_id${rules.computedTraits.map((trait) => `, a.${q(trait.name)}`).join('')}`,
    'FROM (',
    `  SELECT ${col(d, source.identifier.column)} AS identifier${columns.map((c) => `,\n    ${c}`).join('')}`,
    `  FROM ${referenceTemplate(source.from)} AS src`,
    `  GROUP BY ${col(d, source.identifier.column)}`,
    ') AS a',
    `JOIN {{ ref "identity_graph" }} AS g`,
    `  ON g.identifier_type = ${d.stringLiteral(type.name)} AND g.identifier_value = ${normalizeSql(d, type.normalizer, 'a.identifier')}`,
  ].join('\n');
}

/**
 * Every profile of identity_profiles gets a row, so a condition such as `orders = 0` finds the
 * profiles without events too. Only the combined partials are joined to the profile list: one
 * row per profile on each side, never the events.
 */
export function profileTraitsTemplate(d: Dialect, rules: GoldenRecordRules, identity: IdentityRules): string {
  const q = (name: string) => d.quoteIdentifier(name);
  const partials = rules.sources.map((source) => partialsSql(d, rules, source, identity));
  const combined = rules.computedTraits.map((trait) => `${combineSql(d, trait)} AS ${q(trait.name)}`);
  const finals = rules.computedTraits.map((trait) => `${finalSql(d, rules, trait)} AS ${q(trait.name)}`);
  return `-- Generated from golden_record.yml by cdp: computed traits, one aggregation pass per event source
-- (grouped by its identifier, then resolved to profiles), combined per profile, for every profile.
WITH partials AS (
${partials.join('\nUNION ALL\n')}
),
combined AS (
  SELECT p.profile_id${combined.map((c) => `,\n    ${c}`).join('')}
  FROM partials AS p
  GROUP BY p.profile_id
)
SELECT pr.profile_id${finals.map((c) => `,\n  ${c}`).join('')}
FROM {{ ref "identity_profiles" }} AS pr
LEFT JOIN combined AS c ON c.profile_id = pr.profile_id
`;
}
