import type { SourceLocation } from '../errors.js';
import { didYouMean } from '../compile/suggest.js';
import type { YamlValue } from '../project/yaml-reader.js';
import { checkEventNames } from '../profiles/rules.js';
import type { Dialect } from '../warehouse/dialect.js';

/**
 * The audience condition language (docs/audiences.md): YAML → a typed AST (`kind` tags) →
 * SQL over one profile row `t` of `profile_traits`. Every rejection names the file and the key.
 */

export type TraitType = 'number' | 'timestamp' | 'string' | 'boolean';

/** A column an audience may test, and where it lives. Extensible: today only `profile_traits`. */
export interface TraitInfo {
  name: string;
  type: TraitType;
  /** The model that holds the column (`profile_traits`). */
  model: string;
}

export type TraitCatalog = ReadonlyMap<string, TraitInfo>;

export const COMPARISONS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte'] as const;
export type Comparison = (typeof COMPARISONS)[number];
const TRAIT_OPERATORS = [...COMPARISONS, 'in', 'between', 'is_null', 'within_days'] as const;
const CONDITION_KEYS = ['trait', 'event', 'not', 'all', 'any'] as const;

export type Literal = string | number | boolean;

export type Condition =
  | { kind: 'compare'; trait: string; op: Comparison; value: Literal; at: SourceLocation }
  | { kind: 'in'; trait: string; values: Literal[]; at: SourceLocation }
  | { kind: 'between'; trait: string; low: Literal; high: Literal; at: SourceLocation }
  | { kind: 'is_null'; trait: string; isNull: boolean; at: SourceLocation }
  /** A timestamp trait within the last N days before as_of. */
  | { kind: 'trait_within'; trait: string; days: number; at: SourceLocation }
  /** Some event of these names (in the window, when given), optionally not followed by others. */
  | { kind: 'event'; events: string[]; withinDays?: number; notFollowedBy?: { events: string[]; withinHours: number }; at: SourceLocation }
  | { kind: 'not'; condition: Condition; at: SourceLocation }
  | { kind: 'all'; conditions: Condition[]; at: SourceLocation }
  | { kind: 'any'; conditions: Condition[]; at: SourceLocation };

function located(node: YamlValue): SourceLocation {
  return { file: node.file, line: node.line, key: node.key };
}

const SQL_OPERATORS: Record<Comparison, string> = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' };

// ---------------------------------------------------------------------------------------------
// Parsing

/** `eventNames`: the names the timeline can hold, when known; `{event: x}` must use one of them. */
export function parseCondition(node: YamlValue, traits: TraitCatalog, eventNames?: readonly string[]): Condition {
  if (!node.isMap()) throw node.error('audience-condition', `\`${node.key}\` must be a condition: a mapping such as {trait: x, gte: 3}, {event: x, within_days: 7}, {not: ...}, {all: [...]} or {any: [...]}`);
  const keys = node.keys();
  const head = keys.filter((k) => (CONDITION_KEYS as readonly string[]).includes(k));
  if (head.length !== 1) {
    const unknown = keys.find((k) => !(CONDITION_KEYS as readonly string[]).includes(k) && !(TRAIT_OPERATORS as readonly string[]).includes(k));
    if (unknown !== undefined) throw unknownOperator(node.child(unknown), [...CONDITION_KEYS]);
    throw node.error('audience-condition', `\`${node.key}\` needs exactly one of ${CONDITION_KEYS.map((k) => `\`${k}\``).join(', ')}; got ${head.length === 0 ? 'none' : head.map((k) => `\`${k}\``).join(', ')}`);
  }
  switch (head[0]) {
    case 'trait':
      return parseTraitCondition(node, traits);
    case 'event':
      return parseEventCondition(node, eventNames);
    case 'not':
      onlyKeys(node, ['not']);
      return { kind: 'not', condition: parseCondition(node.child('not'), traits, eventNames), at: located(node) };
    default: {
      const kind = head[0] as 'all' | 'any';
      onlyKeys(node, [kind]);
      const list = node.child(kind);
      if (!list.isList() || list.items().length === 0) throw list.error('audience-condition', `\`${list.key}\` must be a non-empty list of conditions`);
      return { kind, conditions: list.items().map((item) => parseCondition(item, traits, eventNames)), at: located(node) };
    }
  }
}

function unknownOperator(where: YamlValue, allowed: readonly string[]) {
  const name = String(where.path[where.path.length - 1]);
  const hint = didYouMean(name, allowed);
  return where.error('unknown-operator', `Unknown operator \`${name}\``, `${hint ? `${hint} ` : ''}Allowed here: ${allowed.join(', ')}.`.trim());
}

function onlyKeys(node: YamlValue, allowed: readonly string[]): void {
  for (const key of node.keys()) if (!allowed.includes(key)) throw unknownOperator(node.child(key), allowed);
}

