import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Dag } from '../compile/graph.js';
import type { Relation } from '../compile/node.js';
import { didYouMean } from '../compile/suggest.js';
import { CdpError, ProblemsError } from '../errors.js';
import { YamlValue } from '../project/yaml-reader.js';
import { ON_REMOVE, SYNC_MODES, type DestinationType, type OnRemove, type SyncMode } from '../destinations/destination.js';
import { destinationType, destinationTypeNames } from '../destinations/registry.js';
import { checkConsentScopes, declaredConsentScopes } from '../profiles/rules.js';

/** Destination contracts: `destinations/*.yml` at the project root (docs/destinations.md). */
export const DESTINATIONS_DIR = 'destinations';

export const FIELD_TYPES = ['string', 'number', 'integer', 'boolean'] as const;
export type FieldType = (typeof FIELD_TYPES)[number];
/** `sha256` hashes the trimmed, lower-cased value; `token` is the keyed HMAC of it (docs/privacy.md). */
export const TRANSFORMS = ['trim', 'lower', 'sha256', 'token'] as const;
export type Transform = (typeof TRANSFORMS)[number];

export interface MappedField {
  /** The field name at the destination. */
  target: string;
  /** The model column it is read from. */
  column: string;
  type?: FieldType;
  transforms: Transform[];
}

export interface Contract {
  file: string;
  name: string;
  description: string;
  /** The model it reads, and its relation in the warehouse. */
  model: string;
  relation: Relation;
  type: string;
  connector: DestinationType;
  object: string;
  primaryKey: string;
  /** Sorted by target field: the canonical order the payload hash is computed in. */
  mapping: MappedField[];
  mode: SyncMode;
  onRemove: OnRemove;
  /** `max_removes`: the most rows that may leave the model in one sync (mass-remove guard). */
  maxRemoves?: RemoveLimit;
  batchSize: number;
  consent: string[];
  /** `consent_state` relation, when `consent` is not empty. */
  consentRelation?: Relation;
  options: Record<string, unknown>;
  delivery: DeliveryPolicy;
  /** Whether a field is mapped through `token`: the plan then needs the privacy key. */
  usesToken: boolean;
  /** Fingerprint of the mapping: a run records it, so the plan can say when a change re-sends everything. */
  mappingHash: string;
}

/** `delivery:` in a contract: retries, parallelism, rate limit and quarantine (docs/destinations.md). */
export interface DeliveryPolicy {
  /** Attempts per batch call, the first included (retries on 429, 5xx, network errors). */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Batches in flight at once. */
  concurrency: number;
  /** Batch calls per second (a token bucket), when set. */
  rateLimitPerSecond?: number;
  /** A record rejected in this many separate runs (same payload) is quarantined; unset: never. */
  quarantineAfter?: number;
}

export const DEFAULT_DELIVERY: DeliveryPolicy = { maxAttempts: 5, initialBackoffMs: 500, maxBackoffMs: 30_000, concurrency: 1 };
const DELIVERY_KEYS = ['max_attempts', 'initial_backoff_ms', 'max_backoff_ms', 'concurrency', 'rate_limit_per_second', 'quarantine_after'] as const;

const KEYS = ['name', 'description', 'model', 'type', 'object', 'primary_key', 'mapping', 'mode', 'on_remove', 'max_removes', 'batch_size', 'consent', 'options', 'delivery'] as const;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_BATCH_SIZE = 500;

export function destinationsDirOf(projectRoot: string): string | undefined {
  const dir = path.join(projectRoot, DESTINATIONS_DIR);
  return existsSync(dir) && statSync(dir).isDirectory() ? dir : undefined;
}

export function destinationFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'))
    .sort()
    .map((f) => path.join(dir, f));
}

function relationOf(dag: Dag, projectName: string, name: string): { relation: Relation; ephemeral: boolean } | undefined {
  for (const kind of ['model', 'seed']) {
    const node = dag.nodes.get(`${kind}.${projectName}.${name}`);
    if (node && 'relation' in node) {
      return { relation: node.relation, ephemeral: node.resourceType === 'model' && node.config.materialized === 'ephemeral' };
    }
  }
  return undefined;
}

