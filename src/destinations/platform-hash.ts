import { createHash } from 'node:crypto';
import type { OutboundRecord, RecordMeta, RecordResult } from './destination.js';

/**
 * Identifier normalisation and hashing for the audience connectors (`meta_audience`,
 * `google_ads`; docs/connectors/meta.md, docs/connectors/google-ads.md). A platform matches only
 * the SHA-256 of a value normalised exactly as it documents, and the rules differ (Meta wants a
 * phone as digits without `+`, Google wants E.164 with it), so each platform has its own rule per
 * identifier kind. A wrong rule fails silently, as a lower match rate: the unit tests pin every
 * rule to known SHA-256 vectors. Everything here is pure.
 */

export interface IdentifierRule {
  /** The value as the platform wants it before hashing; undefined when the input holds nothing usable. */
  normalise(text: string): string | undefined;
  /** False for values the platform takes in clear (Meta's MADID and EXTERN_ID, Google's country and postal code). */
  hashed: boolean;
  /** What a usable value looks like, for rejection reasons: those never repeat the value, which is personal data. */
  expects: string;
}

export type Rules<F extends string> = Readonly<Record<F, IdentifierRule>>;

/** Field → the value to send: a lower-case SHA-256 hex digest, or the normalised clear value. */
export type IdentifierValues<F extends string = string> = Partial<Record<F, string>>;

