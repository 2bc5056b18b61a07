import type { SourceLocation } from '../errors.js';
import type { IdentityRules } from '../identity/rules.js';
import { assertValidName } from '../project/names.js';
import { parseReference, type NodeReference } from '../project/schema-file.js';
import type { YamlValue } from '../project/yaml-reader.js';
import type { Dialect } from '../warehouse/dialect.js';
import { identifierJoinsSql, referenceTemplate, requiredChild } from './sql.js';

/**
 * The `traits:` section of golden_record.yml (docs/golden-record.md): profile attributes chosen
 * among candidate columns of source models by a survivorship rule, with provenance. It generates
 * `golden_records`: one row per profile, per trait `<trait>`, `<trait>__source` and `<trait>__at`.
 * All candidates of all traits form one long table, ranked once per (profile, trait).
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

/** Candidates that read the same rows the same way share one scan and one identity lookup. */
function scanKey(candidate: TraitCandidate): string {
  return JSON.stringify([candidate.from, candidate.identifier, candidate.timestampColumn, candidate.verified, candidate.source]);
}

interface CandidateScan {
  name: string;
  first: TraitCandidate;
  columns: Set<string>;
}

function candidateScans(traits: SurvivorshipTrait[]): Map<string, CandidateScan> {
  const scans = new Map<string, CandidateScan>();
  for (const candidate of traits.flatMap((t) => t.candidates)) {
    const key = scanKey(candidate);
    const scan = scans.get(key) ?? { name: `scan_${scans.size + 1}`, first: candidate, columns: new Set<string>() };
    scan.columns.add(candidate.column);
    scans.set(key, scan);
  }
  return scans;
}

/** One pass over a candidate source: its profile, sighting time, verification and every column some trait reads. */
function scanSql(d: Dialect, scan: CandidateScan, identity: IdentityRules): string {
  const { joins, profileId } = identifierJoinsSql(d, identity, [scan.first.identifier]);
  const columns = [...scan.columns].map((c) => `src.${d.quoteIdentifier(c)}`);
  return [
    `${scan.name} AS (`,
    `  SELECT ${profileId} AS profile_id, ${columns.join(', ')},`,
    `    CAST(src.${d.quoteIdentifier(scan.first.timestampColumn)} AS ${d.types.timestamp}) AS at,`,
    `    COALESCE(${scan.first.verified}, FALSE) AS verified`,
    `  FROM ${referenceTemplate(scan.first.from)} AS src`,
    ...joins.map((j) => `  ${j.replaceAll('\n', '\n  ')}`),
    ')',
  ].join('\n');
}

/** The ordering of a rule inside the shared ROW_NUMBER: every key is constant unless its rule uses it. */
function candidateSelect(d: Dialect, trait: SurvivorshipTrait, candidate: TraitCandidate, scan: CandidateScan): string {
  const c = `s.${d.quoteIdentifier(candidate.column)}`;
  const num = trait.type === 'number' ? `CAST(${c} AS ${d.types.float})` : `CAST(NULL AS ${d.types.float})`;
  const ts = trait.type === 'timestamp' ? `CAST(${c} AS ${d.types.timestamp})` : `CAST(NULL AS ${d.types.timestamp})`;
  const rank = trait.priority ? trait.priority.indexOf(candidate.source) : 0;
  return [
    `SELECT s.profile_id, ${d.stringLiteral(trait.name)} AS trait, ${d.stringLiteral(trait.rule)} AS rule,`,
    `  CAST(${c} AS ${d.types.string}) AS value, ${num} AS value_num, ${ts} AS value_ts,`,
    `  ${d.stringLiteral(candidate.source)} AS source, ${rank} AS source_rank, s.at, s.verified`,
    `FROM ${scan.name} AS s`,
    `WHERE ${c} IS NOT NULL`,
  ].join('\n');
}

function pivotColumns(d: Dialect, trait: SurvivorshipTrait): string[] {
  const q = (name: string) => d.quoteIdentifier(name);
  const is = `w.trait = ${d.stringLiteral(trait.name)}`;
  const value = {
    string: `MAX(CASE WHEN ${is} THEN w.value END)`,
    number: `MAX(CASE WHEN ${is} THEN w.value_num END)`,
    timestamp: `MAX(CASE WHEN ${is} THEN w.value_ts END)`,
    boolean: `CAST(MAX(CASE WHEN ${is} THEN w.value END) AS ${d.types.boolean})`,
  }[trait.type];
  return [
    `${value} AS ${q(trait.name)}`,
    `MAX(CASE WHEN ${is} THEN w.source END) AS ${q(`${trait.name}__source`)}`,
    `MAX(CASE WHEN ${is} THEN w.at END) AS ${q(`${trait.name}__at`)}`,
  ];
}

