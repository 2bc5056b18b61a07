import { normalizeSql } from '../identity/normalize.js';
import type { IdentityRules } from '../identity/rules.js';
import type { Dialect } from '../warehouse/dialect.js';
import { referenceTemplate } from './sql.js';
import type { SurvivorshipTrait, TraitCandidate } from './survivorship.js';

/**
 * The SQL of `golden_records` (docs/golden-record.md, "How it is computed").
 *
 * Every rule is a lexicographic order over candidate rows, e.g. most_recent is
 * (at DESC NULLS LAST, source, value). Ranking every (profile, trait, candidate) row with one
 * ROW_NUMBER was exact but slow: a window over candidates × traits rows keyed on strings. Here
 * the candidates stay one row per source row with one column per trait, and each order is
 * resolved by plain aggregates, one key at a time:
 *
 * 1. `keys`: one GROUP BY profile computing, per trait, the best level (priority rank,
 *    verified) and per source the latest (earliest) time at that level. Numeric aggregates only.
 * 2. `picks`: per trait, scalar logic over those columns: the winning level, time and source
 *    (ties in time go to the first source by name).
 * 3. `vals`: the candidates joined back to their profile's picks, one more GROUP BY: the value is
 *    the smallest among the rows at the winning (source, time, level), the last tie-break.
 *
 * Why not arg_max(value, key): the key would have to compose time, source and value, which needs
 * timestamps as integers the Dialect cannot portably give, and BigQuery's ARRAY_AGG form of it
 * fails on NULLs; MIN, MAX, CASE and GREATEST behave the same on every engine. `most_frequent`
 * ranks (profile, value) groups, a much shorter list than the rows, with the one ROW_NUMBER left.
 *
 * Profiles are numbered once (`profile_numbers`) and every join, GROUP BY and window after that is
 * keyed on the number: at 1M profiles, hashing and sorting 28-character profile_id strings cost
 * several times more than the numbering.
 */

/** Rules ordered by (level, time, source, value): their value is fetched from the winning rows. */
const AT_RULES = new Set(['most_recent', 'first_seen', 'source_priority', 'verified_first']);

interface Scan {
  name: string;
  first: TraitCandidate;
  /** The source columns read, in order; the scan exposes them as `value_1`, `value_2`, … */
  columns: string[];
  /** Per trait, the columns of its candidates that read this scan (usually one). */
  traitColumns: Map<string, string[]>;
}

/** Candidates that read the same rows the same way share one scan and one identity lookup. */
function scanKey(candidate: TraitCandidate): string {
  return JSON.stringify([candidate.from, candidate.identifier, candidate.timestampColumn, candidate.verified, candidate.source]);
}

function candidateScans(traits: SurvivorshipTrait[]): Scan[] {
  const scans = new Map<string, Scan>();
  for (const trait of traits) {
    for (const candidate of trait.candidates) {
      const key = scanKey(candidate);
      const scan = scans.get(key) ?? { name: `scan_${scans.size + 1}`, first: candidate, columns: [], traitColumns: new Map<string, string[]>() };
      if (!scan.columns.includes(candidate.column)) scan.columns.push(candidate.column);
      scan.traitColumns.set(trait.name, [...(scan.traitColumns.get(trait.name) ?? []), candidate.column]);
      scans.set(key, scan);
    }
  }
  return [...scans.values()];
}

/** What internal columns are named after: a trait, or the most_frequent groups. */
interface Named {
  name: string;
}

/** The generation context: the dialect, and sources numbered in name order (the tie-break order). */
class Plan {
  readonly sources: string[];

  constructor(readonly d: Dialect, readonly traits: SurvivorshipTrait[], readonly identity: IdentityRules) {
    // Source names are identifiers (ASCII), so JS order is every engine's binary string order.
    this.sources = [...new Set(traits.flatMap((t) => t.candidates.map((c) => c.source)))].sort();
  }

  ord(source: string): number {
    return this.sources.indexOf(source);
  }

  /** A source number as fixed-width text, so `key || value` orders by source, then value. */
  sourceKey(k: number): string {
    return String(k).padStart(this.sourceKeyWidth, '0');
  }