export interface Identifiers<F extends string> {
  values: IdentifierValues<F>;
  /** Fields that had a value which normalised to nothing (not an email address, too few digits, …). */
  dropped: { field: F; expects: string }[];
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

const SHA256_HEX = /^[0-9a-f]{64}$/i;

/** A value already hashed upstream (64 hex digits) is sent as it is, lower-cased: hashing it again would never match. */
export function isSha256Hex(text: string): boolean {
  return SHA256_HEX.test(text);
}

// ---- normalisers shared by the platforms ----

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Trimmed and lower-cased; anything that is not `local@domain.tld` is no email address. */
export function normaliseEmail(text: string): string | undefined {
  const email = text.trim().toLowerCase();
  return EMAIL.test(email) ? email : undefined;
}

/**
 * The digits of an international number, country code first: symbols and letters removed, and
 * leading zeros too (so an `00` international prefix goes like a `+`). E.164 numbers have at most
 * 15 digits; fewer than 7 cannot be a number with its country code.
 */
export function internationalDigits(text: string): string | undefined {
  const digits = text.replace(/\D/g, '').replace(/^0+/, '');
  return digits.length >= 7 && digits.length <= 15 ? digits : undefined;
}

function nonEmpty(text: string): string | undefined {
  return text === '' ? undefined : text;
}

/** Lower-case letters only (any script: Meta takes UTF-8 names): no spaces, punctuation or digits. */
function lettersOnly(text: string): string | undefined {
  return nonEmpty(text.toLowerCase().replace(/[^\p{L}\p{M}]/gu, ''));
}

function twoDigits(max: number): (text: string) => string | undefined {
  return (text) => {
    const t = text.trim();
    const n = Number(t);
    return /^\d{1,2}$/.test(t) && n >= 1 && n <= max ? t.padStart(2, '0') : undefined;
  };
}

const GENDERS: Record<string, string> = { m: 'm', male: 'm', f: 'f', female: 'f' };

// ---- Meta Custom Audiences ----

/**
 * Meta's customer-list keys, in the order of the `schema` cdp sends. Rules from Meta's "hashing
 * and normalising data" guide and its business SDK: everything trimmed and lower-cased; PHONE as
 * digits with the country code, no `+`, no leading zeros; names, city and state letters only;
 * ZIP without spaces or the part after a dash; COUNTRY the ISO 3166-1 alpha-2 code; GEN `m`/`f`;
 * DOBY `YYYY`, DOBM/DOBD two digits. MADID and EXTERN_ID are sent in clear.
 */
export const META_RULES = {
  email: { key: 'EMAIL', hashed: true, expects: 'an email address', normalise: normaliseEmail },
  phone: { key: 'PHONE', hashed: true, expects: 'a phone number with its country code (7 to 15 digits)', normalise: internationalDigits },
  first_name: { key: 'FN', hashed: true, expects: 'a name with letters', normalise: lettersOnly },
  last_name: { key: 'LN', hashed: true, expects: 'a name with letters', normalise: lettersOnly },
  first_initial: { key: 'FI', hashed: true, expects: 'a letter', normalise: (t: string) => [...(lettersOnly(t) ?? '')][0] },
  gender: { key: 'GEN', hashed: true, expects: 'm, f, male or female', normalise: (t: string) => GENDERS[t.trim().toLowerCase()] },
  birth_year: { key: 'DOBY', hashed: true, expects: 'a year YYYY from 1900', normalise: (t: string) => (/^\d{4}$/.test(t.trim()) && Number(t) >= 1900 ? t.trim() : undefined) },
  birth_month: { key: 'DOBM', hashed: true, expects: 'a month 1 to 12', normalise: twoDigits(12) },
  birth_day: { key: 'DOBD', hashed: true, expects: 'a day 1 to 31', normalise: twoDigits(31) },
  city: { key: 'CT', hashed: true, expects: 'a city name with letters', normalise: lettersOnly },
  state: { key: 'ST', hashed: true, expects: 'a state code or name with letters', normalise: lettersOnly },
  zip: { key: 'ZIP', hashed: true, expects: 'a postal code', normalise: (t: string) => nonEmpty((t.toLowerCase().replace(/\s+/g, '').split('-')[0] ?? '').replace(/[^\p{L}\p{N}]/gu, '')) },
  country: { key: 'COUNTRY', hashed: true, expects: 'a two-letter ISO 3166-1 country code', normalise: (t: string) => (/^[a-z]{2}$/.test(t.trim().toLowerCase()) ? t.trim().toLowerCase() : undefined) },
  madid: { key: 'MADID', hashed: false, expects: 'a mobile advertiser id', normalise: (t: string) => nonEmpty(t.trim().toLowerCase()) },
  external_id: { key: 'EXTERN_ID', hashed: false, expects: 'an id', normalise: (t: string) => nonEmpty(t.trim()) },
} as const satisfies Record<string, IdentifierRule & { key: string }>;

export type MetaField = keyof typeof META_RULES;
export const META_FIELDS = Object.keys(META_RULES) as MetaField[];

/** Meta needs something to match on; demographics alone (gender, birth date, place) match no one. */
export function metaMissing(values: IdentifierValues<MetaField>): string | undefined {
  if (values.email || values.phone || values.madid || values.external_id) return undefined;
  if ((values.first_name || values.first_initial) && values.last_name) return undefined;
  return 'map at least one of email, phone, madid, external_id, or first_name (or first_initial) with last_name';
}

// ---- Google Ads Customer Match ----

/**
 * Google's rules (UserIdentifier reference, Customer Match guide): email and names trimmed and
 * lower-cased (no removal of dots from gmail addresses: Customer Match does not ask for it, only
 * Campaign Manager 360 enhanced conversions do); phone in E.164 with the `+`; country (ISO
 * alpha-2, upper case) and postal code in clear.
 */
export const GOOGLE_RULES = {
  email: { hashed: true, expects: 'an email address', normalise: normaliseEmail },
  phone: { hashed: true, expects: 'a phone number with its country code (7 to 15 digits)', normalise: (t: string) => { const d = internationalDigits(t); return d === undefined ? undefined : `+${d}`; } },
  first_name: { hashed: true, expects: 'a name', normalise: (t: string) => nonEmpty(t.trim().toLowerCase()) },
  last_name: { hashed: true, expects: 'a name', normalise: (t: string) => nonEmpty(t.trim().toLowerCase()) },
  country: { hashed: false, expects: 'a two-letter ISO 3166-1 country code', normalise: (t: string) => (/^[A-Z]{2}$/.test(t.trim().toUpperCase()) ? t.trim().toUpperCase() : undefined) },
  zip: { hashed: false, expects: 'a postal code', normalise: (t: string) => nonEmpty(t.trim()) },
} as const satisfies Rules<string>;

export type GoogleField = keyof typeof GOOGLE_RULES;
export const GOOGLE_FIELDS = Object.keys(GOOGLE_RULES) as GoogleField[];
export const GOOGLE_ADDRESS_FIELDS = ['first_name', 'last_name', 'country', 'zip'] as const;

/** Google matches an address only with all four parts. */
export function googleHasAddress(values: IdentifierValues<GoogleField>): boolean {
  return GOOGLE_ADDRESS_FIELDS.every((f) => values[f] !== undefined);
}

export function googleMissing(values: IdentifierValues<GoogleField>): string | undefined {
  return values.email || values.phone || googleHasAddress(values) ? undefined : 'map at least one of email, phone, or first_name, last_name, country and zip together';
}

// ---- from a payload to identifiers ----

function textOf(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  const text = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text.trim() === '' ? undefined : text;
}

/** Normalises and hashes the payload's identifier fields, in the rules' order. A NULL or blank value is simply absent. */
export function identifiersOf<F extends string>(rules: Rules<F>, payload: Record<string, unknown>): Identifiers<F> {
  const values: IdentifierValues<F> = {};
  const dropped: Identifiers<F>['dropped'] = [];
  for (const field of Object.keys(rules) as F[]) {
    const text = textOf(payload[field]);
    if (text === undefined) continue;
    const rule = rules[field];
    if (rule.hashed && isSha256Hex(text.trim())) {
      values[field] = text.trim().toLowerCase();
      continue;
    }
    const normalised = rule.normalise(text);
    if (normalised === undefined) dropped.push({ field, expects: rule.expects });
    else values[field] = rule.hashed ? sha256Hex(normalised) : normalised;
  }
  return { values, dropped };
}

// ---- audience membership across runs ----

/** The RecordMeta key under which a connector keeps the identifiers it sent, so a remove or a change removes exactly those. */
const SENT = 'identifiers';

export function identifiersMeta(values: IdentifierValues): RecordMeta {
  return { [SENT]: JSON.stringify(values) };
}

export function sentIdentifiers(meta: RecordMeta | undefined): IdentifierValues | undefined {
  const text = meta?.[SENT];
  if (typeof text !== 'string') return undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    return parsed !== null && typeof parsed === 'object' ? (parsed as IdentifierValues) : undefined;
  } catch {
    return undefined;
  }
}

