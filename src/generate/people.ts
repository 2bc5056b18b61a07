import { affine, BASE62, deriveSeed, encodeFixed, HEX, Rng, scramble32 } from './prng.js';

/**
 * The true people behind the generated sources. A person is drawn from its own PRNG stream
 * (`deriveSeed(seed, index)`), so person k is the same whatever `--persons` says, and every
 * identifier embeds a bijection of the person index: two people can never collide by accident,
 * only through the documented hazards (households, family tablets, junk values).
 */

/** Hazard and behaviour rates; docs/generator.md quotes these. */
export const RATES = {
  /** Share of people with at least one email address. */
  email: 0.85,
  /** Share of people with a phone of their own. */
  phone: 0.7,
  /** Share of phones that are Spanish/British rather than Portuguese. */
  foreignPhone: 0.1,
  /** Share of people who book classes (have a Mindbody-like customer_id). */
  books: 0.55,
  /** Share of people with email who have an app/web account (forced for chain people). */
  account: 0.55,
  /** Share of account holders with a second, duplicate account under their secondary email. */
  duplicateAccount: 0.02,
  /** Share of people with email who are saved Stripe customers. */
  stripe: 0.4,
  /** Share of people with email who check out as guests at least once. */
  guestCheckout: 0.15,
  /** Share of people with email who also use a secondary email somewhere. */
  secondaryEmail: 0.15,
  /** Share of people with email who type a typo'd variant of it at a guest checkout. */
  typoEmail: 0.05,
  /** Share of people who browse the website (1–3 anonymous ids). */
  web: 0.7,
  /** Share of account holders who use the app (1–2 devices). */
  app: 0.3,
  /** Share of people whose identifiers form a long chain (see docs/generator.md). */
  chain: 0.02,
  /** Probability that a person not already in a household starts one (size 2–4, shares the owner's phone). */
  householdStart: 0.03,
  /** Share of households with a family tablet used by every member with an account. */
  familyTablet: 0.4,
  /** Probability that a household member gives the household phone rather than their own. */
  householdPhoneUse: 0.7,
} as const;

/** Chain length in hops from the first anonymous id to the user_id it ends in. */
export const CHAIN_HOPS = { min: 10, max: 26 } as const;

const FIRST_NAMES = [
  'ana', 'joao', 'maria', 'pedro', 'ines', 'tiago', 'beatriz', 'rui', 'sofia', 'miguel', 'catarina', 'diogo',
  'mariana', 'goncalo', 'rita', 'nuno', 'leonor', 'andre', 'carolina', 'bruno', 'marta', 'ricardo', 'joana',
  'luis', 'helena', 'filipe', 'clara', 'hugo', 'laura', 'david', 'lucia', 'carlos', 'emma', 'finn', 'noah',
  'olivia', 'lucas', 'chloe', 'dev', 'priya', 'ben', 'cleo', 'sara', 'paulo', 'teresa', 'vasco', 'alice', 'jorge',
];
const LAST_NAMES = [
  'silva', 'santos', 'ferreira', 'pereira', 'oliveira', 'costa', 'rodrigues', 'martins', 'jesus', 'sousa',
  'fernandes', 'goncalves', 'gomes', 'lopes', 'marques', 'alves', 'almeida', 'ribeiro', 'pinto', 'carvalho',
  'teixeira', 'moreira', 'correia', 'mendes', 'nunes', 'soares', 'vieira', 'monteiro', 'cardoso', 'rocha',
  'garcia', 'lopez', 'martin', 'smith', 'jones', 'berg', 'patel', 'okafor', 'lima', 'muller', 'dubois', 'rossi',
];
const DOMAINS: readonly (readonly [string, number])[] = [
  ['gmail.com', 40], ['hotmail.com', 12], ['outlook.com', 10], ['sapo.pt', 10], ['yahoo.com', 7],
  ['icloud.com', 8], ['live.com.pt', 5], ['gmx.de', 4], ['protonmail.com', 4],
];
const WORK_DOMAINS = ['empresa.pt', 'consultoria.pt', 'hospital-lisboa.pt', 'uni.example.edu', 'techcorp.io', 'banco.pt'];
const DOMAIN_TYPOS: Record<string, string[]> = {
  'gmail.com': ['gmial.com', 'gmail.con', 'gmai.com', 'gnail.com'],
  'hotmail.com': ['hotmial.com', 'hotmail.co', 'hotmal.com'],
  'outlook.com': ['outlok.com', 'outlook.co'],
  'yahoo.com': ['yaho.com', 'yahoo.co'],
  'icloud.com': ['icoud.com', 'icloud.co'],
};

