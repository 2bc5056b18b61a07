import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHAIN_HOPS,
  CLASS_IDS,
  CONSENT_SCOPES,
  EVENT_NAMES,
  generate,
  IDENTIFIER_COLUMNS,
  isJunk,
  JUNK_VALUES,
  normalizeIdentifier,
  normalizePhone,
  people,
  RATES,
  SOURCE_NAMES,
  type GenerateResult,
  type IdentifierType,
  type Person,
  type SourceName,
} from '../../src/generate/index.js';
import { REPO_ROOT } from '../helpers/project.js';

/*
 * The ground-truth generator: determinism, scaling, exact headers, truth coverage, and every
 * documented hazard at its documented rate, on 2,000 persons (≈ 20k rows, well under a second).
 */

const PERSONS = 2_000;
const SEED = 42;
const AS_OF = '2026-11-15 00:00:00';
const WINDOW_START = '2025-11-15 00:00:00';

const HEADERS: Record<SourceName, string> = {
  bookings: 'booking_id,customer_id,email,phone,class_id,status,booked_at',
  payments: 'payment_id,stripe_customer_id,email,amount,refunded_amount,currency,paid_at',
  accounts: 'user_id,email,phone,created_at',
  web_events: 'event_id,anonymous_id,user_id,device_id,event_name,page,occurred_at',
  consent_events: 'email,phone,scope,status,source,occurred_at',
  truth: 'identifier_type,identifier_value,person_id',
};
const SOURCES = SOURCE_NAMES.filter((s): s is Exclude<SourceName, 'truth'> => s !== 'truth');

let tmp: string;
let base: GenerateResult;
let again: GenerateResult;
let otherSeed: GenerateResult;
let twice: GenerateResult;
/** Parsed rows per file of `base` (no quoting is ever needed by the generator; checked below). */
const rows = {} as Record<SourceName, string[][]>;
/** `type\u0001value` → person_id. */
const truth = new Map<string, string>();
let persons: Person[];

function read(result: GenerateResult, name: SourceName): string {
  return readFileSync(result.files[name].path, 'utf8');
}

