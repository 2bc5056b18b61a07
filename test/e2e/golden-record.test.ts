import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { duckdbProject, expectCode, output, projectPool } from '../helpers/project.js';
import { BOOKINGS_AND_PAYMENTS_EVENTS, CUSTOMERS_IDENTITY } from '../helpers/fixtures.js';

/** golden_record.yml end to end on DuckDB, against hand-computed expectations. */
const track = projectPool();

const IDENTITY = CUSTOMERS_IDENTITY;

const GOLDEN = `${BOOKINGS_AND_PAYMENTS_EVENTS}computed_traits:
  lifetime_revenue: { aggregate: sum, property: amount }
  largest_payment: { aggregate: max, property: amount }
  bookings_total: { aggregate: count, events: [class_booked, class_attended, class_cancelled] }
  attended_last_30_days: { aggregate: count, events: [class_attended], within_days: 30 }
  last_cancellation_at: { aggregate: last_time, events: [class_cancelled] }
  first_seen_at: { aggregate: first_time }
  days_since_last_activity: { aggregate: days_since_last }
`;

const SEEDS = {
  'seeds/customers.csv': 'customer_id,email,created_at\nC1,ana@example.com,2026-01-01 00:00:00\nC2,ben@example.com,2026-02-01 00:00:00\nC3,cy@example.com,2026-03-01 00:00:00\n',
  // Ana: attended twice (once within 30 days of 2026-11-15), cancelled once. Ben: one old booking.
  'seeds/bookings.csv': [
    'booking_id,customer_id,status,booked_at,class_id',
    '1,C1,attended,2026-11-01 10:00:00,yoga',
    '2,C1,attended,2026-09-01 10:00:00,yoga',
    '3,C1,cancelled,2026-11-10 10:00:00,hiit',
    '4,C2,booked,2026-03-01 10:00:00,spin',
  ].join('\n') + '\n',
  // Payments find Ana by email in another case: the identity normaliser applies.
  'seeds/payments.csv': 'payment_id,email,amount,paid_at\n10, ANA@example.com ,49.5,2026-10-01 00:00:00\n11,ana@example.com,20,2026-11-12 00:00:00\n12,zoe@example.com,99,2026-11-01 00:00:00\n',
};

function project(files: Record<string, string> = {}) {
  return track(duckdbProject({ 'identity.yml': IDENTITY, 'golden_record.yml': GOLDEN, ...SEEDS, ...files }));
}

