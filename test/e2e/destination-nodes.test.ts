import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DestinationType } from '../../src/destinations/destination.js';
import { registerDestinationType } from '../../src/destinations/registry.js';
import { TempProject, duckdbProject, expectCode, output, projectPool } from '../helpers/project.js';

/** Destinations in the DAG: validated at compile time, selectable, never executed by run/build (docs/destinations.md). */
const track = projectPool();
const unregister: (() => void)[] = [];
afterEach(() => {
  for (const undo of unregister.splice(0)) undo();
});

const CONTRACT = `name: crm
model: contacts
type: file
primary_key: id
mapping:
  email: { column: email, transform: [trim, lower] }
  name: name
mode: mirror
batch_size: 2
`;

function project(files: Record<string, string> = {}): TempProject {
  return track(duckdbProject({
    'seeds/people.csv': 'id,email,name\n1,ana@example.com,Ana\n2,ben@example.com,Ben\n',
    'models/contacts.sql': 'select id, email, name from {{ ref "people" }}\n',
    'destinations/crm.yml': CONTRACT,
    ...files,
  }));
}

const limited: DestinationType = {
  type: 'limited_nodes',
  capabilities: { modes: ['upsert'], maxBatchSize: 100, fields: ['email', 'name'] },
  validateOptions: () => [],
  open: async () => {
    throw new Error('must not be opened');
  },
};