function key(type: IdentifierType, value: string): string {
  return type + '\u0001' + value;
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'cdp-generate-'));
  base = await generate({ persons: PERSONS, seed: SEED, out: path.join(tmp, 'a') });
  again = await generate({ persons: PERSONS, seed: SEED, out: path.join(tmp, 'b') });
  otherSeed = await generate({ persons: PERSONS, seed: SEED + 1, out: path.join(tmp, 'c') });
  twice = await generate({ persons: 2 * PERSONS, seed: SEED, out: path.join(tmp, 'd') });
  for (const name of SOURCE_NAMES) {
    const text = read(base, name);
    expect(text).not.toContain('"');
    rows[name] = text.trimEnd().split('\n').slice(1).map((line) => line.split(','));
  }
  for (const [type, value, person] of rows.truth) truth.set(key(type as IdentifierType, value!), person!);
  persons = [...people({ persons: PERSONS, seed: SEED })];
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('generate: files and determinism', () => {
  it('writes every file with the exact header and the reported row count', () => {
    for (const name of SOURCE_NAMES) {
      const text = read(base, name);
      expect(text.slice(0, text.indexOf('\n'))).toBe(HEADERS[name]);
      expect(base.files[name].rows).toBe(rows[name].length);
      for (const row of rows[name]) expect(row).toHaveLength(HEADERS[name].split(',').length);
    }
    expect(readdirSync(path.join(tmp, 'a')).sort()).toEqual(SOURCE_NAMES.map((n) => `${n}.csv`).sort());
  });

  it('same seed and persons ⇒ byte-identical files; another seed ⇒ different files', () => {
    for (const name of SOURCE_NAMES) {
      expect(read(again, name) === read(base, name), name).toBe(true);
      expect(read(otherSeed, name) === read(base, name), name).toBe(false);
    }
  });

  it('more persons append: the 2,000-person files are a prefix of the 4,000-person files', () => {
    for (const name of SOURCE_NAMES) expect(read(twice, name).startsWith(read(base, name)), name).toBe(true);
  });

  it('row counts scale linearly, about 10 source rows per person', () => {
    const perPerson = base.sourceRows / PERSONS;
    expect(perPerson).toBeGreaterThan(8);
    expect(perPerson).toBeLessThan(12);
    const ratio = twice.sourceRows / base.sourceRows;
    expect(ratio).toBeGreaterThan(1.9);
    expect(ratio).toBeLessThan(2.1);
    for (const name of SOURCES) expect(base.files[name].rows, name).toBeGreaterThan(PERSONS * 0.3);
  });

  it('uses fixed vocabularies, unique row ids and timestamps inside the window', () => {
    const col = (name: SourceName, header: string) => HEADERS[name].split(',').indexOf(header);
    const set = (name: SourceName, header: string) => new Set(rows[name].map((r) => r[col(name, header)]!));
    expect([...set('bookings', 'class_id')].sort()).toEqual([...CLASS_IDS].sort());
    expect([...set('bookings', 'status')].sort()).toEqual(['attended', 'booked', 'cancelled']);
    expect([...set('web_events', 'event_name')].sort()).toEqual([...EVENT_NAMES].sort());
    expect([...set('consent_events', 'scope')].sort()).toEqual([...CONSENT_SCOPES].sort());
    expect([...set('consent_events', 'status')].sort()).toEqual(['granted', 'revoked']);
    expect([...set('payments', 'currency')]).toEqual(['EUR']);
    for (const [name, id] of [['bookings', 'booking_id'], ['payments', 'payment_id'], ['accounts', 'user_id'], ['web_events', 'event_id']] as const) {
      expect(set(name, id).size, name).toBe(rows[name].length);
    }
    for (const r of rows.payments) expect(Number(r[4])).toBeLessThanOrEqual(Number(r[3]));
    for (const name of SOURCES) {
      const ts = HEADERS[name].split(',').length - 1;
      for (const r of rows[name]) {
        expect(r[ts]!).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
        expect(r[ts]! >= WINDOW_START && r[ts]! < AS_OF, `${name} ${r[ts]}`).toBe(true);
      }
    }
  });

  it('never uses Math.random or the wall clock', () => {
    for (const file of readdirSync(path.join(REPO_ROOT, 'src/generate'))) {
      const text = readFileSync(path.join(REPO_ROOT, 'src/generate', file), 'utf8');
      expect(text, file).not.toMatch(/Math\.random|Date\.now\(|new Date\(\)/);
    }
  });

  it('writes Parquet deterministically with typed columns', async () => {
    const p1 = await generate({ persons: 300, seed: SEED, out: path.join(tmp, 'p1'), format: 'parquet' });
    const p2 = await generate({ persons: 300, seed: SEED, out: path.join(tmp, 'p2'), format: 'parquet' });
    expect(readdirSync(path.join(tmp, 'p1')).sort()).toEqual(SOURCE_NAMES.map((n) => `${n}.parquet`).sort());
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      for (const name of SOURCE_NAMES) {
        expect(readFileSync(p1.files[name].path).equals(readFileSync(p2.files[name].path)), name).toBe(true);
        const reader = await connection.runAndReadAll(`SELECT count(*) AS n FROM read_parquet('${p1.files[name].path}')`);
        expect(Number(reader.getRowObjectsJS()[0]!['n'])).toBe(p1.files[name].rows);
      }
      const types = await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${p1.files.payments.path}')`);
      expect(types.getRowObjectsJS().map((r) => `${String(r['column_name'])}:${String(r['column_type'])}`)).toEqual([
        'payment_id:VARCHAR', 'stripe_customer_id:VARCHAR', 'email:VARCHAR', 'amount:DECIMAL(12,2)',
        'refunded_amount:DECIMAL(12,2)', 'currency:VARCHAR', 'paid_at:TIMESTAMP',
      ]);
    } finally {
      connection.disconnectSync();
      instance.closeSync();
    }
  });
});

