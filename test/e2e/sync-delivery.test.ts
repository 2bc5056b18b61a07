import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, TempProject, duckdbProject, expectCode, output, projectPool } from '../helpers/project.js';
import { FakeWebhook } from '../fakes/webhook-server.js';

/** Delivery controls (retries, Retry-After, splitting, quarantine, concurrency) and the webhook connector, against a local fake. */
const track = projectPool();
const SECRET = 'whsec_test_5f1e0c9a7d3b4c2e';
const FIXTURE = readFileSync(path.join(import.meta.dirname, '../fixtures/destinations/webhook.yml'), 'utf8');

let hook: FakeWebhook;
beforeAll(() => {
  process.env['CDP_WEBHOOK_SECRET'] = SECRET;
});
afterAll(() => {
  delete process.env['CDP_WEBHOOK_SECRET'];
});
afterEach(async () => {
  await hook?.stop();
});

function people(n: number, rename: Record<number, string> = {}): string {
  const rows = ['id,profile_id,email,name,score'];
  for (let i = 1; i <= n; i++) rows.push(`${i},p${i},user${i}@example.com,${rename[i] ?? `User ${i}`},${i * 10}`);
  return rows.join('\n') + '\n';
}

/** The fixture contract pointed at the fake, with `edits` applied as [from, to] replacements. */
function contract(edits: [string, string][] = []): string {
  let text = FIXTURE.replace('http://127.0.0.1:8787/hooks/cdp', hook.url);
  for (const [from, to] of edits) {
    if (!text.includes(from)) throw new Error(`fixture has no ${from}`);
    text = text.replace(from, to);
  }
  return text;
}

async function setup(rows: number, edits: [string, string][] = [], buildCode = 0): Promise<TempProject> {
  hook = await new FakeWebhook(SECRET).start();
  const p = track(duckdbProject({
    'seeds/people.csv': people(rows),
    'models/contacts.sql': 'select id, profile_id, email, name, score from {{ ref "people" }}\n',
    'destinations/crm_webhook.yml': contract(edits),
  }));
  expectCode(await p.cdp(['build']), buildCode);
  return p;
}

async function sync(p: TempProject, code: number): Promise<Record<string, any>> {
  const run = expectCode(await p.cdp(['sync', '--json']), code);
  expect(output(run)).not.toContain(SECRET);
  return JSON.parse(run.stdout).destinations[0] as Record<string, any>;
}

async function snapshotKeys(p: TempProject): Promise<string[]> {
  const rows = await p.query(`SELECT primary_key FROM cdp_sync.snapshots WHERE destination = 'crm_webhook' ORDER BY primary_key`);
  return rows.map((r) => String(r['primary_key']));
}

const keys = (n: number) => Array.from({ length: n }, (_, i) => String(i + 1)).sort();

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const full = path.join(dir, f);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