function parseTraitCondition(node: YamlValue, traits: TraitCatalog): Condition {
  onlyKeys(node, ['trait', ...TRAIT_OPERATORS]);
  const traitNode = node.child('trait');
  const name = traitNode.string();
  const trait = traits.get(name);
  if (!trait) {
    const hint = didYouMean(name, traits.keys());
    throw traitNode.error('unknown-trait', `\`${traitNode.key}\`: unknown trait \`${name}\``, `${hint ? `${hint} ` : ''}Traits: ${[...traits.keys()].join(', ') || '(none: add computed_traits to golden_record.yml)'}.`);
  }
  const ops = node.keys().filter((k) => k !== 'trait');
  if (ops.length !== 1) {
    throw node.error('audience-condition', `\`${node.key}\` on trait \`${name}\` needs exactly one operator (${TRAIT_OPERATORS.join(', ')}); got ${ops.length === 0 ? 'none' : ops.join(', ')}`);
  }
  const op = ops[0]!;
  const operand = node.child(op);
  const at = located(node);
  if ((COMPARISONS as readonly string[]).includes(op)) {
    return { kind: 'compare', trait: name, op: op as Comparison, value: literalFor(operand, trait), at };
  }
  switch (op) {
    case 'in': {
      if (!operand.isList() || operand.items().length === 0) throw operand.error('audience-condition', `\`${operand.key}\` must be a non-empty list of values`);
      return { kind: 'in', trait: name, values: operand.items().map((item) => literalFor(item, trait)), at };
    }
    case 'between': {
      if (!operand.isList() || operand.items().length !== 2) throw operand.error('audience-condition', `\`${operand.key}\` must be a list of two values: [low, high]`);
      return { kind: 'between', trait: name, low: literalFor(operand.child(0), trait), high: literalFor(operand.child(1), trait), at };
    }
    case 'is_null':
      return { kind: 'is_null', trait: name, isNull: operand.boolean(true), at };
    default: {
      if (trait.type !== 'timestamp') throw typeMismatch(operand, trait, 'a timestamp trait (within_days tests a time)');
      return { kind: 'trait_within', trait: name, days: operand.integer(0, 1), at };
    }
  }
}

function typeMismatch(operand: YamlValue, trait: TraitInfo, expected: string) {
  return operand.error('type-mismatch', `\`${operand.key}\`: ${JSON.stringify(operand.value)} does not fit trait \`${trait.name}\` (${trait.type}); expected ${expected}`);
}

/** A YAML scalar checked against the trait's type. */
function literalFor(operand: YamlValue, trait: TraitInfo): Literal {
  const value = operand.value;
  switch (trait.type) {
    case 'number':
      if (typeof value === 'number' && Number.isFinite(value)) return value;
      throw typeMismatch(operand, trait, 'a number');
    case 'boolean':
      if (typeof value === 'boolean') return value;
      throw typeMismatch(operand, trait, 'true or false');
    case 'timestamp': {
      const text = value instanceof Date ? value.toISOString() : value;
      if (typeof text === 'string' && /^\d{4}-\d\d-\d\d([ T]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z)?$/.test(text) && !Number.isNaN(Date.parse(text))) {
        return text.replace('T', ' ').replace(/(\.000)?Z$/, '');
      }
      throw typeMismatch(operand, trait, "a date or timestamp such as '2026-11-01' or '2026-11-01 10:00:00'");
    }
    case 'string':
      if (typeof value === 'string') return value;
      throw typeMismatch(operand, trait, 'a string');
  }
}

function eventList(node: YamlValue, known: readonly string[] | undefined): string[] {
  const names = node.stringList();
  if (names.length === 0) throw node.error('audience-condition', `\`${node.key}\` must name an event or a list of events`);
  if (known) checkEventNames(node, known);
  return names;
}

function parseEventCondition(node: YamlValue, known: readonly string[] | undefined): Condition {
  onlyKeys(node, ['event', 'within_days', 'not_followed_by']);
  const within = node.child('within_days');
  const after = node.child('not_followed_by');
  let notFollowedBy: { events: string[]; withinHours: number } | undefined;
  if (after.exists) {
    if (!after.isMap()) throw after.error('audience-condition', `\`${after.key}\` must be {event: name(s), within_hours: N}`);
    onlyKeys(after, ['event', 'within_hours']);
    if (!after.child('within_hours').exists) throw after.error('missing-key', `Missing required key \`${after.key}.within_hours\``);
    notFollowedBy = { events: eventList(after.child('event'), known), withinHours: after.child('within_hours').integer(0, 1) };
  }
  return {
    kind: 'event',
    events: eventList(node.child('event'), known),
    withinDays: within.exists ? within.integer(0, 1) : undefined,
    notFollowedBy,
    at: located(node),
  };
}