  get sourceKeyWidth(): number {
    return String(Math.max(this.sources.length - 1, 0)).length;
  }

  /** The source numbers a trait's candidates come from, ascending. */
  ords(trait: SurvivorshipTrait): number[] {
    return [...new Set(trait.candidates.map((c) => this.ord(c.source)))].sort((a, b) => a - b);
  }

  /** `alias."<name>__<suffix>"`: internal columns; trait names never contain `__`, so they never collide. */
  col(alias: string, owner: Named, suffix: string): string {
    return `${alias}.${this.as(owner, suffix)}`;
  }

  as(owner: Named, suffix: string): string {
    return this.d.quoteIdentifier(`${owner.name}__${suffix}`);
  }

  typedType(trait: SurvivorshipTrait): string | undefined {
    return trait.type === 'number' ? this.d.types.float : trait.type === 'timestamp' ? this.d.types.timestamp : undefined;
  }
}

/** Text of the value: the tie-break order and the value of string and boolean traits. */
function needsText(trait: SurvivorshipTrait): boolean {
  return AT_RULES.has(trait.rule) || trait.rule === 'most_frequent';
}

/** Whether the trait's rows are present in a `candidates` row (NULL values are never candidates). */
function presentSql(p: Plan, alias: string, trait: SurvivorshipTrait): string {
  return `${p.col(alias, trait, needsText(trait) ? 'v' : 't')} IS NOT NULL`;
}

/** A scan's name for one of its source columns: positional, so no source column name can collide with ours. */
function scanColumn(scan: Scan, column: string): string {
  return `value_${scan.columns.indexOf(column) + 1}`;
}

/**
 * One pass over a candidate source: its profile (one identity lookup per row), sighting time,
 * verification and columns. The row's own expressions (the verified condition) are evaluated over
 * the source row alone, before the lookup, so they can name any of its columns unambiguously.
 */
function scanSql(p: Plan, scan: Scan): string {
  const d = p.d;
  const id = scan.first.identifier;
  const type = p.identity.types.find((t) => t.name === id.type)!;
  const columns = scan.columns.map((c) => `src.${d.quoteIdentifier(c)} AS ${scanColumn(scan, c)}`);
  return [
    `${scan.name} AS (`,
    `  SELECT g.profile_no, ${scan.columns.map((c) => `s.${scanColumn(scan, c)}`).join(', ')}, s.sighted_at, s.verified`,
    '  FROM (',
    `    SELECT ${columns.join(', ')},`,
    `      CAST(src.${d.quoteIdentifier(scan.first.timestampColumn)} AS ${d.types.timestamp}) AS sighted_at,`,
    `      COALESCE(${scan.first.verified}, FALSE) AS verified,`,
    `      ${normalizeSql(d, type.normalizer, `src.${d.quoteIdentifier(id.column)}`)} AS identifier`,
    `    FROM ${referenceTemplate(scan.first.from)} AS src`,
    '  ) AS s',
    `  JOIN profile_identifiers AS g ON g.identifier_type = ${d.stringLiteral(type.name)} AND g.identifier_value = s.identifier`,
    ')',
  ].join('\n');
}

/**
 * The rows of a scan in the common layout: one row per source row (per candidate column when a
 * trait reads several columns of the same scan), one column per trait and what its rule needs.
 */
function branchSqls(p: Plan, scan: Scan): string[] {
  const d = p.d;
  const branches = Math.max(...[...scan.traitColumns.values()].map((c) => c.length));
  const source = scan.first.source;
  return Array.from({ length: branches }, (_, b) => {
    const columns = p.traits.flatMap((trait) => {
      const column = scan.traitColumns.get(trait.name)?.[b];
      const c = column === undefined ? undefined : `s.${scanColumn(scan, column)}`;
      const out: string[] = [];
      if (needsText(trait)) out.push(`${c ? `CAST(${c} AS ${d.types.string})` : `CAST(NULL AS ${d.types.string})`} AS ${p.as(trait, 'v')}`);
      const typed = p.typedType(trait);
      if (typed) out.push(`CAST(${c ?? 'NULL'} AS ${typed}) AS ${p.as(trait, 't')}`);
      if (trait.rule === 'source_priority') out.push(`${c ? trait.priority!.indexOf(source) : `CAST(NULL AS ${d.types.integer})`} AS ${p.as(trait, 'rank')}`);
      return out;
    });
    return [
      `SELECT s.profile_no, ${p.ord(source)} AS sord, ${d.stringLiteral(p.sourceKey(p.ord(source)))} AS skey, s.sighted_at, s.verified,`,
      `  ${columns.join(',\n  ')}`,
      `FROM ${scan.name} AS s`,
    ].join('\n');
  });
}

