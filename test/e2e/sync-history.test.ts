import { afterEach, describe, expect, it } from 'vitest';
import type { DestinationType } from '../../src/destinations/destination.js';
import { registerDestinationType } from '../../src/destinations/registry.js';
import { TempProject, duckdbProject, expectCode, output, projectPool } from '../helpers/project.js';

/** `cdp sync history`: the runs recorded in cdp_sync.runs, read back (docs/destinations.md). */
const track = projectPool();
const unregister: (() => void)[] = [];
afterEach(() => {
  for (const undo of unregister.splice(0)) undo();
});

const PEOPLE = ['id,profile_id,email,name', '1,p1,ana@example.com,Ana', '2,p2,ben@example.com,Ben', '3,p3,cy@example.com,Cy', '4,p4,dee@example.com,Dee'].join('\n') + '\n';
const CONSENT = ['profile_id,scope,status', 'p1,email_marketing,granted', 'p2,email_marketing,granted', 'p3,email_marketing,granted', 'p4,email_marketing,revoked'].join('\n') + '\n';
const CONTRACT = (name: string, type = 'file') => `name: ${name}
model: contacts
type: ${type}
primary_key: id
mapping:
  email: email
  name: name
mode: mirror
batch_size: 2
consent: [email_marketing]
`;

function project(files: Record<string, string> = {}): TempProject {
  return track(duckdbProject({
    'seeds/people.csv': PEOPLE,
    'seeds/consent_state.csv': CONSENT,
    'models/contacts.sql': 'select id, profile_id, email, name from {{ ref "people" }}\n',
    'destinations/crm.yml': CONTRACT('crm'),
    ...files,
  }));
}

interface Run {
  run_id: string;
  destination: string;
  status: string;
  started_at: string;
  finished_at: string;
  planned: Record<string, number>;
  succeeded: Record<string, number>;
  failed: Record<string, number>;
  rejected: number;
  rejected_before_sending: { consent: number };
}

async function history(p: TempProject, args: string[] = []): Promise<Run[]> {
  return (JSON.parse(expectCode(await p.cdp(['sync', 'history', '--json', ...args]), 0).stdout) as { runs: Run[] }).runs;
}

describe('cdp sync history', () => {
  it('is a clear error (exit 2) before any sync ran', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    const run = expectCode(await p.cdp(['sync', 'history']), 2);
    expect(output(run)).toMatch(/No sync has run on target `dev`: the cdp_sync\.runs table does not exist/);
  });

  it('shows two runs after two syncs, newest first, with their counts (text and --json)', async () => {
    const p = project();
    expectCode(await p.cdp(['build']), 0);
    const first = JSON.parse(expectCode(await p.cdp(['sync', '--json']), 0).stdout) as { run_id: string };
    // Ben renamed (change), Cy gone (remove), Eve new (add).
    p.write({ 'seeds/people.csv': PEOPLE.replace('Ben', 'Benjamin').replace('3,p3,cy@example.com,Cy\n', '') + '5,p5,eve@example.com,Eve\n', 'seeds/consent_state.csv': CONSENT + 'p5,email_marketing,granted\n' });
    expectCode(await p.cdp(['build']), 0);
    const second = JSON.parse(expectCode(await p.cdp(['sync', '--json']), 0).stdout) as { run_id: string };

    const runs = await history(p);
    expect(runs.map((r) => r.run_id)).toEqual([second.run_id, first.run_id]);
    expect(runs[1]).toMatchObject({ destination: 'crm', status: 'success', planned: { add: 3, change: 0, remove: 0 }, succeeded: { add: 3, change: 0, remove: 0 }, failed: { add: 0, change: 0, remove: 0 }, rejected: 0, rejected_before_sending: { consent: 1 } });
    expect(runs[0]).toMatchObject({ destination: 'crm', status: 'success', planned: { add: 1, change: 1, remove: 1 }, succeeded: { add: 1, change: 1, remove: 1 }, failed: { add: 0, change: 0, remove: 0 }, rejected: 0 });
    for (const r of runs) expect(Date.parse(r.finished_at)).toBeGreaterThanOrEqual(Date.parse(r.started_at));

    expect((await history(p, ['--limit', '1'])).map((r) => r.run_id)).toEqual([second.run_id]);

    const text = expectCode(await p.cdp(['sync', 'history']), 0).stdout.split('\n');
    expect(text[0]).toBe('Sync history for target dev: 2 run(s), newest first. Counts are add/change/remove.');
    expect(text[1]).toMatch(/^\s+run\s+destination\s+status\s+started\s+finished\s+planned\s+succeeded\s+failed\s+rejected\s+no consent$/);
    expect(text[2]).toMatch(new RegExp(`^\\s+${second.run_id}\\s+crm\\s+success\\s.*\\s1/1/1\\s+1/1/1\\s+0/0/0\\s+0\\s+1$`));
    expect(text[3]).toMatch(new RegExp(`^\\s+${first.run_id}\\s+crm\\s+success\\s.*\\s3/0/0\\s+3/0/0\\s+0/0/0\\s+0\\s+1$`));
  });

  it('counts per-record rejections, and --select picks destinations', async () => {
    const rejecting = new Set(['2']);
    const fake: DestinationType = {
      type: 'fake_history',
      capabilities: { modes: ['upsert', 'mirror'], maxBatchSize: 10, fields: ['email', 'name'] },
      validateOptions: () => [],
      open: async () => ({
        capabilities: fake.capabilities,
        send: async (batch) => batch.map((r) => (rejecting.has(r.key) ? { key: r.key, ok: false as const, reason: 'INVALID: rejected by fake' } : { key: r.key, ok: true as const })),
        close: async () => undefined,
      }),
    };
    unregister.push(registerDestinationType(fake));
    const p = project({ 'destinations/fake.yml': CONTRACT('fake', 'fake_history') });
    expectCode(await p.cdp(['build']), 0);
    expectCode(await p.cdp(['sync']), 1);
    expectCode(await p.cdp(['sync', '--select', 'fake']), 1);

    const all = await history(p);
    expect(all.map((r) => r.destination).sort()).toEqual(['crm', 'fake', 'fake']);
    const fakes = await history(p, ['--select', 'fake']);
    expect(fakes.map((r) => [r.status, r.planned.add, r.succeeded.add, r.failed.add, r.rejected])).toEqual([
      ['partial', 1, 0, 1, 1],
      ['partial', 3, 2, 1, 1],
    ]);
    // A node selector picks the destinations reading the selected models.
    expect((await history(p, ['--select', 'contacts'])).length).toBe(3);
    expect((await history(p, ['--exclude', 'fake'])).map((r) => r.destination)).toEqual(['crm']);
  });
});