describe('golden_record.yml', () => {
  it('builds the event timeline and computed traits per profile, profiles without events included', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    const traits = await p.query(`
      SELECT g.identifier_value AS customer_id, t.lifetime_revenue, t.largest_payment, t.bookings_total, t.attended_last_30_days,
             CAST(t.last_cancellation_at AS VARCHAR) AS last_cancellation_at, CAST(t.first_seen_at AS VARCHAR) AS first_seen_at, t.days_since_last_activity
      FROM main.profile_traits AS t JOIN main.identity_graph AS g ON g.profile_id = t.profile_id AND g.identifier_type = 'customer_id'
      ORDER BY 1`);
    const num = (value: unknown) => (value === null ? null : Number(value));
    expect(traits.map((row) => ({ ...row, lifetime_revenue: num(row['lifetime_revenue']), largest_payment: num(row['largest_payment']), bookings_total: num(row['bookings_total']), attended_last_30_days: num(row['attended_last_30_days']), days_since_last_activity: num(row['days_since_last_activity']) }))).toEqual([
      {
        customer_id: 'C1',
        lifetime_revenue: 69.5,
        largest_payment: 49.5,
        bookings_total: 3,
        attended_last_30_days: 1,
        last_cancellation_at: '2026-11-10 10:00:00',
        first_seen_at: '2026-09-01 10:00:00',
        // Last activity: the payment on 2026-11-12.
        days_since_last_activity: 3,
      },
      {
        customer_id: 'C2',
        lifetime_revenue: 0,
        largest_payment: null,
        bookings_total: 1,
        attended_last_30_days: 0,
        last_cancellation_at: null,
        first_seen_at: '2026-03-01 10:00:00',
        days_since_last_activity: 259,
      },
      {
        // Cy has no event: counts and sums are 0, everything else NULL.
        customer_id: 'C3',
        lifetime_revenue: 0,
        largest_payment: null,
        bookings_total: 0,
        attended_last_30_days: 0,
        last_cancellation_at: null,
        first_seen_at: null,
        days_since_last_activity: null,
      },
    ]);
    const [zero] = await p.query('SELECT COUNT(*) AS n FROM main.profile_traits WHERE bookings_total = 0');
    expect(Number(zero!['n'])).toBe(1);
    // Zoe paid but is not in the identity graph: her events belong to no profile.
    const timeline = await p.query(`
      SELECT e.event_seq, e.event_name, e.source, CAST(e.occurred_at AS VARCHAR) AS occurred_at
      FROM main.profile_events AS e JOIN main.identity_graph AS g ON g.profile_id = e.profile_id AND g.identifier_value = 'C1'
      ORDER BY e.event_seq`);
    expect(timeline.map((r) => `${r['event_seq']} ${r['event_name']} ${r['source']} ${r['occurred_at']}`)).toEqual([
      '1 class_attended bookings 2026-09-01 10:00:00',
      '2 payment payments 2026-10-01 00:00:00',
      '3 class_attended bookings 2026-11-01 10:00:00',
      '4 class_cancelled bookings 2026-11-10 10:00:00',
      '5 payment payments 2026-11-12 00:00:00',
    ]);
    const [events] = await p.query('SELECT COUNT(*) AS n FROM main.profile_events');
    expect(Number(events!['n'])).toBe(6);
  });

  it('compiles to one aggregation pass per event source, shown by cdp compile', async () => {
    const p = project();
    expectCode(await p.cdp(['compile']), 0);
    const sql = p.read('target/compiled/test_project/golden_record/profile_traits.sql');
    // Each source is aggregated once, by its identifier (resolved to profiles after), then combined.
    expect(sql.match(/GROUP BY src\."(customer_id|email)"/g)).toEqual(['GROUP BY src."customer_id"', 'GROUP BY src."email"']);
    expect(sql.match(/JOIN "main"\."identity_graph"/g)).toHaveLength(2);
    expect(sql.match(/GROUP BY p\.profile_id/g)).toHaveLength(1);
  });

  it.each([
    ['a sum without a property', 'lifetime_revenue: { aggregate: sum, property: amount }', 'lifetime_revenue: { aggregate: sum }', /needs `property`/],
    ['a property no source lists', 'lifetime_revenue: { aggregate: sum, property: amount }', 'lifetime_revenue: { aggregate: sum, property: price }', /computed_traits\.lifetime_revenue\.property.*price/],
    ['an unknown aggregate', 'largest_payment: { aggregate: max, property: amount }', 'largest_payment: { aggregate: median, property: amount }', /expected one of: count, sum/],
    ['an identifier type identity.yml lacks', 'identifier: { type: email, column: email }', 'identifier: { type: phone, column: email }', /`phone` is not an identifier type/],
  ])('rejects %s with file and key (exit 2, nothing built)', async (_name, from, to, message) => {
    const p = project({ 'golden_record.yml': GOLDEN.replace(from, to) });
    const run = expectCode(await p.cdp(['build']), 2);
    // A configuration error stops before the warehouse is opened: nothing is built.
    expect(existsSync(p.path('target/test.duckdb'))).toBe(false);
    expect(output(run)).toMatch(/golden_record\.yml:\d+/);
    expect(output(run)).toMatch(message);
  });

  it('needs identity.yml', async () => {
    const p = project();
    p.remove('identity.yml');
    const run = expectCode(await p.cdp(['compile']), 2);
    expect(output(run)).toMatch(/golden_record\.yml needs identity\.yml/);
  });
});
