import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { duckdbProject, expectCode, output, projectPool } from '../helpers/project.js';

/** The `consent:` section of golden_record.yml on DuckDB, against hand-computed expectations. */
const track = projectPool();

const IDENTITY = `identifier_types:
  customer_id: { limit: 1 }
  email: { normalize: email }
  phone: { normalize: phone, default_country_code: '351' }
edge_sources:
  - name: customers
    from: ref('customers')
    identifiers: { customer_id: customer_id, email: email, phone: phone }
    timestamp: created_at
    verified: true
`;

const GOLDEN = `consent:
  scopes:
    email_marketing: { default: revoked }
    sms: { default: revoked }
    ads: { default: revoked }
    analytics: { default: granted }
  events:
    - name: preference_center
      from: ref('consent')
      identifiers: { email: email, phone: phone }
      scope: scope
      status: status
      timestamp: occurred_at
      source: source
    - name: legacy_import
      from: ref('legacy_consent')
      identifiers: { customer_id: customer_id }
      scope: scope
      status: status
      timestamp: occurred_at
`;

const CONSENT = [
  'email,phone,scope,status,source,occurred_at',
  // Ana: granted, then revoked email marketing (the latest wins; both stay in the history).
  'ANA@example.com,,email_marketing,granted,signup,2026-01-01 00:00:00',
  'ana@example.com,,email_marketing,revoked,unsubscribe,2026-02-01 00:00:00',
  // Ana by phone, two spellings of one number, a grant and a revoke at the same second: revoke wins.
  ',912 000 001,sms,granted,checkout,2026-03-01 10:00:00',
  ',+351912000001,sms,Revoked,support,2026-03-01 10:00:00',
  // Ben: revoked analytics, then granted it again.
  'ben@example.com,,analytics,revoked,banner,2026-01-05 00:00:00',
  'ben@example.com,,analytics,granted,banner,2026-01-06 00:00:00',
  // Email first: Ben's email resolves, the unknown phone is never looked at.
  'ben@example.com,919999999,ads,granted,app,2026-04-01 00:00:00',
  // Zoe is not in the identity graph: her event belongs to no profile.
  'zoe@example.com,,ads,granted,app,2026-04-01 00:00:00',
].join('\n') + '\n';

const SEEDS = {
  'seeds/customers.csv': 'customer_id,email,phone,created_at\nC1,ana@example.com,912000001,2026-01-01 00:00:00\nC2,ben@example.com,,2026-01-01 00:00:00\nC3,cy@example.com,,2026-01-01 00:00:00\n',
  'seeds/consent.csv': CONSENT,
  // No source column: the event source's name is the source. Cy granted ads long ago.
  'seeds/legacy_consent.csv': 'customer_id,scope,status,occurred_at\nC3,ads,granted,2025-06-01 00:00:00\n',
};

function project(files: Record<string, string> = {}) {
  return track(duckdbProject({ 'identity.yml': IDENTITY, 'golden_record.yml': GOLDEN, ...SEEDS, ...files }));
}

const STATE = `
  SELECT g.identifier_value AS customer_id, s.scope, s.status, CAST(s.set_at AS VARCHAR) AS set_at, s.set_by_source, s.is_default
  FROM main.consent_state AS s JOIN main.identity_graph AS g ON g.profile_id = s.profile_id AND g.identifier_type = 'customer_id'
  ORDER BY 1, 2`;

