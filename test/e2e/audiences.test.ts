import { cpSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, duckdbProject, expectCode, output, projectPool, TempProject } from '../helpers/project.js';
import { BOOKINGS_AND_PAYMENTS_EVENTS, CUSTOMERS_IDENTITY } from '../helpers/fixtures.js';

/** audiences/*.yml end to end on DuckDB, against hand-computed expectations. */
const track = projectPool();

const IDENTITY = CUSTOMERS_IDENTITY;

const GOLDEN = `${BOOKINGS_AND_PAYMENTS_EVENTS}computed_traits:
  lifetime_revenue: { aggregate: sum, property: amount }
  bookings_total: { aggregate: count, events: [class_booked, class_attended, class_cancelled] }
  last_payment_at: { aggregate: last_time, events: [payment] }
  days_since_last_activity: { aggregate: days_since_last }
`;

/** Stands in for the consent_state model of golden_record.yml's consent section (same contract). */
const CONSENT_STATE = `SELECT g.profile_id, c.scope, c.status, CAST(c.set_at AS TIMESTAMP) AS set_at, 'test' AS set_by_source, FALSE AS is_default
FROM {{ ref "consent" }} AS c
JOIN {{ ref "identity_graph" }} AS g ON g.identifier_type = 'customer_id' AND g.identifier_value = c.customer_id
`;

// Ana (C1): 3 bookings, 69.5 paid, last active 2026-11-12. Ben (C2): 1 old booking. Cara (C3): 3 old bookings.
const SEEDS = {
  'seeds/customers.csv': 'customer_id,email,created_at\nC1,ana@example.com,2026-01-01 00:00:00\nC2,ben@example.com,2026-02-01 00:00:00\nC3,cara@example.com,2026-02-01 00:00:00\n',
  'seeds/bookings.csv': [
    'booking_id,customer_id,status,booked_at,class_id',
    '1,C1,attended,2026-11-01 10:00:00,yoga',
    '2,C1,attended,2026-09-01 10:00:00,yoga',
    '3,C1,cancelled,2026-11-10 10:00:00,hiit',
    '4,C2,booked,2026-03-01 10:00:00,spin',
    '5,C3,attended,2026-05-01 10:00:00,spin',
    '6,C3,attended,2026-05-08 10:00:00,spin',
    '7,C3,attended,2026-05-15 10:00:00,spin',
  ].join('\n') + '\n',
  'seeds/payments.csv': 'payment_id,email,amount,paid_at\n10,ana@example.com,49.5,2026-10-01 00:00:00\n11,ana@example.com,20,2026-11-12 00:00:00\n',
  'seeds/consent.csv': [
    'customer_id,scope,status,set_at',
    'C1,email_marketing,granted,2026-01-01 00:00:00',
    'C1,sms,granted,2026-01-01 00:00:00',
    'C2,email_marketing,granted,2026-01-01 00:00:00',
    'C2,sms,revoked,2026-01-01 00:00:00',
    'C3,email_marketing,granted,2026-01-01 00:00:00',
  ].join('\n') + '\n',
  'models/consent_state.sql': CONSENT_STATE,
};

const AUDIENCES = {
  // Booked often, then stopped: Cara only (Ana is recent, Ben booked once).
  'audiences/churn_risk.yml': `name: churn_risk
description: Booked often, then stopped.
owner: lifecycle@studio.example
consent: [email_marketing]
as_of: "CAST('2026-11-15' AS TIMESTAMP)"
where:
  all:
    - { trait: bookings_total, gte: 3 }
    - { trait: days_since_last_activity, gt: 30 }
`,
  // Everyone with a booking, but sms consent is applied: Ben revoked it, Cara never gave it.
  'audiences/sms_bookers.yml': `name: sms_bookers
description: Anyone who booked, reachable by SMS.
owner: growth
consent: [sms]
where: { trait: bookings_total, gte: 1 }
`,
  'audiences/recent_payers.yml': `name: recent_payers
owner: ads
consent: []
as_of: "CAST('2026-11-15' AS TIMESTAMP)"
where:
  any:
    - { event: payment, within_days: 7 }
    - { trait: last_payment_at, within_days: 3 }
`,
  'audiences/big_spenders.yml': `name: big_spenders
owner: finance
consent: []
sql_where: "t.lifetime_revenue > 50 AND t.bookings_total BETWEEN 1 AND 10"
columns: [lifetime_revenue]
`,
};

function project(files: Record<string, string> = {}) {
  return track(duckdbProject({ 'identity.yml': IDENTITY, 'golden_record.yml': GOLDEN, ...SEEDS, ...AUDIENCES, ...files }));
}