/**
 * `credentials`: unset credential env vars are errors (plan, sync); compile-time loading leaves them
 * to those. Every key is checked and every problem reported at once (file and key each), except
 * after an unknown key, whose typo may be the cause of the others.
 */
export function loadContract(doc: YamlValue, dag: Dag, projectName: string, { credentials }: { credentials: boolean }): Contract {
  doc.onlyKeys(KEYS);
  const problems: CdpError[] = [];
  const attempt = <T>(read: () => T): T | undefined => {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof CdpError)) throw error;
      problems.push(error);
      return undefined;
    }
  };
  const name = attempt(() => contractName(doc));
  const found = attempt(() => contractModel(doc, dag, projectName));
  const connector = attempt(() => contractType(doc));
  const mode = connector && attempt(() => contractMode(doc, connector));
  const onRemove = mode && attempt(() => contractOnRemove(doc, mode));
  const maxRemoves = attempt(() => removeLimit(doc.child('max_removes')));
  const batchSize = connector && attempt(() => contractBatchSize(doc, connector));
  const mapping = connector && attempt(() => contractMapping(doc, connector));
  const consent = attempt(() => contractConsent(doc, dag, projectName));
  const options = connector && attempt(() => contractOptions(doc, connector, credentials));
  const delivery = attempt(() => deliveryPolicy(doc.child('delivery')));
  const primaryKey = attempt(() => doc.child('primary_key').string());
  if (problems.length > 0) throw problems.length === 1 ? problems[0]! : new ProblemsError(problems);
  return {
    file: doc.file,
    name: name!,
    description: doc.child('description').string(''),
    model: found!.model,
    relation: found!.relation,
    type: connector!.type,
    connector: connector!,
    object: doc.child('object').string(name!),
    primaryKey: primaryKey!,
    mapping: mapping!,
    mode: mode!,
    onRemove: onRemove!,
    maxRemoves,
    batchSize: batchSize!,
    consent: consent!.scopes,
    consentRelation: consent!.relation,
    options: options!,
    delivery: delivery!,
    usesToken: mapping!.some((f) => f.transforms.includes('token')),
    mappingHash: mappingHash(mapping!),
  };
}

function contractName(doc: YamlValue): string {
  const name = doc.child('name').string();
  if (!NAME.test(name)) throw doc.child('name').error('destination-name', `\`name\` must be letters, digits and _, got ${JSON.stringify(name)}`);
  return name;
}

function contractModel(doc: YamlValue, dag: Dag, projectName: string): { model: string; relation: Relation } {
  const modelValue = doc.child('model');
  const model = modelValue.string();
  const found = relationOf(dag, projectName, model);
  if (!found) {
    const names = [...dag.nodes.values()].filter((n) => n.resourceType === 'model' || n.resourceType === 'seed').map((n) => n.name);
    throw modelValue.error('destination-model-not-found', `\`model\` names \`${model}\`, which is not a model or seed of project \`${projectName}\``, didYouMean(model, names) || undefined);
  }
  if (found.ephemeral) throw modelValue.error('destination-model-ephemeral', `\`model\` \`${model}\` is ephemeral, so there is no relation to read; materialize it as a view or table`);
  return { model, relation: found.relation };
}

function contractType(doc: YamlValue): DestinationType {
  const typeValue = doc.child('type');
  const type = typeValue.string();
  const connector = destinationType(type);
  if (!connector) {
    throw typeValue.error('destination-type-unknown', `\`type\` is \`${type}\`, which is not a destination type`, `Types: ${destinationTypeNames().join(', ')}. ${didYouMean(type, destinationTypeNames())}`.trim());
  }
  return connector;
}

