import { createHash } from 'node:crypto';
import { appendFileSync, cpSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateEcommerce } from '../../src/generate/index.js';
import { FakeKlaviyo, klaviyoSpecDir } from '../fakes/klaviyo-server.js';
import { FakeMeta } from '../fakes/meta-server.js';
import { FakeWebhook } from '../fakes/webhook-server.js';
import { REPO_ROOT, TempProject } from '../helpers/project.js';
import { byDestination, expectGeneratedData, runExample } from '../helpers/example-project.js';

/**
 * examples/ecommerce end to end: `cdp build`, `cdp plan`, `cdp sync` of the abandoned-cart flow
 * against local fakes of the push gateway (webhook), Klaviyo and Meta, then a second data drop in
 * which one shopper of each step orders and an anonymous visitor signs up.
 */

const EXAMPLE = path.join(REPO_ROOT, 'examples/ecommerce');
const DB = 'target/ecommerce_shop.duckdb';
const SECRETS = {
  SHOP_PUSH_GATEWAY_SECRET: 'whsec-example-push-3f9a',
  SHOP_KLAVIYO_API_KEY: 'pk_example_klaviyo_7c1d2e3f4a5b',
  SHOP_META_ACCESS_TOKEN: 'EAAexample-meta-token-90ab',
};
const LIST = 'AbCart1';
const AUDIENCE = '23851234500000001';
/** After every timestamp of the sample (the generator keeps the last hour before --as-of empty), before as_of. */
const DROP_AT = '2026-11-14 23:50:00';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

describe('examples/ecommerce data', () => {
  it('is exactly what `npm run generate -- --scenario ecommerce --persons 300 --seed 2 --days 60` writes', async () => {
    await expectGeneratedData(EXAMPLE, (dir) => generateEcommerce({ persons: 300, seed: 2, days: 60, out: dir }));
  });
});

