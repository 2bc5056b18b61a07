import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Destination, DestinationContext, DestinationType, OutboundRecord } from '../../src/destinations/destination.js';
import { TempProject, duckdbProject, expectCode, output, projectPool } from './project.js';

/**
 * What the connector e2e suites (test/e2e/sync-<connector>.test.ts, connector-erase) share: the
 * secrets in env vars for the whole file, a fixture contract pointed at a loopback fake, a small
 * project that builds and syncs it, and the checks that no secret is ever printed or stored.
 */

const FIXTURES = path.join(import.meta.dirname, '../fixtures/destinations');

/** Rows 1..n of a seed: `row(i)`, unless `edit(i)` gives another line (null leaves the row out). */
/** The message of a credential whose env var is not set. */
export const UNSET_CREDENTIAL = /which is not set/;

export function seedRows(header: string, n: number, row: (i: number) => string, edit: (i: number) => string | null | undefined = () => undefined): string {
  const rows = [header];
  for (let i = 1; i <= n; i++) {
    const line = edit(i);
    if (line !== null) rows.push(line ?? row(i));
  }
  return rows.join('\n') + '\n';
}

/** The CRM suites' seed `people`: `i,p<i>,User<i>@Example.com,User <i>,<10i>`. */
export function people(n: number): string {
  return seedRows('id,profile_id,email,name,score', n, (i) => `${i},p${i},User${i}@Example.com,User ${i},${i * 10}`);
}

/** Primary keys as snapshot queries return them: '1'..'n', or the numbers given, sorted as text. */
export function keys(n: number | number[]): string[] {
  const ns = typeof n === 'number' ? Array.from({ length: n }, (_, i) => i + 1) : n;
  return ns.map(String).sort();
}

export function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const full = path.join(dir, f);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

/** Sets env vars before all tests of the file and removes them after. */
export function useEnv(vars: Record<string, string>): void {
  beforeAll(() => {
    for (const [name, value] of Object.entries(vars)) process.env[name] = value;
  });
  afterAll(() => {
    for (const name of Object.keys(vars)) delete process.env[name];
  });
}

/** Runs `fn` with env var `name` set to `value` (a wrong token, say), then puts the previous value back. */
export async function withEnv<T>(name: string, value: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env[name];
  process.env[name] = value;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

/** As the engine hashes a payload: sha256 of its JSON with sorted keys. */
export function payloadHash(payload: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(Object.fromEntries(Object.keys(payload).sort().map((k) => [k, payload[k]])))).digest('hex');
}

/** An outbound record as the engine builds it, for connectors driven directly; a remove is a `delete` unless `extra` says otherwise. */
export function outbound(op: OutboundRecord['op'], key: string, payload: Record<string, unknown>, extra: Partial<OutboundRecord> = {}): OutboundRecord {
  return { op, key, idempotencyKey: `idem-${op}-${key}`, payloadHash: payloadHash(payload), payload, ...(op === 'remove' ? { removal: 'delete' as const } : {}), ...extra };
}

/**
 * Opens connectors straight, as the engine would for one run (the engine does not produce every
 * call yet: erasures, update mode), after checking their options; they are closed after each test.
 */
export function connectorPool(): (type: DestinationType, options: Record<string, unknown>, context?: Partial<DestinationContext>) => Promise<Destination> {
  const open: Destination[] = [];
  afterEach(async () => {
    for (const connector of open.splice(0)) await connector.close();
  });
  return async (type, options, context = {}) => {
    expect(type.validateOptions(options)).toEqual([]);
    const connector = await type.open({ destination: 'crm', object: 'contacts', runId: 'run-1', projectRoot: os.tmpdir(), mode: 'upsert', unacknowledgedSince: new Date(), ...context, options });
    open.push(connector);
    return connector;
  };
}

interface Fake {
  url: string;
  readonly requests: readonly unknown[];
  stop(): Promise<void>;
}

export interface ConnectorSuiteSpec<F extends Fake> {
  /** The env vars holding the suite's secrets (set for the whole file): no value may ever be printed or stored. */
  env: Record<string, string>;
  /** The fixture contract, under test/fixtures/destinations. */
  fixture: string;
  /** The destination's name: its contract is destinations/<destination>.yml. */
  destination: string;
  /** Starts a fake (tests keep their own reference to it); it is stopped after the test. */
  start: () => Promise<F>;
  /** What to replace in the fixture for the fake: its base URL, slow polling. */
  rewrite: (fake: F) => [string, string][];
  /** The seed, `rows(n)` in `file`; by default `people` in seeds/people.csv. */
  seed?: { file: string; rows: (n: number) => string };
  /** The model the contract reads; by default models/contacts.sql over `people`. */
  model?: { file: string; sql: string };
}

export type Edits = [string, string][];