/**
 * A level of a rule: the rows satisfying `cond`, ordered by time (`MAX`: latest first) then
 * source. Aggregates: the first source with a row at this level (`src<sfx>`), and per source its
 * latest (earliest) time there (`at<sfx>_<k>`; one `at<sfx>` when the trait has one source).
 */
interface Level {
  suffix: string;
  /** The rows of the level; '' for every row. */
  cond: string;
  agg: 'MAX' | 'MIN';
}

function levelAggregates(p: Plan, alias: string, owner: Named, level: Level, ords: number[], withSource = true): string[] {
  const at = `${alias}.sighted_at`;
  const sord = `${alias}.sord`;
  const when = (conditions: string[], value: string) => {
    const c = conditions.filter((x) => x !== '');
    return c.length === 0 ? value : `CASE WHEN ${c.join(' AND ')} THEN ${value} END`;
  };
  const aggs = withSource ? [`MIN(${when([level.cond], sord)}) AS ${p.as(owner, `src${level.suffix}`)}`] : [];
  if (ords.length === 1) aggs.push(`${level.agg}(${when([level.cond], at)}) AS ${p.as(owner, `at${level.suffix}`)}`);
  else for (const k of ords) aggs.push(`${level.agg}(${when([level.cond, `${sord} = ${k}`], at)}) AS ${p.as(owner, `at${level.suffix}_${k}`)}`);
  return aggs;
}

/**
 * The winner of a level from its aggregates: the best time (NULL only when every row at the
 * level is undated), and the first source, by name, that has it; with no dated row, the first
 * source with any row. GREATEST/LEAST get no NULL argument (engines disagree on those).
 */
function levelPick(p: Plan, alias: string, owner: Named, level: Level, ords: number[]): { sord: string; at: string } {
  const src = p.col(alias, owner, `src${level.suffix}`);
  if (ords.length === 1) return { sord: src, at: p.col(alias, owner, `at${level.suffix}`) };
  const ats = ords.map((k) => p.col(alias, owner, `at${level.suffix}_${k}`));
  const best = `${level.agg === 'MAX' ? 'GREATEST' : 'LEAST'}(${ats.map((a, i) => `COALESCE(${[a, ...ats.filter((_, j) => j !== i)].join(', ')})`).join(', ')})`;
  return { sord: `CASE ${ats.map((a, i) => `WHEN ${a} = ${best} THEN ${ords[i]}`).join(' ')} ELSE ${src} END`, at: best };
}

function levels(p: Plan, alias: string, trait: SurvivorshipTrait): Level[] {
  const present = presentSql(p, alias, trait);
  switch (trait.rule) {
    case 'verified_first':
      return [
        { suffix: 'v', cond: `${present} AND ${alias}.verified`, agg: 'MAX' },
        { suffix: 'u', cond: `${present} AND NOT ${alias}.verified`, agg: 'MAX' },
      ];
    case 'first_seen':
      return [{ suffix: '', cond: present, agg: 'MIN' }];
    default:
      return [{ suffix: '', cond: present, agg: 'MAX' }];
  }
}

