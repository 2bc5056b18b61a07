import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHubSpot } from '../fakes/hubspot-server.js';
import { FakeWebhook } from '../fakes/webhook-server.js';
import { TempProject, duckdbProject, expectCode, output } from '../helpers/project.js';

/**
 * A deletion request end to end on the repo-root project (issue #6): sync a person to three
 * destinations, file the request, run and sync, check that every managed table forgot them and
 * every fake received its platform's erasure, re-ingest their data and check it stays
 * suppressed, and read the status with its latencies.
 */
const KEY = 'privacy-test-key-5f0c2a9e81d34b7c';
const TOKEN = 'pat-na1-privacy-test-token-77aa';
const SECRET = 'whsec-privacy-test-secret-42';
const DB = 'target/cdp_demo.duckdb';
const env = { CDP_PRIVACY_KEY: KEY, CDP_HUBSPOT_TOKEN: TOKEN, CDP_WEBHOOK_SECRET: SECRET };

/** Tables of the user's own data (sources loaded from data/, their marts, a seed), the ledger itself, and the issued-id registry. */
function userOrLedger(schema: string, table: string): boolean {
  return schema === 'raw' || schema === 'cdp_privacy' || ['customer_activity', 'daily_revenue', 'class_catalog', 'cdp_identity_registry'].includes(table);
}

let p: TempProject;
let hub: FakeHubSpot;
let hook: FakeWebhook;
let person: { profile_id: string; email: string; phone: string | null };
let other: { profile_id: string; email: string };

async function cdp(args: string[], code = 0) {
  const run = expectCode(await p.cdp(args, env), code);
  for (const secret of [KEY, TOKEN, SECRET]) expect(output(run)).not.toContain(secret);
  return run;
}