describe('golden_record.yml consent', () => {
  it('keeps the latest event per scope, revoke on a tie, the declared default otherwise', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    const state = (await p.query(STATE)).map((r) => `${r['customer_id']} ${r['scope']} ${r['status']} ${r['set_at']} ${r['set_by_source']} ${r['is_default']}`);
    expect(state).toEqual([
      'C1 ads revoked null null true',
      'C1 analytics granted null null true',
      'C1 email_marketing revoked 2026-02-01 00:00:00 unsubscribe false',
      'C1 sms revoked 2026-03-01 10:00:00 support false',
      'C2 ads granted 2026-04-01 00:00:00 app false',
      'C2 analytics granted 2026-01-06 00:00:00 banner false',
      'C2 email_marketing revoked null null true',
      'C2 sms revoked null null true',
      'C3 ads granted 2025-06-01 00:00:00 legacy_import false',
      'C3 analytics granted null null true',
      'C3 email_marketing revoked null null true',
      'C3 sms revoked null null true',
    ]);
  });

  it('lets an undated revocation win (fail safe) and ignores an undated grant', async () => {
    const p = project({
      // Cy: analytics is granted by default, an undated revocation revokes it. Ben: analytics was
      // granted again on 2026-01-06, an undated revocation still wins; an undated grant of
      // email_marketing leaves the default (revoked).
      'seeds/legacy_consent.csv': 'customer_id,scope,status,occurred_at\nC3,ads,granted,2025-06-01 00:00:00\nC3,analytics,revoked,\nC2,analytics,revoked,\nC2,email_marketing,granted,\n',
    });
    expectCode(await p.cdp(['build']), 0);
    const state = (await p.query(STATE)).map((r) => `${r['customer_id']} ${r['scope']} ${r['status']} ${r['set_at']} ${r['set_by_source']} ${r['is_default']}`);
    expect(state.filter((s) => /analytics|C2 email/.test(s))).toEqual([
      'C1 analytics granted null null true',
      'C2 analytics revoked null legacy_import false',
      'C2 email_marketing revoked null null true',
      'C3 analytics revoked null legacy_import false',
    ]);
  });

  it('keeps every event in consent_history, never overwritten', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    const history = await p.query(`
      SELECT g.identifier_value AS customer_id, h.scope, h.status, h.source, CAST(h.occurred_at AS VARCHAR) AS occurred_at
      FROM main.consent_history AS h JOIN main.identity_graph AS g ON g.profile_id = h.profile_id AND g.identifier_type = 'customer_id'
      ORDER BY 1, 5, 2, 3`);
    expect(history.map((r) => `${r['customer_id']} ${r['scope']} ${r['status']} ${r['source']} ${r['occurred_at']}`)).toEqual([
      'C1 email_marketing granted signup 2026-01-01 00:00:00',
      'C1 email_marketing revoked unsubscribe 2026-02-01 00:00:00',
      'C1 sms granted checkout 2026-03-01 10:00:00',
      'C1 sms revoked support 2026-03-01 10:00:00',
      'C2 analytics revoked banner 2026-01-05 00:00:00',
      'C2 analytics granted banner 2026-01-06 00:00:00',
      'C2 ads granted app 2026-04-01 00:00:00',
      'C3 ads granted legacy_import 2025-06-01 00:00:00',
    ]);
    // Zoe's event has no profile: 8 of the 9 events are kept.
    const [count] = await p.query('SELECT COUNT(*) AS n FROM main.consent_history');
    expect(Number(count!['n'])).toBe(8);
  });

  it('fails the build on an undeclared scope with the message alone (no engine error, no SQL), exit 1, nothing built downstream', async () => {
    const p = project({ 'seeds/consent.csv': CONSENT + 'ana@example.com,,push,granted,app,2026-05-01 00:00:00\nben@example.com,,whatsapp,granted,app,2026-05-01 00:00:00\n' });
    const run = expectCode(await p.cdp(['build']), 1);
    expect(output(run)).toMatch(/ERROR table model consent_history .*\n {4}2 consent event\(s\) have a scope not declared under consent\.scopes of golden_record\.yml: push, whatsapp\n {2}in golden_record\.yml/);
    expect(output(run)).not.toMatch(/DuckDB|Conversion Error|INT32|SELECT|cdp-check/);
    expect(output(run)).toMatch(/SKIP +table model consent_state/);
    const tables = await p.query(`SELECT table_name FROM information_schema.tables WHERE table_name IN ('consent_history', 'consent_state')`);
    expect(tables).toEqual([]);
  });

  it('fails the build on a status other than granted or revoked, naming the event source\'s key', async () => {
    const p = project({ 'seeds/consent.csv': CONSENT + 'ana@example.com,,sms,maybe,app,2026-05-01 00:00:00\nben@example.com,,sms,yes,app,2026-05-01 00:00:00\n' });
    const run = expectCode(await p.cdp(['build']), 1);
    expect(output(run)).toMatch(/\n {4}2 consent event\(s\) have a status other than granted or revoked \(consent\.events\.0\.status of golden_record\.yml\): maybe, yes\n/);
    expect(output(run)).not.toMatch(/DuckDB|Conversion Error|SELECT/);
  });

  it('reports an undeclared scope and a bad status together, and a failed rebuild keeps the tables as they were', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    const before = await p.query(STATE);
    // The second source's status is bad, the first source's scope undeclared.
    p.write({
      'seeds/consent.csv': CONSENT + 'ana@example.com,,push,granted,app,2026-05-01 00:00:00\n',
      'seeds/legacy_consent.csv': 'customer_id,scope,status,occurred_at\nC3,ads,granted,2025-06-01 00:00:00\nC2,sms,maybe,2026-05-01 00:00:00\n',
    });
    const run = expectCode(await p.cdp(['build']), 1);
    expect(output(run)).toMatch(/1 consent event\(s\) have a scope not declared under consent\.scopes of golden_record\.yml: push; 1 consent event\(s\) have a status other than granted or revoked \(consent\.events\.1\.status of golden_record\.yml\): maybe/);
    expect(await p.query(STATE)).toEqual(before);
    const [count] = await p.query('SELECT COUNT(*) AS n FROM main.consent_history');
    expect(Number(count!['n'])).toBe(8);
  });

  it.each([
    ['an identifier type identity.yml lacks', 'identifiers: { email: email, phone: phone }', 'identifiers: { email: email, mobile: phone }', /consent\.events\.0\.identifiers\.mobile.*`mobile` is not an identifier type/],
    ['a scope without a default', 'sms: { default: revoked }', 'sms: {}', /consent\.scopes\.sms\.default/],
    ['a default that is not a status', 'sms: { default: revoked }', 'sms: { default: maybe }', /consent\.scopes\.sms\.default.*expected one of: granted, revoked/],
    ['an event source without a scope column', '      scope: scope\n      status: status\n      timestamp: occurred_at\n      source: source', '      status: status\n      timestamp: occurred_at\n      source: source', /Missing required key `consent\.events\.0\.scope`/],
    ['no scopes', /  scopes:\n(    .*\n)+/, '', /consent\.scopes/],
  ])('rejects %s with file and key (exit 2)', async (_name, from, to, message) => {
    const p = project({ 'golden_record.yml': GOLDEN.replace(from, to) });
    const run = expectCode(await p.cdp(['build']), 2);
    // A configuration error stops before the warehouse is opened: nothing is built.
    expect(existsSync(p.path('target/test.duckdb'))).toBe(false);
    expect(output(run)).toMatch(/golden_record\.yml:\d+/);
    expect(output(run)).toMatch(message);
  });
});