// ---------------------------------------------------------------------------------------------
// SQL

export interface ConditionSqlContext {
  dialect: Dialect;
  /** SQL for "now": the audience's as_of, or the current timestamp. */
  asOf: string;
  /** How the SQL names the event timeline, e.g. `{{ ref "profile_events" }}`. */
  eventsRelation: string;
  /** The alias of the profile row the condition tests. */
  alias: string;
}

function literalSql(ctx: ConditionSqlContext, value: Literal, type: TraitType | undefined): string {
  if (type === 'timestamp') return `CAST(${ctx.dialect.stringLiteral(String(value))} AS ${ctx.dialect.types.timestamp})`;
  return ctx.dialect.literal(value);
}

export function conditionSql(condition: Condition, ctx: ConditionSqlContext, traits: TraitCatalog, indent = ''): string {
  const d = ctx.dialect;
  const column = (trait: string) => `${ctx.alias}.${d.quoteIdentifier(trait)}`;
  const typeOf = (trait: string) => traits.get(trait)?.type;
  switch (condition.kind) {
    case 'compare':
      return `${column(condition.trait)} ${SQL_OPERATORS[condition.op]} ${literalSql(ctx, condition.value, typeOf(condition.trait))}`;
    case 'in':
      return `${column(condition.trait)} IN (${condition.values.map((v) => literalSql(ctx, v, typeOf(condition.trait))).join(', ')})`;
    case 'between':
      return `${column(condition.trait)} BETWEEN ${literalSql(ctx, condition.low, typeOf(condition.trait))} AND ${literalSql(ctx, condition.high, typeOf(condition.trait))}`;
    case 'is_null':
      return `${column(condition.trait)} IS ${condition.isNull ? '' : 'NOT '}NULL`;
    case 'trait_within':
      return `${column(condition.trait)} >= ${d.dateAdd(ctx.asOf, -condition.days, 'day')} AND ${column(condition.trait)} <= ${ctx.asOf}`;
    case 'event':
      return eventSql(condition, ctx, indent);
    case 'not':
      // A comparison on a NULL trait is NULL, and NOT NULL is NULL: without the COALESCE a profile
      // missing the trait would fail both a condition and its negation. Conditions are two-valued.
      return `NOT COALESCE(${conditionSql(condition.condition, ctx, traits, indent)}, ${d.literal(false)})`;
    case 'all':
    case 'any': {
      const joiner = condition.kind === 'all' ? 'AND' : 'OR';
      const inner = `${indent}  `;
      const parts = condition.conditions.map((c) => {
        const text = conditionSql(c, ctx, traits, inner);
        return c.kind === 'all' || c.kind === 'any' ? text : `(${text})`;
      });
      return `(\n${inner}${parts.join(`\n${inner}${joiner} `)}\n${indent})`;
    }
  }
}

function namesSql(d: Dialect, names: string[]): string {
  return names.length === 1 ? `= ${d.stringLiteral(names[0]!)}` : `IN (${names.map((n) => d.stringLiteral(n)).join(', ')})`;
}

function eventSql(condition: Extract<Condition, { kind: 'event' }>, ctx: ConditionSqlContext, indent: string): string {
  const d = ctx.dialect;
  const lines = [
    `EXISTS (`,
    `  SELECT 1 FROM ${ctx.eventsRelation} AS e`,
    `  WHERE e.profile_id = ${ctx.alias}.profile_id AND e.event_name ${namesSql(d, condition.events)}`,
  ];
  if (condition.withinDays !== undefined) {
    lines.push(`    AND e.occurred_at >= ${d.dateAdd(ctx.asOf, -condition.withinDays, 'day')} AND e.occurred_at <= ${ctx.asOf}`);
  }
  if (condition.notFollowedBy) {
    const after = condition.notFollowedBy;
    lines.push(
      `    AND NOT EXISTS (`,
      `      SELECT 1 FROM ${ctx.eventsRelation} AS f`,
      `      WHERE f.profile_id = e.profile_id AND f.event_name ${namesSql(d, after.events)}`,
      `        AND f.occurred_at >= e.occurred_at AND f.occurred_at <= ${d.dateAdd('e.occurred_at', after.withinHours, 'hour')}`,
      `    )`,
    );
  }
  lines.push(`)`);
  return lines.join(`\n${indent}`);
}

/** Traits a condition reads, in first-use order: the audience node selects them beside profile_id. */
export function traitsUsed(condition: Condition): string[] {
  const seen = new Set<string>();
  const walk = (c: Condition): void => {
    switch (c.kind) {
      case 'not':
        return walk(c.condition);
      case 'all':
      case 'any':
        return c.conditions.forEach(walk);
      case 'event':
        return;
      default:
        seen.add(c.trait);
    }
  };
  walk(condition);
  return [...seen];
}