export interface ContactPhone {
  /** E.164. */
  e164: string;
  country: 'PT' | 'ES' | 'GB';
  /** person_id of the phone's true owner (a household owner for shared phones). */
  ownerId: string;
}

export interface Household {
  ownerId: string;
  size: number;
  /** Owner's E.164 phone, given by members too. */
  phone: ContactPhone;
  /** Family tablet device id, owned (in truth) by the household owner. */
  tabletDeviceId?: string;
}

export interface Chain {
  /** Alternating anonymous_id / device_id nodes, starting with an anonymous_id. */
  nodes: { type: 'anonymous_id' | 'device_id'; value: string }[];
  /** Hops from nodes[0] to the user_id: nodes.length - 1 chain rows, plus the login row. */
  hops: number;
}

export interface Person {
  index: number;
  id: string;
  /** Canonical (normalised) primary email. */
  email?: string;
  secondaryEmail?: string;
  typoEmail?: string;
  /** The person's own phone. */
  ownPhone?: ContactPhone;
  /** The phone they give in forms: their own, or their household's. */
  contactPhone?: ContactPhone;
  household?: Household;
  householdRole?: 'owner' | 'member';
  customerId?: string;
  stripeCustomerId?: string;
  /** Account user ids; the second one, if any, is a duplicate account under the secondary email. */
  userIds: string[];
  /** How the first account was created. */
  signupChannel?: 'web' | 'app' | 'desk';
  /** Web anonymous ids (one per browser). */
  anonymousIds: string[];
  /** App devices of their own. */
  deviceIds: string[];
  usesFamilyTablet: boolean;
  chain?: Chain;
  /** Epoch ms of the first activity. */
  firstSeen: number;
  /** Epoch ms the account was created, if any. */
  accountCreated?: number;
  /** Number of bookings, saved-card payments and guest checkouts. */
  bookings: number;
  payments: number;
  guestCheckouts: number;
}

export interface PeopleConfig {
  seed: number;
  /** Epoch ms, end of the window. */
  asOfMs: number;
  /** Window length in ms. */
  windowMs: number;
}

/** The upper bound on `--persons`: numeric identifiers are bijections on 10^7-sized ranges. */
export const MAX_PERSONS = 10_000_000;

export function personId(index: number): string {
  return 'P' + String(index + 1).padStart(7, '0');
}

/**
 * Makes people in index order. Households span consecutive indices, so the factory keeps the
 * current household (and nothing else) between calls: memory stays constant.
 */
export class PersonFactory {
  private household: Household | undefined;
  private householdLeft = 0;
  private readonly keys: Record<'customer' | 'phone' | 'es' | 'gb' | 'email' | 'user' | 'stripe' | 'anon' | 'device', number>;

  constructor(private readonly config: PeopleConfig) {
    const k = (n: number) => deriveSeed(config.seed, 0x6b657973, n);
    this.keys = { customer: k(1), phone: k(2), es: k(3), gb: k(4), email: k(5), user: k(6), stripe: k(7), anon: k(8), device: k(9) };
  }

