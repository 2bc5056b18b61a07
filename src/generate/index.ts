import { MAX_PERSONS, PersonFactory, type Person } from './people.js';
import { seedFromString } from './prng.js';
import { DEFAULT_JUNK_RATE, SCHEMAS, SOURCE_NAMES, SourceEmitter, type SourceName, type Sinks } from './sources.js';
import { writeSourceFiles, type GenerationResult } from './writer.js';
export type { GeneratedFile } from './writer.js';
import { writeEcommerce, type EcommerceResult } from './ecommerce.js';

/**
 * Seeded, deterministic ground-truth data for the identity layer: the sources of a fitness
 * studio that also sells online, plus `truth` (every identifier's true person). Same options ⇒
 * byte-identical files. See docs/generator.md.
 */

export { RATES, CHAIN_HOPS, MAX_PERSONS, PersonFactory, personId, type Person, type Chain, type Household } from './people.js';
export { SCHEMAS, SOURCE_NAMES, IDENTIFIER_COLUMNS, VARIANT_RATES, DEFAULT_JUNK_RATE, CLASS_IDS, EVENT_NAMES, CONSENT_SCOPES, header, type SourceName } from './sources.js';
export { IDENTIFIER_TYPES, JUNK_VALUES, isJunk, normalizeEmail, normalizePhone, normalizeId, normalizeIdentifier, type IdentifierType } from './normalize.js';
export { seedFromString } from './prng.js';
export {
  ECOMMERCE_SOURCE_NAMES, ECOMMERCE_SCHEMAS, ECOMMERCE_IDENTIFIER_TYPES, ECOMMERCE_EVENT_NAMES, ECOMMERCE_CONSENT_SCOPES, ECOMMERCE_RATES, CART_AGE_BANDS, PRODUCTS,
  type EcommerceSourceName, type EcommerceResult,
} from './ecommerce.js';

/** `studio` (the default: the repo-root fitness studio) or `ecommerce` (an online shop, src/generate/ecommerce.ts). */
export const SCENARIOS = ['studio', 'ecommerce'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export type OutputFormat = 'csv' | 'parquet';

export interface GenerateOptions {
  persons: number;
  /** An integer, or any text (hashed). */
  seed: number | string;
  /** Output directory; created if missing. Existing files of the same names are overwritten. */
  out: string;
  format?: OutputFormat;
  /** End of the time window, `YYYY-MM-DD` or an ISO timestamp (UTC). Default 2026-11-15. */
  asOf?: string;
  /** Window length in days. Default 365. */
  days?: number;
  /** Share of rows with one identifier overwritten by a junk value. Default 0.001. */
  junkRate?: number;
  /** Called every `progressEvery` persons (default 100,000) with the number done. */
  onProgress?: (personsDone: number) => void;
  progressEvery?: number;
}

export type GenerateResult = GenerationResult<SourceName>;

export const DEFAULT_AS_OF = '2026-11-15';
export const DEFAULT_DAYS = 365;

export interface ResolvedConfig {
  persons: number;
  seed: number;
  asOfMs: number;
  windowMs: number;
  junkRate: number;
}

export function resolveConfig(options: Pick<GenerateOptions, 'persons' | 'seed' | 'asOf' | 'days' | 'junkRate'>): ResolvedConfig {
  const { persons } = options;
  if (!Number.isInteger(persons) || persons < 1 || persons > MAX_PERSONS) {
    throw new RangeError(`persons must be an integer between 1 and ${MAX_PERSONS}, got ${persons}`);
  }
  const seed = typeof options.seed === 'number' ? seedFromString(String(Math.trunc(options.seed))) : seedFromString(options.seed);
  const asOfText = options.asOf ?? DEFAULT_AS_OF;
  const asOfMs = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(asOfText) ? `${asOfText}T00:00:00Z` : asOfText);
  if (!Number.isFinite(asOfMs)) throw new RangeError(`as-of must be a date like 2026-11-15, got ${asOfText}`);
  const days = options.days ?? DEFAULT_DAYS;
  if (!(days >= 1)) throw new RangeError(`days must be at least 1, got ${days}`);
  const junkRate = options.junkRate ?? DEFAULT_JUNK_RATE;
  if (!(junkRate >= 0 && junkRate <= 1)) throw new RangeError(`junk rate must be between 0 and 1, got ${junkRate}`);
  return { persons, seed, asOfMs, windowMs: Math.round(days * 86_400_000), junkRate };
}

/** The people of a run, in order, one at a time (for tests and analyses; nothing is kept). */
export function* people(options: Pick<GenerateOptions, 'persons' | 'seed' | 'asOf' | 'days'>): Generator<Person> {
  const config = resolveConfig(options);
  const factory = new PersonFactory(config);
  for (let i = 0; i < config.persons; i++) yield factory.make(i);
}

export async function generate(options: GenerateOptions): Promise<GenerateResult> {
  const config = resolveConfig(options);
  const format = options.format ?? 'csv';
  if (format !== 'csv' && format !== 'parquet') throw new RangeError(`format must be csv or parquet, got ${String(format)}`);
  return writeSourceFiles(options.out, format, SCHEMAS, config, SOURCE_NAMES.filter((n) => n !== 'truth'), (writers) => {
    const factory = new PersonFactory(config);
    const emitter = new SourceEmitter(config, writers as Sinks);
    const every = options.progressEvery ?? 100_000;
    for (let i = 0; i < config.persons; i++) {
      emitter.emit(factory.make(i));
      if (options.onProgress && (i + 1) % every === 0) options.onProgress(i + 1);
    }
  });
}

/** The `ecommerce` scenario (docs/generator.md): same options and determinism; `junkRate` does not apply. */
export async function generateEcommerce(options: GenerateOptions): Promise<EcommerceResult> {
  const config = resolveConfig(options);
  const format = options.format ?? 'csv';
  if (format !== 'csv' && format !== 'parquet') throw new RangeError(`format must be csv or parquet, got ${String(format)}`);
  return writeEcommerce(config, options.out, format, options.onProgress, options.progressEvery);
}