describe('generate: truth', () => {
  it('maps each identifier to exactly one person, normalised', () => {
    expect(truth.size).toBe(rows.truth.length);
    for (const [type, value] of rows.truth) expect(normalizeIdentifier(type as IdentifierType, value!)).toBe(value);
    const phones = rows.truth.filter(([t]) => t === 'phone').map(([, v]) => v!);
    for (const phone of phones) expect(phone).toMatch(/^\+(3519[1236]\d{7}|346\d{8}|447\d{9})$/);
    const emails = rows.truth.filter(([t]) => t === 'email').map(([, v]) => v!);
    for (const email of emails) expect(email).toMatch(/^[a-z._]+\d+@[a-z.-]+$/);
  });

  it('covers every non-junk identifier emitted, never a junk one, and nothing that was not emitted', () => {
    const seen = new Set<string>();
    let junk = 0;
    for (const name of SOURCES) {
      for (const r of rows[name]) {
        for (const [column, type] of IDENTIFIER_COLUMNS[name]) {
          const raw = r[column]!;
          const value = normalizeIdentifier(type, raw);
          if (value === '') continue;
          if (isJunk(type, raw)) {
            junk++;
            expect(truth.has(key(type, value)), `${type} ${raw}`).toBe(false);
            continue;
          }
          expect(truth.has(key(type, value)), `${name}.${type} ${JSON.stringify(raw)}`).toBe(true);
          seen.add(key(type, value));
        }
      }
    }
    expect(seen.size).toBe(truth.size);
    expect(junk).toBeGreaterThan(0);
  });

  it('truth persons are the generator’s people', () => {
    const ids = new Set(persons.map((p) => p.id));
    for (const person of truth.values()) expect(ids.has(person)).toBe(true);
    // Everyone who did anything appears; pure no-shows (no identifiers at all) are rare.
    expect(new Set(truth.values()).size).toBeGreaterThan(PERSONS * 0.85);
  });
});

