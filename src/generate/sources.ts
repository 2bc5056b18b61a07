import { isJunk, JUNK_VALUES, normalizeIdentifier, type IdentifierType, type JunkKind } from './normalize.js';
import type { ContactPhone, Person } from './people.js';
import { BASE62, deriveSeed, encodeFixed, Rng, scramble32 } from './prng.js';

/**
 * Turns people into source rows: what a booking system, Stripe, the app backend, a Segment-like
 * event stream and a preference centre would export. Rows go straight to sinks; nothing is kept
 * but the identifiers already written to truth for the current household.
 */

export const SOURCE_NAMES = ['bookings', 'payments', 'accounts', 'web_events', 'consent_events', 'truth'] as const;
export type SourceName = (typeof SOURCE_NAMES)[number];

/** Column names (the CSV headers, in order) and their DuckDB types for Parquet output. */
export const SCHEMAS: Record<SourceName, readonly (readonly [name: string, type: string])[]> = {
  bookings: [['booking_id', 'BIGINT'], ['customer_id', 'VARCHAR'], ['email', 'VARCHAR'], ['phone', 'VARCHAR'], ['class_id', 'VARCHAR'], ['status', 'VARCHAR'], ['booked_at', 'TIMESTAMP']],
  payments: [['payment_id', 'VARCHAR'], ['stripe_customer_id', 'VARCHAR'], ['email', 'VARCHAR'], ['amount', 'DECIMAL(12,2)'], ['refunded_amount', 'DECIMAL(12,2)'], ['currency', 'VARCHAR'], ['paid_at', 'TIMESTAMP']],
  accounts: [['user_id', 'VARCHAR'], ['email', 'VARCHAR'], ['phone', 'VARCHAR'], ['created_at', 'TIMESTAMP']],
  web_events: [['event_id', 'VARCHAR'], ['anonymous_id', 'VARCHAR'], ['user_id', 'VARCHAR'], ['device_id', 'VARCHAR'], ['event_name', 'VARCHAR'], ['page', 'VARCHAR'], ['occurred_at', 'TIMESTAMP']],
  consent_events: [['email', 'VARCHAR'], ['phone', 'VARCHAR'], ['scope', 'VARCHAR'], ['status', 'VARCHAR'], ['source', 'VARCHAR'], ['occurred_at', 'TIMESTAMP']],
  truth: [['identifier_type', 'VARCHAR'], ['identifier_value', 'VARCHAR'], ['person_id', 'VARCHAR']],
};

export function header(source: SourceName): string[] {
  return SCHEMAS[source].map(([name]) => name);
}

/** The identifier columns of each source (index, type); the generator's truth and junk work on these. */
export const IDENTIFIER_COLUMNS: Record<Exclude<SourceName, 'truth'>, readonly (readonly [column: number, type: IdentifierType])[]> = {
  bookings: [[1, 'customer_id'], [2, 'email'], [3, 'phone']],
  payments: [[1, 'stripe_customer_id'], [2, 'email']],
  accounts: [[0, 'user_id'], [1, 'email'], [2, 'phone']],
  web_events: [[1, 'anonymous_id'], [2, 'user_id'], [3, 'device_id']],
  consent_events: [[0, 'email'], [1, 'phone']],
};

/** Columns junk may be written into: contact fields and event identifiers, never primary keys. */
export const JUNK_COLUMNS: Record<Exclude<SourceName, 'truth'>, readonly (readonly [column: number, kind: JunkKind])[]> = {
  bookings: [[2, 'email'], [3, 'phone']],
  payments: [[2, 'email']],
  accounts: [[1, 'email'], [2, 'phone']],
  web_events: [[1, 'anonymous_id'], [2, 'user_id'], [3, 'device_id']],
  consent_events: [[0, 'email'], [1, 'phone']],
};

export const CLASS_IDS = ['yoga_flow', 'hiit_45', 'spin_30', 'pilates_core', 'boxing_basics'] as const;
export const EVENT_NAMES = ['page_view', 'add_to_cart', 'purchase', 'login', 'signup', 'app_open'] as const;
export const CONSENT_SCOPES = ['email_marketing', 'sms', 'ads', 'analytics'] as const;

