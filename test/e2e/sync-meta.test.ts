import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Destination, OutboundRecord } from '../../src/destinations/destination.js';
import { DeliveryError } from '../../src/destinations/errors.js';
import { metaAudienceDestination } from '../../src/destinations/meta-audiences.js';
import { identifiersMeta } from '../../src/destinations/platform-hash.js';
import { FakeMeta } from '../fakes/meta-server.js';
import { TempProject, duckdbProject, expectCode, output, projectPool } from '../helpers/project.js';

/** The meta_audience connector against a local fake: hashed adds and removes, invalid entries, caps, rate limits, auth, erase. */
const track = projectPool();
const TOKEN = 'EAAGm0PX4ZCpsBAtest-meta-token-7f3c';
const AUDIENCE = '23851234567890123';
const PATH = `/v25.0/${AUDIENCE}/users`;
const FIXTURE = readFileSync(path.join(import.meta.dirname, '../fixtures/destinations/meta_audience.yml'), 'utf8');
const SCHEMA = ['EMAIL', 'PHONE', 'FN', 'LN', 'COUNTRY'];

let meta: FakeMeta;
let connector: Destination | undefined;
beforeAll(() => {
  process.env['CDP_META_ACCESS_TOKEN'] = TOKEN;
});
afterAll(() => {
  delete process.env['CDP_META_ACCESS_TOKEN'];
});
afterEach(async () => {
  await connector?.close();
  connector = undefined;
  await meta?.stop();
});

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
const phoneOf = (i: number) => `+1 650 ${String(i).padStart(7, '0')}`;
/** The row Meta should receive for customer i, hashed from values normalised by hand. */
const rowOf = (i: number, phone = phoneOf(i)) => [sha(`user${i}@example.com`), sha(phone.replace(/\D/g, '')), sha('first'), sha('last'), sha('us')];

/** `edit` replaces customer i's line (null: leaves it out). */
function customers(n: number, edit: (i: number) => string | null | undefined = () => undefined): string {
  const rows = ['id,profile_id,email,phone,first_name,last_name,country'];
  for (let i = 1; i <= n; i++) {
    const line = edit(i);
    if (line !== null) rows.push(line ?? `${i},p${i},User${i}@Example.com,${phoneOf(i)},First${i},Last${i},US`);
  }
  return rows.join('\n') + '\n';
}

function contract(edits: [string, string][] = []): string {
  let text = FIXTURE.replace('https://graph.facebook.com', meta.url);
  for (const [from, to] of edits) {
    if (!text.includes(from)) throw new Error(`fixture has no ${from}`);
    text = text.replace(from, to);
  }
  return text;
}

async function setup(seed: string, edits: [string, string][] = [], buildCode = 0): Promise<TempProject> {
  meta = await new FakeMeta(TOKEN, AUDIENCE).start();
  const p = track(duckdbProject({
    'seeds/customer_list.csv': seed,
    'models/customers.sql': 'select id, profile_id, email, phone, first_name, last_name, country from {{ ref "customer_list" }}\n',
    'destinations/meta_customers.yml': contract(edits),
  }));
  expectCode(await p.cdp(['build']), buildCode);
  return p;
}

async function rebuild(p: TempProject, seed: string): Promise<void> {
  p.write({ 'seeds/customer_list.csv': seed });
  expectCode(await p.cdp(['build']), 0);
}

async function sync(p: TempProject, code: number): Promise<Record<string, any>> {
  const run = expectCode(await p.cdp(['sync', '--json']), code);
  expect(output(run)).not.toContain(TOKEN);
  return JSON.parse(run.stdout).destinations[0] as Record<string, any>;
}

async function snapshotKeys(p: TempProject): Promise<string[]> {
  const rows = await p.query(`SELECT primary_key FROM cdp_sync.snapshots WHERE destination = 'meta_customers' ORDER BY primary_key`);
  return rows.map((r) => String(r['primary_key']));
}

