import { existsSync } from 'node:fs';
import path from 'node:path';
import { didYouMean } from '../compile/suggest.js';
import { ConfigError, type SourceLocation } from '../errors.js';
import type { IdentityRules } from '../identity/rules.js';
import { assertValidName } from '../project/names.js';
import { parseReference, type NodeReference } from '../project/schema-file.js';
import { YamlValue } from '../project/yaml-reader.js';
import { readConsent, type ConsentRules } from './consent.js';
import { readTraits, type SurvivorshipTrait } from './survivorship.js';

/**
 * golden_record.yml: the event sources that make the per-profile timeline, and the computed
 * traits aggregated over it (docs/golden-record.md). Rows reach profiles through one identifier
 * each, resolved by the identity graph, so the file needs identity.yml beside it.
 */

export const GOLDEN_RECORD_FILE = 'golden_record.yml';

export interface EventSource {
  name: string;
  from: NodeReference;
  /** The identifier that finds the row's profile: a type of identity.yml and a column. */
  identifier: { type: string; column: string };
  timestampColumn: string;
  /** An event name, or an SQL expression that computes it per row. */
  event: { kind: 'name'; name: string } | { kind: 'sql'; expression: string };
  /** Columns kept in the event's properties, and usable by computed traits. */
  properties: string[];
  at: SourceLocation;
}

export const AGGREGATES = ['count', 'sum', 'min', 'max', 'first_time', 'last_time', 'days_since_last'] as const;
export type Aggregate = (typeof AGGREGATES)[number];

export interface ComputedTrait {
  name: string;
  aggregate: Aggregate;
  /** For sum, min and max: the event property aggregated. */
  property?: string;
  /** Only these event names count; all events when absent. */
  events?: string[];
  /** Only events within this many days before `as_of`. */
  withinDays?: number;
  at: SourceLocation;
}

export interface GoldenRecordRules {
  file: string;
  /** SQL (may use {{ var }}) for "now" in windows and days-since traits; default: the current timestamp. */
  asOf?: string;
  sources: EventSource[];
  computedTraits: ComputedTrait[];
  /** `consent:`: scopes with defaults and consent event sources (src/profiles/consent.ts). */
  consent?: ConsentRules;
  /** `traits:`: the golden record's attributes and their survivorship rules (src/profiles/survivorship.ts). */
  traits: SurvivorshipTrait[];
}

export function goldenRecordFileOf(projectRoot: string): string | undefined {
  const file = path.join(projectRoot, GOLDEN_RECORD_FILE);
  return existsSync(file) ? file : undefined;
}

function located(node: YamlValue): SourceLocation {
  return { file: node.file, line: node.line, key: node.key };
}

export function loadGoldenRecord(file: string, identity: IdentityRules | undefined): GoldenRecordRules {
  const root = YamlValue.read(file).onlyKeys(['as_of', 'event_sources', 'computed_traits', 'consent', 'traits']);
  if (!identity) {
    throw root.error('identity-required', 'golden_record.yml needs identity.yml: events reach profiles through the identity graph', 'Add identity.yml to the project root (docs/identity.md).');
  }
  const types = identity.types.map((t) => t.name);
  const sources = root.child('event_sources').items().map((node) => readSource(node, types));
  const consent = root.child('consent').exists ? readConsent(root.child('consent'), types) : undefined;
  const traits = readTraits(root.child('traits'), types);
  if (sources.length === 0 && (root.child('computed_traits').exists || (!consent && traits.length === 0))) {
    throw root.child('event_sources').error('missing-key', 'golden_record.yml needs at least one entry under `event_sources`');
  }
  const names = new Set<string>();
  for (const source of sources) {
    if (names.has(source.name)) throw new ConfigError('duplicate-event-source', `Event source \`${source.name}\` is declared twice`, { at: source.at });
    names.add(source.name);
  }
  const properties = new Set(sources.flatMap((s) => s.properties));
  const events = fixedEventNames(sources);
  const computedTraits = root.child('computed_traits').entries().map(([name, node]) => readTrait(name, node, properties, events));
  return { file, asOf: root.child('as_of').optionalString(), sources, computedTraits, consent, traits };
}