export function goldenRecordsTemplate(d: Dialect, traits: SurvivorshipTrait[], identity: IdentityRules): string {
  const scans = candidateScans(traits);
  const selects = traits.flatMap((trait) => trait.candidates.map((candidate) => candidateSelect(d, trait, candidate, scans.get(scanKey(candidate))!)));
  const columns = traits.flatMap((trait) => pivotColumns(d, trait));
  return `-- Generated from golden_record.yml by cdp: the golden record, one row per profile.
-- One scan per candidate source; every candidate of every trait in one long table, ranked once
-- per (profile, trait) by its rule.
WITH ${[...scans.values()].map((scan) => scanSql(d, scan, identity)).join(',\n')},
candidates AS (
${selects.join('\nUNION ALL\n')}
),
-- most_frequent and sum are decided by aggregation first, so only the rows that need it are
-- ranked: one row per value (with its count and latest sighting), or the sum itself.
frequent AS (
  SELECT c.profile_id, c.trait, c.rule, c.value, MAX(c.value_num) AS value_num, MAX(c.value_ts) AS value_ts,
    ${d.argMax('c.source', 'c.at')} AS source, 0 AS source_rank, MAX(c.at) AS at, ${d.boolOr('c.verified')} AS verified, COUNT(*) AS frequency
  FROM candidates AS c
  WHERE c.profile_id IS NOT NULL AND c.rule = 'most_frequent'
  GROUP BY c.profile_id, c.trait, c.rule, c.value
),
summed AS (
  SELECT c.profile_id, c.trait, CAST(NULL AS ${d.types.string}) AS value, SUM(c.value_num) AS value_num, CAST(NULL AS ${d.types.timestamp}) AS value_ts,
    ${d.argMax('c.source', 'c.at')} AS source, MAX(c.at) AS at
  FROM candidates AS c
  WHERE c.profile_id IS NOT NULL AND c.rule = 'sum'
  GROUP BY c.profile_id, c.trait
),
rankable AS (
  SELECT c.profile_id, c.trait, c.rule, c.value, c.value_num, c.value_ts, c.source, c.source_rank, c.at, c.verified, 0 AS frequency
  FROM candidates AS c
  WHERE c.profile_id IS NOT NULL AND c.rule NOT IN ('most_frequent', 'sum')
  UNION ALL
  SELECT * FROM frequent
),
ranked AS (
  SELECT c.*,
    ROW_NUMBER() OVER (
      PARTITION BY c.profile_id, c.trait
      ORDER BY
        CASE c.rule
          WHEN 'source_priority' THEN c.source_rank
          WHEN 'verified_first' THEN CASE WHEN c.verified THEN 0 ELSE 1 END
          WHEN 'most_frequent' THEN -c.frequency
          WHEN 'max' THEN -c.value_num
          WHEN 'min' THEN c.value_num
          ELSE 0
        END ASC NULLS LAST,
        CASE WHEN c.rule = 'max' THEN c.value_ts END DESC NULLS LAST,
        CASE WHEN c.rule = 'min' THEN c.value_ts END ASC NULLS LAST,
        CASE WHEN c.rule = 'first_seen' THEN c.at END ASC NULLS LAST,
        c.at DESC NULLS LAST,
        c.source, c.value
    ) AS rn
  FROM rankable AS c
),
winners AS (
  SELECT r.profile_id, r.trait, r.value, r.value_num, r.value_ts, r.source, r.at FROM ranked AS r WHERE r.rn = 1
  UNION ALL
  SELECT s.profile_id, s.trait, s.value, s.value_num, s.value_ts, s.source, s.at FROM summed AS s
)
SELECT p.profile_id${columns.map((c) => `,\n  ${c}`).join('')}
FROM {{ ref "identity_profiles" }} AS p
LEFT JOIN winners AS w ON w.profile_id = p.profile_id
GROUP BY p.profile_id
ORDER BY p.profile_id
`;
}