/** Pass 1, per trait: numeric aggregates that decide the winning level, time and source. */
function keyAggregates(p: Plan, trait: SurvivorshipTrait): string[] {
  const ords = p.ords(trait);
  const present = presentSql(p, 'c', trait);
  if (composed(p, trait)) {
    return levels(p, 'c', trait).flatMap((level) => [
      // verified_first: whether the verified level has a row at all (its rows may all be undated).
      ...(level.suffix === 'v' ? [`MIN(CASE WHEN ${level.cond} THEN c.sord END) AS ${p.as(trait, 'srcv')}`] : []),
      `${level.agg}(CASE WHEN ${level.cond} THEN c.sighted_at END) AS ${p.as(trait, `at${level.suffix}`)}`,
    ]);
  }
  switch (trait.rule) {
    case 'most_recent':
    case 'first_seen':
    case 'verified_first':
      return levels(p, 'c', trait).flatMap((level) => levelAggregates(p, 'c', trait, level, ords));
    case 'source_priority':
      // The best rank names one source; its latest time comes from the per-source times.
      return [`MIN(CASE WHEN ${present} THEN ${p.col('c', trait, 'rank')} END) AS ${p.as(trait, 'rank')}`, ...levelAggregates(p, 'c', trait, levels(p, 'c', trait)[0]!, ords, false)];
    case 'sum':
      return [`SUM(${p.col('c', trait, 't')}) AS ${p.as(trait, 'sum')}`, ...levelAggregates(p, 'c', trait, levels(p, 'c', trait)[0]!, ords)];
    case 'max':
    case 'min':
      return [`${trait.rule.toUpperCase()}(${p.col('c', trait, 't')}) AS ${p.as(trait, 'best')}`];
    case 'most_frequent':
      return [];
  }
}

/** Pass 2 (`picks`), per trait: the winning source number, time and level, as scalars. */
function pickColumns(p: Plan, trait: SurvivorshipTrait): string[] {
  const ords = p.ords(trait);
  const q = (suffix: string) => p.as(trait, suffix);
  if (composed(p, trait)) {
    if (trait.rule !== 'verified_first') return [`${p.col('k', trait, 'at')} AS ${q('at')}`];
    const hasVerified = `${p.col('k', trait, 'srcv')} IS NOT NULL`;
    return [
      `CASE WHEN ${hasVerified} THEN ${p.col('k', trait, 'atv')} ELSE ${p.col('k', trait, 'atu')} END AS ${q('at')}`,
      `CASE WHEN ${hasVerified} THEN TRUE ELSE FALSE END AS ${q('lvl')}`,
    ];
  }
  switch (trait.rule) {
    case 'most_recent':
    case 'first_seen':
    case 'sum': {
      const pick = levelPick(p, 'k', trait, levels(p, 'k', trait)[0]!, ords);
      return [`${pick.sord} AS ${q('sord')}`, `${pick.at} AS ${q('at')}`, ...(trait.rule === 'sum' ? [`${p.col('k', trait, 'sum')} AS ${q('sum')}`] : [])];
    }
    case 'verified_first': {
      const [verified, unverified] = levels(p, 'k', trait).map((level) => levelPick(p, 'k', trait, level, ords)) as [{ sord: string; at: string }, { sord: string; at: string }];
      const hasVerified = `${p.col('k', trait, 'srcv')} IS NOT NULL`;
      return [
        `CASE WHEN ${hasVerified} THEN ${verified.sord} ELSE ${unverified.sord} END AS ${q('sord')}`,
        `CASE WHEN ${hasVerified} THEN ${verified.at} ELSE ${unverified.at} END AS ${q('at')}`,
        `CASE WHEN ${hasVerified} THEN TRUE WHEN ${p.col('k', trait, 'srcu')} IS NOT NULL THEN FALSE END AS ${q('lvl')}`,
      ];
    }
    case 'source_priority': {
      const rank = p.col('k', trait, 'rank');
      const ranked = trait.priority!.map((source, r) => ({ r, k: p.ord(source) })).filter(({ k }) => ords.includes(k));
      const at = ords.length === 1 ? p.col('k', trait, 'at') : `CASE ${rank} ${ranked.map(({ r, k }) => `WHEN ${r} THEN ${p.col('k', trait, `at_${k}`)}`).join(' ')} END`;
      return [`CASE ${rank} ${ranked.map(({ r, k }) => `WHEN ${r} THEN ${k}`).join(' ')} END AS ${q('sord')}`, `${at} AS ${q('at')}`];
    }
    case 'max':
    case 'min':
      return [`${p.col('k', trait, 'best')} AS ${q('best')}`];
    case 'most_frequent':
      return [];
  }
}