async function members(p: TempProject, audience: string): Promise<string[]> {
  const rows = await p.query(`SELECT g.identifier_value AS c FROM main.audience_${audience} AS a
    JOIN main.identity_graph AS g ON g.profile_id = a.profile_id AND g.identifier_type = 'customer_id' ORDER BY 1`);
  return rows.map((r) => String(r['c']));
}

interface HistoryRow {
  customer: string;
  audience: string;
  entered: number;
  exited: number | null;
}

/** Membership history with run times replaced by run numbers (1 = first run), by hand-checkable rows. */
async function history(p: TempProject): Promise<HistoryRow[]> {
  const runs = (await p.query('SELECT CAST(ran_at AS VARCHAR) AS t FROM main.cdp_audience_runs ORDER BY ran_at')).map((r) => String(r['t']));
  const rows = await p.query(`SELECT g.identifier_value AS customer, m.audience, CAST(m.entered_at AS VARCHAR) AS entered_at, CAST(m.exited_at AS VARCHAR) AS exited_at
    FROM main.audience_membership AS m JOIN main.identity_graph AS g ON g.profile_id = m.profile_id AND g.identifier_type = 'customer_id'
    ORDER BY m.audience, customer, m.entered_at`);
  return rows.map((r) => ({
    customer: String(r['customer']),
    audience: String(r['audience']),
    entered: runs.indexOf(String(r['entered_at'])) + 1,
    exited: r['exited_at'] === null ? null : runs.indexOf(String(r['exited_at'])) + 1,
  }));
}