  /** Person `index`; call with 0, 1, 2, ... in order. */
  make(index: number): Person {
    if (index >= MAX_PERSONS) throw new RangeError(`at most ${MAX_PERSONS} persons are supported`);
    const rng = new Rng(deriveSeed(this.config.seed, 0x70657273, index));
    const id = personId(index);
    const { asOfMs, windowMs } = this.config;
    const firstSeen = Math.floor(asOfMs - windowMs + rng.next() * windowMs * 0.85);

    const person: Person = {
      index, id, userIds: [], anonymousIds: [], deviceIds: [], usesFamilyTablet: false, firstSeen,
      bookings: 0, payments: 0, guestCheckouts: 0,
    };

    // Household membership: either continue the current household or maybe start one.
    let role: 'owner' | 'member' | undefined;
    if (this.householdLeft > 0) {
      role = 'member';
      person.household = this.household;
      this.householdLeft--;
    } else {
      this.household = undefined;
      if (rng.chance(RATES.householdStart)) role = 'owner';
    }
    person.householdRole = role;

    if (role === 'owner' || rng.chance(RATES.phone)) person.ownPhone = this.phone(index, rng, id);
    if (role === 'owner') {
      const size = rng.weighted([[2, 6], [3, 3], [4, 1]] as const);
      const household: Household = { ownerId: id, size, phone: person.ownPhone! };
      if (rng.chance(RATES.familyTablet)) household.tabletDeviceId = this.deviceId(index, 2, 0, rng);
      this.household = household;
      this.householdLeft = size - 1;
      person.household = household;
    }
    person.contactPhone = role === 'member' && (!person.ownPhone || rng.chance(RATES.householdPhoneUse))
      ? person.household!.phone
      : person.ownPhone;

    const chain = rng.chance(RATES.chain);
    if (chain || rng.chance(RATES.email)) {
      const number = affine(index, 7919, this.keys.email % 10_000_000, 10_000_000);
      const first = rng.pick(FIRST_NAMES);
      const last = rng.pick(LAST_NAMES);
      const domain = rng.weighted(DOMAINS);
      const pattern = rng.int(0, 4);
      person.email = `${localPart(first, last, pattern)}${number}@${domain}`;
      if (rng.chance(RATES.secondaryEmail)) {
        person.secondaryEmail = `${localPart(first, last, (pattern + 1 + rng.int(0, 3)) % 5)}${number}@${rng.pick(WORK_DOMAINS)}`;
      }
      if (rng.chance(RATES.typoEmail)) person.typoEmail = typo(person.email, rng);
    }

    if (rng.chance(RATES.books)) {
      person.customerId = String(100_000_000 + affine(index, 48_271, this.keys.customer % 100_000_000, 100_000_000));
      person.bookings = rng.count(5, 1, 40);
    }

    if (person.email) {
      if (rng.chance(RATES.stripe)) {
        person.stripeCustomerId = 'cus_' + encodeFixed(scramble32(index, this.keys.stripe), BASE62, 6) + rng.chars(BASE62, 8);
        person.payments = rng.count(2.5, 1, 30);
      }
      if (rng.chance(RATES.guestCheckout) || person.typoEmail) person.guestCheckouts = rng.count(1.3, 1, 6);
      if (chain || rng.chance(RATES.account)) {
        person.userIds.push(this.userId(index, 0));
        person.accountCreated = Math.floor(firstSeen + rng.next() * (asOfMs - firstSeen) * 0.3);
        if (person.secondaryEmail && !chain && rng.chance(RATES.duplicateAccount / RATES.secondaryEmail)) person.userIds.push(this.userId(index, 1));
      }
    }

    if (rng.chance(RATES.web)) {
      const n = rng.weighted([[1, 6], [2, 3], [3, 1]] as const);
      for (let k = 0; k < n; k++) person.anonymousIds.push(this.anonymousId(index, 0, k, rng));
    }
    if (person.userIds.length > 0) {
      if (rng.chance(RATES.app)) {
        const n = rng.weighted([[1, 8], [2, 2]] as const);
        for (let k = 0; k < n; k++) person.deviceIds.push(this.deviceId(index, 0, k, rng));
      }
      person.signupChannel = person.anonymousIds.length > 0 ? 'web' : person.deviceIds.length > 0 ? 'app' : 'desk';
      person.usesFamilyTablet = person.household?.tabletDeviceId !== undefined && (role === 'owner' || rng.chance(0.8));
    }

    if (chain) {
      const hops = rng.int(CHAIN_HOPS.min, CHAIN_HOPS.max);
      const nodes: Chain['nodes'] = [];
      for (let k = 0; k < hops; k++) {
        nodes.push(k % 2 === 0
          ? { type: 'anonymous_id', value: this.anonymousId(index, 1, k >> 1, rng) }
          : { type: 'device_id', value: this.deviceId(index, 1, k >> 1, rng) });
      }
      person.chain = { nodes, hops };
    }
    return person;
  }