/** Where any of `needles` still appears, over every managed base table (each row cast to text). */
async function leftovers(needles: string[]): Promise<string[]> {
  const tables = await p.query(`SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'`, DB);
  const found: string[] = [];
  for (const t of tables) {
    const [schema, table] = [String(t['table_schema']), String(t['table_name'])];
    if (userOrLedger(schema, table)) continue;
    const where = needles.map((n) => `strpos(lower(CAST(x AS VARCHAR)), ${`'${n.toLowerCase().replaceAll("'", "''")}'`}) > 0`).join(' OR ');
    const [row] = await p.query(`SELECT COUNT(*) AS n FROM "${schema}"."${table}" AS x WHERE ${where}`, DB);
    if (Number(row!['n']) > 0) found.push(`${schema}.${table}`);
  }
  return found;
}

beforeAll(async () => {
  // Connectors resolve their credentials from the process environment.
  Object.assign(process.env, { CDP_HUBSPOT_TOKEN: TOKEN, CDP_WEBHOOK_SECRET: SECRET });
  hub = await new FakeHubSpot(TOKEN).start();
  hook = await new FakeWebhook(SECRET).start();
  p = TempProject.fromRepoRoot();
  p.write({
    'models/marts/crm_contacts.sql': 'select profile_id, email, phone from {{ ref "golden_records" }} where email is not null\n',
    'destinations/crm_hubspot.yml': [
      'name: crm_hubspot', 'model: crm_contacts', 'type: hubspot', 'object: contacts', 'primary_key: profile_id',
      'mapping:', '  email: email', '  phone: phone', 'mode: mirror', 'batch_size: 100', 'consent: [email_marketing]',
      'options:', `  base_url: ${hub.url}`, `  token: '{{ env "CDP_HUBSPOT_TOKEN" }}'`, '',
    ].join('\n'),
    'destinations/vip_webhook.yml': [
      'name: vip_webhook', 'model: audience_high_value', 'type: webhook', 'primary_key: profile_id',
      'mapping:', '  profile_id: profile_id', '  lifetime_revenue: { column: lifetime_revenue, type: number }', 'mode: mirror',
      'options:', `  url: ${hook.url}`, `  secret: '{{ env "CDP_WEBHOOK_SECRET" }}'`, '',
    ].join('\n'),
  });
  await cdp(['build']);
  const [vip] = await p.query(`SELECT a.profile_id, g.email, g.phone FROM audience_high_value AS a JOIN golden_records AS g USING (profile_id) ORDER BY 1 LIMIT 1`, DB);
  person = { profile_id: String(vip!['profile_id']), email: String(vip!['email']), phone: vip!['phone'] === null ? null : String(vip!['phone']) };
  const [someone] = await p.query(`SELECT g.profile_id, g.email FROM golden_records AS g JOIN consent_state AS c USING (profile_id)
    WHERE c.scope = 'email_marketing' AND c.status = 'granted' AND g.email IS NOT NULL AND g.profile_id <> '${person.profile_id}' ORDER BY 1 LIMIT 1`, DB);
  other = { profile_id: String(someone!['profile_id']), email: String(someone!['email']) };
  // 1. The person reaches three destinations: the file outbox, the webhook and HubSpot.
  await cdp(['sync']);
}, 120_000);

afterAll(async () => {
  delete process.env['CDP_HUBSPOT_TOKEN'];
  delete process.env['CDP_WEBHOOK_SECRET'];
  await hub?.stop();
  await hook?.stop();
  p?.cleanup();
});

describe('a deletion request on the repo-root project', () => {
  let identifiers: string[];

  it('starts with the person synced to three destinations', async () => {
    expect(hub.contacts.has(person.email.toLowerCase())).toBe(true);
    expect(hook.appliedKeys()).toContain(person.profile_id);
    const outbox = readdirSync(p.path('target/outbox/high_value_outbox')).map((f) => readFileSync(p.path(`target/outbox/high_value_outbox/${f}`), 'utf8')).join('');
    expect(outbox).toContain(person.profile_id);
    const rows = await p.query(`SELECT identifier_value FROM identity_graph WHERE profile_id = '${person.profile_id}'`, DB);
    identifiers = rows.map((r) => String(r['identifier_value']));
    expect(identifiers.length).toBeGreaterThan(1);
  });

  it('dry-runs, then files the request: the whole profile is tombstoned and removed from cdp\'s tables at once', async () => {
    const dry = JSON.parse((await cdp(['privacy', 'delete', '--identifier', `email:  ${person.email.toUpperCase()} `, '--dry-run', '--json'])).stdout);
    expect(dry.requests[0]).toMatchObject({ profiles_matched: 1, identifiers_tombstoned: identifiers.length, destinations: ['crm_hubspot', 'high_value_outbox', 'vip_webhook'] });
    expect(await p.query(`SELECT * FROM cdp_privacy.requests`, DB)).toEqual([]);

    const run = await cdp(['privacy', 'delete', '--identifier', `email:${person.email}`, '--reason', 'GDPR art.17', '--request-id', 'dsr-0001']);
    expect(run.stdout).toContain('dsr-0001');
    for (const value of identifiers) expect(output(run)).not.toContain(value);
    const tombstones = await p.query(`SELECT identifier_hash FROM cdp_privacy.tombstones`, DB);
    expect(tombstones).toHaveLength(identifiers.length);
    for (const t of tombstones) expect(String(t['identifier_hash'])).toMatch(/^[0-9a-f]{64}$/);
    const status = JSON.parse((await cdp(['privacy', 'status', 'dsr-0001', '--json'])).stdout);
    expect(status.status).toBe('pending');
    expect(status.destinations.map((x: { destination: string; status: string }) => [x.destination, x.status])).toEqual([
      ['crm_hubspot', 'pending'], ['high_value_outbox', 'pending'], ['vip_webhook', 'pending'],
    ]);
    // Filing again with the same id and identifier (a retried Airflow task) writes nothing new.
    const again = JSON.parse((await cdp(['privacy', 'delete', '--identifier', `email:${person.email}`, '--request-id', 'dsr-0001', '--json'])).stdout);
    expect(again.requests[0].already_filed).toBe(true);
    expect(await p.query(`SELECT * FROM cdp_privacy.tombstones`, DB)).toHaveLength(identifiers.length);
    // The plan (e.g. a pull-request comment) counts the erasures but never shows the person.
    for (const format of [['--json'], ['--format', 'markdown'], []]) {
      const plan = await cdp(['plan', ...format]);
      for (const value of [person.email, person.profile_id, ...identifiers]) expect(output(plan)).not.toContain(value);
    }
    const removes = JSON.parse((await cdp(['plan', '--json'])).stdout).destinations.flatMap((d: { samples: { remove: unknown[] } }) => d.samples.remove);
    expect(removes).toContainEqual({ primary_key: '(withheld: deletion request)', payload: '(withheld: deletion request)', reason: 'privacy' });
  });

  it('after run and sync, the person is gone from every managed table and every destination got its erasure', async () => {
    // Someone else revokes email marketing: a consent removal, for the consent latency.
    appendFileSync(p.path('data/consent_events.csv'), `${other.email},,email_marketing,revoked,preference_center,2026-11-20 08:00:00\n`);
    // build: file-backed sources are loaded again (the seed step), then everything runs.
    await cdp(['build']);
    await cdp(['sync']);
    expect(await leftovers([person.profile_id, person.email, ...identifiers])).toEqual([]);
    // HubSpot: gdpr-delete for the contact cdp created; the webhook: a delete event; the outbox: a deletion record.
    expect(hub.gdprDeleted.map((c) => c.properties['email'])).toEqual([person.email.toLowerCase()]);
    expect(hub.contacts.has(person.email.toLowerCase())).toBe(false);
    expect(hub.blocklist.size).toBe(0);
    expect(hook.deletedKeys()).toEqual([person.profile_id]);
    const lines = readdirSync(p.path('target/outbox/high_value_outbox')).flatMap((f) => readFileSync(p.path(`target/outbox/high_value_outbox/${f}`), 'utf8').trim().split('\n')).map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.op === 'delete')).toMatchObject([{ key: person.profile_id, removal: 'erase' }]);
    // The consent revocation removed the other person from HubSpot (archive), and nothing else changed there.
    expect(hub.contacts.has(other.email.toLowerCase())).toBe(false);
  });

  it('keeps the person suppressed when their data arrives again, new identifiers included', async () => {
    const phone = '+351 912 000 777';
    appendFileSync(p.path('data/bookings.csv'), `999001,777000111,${person.email},${phone},pilates_core,attended,2026-11-21 09:00:00\n`);
    appendFileSync(p.path('data/payments.csv'), `pi_resurrect_0001,cus_resurrect_01,${person.email.toUpperCase()},50.00,0.00,EUR,2026-11-21 10:00:00\n`);
    const needles = [person.email, '912000777', '777000111', 'cus_resurrect_01', 'pi_resurrect_0001', person.profile_id];
    await cdp(['build']);
    expect(Number((await p.query(`SELECT COUNT(*) AS n FROM raw.payments WHERE payment_id = 'pi_resurrect_0001'`, DB))[0]!['n'])).toBe(1);
    expect(await leftovers(needles)).toEqual([]);
    // A full refresh reads every source row again: still suppressed.
    await cdp(['build', '--full-refresh']);
    expect(await leftovers(needles)).toEqual([]);
    const plan = JSON.parse((await cdp(['plan', '--json'])).stdout);
    for (const dest of plan.destinations) expect(dest.planned).toEqual({ add: 0, change: 0, remove: 0 });
  });

  it('reports done with the deletion and consent propagation latencies', async () => {
    const status = JSON.parse((await cdp(['privacy', 'status', 'dsr-0001', '--json'])).stdout);
    expect(status).toMatchObject({ request_id: 'dsr-0001', status: 'done', reason: 'GDPR art.17', profiles_matched: 1 });
    expect(status.destinations.every((x: { status: string; confirmed_at: string | null }) => x.status === 'done' && x.confirmed_at !== null)).toBe(true);
    expect(status.deletion_propagation_latency_seconds).toBeGreaterThanOrEqual(0);
    const summary = JSON.parse((await cdp(['privacy', 'status', '--json'])).stdout);
    expect(summary.requests).toEqual({ pending: 0, done: 1, failed: 0, restored: 0 });
    expect(summary.deletion_propagation_latency.count).toBe(1);
    expect(summary.consent_propagation_latency).toMatchObject([{ destination: 'crm_hubspot', count: 1 }]);
    expect(summary.consent_propagation_latency[0].max_seconds).toBeGreaterThan(0);
  });
});

