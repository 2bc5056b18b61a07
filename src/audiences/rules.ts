import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, type SourceLocation } from '../errors.js';
import type { IdentityRules } from '../identity/rules.js';
import { assertValidName } from '../project/names.js';
import { YamlValue } from '../project/yaml-reader.js';
import { checkConsentScopes, fixedEventNames, goldenRecordFileOf, loadGoldenRecord, type Aggregate } from '../profiles/rules.js';
import { parseCondition, traitsUsed, type Condition, type TraitCatalog, type TraitInfo, type TraitType } from './conditions.js';

/**
 * audiences/*.yml, one audience per file (docs/audiences.md): who is in it (`where`, the
 * condition language, or `sql_where`), who owns it, and the consent scopes it requires.
 */

export const AUDIENCES_DIR = 'audiences';
const KEYS = ['name', 'description', 'owner', 'consent', 'as_of', 'where', 'sql_where', 'columns', 'materialized'] as const;

export interface Audience {
  name: string;
  description: string;
  owner: string;
  /** Consent scopes every member must have granted; may be empty, but must be declared. */
  consent: string[];
  /** SQL (templated) for "now"; the current timestamp when absent. */
  asOf?: string;
  filter: { kind: 'where'; condition: Condition } | { kind: 'sql'; sql: string };
  /** Trait columns selected beside profile_id. */
  columns: string[];
  materialized: 'view' | 'table';
  /** The audience file, absolute. */
  file: string;
  at: SourceLocation;
}

export function audiencesDirPath(projectRoot: string): string {
  return path.join(projectRoot, AUDIENCES_DIR);
}

export function audiencesDirOf(projectRoot: string): string | undefined {
  const dir = audiencesDirPath(projectRoot);
  return existsSync(dir) && statSync(dir).isDirectory() ? dir : undefined;
}

/** The audience files of the folder (not its subfolders), sorted. */
export function audienceFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'))
    .sort()
    .map((f) => path.join(dir, f));
}

const NUMERIC: readonly Aggregate[] = ['count', 'sum', 'min', 'max', 'days_since_last'];

function traitType(aggregate: Aggregate): TraitType {
  return NUMERIC.includes(aggregate) ? 'number' : 'timestamp';
}

/**
 * What audiences compile against, from golden_record.yml. `undefined` when the file exists but
 * does not load: that problem is reported by the profile generator already.
 */
export function audienceEnvironment(projectRoot: string, identity: IdentityRules | undefined, hasConsentState: boolean): AudienceEnvironment | undefined {
  const file = goldenRecordFileOf(projectRoot);
  if (!file) return { traits: new Map(), hasConsentState };
  let rules;
  try {
    rules = loadGoldenRecord(file, identity);
  } catch {
    return undefined;
  }
  const traits = new Map<string, TraitInfo>();
  for (const trait of rules.computedTraits) traits.set(trait.name, { name: trait.name, type: traitType(trait.aggregate), model: 'profile_traits' });
  return { traits, hasConsentState, consentScopes: rules.consent?.scopes.map((s) => s.name), eventNames: fixedEventNames(rules.sources) };
}

/** The columns audiences may test: today the computed traits of golden_record.yml (the `profile_traits` model). */
export function traitCatalog(projectRoot: string, identity: IdentityRules | undefined): TraitCatalog | undefined {
  return audienceEnvironment(projectRoot, identity, true)?.traits;
}

/**
 * A `sql_where` is one boolean expression over the profile row `t`. Reading another relation
 * (SELECT, FROM, JOIN, a ref or a source) could join without the profile key, a cartesian
 * product; it is rejected. Text inside quotes is ignored by the check.
 */