/** Pass 3 (`vals`), per trait: aggregates over the candidate rows that match the picks. */
function valueAggregates(p: Plan, trait: SurvivorshipTrait): string[] {
  if (composed(p, trait)) {
    const match = [`c.sighted_at IS NOT DISTINCT FROM ${p.col('p', trait, 'at')}`];
    if (trait.rule === 'verified_first') match.push(`c.verified = ${p.col('p', trait, 'lvl')}`);
    return [`MIN(CASE WHEN ${match.join(' AND ')} THEN c.skey || ${p.col('c', trait, 'v')} END) AS ${p.as(trait, 'sv')}`];
  }
  if (AT_RULES.has(trait.rule)) {
    const match = [`c.sord = ${p.col('p', trait, 'sord')}`, `c.sighted_at IS NOT DISTINCT FROM ${p.col('p', trait, 'at')}`];
    if (trait.rule === 'verified_first') match.push(`c.verified = ${p.col('p', trait, 'lvl')}`);
    const when = (value: string) => `CASE WHEN ${match.join(' AND ')} THEN ${value} END`;
    const aggs = [`MIN(${when(p.col('c', trait, 'v'))}) AS ${p.as(trait, 'v')}`];
    if (p.typedType(trait)) {
      aggs.push(`MIN(${when(p.col('c', trait, 't'))}) AS ${p.as(trait, 'tmin')}`, `MAX(${when(p.col('c', trait, 't'))}) AS ${p.as(trait, 'tmax')}`);
    }
    return aggs;
  }
  if (trait.rule === 'max' || trait.rule === 'min') {
    // Rows holding the best value; among them the most recent, then the first source.
    const level: Level = { suffix: '', cond: `${p.col('c', trait, 't')} = ${p.col('p', trait, 'best')}`, agg: 'MAX' };
    return levelAggregates(p, 'c', trait, level, p.ords(trait));
  }
  return [];
}

/**
 * Text-valued most_recent, first_seen and verified_first: `keys` only finds the best time per
 * level, and `vals` takes MIN(source key || value) over the rows at that time, which is the
 * winner's source and value at once (source, then value: the last two tie-breaks). Typed traits
 * keep a per-source time in `keys`, so their typed value is read from the winning source's rows.
 */
function composed(p: Plan, trait: SurvivorshipTrait): boolean {
  return (trait.rule === 'most_recent' || trait.rule === 'first_seen' || trait.rule === 'verified_first') && !p.typedType(trait);
}

function needsValues(trait: SurvivorshipTrait): boolean {
  return AT_RULES.has(trait.rule) || trait.rule === 'max' || trait.rule === 'min';
}