describe('the webhook connector', () => {
  it('POSTs signed JSON batches with an Idempotency-Key, and never prints or stores the secret', async () => {
    const p = await setup(5, [['batch_size: 8', 'batch_size: 2']]);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', planned: { add: 5 }, succeeded: { add: 5 }, failed: { add: 0 } });
    expect(hook.requests).toHaveLength(3);
    for (const r of hook.requests) {
      expect(r).toMatchObject({ method: 'POST', path: '/hooks/cdp', signatureValid: true, idempotencyKeyValid: true, status: 200 });
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['x-cdp-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
    }
    expect(hook.requests.map((r) => r.records.map((x) => x.key))).toEqual([['1', '2'], ['3', '4'], ['5']]);
    expect(hook.requests[0]!.records[0]).toEqual({ op: 'add', key: '1', idempotency_key: expect.stringMatching(/^[0-9a-f]{64}$/), payload: { email: 'user1@example.com', name: 'User 1', score: 10 } });
    expect(hook.appliedKeys()).toEqual(keys(5));
    // Nothing changed: nothing sent.
    await sync(p, 0);
    expect(hook.requests).toHaveLength(3);
    // The secret is in no artifact or log under target/ (the DuckDB file included).
    for (const file of filesUnder(p.path('target'))) expect(readFileSync(file).includes(SECRET), file).toBe(false);
  });

  it('honours Retry-After on 429: the next attempt waits at least that long', async () => {
    const p = await setup(3);
    hook.rateLimitNext(1, '1');
    const d = await sync(p, 0);
    expect(d.succeeded.add).toBe(3);
    expect(hook.requests.map((r) => r.status)).toEqual([429, 200]);
    // initial_backoff_ms is 20: only Retry-After explains a wait of a second.
    expect(hook.requests[1]!.at - hook.requests[0]!.at).toBeGreaterThanOrEqual(1000);
    // The retry is the same batch, with the same Idempotency-Key.
    expect(hook.requests[1]!.headers['idempotency-key']).toBe(hook.requests[0]!.headers['idempotency-key']);
  });

  it('retries 5xx with backoff, then succeeds', async () => {
    const p = await setup(4);
    hook.failNext(2, 500).failNext(1, 503);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', succeeded: { add: 4 } });
    expect(hook.requests.map((r) => r.status)).toEqual([500, 500, 503, 200]);
    expect(await snapshotKeys(p)).toEqual(keys(4));
  });

  it('gives up after max_attempts on persistent 5xx, stopping cleanly with state intact', async () => {
    const p = await setup(4, [['max_attempts: 4', 'max_attempts: 2']]);
    hook.failNext(10, 503);
    const run = expectCode(await p.cdp(['sync']), 1);
    expect(run.stdout).toMatch(/gave up on a batch of 4 after 2 attempt\(s\): POST .* answered 503.*state kept up to the last acknowledged batch/);
    expect(hook.requests).toHaveLength(2);
    expect(await snapshotKeys(p)).toEqual([]);
  });

  it('stops the destination on 401 without retrying, state intact; the next plan still shows the un-acked changes', async () => {
    const p = await setup(6, [['batch_size: 8', 'batch_size: 2']]);
    hook.passNext(1).failNext(1, 401, JSON.stringify({ error: 'token expired' }));
    const run = expectCode(await p.cdp(['sync', '--json']), 1);
    const d = JSON.parse(run.stdout).destinations[0];
    // The refused batch failed; the last one was never attempted: both stay planned.
    expect(d).toMatchObject({ status: 'failed', succeeded: { add: 2 }, failed: { add: 2 } });
    expect(d.message).toMatch(/authentication failed \(401\): POST .* answered 401: \{"error":"token expired"\}; stopped sending to this destination \(check its credentials\), state kept up to the last acknowledged batch; 2 planned record\(s\) not attempted: the next sync sends them/);
    expect(hook.requests.map((r) => r.status)).toEqual([200, 401]);
    expect(await snapshotKeys(p)).toEqual(['1', '2']);
    const plan = JSON.parse(expectCode(await p.cdp(['plan', '--json']), 0).stdout).destinations[0];
    expect(plan.planned).toEqual({ add: 4, change: 0, remove: 0 });
    const [runRow] = await p.query(`SELECT status, succeeded_add, message FROM cdp_sync.runs`);
    expect(runRow).toMatchObject({ status: 'failed', succeeded_add: 2n });
    // Credentials fixed: the rest goes, once.
    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(4);
    expect(hook.appliedKeys()).toEqual(keys(6));
  });

  it('stores per-record 207 rejections with reasons and retries them on the next run', async () => {
    const p = await setup(5);
    hook.rejectKeys(['3'], 'INVALID_EMAIL: user3@example.com bounced');
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 4 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '3', op: 'add', reason: 'INVALID_EMAIL: user3@example.com bounced' }]);
    expect(hook.requests[0]!.status).toBe(207);
    expect(await snapshotKeys(p)).toEqual(['1', '2', '4', '5']);
    const stored = await p.query(`SELECT primary_key, op, reason, attempts, status FROM cdp_sync.rejections`);
    expect(stored).toEqual([{ primary_key: '3', op: 'add', reason: 'INVALID_EMAIL: user3@example.com bounced', attempts: 1, status: 'rejected' }]);

    hook.reset();
    const next = await sync(p, 0);
    expect(next.succeeded.add).toBe(1);
    expect(hook.requests.at(-1)!.records.map((r) => r.key)).toEqual(['3']);
    expect(await snapshotKeys(p)).toEqual(keys(5));
  });

  it('quarantines a record rejected in quarantine_after runs until its payload changes', async () => {
    const p = await setup(4, [['quarantine_after: 3', 'quarantine_after: 2']]);
    hook.rejectKeys(['2'], 'unknown list member');
    expect((await sync(p, 1)).rejections).toEqual([{ primary_key: '2', op: 'add', reason: 'unknown list member' }]);
    const second = await sync(p, 1);
    expect(second.rejections).toEqual([{ primary_key: '2', op: 'add', reason: 'unknown list member', status: 'quarantined' }]);
    expect(await p.query(`SELECT attempts, status FROM cdp_sync.rejections ORDER BY attempts`)).toEqual([
      { attempts: 1, status: 'rejected' },
      { attempts: 2, status: 'quarantined' },
    ]);
    // Quarantined: not sent again, not counted as planned (cdp plan agrees); the run succeeds and says so.
    const plan = JSON.parse(expectCode(await p.cdp(['plan', '--json']), 0).stdout).destinations[0];
    expect(plan).toMatchObject({ planned: { add: 0, change: 0, remove: 0 }, quarantined: 1, in_doubt: 0 });
    expect(expectCode(await p.cdp(['plan']), 0).stdout).toMatch(/1 quarantined record\(s\) not counted: the sync sends each again once its payload changes/);
    const sent = hook.requests.length;
    const third = await sync(p, 0);
    expect(third).toMatchObject({ status: 'success', quarantined: 1, planned: { add: 0 } });
    expect(third.message).toMatch(/1 quarantined record\(s\) not sent/);
    expect(hook.requests).toHaveLength(sent);
    // A new payload lifts the quarantine.
    hook.reset();
    p.write({ 'seeds/people.csv': people(4, { 2: 'Fixed Name' }) });
    expectCode(await p.cdp(['build']), 0);
    const fourth = await sync(p, 0);
    expect(fourth).toMatchObject({ quarantined: 0, succeeded: { add: 1 } });
    expect(hook.requests.at(-1)!.records.map((r) => `${r.key} ${String(r.payload['name'])}`)).toEqual(['2 Fixed Name']);
    expect(await snapshotKeys(p)).toEqual(keys(4));
  });

  it('splits a batch rejected as a whole (400) to isolate the one bad record of 8; the other 7 are acknowledged', async () => {
    const p = await setup(8);
    hook.rejectBatchesContaining('5');
    const d = await sync(p, 1);
    expect(d).toMatchObject({ status: 'partial', succeeded: { add: 7 }, failed: { add: 1 } });
    expect(d.rejections).toEqual([{ primary_key: '5', op: 'add', reason: expect.stringMatching(/answered 400: \{"error":"invalid batch: record 5 is malformed"\}/) }]);
    expect(hook.requests.map((r) => `${r.status} ${r.records.map((x) => x.key).join(',')}`)).toEqual([
      '400 1,2,3,4,5,6,7,8',
      '200 1,2,3,4',
      '400 5,6,7,8',
      '400 5,6',
      '400 5',
      '200 6',
      '200 7,8',
    ]);
    expect(await snapshotKeys(p)).toEqual(['1', '2', '3', '4', '6', '7', '8']);
    expect(await p.query(`SELECT primary_key, status FROM cdp_sync.rejections`)).toEqual([{ primary_key: '5', status: 'rejected' }]);
  });

  it('sends batches in parallel with concurrency > 1, still exactly once in effect, under 5xx and 429', async () => {
    const p = await setup(40, [['batch_size: 8', 'batch_size: 3'], ['concurrency: 1', 'concurrency: 4']]);
    hook.latencyMs = 25;
    hook.passNext(2).failNext(2, 500).rateLimitNext(1, '0').passNext(3).failNext(1, 502);
    const d = await sync(p, 0);
    expect(d).toMatchObject({ status: 'success', planned: { add: 40 }, succeeded: { add: 40 } });
    expect(hook.maxInFlight).toBeGreaterThan(1);
    expect(hook.maxInFlight).toBeLessThanOrEqual(4);
    expect(hook.appliedKeys()).toEqual(keys(40));
    // Each record was acknowledged exactly once: failures were not applied, and nothing was resent after an ack.
    expect([...hook.deliveries.values()].every((n) => n === 1)).toBe(true);
    expect(await snapshotKeys(p)).toEqual(keys(40));
    // A change to some rows after that: only those are sent.
    p.write({ 'seeds/people.csv': people(40, { 7: 'Seven', 33: 'Thirty-three' }) });
    expectCode(await p.cdp(['build']), 0);
    const next = await sync(p, 0);
    expect(next.succeeded).toEqual({ add: 0, change: 2, remove: 0 });
    expect(hook.requests.at(-1)!.records.map((r) => r.key).sort()).toEqual(['33', '7']);
  });

  it('spaces batch calls by rate_limit_per_second', async () => {
    const p = await setup(5, [['batch_size: 8', 'batch_size: 1'], ['concurrency: 1', 'concurrency: 3\n  rate_limit_per_second: 10']]);
    const d = await sync(p, 0);
    expect(d.succeeded.add).toBe(5);
    const at = hook.requests.map((r) => r.at);
    expect(at.at(-1)! - at[0]!).toBeGreaterThanOrEqual(4 * 100 - 5);
  });
});