/** Per-occurrence formatting hazards; docs/generator.md quotes these. */
export const VARIANT_RATES = {
  /** An email occurrence is written with different case (Title or UPPER). */
  emailCase: 0.08,
  /** An email occurrence is padded with spaces. */
  emailWhitespace: 0.03,
  /** Bookings made at the desk without an email although the person has one. */
  bookingWithoutEmail: 0.03,
  /** Share of bookings and accounts that carry a phone when the person has one. */
  phoneGiven: 0.6,
} as const;

/** Default share of rows whose one identifier column is overwritten by a junk value. */
export const DEFAULT_JUNK_RATE = 0.001;

export interface RowSink {
  write(values: string[]): void;
}

export type Sinks = Record<SourceName, RowSink>;

export interface EmitterConfig {
  seed: number;
  asOfMs: number;
  windowMs: number;
  junkRate: number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const WEB_PAGES = ['/', '/schedule', '/classes/yoga-flow', '/classes/hiit-45', '/classes/spin-30', '/classes/pilates-core', '/classes/boxing-basics', '/pricing', '/shop', '/blog/first-class-tips', '/about'];
const SHOP_PAGES = ['/shop/yoga-mat', '/shop/water-bottle', '/shop/towel', '/shop/class-pack-10', '/shop/monthly-unlimited'];
const APP_SCREENS = ['app://home', 'app://schedule', 'app://bookings', 'app://profile'];
const PRICES: readonly (readonly [string, number])[] = [
  ['15.00', 25], ['49.00', 15], ['89.00', 25], ['120.00', 15], ['12.50', 8], ['24.90', 7], ['39.00', 5],
];

/** Whitespace around emails: spaces only (SQL `trim` strips spaces, not tabs). */
const PADDINGS: readonly (readonly [string, string])[] = [[' ', ' '], ['', ' '], [' ', ''], ['  ', ' ']];

const TWO_DIGITS = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
const DATE_CACHE = new Map<number, string>();

/** `YYYY-MM-DD HH:MM:SS` in UTC (the hot path of the generator, hence the day cache). */
export function formatTimestamp(ms: number): string {
  const day = Math.floor(ms / DAY);
  let date = DATE_CACHE.get(day);
  if (date === undefined) {
    date = new Date(day * DAY).toISOString().slice(0, 10);
    if (DATE_CACHE.size < 100_000) DATE_CACHE.set(day, date);
  }
  const seconds = Math.floor((ms - day * DAY) / 1000);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return date + ' ' + TWO_DIGITS[h] + ':' + TWO_DIGITS[m] + ':' + TWO_DIGITS[seconds % 60];
}

export class SourceEmitter {
  private bookingSeq = 0;
  private paymentSeq = 0;
  private eventSeq = 0;
  /** `type\u0001value` already written to truth in the current household (or for the current person). */
  private emitted = new Set<string>();
  private readonly paymentKey: number;
  private readonly eventKey: number;
  private rng = new Rng(0);
  /** While true, rows are exempt from junk (chain rows must stay intact). */
  private noJunk = false;

  constructor(private readonly config: EmitterConfig, private readonly sinks: Sinks) {
    this.paymentKey = deriveSeed(config.seed, 0x7061790a);
    this.eventKey = deriveSeed(config.seed, 0x6576740a);
  }

  emit(person: Person): void {
    if (person.householdRole !== 'member') this.emitted = new Set();
    this.rng = new Rng(deriveSeed(this.config.seed, 0x726f7773, person.index));
    this.bookings(person);
    this.payments(person);
    this.accounts(person);
    this.webEvents(person);
    this.consents(person);
  }

  // ---- sources -------------------------------------------------------------------------------

  private bookings(p: Person): void {
    if (!p.customerId) return;
    const rng = this.rng;
    const { asOfMs } = this.config;
    for (let i = 0; i < p.bookings; i++) {
      const at = this.between(p.firstSeen, asOfMs);
      const email = p.email && !rng.chance(VARIANT_RATES.bookingWithoutEmail) ? this.emailVariant(p.email) : '';
      const phone = p.contactPhone && rng.chance(VARIANT_RATES.phoneGiven) ? this.phoneVariant(p.contactPhone) : '';
      const status = asOfMs - at < 7 * DAY
        ? rng.weighted([['booked', 85], ['cancelled', 15]] as const)
        : rng.weighted([['attended', 78], ['cancelled', 16], ['booked', 6]] as const);
      this.row('bookings', [String(100_001 + this.bookingSeq++), p.customerId, email, phone, rng.pick(CLASS_IDS), status, formatTimestamp(at)], p, p.contactPhone);
    }
  }