describe('audiences', () => {
  it('builds one node per audience, with conditions and consent applied', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    expect(await members(p, 'churn_risk')).toEqual(['C3']);
    // Ana granted sms; Ben revoked it; Cara never set it.
    expect(await members(p, 'sms_bookers')).toEqual(['C1']);
    expect(await members(p, 'recent_payers')).toEqual(['C1']);
    expect(await members(p, 'big_spenders')).toEqual(['C1']);
    const [row] = await p.query('SELECT * FROM main.audience_churn_risk');
    expect(Object.keys(row!)).toEqual(['profile_id', 'bookings_total', 'days_since_last_activity']);
    const [big] = await p.query('SELECT * FROM main.audience_big_spenders');
    expect(Object.keys(big!)).toEqual(['profile_id', 'lifetime_revenue']);
  });

  it('renders audiences in cdp compile, and --select picks one', async () => {
    const p = project();
    expectCode(await p.cdp(['compile', '--select', 'audience_churn_risk']), 0);
    const sql = p.read('target/compiled/test_project/audiences/churn_risk/audience_churn_risk.sql');
    expect(sql).toContain('"bookings_total" >= 3');
    expect(sql).toContain(`c.scope = 'email_marketing' AND c.status = 'granted'`);
    const ls = expectCode(await p.cdp(['ls', '--select', 'audience_churn_risk+', '--output', 'name']), 0);
    expect(ls.stdout.split('\n')).toEqual(['audience_churn_risk', 'audience_membership']);
  });

  it('keeps membership history across runs: entries, exits and re-entries', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    expect(await history(p)).toEqual([
      { customer: 'C1', audience: 'big_spenders', entered: 1, exited: null },
      { customer: 'C3', audience: 'churn_risk', entered: 1, exited: null },
      { customer: 'C1', audience: 'recent_payers', entered: 1, exited: null },
      { customer: 'C1', audience: 'sms_bookers', entered: 1, exited: null },
    ]);

    // Run 2: Cara revokes email (leaves churn_risk); Ben grants sms (enters sms_bookers); Ben books
    // twice more, long ago, so he is at risk of churn too (enters churn_risk).
    p.write({
      'seeds/consent.csv': SEEDS['seeds/consent.csv'].replace('C2,sms,revoked', 'C2,sms,granted').replace('C3,email_marketing,granted', 'C3,email_marketing,revoked'),
      'seeds/bookings.csv': SEEDS['seeds/bookings.csv'] + '8,C2,attended,2026-03-08 10:00:00,spin\n9,C2,attended,2026-03-15 10:00:00,spin\n',
    });
    expectCode(await p.cdp(['build']), 0);
    expect(await history(p)).toEqual([
      { customer: 'C1', audience: 'big_spenders', entered: 1, exited: null },
      { customer: 'C2', audience: 'churn_risk', entered: 2, exited: null },
      { customer: 'C3', audience: 'churn_risk', entered: 1, exited: 2 },
      { customer: 'C1', audience: 'recent_payers', entered: 1, exited: null },
      { customer: 'C1', audience: 'sms_bookers', entered: 1, exited: null },
      { customer: 'C2', audience: 'sms_bookers', entered: 2, exited: null },
    ]);

    // "Who entered since the last sync": preview counts the last run's changes.
    const preview = expectCode(await p.cdp(['audience', 'preview', 'churn_risk', '--json']), 0);
    const json = JSON.parse(preview.stdout) as { size: number; sample: unknown[]; membership: { entered: number; exited: number }; sql: string; consent: string[] };
    expect(json.size).toBe(1);
    expect(json.sample).toHaveLength(1);
    expect(json.membership).toMatchObject({ entered: 1, exited: 1 });
    expect(json.consent).toEqual(['email_marketing']);
    expect(json.sql).toContain('FROM "main"."profile_traits" AS t');

    // Run 3: Cara grants email again: a new row (re-entry), the old one stays closed.
    p.write({ 'seeds/consent.csv': SEEDS['seeds/consent.csv'].replace('C2,sms,revoked', 'C2,sms,granted') });
    expectCode(await p.cdp(['build']), 0);
    expect((await history(p)).filter((r) => r.audience === 'churn_risk')).toEqual([
      { customer: 'C2', audience: 'churn_risk', entered: 2, exited: null },
      { customer: 'C3', audience: 'churn_risk', entered: 1, exited: 2 },
      { customer: 'C3', audience: 'churn_risk', entered: 3, exited: null },
    ]);

    // Run 4: nothing changes; the run is recorded and nothing entered or exited.
    expectCode(await p.cdp(['run', '--select', 'audience_membership']), 0);
    const quiet = JSON.parse(expectCode(await p.cdp(['audience', 'preview', 'churn_risk', '--json']), 0).stdout) as { membership: { entered: number; exited: number } };
    expect(quiet.membership).toMatchObject({ entered: 0, exited: 0 });
    expect(await history(p)).toHaveLength(7);
  });

  it('closes the open rows of removed audiences, the last ones and a removed folder too', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    p.remove('audiences/churn_risk.yml').remove('audiences/sms_bookers.yml');
    expectCode(await p.cdp(['build']), 0);
    expect(await history(p)).toEqual([
      { customer: 'C1', audience: 'big_spenders', entered: 1, exited: null },
      { customer: 'C3', audience: 'churn_risk', entered: 1, exited: 2 },
      { customer: 'C1', audience: 'recent_payers', entered: 1, exited: null },
      { customer: 'C1', audience: 'sms_bookers', entered: 1, exited: 2 },
    ]);

    // The last audience files go: audience_membership stays in the DAG to close their rows.
    p.remove('audiences/big_spenders.yml').remove('audiences/recent_payers.yml');
    expectCode(await p.cdp(['build']), 0);
    expect(await history(p)).toEqual([
      { customer: 'C1', audience: 'big_spenders', entered: 1, exited: 3 },
      { customer: 'C3', audience: 'churn_risk', entered: 1, exited: 2 },
      { customer: 'C1', audience: 'recent_payers', entered: 1, exited: 3 },
      { customer: 'C1', audience: 'sms_bookers', entered: 1, exited: 2 },
    ]);

    // One comes back, then the whole audiences/ folder is removed.
    p.write({ 'audiences/churn_risk.yml': AUDIENCES['audiences/churn_risk.yml'] });
    expectCode(await p.cdp(['build']), 0);
    p.remove('audiences');
    expectCode(await p.cdp(['build']), 0);
    expect((await history(p)).filter((r) => r.audience === 'churn_risk')).toEqual([
      { customer: 'C3', audience: 'churn_risk', entered: 1, exited: 2 },
      { customer: 'C3', audience: 'churn_risk', entered: 4, exited: 5 },
    ]);
    expect(await p.query('SELECT * FROM main.audience_membership WHERE exited_at IS NULL')).toEqual([]);
  });

  it('lists audiences with their sizes (text and --json) and previews one', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    const json = JSON.parse(expectCode(await p.cdp(['audience', 'ls', '--json']), 0).stdout) as { name: string; owner: string; consent: string[]; size: number }[];
    expect(json.map((a) => [a.name, a.owner, a.consent, a.size])).toEqual([
      ['big_spenders', 'finance', [], 1],
      ['churn_risk', 'lifecycle@studio.example', ['email_marketing'], 1],
      ['recent_payers', 'ads', [], 1],
      ['sms_bookers', 'growth', ['sms'], 1],
    ]);
    const text = expectCode(await p.cdp(['audience', 'ls']), 0).stdout;
    expect(text).toMatch(/^NAME\s+OWNER\s+CONSENT\s+SIZE/);
    expect(text).toMatch(/churn_risk\s+lifecycle@studio\.example\s+email_marketing\s+1/);
    const preview = expectCode(await p.cdp(['audience', 'preview', 'sms_bookers', '--limit', '5']), 0).stdout;
    expect(preview).toContain('size: 1');
    expect(preview).toMatch(/last membership run .*: 1 entered, 0 exited/);
    expect(preview).toContain('Compiled SQL');
    const missing = expectCode(await p.cdp(['audience', 'preview', 'churn_rsk']), 2);
    expect(output(missing)).toMatch(/No audience is named `churn_rsk`[\s\S]*Did you mean `churn_risk`/);
  });

  it('needs a built project', async () => {
    const p = project();
    const run = expectCode(await p.cdp(['audience', 'ls']), 2);
    expect(output(run)).toMatch(/not built[\s\S]*cdp build/);
  });

  const churn = AUDIENCES['audiences/churn_risk.yml'];
  it.each([
    ['an unknown trait', churn.replace('trait: bookings_total', 'trait: booking_total'), /churn_risk\.yml:\d+ \(key `where\.all\.0\.trait`\): `where\.all\.0\.trait`: unknown trait `booking_total`[\s\S]*Did you mean `bookings_total`/],
    ['a type mismatch', churn.replace('gte: 3', 'gte: "abc"'), /churn_risk\.yml:\d+ \(key `where\.all\.0\.gte`\).*does not fit trait `bookings_total` \(number\)/],
    ['an unknown operator', churn.replace('gte: 3', 'greater: 3'), /churn_risk\.yml:\d+ \(key `where\.all\.0\.greater`\): Unknown operator `greater`/],
    ['a sql_where that reads another relation', churn.replace(/where:[\s\S]*$/, 'sql_where: "t.profile_id IN (SELECT profile_id FROM other)"\n'), /churn_risk\.yml:\d+ \(key `sql_where`\).*cartesian join/],
    ['no consent declaration', churn.replace('consent: [email_marketing]\n', ''), /churn_risk\.yml.*declares no `consent`[\s\S]*consent: \[\]/],
  ])('rejects %s, naming the file and key (exit 2, nothing built)', async (_name, text, message) => {
    const p = project({ 'audiences/churn_risk.yml': text });
    const run = expectCode(await p.cdp(['build']), 2);
    expect(output(run)).toMatch(message);
    expect(() => p.read('target/test.duckdb')).toThrow();
  });

  it('rejects a consent requirement when the project has no consent_state model', async () => {
    const p = project();
    p.remove('models/consent_state.sql');
    const run = expectCode(await p.cdp(['compile']), 2);
    expect(output(run)).toMatch(/churn_risk\.yml:\d+ \(key `consent`\).*no `consent_state` model/);
    // An audience with `consent: []` needs no consent_state.
    p.remove('audiences/churn_risk.yml').remove('audiences/sms_bookers.yml');
    expectCode(await p.cdp(['compile']), 0);
  });
});