/** A connector e2e suite: call once at the top of the file. */
export function connectorSuite<F extends Fake>(spec: ConnectorSuiteSpec<F>) {
  const track = projectPool();
  const fixture = readFileSync(path.join(FIXTURES, spec.fixture), 'utf8');
  const secrets = Object.values(spec.env);
  const seed = spec.seed ?? { file: 'seeds/people.csv', rows: people };
  const model = spec.model ?? { file: 'models/contacts.sql', sql: 'select id, profile_id, email, name, score from {{ ref "people" }}\n' };
  const started: F[] = [];
  let current: F | undefined;

  useEnv(spec.env);
  afterEach(async () => {
    for (const fake of started.splice(0)) await fake.stop();
  });

  /** The secrets to look for: the suite's, and whatever its env vars hold now (a wrong token under test). */
  const secretsNow = () => [...new Set([...secrets, ...Object.keys(spec.env).map((name) => process.env[name] ?? '').filter((v) => v !== '')])];

  const suite = {
    /** Registers a project built by hand, removed after the test. */
    track,

    async start(): Promise<F> {
      current = await spec.start();
      started.push(current);
      return current;
    },

    /** The fixture with `edits` applied as [from, to] replacements, then pointed at the running fake (an edit may remove the URL). */
    contract(edits: Edits = []): string {
      let text = fixture;
      for (const [from, to] of edits) {
        if (!text.includes(from)) throw new Error(`fixture has no ${from}`);
        text = text.replace(from, to);
      }
      for (const [from, to] of spec.rewrite(current!)) text = text.replace(from, to);
      return text;
    },

    /** Starts a fake and builds a project syncing the fixture contract to it: `rows` seed rows (or that seed text). */
    async setup(rows: number | string, edits: Edits = [], buildCode = 0): Promise<TempProject> {
      await suite.start();
      const p = track(duckdbProject({
        [seed.file]: typeof rows === 'number' ? seed.rows(rows) : rows,
        [model.file]: model.sql,
        [`destinations/${spec.destination}.yml`]: suite.contract(edits),
      }));
      expectCode(await p.cdp(['build']), buildCode);
      return p;
    },

    /** Writes another seed and builds again. */
    async rebuild(p: TempProject, rows: number | string): Promise<void> {
      p.write({ [seed.file]: typeof rows === 'number' ? seed.rows(rows) : rows });
      expectCode(await p.cdp(['build']), 0);
    },

    /** `cdp sync --json` with the exit code expected; the destination's summary. No secret may be printed. */
    async sync(p: TempProject, code: number): Promise<Record<string, any>> {
      const run = expectCode(await p.cdp(['sync', '--json']), code);
      for (const secret of secretsNow()) expect(output(run)).not.toContain(secret);
      return JSON.parse(run.stdout).destinations[0] as Record<string, any>;
    },

    async snapshotKeys(p: TempProject): Promise<string[]> {
      const rows = await p.query(`SELECT primary_key FROM cdp_sync.snapshots WHERE destination = '${spec.destination}' ORDER BY primary_key`);
      return rows.map((r) => String(r['primary_key']));
    },

    /** Each snapshot's meta (parsed; null when none), by primary key. */
    async snapshotMeta(p: TempProject): Promise<Record<string, Record<string, any> | null>> {
      const rows = await p.query(`SELECT primary_key, meta FROM cdp_sync.snapshots WHERE destination = '${spec.destination}' ORDER BY primary_key`);
      return Object.fromEntries(rows.map((r) => [String(r['primary_key']), r['meta'] ? (JSON.parse(String(r['meta'])) as Record<string, any>) : null]));
    },

    /** No secret in any file under target/ (the DuckDB file, logs, artifacts). */
    expectNoSecretStored(p: TempProject): void {
      for (const file of filesUnder(p.path('target'))) for (const secret of secrets) expect(readFileSync(file).includes(secret), file).toBe(false);
    },

    /**
     * One test per bad contract (`rejects <name>`): the fixture with its edits makes `plan` and
     * `sync` exit 2 with the message, printing no secret, and nothing reaches the fake. `build`
     * fails too, except for an unset credential variable: only the commands that connect need it.
     */
    itRejects(cases: [name: string, edits: Edits, message: RegExp][], rows: number | string = 2): void {
      it.each(cases)('rejects %s', async (_name, edits, message) => {
        const p = await suite.setup(rows, edits, UNSET_CREDENTIAL.test(message.source) ? 0 : 2);
        for (const command of ['plan', 'sync']) {
          const run = expectCode(await p.cdp([command]), 2);
          expect(output(run)).toMatch(message);
          for (const secret of secrets) expect(output(run)).not.toContain(secret);
        }
        expect(current!.requests).toEqual([]);
      });
    },
  };
  return suite;
}