describe('bad deletion requests (nothing written)', () => {
  it('rejects an unknown type, a missing key, a malformed file; records an unmatched identifier as a tombstone', async () => {
    const before = (await p.query(`SELECT COUNT(*) AS n FROM cdp_privacy.tombstones`, DB))[0]!['n'];
    const unknown = expectCode(await p.cdp(['privacy', 'delete', '--identifier', 'fax:12345'], env), 2);
    expect(unknown.stderr).toMatch(/Unknown identifier type `fax`/);
    const noKey = expectCode(await p.cdp(['privacy', 'delete', '--identifier', 'email:ana@example.com'], { ...env, CDP_PRIVACY_KEY: '' }), 2);
    expect(noKey.stderr).toMatch(/CDP_PRIVACY_KEY is not set/);
    p.write({ 'requests.jsonl': '{"identifier": "email:a1@example.com"}\n{"identifier": "email:a2@example.com"}\n{"identifier": "email:a3@example.com"\n' });
    const bad = expectCode(await p.cdp(['privacy', 'delete', '--file', p.path('requests.jsonl')], env), 2);
    expect(bad.stderr).toMatch(/requests\.jsonl:3.*not valid JSON/);
    p.write({ 'requests.csv': 'identifier,reason\nemail:b1@example.com,bulk\nbogus:xyz,bulk\n' });
    const badType = expectCode(await p.cdp(['privacy', 'delete', '--file', p.path('requests.csv')], env), 2);
    expect(badType.stderr).toMatch(/requests\.csv:3.*Unknown identifier type `bogus`/);
    expect((await p.query(`SELECT COUNT(*) AS n FROM cdp_privacy.tombstones`, DB))[0]!['n']).toBe(before);

    const none = await cdp(['privacy', 'delete', '--identifier', 'email:nobody-here@example.com']);
    expect(none.stdout).toMatch(/no profile matched: the tombstone is recorded anyway/);
    expect(none.stdout).not.toContain('nobody-here');
    p.write({ 'ok.csv': 'identifier,request_id,reason\nemail:c1@example.com,bulk-1,"art. 17, by mail"\nphone:+351911111111,bulk-2,\n' });
    const bulk = JSON.parse((await cdp(['privacy', 'delete', '--file', p.path('ok.csv'), '--json'])).stdout);
    expect(bulk.requests.map((r: { request_id: string }) => r.request_id)).toEqual(['bulk-1', 'bulk-2']);
    const reasons = await p.query(`SELECT reason FROM cdp_privacy.requests WHERE request_id = 'bulk-1'`, DB);
    expect(reasons).toEqual([{ reason: 'art. 17, by mail' }]);
  });

  it('a changed key is refused rather than silently resurrecting deleted people', async () => {
    // Refused before any node runs (exit 2): no half-built project, no run_results.json rewritten.
    const before = p.read('target/run_results.json');
    const run = expectCode(await p.cdp(['run'], { ...env, CDP_PRIVACY_KEY: 'another-key-of-enough-length-000' }), 2);
    expect(output(run)).toMatch(/not the key the existing tombstones were made with/);
    const missing = expectCode(await p.cdp(['run'], { ...env, CDP_PRIVACY_KEY: '' }), 2);
    expect(output(missing)).toMatch(/CDP_PRIVACY_KEY is not set.*tombstone/);
    expect(p.read('target/run_results.json')).toBe(before);
  });
});