/** The repo-root audiences (audiences/, quoted in docs/audiences.md) on a copy of the repo-root project. */
describe('repo-root audiences', () => {
  it('build with consent applied', async () => {
    const p = track(TempProject.fromRepoRoot());
    cpSync(path.join(REPO_ROOT, 'audiences'), p.path('audiences'), { recursive: true });
    expectCode(await p.cdp(['build']), 0);
    const sizes = JSON.parse(expectCode(await p.cdp(['audience', 'ls', '--json']), 0).stdout) as { name: string; size: number; consent: string[] }[];
    expect(sizes.map((s) => [s.name, s.consent])).toEqual([
      ['abandoned_cart', ['email_marketing']],
      ['churn_risk', ['email_marketing']],
      ['high_value', ['email_marketing']],
      ['recent_purchasers_suppress_ads', ['ads']],
    ]);
    for (const s of sizes) expect(s.size, s.name).toBeGreaterThan(0);
    // Consent is applied: no member lacks a granted email_marketing / ads state.
    const [leak] = await p.query(`SELECT
      (SELECT COUNT(*) FROM main.audience_high_value AS a WHERE NOT EXISTS (SELECT 1 FROM main.consent_state AS c WHERE c.profile_id = a.profile_id AND c.scope = 'email_marketing' AND c.status = 'granted')) AS email,
      (SELECT COUNT(*) FROM main.audience_recent_purchasers_suppress_ads AS a WHERE NOT EXISTS (SELECT 1 FROM main.consent_state AS c WHERE c.profile_id = a.profile_id AND c.scope = 'ads' AND c.status = 'granted')) AS ads,
      (SELECT COUNT(*) FROM main.audience_membership WHERE exited_at IS NULL) AS open_rows,
      (SELECT COUNT(*) FROM main.audience_abandoned_cart) + (SELECT COUNT(*) FROM main.audience_churn_risk) + (SELECT COUNT(*) FROM main.audience_high_value) + (SELECT COUNT(*) FROM main.audience_recent_purchasers_suppress_ads) AS members`, 'target/cdp_demo.duckdb');
    expect(Number(leak!['email'])).toBe(0);
    expect(Number(leak!['ads'])).toBe(0);
    expect(Number(leak!['open_rows'])).toBe(Number(leak!['members']));
  }, 120_000);
});