function contractMode(doc: YamlValue, connector: DestinationType): SyncMode {
  const modeValue = doc.child('mode');
  const mode = modeValue.oneOf(SYNC_MODES, 'upsert');
  if (!connector.capabilities.modes.includes(mode)) {
    throw modeValue.error('destination-mode-unsupported', `The \`${connector.type}\` destination does not support mode \`${mode}\``, `Modes it supports: ${connector.capabilities.modes.join(', ')}.`);
  }
  return mode;
}

function contractOnRemove(doc: YamlValue, mode: SyncMode): OnRemove {
  const onRemoveValue = doc.child('on_remove');
  const onRemove = onRemoveValue.oneOf(ON_REMOVE, mode === 'mirror' || mode === 'add_remove' ? 'delete' : 'nothing');
  if ((mode === 'mirror' || mode === 'add_remove') && onRemove !== 'delete') {
    throw onRemoveValue.error('destination-on-remove', `Mode \`${mode}\` deletes rows that leave the model, so \`on_remove\` must be \`delete\` (or left out), got \`${onRemove}\``);
  }
  return onRemove;
}

function contractBatchSize(doc: YamlValue, connector: DestinationType): number {
  const caps = connector.capabilities;
  const batchValue = doc.child('batch_size');
  const batchSize = batchValue.integer(Math.min(DEFAULT_BATCH_SIZE, caps.maxBatchSize), 1);
  if (batchSize > caps.maxBatchSize) {
    throw batchValue.error('destination-batch-too-large', `\`batch_size\` ${batchSize} is above the \`${connector.type}\` destination's cap of ${caps.maxBatchSize}`);
  }
  return batchSize;
}

function contractMapping(doc: YamlValue, connector: DestinationType): MappedField[] {
  const mappingValue = doc.child('mapping');
  if (!mappingValue.exists || mappingValue.keys().length === 0) throw mappingValue.error('destination-mapping-missing', 'A contract needs a `mapping` with at least one field');
  const mapping = mappingValue.entries().map(([target, value]) => mappedField(target, value, connector));
  return mapping.sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
}

function contractConsent(doc: YamlValue, dag: Dag, projectName: string): { scopes: string[]; relation?: Relation } {
  const consentValue = doc.child('consent');
  const scopes = consentValue.stringList();
  if (scopes.length === 0) return { scopes };
  const relation = relationOf(dag, projectName, 'consent_state')?.relation;
  if (!relation) throw consentValue.error('consent-state-missing', `The contract requires consent (${scopes.join(', ')}), but the project declares no consent: it has no \`consent_state\` model`, 'Declare the scopes under `consent:` in golden_record.yml (docs/golden-record.md), or remove `consent`.');
  // A misspelt scope is granted by nobody: every synced row would be removed for lost consent.
  const declared = declaredConsentScopes(path.dirname(path.dirname(doc.file)));
  if (declared) checkConsentScopes(consentValue, declared);
  return { scopes, relation };
}

function contractOptions(doc: YamlValue, connector: DestinationType, credentials: boolean): Record<string, unknown> {
  const optionsValue = doc.child('options');
  if (optionsValue.exists && !optionsValue.isMap()) throw optionsValue.error('expected-map', '`options` must be a mapping');
  const options = (optionsValue.exists ? optionsValue.value : {}) as Record<string, unknown>;
  const problems = connector.validateOptions(options).filter((p) => credentials || !p.credentialUnset)
    .map((p) => optionsValue.child(p.key).error('destination-option', `\`options.${p.key}\` ${p.message}`));
  if (problems.length > 0) throw problems.length === 1 ? problems[0]! : new ProblemsError(problems);
  return options;
}

/** `max_removes`: a count, or a percentage of the destination's synced rows. */
export interface RemoveLimit {
  count?: number;
  percent?: number;
  /** As written, for messages. */
  text: string;
}