describe('examples/ecommerce: build, plan and sync the abandoned-cart flow', () => {
  let p: TempProject;
  let push: FakeWebhook;
  let klaviyo: FakeKlaviyo;
  let meta: FakeMeta;

  const query = (sql: string) => p.query(sql, DB);
  const column = async (sql: string) => (await query(sql)).map((r) => String(Object.values(r)[0]));

  const cdp = (args: string[], code = 0) => runExample(p, SECRETS, args, code);
  const byName = byDestination;

  beforeAll(async () => {
    Object.assign(process.env, SECRETS);
    push = await new FakeWebhook(SECRETS.SHOP_PUSH_GATEWAY_SECRET).start();
    klaviyo = await new FakeKlaviyo(SECRETS.SHOP_KLAVIYO_API_KEY, [LIST], klaviyoSpecDir(REPO_ROOT)).start();
    meta = await new FakeMeta(SECRETS.SHOP_META_ACCESS_TOKEN, AUDIENCE).start();
    // The example as a user would copy it, minus its own build output; contracts cannot read the
    // environment for URLs, so the platforms' addresses are replaced by the fakes'.
    p = new TempProject();
    cpSync(EXAMPLE, p.dir, { recursive: true, filter: (src) => path.relative(EXAMPLE, src).split(path.sep)[0] !== 'target' });
    const replace = (file: string, pairs: [string, string][]) => {
      let text = p.read(file);
      for (const [from, to] of pairs) {
        if (!text.includes(from)) throw new Error(`${file} has no ${from}`);
        text = text.replace(from, to);
      }
      p.write({ [file]: text });
    };
    replace('destinations/cart_push.yml', [['https://push.shop.example/v1/cdp/abandoned-cart', push.url]]);
    replace('destinations/cart_email.yml', [['https://a.klaviyo.com', klaviyo.url], ['poll_interval_ms: 1000', 'poll_interval_ms: 5']]);
    replace('destinations/cart_ads.yml', [['https://graph.facebook.com', meta.url]]);
    await cdp(['build']);
  });

  afterAll(async () => {
    for (const name of Object.keys(SECRETS)) delete process.env[name];
    await Promise.all([push?.stop(), klaviyo?.stop(), meta?.stop()]);
    p?.cleanup();
  });

  it('builds three disjoint steps, each member with the condition and the consent of its step', async () => {
    const members = async (audience: string) => column(`SELECT profile_id FROM audience_${audience} ORDER BY 1`);
    const [pushers, emailed, retargeted] = [await members('cart_push'), await members('cart_email'), await members('cart_ads')];
    // The sample has members in every step (counts pinned: the data is generated and committed).
    expect([pushers.length, emailed.length, retargeted.length]).toEqual([4, 14, 22]);
    expect(new Set([...pushers, ...emailed, ...retargeted]).size).toBe(pushers.length + emailed.length + retargeted.length);

    // Step 1, checked on the timeline: a cart in the last day, no order after it, push granted.
    const unexplained = await query(`
      SELECT a.profile_id FROM audience_cart_push a
      WHERE NOT EXISTS (
        SELECT 1 FROM profile_events c WHERE c.profile_id = a.profile_id AND c.event_name = 'add_to_cart'
          AND c.occurred_at >= TIMESTAMP '2026-11-14'
          AND NOT EXISTS (SELECT 1 FROM profile_events o WHERE o.profile_id = a.profile_id AND o.event_name = 'order_completed' AND o.occurred_at >= c.occurred_at))
      OR NOT EXISTS (SELECT 1 FROM consent_state s WHERE s.profile_id = a.profile_id AND s.scope = 'push' AND s.status = 'granted')`);
    expect(unexplained).toEqual([]);

    // Purchasers are suppressed from ads: nobody in step 3 ordered in the last 30 days, and the
    // rule bites: some shoppers meet every other condition of step 3 and are kept out by it.
    expect(await query(`SELECT profile_id FROM audience_cart_ads a WHERE EXISTS (SELECT 1 FROM profile_events o WHERE o.profile_id = a.profile_id AND o.event_name = 'order_completed' AND o.occurred_at >= TIMESTAMP '2026-10-16')`)).toEqual([]);
    const suppressed = await column(`
      SELECT t.profile_id FROM profile_traits t JOIN consent_state s ON s.profile_id = t.profile_id AND s.scope = 'ads' AND s.status = 'granted'
      WHERE t.last_cart_at >= TIMESTAMP '2026-11-01' AND t.last_cart_at < TIMESTAMP '2026-11-12'
        AND t.last_order_at < t.last_cart_at AND t.last_order_at >= TIMESTAMP '2026-10-16'`);
    expect(suppressed.length).toBeGreaterThan(0);
    for (const id of suppressed) expect(retargeted).not.toContain(id);

    // The push window: a shopper whose reminder push was opened within a day of the cart is not emailed.
    const opened = await column(`
      SELECT DISTINCT c.profile_id FROM profile_events c JOIN profile_events o ON o.profile_id = c.profile_id AND o.event_name = 'push_opened'
        AND o.occurred_at BETWEEN c.occurred_at AND c.occurred_at + INTERVAL 24 HOUR
      WHERE c.event_name = 'add_to_cart' AND c.occurred_at >= TIMESTAMP '2026-11-12' AND c.occurred_at < TIMESTAMP '2026-11-14'`);
    expect(opened.length).toBeGreaterThan(0);
    for (const id of opened) expect(emailed).not.toContain(id);

    // Every profile the flow targets is one true person (truth.csv): no strangers glued together.
    const glued = await query(`
      SELECT g.profile_id, COUNT(DISTINCT t.person_id) AS persons
      FROM identity_graph g JOIN read_csv('data/truth.csv', header = true, all_varchar = true) t
        ON t.identifier_type = g.identifier_type AND t.identifier_value = g.identifier_value
      WHERE g.profile_id IN (SELECT profile_id FROM audience_cart_push UNION ALL SELECT profile_id FROM audience_cart_email UNION ALL SELECT profile_id FROM audience_cart_ads)
      GROUP BY 1 HAVING COUNT(DISTINCT t.person_id) > 1`.replace('data/truth.csv', p.path('data/truth.csv')));
    expect(glued).toEqual([]);
  });

  it('puts the events from before a signup on the stitched profile\'s timeline', async () => {
    // Shoppers who browsed anonymously, then signed up on the same device.
    const rows = await query(`
      WITH signup AS (SELECT anonymous_id, user_id, occurred_at FROM stg_events WHERE event_name = 'signup')
      SELECT s.user_id, COUNT(*) AS before_signup,
        COUNT(*) FILTER (WHERE EXISTS (
          SELECT 1 FROM profile_events pe JOIN identity_graph g ON g.profile_id = pe.profile_id AND g.identifier_type = 'user_id' AND g.identifier_value = s.user_id
          WHERE pe.source = 'events' AND pe.occurred_at = e.occurred_at AND pe.event_name = e.event_name)) AS on_timeline
      FROM signup s JOIN stg_events e ON e.anonymous_id = s.anonymous_id AND e.occurred_at < s.occurred_at AND e.user_id IS NULL
      GROUP BY s.user_id`);
    expect(rows.length).toBeGreaterThan(50);
    for (const r of rows) expect(r['on_timeline'], String(r['user_id'])).toBe(r['before_signup']);
  });

  it('plans one add per member and no consent rejections, then syncs each step to its platform', async () => {
    const size = async (model: string) => Number((await query(`SELECT COUNT(*) AS n FROM ${model}`))[0]!['n']);
    const sizes = { cart_push: await size('push_abandoned_cart'), cart_email: await size('email_abandoned_cart'), cart_ads: await size('ads_abandoned_cart') };
    const plan = byName(await cdp(['plan', '--json']));
    for (const [name, n] of Object.entries(sizes)) {
      expect(plan[name], name).toMatchObject({ status: 'planned', mode: 'add_remove', planned: { add: n, change: 0, remove: 0 }, rejected: { consent: 0 } });
    }

    const sync = byName(await cdp(['sync', '--json']));
    for (const [name, n] of Object.entries(sizes)) {
      expect(sync[name], name).toMatchObject({ status: 'success', succeeded: { add: n, change: 0, remove: 0 }, failed: { add: 0, change: 0, remove: 0 } });
    }

    // The push gateway: signed batches, one add per step-1 member, addressed by account id.
    const pushRows = await query(`SELECT profile_id, user_id, cart_items FROM push_abandoned_cart ORDER BY profile_id`);
    expect(push.requests.every((r) => r.signatureValid && r.idempotencyKeyValid)).toBe(true);
    expect([...push.applied.values()].map((r) => ({ op: r.op, key: r.key, payload: r.payload })).sort((a, b) => a.key.localeCompare(b.key)))
      .toEqual(pushRows.map((r) => ({ op: 'add', key: r['profile_id'], payload: { user_id: r['user_id'], cart_items: r['cart_items'] } })));

    // Klaviyo: the step-2 members are the list, each with the cart for the email template.
    const emailRows = await query(`SELECT email, cart_items, viewed_items FROM email_abandoned_cart ORDER BY email`);
    const listed = [...klaviyo.lists.get(LIST)!].map((id) => klaviyo.profiles.get(id)!).sort((a, b) => String(a.attributes['email']).localeCompare(String(b.attributes['email'])));
    expect(listed.map((x) => ({ email: x.attributes['email'], ...x.properties }))).toEqual(emailRows);
    expect(klaviyo.requests.filter((r) => r.specProblems?.length)).toEqual([]);
    expect(klaviyo.requests.some((r) => r.path.includes('subscription'))).toBe(false);

    // Meta: the step-3 members, as SHA-256 of the normalised email plus the profile id; no email in clear.
    const adRows = await query(`SELECT profile_id, email FROM ads_abandoned_cart`);
    expect(meta.memberValues('EMAIL')).toEqual(adRows.map((r) => sha(String(r['email']).trim().toLowerCase())).sort());
    expect(meta.memberValues('EXTERN_ID')).toEqual(adRows.map((r) => String(r['profile_id'])).sort());
    for (const r of adRows) expect(meta.requests.some((q) => q.raw.includes(encodeURIComponent(String(r['email']))))).toBe(false);
  });

  it('a second data drop: whoever orders leaves their step at the next sync, and a visitor who signs up keeps their history', async () => {
    const pick = async (model: string) => (await query(`SELECT m.profile_id, g.email, g.shopify_customer_id FROM ${model} m JOIN golden_records g USING (profile_id) ORDER BY m.profile_id LIMIT 1`))[0]!;
    const buyers = { cart_push: await pick('push_abandoned_cart'), cart_email: await pick('email_abandoned_cart'), cart_ads: await pick('ads_abandoned_cart') };
    // The drop comes after everything already loaded (incremental identity reads past a watermark).
    const latest = await query(`SELECT (SELECT MAX(occurred_at) FROM stg_events) AS events, (SELECT MAX(created_at) FROM stg_orders) AS orders`);
    for (const at of Object.values(latest[0]!)) expect(new Date(at as string).getTime()).toBeLessThan(Date.parse(`${DROP_AT.replace(' ', 'T')}Z`));

    // One order per step's first member; Shopify makes a customer for a first-time buyer.
    const orders = Object.values(buyers).map((b, i) => `${5_199_000_001 + i},${b['shopify_customer_id'] ?? `64990000000${i + 1}`},${b['email']},sku_bottle,24.00,EUR,${DROP_AT}`);
    appendFileSync(p.path('data/orders.csv'), orders.join('\n') + '\n');

    // An anonymous visitor (never logged in, never carted, so they enter no step) signs up.
    const [visitor] = await query(`
      SELECT anonymous_id, any_value(platform) AS platform, COUNT(*) AS events FROM stg_events
      GROUP BY anonymous_id HAVING COUNT(user_id) = 0 AND COUNT(*) FILTER (WHERE event_name = 'add_to_cart') = 0
      ORDER BY events DESC, anonymous_id LIMIT 1`);
    expect(Number(visitor!['events'])).toBeGreaterThan(3);
    expect(await query(`SELECT 1 FROM identity_graph WHERE identifier_value = '${visitor!['anonymous_id']}'`)).toEqual([]);
    appendFileSync(p.path('data/events.csv'), `evt_drop2signup0001,${visitor!['anonymous_id']},u_drop2new,New.Shopper@Example.com,${visitor!['platform']},signup,,${DROP_AT}\n`);

    await cdp(['build']);
    const timeline = await query(`
      SELECT pe.event_name, pe.occurred_at FROM profile_events pe
      JOIN identity_graph g ON g.profile_id = pe.profile_id AND g.identifier_type = 'user_id' AND g.identifier_value = 'u_drop2new'
      ORDER BY pe.event_seq`);
    expect(timeline).toHaveLength(Number(visitor!['events']) + 1);
    expect(timeline.at(-1)!['event_name']).toBe('signup');

    const plan = byName(await cdp(['plan', '--json']));
    for (const name of Object.keys(buyers)) expect(plan[name], name).toMatchObject({ planned: { add: 0, change: 0, remove: 1 } });
    const sync = byName(await cdp(['sync', '--json']));
    for (const name of Object.keys(buyers)) expect(sync[name], name).toMatchObject({ status: 'success', succeeded: { add: 0, change: 0, remove: 1 } });

    const pushed = [...push.applied.values()];
    expect(pushed.filter((r) => r.op === 'remove').map((r) => r.key)).toEqual([buyers.cart_push['profile_id']]);
    const listedEmails = [...klaviyo.lists.get(LIST)!].map((id) => klaviyo.profiles.get(id)!.attributes['email']);
    expect(listedEmails).not.toContain(buyers.cart_email['email']);
    // Leaving the list keeps the Klaviyo profile: only the membership ends.
    expect(klaviyo.byEmail(String(buyers.cart_email['email']))).toBeDefined();
    expect(meta.memberValues('EMAIL')).not.toContain(sha(String(buyers.cart_ads['email'])));
    expect(meta.requests.at(-1)).toMatchObject({ method: 'DELETE', status: 200 });
    expect(await column(`SELECT profile_id FROM audience_membership WHERE exited_at IS NOT NULL ORDER BY 1`)).toEqual(Object.values(buyers).map((b) => String(b['profile_id'])).sort());

    // Nothing changed since: nothing is sent.
    const before = [push.requests.length, klaviyo.requests.length, meta.requests.length];
    const again = byName(await cdp(['sync', '--json']));
    for (const name of Object.keys(buyers)) expect(again[name].planned, name).toEqual({ add: 0, change: 0, remove: 0 });
    expect([push.requests.length, klaviyo.requests.length, meta.requests.length]).toEqual(before);
  });
});
