import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { duckdbProject, expectCode, output, projectPool } from '../helpers/project.js';
import { CUSTOMERS_IDENTITY } from '../helpers/fixtures.js';

/** The `traits:` section of golden_record.yml (survivorship) on DuckDB, against hand-computed expectations. */
const track = projectPool();

const IDENTITY = CUSTOMERS_IDENTITY;

const ACC = `from: ref('accounts'), identifier: { type: customer_id, column: customer_id }, timestamp: created_at`;
const BKG = `from: ref('bookings'), identifier: { type: customer_id, column: customer_id }, timestamp: booked_at`;

const GOLDEN = `traits:
  email:
    type: string
    rule: verified_first
    candidates:
      - { ${ACC}, column: email, verified: true, source: accounts }
      - { ${BKG}, column: email, source: bookings }
  phone:
    type: string
    rule: source_priority
    priority: [accounts, bookings]
    candidates:
      - { ${ACC}, column: phone, source: accounts }
      - { ${BKG}, column: phone, source: bookings }
  latest_email:
    type: string
    rule: most_recent
    candidates:
      - { ${ACC}, column: email, source: accounts }
      - { ${BKG}, column: email, source: bookings }
  first_class:
    type: string
    rule: first_seen
    candidates:
      - { ${BKG}, column: class_id }
  preferred_class:
    type: string
    rule: most_frequent
    candidates:
      - { ${BKG}, column: class_id }
  biggest_booking: { type: number, rule: max, candidates: [{ ${BKG}, column: amount }] }
  smallest_booking: { type: number, rule: min, candidates: [{ ${BKG}, column: amount }] }
  total_spent: { type: number, rule: sum, candidates: [{ ${BKG}, column: amount }] }
  last_booking_at: { type: timestamp, rule: max, candidates: [{ ${BKG}, column: booked_at }] }
`;

const SEEDS = {
  'seeds/customers.csv': 'customer_id,email,created_at\nC1,ana@a.com,2026-01-01 00:00:00\nC2,ben@b.com,2026-01-01 00:00:00\nC3,cy@c.com,2026-01-01 00:00:00\n',
  'seeds/accounts.csv': 'customer_id,email,phone,created_at\nC1,ana@a.com,111,2026-01-01 00:00:00\nC2,,,2026-02-01 00:00:00\n',
  'seeds/bookings.csv': [
    'customer_id,email,phone,class_id,amount,booked_at',
    'C1,ana.new@b.com,999,yoga,10,2026-03-01 00:00:00',
    'C1,ana.new@b.com,,spin,30,2026-04-01 00:00:00',
    'C1,,,yoga,5,2026-05-01 00:00:00',
    'C2,ben@b.com,333,spin,20,2026-02-10 00:00:00',
    'C2,ben@b.com,,hiit,20,2026-03-10 00:00:00',
  ].join('\n') + '\n',
};

function project(files: Record<string, string> = {}) {
  return track(duckdbProject({ 'identity.yml': IDENTITY, 'golden_record.yml': GOLDEN, ...SEEDS, ...files }));
}

const TRAITS = ['email', 'phone', 'latest_email', 'first_class', 'preferred_class', 'biggest_booking', 'smallest_booking', 'total_spent', 'last_booking_at'];