  private phone(index: number, rng: Rng, ownerId: string): ContactPhone {
    if (rng.chance(RATES.foreignPhone)) {
      if (rng.chance(0.6)) {
        const n = affine(index, 48_271, this.keys.es % 100_000_000, 100_000_000);
        return { e164: '+346' + String(n).padStart(8, '0'), country: 'ES', ownerId };
      }
      const n = affine(index, 48_271, this.keys.gb % 1_000_000_000, 1_000_000_000);
      return { e164: '+447' + String(n).padStart(9, '0'), country: 'GB', ownerId };
    }
    const n = affine(index, 40_503, this.keys.phone % 40_000_000, 40_000_000);
    const prefix = ['91', '92', '93', '96'][Math.floor(n / 10_000_000)]!;
    return { e164: '+351' + prefix + String(n % 10_000_000).padStart(7, '0'), country: 'PT', ownerId };
  }

  private userId(index: number, k: number): string {
    return 'usr_' + encodeFixed(scramble32(index * 2 + k, this.keys.user), BASE62, 6);
  }

  /** Lower-case UUID-shaped; unique by (index, kind, k), kind < 4, k < 16. */
  private anonymousId(index: number, kind: number, k: number, rng: Rng): string {
    return uuid(scramble32(index * 64 + kind * 16 + k, this.keys.anon), rng);
  }

  /** Upper-case UUID-shaped (IDFV-like); unique by (index, kind, k), kind < 4, k < 16. */
  private deviceId(index: number, kind: number, k: number, rng: Rng): string {
    return uuid(scramble32(index * 64 + kind * 16 + k, this.keys.device), rng).toUpperCase();
  }
}

/** The first 8 hex digits are a bijection of the slot (so ids never collide); the rest is random. */
function uuid(head: number, rng: Rng): string {
  return `${encodeFixed(head, HEX, 8)}-${rng.chars(HEX, 4)}-4${rng.chars(HEX, 3)}-${rng.pick(['8', '9', 'a', 'b'])}${rng.chars(HEX, 3)}-${rng.chars(HEX, 12)}`;
}

function localPart(first: string, last: string, pattern: number): string {
  switch (pattern) {
    case 0: return `${first}.${last}`;
    case 1: return `${first}${last}`;
    case 2: return `${first[0]}${last}`;
    case 3: return `${first}_${last}`;
    default: return first;
  }
}

/**
 * A typo that keeps the person-unique number intact (so it can never equal anyone else's
 * address): a domain typo, or a dropped, doubled or swapped letter in the name part.
 */
export function typo(email: string, rng: Rng): string {
  const at = email.indexOf('@');
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  const typos = DOMAIN_TYPOS[domain];
  const nameEnd = local.search(/\d/);
  const name = local.slice(0, nameEnd);
  const number = local.slice(nameEnd);
  for (let attempt = 0; attempt < 8; attempt++) {
    const op = rng.int(0, typos ? 3 : 2);
    let out: string;
    if (op === 3) {
      out = `${local}@${rng.pick(typos!)}`;
    } else {
      const letters: number[] = [];
      for (let i = 0; i < name.length; i++) if (/[a-z]/.test(name[i]!)) letters.push(i);
      const i = rng.pick(letters);
      let mangled: string;
      if (op === 0 && letters.length > 2) mangled = name.slice(0, i) + name.slice(i + 1);
      else if (op === 1) mangled = name.slice(0, i) + name[i] + name.slice(i);
      else mangled = i + 1 < name.length && /[a-z]/.test(name[i + 1]!) ? name.slice(0, i) + name[i + 1] + name[i] + name.slice(i + 2) : name;
      out = `${mangled}${number}@${domain}`;
    }
    if (out !== email) return out;
  }
  return `${name}${name.at(-1)}${number}@${domain}`;
}