describe('a destination whose contract was removed', () => {
  it('stays pending, says so, and is closed by hand with `cdp privacy confirm`, which forgets its snapshot rows', async () => {
    const [vip] = await p.query(`SELECT s.profile_id, g.identifier_type, g.identifier_value FROM cdp_sync.snapshots AS s JOIN identity_graph AS g USING (profile_id)
      WHERE s.destination = 'crm_hubspot' ORDER BY 1, 2, 3 LIMIT 1`, DB);
    expect(vip, 'someone is still synced to crm_hubspot').toBeDefined();
    const gone = { profile_id: String(vip!['profile_id']), identifier: `${String(vip!['identifier_type'])}:${String(vip!['identifier_value'])}` };
    const contract = p.read('destinations/crm_hubspot.yml');
    p.remove('destinations/crm_hubspot.yml');
    try {
      await cdp(['privacy', 'delete', '--identifier', gone.identifier, '--request-id', 'dsr-orphan']);
      await cdp(['build']);
      await cdp(['sync']);
      const text = (await cdp(['privacy', 'status', 'dsr-orphan'])).stdout;
      expect(text).toMatch(/crm_hubspot: no contract in destinations\/ any more.*cdp privacy confirm dsr-orphan --destination crm_hubspot/);
      const status = JSON.parse((await cdp(['privacy', 'status', 'dsr-orphan', '--json'])).stdout);
      expect(status.status).toBe('pending');
      expect(status.destinations.find((x: { destination: string }) => x.destination === 'crm_hubspot')).toMatchObject({ status: 'pending', contract: false });
      const held = `SELECT COUNT(*) AS n FROM cdp_sync.snapshots WHERE destination = 'crm_hubspot' AND profile_id = '${gone.profile_id}'`;
      expect(Number((await p.query(held, DB))[0]!['n'])).toBe(1);

      // Not at a destination the sync still serves, not for a destination the request never reached.
      const live = expectCode(await p.cdp(['privacy', 'confirm', 'dsr-0001', '--destination', 'high_value_outbox', '--note', 'by hand'], env), 2);
      expect(live.stderr).toMatch(/`high_value_outbox` is a destination of this project/);
      expectCode(await p.cdp(['privacy', 'confirm', 'dsr-orphan', '--destination', 'nowhere', '--note', 'x'], env), 2);

      const confirmed = JSON.parse((await cdp(['privacy', 'confirm', 'dsr-orphan', '--destination', 'crm_hubspot', '--note', 'deleted in the receiver by J. Doe, ticket 4711', '--json'])).stdout);
      expect(confirmed).toMatchObject({ destination: 'crm_hubspot', snapshot_rows: 1 });
      expect(Number((await p.query(held, DB))[0]!['n'])).toBe(0);
      const done = JSON.parse((await cdp(['privacy', 'status', 'dsr-orphan', '--json'])).stdout);
      expect(done.status).toBe('done');
      expect(done.destinations.find((x: { destination: string }) => x.destination === 'crm_hubspot').reason).toBe('confirmed by hand: deleted in the receiver by J. Doe, ticket 4711');
      const again = expectCode(await p.cdp(['privacy', 'confirm', 'dsr-orphan', '--destination', 'crm_hubspot', '--note', 'x'], env), 2);
      expect(again.stderr).toMatch(/already done/);
    } finally {
      p.write({ 'destinations/crm_hubspot.yml': contract });
    }
  });
});

