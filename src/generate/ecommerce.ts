import type { OutputFormat } from './index.js';
import { normalizeEmail } from './normalize.js';
import { affine, BASE62, deriveSeed, encodeFixed, HEX, Rng, scramble32 } from './prng.js';
import { formatTimestamp, type RowSink } from './sources.js';
import { writeSourceFiles, type GenerationResult } from './writer.js';

/**
 * The `ecommerce` scenario (`npm run generate -- --scenario ecommerce`, docs/generator.md): an
 * online outdoor shop. Shoppers browse the website and the app anonymously, sign up or log in
 * later (so their early history is only reachable through the anonymous id), buy through a
 * Shopify-like checkout, and change their consent in a cookie banner, the app's permission
 * prompts and the signup form. A quarter of shoppers end with an abandoned cart at a known age
 * before `--as-of`, so every step of an abandoned-cart flow has members at a few hundred persons
 * (examples/ecommerce). Seeded and deterministic like the studio scenario: person k is drawn from
 * its own stream, so the files for N persons are a byte prefix of the files for 2N.
 */

export const ECOMMERCE_SOURCE_NAMES = ['events', 'orders', 'consent_events', 'products', 'truth'] as const;
export type EcommerceSourceName = (typeof ECOMMERCE_SOURCE_NAMES)[number];

export const ECOMMERCE_SCHEMAS: Record<EcommerceSourceName, readonly (readonly [name: string, type: string])[]> = {
  events: [['event_id', 'VARCHAR'], ['anonymous_id', 'VARCHAR'], ['user_id', 'VARCHAR'], ['email', 'VARCHAR'], ['platform', 'VARCHAR'], ['event_name', 'VARCHAR'], ['product_id', 'VARCHAR'], ['occurred_at', 'TIMESTAMP']],
  orders: [['order_id', 'BIGINT'], ['customer_id', 'VARCHAR'], ['email', 'VARCHAR'], ['line_items', 'VARCHAR'], ['total_price', 'DECIMAL(12,2)'], ['currency', 'VARCHAR'], ['created_at', 'TIMESTAMP']],
  consent_events: [['anonymous_id', 'VARCHAR'], ['user_id', 'VARCHAR'], ['email', 'VARCHAR'], ['scope', 'VARCHAR'], ['status', 'VARCHAR'], ['source', 'VARCHAR'], ['occurred_at', 'TIMESTAMP']],
  products: [['product_id', 'VARCHAR'], ['title', 'VARCHAR'], ['category', 'VARCHAR'], ['price', 'DECIMAL(12,2)']],
  truth: [['identifier_type', 'VARCHAR'], ['identifier_value', 'VARCHAR'], ['person_id', 'VARCHAR']],
};

/** Identifier types of this scenario's truth.csv. */
export const ECOMMERCE_IDENTIFIER_TYPES = ['anonymous_id', 'user_id', 'email', 'shopify_customer_id'] as const;
export const ECOMMERCE_EVENT_NAMES = ['page_view', 'app_opened', 'product_viewed', 'add_to_cart', 'checkout_started', 'signup', 'login', 'push_opened'] as const;
export const ECOMMERCE_CONSENT_SCOPES = ['email_marketing', 'push', 'ads'] as const;

/** Behaviour rates; docs/generator.md quotes them. */
export const ECOMMERCE_RATES = {
  /** Shoppers who use the website (1–2 browsers), and the app (one install). Everyone uses at least one. */
  web: 0.8,
  app: 0.45,
  /** Shoppers who end with an abandoned cart at a known age (they always have an account). */
  abandoner: 0.25,
  /** Other shoppers who sign up at some visit. */
  signup: 0.55,
  /** Shoppers without an account who buy as guests. */
  guestBuyer: 0.3,
  /** A visit adds to cart; a cart reaches checkout; a checkout becomes an order. */
  cart: 0.35,
  checkout: 0.6,
  order: 0.75,
  /** A visit on a new browser of a shopper with an account starts with a login. */
  login: 0.6,
  /** Consent: signup-form marketing box, checkout marketing box (guests), app push prompt, cookie banner ads, app tracking prompt ads, a later unsubscribe. */
  emailAtSignup: 0.65,
  emailAtCheckout: 0.4,
  push: 0.7,
  adsWeb: 0.55,
  adsApp: 0.3,
  unsubscribe: 0.1,
  /** An abandoner with the app and push consent opens a reminder push 1–20 hours after the cart. */
  pushOpened: 0.4,
  /** An email occurrence is written with other case (Title or UPPER). */
  emailCase: 0.08,
} as const;

