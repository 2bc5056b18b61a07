/**
 * The normalisation rules `truth.csv` is written in (docs/generator.md, "Truth"), and the junk
 * values the generator sprinkles into the sources. An identity layer that follows the same rules
 * can join its output to the truth on `(identifier_type, identifier_value)`.
 */

export const IDENTIFIER_TYPES = ['email', 'phone', 'customer_id', 'stripe_customer_id', 'user_id', 'anonymous_id', 'device_id'] as const;
export type IdentifierType = (typeof IDENTIFIER_TYPES)[number];

/** The studio's default country: national numbers without a country code are Portuguese. */
export const DEFAULT_COUNTRY_CODE = '351';

/** Email: trim, then lower-case. */
export function normalizeEmail(raw: string): string {
  return raw.trim().toLowerCase();
}

/**
 * Phone to E.164: keep digits (and a leading `+`); `00` international prefix becomes `+`; a
 * 9-digit national number gets the default country code (+351); a number that already starts
 * with the default country code gets its `+`. Returns '' when nothing is left.
 */
export function normalizePhone(raw: string): string {
  const trimmed = raw.trim();
  const digits = trimmed.replace(/\D+/g, '');
  if (digits === '') return '';
  if (trimmed.startsWith('+')) return '+' + digits;
  if (digits.startsWith('00')) return '+' + digits.slice(2);
  if (digits.length === 9) return '+' + DEFAULT_COUNTRY_CODE + digits;
  if (digits.length === 12 && digits.startsWith(DEFAULT_COUNTRY_CODE)) return '+' + digits;
  return '+' + digits;
}

/** Every other identifier: trimmed, case kept. */
export function normalizeId(raw: string): string {
  return raw.trim();
}

export function normalizeIdentifier(type: IdentifierType, raw: string): string {
  if (type === 'email') return normalizeEmail(raw);
  if (type === 'phone') return normalizePhone(raw);
  return normalizeId(raw);
}

/** Junk column kinds: the identifier columns the generator may overwrite with a shared junk value. */
export type JunkKind = 'email' | 'phone' | 'anonymous_id' | 'device_id' | 'user_id';

/**
 * Raw junk values per identifier type, as they appear in the files. They belong to nobody and
 * are never written to truth.csv. Blank strings normalise to '' and are not identifiers at all.
 */
export const JUNK_VALUES: Record<JunkKind, readonly string[]> = {
  email: ['test@test.com', 'TEST@TEST.COM', 'noemail@example.com', 'null', 'none', 'n/a', ' '],
  phone: ['0000000000', '000000000', '123456789', 'null', '-', ' '],
  anonymous_id: ['anonymous', 'null', 'undefined', '00000000-0000-0000-0000-000000000000', ' '],
  device_id: ['unknown', 'null', '00000000-0000-0000-0000-000000000000', ' '],
  user_id: ['null', 'undefined', '0', '-1'],
};

const JUNK_NORMALISED: Record<JunkKind, Set<string>> = Object.fromEntries(
  (Object.keys(JUNK_VALUES) as JunkKind[]).map((kind) => [kind, new Set(JUNK_VALUES[kind].map((v) => normalizeIdentifier(kind, v)))]),
) as Record<JunkKind, Set<string>>;

/** True when the raw value is one of the generator's junk values (compared after normalisation). */
export function isJunk(type: IdentifierType, raw: string): boolean {
  const set = (JUNK_NORMALISED as Partial<Record<IdentifierType, Set<string>>>)[type];
  return set !== undefined && set.has(normalizeIdentifier(type, raw));
}