describe('restore', () => {
  it('is explicit and logged, lifts suppression for data dated from the restore on only', async () => {
    // Rows that arrived while the person was deleted: the booking and payment of the suppression
    // test (2026-11-21), and a booking dated before the deletion that arrives late.
    const needles = [person.email, '912000777', '777000111', 'cus_resurrect_01', 'pi_resurrect_0001', '777000333', person.profile_id];
    appendFileSync(p.path('data/bookings.csv'), `999003,777000333,  ${person.email.toUpperCase()} ,,spin_30,attended,2026-11-01 09:00:00\n`);
    await cdp(['build']);
    expect(await leftovers(needles)).toEqual([]);

    const run = await cdp(['privacy', 'restore', 'dsr-0001', '--reason', 'filed against the wrong person']);
    expect(run.stdout).toMatch(/What was erased stays erased/);
    const status = JSON.parse((await cdp(['privacy', 'status', 'dsr-0001', '--json'])).stdout);
    expect(status.status).toBe('restored');
    expect(await p.query(`SELECT request_id, reason FROM cdp_privacy.restores`, DB)).toEqual([{ request_id: 'dsr-0001', reason: 'filed against the wrong person' }]);
    expectCode(await p.cdp(['privacy', 'restore', 'dsr-0001', '--reason', 'again'], env), 2);

    // Everything dated before the restore stays suppressed: what arrived while the person was
    // deleted (incremental build), and the erased rows read again by a full refresh.
    await cdp(['build']);
    expect(await leftovers(needles)).toEqual([]);
    await cdp(['build', '--full-refresh']);
    expect(await leftovers(needles)).toEqual([]);

    // A booking dated after the restore is new data: the person is back, with that row's identifiers only.
    const [restore] = await p.query(`SELECT strftime(restored_at + INTERVAL 1 HOUR, '%Y-%m-%d %H:%M:%S') AS after FROM cdp_privacy.restores`, DB);
    appendFileSync(p.path('data/bookings.csv'), `999004,777000444,${person.email},,yoga_flow,booked,${String(restore!['after'])}\n`);
    await cdp(['build']);
    const graph = async () => (await p.query(`SELECT g.identifier_type, g.identifier_value FROM identity_graph AS g
      WHERE g.profile_id IN (SELECT profile_id FROM identity_graph WHERE identifier_value = '${person.email.toLowerCase()}') ORDER BY 1, 2`, DB))
      .map((r) => `${r['identifier_type']}:${r['identifier_value']}`);
    expect(await graph()).toEqual(['customer_id:777000444', `email:${person.email.toLowerCase()}`]);
    await cdp(['build', '--full-refresh']);
    expect(await graph()).toEqual(['customer_id:777000444', `email:${person.email.toLowerCase()}`]);
  });
});