  private payments(p: Person): void {
    if (!p.email) return;
    const rng = this.rng;
    const { asOfMs } = this.config;
    for (let i = 0; i < p.payments; i++) {
      this.payment(p, p.stripeCustomerId!, this.emailVariant(p.email), this.between(p.firstSeen, asOfMs));
    }
    for (let i = 0; i < p.guestCheckouts; i++) {
      // The first guest checkout of a typo person uses the typo; otherwise a variant of a known email.
      let email: string;
      if (i === 0 && p.typoEmail) email = p.typoEmail;
      else if (p.secondaryEmail && rng.chance(0.35)) email = p.secondaryEmail;
      else email = p.email;
      this.payment(p, '', this.emailVariant(email), this.between(p.firstSeen, asOfMs));
    }
  }

  private payment(p: Person, stripeCustomerId: string, email: string, at: number): void {
    const rng = this.rng;
    const seq = this.paymentSeq++;
    const id = 'pi_' + encodeFixed(scramble32(seq, this.paymentKey), BASE62, 6) + rng.chars(BASE62, 18);
    const amount = rng.weighted(PRICES);
    const refund = rng.weighted([['none', 94], ['full', 4], ['partial', 2]] as const);
    const refunded = refund === 'full' ? amount : refund === 'partial' ? (Number(amount) / 2).toFixed(2) : '0.00';
    this.row('payments', [id, stripeCustomerId, email, amount, refunded, 'EUR', formatTimestamp(at)], p);
  }

  private accounts(p: Person): void {
    const rng = this.rng;
    for (let k = 0; k < p.userIds.length; k++) {
      const email = k === 0 ? p.email! : p.secondaryEmail!;
      const phone = p.contactPhone && rng.chance(VARIANT_RATES.phoneGiven) ? this.phoneVariant(p.contactPhone) : '';
      const created = k === 0 ? p.accountCreated! : this.between(p.accountCreated!, this.config.asOfMs);
      this.row('accounts', [p.userIds[k]!, this.emailVariant(email), phone, formatTimestamp(created)], p, p.contactPhone);
    }
  }

  private webEvents(p: Person): void {
    const rng = this.rng;
    const { asOfMs } = this.config;
    const hasAccount = p.userIds.length > 0;
    const created = p.accountCreated ?? p.firstSeen;

    p.anonymousIds.forEach((anonymousId, k) => {
      const signup = hasAccount && k === 0 && p.signupChannel === 'web';
      const logsIn = hasAccount && (signup || rng.chance(0.6));
      const userId = k > 0 && p.userIds.length > 1 && rng.chance(0.3) ? p.userIds[1]! : p.userIds[0];
      const n = rng.count(3, 1, 15);
      // A signup visit ends its anonymous part at account creation; a login visit starts after it.
      let t = signup ? Math.max(p.firstSeen, created - rng.int(1, 60) * MINUTE) : this.between(logsIn ? created : p.firstSeen, asOfMs);
      const identifyAt = logsIn ? rng.int(0, n - 1) : n;
      for (let i = 0; i < n; i++) {
        let name: string;
        let page: string;
        if (i === identifyAt) {
          name = signup ? 'signup' : 'login';
          page = signup ? '/signup' : '/login';
          if (signup) t = Math.max(t, created);
        } else {
          name = rng.weighted([['page_view', 80], ['add_to_cart', 13], ['purchase', 7]] as const);
          page = name === 'page_view' ? rng.pick(WEB_PAGES) : name === 'add_to_cart' ? rng.pick(SHOP_PAGES) : '/checkout';
        }
        this.event(p, anonymousId, i >= identifyAt ? userId! : '', '', name, page, t);
        t = Math.min(asOfMs - 1000, t + rng.int(5, 600) * 1000 + (rng.chance(0.15) ? rng.int(1, 20) * DAY : 0));
      }
    });

    const appSession = (deviceId: string, userId: string, signup: boolean, ownerId: string | undefined) => {
      const n = rng.count(4, 2, 15);
      let t = signup ? created : this.between(created, asOfMs);
      const identifyAt = rng.int(0, Math.min(2, n - 1));
      for (let i = 0; i < n; i++) {
        const name = i === identifyAt ? (signup ? 'signup' : 'login') : rng.weighted([['app_open', 60], ['page_view', 35], ['purchase', 5]] as const);
        const page = name === 'app_open' ? 'app://home' : name === 'login' || name === 'signup' ? 'app://' + name : name === 'purchase' ? 'app://checkout' : rng.pick(APP_SCREENS);
        this.event(p, '', i >= identifyAt ? userId : '', deviceId, name, page, t, ownerId);
        t = Math.min(asOfMs - 1000, t + rng.int(5, 900) * 1000 + (rng.chance(0.3) ? rng.int(1, 10) * DAY : 0));
      }
    };
    p.deviceIds.forEach((deviceId, k) => appSession(deviceId, p.userIds[0]!, k === 0 && p.signupChannel === 'app', undefined));
    if (p.usesFamilyTablet) {
      const household = p.household!;
      appSession(household.tabletDeviceId!, p.userIds[0]!, false, household.ownerId);
    }

    if (p.chain) this.chain(p);
  }