describe('destination contracts are validated at compile time', () => {
  it.each([
    ['an unknown model (did-you-mean)', CONTRACT.replace('model: contacts', 'model: contact'), /crm\.yml:2 \(key `model`\): `model` names `contact`, which is not a model or seed[\s\S]*Did you mean `contacts`/],
    ['a bad mode', CONTRACT.replace('mode: mirror', 'mode: replace'), /crm\.yml:\d+ \(key `mode`\): `mode` is `replace`; expected one of/],
    ['a batch size above the cap', CONTRACT.replace('type: file', 'type: limited_nodes').replace('mode: mirror', 'mode: upsert').replace('batch_size: 2', 'batch_size: 500'), /crm\.yml:\d+ \(key `batch_size`\): `batch_size` 500 is above the `limited_nodes` destination's cap of 100/],
    ['an unknown key', CONTRACT + 'schedule: hourly\n', /crm\.yml:\d+ \(key `schedule`\): Unknown key `schedule`/],
  ])('fails compile, ls and build on %s (exit 2, file and key) and builds nothing', async (_name, contract, message) => {
    unregister.push(registerDestinationType(limited));
    const p = project({ 'destinations/crm.yml': contract });
    for (const command of ['compile', 'ls', 'build']) {
      const run = expectCode(await p.cdp([command]), 2);
      expect(output(run)).toMatch(message);
    }
    expect(existsSync(p.path('target/test.duckdb'))).toBe(false);
    expect(existsSync(p.path('target/compiled'))).toBe(false);
  });

  it('reports every bad contract at once', async () => {
    const p = project({ 'destinations/other.yml': CONTRACT.replace('name: crm', 'name: other').replace('mode: mirror', 'mode: replace') + 'schedule: hourly\n', 'destinations/crm.yml': CONTRACT.replace('model: contacts', 'model: contact') });
    const run = expectCode(await p.cdp(['compile']), 2);
    expect(output(run)).toMatch(/crm\.yml:2 \(key `model`\)/);
    expect(output(run)).toMatch(/other\.yml:\d+ \(key `schedule`\)/);
  });

  it('reports every problem of one contract at once, each with its key', async () => {
    unregister.push(registerDestinationType(limited));
    const broken = CONTRACT.replace('type: file', 'type: limited_nodes').replace('mode: mirror', 'mode: upsert\non_remove: vanish').replace('batch_size: 2', 'batch_size: 500') + 'delivery: { concurrency: 0 }\nmax_removes: lots\n';
    const run = expectCode(await project({ 'destinations/crm.yml': broken }).cdp(['compile']), 2);
    for (const key of ['on_remove', 'batch_size', 'delivery.concurrency', 'max_removes']) expect(output(run)).toMatch(new RegExp(`crm\\.yml:\\d+ \\(key \`${key.replace('.', '\\.')}\`\\)`));
  });

  it('rejects two contracts with the same name', async () => {
    const p = project({ 'destinations/crm2.yml': CONTRACT });
    const run = expectCode(await p.cdp(['compile']), 2);
    expect(output(run)).toMatch(/crm2\.yml \(key `name`\): Two destination contracts are named `crm`/);
  });
});

describe('destinations are nodes of the DAG', () => {
  it('compiles a destination to its plan SQL, and build never executes it', async () => {
    const p = project();
    const compile = expectCode(await p.cdp(['compile']), 0);
    expect(compile.stdout).toMatch(/Compiled 2 node\(s\)/);
    const sql = p.read('target/compiled/test_project/destinations/crm/crm.sql');
    expect(sql).toContain('-- Destination `crm` (destinations/crm.yml): contacts -> file `crm`');
    expect(sql).toContain('FROM "main"."contacts" AS m');
    expect(sql).toContain(`FROM "cdp_sync"."snapshots" WHERE destination = 'crm'`);
    const manifest = p.json<{ nodes: Record<string, { resource_type?: string; resourceType?: string; config: { materialized: string }; path: string }>; child_map: Record<string, string[]> }>('target/manifest.json');
    expect(manifest.nodes['destination.test_project.crm']).toMatchObject({ config: { materialized: 'destination' }, path: 'destinations/crm.yml' });
    expect(manifest.child_map['model.test_project.contacts']).toEqual(['destination.test_project.crm']);

    const build = expectCode(await p.cdp(['build']), 0);
    expect(build.stdout).not.toMatch(/crm/);
    expect(build.stdout).toMatch(/Done\. PASS=2 WARN=0 ERROR=0 SKIP=0 TOTAL=2/);
    const results = p.json<{ results: { unique_id: string }[] }>('target/run_results.json');
    expect(results.results.map((r) => r.unique_id).sort()).toEqual(['model.test_project.contacts', 'seed.test_project.people']);
    // `cdp build --select crm` selects only the destination: nothing to run.
    expectCode(await p.cdp(['run', '--select', 'crm']), 0);
    expect(await p.query(`SELECT schema_name FROM information_schema.schemata WHERE schema_name = 'cdp_sync'`)).toEqual([]);
    // Plan and sync still work with the destination in the DAG.
    expectCode(await p.cdp(['sync']), 0);
  });

  it('cdp ls --select reaches destinations in the repo-root project', async () => {
    const p = track(TempProject.fromRepoRoot());
    p.write({ 'destinations/high_value_outbox.yml': readFileSync(path.join(import.meta.dirname, '../../destinations/high_value_outbox.yml'), 'utf8') });
    const one = expectCode(await p.cdp(['ls', '--select', 'high_value_outbox', '--output', 'json']), 0).stdout.split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(one).toEqual([{
      unique_id: 'destination.cdp_demo.high_value_outbox',
      name: 'high_value_outbox',
      resource_type: 'model',
      path: 'destinations/high_value_outbox.yml',
      tags: [],
      depends_on: ['model.cdp_demo.audience_high_value'],
    }]);
    const upstream = expectCode(await p.cdp(['ls', '--select', '+high_value_outbox', '--resource-type', 'model', '--output', 'name']), 0).stdout.split('\n');
    expect(upstream.at(-1)).toBe('high_value_outbox');
    expect(upstream).toEqual(expect.arrayContaining(['audience_high_value', 'profile_traits', 'consent_state', 'identity_graph', 'stg_bookings']));
    expect(upstream).not.toContain('audience_churn_risk');
    const downstream = expectCode(await p.cdp(['ls', '--select', 'audience_high_value+', '--output', 'name']), 0).stdout.split('\n');
    expect(downstream.sort()).toEqual(['audience_high_value', 'audience_membership', 'high_value_outbox']);
    expect(expectCode(await p.cdp(['ls', '--select', 'path:destinations', '--output', 'name']), 0).stdout).toBe('high_value_outbox');
  });
});