describe('privacy.key_env in cdp_project.yml', () => {
  it('names the key variable, and a bad name is an error with file and key', async () => {
    const bad = duckdbProject({ 'cdp_project.yml': 'name: keyed\nprivacy:\n  key_env: not-a-name\n' });
    try {
      const run = expectCode(await bad.cdp(['compile']), 2);
      expect(run.stderr).toMatch(/cdp_project\.yml:3 \(key `privacy\.key_env`\): `privacy\.key_env` must name an environment variable/);
    } finally {
      bad.cleanup();
    }
    const custom = TempProject.fromRepoRoot();
    try {
      custom.write({ 'cdp_project.yml': custom.read('cdp_project.yml') + 'privacy:\n  key_env: ACME_PRIVACY_KEY\n' });
      const missing = expectCode(await custom.cdp(['privacy', 'delete', '--identifier', 'email:a@example.com'], { CDP_PRIVACY_KEY: KEY }), 2);
      expect(missing.stderr).toMatch(/ACME_PRIVACY_KEY is not set/);
      const filed = await custom.cdp(['privacy', 'delete', '--identifier', 'email:a@example.com', '--dry-run'], { ACME_PRIVACY_KEY: KEY });
      expect(expectCode(filed, 0).stdout).toMatch(/Dry run: 1 deletion request/);
    } finally {
      custom.cleanup();
    }
  });
});