/** Cart age of an abandoner, in hours before --as-of: one band per step of the flow, with weights. */
export const CART_AGE_BANDS: readonly (readonly [minHours: number, maxHours: number, weight: number])[] = [
  [1, 22, 3],
  [26, 70, 3],
  [74, 324, 4],
];

export const PRODUCTS = [
  ['sku_trail_runner', 'Trail Runner 3', 'footwear', '129.00'],
  ['sku_road_racer', 'Road Racer', 'footwear', '109.00'],
  ['sku_hiking_boot', 'Ridge Hiking Boot', 'footwear', '159.00'],
  ['sku_rain_shell', 'Storm Rain Shell', 'outerwear', '189.00'],
  ['sku_down_vest', 'Featherlight Down Vest', 'outerwear', '119.00'],
  ['sku_fleece', 'Grid Fleece', 'outerwear', '79.00'],
  ['sku_merino_tee', 'Merino Tee', 'apparel', '45.00'],
  ['sku_running_tights', 'Running Tights', 'apparel', '59.00'],
  ['sku_wool_socks', 'Wool Hiking Socks', 'apparel', '18.00'],
  ['sku_daypack', 'Daypack 22L', 'packs', '89.00'],
  ['sku_hydration_vest', 'Hydration Vest', 'packs', '99.00'],
  ['sku_bottle', 'Insulated Bottle', 'gear', '24.00'],
  ['sku_headlamp', 'Headlamp 400', 'gear', '49.00'],
  ['sku_trekking_poles', 'Trekking Poles', 'gear', '69.00'],
] as const;
const CATEGORIES = [...new Set(PRODUCTS.map((p) => p[2]))];

const FIRST_NAMES = ['amelia', 'oscar', 'freya', 'leo', 'isla', 'arthur', 'maya', 'theo', 'ivy', 'felix', 'nora', 'jonas', 'elena', 'mateo', 'sofie', 'lars', 'zoe', 'ravi', 'ada', 'kai'];
const LAST_NAMES = ['walker', 'hughes', 'novak', 'lindqvist', 'moreau', 'bauer', 'kowalski', 'fischer', 'janssen', 'rossi', 'brennan', 'ahmed', 'tanaka', 'okoro', 'silva', 'hansen'];
const DOMAINS: readonly (readonly [string, number])[] = [['gmail.com', 45], ['outlook.com', 15], ['yahoo.com', 10], ['icloud.com', 12], ['proton.me', 6], ['gmx.net', 6], ['web.de', 6]];

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** What the scenario needs of the resolved generator options (index.ts `resolveConfig`). */
export interface EcommerceConfig {
  persons: number;
  seed: number;
  asOfMs: number;
  windowMs: number;
}

export type EcommerceResult = GenerationResult<EcommerceSourceName>;

type Sinks = Record<EcommerceSourceName, RowSink>;
type Platform = 'web' | 'ios' | 'android';

interface Device {
  anonymousId: string;
  platform: Platform;
  seen: boolean;
  loggedIn: boolean;
}

/** Writes the scenario's files to `out`; `generateEcommerce` in index.ts resolves the options first. */
export async function writeEcommerce(config: EcommerceConfig, out: string, format: OutputFormat, onProgress?: (done: number) => void, progressEvery = 100_000): Promise<EcommerceResult> {
  // Products are reference data: the shopper files are the source rows.
  return writeSourceFiles(out, format, ECOMMERCE_SCHEMAS, config, ['events', 'orders', 'consent_events'], (writers) => {
    for (const product of PRODUCTS) writers.products.write([...product]);
    const shop = new ShopEmitter(config, writers);
    for (let i = 0; i < config.persons; i++) {
      shop.emit(i);
      if (onProgress && (i + 1) % progressEvery === 0) onProgress(i + 1);
    }
  });
}

/**
 * One shopper at a time, visit by visit. Identifiers embed a bijection of the person index
 * (keyed scrambles, an affine map for Shopify ids, the number in the email), so two shoppers
 * never share one: this scenario is about stitching over time, not about collisions.
 */
class ShopEmitter {
  private eventSeq = 0;
  private orderSeq = 0;
  private readonly keys: Record<'anon' | 'user' | 'customer' | 'email' | 'event', number>;
  private rng = new Rng(0);
  private person = '';
  private emitted = new Set<string>();

  constructor(private readonly config: EcommerceConfig, private readonly sinks: Sinks) {
    const k = (n: number) => deriveSeed(config.seed, 0x73686f70, n);
    this.keys = { anon: k(1), user: k(2), customer: k(3), email: k(4), event: k(5) };
  }