/** most_frequent: one row per (profile, trait, value) with its count and latest sighting, ranked. */
function frequentCtes(p: Plan, traits: SurvivorshipTrait[]): string[] {
  const ords = [...new Set(traits.flatMap((t) => p.ords(t)))].sort((a, b) => a - b);
  // Typed values ride along only when some trait is of that type (the text decides the group).
  const typed = (['number', 'timestamp'] as const).filter((type) => traits.some((t) => t.type === type)).map((type) => ({ type, name: type === 'number' ? 'value_num' : 'value_ts' }));
  const values = traits.map((trait, i) => [
    `SELECT c.profile_no, ${i} AS trait_no, ${p.col('c', trait, 'v')} AS value,${typed.map(({ type, name }) => ` ${trait.type === type ? p.col('c', trait, 't') : `CAST(NULL AS ${p.typedType({ ...trait, type })!})`} AS ${name},`).join('')}`,
    `  c.sord, c.sighted_at`,
    `FROM candidates AS c`,
    `WHERE ${p.col('c', trait, 'v')} IS NOT NULL`,
  ].join('\n'));
  // The group's provenance is its most recent row (then the first source): a level over all rows.
  const group: Named = { name: 'group' };
  const level: Level = { suffix: '', cond: '', agg: 'MAX' };
  const pick = levelPick(p, 'g', group, level, ords);
  const pivot = traits.flatMap((trait, i) => {
    const is = `f.trait_no = ${i}`;
    const value = { string: `MAX(CASE WHEN ${is} THEN f.value END)`, number: `MAX(CASE WHEN ${is} THEN f.value_num END)`, timestamp: `MAX(CASE WHEN ${is} THEN f.value_ts END)`, boolean: `MAX(CASE WHEN ${is} THEN f.value END)` }[trait.type];
    return [`${value} AS ${p.as(trait, 'v')}`, `MAX(CASE WHEN ${is} THEN f.sord END) AS ${p.as(trait, 'sord')}`, `MAX(CASE WHEN ${is} THEN f.sighted_at END) AS ${p.as(trait, 'at')}`];
  });
  return [
    `frequent_values AS (\n${values.join('\nUNION ALL\n')}\n)`,
    [
      'frequent_groups AS (',
      `  SELECT v.profile_no, v.trait_no, v.value,${typed.map(({ name }) => ` MAX(v.${name}) AS ${name},`).join('')} COUNT(*) AS frequency,`,
      `    ${levelAggregates(p, 'v', group, level, ords).join(',\n    ')}`,
      '  FROM frequent_values AS v',
      '  GROUP BY v.profile_no, v.trait_no, v.value',
      ')',
    ].join('\n'),
    [
      'frequent_picked AS (',
      `  SELECT g.profile_no, g.trait_no, g.value,${typed.map(({ name }) => ` g.${name},`).join('')} g.frequency, ${pick.sord} AS sord, ${pick.at} AS sighted_at`,
      '  FROM frequent_groups AS g',
      ')',
    ].join('\n'),
    [
      'frequent_ranked AS (',
      '  SELECT f.*, ROW_NUMBER() OVER (PARTITION BY f.profile_no, f.trait_no ORDER BY f.frequency DESC, f.sighted_at DESC NULLS LAST, f.sord, f.value) AS rn',
      '  FROM frequent_picked AS f',
      ')',
    ].join('\n'),
    [
      'frequent AS (',
      `  SELECT f.profile_no,\n    ${pivot.join(',\n    ')}`,
      '  FROM frequent_ranked AS f',
      '  WHERE f.rn = 1',
      '  GROUP BY f.profile_no',
      ')',
    ].join('\n'),
  ];
}

/** The source name of a source number. */
function sourceNameSql(p: Plan, trait: SurvivorshipTrait, sord: string): string {
  return `CASE ${sord} ${p.ords(trait).map((k) => `WHEN ${k} THEN ${p.d.stringLiteral(p.sources[k]!)}`).join(' ')} END`;
}

/** The three golden_records columns of a trait: value, `__source`, `__at`. */
function outputColumns(p: Plan, trait: SurvivorshipTrait): string[] {
  const d = p.d;
  const q = (name: string) => d.quoteIdentifier(name);
  let value: string;
  let sord: string;
  let at: string;
  if (composed(p, trait)) {
    const keyed = p.col('v', trait, 'sv');
    const width = p.sourceKeyWidth;
    const text = `SUBSTR(${keyed}, ${width + 1})`;
    value = trait.type === 'boolean' ? `CAST(${text} AS ${d.types.boolean})` : text;
    sord = `CAST(SUBSTR(${keyed}, 1, ${width}) AS ${d.types.integer})`;
    at = p.col('k', trait, 'at');
  } else if (AT_RULES.has(trait.rule)) {
    const text = p.col('v', trait, 'v');
    const typed = p.typedType(trait);
    // Tied rows (same source and time) almost always hold one value; when they differ, the
    // smallest text wins and is the value.
    value = typed
      ? `CASE WHEN ${p.col('v', trait, 'tmin')} = ${p.col('v', trait, 'tmax')} THEN ${p.col('v', trait, 'tmin')} ELSE CAST(${text} AS ${typed}) END`
      : trait.type === 'boolean' ? `CAST(${text} AS ${d.types.boolean})` : text;
    sord = p.col('k', trait, 'sord');
    at = p.col('k', trait, 'at');
  } else if (trait.rule === 'sum') {
    value = p.col('k', trait, 'sum');
    sord = p.col('k', trait, 'sord');
    at = p.col('k', trait, 'at');
  } else if (trait.rule === 'max' || trait.rule === 'min') {
    const pick = levelPick(p, 'v', trait, { suffix: '', cond: '', agg: 'MAX' }, p.ords(trait));
    value = p.col('k', trait, 'best');
    sord = pick.sord;
    at = pick.at;
  } else {
    const text = p.col('f', trait, 'v');
    value = trait.type === 'boolean' ? `CAST(${text} AS ${d.types.boolean})` : text;
    sord = p.col('f', trait, 'sord');
    at = p.col('f', trait, 'at');
  }
  return [`${value} AS ${q(trait.name)}`, `${sourceNameSql(p, trait, sord)} AS ${q(`${trait.name}__source`)}`, `${at} AS ${q(`${trait.name}__at`)}`];
}

