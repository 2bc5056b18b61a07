import { appendFileSync, cpSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/generate/index.js';
import { FakeSalesforce } from '../fakes/salesforce-server.js';
import { FakeWebhook } from '../fakes/webhook-server.js';
import { REPO_ROOT, TempProject } from '../helpers/project.js';
import { byDestination, expectGeneratedData, runExample } from '../helpers/example-project.js';

/**
 * examples/fitness-studio end to end: `cdp build`, `cdp plan`, `cdp sync` against a local fake
 * Salesforce (member contacts with the churn-risk flag) and a fake SMS gateway (a webhook, one
 * text per cancellation, only with sms consent), then a second data drop.
 */

const EXAMPLE = path.join(REPO_ROOT, 'examples/fitness-studio');
const DB = 'target/fitness_studio.duckdb';
const SECRETS = { STUDIO_SALESFORCE_TOKEN: '00Dexample!studio-sf-token-41c2', STUDIO_SMS_WEBHOOK_SECRET: 'whsec-example-sms-8d0e' };
const DROP_AT = '2026-11-14 22:30:00';

describe('examples/fitness-studio data', () => {
  it('is exactly what `npm run generate -- --persons 300 --seed 2 --days 120` writes', async () => {
    await expectGeneratedData(EXAMPLE, (dir) => generate({ persons: 300, seed: 2, days: 120, out: dir }));
  });
});

describe('examples/fitness-studio: build, plan and sync', () => {
  let p: TempProject;
  let sf: FakeSalesforce;
  let sms: FakeWebhook;

  const query = (sql: string) => p.query(sql, DB);
  const column = async (sql: string) => (await query(sql)).map((r) => String(Object.values(r)[0]));

  const cdp = (args: string[], code = 0) => runExample(p, SECRETS, args, code);
  const byName = byDestination;
  /** Salesforce contacts by profile id. */
  const contacts = () => sf.byField('cdp_profile_id__c');
  /** Texts the gateway accepted, by booking id. */
  const texts = () => new Map([...sms.applied.values()].map((r) => [r.key, r]));

  beforeAll(async () => {
    Object.assign(process.env, SECRETS);
    sf = await new FakeSalesforce(SECRETS.STUDIO_SALESFORCE_TOKEN).start();
    sms = await new FakeWebhook(SECRETS.STUDIO_SMS_WEBHOOK_SECRET).start();
    // The example as a user would copy it, minus its build output; contracts cannot read the
    // environment for URLs, so the platforms' addresses are replaced by the fakes'.
    p = new TempProject();
    cpSync(EXAMPLE, p.dir, { recursive: true, filter: (src) => path.relative(EXAMPLE, src).split(path.sep)[0] !== 'target' });
    for (const [file, from, to] of [
      ['destinations/salesforce_members.yml', 'https://fitstudio.my.salesforce.com', sf.url],
      ['destinations/sms_cancellation.yml', 'https://sms-gateway.studio.example/v1/cdp/messages', sms.url],
    ] as const) {
      const text = p.read(file);
      if (!text.includes(from)) throw new Error(`${file} has no ${from}`);
      p.write({ [file]: text.replace(from, to) });
    }
    await cdp(['build']);
  });

  afterAll(async () => {
    for (const name of Object.keys(SECRETS)) delete process.env[name];
    await Promise.all([sf?.stop(), sms?.stop()]);
    p?.cleanup();
  });

  it('matches people on email, phone, customer_id and user_id, and keeps the Stripe id as a trait only', async () => {
    expect(await column(`SELECT DISTINCT identifier_type FROM identity_graph ORDER BY 1`)).toEqual(['app_instance_id', 'customer_id', 'email', 'ga_client_id', 'phone', 'user_id']);
    // The Stripe id reaches profiles through the payment's email, as the golden record's handle.
    const handles = await query(`
      SELECT g.stripe_customer_id, COUNT(DISTINCT g.profile_id) AS profiles FROM golden_records g
      WHERE g.stripe_customer_id IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 1`);
    expect(Number(handles[0]!['profiles'])).toBe(1);
    expect(Number((await query(`SELECT COUNT(*) AS n FROM golden_records WHERE stripe_customer_id LIKE 'cus_%'`))[0]!['n'])).toBeGreaterThan(30);
  });

  it('computes the profile traits from the sources: revenue net of refunds, attendance in 30 days, last cancellation', async () => {
    // Recomputed here straight from staging, through the identity graph, for every profile.
    const mismatches = await query(`
      WITH booking AS (
        SELECT g.profile_id,
          COUNT(*) FILTER (WHERE b.status = 'attended' AND b.booked_at >= TIMESTAMP '2026-10-16') AS attended_30,
          MAX(b.booked_at) FILTER (WHERE b.status = 'cancelled') AS last_cancel
        FROM stg_mindbody_bookings b JOIN identity_graph g ON g.identifier_type = 'customer_id' AND g.identifier_value = b.customer_id
        GROUP BY 1),
      revenue AS (
        SELECT g.profile_id, SUM(c.net_amount) AS revenue
        FROM stg_stripe_charges c JOIN identity_graph g ON g.identifier_type = 'email' AND g.identifier_value = c.email
        GROUP BY 1)
      SELECT t.profile_id FROM profile_traits t LEFT JOIN booking b USING (profile_id) LEFT JOIN revenue r USING (profile_id)
      WHERE t.attended_last_30_days <> COALESCE(b.attended_30, 0)
         OR t.last_cancellation_at IS DISTINCT FROM b.last_cancel
         OR ABS(t.lifetime_revenue - COALESCE(r.revenue, 0)) > 0.001`);
    expect(mismatches).toEqual([]);
  });

  it('plans and syncs: every member to Salesforce with the churn-risk flag, and one text per recent cancellation with sms consent', async () => {
    const members = await column(`SELECT profile_id FROM member_contacts ORDER BY 1`);
    const atRisk = await column(`SELECT profile_id FROM audience_churn_risk WHERE profile_id IN (SELECT profile_id FROM member_contacts) ORDER BY 1`);
    const messages = await query(`SELECT booking_id, profile_id, phone, class_name, class_at FROM sms_cancellations ORDER BY booking_id`);
    // The sample, pinned: 141 members, 8 at risk, 3 texts.
    expect([members.length, atRisk.length, messages.length]).toEqual([141, 8, 3]);

    const plan = byName(await cdp(['plan', '--json']));
    expect(plan['salesforce_members']).toMatchObject({ status: 'planned', mode: 'upsert', planned: { add: 141, change: 0, remove: 0 } });
    expect(plan['sms_cancellation']).toMatchObject({ status: 'planned', mode: 'insert', planned: { add: 3, change: 0, remove: 0 }, rejected: { consent: 0 } });
    const sync = byName(await cdp(['sync', '--json']));
    expect(sync['salesforce_members']).toMatchObject({ status: 'success', succeeded: { add: 141 }, failed: { add: 0 } });
    expect(sync['sms_cancellation']).toMatchObject({ status: 'success', succeeded: { add: 3 }, failed: { add: 0 } });

    // Salesforce: one contact per member, upserted by the profile id; the flag is true exactly for churn_risk.
    expect([...contacts().keys()].sort()).toEqual(members);
    expect([...contacts()].filter(([, c]) => c['Churn_Risk__c'] === true).map(([id]) => id).sort()).toEqual(atRisk);
    expect(sf.requests.every((r) => r.headers['authorization'] === `Bearer ${SECRETS.STUDIO_SALESFORCE_TOKEN}`)).toBe(true);
    expect(sf.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['PATCH /composite/sobjects/Contact/cdp_profile_id__c']);
    const sample = contacts().get(members[0]!)!;
    expect(Object.keys(sample).sort()).toEqual(['Churn_Risk__c', 'Classes_Last_30_Days__c', 'Email', 'LastName', 'Last_Cancellation__c', 'Lifetime_Revenue__c', 'Phone', 'Stripe_Customer_Id__c', 'cdp_profile_id__c']);

    // The SMS gateway: signed requests, one text per cancelled booking, to an E.164 number.
    expect(sms.requests.every((r) => r.signatureValid && r.idempotencyKeyValid)).toBe(true);
    expect([...texts().values()].map((r) => ({ op: r.op, key: r.key, ...r.payload })).sort((a, b) => a.key.localeCompare(b.key)))
      .toEqual(messages.map((m) => ({ op: 'add', key: m['booking_id'], to: m['phone'], profile_id: m['profile_id'], class_name: m['class_name'], class_at: m['class_at'] })));
    for (const m of messages) expect(String(m['phone'])).toMatch(/^\+\d{8,15}$/);

    // Suppression: every texted profile granted sms; a recent cancellation without it got no text.
    const consented = await column(`SELECT profile_id FROM consent_state WHERE scope = 'sms' AND status = 'granted'`);
    for (const m of messages) expect(consented).toContain(m['profile_id']);
    const unconsented = await column(`
      SELECT json_extract_string(e.properties, '$.booking_id') FROM profile_events e
      WHERE e.event_name = 'class_cancelled' AND e.occurred_at >= TIMESTAMP '2026-11-12'
        AND NOT EXISTS (SELECT 1 FROM consent_state c WHERE c.profile_id = e.profile_id AND c.scope = 'sms' AND c.status = 'granted')`);
    expect(unconsented.length).toBeGreaterThan(0);
    for (const booking of unconsented) expect(texts().has(booking)).toBe(false);
  });

  it('a second data drop: a new cancellation is one new text (only with consent), and a member who comes back loses the flag', async () => {
    const noLaterBooking = `NOT EXISTS (SELECT 1 FROM stg_mindbody_bookings b2 WHERE b2.customer_id = g.customer_id AND b2.booked_at >= TIMESTAMP '${DROP_AT}')`;
    // A: sms granted, a phone, not texted yet. B: a phone, but sms not granted. C: at churn risk.
    const [a] = await query(`
      SELECT g.profile_id, g.customer_id FROM golden_records g JOIN consent_state c ON c.profile_id = g.profile_id AND c.scope = 'sms' AND c.status = 'granted'
      WHERE g.customer_id IS NOT NULL AND g.phone IS NOT NULL AND g.profile_id NOT IN (SELECT profile_id FROM sms_cancellations) AND ${noLaterBooking}
      ORDER BY g.profile_id LIMIT 1`);
    const [b] = await query(`
      SELECT g.profile_id, g.customer_id FROM golden_records g JOIN consent_state c ON c.profile_id = g.profile_id AND c.scope = 'sms' AND c.status <> 'granted'
      WHERE g.customer_id IS NOT NULL AND g.phone IS NOT NULL AND ${noLaterBooking}
      ORDER BY g.profile_id LIMIT 1`);
    const [c] = await query(`SELECT m.profile_id, g.customer_id FROM member_contacts m JOIN golden_records g USING (profile_id) WHERE m.churn_risk ORDER BY 1 LIMIT 1`);
    const who = { a: a!['profile_id'], b: b!['profile_id'], c: c!['profile_id'] };
    appendFileSync(p.path('data/bookings.csv'), [
      `990001,${a!['customer_id']},,,spin_30,cancelled,${DROP_AT}`,
      `990002,${b!['customer_id']},,,yoga_flow,cancelled,${DROP_AT}`,
      `990003,${c!['customer_id']},,,pilates_core,attended,2026-11-14 08:00:00`,
    ].join('\n') + '\n');
    await cdp(['build']);

    expect(await column(`SELECT booking_id FROM sms_cancellations WHERE booking_id LIKE '99%'`)).toEqual(['990001']);
    const sentBefore = texts().size;
    const sync = byName(await cdp(['sync', '--json']));
    // One new text, for A's cancellation only: B never had sms consent.
    expect(sync['sms_cancellation']).toMatchObject({ status: 'success', planned: { add: 1, change: 0, remove: 0 }, succeeded: { add: 1 } });
    expect(texts().size).toBe(sentBefore + 1);
    expect(texts().get('990001')!.payload).toMatchObject({ profile_id: who.a, class_name: 'Spin 30' });
    expect([...texts().values()].some((r) => r.payload['profile_id'] === who.b)).toBe(false);

    // Salesforce: C came back (flag off, one class in 30 days); A's and B's last cancellation moved.
    const changed = await column(`SELECT profile_id FROM member_contacts WHERE profile_id IN ('${who.a}', '${who.b}', '${who.c}') ORDER BY 1`);
    expect(sync['salesforce_members']).toMatchObject({ status: 'success', planned: { add: 0, change: changed.length, remove: 0 }, succeeded: { change: changed.length } });
    expect(contacts().get(String(who.c))).toMatchObject({ Churn_Risk__c: false, Classes_Last_30_Days__c: 1 });
    for (const id of [who.a, who.b].filter((x) => changed.includes(String(x)))) expect(contacts().get(String(id))!['Last_Cancellation__c']).toBe('2026-11-14T22:30:00Z');

    // Nothing new: nothing sent.
    const before = [sf.requests.length, sms.requests.length];
    const again = byName(await cdp(['sync', '--json']));
    for (const d of Object.values(again)) expect((d as any).planned).toEqual({ add: 0, change: 0, remove: 0 });
    expect([sf.requests.length, sms.requests.length]).toEqual(before);
  });
});