describe('bad webhook and delivery configuration (exit 2, file and key, nothing sent)', () => {
  it.each([
    ['a literal secret', [[`'{{ env "CDP_WEBHOOK_SECRET" }}'`, SECRET]], /\(key `options\.secret`\): `options\.secret` must be an env reference/],
    ['an unset secret variable', [['CDP_WEBHOOK_SECRET', 'CDP_NO_SUCH_SECRET']], /\(key `options\.secret`\): `options\.secret` names environment variable CDP_NO_SUCH_SECRET, which is not set/],
    ['a non-http url', [['url: http://', 'url: ftp://']], /\(key `options\.url`\): `options\.url` must be an http:\/\/ or https:\/\/ URL/],
    ['a batch size above 1000', [['batch_size: 8', 'batch_size: 1001']], /\(key `batch_size`\): `batch_size` 1001 is above the `webhook` destination's cap of 1000/],
    ['zero concurrency', [['concurrency: 1', 'concurrency: 0']], /crm_webhook\.yml:\d+ \(key `delivery\.concurrency`\): `delivery\.concurrency` must be an integer ≥ 1/],
    ['zero max_attempts', [['max_attempts: 4', 'max_attempts: 0']], /\(key `delivery\.max_attempts`\)/],
    ['a negative rate limit', [['concurrency: 1', 'concurrency: 1\n  rate_limit_per_second: -2']], /\(key `delivery\.rate_limit_per_second`\): `rate_limit_per_second` must be a number > 0/],
    ['max below initial backoff', [['max_backoff_ms: 200', 'max_backoff_ms: 10']], /\(key `delivery\.max_backoff_ms`\): `max_backoff_ms` 10 is below `initial_backoff_ms` 20/],
    ['an unknown delivery key', [['concurrency: 1', 'concurrency: 1\n  retries: 3']], /\(key `delivery\.retries`\): Unknown key `delivery\.retries`/],
  ] as [string, [string, string][], RegExp][])('rejects %s', async (_name, edits, message) => {
    // An unset credential only fails the commands that connect; build works without it.
    const unsetCredential = /which is not set/.test(message.source);
    const p = await setup(2, edits, unsetCredential ? 0 : 2);
    for (const command of unsetCredential ? ['plan', 'sync'] : ['build', 'plan', 'sync']) {
      const run = expectCode(await p.cdp([command]), 2);
      expect(output(run)).toMatch(message);
      expect(output(run)).not.toContain(SECRET);
    }
    expect(hook.requests).toEqual([]);
  });
});

describe('a platform that echoes the credential back', () => {
  it('never stores it: run messages and rejection reasons are masked before they reach cdp_sync', async () => {
    const p = await setup(4, [['batch_size: 8', 'batch_size: 2']]);
    hook.rejectKeys(['1'], `bad signature, expected ${SECRET}`);
    hook.passNext(1).failNext(1, 401, JSON.stringify({ error: `token ${SECRET} expired` }));
    const run = expectCode(await p.cdp(['sync', '--json']), 1);
    expect(output(run)).not.toContain(SECRET);
    const stored = await p.query(`SELECT reason AS text FROM cdp_sync.rejections UNION ALL SELECT message FROM cdp_sync.runs`);
    expect(stored.length).toBeGreaterThan(1);
    for (const row of stored) expect(String(row['text'])).not.toContain(SECRET);
    expect(stored.map((r) => String(r['text'])).join('\n')).toContain('****');
    // Printed later without the secret in the environment: still masked, it was never stored.
    const history = expectCode(await p.cdp(['sync', 'history'], { CDP_WEBHOOK_SECRET: undefined }), 0);
    expect(output(history)).not.toContain(SECRET);
  });
});

describe('commands that never connect to a destination', () => {
  it('sync history needs no destination credential; plan does', async () => {
    const p = await setup(2);
    await sync(p, 0);
    // A child process whose environment lacks the secret altogether.
    const env = { ...process.env };
    delete env['CDP_WEBHOOK_SECRET'];
    const cdp = (args: string[]) => {
      const run = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin/cdp.js'), ...args, '--project-dir', p.dir], { env, encoding: 'utf8' });
      return { code: run.status, stdout: run.stdout, stderr: run.stderr };
    };
    const history = cdp(['sync', 'history', '--select', 'crm_webhook']);
    expect(history.code, history.stderr).toBe(0);
    expect(history.stdout).toContain('crm_webhook');
    const plan = cdp(['plan', '--select', 'crm_webhook']);
    expect(plan.code).toBe(2);
    expect(plan.stderr).toMatch(/CDP_WEBHOOK_SECRET/);
  });

  it('connectors read credentials from the environment cdp was given, not only the process\'s', async () => {
    const p = await setup(2);
    // In-process, as an embedding caller runs it: the process has the secret, the given environment does not.
    const run = expectCode(await p.cdp(['plan'], { CDP_WEBHOOK_SECRET: undefined }), 2);
    expect(run.stderr).toMatch(/CDP_WEBHOOK_SECRET, which is not set/);
    await sync(p, 0);
  });
});