describe('generate: hazards at their documented rates', () => {
  it('junk shared identifiers in about 0.1% of rows', () => {
    let junkRows = 0;
    const values = new Map<string, number>();
    for (const name of SOURCES) {
      for (const r of rows[name]) {
        const hits = IDENTIFIER_COLUMNS[name].filter(([c, t]) => r[c] !== '' && isJunk(t, r[c]!));
        if (hits.length > 0) junkRows++;
        for (const [c] of hits) values.set(r[c]!, (values.get(r[c]!) ?? 0) + 1);
      }
    }
    const rate = junkRows / base.sourceRows;
    expect(rate).toBeGreaterThan(0.0004);
    expect(rate).toBeLessThan(0.002);
    // Junk values are shared: the same few values recur across unrelated rows.
    const allJunk = new Set(Object.values(JUNK_VALUES).flat());
    for (const v of values.keys()) expect(allJunk.has(v)).toBe(true);
    expect([...values.values()].some((n) => n > 1)).toBe(true);
  });

  it('email case and whitespace variants (~10% of email occurrences)', () => {
    let total = 0;
    let cased = 0;
    let padded = 0;
    for (const name of SOURCES) {
      for (const r of rows[name]) {
        for (const [c, t] of IDENTIFIER_COLUMNS[name]) {
          if (t !== 'email' || r[c] === '' || isJunk(t, r[c]!)) continue;
          total++;
          if (r[c] !== r[c]!.trim()) padded++;
          if (r[c]!.trim() !== r[c]!.trim().toLowerCase()) cased++;
        }
      }
    }
    expect(cased / total).toBeGreaterThan(0.05);
    expect(cased / total).toBeLessThan(0.12);
    expect(padded / total).toBeGreaterThan(0.015);
    expect(padded / total).toBeLessThan(0.05);
  });

  it('phone format variants, all normalising to one E.164 value', () => {
    const phones = SOURCES.flatMap((name) =>
      rows[name].flatMap((r) => IDENTIFIER_COLUMNS[name].filter(([c, t]) => t === 'phone' && r[c] !== '' && !isJunk(t, r[c]!)).map(([c]) => r[c]!)),
    );
    const share = (re: RegExp) => phones.filter((p) => re.test(p)).length / phones.length;
    expect(share(/^\+\d+$/)).toBeGreaterThan(0.3); // already E.164
    expect(share(/^\+\d+$/)).toBeLessThan(0.55);
    expect(share(/^9\d\d \d{3} \d{3}$/)).toBeGreaterThan(0.1); // '912 345 678'
    expect(share(/^9\d{8}$/)).toBeGreaterThan(0.03); // '912345678'
    expect(share(/^\+351 9\d\d-\d{3}-\d{3}$/)).toBeGreaterThan(0.03); // '+351 912-345-678'
    expect(share(/^00\d+$/)).toBeGreaterThan(0.05); // '00351912345678'
    expect(normalizePhone('912 345 678')).toBe('+351912345678');
    expect(normalizePhone('+351 912-345-678')).toBe('+351912345678');
    expect(normalizePhone('00351912345678')).toBe('+351912345678');
    expect(normalizePhone('+34 612 345 678')).toBe('+34612345678');
  });

  it('typo and secondary emails: one person, several emails', () => {
    const emailsPerPerson = new Map<string, number>();
    for (const [type, , person] of rows.truth) if (type === 'email') emailsPerPerson.set(person!, (emailsPerPerson.get(person!) ?? 0) + 1);
    const withEmail = persons.filter((p) => p.email).length;
    const multi = [...emailsPerPerson.values()].filter((n) => n > 1).length / withEmail;
    // Typos (5%) are always emitted; secondaries (15%) only when used.
    expect(multi).toBeGreaterThan(0.06);
    expect(multi).toBeLessThan(0.2);
    const typos = persons.filter((p) => p.typoEmail);
    expect(typos.length / withEmail).toBeGreaterThan(RATES.typoEmail * 0.6);
    expect(typos.length / withEmail).toBeLessThan(RATES.typoEmail * 1.5);
    for (const p of typos) expect(truth.get(key('email', p.typoEmail!))).toBe(p.id);
    // Guest checkouts carry no Stripe customer: the email is the only, unverified, link.
    const guest = rows.payments.filter((r) => r[1] === '');
    expect(guest.length / rows.payments.length).toBeGreaterThan(0.05);
  });

  it('households share a phone and family tablets share a device', () => {
    // Phones and devices seen next to identifiers of at least two different true people.
    const partners = new Map<string, Set<string>>();
    const note = (shared: string, person: string | undefined) => {
      if (!person) return;
      if (!partners.has(shared)) partners.set(shared, new Set());
      partners.get(shared)!.add(person);
    };
    for (const r of rows.bookings) if (r[3]) note('phone\u0001' + normalizePhone(r[3]), truth.get(key('customer_id', r[1]!)));
    for (const r of rows.accounts) if (r[2]) note('phone\u0001' + normalizePhone(r[2]), truth.get(key('user_id', r[0]!)));
    for (const r of rows.web_events) if (r[3] && r[2]) note('device_id\u0001' + r[3], truth.get(key('user_id', r[2])));
    const shared = [...partners].filter(([k, s]) => s.size > 1 && truth.has(k));
    const sharedPhones = shared.filter(([k]) => k.startsWith('phone'));
    const sharedDevices = shared.filter(([k]) => k.startsWith('device_id'));
    const households = persons.filter((p) => p.householdRole === 'owner');
    const inHouseholds = persons.filter((p) => p.household).length / PERSONS;
    expect(inHouseholds).toBeGreaterThan(0.04);
    expect(inHouseholds).toBeLessThan(0.11);
    expect(sharedPhones.length).toBeGreaterThan(households.length * 0.5);
    expect(sharedPhones.length).toBeLessThanOrEqual(households.length);
    expect(sharedDevices.length).toBeGreaterThan(0);
    expect(sharedDevices.length).toBeLessThanOrEqual(households.filter((h) => h.household!.tabletDeviceId).length);
    // A shared phone or device belongs, in truth, to the household owner.
    for (const [k] of shared) {
      const owner = truth.get(k)!;
      expect(persons[Number(owner.slice(1)) - 1]!.householdRole).toBe('owner');
    }
  });

  it(`chains: ~2% of people, diameter ${CHAIN_HOPS.min}–30, ending in a login`, () => {
    const chained = persons.filter((p) => p.chain);
    expect(chained.length / PERSONS).toBeGreaterThan(RATES.chain * 0.6);
    expect(chained.length / PERSONS).toBeLessThan(RATES.chain * 1.6);

    // Identifier graph: identifiers sharing a row are adjacent. Only edges inside one true
    // person are kept (households and junk would otherwise join people).
    const adjacency = new Map<string, Set<string>>();
    for (const name of SOURCES) {
      for (const r of rows[name]) {
        const ids = IDENTIFIER_COLUMNS[name]
          .filter(([c, t]) => r[c] !== '' && !isJunk(t, r[c]!))
          .map(([c, t]) => key(t, normalizeIdentifier(t, r[c]!)));
        for (const a of ids) {
          for (const b of ids) {
            if (a === b || truth.get(a) !== truth.get(b)) continue;
            if (!adjacency.has(a)) adjacency.set(a, new Set());
            adjacency.get(a)!.add(b);
          }
        }
      }
    }
    const bfs = (start: string): Map<string, number> => {
      const dist = new Map([[start, 0]]);
      const queue = [start];
      for (let i = 0; i < queue.length; i++) {
        for (const next of adjacency.get(queue[i]!) ?? []) {
          if (!dist.has(next)) {
            dist.set(next, dist.get(queue[i]!)! + 1);
            queue.push(next);
          }
        }
      }
      return dist;
    };

    const diameters: number[] = [];
    for (const p of chained) {
      const { nodes, hops } = p.chain!;
      const start = key(nodes[0]!.type, nodes[0]!.value);
      const fromStart = bfs(start);
      // The chain is a path: hops from its first anonymous id to the user_id it logs into.
      expect(fromStart.get(key('user_id', p.userIds[0]!)), p.id).toBe(hops);
      nodes.forEach((node, k) => expect(fromStart.get(key(node.type, node.value))).toBe(k));
      let diameter = 0;
      for (const node of fromStart.keys()) for (const d of bfs(node).values()) diameter = Math.max(diameter, d);
      diameters.push(diameter);
    }
    expect(Math.min(...diameters)).toBeGreaterThanOrEqual(10);
    expect(Math.max(...diameters)).toBeLessThanOrEqual(30);

    // Everyone else is shallow: the component of a non-chain person's first identifier is small.
    const other = persons.filter((p) => !p.chain && p.userIds.length > 0).slice(0, 200);
    for (const p of other) {
      const far = Math.max(...bfs(key('user_id', p.userIds[0]!)).values());
      expect(far, p.id).toBeLessThan(8);
    }
  });
});

describe('the repo-root sample data', () => {
  it('is exactly what `npm run generate -- --persons 300 --seed 42 --out data` writes', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cdp-sample-'));
    try {
      await generate({ persons: 300, seed: 42, out: dir });
      const root = path.join(REPO_ROOT, 'data');
      const committed = readdirSync(root).filter((f) => f.endsWith('.csv')).sort();
      expect(committed).toEqual(readdirSync(dir).filter((f) => f.endsWith('.csv')).sort());
      for (const file of committed) expect(readFileSync(path.join(root, file), 'utf8'), file).toBe(readFileSync(path.join(dir, file), 'utf8'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
