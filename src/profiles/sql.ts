import { normalizeSql } from '../identity/normalize.js';
import type { IdentityRules } from '../identity/rules.js';
import type { NodeReference } from '../project/schema-file.js';
import type { YamlValue } from '../project/yaml-reader.js';
import { CHECK_FAILURE_END, CHECK_FAILURE_START } from '../run/check-failure.js';
import type { Dialect } from '../warehouse/dialect.js';

/** SQL pieces shared by the golden_record.yml generators. */

export function referenceTemplate(ref: NodeReference): string {
  return ref.kind === 'ref' ? `{{ ref "${ref.name}" }}` : `{{ source "${ref.source}" "${ref.table}" }}`;
}

/**
 * LEFT JOINs of `src` to identity_graph, one per identifier (normalised as identity.yml says),
 * and the profile: that of the first identifier, in listed order, that resolves.
 */
export function identifierJoinsSql(d: Dialect, identity: IdentityRules, identifiers: { type: string; column: string }[]): { joins: string[]; profileId: string } {
  const joins = identifiers.map((id, i) => {
    const type = identity.types.find((t) => t.name === id.type)!;
    const alias = `g${i}`;
    return `LEFT JOIN {{ ref "identity_graph" }} AS ${alias}\n  ON ${alias}.identifier_type = ${d.stringLiteral(type.name)} AND ${alias}.identifier_value = ${normalizeSql(d, type.normalizer, `src.${d.quoteIdentifier(id.column)}`)}`;
  });
  const ids = identifiers.map((_, i) => `g${i}.profile_id`);
  return { joins, profileId: ids.length === 1 ? ids[0]! : `COALESCE(${ids.join(', ')})` };
}

/**
 * 0, or, when `condition` holds, a runtime error whose message is the concatenation of `parts`:
 * a string that cannot be cast to an integer fails the query on every engine, and the run reports
 * the text between the markers (src/run/check-failure.ts). Only evaluated where the condition holds.
 */
export function failWhenSql(d: Dialect, condition: string, parts: string[]): string {
  const message = [d.stringLiteral(CHECK_FAILURE_START), ...parts, d.stringLiteral(CHECK_FAILURE_END)];
  return `CASE WHEN ${condition} THEN CAST(CONCAT(${message.join(', ')}) AS ${d.types.integer}) ELSE 0 END`;
}

/**
 * `parent.child(key)`, which must exist. A missing key has no line of its own, so the error is
 * raised on the parent (its line) and names the missing dotted key.
 */
export function requiredChild(parent: YamlValue, key: string, what = ''): YamlValue {
  const child = parent.child(key);
  if (!child.exists) throw parent.error('missing-key', `Missing required key \`${child.key}\`${what ? `: ${what}` : ''}`);
  return child;
}