/** Only hashes reach Meta: no raw email, name or formatted phone in any body, every cell 64 hex digits or empty. */
function expectOnlyHashes(): void {
  for (const r of meta.requests) {
    expect(r.raw).not.toMatch(/example|first|last|%2B1|\+1/i);
    for (const row of r.payload?.data ?? []) for (const cell of row) expect(cell).toMatch(/^([0-9a-f]{64})?$/);
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const full = path.join(dir, f);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

const keys = (ns: number[]) => ns.map(String).sort();

describe('the meta_audience connector', () => {
  it('adds hashed rows, removes and replaces exactly the identifiers sent, and sends no raw identifier', async () => {
    const p = await setup(customers(3));
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', planned: { add: 3 }, succeeded: { add: 3 }, failed: { add: 0 } });
    expect(meta.requests).toHaveLength(1);
    const [add] = meta.requests;
    expect(add).toMatchObject({ method: 'POST', path: PATH, status: 200, accessToken: TOKEN });
    expect(add!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(add!.payload).toEqual({ schema: SCHEMA, data: [rowOf(1), rowOf(2), rowOf(3)] });
    expect(meta.members).toHaveLength(3);
    const stored = await p.query(`SELECT meta FROM cdp_sync.snapshots WHERE destination = 'meta_customers' AND primary_key = '1'`);
    expect(JSON.parse(JSON.parse(String(stored[0]!['meta'])).identifiers)).toEqual({ email: rowOf(1)[0], phone: rowOf(1)[1], first_name: sha('first'), last_name: sha('last'), country: sha('us') });

    // Row 2 leaves the model and row 3 gets a new phone: one DELETE (row 2, and row 3's old row), then one POST.
    await rebuild(p, customers(3, (i) => (i === 2 ? null : i === 3 ? '3,p3,User3@Example.com,+44 20 7946 0958,First3,Last3,US' : undefined)));
    const next = await sync(p, 0);
    expect(next).toMatchObject({ status: 'success', succeeded: { add: 0, change: 1, remove: 1 } });
    const [removal, addition] = meta.requests.slice(1);
    expect(removal).toMatchObject({ method: 'DELETE', path: PATH, status: 200, payload: { schema: SCHEMA, data: [rowOf(3), rowOf(2)] } });
    expect(addition).toMatchObject({ method: 'POST', path: PATH, status: 200, payload: { schema: SCHEMA, data: [rowOf(3, '442079460958')] } });
    expect(meta.memberValues('PHONE')).toEqual([rowOf(1)[1], sha('442079460958')].sort());
    expect(await snapshotKeys(p)).toEqual(keys([1, 3]));

    // Nothing changed: nothing sent.
    await sync(p, 0);
    expect(meta.requests).toHaveLength(3);
    expectOnlyHashes();
    for (const file of filesUnder(p.path('target'))) expect(readFileSync(file).includes(TOKEN), file).toBe(false);
  });

  it('rejects a record with nothing to match on, with a reason that does not quote it, and sends the rest', async () => {
    const p = await setup(customers(3, (i) => (i === 2 ? '2,p2,not-an-email,,,,US' : undefined)));
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 2 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '2', op: 'add', reason: 'no usable identifier: map at least one of email, phone, madid, external_id, or first_name (or first_initial) with last_name (email is not an email address)' }]);
    expect(meta.requests.map((r) => r.payload?.data.length)).toEqual([2]);
    expect(await p.query(`SELECT primary_key, status FROM cdp_sync.rejections`)).toEqual([{ primary_key: '2', status: 'rejected' }]);
    expect(await snapshotKeys(p)).toEqual(keys([1, 3]));
  });

  it('finds the rows Meta counts invalid by splitting the batch, and rejects only those', async () => {
    const p = await setup(customers(4));
    meta.invalidate([sha('user3@example.com')]);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 3 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '3', op: 'add', reason: expect.stringMatching(/^POST \/v25\.0\/\d+\/users: Meta counted 1 of 1 row\(s\) invalid \(num_invalid_entries\); check this record's identifiers$/) }]);
    // 4 rows (1 invalid) → halves of 2 → the half with the invalid row in ones.
    expect(meta.requests.map((r) => r.payload?.data.length)).toEqual([4, 2, 2, 1, 1]);
    expect(meta.memberValues('EMAIL')).toEqual([1, 2, 4].map((i) => sha(`user${i}@example.com`)).sort());
    expect(await snapshotKeys(p)).toEqual(keys([1, 2, 4]));
  });

  it('sends batches of at most 10,000 rows per call (the cap)', async () => {
    const p = await setup(customers(10_050), [['batch_size: 5000', 'batch_size: 10000']]);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', succeeded: { add: 10_050 } });
    expect(meta.requests.map((r) => `${r.status} ${r.payload?.data.length}`)).toEqual(['200 10000', '200 50']);
    expect(meta.members).toHaveLength(10_050);
  });

  it('retries a rate limit (code 80003) and a 5xx; a lost response resends the batch without duplicating members', async () => {
    const p = await setup(customers(3));
    meta.rateLimitNext(1, '0').failNext(1, 503);
    const d = await sync(p, 0);
    expect(d.succeeded.add).toBe(3);
    expect(meta.requests.map((r) => r.status)).toEqual([400, 503, 200]);
    expect(meta.requests[2]!.payload).toEqual(meta.requests[0]!.payload);

    await rebuild(p, customers(4));
    meta.loseResponses(1);
    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(1);
    expect(meta.requests.slice(3).map((r) => r.status)).toEqual([500, 200]);
    expect(meta.members).toHaveLength(4);
    expect(await snapshotKeys(p)).toEqual(keys([1, 2, 3, 4]));
  });

  it("waits for X-Business-Use-Case-Usage's estimated_time_to_regain_access on a rate limit", async () => {
    meta = await new FakeMeta(TOKEN, AUDIENCE).start();
    meta.regainMinutes = 2;
    meta.rateLimitNext(1, '0');
    connector = await openDirect();
    const failure = await connector.send([record('add', '1', { email: 'user1@example.com' })]).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(DeliveryError);
    expect(failure).toMatchObject({ kind: 'rate_limited', retryAfterMs: 120_000 });
    expect((failure as Error).message).toMatch(/^POST \/v25\.0\/\d+\/users answered 400 OAuthException code 80003\/2446079: There have been too many calls/);
  });

  it('stops on an expired token (code 190) without retrying, state intact; the rest goes once the token works', async () => {
    const p = await setup(customers(6), [['batch_size: 5000', 'batch_size: 2']]);
    meta.passNext(1).failNext(1, 401);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'failed', succeeded: { add: 2 } });
    expect(d.message).toMatch(/authentication failed \(400\): POST \/v25\.0\/\d+\/users answered 400 OAuthException code 190\/463: Error validating access token: Session has expired\. \(fbtrace_id [\w-]+\); stopped sending/);
    expect(meta.requests.map((r) => r.status)).toEqual([200, 400]);
    expect(await snapshotKeys(p)).toEqual(keys([1, 2]));
    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(4);
    expect(meta.members).toHaveLength(6);
    expect(await snapshotKeys(p)).toEqual(keys([1, 2, 3, 4, 5, 6]));
  });

  it('a wrong token fails at the first call: nothing acknowledged', async () => {
    const p = await setup(customers(2));
    process.env['CDP_META_ACCESS_TOKEN'] = 'EAAG-wrong-token-0000';
    try {
      const run = expectCode(await p.cdp(['sync', '--json']), 1);
      expect(JSON.parse(run.stdout).destinations[0]).toMatchObject({ status: 'failed', message: expect.stringMatching(/code 190\/463: Invalid OAuth access token/) });
      expect(output(run)).not.toContain('EAAG-wrong-token-0000');
    } finally {
      process.env['CDP_META_ACCESS_TOKEN'] = TOKEN;
    }
    expect(meta.requests.map((r) => r.status)).toEqual([400]);
    expect(await snapshotKeys(p)).toEqual([]);
  });

  it('an audience Meta does not know stops the destination with its message, without splitting the batch', async () => {
    const p = await setup(customers(4), [[`audience_id: '${AUDIENCE}'`, "audience_id: '999'"]]);
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'failed', succeeded: { add: 0 } });
    expect(d.message).toMatch(/answered 400 GraphMethodException code 100\/33: Unsupported post request\. Object with ID '999' does not exist.*concerns the audience as a whole/);
    expect(meta.requests).toHaveLength(1);
  });

  it('erase: DELETE with the identifiers sent last (from meta), else the last payload hashed again', async () => {
    meta = await new FakeMeta(TOKEN, AUDIENCE).start();
    connector = await openDirect();
    await connector.send([record('add', '1', { email: 'user1@example.com', phone: phoneOf(1) }), record('add', '2', { email: 'user2@example.com' })]);
    expect(meta.members).toHaveLength(2);
    const sent = identifiersMeta({ email: sha('user1@example.com'), phone: sha('16500000001') });
    const results = await connector.send([
      record('remove', '1', { email: 'changed-since@example.com' }, { removal: 'erase', meta: sent }),
      record('remove', '2', { email: ' User2@Example.com ' }, { removal: 'erase' }),
    ]);
    expect(results).toEqual([{ key: '1', ok: true }, { key: '2', ok: true }]);
    expect(meta.requests.at(-1)).toMatchObject({ method: 'DELETE', path: PATH, status: 200, payload: { schema: ['EMAIL', 'PHONE'], data: [[sha('user1@example.com'), sha('16500000001')], [sha('user2@example.com'), '']] } });
    expect(meta.members).toEqual([]);
    expectOnlyHashes();
  });
});