const FORBIDDEN_SQL = /\b(select|from|join)\b|;|\{\{\s*(ref|source)\b/i;

export function sqlWhereProblem(sql: string): string | undefined {
  const bare = sql.replace(/'(?:[^']|'')*'/g, "''").replace(/"(?:[^"]|"")*"/g, '""');
  const match = FORBIDDEN_SQL.exec(bare);
  return match ? match[0] : undefined;
}

export interface AudienceEnvironment {
  traits: TraitCatalog;
  /** Whether the compiled project has a `consent_state` model to check scopes against. */
  hasConsentState: boolean;
  /** The scopes golden_record.yml declares; `undefined` when consent_state is the project's own model, whose scopes only its data knows. */
  consentScopes?: readonly string[];
  /** The event names the timeline can hold; `undefined` when a source computes them (`event_sql`). */
  eventNames?: readonly string[];
}

export function loadAudience(file: string, env: AudienceEnvironment): Audience {
  const root = YamlValue.read(file).onlyKeys(KEYS);
  const nameNode = root.child('name');
  const name = assertValidName(nameNode.string(), 'Audience name', { file, line: nameNode.line, key: 'name' });
  const consentNode = root.child('consent');
  if (!consentNode.exists) {
    throw root.error('audience-consent-missing', `Audience \`${name}\` declares no \`consent\``, 'Every audience states the consent scopes its members need, e.g. `consent: [email_marketing]`; write `consent: []` for an audience that needs none (internal analysis, suppression lists).');
  }
  if (!consentNode.isList()) throw consentNode.error('expected-list', '`consent` must be a list of consent scopes, e.g. [email_marketing] (or [] for none)');
  const consent = [...new Set(consentNode.items().map((item) => assertValidName(item.string(), 'Consent scope', { file, line: item.line, key: item.key })))];
  if (consent.length > 0 && !env.hasConsentState) {
    throw consentNode.error('consent-state-missing', `Audience \`${name}\` requires consent (${consent.join(', ')}) but the project declares no consent: it has no \`consent_state\` model`, 'Declare the scopes under `consent:` in golden_record.yml (it generates consent_state), or provide a consent_state(profile_id, scope, status, ...) model; write `consent: []` if the audience needs none.');
  }
  if (env.consentScopes) checkConsentScopes(consentNode, env.consentScopes);
  const where = root.child('where');
  const sqlWhere = root.child('sql_where');
  if (where.exists === sqlWhere.exists) throw root.error('audience-filter', `Audience \`${name}\` needs exactly one of \`where\` (conditions) or \`sql_where\` (an SQL expression)`);
  let filter: Audience['filter'];
  if (where.exists) {
    filter = { kind: 'where', condition: parseCondition(where, env.traits, env.eventNames) };
  } else {
    const sql = sqlWhere.string();
    const forbidden = sqlWhereProblem(sql);
    if (forbidden) {
      throw sqlWhere.error('audience-cartesian', `\`sql_where\` of audience \`${name}\` reads another relation (\`${forbidden}\`): it could join without the profile key (a cartesian join)`, 'Write one boolean expression over the profile row `t` (e.g. `t.lifetime_revenue > 100`); for events use the `event` condition of `where`.');
    }
    filter = { kind: 'sql', sql };
  }
  const columnsNode = root.child('columns');
  const columns = columnsNode.stringList().map((column, i) => {
    if (!env.traits.has(column)) {
      throw columnsNode.child(Array.isArray(columnsNode.value) ? i : 0).error('unknown-trait', `\`columns\`: unknown trait \`${column}\``, `Traits: ${[...env.traits.keys()].join(', ') || '(none)'}.`);
    }
    return column;
  });
  const used = filter.kind === 'where' ? traitsUsed(filter.condition) : [];
  return {
    name,
    description: root.child('description').string(''),
    owner: root.child('owner').string(''),
    consent,
    asOf: root.child('as_of').optionalString(),
    filter,
    columns: [...new Set([...used, ...columns])],
    materialized: root.child('materialized').oneOf(['view', 'table'] as const, 'view'),
    file,
    at: { file, line: nameNode.line, key: 'name' },
  };
}

export function duplicateAudience(audience: Audience, previous: Audience): ConfigError {
  return new ConfigError('duplicate-audience', `Two audience files name the audience \`${audience.name}\``, {
    at: audience.at,
    hint: `${previous.file} names it too. Audience names are unique.`,
  });
}