function readSource(node: YamlValue, types: string[]): EventSource {
  node.onlyKeys(['name', 'from', 'identifier', 'timestamp', 'event', 'event_sql', 'properties']);
  const name = assertValidName(node.child('name').string(), 'Event source name', located(node.child('name')));
  const identifier = node.child('identifier').onlyKeys(['type', 'column']);
  const type = identifier.child('type').string();
  if (!types.includes(type)) {
    throw identifier.child('type').error('unknown-identifier-type', `\`${identifier.child('type').key}\`: \`${type}\` is not an identifier type of identity.yml`, `Types: ${types.join(', ')}.`);
  }
  const event = node.child('event');
  const eventSql = node.child('event_sql');
  if (event.exists === eventSql.exists) throw node.error('event-name', `Event source \`${name}\` needs exactly one of \`event\` (a name) or \`event_sql\` (an expression)`);
  return {
    name,
    from: parseReference(node.child('from')),
    identifier: { type, column: assertValidName(identifier.child('column').string(), 'Column', located(identifier.child('column'))) },
    timestampColumn: assertValidName(node.child('timestamp').string(), 'Column', located(node.child('timestamp'))),
    event: event.exists
      ? { kind: 'name', name: assertValidName(event.string(), 'Event name', located(event)) }
      : { kind: 'sql', expression: eventSql.string() },
    properties: node.child('properties').stringList().map((p, i) => assertValidName(p, 'Property column', located(node.child('properties').child(i)))),
    at: located(node),
  };
}

/**
 * Every event name the sources can produce, or `undefined` when one computes its names with
 * `event_sql` (then any name may occur, and none can be rejected).
 */
export function fixedEventNames(sources: readonly EventSource[]): string[] | undefined {
  const names = new Set<string>();
  for (const source of sources) {
    if (source.event.kind === 'sql') return undefined;
    names.add(source.event.name);
  }
  return [...names];
}

/** The nodes of a list that also accepts a single string (`stringList`), to point at the bad one. */
function listItems(node: YamlValue): YamlValue[] {
  return node.isList() ? node.items() : [node];
}

/** Rejects an event name no source produces: the trait (or condition) would match nothing, silently. */
export function checkEventNames(list: YamlValue, known: readonly string[]): void {
  for (const item of listItems(list)) {
    const name = item.string();
    if (known.includes(name)) continue;
    throw item.error('unknown-event', `No event source produces the event \`${name}\``, `${didYouMean(name, known)} Event names of event_sources in ${GOLDEN_RECORD_FILE}: ${known.join(', ') || '(none)'}.`.trim());
  }
}

function readTrait(name: string, node: YamlValue, properties: Set<string>, knownEvents: string[] | undefined): ComputedTrait {
  assertValidName(name, 'Computed trait', located(node));
  node.onlyKeys(['aggregate', 'property', 'events', 'within_days']);
  const aggregate = node.child('aggregate').oneOf(AGGREGATES);
  const property = node.child('property').optionalString();
  const needsProperty = aggregate === 'sum' || aggregate === 'min' || aggregate === 'max';
  if (needsProperty && !property) {
    throw node.error('trait-property', `Computed trait \`${name}\` (${aggregate}) needs \`property\`: the event property to aggregate`);
  }
  if (!needsProperty && property) throw node.child('property').error('trait-property', `Computed trait \`${name}\` (${aggregate}) takes no \`property\``);
  if (property && !properties.has(property)) {
    throw node.child('property').error('unknown-property', `\`${node.child('property').key}\`: no event source lists \`${property}\` under \`properties\``, `Properties: ${[...properties].join(', ') || '(none)'}.`);
  }
  const events = node.child('events');
  if (events.exists && knownEvents) checkEventNames(events, knownEvents);
  return {
    name,
    aggregate,
    property,
    events: events.exists ? events.stringList() : undefined,
    withinDays: node.child('within_days').exists ? node.child('within_days').integer(0, 1) : undefined,
    at: located(node),
  };
}

/**
 * The scopes declared under `consent.scopes` of the project's golden_record.yml, read without
 * checking the rest of the file (loading it reports its own problems); `undefined` when the
 * project declares no consent there.
 */
export function declaredConsentScopes(projectRoot: string): string[] | undefined {
  const file = goldenRecordFileOf(projectRoot);
  if (!file) return undefined;
  try {
    const scopes = YamlValue.read(file).child('consent').child('scopes');
    return scopes.isMap() ? scopes.keys() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every scope a `consent` list requires must be declared: nobody can grant a misspelt scope, so a
 * typo would empty an audience, or make a contract remove every synced row for lost consent.
 */
export function checkConsentScopes(list: YamlValue, declared: readonly string[]): void {
  for (const item of listItems(list)) {
    const scope = item.string();
    if (declared.includes(scope)) continue;
    throw item.error('unknown-consent-scope', `\`${scope}\` is not a consent scope of this project`, `${didYouMean(scope, declared)} Scopes declared under consent.scopes of ${GOLDEN_RECORD_FILE}: ${declared.join(', ')}.`.trim());
  }
}