  /**
   * The chain: rows (anon_0, dev_0), (anon_1, dev_0), (anon_1, dev_1), ... — each consecutive pair
   * of nodes shares one row — and a final login row joining the last node to the user_id.
   */
  private chain(p: Person): void {
    const rng = this.rng;
    const { nodes } = p.chain!;
    const { asOfMs } = this.config;
    const span = asOfMs - p.accountCreated! - DAY;
    let t = p.accountCreated! + DAY;
    const step = Math.max(MINUTE, Math.floor(span / (nodes.length + 1)));
    this.noJunk = true;
    for (let k = 0; k + 1 < nodes.length; k++) {
      const a = nodes[k]!;
      const b = nodes[k + 1]!;
      const anonymousId = a.type === 'anonymous_id' ? a.value : b.value;
      const deviceId = a.type === 'device_id' ? a.value : b.value;
      this.event(p, anonymousId, '', deviceId, rng.pick(['page_view', 'app_open'] as const), rng.pick(WEB_PAGES), t);
      t += rng.int(1, step);
    }
    const last = nodes[nodes.length - 1]!;
    this.event(p, last.type === 'anonymous_id' ? last.value : '', p.userIds[0]!, last.type === 'device_id' ? last.value : '', 'login', '/login', Math.min(t, asOfMs - 1000));
    this.noJunk = false;
  }

  private event(p: Person, anonymousId: string, userId: string, deviceId: string, name: string, page: string, at: number, deviceOwnerId?: string): void {
    const id = 'evt_' + encodeFixed(scramble32(this.eventSeq++, this.eventKey), BASE62, 6) + this.rng.chars(BASE62, 10);
    this.row('web_events', [id, anonymousId, userId, deviceId, name, page, formatTimestamp(Math.min(at, this.config.asOfMs - 1000))], p, undefined, deviceOwnerId);
  }

  private consents(p: Person): void {
    const rng = this.rng;
    const { asOfMs } = this.config;
    const phone = p.contactPhone;
    if (p.email) {
      if (rng.chance(0.7)) {
        const at = this.between(p.firstSeen, asOfMs);
        const source = p.userIds.length > 0 ? 'signup_form' : p.customerId ? 'booking_widget' : 'checkout';
        this.consent(p, this.emailVariant(p.email), '', 'email_marketing', 'granted', source, at);
        if (rng.chance(0.25)) this.consent(p, this.emailVariant(p.email), '', 'email_marketing', 'revoked', rng.pick(['preference_center', 'unsubscribe_link']), this.between(at, asOfMs));
      }
      if (p.secondaryEmail && rng.chance(0.3)) {
        this.consent(p, this.emailVariant(p.secondaryEmail), '', 'email_marketing', 'granted', 'newsletter_form', this.between(p.firstSeen, asOfMs));
      }
      if (p.userIds.length > 0) {
        for (const scope of ['analytics', 'ads'] as const) {
          if (!rng.chance(scope === 'analytics' ? 0.3 : 0.2)) continue;
          const at = this.between(p.accountCreated!, asOfMs);
          this.consent(p, this.emailVariant(p.email), '', scope, 'granted', 'account_settings', at);
          if (rng.chance(0.2)) this.consent(p, this.emailVariant(p.email), '', scope, 'revoked', 'account_settings', this.between(at, asOfMs));
        }
      }
    }
    if (phone && rng.chance(0.25)) {
      const at = this.between(p.firstSeen, asOfMs);
      const email = p.email && rng.chance(0.5) ? this.emailVariant(p.email) : '';
      this.consent(p, email, this.phoneVariant(phone), 'sms', 'granted', 'booking_widget', at, phone);
      if (rng.chance(0.15)) this.consent(p, '', this.phoneVariant(phone), 'sms', 'revoked', 'sms_stop', this.between(at, asOfMs), phone);
    }
  }