function sameValues(a: IdentifierValues, b: IdentifierValues): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((k) => a[k] === b[k]);
}

export interface Member<F extends string> {
  record: OutboundRecord;
  values: IdentifierValues<F>;
}

export interface MembershipPlan<F extends string> {
  /** Identifier sets to take out of the audience: removes (privacy erasures included), and what changes replaced. */
  removals: Member<F>[];
  /** Identifier sets to put in: adds and changes. */
  additions: Member<F>[];
  /** Records with nothing to match on, rejected before any call. */
  rejected: RecordResult[];
}

/**
 * What a batch does to an audience. A remove takes out the identifiers sent last (kept in the
 * record's meta; re-derived from the last payload when there is none). A change whose identifiers
 * differ from those sent removes the old set and adds the new one: otherwise a changed email would
 * keep its old hash in the audience for good. `missing` says what a record lacks to be matched.
 */
export function planMembership<F extends string>(
  batch: readonly OutboundRecord[],
  rules: Rules<F>,
  missing: (values: IdentifierValues<F>) => string | undefined,
): MembershipPlan<F> {
  const plan: MembershipPlan<F> = { removals: [], additions: [], rejected: [] };
  for (const record of batch) {
    const sent = sentIdentifiers(record.meta) as IdentifierValues<F> | undefined;
    if (record.op === 'remove') {
      const values = sent ?? identifiersOf(rules, record.payload).values;
      const lacks = missing(values);
      if (lacks === undefined) plan.removals.push({ record, values });
      else plan.rejected.push({ key: record.key, ok: false, reason: `cannot remove: the payload last sent has no usable identifier (${lacks})` });
      continue;
    }
    const { values, dropped } = identifiersOf(rules, record.payload);
    const lacks = missing(values);
    if (lacks !== undefined) {
      const ignored = dropped.map((d) => `${d.field} is not ${d.expects}`).join('; ');
      plan.rejected.push({ key: record.key, ok: false, reason: `no usable identifier: ${lacks}${ignored ? ` (${ignored})` : ''}` });
      continue;
    }
    if (record.op === 'change' && sent !== undefined && !sameValues(sent, values)) plan.removals.push({ record, values: sent });
    plan.additions.push({ record, values });
  }
  return plan;
}

/** One result per record: rejected before sending, refused by the platform (`failures`), or acknowledged with the identifiers sent. */
export function membershipResults<F extends string>(batch: readonly OutboundRecord[], plan: MembershipPlan<F>, failures: ReadonlyMap<string, string>): RecordResult[] {
  const before = new Map(plan.rejected.map((r) => [r.key, r]));
  const added = new Map(plan.additions.map((m) => [m.record.key, m.values]));
  return batch.map((record): RecordResult => {
    const early = before.get(record.key);
    if (early) return early;
    const reason = failures.get(record.key);
    if (reason !== undefined) return { key: record.key, ok: false, reason };
    const values = added.get(record.key);
    return values === undefined ? { key: record.key, ok: true } : { key: record.key, ok: true, meta: identifiersMeta(values) };
  });
}

/**
 * A membership batch as the audience connectors send it: planned, then the removals (a change
 * takes its superseded identifiers out before the new ones go in), then the additions; `send`
 * puts the records the platform refuses in `failures`.
 */
export async function sendMembership<F extends string>(
  batch: readonly OutboundRecord[],
  rules: Rules<F>,
  missing: (values: IdentifierValues<F>) => string | undefined,
  send: (direction: 'remove' | 'add', members: Member<F>[], failures: Map<string, string>) => Promise<void>,
): Promise<RecordResult[]> {
  const plan = planMembership(batch, rules, missing);
  const failures = new Map<string, string>();
  if (plan.removals.length > 0) await send('remove', plan.removals, failures);
  if (plan.additions.length > 0) await send('add', plan.additions, failures);
  return membershipResults(batch, plan, failures);
}
