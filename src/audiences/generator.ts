import type { GeneratedModel } from '../compile/generated-model.js';
import type { Dialect } from '../warehouse/dialect.js';
import { conditionSql, type TraitCatalog } from './conditions.js';
import type { Audience } from './rules.js';

/**
 * audiences/*.yml → one model `audience_<name>` per audience (its members: profile_id and the
 * traits it tests), plus `audience_membership`, the entered/exited history of every audience.
 */

export const MEMBERSHIP_MODEL = 'audience_membership';

export function audienceModelName(audience: string): string {
  return `audience_${audience}`;
}

export function asOfSql(d: Dialect, audience: Audience): string {
  return audience.asOf ? `(${audience.asOf})` : d.currentTimestamp();
}

export function audienceTemplate(d: Dialect, audience: Audience, traits: TraitCatalog): string {
  const file = `audiences/${audience.file.split(/[\\/]/).pop()}`;
  const columns = ['t.profile_id', ...audience.columns.map((c) => `t.${d.quoteIdentifier(c)}`)];
  const filter = audience.filter.kind === 'where'
    ? conditionSql(audience.filter.condition, { dialect: d, asOf: asOfSql(d, audience), eventsRelation: '{{ ref "profile_events" }}', alias: 't' }, traits, '  ')
    : audience.filter.sql;
  const consent = audience.consent.map((scope) =>
    `  AND EXISTS (SELECT 1 FROM {{ ref "consent_state" }} AS c WHERE c.profile_id = t.profile_id AND c.scope = ${d.stringLiteral(scope)} AND c.status = 'granted')`);
  const header = `-- Generated from ${file} by cdp: audience \`${audience.name}\`${audience.owner ? ` (owner: ${audience.owner})` : ''}.`;
  const consentNote = audience.consent.length > 0 ? `-- Consent required: ${audience.consent.join(', ')} (granted in consent_state).` : '-- Consent required: none.';
  return `${header.replace(/\n/g, ' ')}
${consentNote}
SELECT ${columns.join(', ')}
FROM {{ ref "profile_traits" }} AS t
WHERE (
  ${filter}
)
${consent.join('\n')}${consent.length > 0 ? '\n' : ''}`;
}

export function audienceModels(d: Dialect, audience: Audience, traits: TraitCatalog): GeneratedModel[] {
  return [{
    name: audienceModelName(audience.name),
    materialized: audience.materialized,
    template: audienceTemplate(d, audience, traits),
    extraRefs: [],
    description: audience.description || `Members of audience ${audience.name}.`,
  }];
}

/**
 * The current members of every audience; the `audience_membership` materialization diffs them
 * into history. With no audience it selects no row, so the run closes every open row left by
 * audience files since removed.
 */
export function membershipModel(d: Dialect, audiences: string[]): GeneratedModel {
  const selects = audiences.length > 0
    ? audiences.map((name) => `SELECT DISTINCT profile_id, ${d.stringLiteral(name)} AS audience FROM {{ ref "${audienceModelName(name)}" }}`)
    : [`SELECT CAST(NULL AS ${d.types.string}) AS profile_id, CAST(NULL AS ${d.types.string}) AS audience FROM (SELECT 1 AS x) AS none WHERE 1 = 0`];
  return {
    name: MEMBERSHIP_MODEL,
    materialized: 'audience_membership',
    template: `-- Generated from audiences/ by cdp: the current members of every audience. The audience_membership
-- materialization records who entered (entered_at) and who left (exited_at) since the previous run.
${selects.join('\nUNION ALL\n')}
`,
    extraRefs: [],
    description: 'Audience membership history: profile_id, audience, entered_at, exited_at (NULL while a member).',
  };
}