  emit(index: number): void {
    const rng = (this.rng = new Rng(deriveSeed(this.config.seed, 0x73687072, index)));
    this.person = 'P' + String(index + 1).padStart(7, '0');
    this.emitted = new Set();
    const { asOfMs, windowMs } = this.config;
    const R = ECOMMERCE_RATES;

    const number = affine(index, 7919, this.keys.email % 10_000_000, 10_000_000);
    const first = rng.pick(FIRST_NAMES);
    const last = rng.pick(LAST_NAMES);
    const email = `${rng.chance(0.5) ? `${first}.${last}` : `${first[0]}${last}`}${number}@${rng.weighted(DOMAINS)}`;
    const userId = 'u_' + encodeFixed(scramble32(index, this.keys.user), BASE62, 6);
    let customerId: string | undefined;

    const devices: Device[] = [];
    let web = rng.chance(R.web);
    const app = rng.chance(R.app);
    if (!web && !app) web = true;
    if (web) {
      const browsers = rng.weighted([[1, 7], [2, 3]] as const);
      for (let k = 0; k < browsers; k++) devices.push(this.device(index, k, 'web'));
    }
    if (app) devices.push(this.device(index, 2, rng.chance(0.55) ? 'ios' : 'android'));
    const appDevice = devices.find((d) => d.platform !== 'web');

    const abandoner = rng.chance(R.abandoner);
    const signsUp = abandoner || rng.chance(R.signup);
    const guestBuyer = !signsUp && rng.chance(R.guestBuyer);
    const favourite = rng.pick(CATEGORIES);

    // Visits: generic ones spread over the window, all at least two hours before --as-of (so a
    // later data drop can be appended after every timestamp), then an abandoner's last visit.
    let cartAt: number | undefined;
    if (abandoner) {
      const [min, max] = rng.weighted(CART_AGE_BANDS.map(([lo, hi, w]) => [[lo, hi] as const, w] as const));
      cartAt = asOfMs - Math.floor((min + rng.next() * (max - min)) * HOUR);
    }
    // A visit lasts under an hour, its order included, so two hours apart nothing overlaps.
    const lastStart = (cartAt ?? asOfMs) - 2 * HOUR;
    const firstSeen = Math.min(asOfMs - windowMs + Math.floor(rng.next() * windowMs * 0.8), lastStart - DAY);
    const starts: number[] = [];
    const generic = rng.count(3.5, 1, 12);
    for (let k = 0; k < generic; k++) starts.push(firstSeen + Math.floor(rng.next() * (lastStart - firstSeen)));
    starts.sort((a, b) => a - b);
    if (cartAt !== undefined) starts.push(cartAt - 30 * MINUTE);
    const signupVisit = signsUp ? rng.int(0, starts.length - 1) : -1;

    let signedUp = false;
    let pushAsked = false;
    let pushGranted = false;
    let guestAsked = false;
    const askPush = (d: Device, at: number) => {
      // The OS prompt comes once, at the first logged-in app visit.
      if (d.platform === 'web' || pushAsked) return;
      pushAsked = true;
      pushGranted = rng.chance(R.push);
      this.consent('', userId, '', 'push', pushGranted ? 'granted' : 'revoked', 'app_permission_prompt', at);
    };

    starts.forEach((start, visit) => {
      const final = cartAt !== undefined && visit === starts.length - 1;
      const d = rng.pick(devices);
      let t = start;
      const tick = () => (t += rng.int(15, 180) * 1000);
      const ev = (name: string, product = '', withEmail = '') => {
        this.event(d.anonymousId, d.loggedIn ? userId : '', withEmail, d.platform, name, product, t);
        tick();
      };
      if (!d.seen) {
        d.seen = true;
        // A first visit meets the cookie banner (web) or the tracking prompt (app), before anyone is known.
        const granted = rng.chance(d.platform === 'web' ? R.adsWeb : R.adsApp);
        this.consent(d.anonymousId, '', '', 'ads', granted ? 'granted' : 'revoked', d.platform === 'web' ? 'cookie_banner' : 'app_tracking_prompt', t);
      }
      ev(d.platform === 'web' ? 'page_view' : 'app_opened');
      if (signedUp && !d.loggedIn && (final || rng.chance(R.login))) {
        d.loggedIn = true;
        ev('login');
        askPush(d, t);
      }
      const signup = () => {
        d.loggedIn = true;
        signedUp = true;
        ev('signup', '', this.emailVariant(email));
        const granted = rng.chance(R.emailAtSignup);
        this.consent('', userId, this.emailVariant(email), 'email_marketing', granted ? 'granted' : 'revoked', 'signup_form', t);
        if (granted && rng.chance(R.unsubscribe)) {
          // Later, from a newsletter: never after the last ordinary visit, so never in the last hour.
          const at = this.between(t, lastStart);
          if (at > t) this.consent('', '', this.emailVariant(email), 'email_marketing', 'revoked', 'unsubscribe_link', at);
        }
        askPush(d, t);
      };
      const views = rng.int(1, 4);
      const signupAt = visit === signupVisit ? rng.int(0, views) : -1;
      const viewed: string[] = [];
      for (let v = 0; v < views; v++) {
        if (v === signupAt) signup();
        const product = this.product(favourite);
        viewed.push(product);
        ev('product_viewed', product);
      }
      if (signupAt === views) signup();
      if (!final && !rng.chance(R.cart)) return;

      const cart = [...new Set([viewed[viewed.length - 1]!, ...(rng.chance(0.3) ? [rng.pick(viewed)] : [])])];
      if (final) t = cartAt!;
      for (const product of cart) ev('add_to_cart', product);
      if (final) {
        // The reminder push of an earlier flow run, opened in the app (it is logged in: pushes go to users).
        if (appDevice?.loggedIn && pushGranted && rng.chance(R.pushOpened)) {
          const opened = cartAt! + rng.int(1, 20) * HOUR + rng.int(0, 59) * MINUTE;
          if (opened < asOfMs - HOUR) this.event(appDevice.anonymousId, userId, '', appDevice.platform, 'push_opened', '', opened);
        }
        return;
      }
      if (!rng.chance(R.checkout)) return;
      ev('checkout_started');
      if (!(signedUp || guestBuyer) || !rng.chance(R.order)) return;
      customerId ??= String(6_400_000_000_000 + affine(index, 48_271, this.keys.customer % 1_000_000_000, 1_000_000_000));
      const at = t + rng.int(1, 10) * MINUTE;
      this.order(customerId, this.emailVariant(email), cart, at);
      if (!signedUp && !guestAsked) {
        guestAsked = true;
        if (rng.chance(R.emailAtCheckout)) this.consent('', '', this.emailVariant(email), 'email_marketing', 'granted', 'checkout', at);
      }
    });
  }