  private consent(p: Person, email: string, phone: string, scope: string, status: string, source: string, at: number, phoneOwner?: ContactPhone): void {
    this.row('consent_events', [email, phone, scope, status, source, formatTimestamp(at)], p, phoneOwner);
  }

  // ---- hazards and truth ---------------------------------------------------------------------

  /** A raw email as a person would type it: usually as is, sometimes with other case or padding. */
  private emailVariant(email: string): string {
    const rng = this.rng;
    let out = email;
    if (rng.chance(VARIANT_RATES.emailCase)) {
      out = rng.chance(0.3) ? email.toUpperCase() : email.replace(/(^|[._@])([a-z])/g, (_m, sep: string, c: string) => sep + c.toUpperCase());
    }
    if (rng.chance(VARIANT_RATES.emailWhitespace)) {
      const [before, after] = rng.pick(PADDINGS);
      out = before + out + after;
    }
    return out;
  }

  /** A phone in one of the formats forms actually produce; all normalise to the same E.164. */
  private phoneVariant(phone: ContactPhone): string {
    const rng = this.rng;
    const e = phone.e164;
    if (phone.country === 'PT') {
      const n = e.slice(4);
      const spaced = `${n.slice(0, 3)} ${n.slice(3, 6)} ${n.slice(6)}`;
      switch (rng.weighted([['e164', 40], ['national_spaced', 25], ['national', 10], ['dashed', 10], ['intl00', 10], ['intl_spaced', 5]] as const)) {
        case 'e164': return e;
        case 'national_spaced': return spaced;
        case 'national': return n;
        case 'dashed': return `+351 ${n.slice(0, 3)}-${n.slice(3, 6)}-${n.slice(6)}`;
        case 'intl00': return '00351' + n;
        case 'intl_spaced': return `+351 ${spaced}`;
      }
    }
    const cc = phone.country === 'ES' ? '34' : '44';
    const n = e.slice(1 + cc.length);
    switch (rng.weighted([['e164', 60], ['spaced', 25], ['intl00', 15]] as const)) {
      case 'e164': return e;
      case 'spaced': return `+${cc} ${n.slice(0, 3)} ${n.slice(3, 6)} ${n.slice(6)}`;
      case 'intl00': return '00' + cc + n;
    }
  }

  private between(start: number, end: number): number {
    return start + Math.floor(this.rng.next() * Math.max(0, end - start));
  }

  /**
   * Writes one row: maybe overwrites one identifier column with junk, then records every
   * remaining identifier in truth (once per household). `phoneOwner`/`deviceOwner` name the true
   * owner of a phone or device that may belong to someone else in the household.
   */
  private row(source: Exclude<SourceName, 'truth'>, values: string[], p: Person, phoneOwner?: ContactPhone, deviceOwnerId?: string): void {
    if (!this.noJunk && this.config.junkRate > 0 && this.rng.chance(this.config.junkRate)) {
      const [column, kind] = this.rng.pick(JUNK_COLUMNS[source]);
      values[column] = this.rng.pick(JUNK_VALUES[kind]);
    }
    this.sinks[source].write(values);
    for (const [column, type] of IDENTIFIER_COLUMNS[source]) {
      const raw = values[column]!;
      if (raw === '' || isJunk(type, raw)) continue;
      const value = normalizeIdentifier(type, raw);
      if (value === '') continue;
      const key = type + '\u0001' + value;
      if (this.emitted.has(key)) continue;
      this.emitted.add(key);
      const owner = type === 'phone' ? (phoneOwner?.ownerId ?? p.id) : type === 'device_id' ? (deviceOwnerId ?? p.id) : p.id;
      this.sinks.truth.write([type, value, owner]);
    }
  }
}