/** The connector opened as the engine would, for calls the engine does not make yet (erase) or to inspect a thrown error. */
function openDirect(): Promise<Destination> {
  const context = { destination: 'm', object: 'o', runId: 'r', projectRoot: os.tmpdir(), mode: 'add_remove' as const, options: { base_url: meta.url, audience_id: AUDIENCE, access_token: '{{ env "CDP_META_ACCESS_TOKEN" }}' } };
  return metaAudienceDestination.open(context);
}

function record(op: OutboundRecord['op'], key: string, payload: Record<string, unknown>, extra: Partial<OutboundRecord> = {}): OutboundRecord {
  return { op, key, idempotencyKey: `idem-${op}-${key}`, payloadHash: sha(JSON.stringify(payload)), payload, ...(op === 'remove' ? { removal: 'delete' as const } : {}), ...extra };
}

describe('bad meta_audience contracts (exit 2, file and key, nothing sent)', () => {
  it.each([
    ['a batch size above 10,000', [['batch_size: 5000', 'batch_size: 10001']], /meta_customers\.yml:\d+ \(key `batch_size`\): `batch_size` 10001 is above the `meta_audience` destination's cap of 10000/],
    ['a literal token', [[`'{{ env "CDP_META_ACCESS_TOKEN" }}'`, TOKEN]], /\(key `options\.access_token`\): `options\.access_token` must be an env reference/],
    ['an unset token variable', [['CDP_META_ACCESS_TOKEN', 'CDP_NO_SUCH_TOKEN']], /\(key `options\.access_token`\): `options\.access_token` names environment variable CDP_NO_SUCH_TOKEN, which is not set/],
    ['a mode other than add_remove', [['mode: add_remove', 'mode: upsert']], /\(key `mode`\)/],
    ['a field Meta has not', [['  country: country', '  emails: country']], /\(key `mapping\.emails`\)|The `meta_audience` destination has no field `emails`/],
    ['no audience id', [[`  audience_id: '${AUDIENCE}'\n`, '']], /`options\.audience_id` is required/],
    ['an audience id YAML would round', [[`audience_id: '${AUDIENCE}'`, `audience_id: ${AUDIENCE}`]], /\(key `options\.audience_id`\): `options\.audience_id` must be quoted/],
  ] as [string, [string, string][], RegExp][])('rejects %s', async (_name, edits, message) => {
    const p = await setup(customers(2), edits, 2);
    for (const command of ['plan', 'sync']) {
      const run = expectCode(await p.cdp([command]), 2);
      expect(output(run)).toMatch(message);
      expect(output(run)).not.toContain(TOKEN);
    }
    expect(meta.requests).toEqual([]);
  });
});