  private device(index: number, k: number, platform: Platform): Device {
    const head = encodeFixed(scramble32(index * 4 + k, this.keys.anon), HEX, 8);
    const rng = this.rng;
    return { anonymousId: `${head}-${rng.chars(HEX, 4)}-4${rng.chars(HEX, 3)}-${rng.pick(['8', '9', 'a', 'b'])}${rng.chars(HEX, 3)}-${rng.chars(HEX, 12)}`, platform, seen: false, loggedIn: false };
  }

  private product(favourite: string): string {
    const rng = this.rng;
    const pool = rng.chance(0.6) ? PRODUCTS.filter((p) => p[2] === favourite) : PRODUCTS;
    return rng.pick(pool)[0];
  }

  private emailVariant(email: string): string {
    if (!this.rng.chance(ECOMMERCE_RATES.emailCase)) return email;
    return this.rng.chance(0.3) ? email.toUpperCase() : email.replace(/(^|[._@])([a-z])/g, (_m, sep: string, c: string) => sep + c.toUpperCase());
  }

  private between(start: number, end: number): number {
    return start + Math.floor(this.rng.next() * Math.max(0, end - start));
  }

  private event(anonymousId: string, userId: string, email: string, platform: Platform, name: string, product: string, at: number): void {
    const id = 'evt_' + encodeFixed(scramble32(this.eventSeq++, this.keys.event), BASE62, 6) + this.rng.chars(BASE62, 10);
    this.sinks.events.write([id, anonymousId, userId, email, platform, name, product, formatTimestamp(at)]);
    this.truth('anonymous_id', anonymousId);
    this.truth('user_id', userId);
    this.truth('email', email);
  }

  private order(customerId: string, email: string, items: string[], at: number): void {
    const total = items.reduce((sum, id) => sum + Math.round(Number(PRODUCTS.find((p) => p[0] === id)![3]) * 100), 0);
    this.sinks.orders.write([String(5_100_000_001 + this.orderSeq++), customerId, email, items.join('|'), (total / 100).toFixed(2), 'EUR', formatTimestamp(at)]);
    this.truth('shopify_customer_id', customerId);
    this.truth('email', email);
  }

  private consent(anonymousId: string, userId: string, email: string, scope: string, status: string, source: string, at: number): void {
    this.sinks.consent_events.write([anonymousId, userId, email, scope, status, source, formatTimestamp(at)]);
  }

  /** Every identifier once, normalised (emails trimmed and lower-cased), when it first appears. */
  private truth(type: (typeof ECOMMERCE_IDENTIFIER_TYPES)[number], raw: string): void {
    if (raw === '') return;
    const value = type === 'email' ? normalizeEmail(raw) : raw;
    const key = type + '\u0001' + value;
    if (this.emitted.has(key)) return;
    this.emitted.add(key);
    this.sinks.truth.write([type, value, this.person]);
  }
}