describe('golden_record.yml traits (survivorship)', () => {
  it('picks each trait by its rule, with the source and time of the winning value', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    const columns = TRAITS.map((t) => `CAST(r.${t} AS VARCHAR) || ' ' || r.${t}__source || ' ' || CAST(r.${t}__at AS VARCHAR) AS ${t}`).join(', ');
    const rows = await p.query(`
      SELECT g.identifier_value AS customer_id, ${columns}
      FROM main.golden_records AS r JOIN main.identity_graph AS g ON g.profile_id = r.profile_id AND g.identifier_type = 'customer_id'
      ORDER BY 1`);
    expect(rows).toEqual([
      {
        customer_id: 'C1',
        // The verified account email survives newer, unverified booking emails.
        email: 'ana@a.com accounts 2026-01-01 00:00:00',
        phone: '111 accounts 2026-01-01 00:00:00',
        latest_email: 'ana.new@b.com bookings 2026-04-01 00:00:00',
        first_class: 'yoga bookings 2026-03-01 00:00:00',
        // yoga twice: the provenance is its most recent occurrence.
        preferred_class: 'yoga bookings 2026-05-01 00:00:00',
        biggest_booking: '30.0 bookings 2026-04-01 00:00:00',
        smallest_booking: '5.0 bookings 2026-05-01 00:00:00',
        // 10 + 30 + 5; the provenance is the most recent contributing row.
        total_spent: '45.0 bookings 2026-05-01 00:00:00',
        last_booking_at: '2026-05-01 00:00:00 bookings 2026-05-01 00:00:00',
      },
      {
        customer_id: 'C2',
        // No verified value: the most recent unverified one.
        email: 'ben@b.com bookings 2026-03-10 00:00:00',
        // The account has no phone: the next source in priority.
        phone: '333 bookings 2026-02-10 00:00:00',
        latest_email: 'ben@b.com bookings 2026-03-10 00:00:00',
        first_class: 'spin bookings 2026-02-10 00:00:00',
        // spin and hiit once each: the most recent wins the tie.
        preferred_class: 'hiit bookings 2026-03-10 00:00:00',
        biggest_booking: '20.0 bookings 2026-03-10 00:00:00',
        smallest_booking: '20.0 bookings 2026-03-10 00:00:00',
        total_spent: '40.0 bookings 2026-03-10 00:00:00',
        last_booking_at: '2026-03-10 00:00:00 bookings 2026-03-10 00:00:00',
      },
      // Cy has a profile and no candidate value: a row of NULLs.
      Object.fromEntries([['customer_id', 'C3'], ...TRAITS.map((t) => [t, null])]),
    ]);
    const types = await p.query(`SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'golden_records' AND column_name IN ('total_spent', 'last_booking_at', 'email__at', 'email__source') ORDER BY 1`);
    expect(types.map((r) => `${r['column_name']} ${r['data_type']}`)).toEqual(['email__at TIMESTAMP', 'email__source VARCHAR', 'last_booking_at TIMESTAMP', 'total_spent DOUBLE']);
  });

  it('gives sum and most_frequent the first source by name on a tie in time, and to undated rows', async () => {
    const pay = (source: string, table: string, column: string) => `{ from: ref('${table}'), identifier: { type: customer_id, column: customer_id }, column: ${column}, timestamp: paid_at, source: ${source} }`;
    const p = project({
      // beta is listed first: the order of candidates must not matter, only source names.
      'golden_record.yml': `traits:
  total: { type: number, rule: sum, candidates: [${pay('beta', 'pay_b', 'amount')}, ${pay('alpha', 'pay_a', 'amount')}] }
  favourite: { type: string, rule: most_frequent, candidates: [${pay('beta', 'pay_b', 'item')}, ${pay('alpha', 'pay_a', 'item')}] }
`,
      'seeds/pay_a.csv': 'customer_id,item,amount,paid_at\nC1,x,10,2026-05-01 00:00:00\nC2,y,1,\n',
      'seeds/pay_b.csv': 'customer_id,item,amount,paid_at\nC1,x,5,2026-05-01 00:00:00\nC1,z,7,2026-04-01 00:00:00\nC2,y,2,\n',
    });
    expectCode(await p.cdp(['build']), 0);
    const rows = await p.query(`
      SELECT g.identifier_value AS customer_id, r.total, r.total__source, CAST(r.total__at AS VARCHAR) AS total_at,
             r.favourite, r.favourite__source, CAST(r.favourite__at AS VARCHAR) AS favourite_at
      FROM main.golden_records AS r JOIN main.identity_graph AS g ON g.profile_id = r.profile_id AND g.identifier_type = 'customer_id'
      ORDER BY 1`);
    expect(rows.map((r) => ({ ...r, total: r['total'] === null ? null : Number(r['total']) }))).toEqual([
      // alpha and beta both paid last on 2026-05-01: alpha, by name. x twice (alpha and beta), z once.
      { customer_id: 'C1', total: 22, total__source: 'alpha', total_at: '2026-05-01 00:00:00', favourite: 'x', favourite__source: 'alpha', favourite_at: '2026-05-01 00:00:00' },
      // No dated row: the first source by name, and no time.
      { customer_id: 'C2', total: 3, total__source: 'alpha', total_at: null, favourite: 'y', favourite__source: 'alpha', favourite_at: null },
      { customer_id: 'C3', total: null, total__source: null, total_at: null, favourite: null, favourite__source: null, favourite_at: null },
    ]);
  });

  it('reads candidate columns whatever they are called, even like its own columns', async () => {
    const p = project({
      'golden_record.yml': `traits:
  checked:
    type: boolean
    rule: verified_first
    candidates:
      - { from: ref('flags'), identifier: { type: customer_id, column: customer_id }, column: verified, timestamp: sighted_at, verified: "profile_no = 'yes'" }
`,
      'seeds/flags.csv': 'customer_id,verified,sighted_at,profile_no\nC1,true,2026-01-01 00:00:00,yes\nC1,false,2026-02-01 00:00:00,no\n',
    });
    expectCode(await p.cdp(['build']), 0);
    const rows = await p.query(`
      SELECT g.identifier_value AS customer_id, r.checked, CAST(r.checked__at AS VARCHAR) AS checked_at
      FROM main.golden_records AS r JOIN main.identity_graph AS g ON g.profile_id = r.profile_id AND g.identifier_type = 'customer_id'
      WHERE g.identifier_value = 'C1'`);
    // The verified row (profile_no = 'yes') wins over the later unverified one.
    expect(rows).toEqual([{ customer_id: 'C1', checked: true, checked_at: '2026-01-01 00:00:00' }]);
  });

  it('decides every trait with set-based aggregates over one row per source row, shown by cdp compile', async () => {
    const p = project();
    expectCode(await p.cdp(['compile']), 0);
    const sql = p.read('target/compiled/test_project/golden_record/golden_records.sql');
    // Profiles are numbered once; one scan and one identity lookup per candidate source
    // (accounts twice: its email candidate is verified).
    expect(sql.match(/FROM "main"\."identity_graph"/g)).toHaveLength(1);
    expect(sql.match(/JOIN profile_identifiers/g)).toHaveLength(3);
    // The three scans are stacked once, not once per trait candidate.
    expect(sql.match(/UNION ALL/g)).toHaveLength(2);
    // Aggregates decide the winners (keys, vals); one window ranks most_frequent's value groups
    // (the other numbers the profiles).
    expect(sql.match(/GROUP BY c\.profile_no/g)).toHaveLength(2);
    expect(sql.match(/ROW_NUMBER\(\) OVER \(PARTITION BY/g)).toHaveLength(1);
  });

  it.each([
    ['a trait with no candidates', 'first_class:\n    type: string\n    rule: first_seen\n    candidates:\n      - { ' + BKG + ', column: class_id }', 'first_class:\n    type: string\n    rule: first_seen\n    candidates: []', /traits\.first_class\.candidates.*`first_class` has no candidate column/],
    ['a trait without candidates', 'first_class:\n    type: string\n    rule: first_seen\n    candidates:\n      - { ' + BKG + ', column: class_id }', 'first_class:\n    type: string\n    rule: first_seen', /traits\.first_class.*`first_class` has no candidate column/],
    ['sum on a string trait', 'total_spent: { type: number, rule: sum', 'total_spent: { type: string, rule: sum', /traits\.total_spent\.rule.*`sum` rule does not apply to a string trait/],
    ['max on a boolean trait', 'biggest_booking: { type: number, rule: max', 'biggest_booking: { type: boolean, rule: max', /`max` rule does not apply to a boolean trait/],
    ['an unknown rule', 'rule: most_recent', 'rule: newest', /traits\.latest_email\.rule.*expected one of: source_priority/],
    ['an unknown type', 'biggest_booking: { type: number', 'biggest_booking: { type: money', /traits\.biggest_booking\.type.*expected one of: string, number, timestamp, boolean/],
    ['source_priority without priority', '    priority: [accounts, bookings]\n', '', /traits\.phone.*needs `traits\.phone\.priority`/],
    ['a priority naming an unknown source', 'priority: [accounts, bookings]', 'priority: [accounts, crm, bookings]', /traits\.phone\.priority\.1.*`crm` is not the source of any candidate/],
    ['a priority missing a source', 'priority: [accounts, bookings]', 'priority: [accounts]', /traits\.phone\.priority.*does not rank.*`bookings`/],
    ['an unknown identifier type', "{ type: customer_id, column: customer_id }, timestamp: created_at", "{ type: user_id, column: customer_id }, timestamp: created_at", /traits\.email\.candidates\.0\.identifier\.type.*`user_id` is not an identifier type/],
    ['a candidate without a column', '{ ' + BKG + ', column: class_id }', '{ ' + BKG + ' }', /Missing required key `traits\.first_class\.candidates\.0\.column`/],
  ])('rejects %s with file and key (exit 2)', async (_name, from, to, message) => {
    const golden = GOLDEN.replace(from, to);
    expect(golden).not.toBe(GOLDEN);
    const p = project({ 'golden_record.yml': golden });
    const run = expectCode(await p.cdp(['build']), 2);
    // A configuration error stops before the warehouse is opened: nothing is built.
    expect(existsSync(p.path('target/test.duckdb'))).toBe(false);
    expect(output(run)).toMatch(/golden_record\.yml:\d+/);
    expect(output(run)).toMatch(message);
  });
});
