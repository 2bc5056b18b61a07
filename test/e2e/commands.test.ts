import { existsSync, readdirSync, readFileSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TempProject, projectPool, spawnCdp } from '../helpers/project.js';

const track = projectPool();

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

describe('cdp on the repo-root project', () => {
  it('builds seeds, models and tests on DuckDB with no credentials', async () => {
    const project = track(TempProject.fromRepoRoot());
    const run = await project.cdp(['build']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/OK\s+table model customer_activity/);
    expect(run.stdout).toMatch(/Done\. PASS=\d+ WARN=0 ERROR=0 SKIP=0 TOTAL=\d+/);
    const rows = await project.query('select count(*) as n from main.customer_activity', 'target/cdp_demo.duckdb');
    expect(Number(rows[0]!['n'])).toBe(166);
  });

  it('compiles offline for BigQuery and Snowflake, with engine quoting and no secret in any artifact', async () => {
    const project = track(TempProject.fromRepoRoot());
    const env = { CDP_SNOWFLAKE_PASSWORD: 'super-Secret-pw-123', CDP_BIGQUERY_PROJECT: 'acme-prod' };
    // Offline and without credentials: compile never needs them.
    const bare = await project.cdp(['compile', '--target', 'snowflake'], { CDP_SNOWFLAKE_PASSWORD: '' });
    expect(bare.stderr).toBe('');
    expect(bare.code).toBe(0);
    const bq = await project.cdp(['compile', '--target', 'bigquery'], env);
    expect(bq.code).toBe(0);
    const bqSql = project.read('target/compiled/cdp_demo/models/marts/customer_activity.sql');
    expect(bqSql).toContain('`acme-prod`.`cdp_demo`.`stg_bookings`');

    const sf = await project.cdp(['compile', '--target', 'snowflake'], env);
    expect(sf.code).toBe(0);
    const sfSql = project.read('target/compiled/cdp_demo/models/staging/stg_bookings.sql');
    // Simple names are quoted in Snowflake's folded upper case, matching unquoted aliases in models.
    expect(sfSql).toContain('"ANALYTICS"."RAW"."BOOKINGS"');
    const manifest = project.json<{ metadata: { target: { type: string } } }>('target/manifest.json');
    expect(manifest.metadata.target.type).toBe('snowflake');
    for (const file of listFiles(project.path('target'))) {
      expect(readFileSync(file, 'utf8'), file).not.toContain('super-Secret-pw-123');
    }
    expect(sf.stdout + sf.stderr).not.toContain('super-Secret-pw-123');
  });
});