export function goldenRecordsTemplate(d: Dialect, traits: SurvivorshipTrait[], identity: IdentityRules): string {
  const p = new Plan(d, traits, identity);
  const scans = candidateScans(traits);
  const keyed = traits.filter((t) => t.rule !== 'most_frequent');
  const valued = traits.filter(needsValues);
  const frequent = traits.filter((t) => t.rule === 'most_frequent');
  const types = [...new Set(scans.map((scan) => scan.first.identifier.type))];
  const ctes = [
    // Profiles are numbered once: every later join, GROUP BY and window is keyed on an integer
    // instead of a profile_id string. ORDER BY makes the numbering the same on every evaluation.
    `profile_numbers AS (\n  SELECT p.profile_id, ROW_NUMBER() OVER (ORDER BY p.profile_id) AS profile_no\n  FROM {{ ref "identity_profiles" }} AS p\n)`,
    [
      'profile_identifiers AS (',
      '  SELECT g.identifier_type, g.identifier_value, n.profile_no',
      '  FROM {{ ref "identity_graph" }} AS g',
      '  JOIN profile_numbers AS n ON n.profile_id = g.profile_id',
      `  WHERE g.identifier_type IN (${types.map((t) => d.stringLiteral(t)).join(', ')})`,
      ')',
    ].join('\n'),
    ...scans.map((scan) => scanSql(p, scan)),
    `candidates AS (\n${scans.flatMap((scan) => branchSqls(p, scan)).join('\nUNION ALL\n')}\n)`,
  ];
  const joins: string[] = [];
  if (keyed.length > 0) {
    ctes.push(
      `keys AS (\n  SELECT c.profile_no,\n    ${keyed.flatMap((t) => keyAggregates(p, t)).join(',\n    ')}\n  FROM candidates AS c\n  GROUP BY c.profile_no\n)`,
      `picks AS (\n  SELECT k.profile_no,\n    ${keyed.flatMap((t) => pickColumns(p, t)).join(',\n    ')}\n  FROM keys AS k\n)`,
    );
    joins.push('LEFT JOIN picks AS k ON k.profile_no = p.profile_no');
  }
  if (valued.length > 0) {
    ctes.push(`vals AS (\n  SELECT c.profile_no,\n    ${valued.flatMap((t) => valueAggregates(p, t)).join(',\n    ')}\n  FROM candidates AS c\n  JOIN picks AS p ON p.profile_no = c.profile_no\n  GROUP BY c.profile_no\n)`);
    joins.push('LEFT JOIN vals AS v ON v.profile_no = p.profile_no');
  }
  if (frequent.length > 0) {
    ctes.push(...frequentCtes(p, frequent));
    joins.push('LEFT JOIN frequent AS f ON f.profile_no = p.profile_no');
  }
  return `-- Generated from golden_record.yml by cdp: the golden record, one row per profile.
-- One scan per candidate source, one row per source row with a column per trait; each rule's
-- order (level, time, source, value) is resolved by aggregates: keys, picks, then vals. No
-- ORDER BY: a table has no order, and sorting every column of every profile is not free.
WITH ${ctes.join(',\n')}
SELECT p.profile_id${traits.flatMap((t) => outputColumns(p, t)).map((c) => `,\n  ${c}`).join('')}
FROM profile_numbers AS p
${joins.join('\n')}
`;
}
