import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, duckdbProject, output, projectPool, spawnCdp, type CliRun, type TempProject } from '../helpers/project.js';
import { CUSTOMERS_IDENTITY } from '../helpers/fixtures.js';

/*
 * Every way a user can hand cdp bad input: each case checks the documented exit code, that the
 * message names the file (and line or YAML key) and says what to do, and that nothing was
 * half-written. Process-level exit codes go through the built binary (spawnCdp); the rest run
 * in-process, which is much faster.
 */

/** Keep the developer's own profiles (if any) out of the way: every project here brings its own. */
const ENV: NodeJS.ProcessEnv = { CDP_PROFILES_DIR: '' };

const track = projectPool();

function project(files: Record<string, string> = {}): TempProject {
  return track(duckdbProject(files));
}

beforeAll(() => {
  if (!existsSync(path.join(REPO_ROOT, 'dist/cli/main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` before these tests (spawnCdp runs bin/cdp.js, which imports dist/).');
  }
});

function cdp(p: TempProject, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return p.cdp(args, { ...ENV, ...env });
}

function spawned(p: TempProject, args: string[], env: NodeJS.ProcessEnv = {}): CliRun {
  return spawnCdp([...args, '--project-dir', p.dir], p.dir, { ...ENV, ...env });
}


/** Everything under target/, as project-relative POSIX paths. */
function targetFiles(p: TempProject): string[] {
  const dir = p.path('target');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(p.dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort();
}

/** For config and compile errors: no database, no artifacts, nothing under target/ at all. */
function expectNothingWritten(p: TempProject): void {
  expect(existsSync(p.path('target/test.duckdb'))).toBe(false);
  expect(targetFiles(p)).toEqual([]);
}

async function tableNames(p: TempProject): Promise<string[]> {
  const rows = await p.query('SELECT table_name FROM information_schema.tables ORDER BY table_name');
  return rows.map((r) => String(r['table_name']));
}

const MODEL = { 'models/a.sql': 'select 1 as a\n' };

// ---------------------------------------------------------------------------------------
describe('malformed YAML', () => {
  it('cdp_project.yml: exit 2 (process), names the file and the line', () => {
    const p = project({ ...MODEL, 'cdp_project.yml': 'name: test_project\nvars:\n  a: 1\n b: 2\n' });
    const run = spawned(p, ['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Malformed YAML');
    expect(run.stderr).toMatch(/cdp_project\.yml:4\b/);
    expect(run.stderr).toMatch(/hint: .*YAML/);
    expectNothingWritten(p);
  });

  it('profiles.yml: exit 2, names the file and the line', async () => {
    const p = project({
      ...MODEL,
      'profiles.yml': 'target: dev\ntargets:\n  dev:\n    type: duckdb\n   path: target/test.duckdb\n    schema: main\n',
    });
    const run = await cdp(p, ['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Malformed YAML');
    expect(run.stderr).toMatch(/profiles\.yml:5\b/);
    expect(run.stderr).toMatch(/hint: .*YAML/);
    expectNothingWritten(p);
  });

  it('models/schema.yml: exit 2, names the file and the line', async () => {
    const p = project({
      ...MODEL,
      'models/schema.yml': 'version: 2\nmodels:\n  - name: a\n    description: ok\n    columns:\n      - name: a\n      tests: [unique]\n',
    });
    const run = await cdp(p, ['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Malformed YAML');
    expect(run.stderr).toMatch(/models\/schema\.yml:7\b/);
    expect(run.stderr).toMatch(/hint: .*YAML/);
    expectNothingWritten(p);
  });
});

// ---------------------------------------------------------------------------------------
describe('unknown materialization', () => {
  it('in a YAML sidecar config: names the file, line and key, and lists the valid ones', async () => {
    const p = project({
      ...MODEL,
      'models/schema.yml': 'version: 2\nmodels:\n  - name: a\n    config:\n      materialized: bogus\n',
    });
    const run = await cdp(p, ['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/models\/schema\.yml:5\b/);
    expect(run.stderr).toContain('models.0.config.materialized');
    expect(run.stderr).toContain('bogus');
    expect(run.stderr).toContain('view, table, incremental, ephemeral');
    expectNothingWritten(p);
  });

  it('in {{ config }}: names the file and line of the tag', async () => {
    const p = project({ 'models/a.sql': '-- a header comment\n{{ config materialized="bogus" }}\nselect 1 as a\n' });
    const run = await cdp(p, ['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('models/a.sql:2:1');
    expect(run.stderr).toContain('bogus');
    expect(run.stderr).toContain('view, table, incremental, ephemeral');
    expectNothingWritten(p);
  });
});

// ---------------------------------------------------------------------------------------
describe('graph errors', () => {
  it('a ref to a missing model: file:line:col and a "Did you mean" for a near miss', async () => {
    const p = project({
      'models/customers.sql': 'select 1 as id\n',
      'models/orders.sql': 'select *\nfrom   {{ ref "customer" }}\n',
    });
    const run = await cdp(p, ['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('models/orders.sql:2:8');
    expect(run.stderr).toContain('`customer`');
    expect(run.stderr).toContain('Did you mean `customers`?');
    expectNothingWritten(p);
  });

  it('a cycle of three models: prints the whole path and every file', async () => {
    const p = project({
      'models/a.sql': 'select * from {{ ref "b" }}\n',
      'models/b.sql': 'select * from {{ ref "c" }}\n',
      'models/c.sql': 'select * from {{ ref "a" }}\n',
    });
    const run = await cdp(p, ['run']);
    expect(run.code).toBe(2);
    // Any rotation of the cycle is a correct answer; a partial path is not.
    expect(run.stderr).toMatch(/\b(a --> b --> c --> a|b --> c --> a --> b|c --> a --> b --> c)\b/);
    for (const file of ['models/a.sql', 'models/b.sql', 'models/c.sql']) expect(run.stderr).toContain(file);
    expect(run.stderr).toContain('hint:');
    expectNothingWritten(p);
  });

  it('a duplicate model name in two folders: names both files', async () => {
    const p = project({
      'models/x/dup.sql': 'select 1 as a\n',
      'models/y/dup.sql': 'select 2 as a\n',
    });
    const run = await cdp(p, ['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('`dup`');
    expect(run.stderr).toContain('models/x/dup.sql');
    expect(run.stderr).toContain('models/y/dup.sql');
    expect(run.stderr).toMatch(/rename/i);
    expectNothingWritten(p);
  });
});

// ---------------------------------------------------------------------------------------
describe('missing environment variables', () => {
  it('in profiles.yml: names the file, line and key', async () => {
    const p = project({
      ...MODEL,
      'profiles.yml':
        'target: dev\ntargets:\n  dev:\n    type: duckdb\n    path: \'{{ env "CDP_BAD_INPUT_DB_PATH" }}\'\n    schema: main\n',
    });
    const run = await cdp(p, ['run'], { CDP_BAD_INPUT_DB_PATH: undefined });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/profiles\.yml:5\b/);
    expect(run.stderr).toContain('targets.dev.path');
    expect(run.stderr).toContain('CDP_BAD_INPUT_DB_PATH');
    expect(run.stderr).toMatch(/hint: Export CDP_BAD_INPUT_DB_PATH/);
    expect(targetFiles(p)).toEqual([]);
  });

  it('in a model\'s {{ env }}: names the file, line and column', async () => {
    const p = project({ 'models/a.sql': 'select 1 as a,\n  \'{{ env "CDP_BAD_INPUT_REGION" }}\' as region\n' });
    const run = await cdp(p, ['run'], { CDP_BAD_INPUT_REGION: undefined });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('models/a.sql:2:4');
    expect(run.stderr).toContain('CDP_BAD_INPUT_REGION');
    expect(run.stderr).toMatch(/hint: Export CDP_BAD_INPUT_REGION/);
    expectNothingWritten(p);
  });

  it.each([
    ['{{ env "CDP_API_TOKEN" }}', 'Env var `CDP_API_TOKEN`'],
    ['{{ var "warehouse_password" "x" }}', 'Var `warehouse_password`'],
  ])('refuses a secret-looking name in a model (%s): compiled SQL is written to disk', async (call, what) => {
    const p = project({ 'models/a.sql': `select '${call}' as leak\n` });
    const run = await cdp(p, ['compile'], { CDP_API_TOKEN: 'tok-should-never-appear' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${what} looks like a secret and cannot be used in a model`);
    expect(run.stderr).toContain('models/a.sql:1');
    expect(output(run)).not.toContain('tok-should-never-appear');
    expectNothingWritten(p);
  });
});

// ---------------------------------------------------------------------------------------
describe('a SQL error in one model', () => {
  it('keeps building the others, reports the error with its compiled SQL, skips descendants (process, exit 1)', async () => {
    const p = project({
      'models/ok1.sql': 'select 1 as id\n',
      'models/ok2.sql': 'select 2 as id\n',
      'models/broken.sql': '{{ config materialized="table" }}\nselect id, no_such_column\nfrom {{ ref "ok1" }}\n',
      'models/child.sql': 'select * from {{ ref "broken" }}\n',
      'models/grandchild.sql': 'select * from {{ ref "child" }}\n',
    });
    const run = spawned(p, ['run']);
    const text = output(run);
    expect(run.code).toBe(1);
    expect(text).toContain('no_such_column');
    expect(text).toMatch(/DuckDB: Binder Error/);
    const compiled = 'target/compiled/test_project/models/broken.sql';
    expect(text).toContain(compiled);
    expect(p.read(compiled)).toContain('no_such_column');
    expect(text).toMatch(/SKIP\s+view model child\b/);
    expect(text).toMatch(/SKIP\s+view model grandchild\b/);
    expect(text).toMatch(/PASS=2 .*ERROR=1 .*SKIP=2/);

    const results = p.json<{ results: { unique_id: string; status: string; message?: string; compiled_path?: string }[] }>('target/run_results.json').results;
    const status = Object.fromEntries(results.map((r) => [r.unique_id.split('.').pop(), r.status]));
    expect(status).toEqual({ ok1: 'success', ok2: 'success', broken: 'error', child: 'skipped', grandchild: 'skipped' });
    const broken = results.find((r) => r.unique_id.endsWith('.broken'))!;
    expect(broken.message).toContain('no_such_column');
    expect(broken.compiled_path).toBe(compiled);

    // The other models were built; the failed table left neither a relation nor a staging table behind.
    expect(await tableNames(p)).toEqual(['ok1', 'ok2']);
  });
});

// ---------------------------------------------------------------------------------------
describe('a locked DuckDB file', () => {
  let holder: ChildProcess | undefined;

  afterEach(async () => {
    if (holder && holder.exitCode === null && holder.signalCode === null) {
      const exited = new Promise((resolve) => holder!.once('exit', resolve));
      holder.kill();
      await exited;
    }
    holder = undefined;
  });

  it('exits 5 (process) and names the file and the PID holding the lock', async () => {
    const p = project(MODEL);
    const db = p.path('target/test.duckdb');
    const duckdb = pathToFileURL(path.join(REPO_ROOT, 'node_modules/@duckdb/node-api/lib/index.js')).href;
    const script = [
      `const { DuckDBInstance } = await import(${JSON.stringify(duckdb)});`,
      `const { mkdirSync } = await import('node:fs');`,
      `const { dirname } = await import('node:path');`,
      `mkdirSync(dirname(process.argv[1]), { recursive: true });`,
      `const instance = await DuckDBInstance.create(process.argv[1]);`,
      `const connection = await instance.connect();`,
      `await connection.run('CREATE TABLE held AS SELECT 1 AS x');`,
      `console.log('READY');`,
      `setInterval(() => {}, 60_000);`,
    ].join('\n');
    holder = spawn(process.execPath, ['--input-type=module', '-e', script, db], { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitForReady(holder);

    const run = spawned(p, ['run']);
    expect(run.code).toBe(5);
    expect(run.stderr).toContain('test.duckdb');
    expect(run.stderr).toMatch(/locked by another process/);
    expect(run.stderr).toContain(`PID ${holder.pid}`);
    expect(run.stderr).toContain('hint:');

    // Nothing ran: once the holder is gone, the file holds only its table.
    const exited = new Promise((resolve) => holder!.once('exit', resolve));
    holder.kill();
    await exited;
    expect(await tableNames(p)).toEqual(['held']);
    expect(existsSync(p.path('target/run_results.json'))).toBe(false);
  });
});

function waitForReady(child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`lock holder not ready after ${timeoutMs}ms: ${stderr}`)), timeoutMs);
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('READY')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`lock holder exited (${code}) before it was ready: ${stderr}`));
    });
  });
}

// ---------------------------------------------------------------------------------------
describe('invalid selectors', () => {
  it.each(['+', 'tag:', 'bogus:x'])('--select %j: exit 2 with the selector text', async (selector) => {
    const p = project(MODEL);
    const run = await cdp(p, ['run', '--select', selector]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`Invalid selector "${selector}"`);
    expect(run.stderr).toMatch(/at column \d+/);
    expect(run.stderr).toContain('hint:');
    expectNothingWritten(p);
  });
});

// ---------------------------------------------------------------------------------------
describe('Handlebars syntax errors', () => {
  it('an unclosed {{ points at the line where the tag opens', async () => {
    const p = project({
      'models/a.sql': 'select id,\n  amount\nfrom {{ ref "orders"\nwhere amount > 0\n  and id = 3\n',
      'models/orders.sql': 'select 1 as id, 2 as amount\n',
    });
    const run = await cdp(p, ['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Template error');
    expect(run.stderr).toMatch(/models\/a\.sql:3\b/);
    expect(run.stderr).toContain('hint:');
    expectNothingWritten(p);
  });

  it('a badly closed tag points at its line', async () => {
    const p = project({
      'models/a.sql': 'select id\nfrom {{ ref "orders" }\nwhere 1 = 1\n',
      'models/orders.sql': 'select 1 as id\n',
    });
    const run = await cdp(p, ['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('Template error');
    expect(run.stderr).toMatch(/models\/a\.sql:2\b/);
    expectNothingWritten(p);
  });
});

// ---------------------------------------------------------------------------------------
describe('injection attempts in names', () => {
  /** A database that exists before the run, so "nothing executed" can be checked, not assumed. */
  async function withVictimTable(p: TempProject): Promise<void> {
    mkdirSync(p.path('target'), { recursive: true });
    await p.query('CREATE TABLE x AS SELECT 42 AS v');
  }

  async function expectUntouched(p: TempProject): Promise<void> {
    expect(await tableNames(p)).toEqual(['x']);
    expect(await p.query('SELECT v FROM x')).toEqual([{ v: 42 }]);
    expect(targetFiles(p)).toEqual(['target/test.duckdb']);
  }

  it('a model file named x;drop.sql', async () => {
    const p = project({ 'models/ok.sql': 'select 1 as a\n', 'models/x;drop.sql': 'select 1 as a\n' });
    await withVictimTable(p);
    const run = await cdp(p, ['build']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('models/x;drop.sql');
    expect(run.stderr).toContain('not a valid name');
    expect(run.stderr).toContain('hint:');
    await expectUntouched(p);
  });

  it('a seed named a"b.csv', async () => {
    const p = project({ 'models/ok.sql': 'select 1 as a\n', 'seeds/a"b.csv': 'id\n1\n' });
    await withVictimTable(p);
    const run = await cdp(p, ['build']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('seeds/a"b.csv');
    expect(run.stderr).toContain('not a valid name');
    expect(run.stderr).toContain('hint:');
    await expectUntouched(p);
  });

  it.each([
    ['schema', 'sources.0.schema', 4, 'sources:\n  - name: raw\n    schema: \'raw"; drop table x; --\'\n    tables:\n      - name: t\n'],
    ['name', 'sources.0.name', 3, 'sources:\n  - name: \'raw"; drop table x; --\'\n    tables:\n      - name: t\n'],
  ])('a source %s like raw"; drop table x; -- in YAML', async (_what, key, line, yaml) => {
    const p = project({ 'models/ok.sql': 'select 1 as a\n', 'models/sources.yml': `version: 2\n${yaml}` });
    await withVictimTable(p);
    const run = await cdp(p, ['build']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`models/sources.yml:${line}`);
    expect(run.stderr).toContain(key);
    expect(run.stderr).toContain('not a valid name');
    await expectUntouched(p);
  });
});

// ---------------------------------------------------------------------------------------
describe('a secret written in plain text in profiles.yml', () => {
  const snowflake = '    type: snowflake\n    account: acme\n    user: cdp\n    password: hunter2\n    warehouse: W\n    database: D\n    schema: s\n';

  it('is refused with exit 2 (process) by every command, and never printed', () => {
    const p = project({ ...MODEL, 'profiles.yml': `target: sf\ntargets:\n  sf:\n${snowflake}` });
    for (const args of [['run'], ['compile'], ['debug'], ['run', '--log-format', 'json']]) {
      const run = spawned(p, args);
      const text = output(run);
      expect(run.code, args.join(' ')).toBe(2);
      expect(text).not.toContain('hunter2');
      expect(text).toMatch(/profiles\.yml:7\b/);
      expect(text).toContain('targets.sf.password');
      expect(text).toContain('plain text');
      expect(text).toContain('{{ env');
    }
    expectNothingWritten(p);
  });

  it('is refused even when that target is not the one selected', async () => {
    const p = project({
      ...MODEL,
      'profiles.yml': `target: dev\ntargets:\n  dev:\n    type: duckdb\n    path: target/test.duckdb\n    schema: main\n  sf:\n${snowflake}`,
    });
    const run = await cdp(p, ['run']);
    expect(output(run)).not.toContain('hunter2');
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/profiles\.yml:11\b/);
    expect(run.stderr).toContain('targets.sf.password');
    expectNothingWritten(p);
  });
});

// ---------------------------------------------------------------------------------------
describe('unknown keys', () => {
  it('in a profiles.yml target: names the file, line and key', async () => {
    const p = project({
      ...MODEL,
      'profiles.yml': 'target: dev\ntargets:\n  dev:\n    type: duckdb\n    path: target/test.duckdb\n    schema: main\n    thread: 2\n',
    });
    const run = await cdp(p, ['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/profiles\.yml:7\b/);
    expect(run.stderr).toContain('targets.dev.thread');
    expect(run.stderr).toMatch(/hint: .*\bthreads\b/);
    expectNothingWritten(p);
  });

  it('at the top of cdp_project.yml: names the file, line and key', async () => {
    const p = project({ ...MODEL, 'cdp_project.yml': 'name: test_project\nmodel-path: [models]\n' });
    const run = await cdp(p, ['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/cdp_project\.yml:2\b/);
    expect(run.stderr).toContain('`model-path`');
    expect(run.stderr).toMatch(/hint: .*\bmodel-paths\b/);
    expectNothingWritten(p);
  });

  it('in identity.yml: one error, not a second one claiming golden_record.yml has no identity.yml', async () => {
    const p = project({
      ...MODEL,
      'identity.yml': 'identifier_typos:\n  email: { normalize: email }\n',
      'golden_record.yml': 'computed_traits: {}\n',
    });
    const run = await cdp(p, ['compile']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/identity\.yml:1 \(key `identifier_typos`\): Unknown key `identifier_typos`/);
    expect(run.stderr).not.toContain('needs identity.yml');
  });
});

// ---------------------------------------------------------------------------------------
describe('bad flags', () => {
  it('--threads 0: exit 2 (process)', () => {
    const p = project(MODEL);
    const run = spawned(p, ['run', '--threads', '0']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--threads');
    expect(run.stderr).toMatch(/between 1 and 64/);
    expectNothingWritten(p);
  });

  it("--vars 'not: [valid': exit 2", async () => {
    const p = project(MODEL);
    const run = await cdp(p, ['run', '--vars', 'not: [valid']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--vars');
    expect(run.stderr).toMatch(/hint: .*--vars '\{/);
    expectNothingWritten(p);
  });
});

// ---------------------------------------------------------------------------------------
describe('destination credentials (plan and sync)', () => {
  const contract = (name: string, type: string, options: string) =>
    `name: ${name}\nmodel: contacts\ntype: ${type}\nprimary_key: id\nmapping:\n  email: email\nmode: upsert\noptions:\n${options}`;
  const DESTINATIONS = {
    'seeds/contacts.csv': 'id,email\n1,ana@example.com\n',
    'destinations/hook.yml': contract('hook', 'webhook', '  url: http://127.0.0.1:9/hook\n  secret: \'{{ env "CDP_BAD_INPUT_HOOK_SECRET" }}\'\n'),
    'destinations/crm.yml': contract('crm', 'hubspot', '  token: \'{{ env "CDP_BAD_INPUT_HUBSPOT_TOKEN" }}\'\n'),
    'destinations/outbox.yml': contract('outbox', 'file', '  format: jsonl\n  directory: target/outbox\n'),
  };

  it('only the selected destinations need theirs', async () => {
    const p = project(DESTINATIONS);
    expect((await cdp(p, ['seed'])).code).toBe(0);
    const outbox = await cdp(p, ['plan', '--select', 'outbox']);
    expect(outbox.stderr).toBe('');
    expect(outbox.code).toBe(0);

    const hook = await cdp(p, ['plan', '--select', 'hook']);
    expect(hook.code).toBe(2);
    expect(hook.stderr).toContain('CDP_BAD_INPUT_HOOK_SECRET');
    expect(hook.stderr).not.toContain('CDP_BAD_INPUT_HUBSPOT_TOKEN');
  });

  it('every missing one is reported at once, each with its file and key', async () => {
    const p = project(DESTINATIONS);
    for (const command of ['plan', 'sync']) {
      const run = await cdp(p, [command]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/destinations\/hook\.yml:\d+ \(key `options\.secret`\).*CDP_BAD_INPUT_HOOK_SECRET/);
      expect(run.stderr).toMatch(/destinations\/crm\.yml:\d+ \(key `options\.token`\).*CDP_BAD_INPUT_HUBSPOT_TOKEN/);
    }
    expect(existsSync(p.path('target/test.duckdb'))).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------
describe('misspelt consent scopes and event names', () => {
  const GOLDEN = `event_sources:
  - name: orders
    from: ref('orders')
    identifier: { type: customer_id, column: customer_id }
    timestamp: ordered_at
    event: order
    properties: [amount]
computed_traits:
  orders: { aggregate: count, events: [order] }
consent:
  scopes:
    email_marketing: { default: revoked }
    ads: { default: granted }
  events:
    - name: prefs
      from: ref('consent')
      identifiers: { email: email }
      scope: scope
      status: status
      timestamp: occurred_at
`;
  const AUDIENCE = 'name: buyers\nconsent: [email_marketing]\nwhere: { trait: orders, gte: 1 }\n';
  const CONTRACT = 'name: outbox\nmodel: audience_buyers\ntype: file\nprimary_key: profile_id\nmapping:\n  orders: orders\nmode: mirror\nconsent: [email_marketing]\noptions:\n  format: jsonl\n  directory: target/outbox\n';
  const FILES = {
    'identity.yml': CUSTOMERS_IDENTITY,
    'seeds/customers.csv': 'customer_id,email,created_at\nC1,ana@example.com,2026-01-01 00:00:00\n',
    'seeds/orders.csv': 'order_id,customer_id,amount,ordered_at\n1,C1,49.5,2026-02-01 00:00:00\n',
    'seeds/consent.csv': 'email,scope,status,occurred_at\nana@example.com,email_marketing,granted,2026-01-02 00:00:00\n',
    'golden_record.yml': GOLDEN,
    'audiences/buyers.yml': AUDIENCE,
    'destinations/outbox.yml': CONTRACT,
  };
  const typo = (file: keyof typeof FILES, from: string | RegExp, to: string) => ({ [file]: FILES[file].replace(from, to) });

  it('the project they are made in builds as written', async () => {
    expect((await cdp(project(FILES), ['build'])).code).toBe(0);
  });

  it.each([
    ['a contract\'s consent scope', typo('destinations/outbox.yml', 'consent: [email_marketing]', 'consent: [email_marketng]'),
      /destinations\/outbox\.yml:8 \(key `consent\.0`\): `email_marketng` is not a consent scope of this project[\s\S]*Did you mean `email_marketing`\? Scopes declared under consent\.scopes of golden_record\.yml: email_marketing, ads/],
    ['a contract\'s consent scope written as one string', typo('destinations/outbox.yml', 'consent: [email_marketing]', 'consent: email_marketng'),
      /destinations\/outbox\.yml:8 \(key `consent`\).*`email_marketng` is not a consent scope/],
    ['an audience\'s consent scope', typo('audiences/buyers.yml', 'consent: [email_marketing]', 'consent: [ads, email_marketng]'),
      /audiences\/buyers\.yml:2 \(key `consent\.1`\).*`email_marketng` is not a consent scope[\s\S]*Did you mean `email_marketing`\?/],
    ['a computed trait\'s event name', typo('golden_record.yml', 'events: [order]', 'events: [ordr]'),
      /golden_record\.yml:9 \(key `computed_traits\.orders\.events\.0`\): No event source produces the event `ordr`[\s\S]*Did you mean `order`\? Event names of event_sources in golden_record\.yml: order/],
    ['an audience\'s event name', typo('audiences/buyers.yml', '{ trait: orders, gte: 1 }', '{ event: ordr, within_days: 30 }'),
      /audiences\/buyers\.yml:3 \(key `where\.event`\): No event source produces the event `ordr`[\s\S]*Did you mean `order`\?/],
    ['a scope in a project that declares no consent', {
      'golden_record.yml': GOLDEN.slice(0, GOLDEN.indexOf('consent:')),
      'audiences/buyers.yml': AUDIENCE.replace('consent: [email_marketing]', 'consent: []'),
    }, /destinations\/outbox\.yml:8 \(key `consent`\).*requires consent \(email_marketing\), but the project declares no consent/],
  ])('%s: exit 2, file, line, key and a did-you-mean; nothing built', async (_name, files, message) => {
    const p = project({ ...FILES, ...files });
    for (const command of ['build', 'plan']) {
      const run = await cdp(p, [command]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
    }
    expectNothingWritten(p);
  });

  it('accepts any event name when a source computes its names with event_sql', async () => {
    const golden = GOLDEN.replace('event: order', 'event_sql: "\'ord\' || \'r\'"').replace('events: [order]', 'events: [ordr]');
    const p = project({ ...FILES, 'golden_record.yml': golden });
    expect((await cdp(p, ['compile'])).code).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------
describe('malformed CSV seeds and file-backed sources', () => {
  const GOOD = { 'seeds/plans.csv': 'plan,price\nfree,0\npro,10\n' };
  const HEADER = 'customer_id,email,signed_up_at,plan\n';

  it.each([
    ['fewer fields than the header', `${HEADER}1,a@x.com,2026-01-01,free\n2,b@x.com,2026-01-02\n`, 3, /the row has 3 fields, the header has 4/],
    ['more fields than the header', `${HEADER}1,a@x.com,2026-01-01,free\n2,b@x.com,2026-01-02,pro,extra\n`, 3, /the row has 5 fields, the header has 4/],
    ['an unclosed quote', `${HEADER}1,"a@x.com,2026-01-01,free\n2,b@x.com,2026-01-02,pro\n`, 2, /never closed/],
  ])('a seed with %s: exit 2 naming the file and line, nothing loaded', async (_name, csv, line, message) => {
    const p = project({ ...GOOD, 'seeds/customers.csv': csv });
    for (const command of ['seed', 'build']) {
      const run = await cdp(p, [command]);
      expect(run.code, output(run)).toBe(2);
      expect(run.stderr).toContain(`seeds/customers.csv:${line}: Seed file is not valid CSV`);
      expect(run.stderr).toMatch(message);
      expect(existsSync(p.path('target/test.duckdb'))).toBe(false);
    }
  });

  it('a file-backed source goes through the same check', async () => {
    const p = project({
      ...GOOD,
      'data/customers.csv': `${HEADER}1,a@x.com,2026-01-01\n`,
      'models/sources.yml': 'sources:\n  - name: raw\n    tables:\n      - name: customers\n        file: data/customers.csv\n',
    });
    const run = await cdp(p, ['seed']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('data/customers.csv:2: Source file is not valid CSV: the row has 3 fields, the header has 4');
    expect(existsSync(p.path('target/test.duckdb'))).toBe(false);
  });

  it('a well-formed seed with quoted commas, quotes and line breaks loads as written', async () => {
    const p = project({ 'seeds/notes.csv': 'id,note\n1,"a, b"\n2,"say ""hi"""\n3,"two\nlines"\n' });
    expect((await cdp(p, ['seed'])).code).toBe(0);
    const rows = await p.query('select id, note from main.notes order by id');
    expect(rows.map((r) => r['note'])).toEqual(['a, b', 'say "hi"', 'two\nlines']);
  });
});