function removeLimit(value: YamlValue): RemoveLimit | undefined {
  if (!value.exists) return undefined;
  const text = value.string().trim();
  const percent = /^(\d+(?:\.\d+)?)\s*%$/.exec(text);
  if (percent && Number(percent[1]) <= 100) return { percent: Number(percent[1]), text };
  if (/^\d+$/.test(text)) return { count: Number(text), text };
  throw value.error('destination-max-removes', `\`max_removes\` must be a number of rows (e.g. 500) or a percentage of the synced rows (e.g. "10%"), got ${JSON.stringify(text)}`);
}

/** Fingerprint of a mapping (sorted by target, as loaded): fields, columns, types and transforms. */
export function mappingHash(mapping: readonly MappedField[]): string {
  return createHash('sha256').update(JSON.stringify(mapping.map((f) => [f.target, f.column, f.type ?? null, f.transforms]))).digest('hex');
}

export function deliveryPolicy(value: YamlValue): DeliveryPolicy {
  if (!value.exists) return { ...DEFAULT_DELIVERY };
  if (!value.isMap()) throw value.error('expected-map', '`delivery` must be a mapping');
  value.onlyKeys(DELIVERY_KEYS);
  const maxAttempts = value.child('max_attempts').integer(DEFAULT_DELIVERY.maxAttempts, 1);
  const initialBackoffMs = value.child('initial_backoff_ms').integer(DEFAULT_DELIVERY.initialBackoffMs, 0);
  const maxValue = value.child('max_backoff_ms');
  const maxBackoffMs = maxValue.integer(Math.max(DEFAULT_DELIVERY.maxBackoffMs, initialBackoffMs), 0);
  if (maxBackoffMs < initialBackoffMs) {
    throw maxValue.error('delivery-backoff', `\`max_backoff_ms\` ${maxBackoffMs} is below \`initial_backoff_ms\` ${initialBackoffMs}`);
  }
  const concurrency = value.child('concurrency').integer(DEFAULT_DELIVERY.concurrency, 1);
  const rateValue = value.child('rate_limit_per_second');
  let rateLimitPerSecond: number | undefined;
  if (rateValue.exists) {
    const n = typeof rateValue.value === 'string' && /^\d+(\.\d+)?$/.test(rateValue.value) ? Number(rateValue.value) : rateValue.value;
    if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) {
      throw rateValue.error('delivery-rate-limit', `\`rate_limit_per_second\` must be a number > 0 (batches per second), got ${JSON.stringify(rateValue.value)}`);
    }
    rateLimitPerSecond = n;
  }
  const quarantineValue = value.child('quarantine_after');
  const quarantineAfter = quarantineValue.exists ? quarantineValue.integer(0, 1) : undefined;
  return { maxAttempts, initialBackoffMs, maxBackoffMs, concurrency, rateLimitPerSecond, quarantineAfter };
}

function mappedField(target: string, value: YamlValue, connector: DestinationType): MappedField {
  const fields = connector.capabilities.fields;
  if (fields !== 'any' && !fields.includes(target)) {
    throw value.error('destination-field-unknown', `The \`${connector.type}\` destination has no field \`${target}\``, `${didYouMean(target, fields)} Fields: ${fields.join(', ')}.`.trim());
  }
  if (value.isScalar()) return { target, column: value.string(), transforms: [] };
  value.onlyKeys(['column', 'type', 'transform']);
  const transformValue = value.child('transform');
  const transforms = transformValue.stringList().map((t, i) => {
    if (!(TRANSFORMS as readonly string[]).includes(t)) {
      const at = transformValue.isList() ? transformValue.child(i) : transformValue;
      throw at.error('destination-transform', `Unknown transform \`${t}\`; expected one of: ${TRANSFORMS.join(', ')}`);
    }
    return t as Transform;
  });
  const hashed = transforms.findIndex((t) => t === 'sha256' || t === 'token');
  if (hashed !== -1 && hashed !== transforms.length - 1) throw transformValue.error('destination-transform', `\`${transforms[hashed]}\` must be the last transform`);
  const typeValue = value.child('type');
  return { target, column: value.child('column').string(), type: typeValue.exists ? typeValue.oneOf(FIELD_TYPES) : undefined, transforms };
}
