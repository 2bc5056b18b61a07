import type { SourceLocation } from '../errors.js';
import { assertValidName } from '../project/names.js';
import { parseReference, type NodeReference } from '../project/schema-file.js';
import type { YamlValue } from '../project/yaml-reader.js';
import { requiredChild } from './sql.js';

/**
 * The `traits:` section of golden_record.yml (docs/golden-record.md): profile attributes chosen
 * among candidate columns of source models by a survivorship rule, with provenance. It generates
 * `golden_records`: one row per profile, per trait `<trait>`, `<trait>__source` and `<trait>__at`
 * (its SQL: survivorship-sql.ts).
 */

export const TRAIT_TYPES = ['string', 'number', 'timestamp', 'boolean'] as const;
export type TraitType = (typeof TRAIT_TYPES)[number];

export const SURVIVORSHIP_RULES = ['source_priority', 'most_recent', 'first_seen', 'most_frequent', 'max', 'min', 'sum', 'verified_first'] as const;
export type SurvivorshipRule = (typeof SURVIVORSHIP_RULES)[number];

/** The types each rule applies to. */
const RULE_TYPES: Record<SurvivorshipRule, readonly TraitType[]> = {
  source_priority: TRAIT_TYPES,
  most_recent: TRAIT_TYPES,
  first_seen: TRAIT_TYPES,
  most_frequent: TRAIT_TYPES,
  verified_first: TRAIT_TYPES,
  max: ['number', 'timestamp'],
  min: ['number', 'timestamp'],
  sum: ['number'],
};

export interface TraitCandidate {
  from: NodeReference;
  identifier: { type: string; column: string };
  column: string;
  timestampColumn: string;
  /** SQL over the row: TRUE, FALSE or an expression. */
  verified: string;
  source: string;
  at: SourceLocation;
}

export interface SurvivorshipTrait {
  name: string;
  type: TraitType;
  rule: SurvivorshipRule;
  candidates: TraitCandidate[];
  /** source_priority: the sources, highest first. */
  priority?: string[];
  at: SourceLocation;
}

function located(node: YamlValue): SourceLocation {
  return { file: node.file, line: node.line, key: node.key };
}

const RESERVED = new Set(['profile_id']);

export function readTraits(node: YamlValue, identityTypes: string[]): SurvivorshipTrait[] {
  return node.entries().map(([name, trait]) => readTrait(name, trait, identityTypes));
}

function readTrait(name: string, node: YamlValue, identityTypes: string[]): SurvivorshipTrait {
  assertValidName(name, 'Trait', located(node));
  if (name.includes('__') || RESERVED.has(name)) {
    throw node.error('invalid-name', `Trait \`${name}\` cannot be used: \`profile_id\` and names with \`__\` are reserved for golden_records' own columns`);
  }
  node.onlyKeys(['type', 'rule', 'candidates', 'priority']);
  const type = requiredChild(node, 'type', TRAIT_TYPES.join(', ')).oneOf(TRAIT_TYPES);
  const rule = requiredChild(node, 'rule', SURVIVORSHIP_RULES.join(', ')).oneOf(SURVIVORSHIP_RULES);
  if (!RULE_TYPES[rule].includes(type)) {
    throw node.child('rule').error('rule-type-mismatch', `\`${node.child('rule').key}\`: the \`${rule}\` rule does not apply to a ${type} trait`, `\`${rule}\` applies to: ${RULE_TYPES[rule].join(', ')}.`);
  }
  const candidatesNode = node.child('candidates');
  const candidates = candidatesNode.items().map((c) => readCandidate(c, identityTypes));
  if (candidates.length === 0) {
    throw (candidatesNode.exists ? candidatesNode : node).error('trait-no-candidates', `Trait \`${name}\` has no candidate column: list at least one under \`${candidatesNode.key}\``);
  }
  const priorityNode = node.child('priority');
  let priority: string[] | undefined;
  if (rule === 'source_priority') {
    if (!priorityNode.exists) throw node.error('missing-key', `Trait \`${name}\` (source_priority) needs \`${priorityNode.key}\`: its sources, highest first`);
    priority = priorityNode.stringList();
    const sources = [...new Set(candidates.map((c) => c.source))];
    priority.forEach((source, i) => {
      if (!sources.includes(source)) {
        throw priorityNode.child(i).error('unknown-source', `\`${priorityNode.key}\`: \`${source}\` is not the source of any candidate of \`${name}\``, `Sources: ${sources.join(', ')}.`);
      }
    });
    const unranked = sources.filter((s) => !priority!.includes(s));
    if (unranked.length > 0) {
      throw priorityNode.error('unranked-source', `\`${priorityNode.key}\` does not rank the candidate source(s) ${unranked.map((s) => `\`${s}\``).join(', ')}`, 'List every candidate source, highest first.');
    }
  } else if (priorityNode.exists) {
    throw priorityNode.error('unexpected-key', `\`${priorityNode.key}\` only applies to the source_priority rule (\`${name}\` uses ${rule})`);
  }
  return { name, type, rule, candidates, priority, at: located(node) };
}

function readCandidate(node: YamlValue, identityTypes: string[]): TraitCandidate {
  node.onlyKeys(['from', 'identifier', 'column', 'timestamp', 'verified', 'source']);
  const from = parseReference(requiredChild(node, 'from'));
  const identifier = requiredChild(node, 'identifier', '`{ type, column }`: the identifier that finds the row\'s profile');
  identifier.onlyKeys(['type', 'column']);
  const type = requiredChild(identifier, 'type').string();
  if (!identityTypes.includes(type)) {
    throw identifier.child('type').error('unknown-identifier-type', `\`${identifier.child('type').key}\`: \`${type}\` is not an identifier type of identity.yml`, `Types: ${identityTypes.join(', ')}.`);
  }
  const col = (n: YamlValue) => assertValidName(n.string(), 'Column', located(n));
  const verified = node.child('verified');
  const sourceNode = node.child('source');
  const source = sourceNode.exists ? sourceNode.string() : from.kind === 'ref' ? from.name : from.table;
  assertValidName(source, 'Candidate source', located(sourceNode.exists ? sourceNode : node));
  return {
    from,
    identifier: { type, column: col(requiredChild(identifier, 'column')) },
    column: col(requiredChild(node, 'column', 'the candidate column')),
    timestampColumn: col(requiredChild(node, 'timestamp', 'the column that dates the value')),
    verified: typeof verified.value === 'boolean' ? (verified.value ? 'TRUE' : 'FALSE') : verified.exists ? `(${verified.string()})` : 'FALSE',
    source,
    at: located(node),
  };
}