describe('cdp init', () => {
  it('scaffolds a project that builds at once', async () => {
    const parent = track(new TempProject());
    const dir = parent.path('my_shop');
    const init = await parent.cdp(['init', dir]);
    expect(init.code).toBe(0);
    expect(existsSync(path.join(dir, 'cdp_project.yml'))).toBe(true);
    const build = spawnCdp(['build'], dir);
    expect(build.stderr).toBe('');
    expect(build.code).toBe(0);
    expect(build.stdout).toMatch(/ERROR=0 SKIP=0/);
  });

  it('refuses to write into a non-empty directory', async () => {
    const parent = track(new TempProject({ 'existing/file.txt': 'x' }));
    const run = await parent.cdp(['init', parent.path('existing')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/not empty/);
  });
});

describe('cdp debug', () => {
  it('shows the resolved target with secrets masked and checks the connection', async () => {
    const project = track(TempProject.fromRepoRoot());
    const ok = await project.cdp(['debug']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/connection: ok \(DuckDB v\d/);
    expect(ok.stdout).toContain('type: duckdb');

    const sf = await project.cdp(['debug', '--target', 'snowflake', '--json', '--no-connection'], { CDP_SNOWFLAKE_PASSWORD: 'p4ssw0rd-xyz' });
    const report = JSON.parse(sf.stdout) as { target: Record<string, unknown>; connection: string };
    expect(report.target['password']).toBe('****');
    expect(report.target['database']).toBe('ANALYTICS');
    expect(sf.stdout).not.toContain('p4ssw0rd-xyz');
    expect(report.connection).toBe('not checked');
  });

  it('reports a connection failure with exit 1 and no secret', async () => {
    const project = track(TempProject.fromRepoRoot());
    const run = await project.cdp(['debug', '--target', 'snowflake', '--timeout', '1'], { CDP_SNOWFLAKE_PASSWORD: 'p4ssw0rd-xyz' });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/connection: FAILED/);
    expect(run.stdout).not.toContain('p4ssw0rd-xyz');
  });
});

describe('cdp ls', () => {
  it('lists selected nodes by name, path or JSON', async () => {
    const project = track(TempProject.fromRepoRoot());
    const names = await project.cdp(['ls', '--select', 'tag:marts', '--resource-type', 'model', '--output', 'name']);
    expect(names.code).toBe(0);
    expect(names.stdout.split('\n').sort()).toEqual(['customer_activity', 'daily_revenue']);
    const paths = await project.cdp(['ls', '--select', '+customer_activity', '--resource-type', 'model', '--output', 'path']);
    expect(paths.stdout.split('\n')).toContain('models/intermediate/int_payments_net.sql');
    const json = await project.cdp(['ls', '--select', 'stg_bookings', '--output', 'json']);
    const first = JSON.parse(json.stdout.split('\n')[0]!) as { unique_id: string };
    expect(first.unique_id).toBe('model.cdp_demo.stg_bookings');
  });
});

describe('state:modified across clones and targets', () => {
  /** A fresh checkout of the same commit: another directory, every file with a new mtime. */
  function freshClone(): TempProject {
    const clone = track(TempProject.fromRepoRoot());
    const later = new Date(Date.now() + 3_600_000);
    for (const file of listFiles(clone.dir)) utimesSync(file, later, later);
    return clone;
  }

  async function modified(p: TempProject, stateDir: string, selector = 'state:modified', resourceType?: string): Promise<string[]> {
    const run = await p.cdp(['ls', '--select', selector, '--state', stateDir, '--output', 'name', ...(resourceType ? ['--resource-type', resourceType] : [])]);
    expect(run.code, run.stderr).toBe(0);
    return run.stdout.split('\n').filter((line) => line.length > 0).sort();
  }

  it('flags nothing in a fresh clone compared with state compiled for another target, then only what changed', async () => {
    const prod = track(TempProject.fromRepoRoot());
    expect((await prod.cdp(['compile', '--target', 'snowflake'])).code).toBe(0);
    const clone = freshClone();
    expect(await modified(clone, prod.path('target'))).toEqual([]);

    const catalog = clone.read('seeds/class_catalog.csv');
    clone.write({ 'seeds/class_catalog.csv': catalog.replace('Yoga Flow,mind_body,60,18.00', 'Yoga Flow,mind_body,60,19.00') });
    // The relationships test reading class_catalog comes along, as tests of selected nodes do.
    expect(await modified(clone, prod.path('target'))).toEqual(['class_catalog', 'relationships_stg_bookings_class_id__class_catalog_class_id']);
    clone.write({ 'seeds/class_catalog.csv': catalog });

    // A file-backed source is loaded like a seed: a changed row flags it, and `+` its children.
    const bookings = clone.read('data/bookings.csv').split('\n');
    bookings[1] = bookings[1]!.replace(/,booked,|,attended,/, ',cancelled,');
    clone.write({ 'data/bookings.csv': bookings.join('\n') });
    expect(await modified(clone, prod.path('target'), 'state:modified', 'source')).toEqual(['raw.bookings']);
    const withChildren = await modified(clone, prod.path('target'), 'state:modified+', 'model');
    expect(withChildren).toContain('stg_bookings');
    expect(withChildren).not.toContain('stg_payments');
  });

  it('flags a generated model when the YAML it is generated from changes', async () => {
    const prod = track(TempProject.fromRepoRoot());
    expect((await prod.cdp(['compile', '--target', 'snowflake'])).code).toBe(0);
    const clone = freshClone();
    clone.write({ 'audiences/churn_risk.yml': `${clone.read('audiences/churn_risk.yml')}\n# reviewed\n` });
    expect(await modified(clone, prod.path('target'), 'state:modified', 'model')).toEqual(['audience_churn_risk']);
    clone.write({ 'models/staging/sources.yml': clone.read('models/staging/sources.yml').replace('App and web sign-ups.', 'Sign-ups.') });
    expect(await modified(clone, prod.path('target'), 'state:modified', 'source')).toEqual(['raw.accounts']);
  });
});

describe('--help', () => {
  it.each(['init', 'debug', 'seed', 'compile', 'run', 'test', 'build', 'ls'])('cdp %s --help documents the flags', async (command) => {
    const project = track(new TempProject());
    const run = await project.cdp([command, '--help']);
    expect(run.code).toBe(0);
    if (command !== 'init') expect(run.stdout).toContain('--project-dir');
    if (['seed', 'compile', 'run', 'test', 'build', 'ls'].includes(command)) {
      for (const flag of ['--select', '--exclude', '--state', '--target', '--vars', '--log-format', '--profiles-dir']) {
        expect(run.stdout).toContain(flag);
      }
      // Flags that only change how nodes are built are offered only where nodes are built.
      for (const flag of ['--threads', '--full-refresh', '--fail-fast']) {
        if (command === 'ls') expect(run.stdout).not.toContain(flag);
        else expect(run.stdout).toContain(flag);
      }
    }
  });

  it.each([['plan', '--threads', '2'], ['sync', '--full-refresh'], ['ls', '--fail-fast']])('cdp %s refuses %s, which would do nothing there (exit 2)', async (command, ...flag) => {
    const run = await track(new TempProject()).cdp([command, ...flag]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`unknown option '${flag[0]}'`);
  });
});

describe('credentials are needed to connect, not to compile', () => {
  it('compiles for a Snowflake target whose password variable is unset, and names it when a command connects', async () => {
    const p = track(new TempProject({
      'cdp_project.yml': 'name: offline\n',
      'profiles.yml': [
        'target: prod', 'targets:', '  prod:', '    type: snowflake', '    account: acme-xy12345', '    user: cdp',
        '    password: \'{{ env "SF_TEST_PASSWORD_UNSET" }}\'', '    warehouse: transforming', '    database: analytics', '    schema: marts', '',
      ].join('\n'),
      'models/orders.sql': 'select 1 as id\n',
    }));
    const compile = await p.cdp(['compile']);
    expect(compile.code).toBe(0);
    expect(existsSync(p.path('target/compiled/offline/models/orders.sql'))).toBe(true);
    const run = await p.cdp(['run']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/Environment variable SF_TEST_PASSWORD_UNSET is not set/);
    expect(run.stderr).toMatch(/profiles\.yml/);
  });
});

describe('commands that only read the warehouse', () => {
  it('say nothing was built, and create no empty database file', async () => {
    const p = track(TempProject.fromRepoRoot());
    for (const args of [['plan'], ['sync', 'history']]) {
      const run = await p.cdp(args);
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr).toMatch(/cdp_demo\.duckdb of target `dev` does not exist: nothing was built there yet/);
    }
    expect(existsSync(p.path('target/cdp_demo.duckdb'))).toBe(false);
  });
});
