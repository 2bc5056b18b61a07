import { describe, expect, it } from 'vitest';
import { cpSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { NodeResult } from '../../src/run/result.js';
import { duckdbProject, expectCode, output, projectPool, type TempProject } from '../helpers/project.js';

/*
 * The runner end to end on DuckDB: console lines, exit codes, data tests, skipping,
 * --fail-fast, threads, selection, vars, artifacts and JSON logs.
 */

const track = projectPool();

function project(files: Record<string, string> = {}): TempProject {
  return track(duckdbProject(files));
}


type Result = NodeResult;

interface RunResults {
  metadata: Record<string, unknown>;
  command: string;
  elapsed_time: number;
  results: Result[];
}

function runResults(p: TempProject): RunResults {
  return p.json<RunResults>('target/run_results.json');
}

function statuses(p: TempProject): Record<string, string> {
  return Object.fromEntries(runResults(p).results.map((r) => [r.unique_id, r.status]));
}

function result(p: TempProject, id: string): Result {
  const found = runResults(p).results.find((r) => r.unique_id === id);
  if (!found) throw new Error(`${id} is not in run_results.json`);
  return found;
}

async function tableNames(p: TempProject): Promise<string[]> {
  const rows = await p.query('select table_name from information_schema.tables order by table_name');
  return rows.map((r) => String(r['table_name']));
}

/** Asserts `child` started no earlier than `parent` completed, using run_results timings. */
function expectAfter(p: TempProject, child: string, parent: string): void {
  const started = result(p, child).timing[0]!.started_at;
  const parentDone = result(p, parent).timing[0]!.completed_at;
  expect(started >= parentDone, `${child} started ${started}, before ${parent} completed ${parentDone}`).toBe(true);
}

const M = (name: string) => `model.test_project.${name}`;
const T = (name: string) => `test.test_project.${name}`;

// ---------------------------------------------------------------------------------------

describe('console output', () => {
  it('prints one line per node and the final summary', async () => {
    const p = project({
      'seeds/countries.csv': 'code\nDE\nFR\n',
      'models/a.sql': 'select code from {{ ref "countries" }}',
      'models/b.sql': '{{ config materialized="table" }}\nselect count(*) as n from {{ ref "a" }}',
      'models/schema.yml': 'models:\n  - name: a\n    columns:\n      - name: code\n        tests: [not_null]\n',
    });
    const run = await p.cdp(['build']);
    expectCode(run, 0);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toBe('Running with cdp on target dev (duckdb)');
    expect(run.stdout).toMatch(/^1 of 4 OK {4}seed countries \.{3,} \[OK in \d+\.\d\ds\]$/m);
    expect(run.stdout).toMatch(/^\d of 4 OK {4}view model a \.{3,} \[OK in \d+\.\d\ds\]$/m);
    expect(run.stdout).toMatch(/^\d of 4 OK {4}table model b \.{3,} \[OK in \d+\.\d\ds\]$/m);
    expect(run.stdout).toMatch(/^\d of 4 PASS  test not_null_a_code \.{3,} \[PASS in \d+\.\d\ds\]$/m);
    // Each "i of n" index appears exactly once.
    for (const i of [1, 2, 3, 4]) expect(lines.filter((l) => l.startsWith(`${i} of 4 `))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^Finished in \d+\.\d\ds\. Done\. PASS=4 WARN=0 ERROR=0 SKIP=0 TOTAL=4$/);
    expect(run.stderr).toBe('');
  });

  it('warns when the selection is empty and exits 0', async () => {
    const p = project({ 'models/a.sql': 'select 1 as id' });
    const run = await p.cdp(['run', '--select', 'nothing_matches_this']);
    expectCode(run, 0);
    expect(run.stdout).toMatch(/Nothing to do: `--select nothing_matches_this` matched no node `cdp run` runs \(see `cdp ls --select nothing_matches_this`\)/);
    expect(run.stdout).toMatch(/Done\. PASS=0 WARN=0 ERROR=0 SKIP=0 TOTAL=0/);
  });
});

// ---------------------------------------------------------------------------------------

/*
 * people: 4 rows, INTEGER columns only (failing rows are serialised to run_results.json).
 *   id        not_null                    -> pass
 *   score     not_null, severity warn     -> warn, 2 failing rows
 *   team_id   relationships -> teams.id   -> fail, 2 failing rows (3 and 9)
 *   tests/no_high_scores.sql (custom)     -> fail, 1 failing row
 */
const DATA_TEST_FILES: Record<string, string> = {
  'models/people.sql': 'select * from (values (1, 10, 1), (2, null, 2), (3, null, 3), (4, 40, 9)) as t(id, score, team_id)',
  'models/teams.sql': 'select * from (values (1), (2)) as t(id)',
  'models/schema.yml': `models:
  - name: people
    columns:
      - name: id
        tests: [not_null]
      - name: score
        tests:
          - not_null: { severity: warn }
      - name: team_id
        tests:
          - relationships: { to: ref('teams'), field: id }
`,
  'tests/no_high_scores.sql': 'select id, score from {{ ref "people" }} where score > 30',
};

const REL_TEST = 'relationships_people_team_id__teams_id';

describe('data tests', () => {
  it('a failing error-severity test exits 3, shows the failing row count, and records statuses', async () => {
    const p = project(DATA_TEST_FILES);
    const run = await p.cdp(['build']);
    expectCode(run, 3);
    expect(run.stdout).toMatch(new RegExp(`FAIL  test ${REL_TEST} \\.+ \\[FAIL in [\\d.]+s\\]\\n {4}2 failing row\\(s\\)`));
    expect(run.stdout).toMatch(/FAIL  test no_high_scores \.+ \[FAIL in [\d.]+s\]\n {4}1 failing row\(s\)/);
    expect(run.stdout).toMatch(/WARN  test not_null_people_score \.+ \[WARN in [\d.]+s\]\n {4}2 failing row\(s\)/);
    expect(run.stdout).toMatch(/PASS  test not_null_people_id/);
    expect(run.stdout).toMatch(/Done\. PASS=3 WARN=1 ERROR=2 SKIP=0 TOTAL=6/);

    expect(statuses(p)).toEqual({
      [M('people')]: 'success',
      [M('teams')]: 'success',
      [T('not_null_people_id')]: 'pass',
      [T('not_null_people_score')]: 'warn',
      [T(REL_TEST)]: 'fail',
      [T('no_high_scores')]: 'fail',
    });
    const rel = result(p, T(REL_TEST));
    expect(rel.failures).toBe(2);
    expect(rel.failing_rows!.map((r) => Number(r['value'])).sort()).toEqual([3, 9]);
    expect(rel.message).toBe('2 failing row(s)');
    const custom = result(p, T('no_high_scores'));
    expect(custom.failures).toBe(1);
    expect(custom.failing_rows).toEqual([{ id: 4, score: 40 }]);
    const warn = result(p, T('not_null_people_score'));
    expect(warn.failures).toBe(2);
    expect(warn.failing_rows!.map((r) => Number(r['id'])).sort()).toEqual([2, 3]);
    const pass = result(p, T('not_null_people_id'));
    expect(pass.failures).toBe(0);
    expect(pass.failing_rows).toEqual([]);
    expect(pass.message).toBe('pass');
  });

  it('only a failing warn-severity test: exit 0 and WARN', async () => {
    const p = project(DATA_TEST_FILES);
    const run = await p.cdp(['build', '--exclude', REL_TEST, 'no_high_scores']);
    expectCode(run, 0);
    expect(run.stdout).toMatch(/WARN  test not_null_people_score/);
    expect(run.stdout).toMatch(/Done\. PASS=3 WARN=1 ERROR=0 SKIP=0 TOTAL=4/);
    expect(statuses(p)[T('not_null_people_score')]).toBe('warn');
  });

  it('`cdp test` runs only tests, and a failing custom SQL test exits 3', async () => {
    const p = project(DATA_TEST_FILES);
    expectCode(await p.cdp(['run']), 0);
    const run = await p.cdp(['test', '--select', 'no_high_scores']);
    expectCode(run, 3);
    expect(Object.keys(statuses(p))).toEqual([T('no_high_scores')]);
    expect(statuses(p)[T('no_high_scores')]).toBe('fail');
  });

  it('a custom SQL test can be downgraded to warn with {{ config severity }}', async () => {
    const p = project({ ...DATA_TEST_FILES, 'tests/no_high_scores.sql': '{{ config severity="warn" }}\nselect id, score from {{ ref "people" }} where score > 30' });
    const run = await p.cdp(['build', '--exclude', REL_TEST]);
    expectCode(run, 0);
    expect(statuses(p)[T('no_high_scores')]).toBe('warn');
  });

  it('keeps at most 5 failing rows as a sample but counts them all', async () => {
    const p = project({
      'models/m.sql': 'select cast(i as integer) as id, cast(null as integer) as v from range(7) as r(i)',
      'models/schema.yml': 'models:\n  - name: m\n    columns:\n      - name: v\n        tests: [not_null]\n',
    });
    expectCode(await p.cdp(['build']), 3);
    const test = result(p, T('not_null_m_v'));
    expect(test.failures).toBe(7);
    expect(test.failing_rows).toHaveLength(5);
  });

  it('failing unique / accepted_values tests (BIGINT counts in the sample) still write run_results.json', async () => {
    const p = project({
      'models/m.sql': "select * from (values (1, 'a'), (1, 'b'), (2, 'zzz')) as t(id, kind)",
      'models/schema.yml': `models:
  - name: m
    columns:
      - name: id
        tests: [unique]
      - name: kind
        tests:
          - accepted_values: { values: [a, b] }
`,
    });
    const run = await p.cdp(['build']);
    expectCode(run, 3);
    expect(run.stderr).not.toMatch(/Internal error/);
    const unique = result(p, T('unique_m_id'));
    expect(unique.status).toBe('fail');
    expect(unique.failures).toBe(1);
    expect(Number(unique.failing_rows![0]!['n_records'])).toBe(2);
    expect(result(p, T('accepted_values_m_kind')).failures).toBe(1);
  });

  it('a failing test with --log-format json does not crash on BIGINT sample values', async () => {
    const p = project({
      'models/m.sql': 'select * from (values (1), (1)) as t(id)',
      'models/schema.yml': 'models:\n  - name: m\n    columns:\n      - name: id\n        tests: [unique]\n',
    });
    const run = await p.cdp(['build', '--log-format', 'json']);
    expectCode(run, 3);
    const failed = run.stdout.split('\n').map((l) => JSON.parse(l) as { info: { code: string } }).filter((e) => e.info.code === 'N006');
    expect(failed).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------

describe('failures and skipping', () => {
  it('exit 1 beats exit 3 when a model errors and a test fails', async () => {
    const p = project({ ...DATA_TEST_FILES, 'models/broken.sql': 'select * from a_table_that_does_not_exist' });
    const run = await p.cdp(['build']);
    expectCode(run, 1);
    expect(statuses(p)[M('broken')]).toBe('error');
    expect(statuses(p)[T(REL_TEST)]).toBe('fail');
    expect(run.stdout).toMatch(/ERROR view model broken[\s\S]*a_table_that_does_not_exist/);
    expect(run.stdout).toMatch(/Done\. PASS=3 WARN=1 ERROR=3 SKIP=0 TOTAL=7/);
  });

  it('skips every descendant of a failed node, transitively, and does not build them', async () => {
    const p = project({
      'models/a.sql': "{{ config materialized=\"table\" }}\nselect cast('x' as integer) as id",
      'models/b.sql': 'select id from {{ ref "a" }}',
      'models/c.sql': '{{ config materialized="table" }}\nselect id from {{ ref "b" }}',
      'models/d.sql': 'select 1 as id',
      'models/schema.yml': 'models:\n  - name: c\n    columns:\n      - name: id\n        tests: [not_null]\n',
    });
    const run = await p.cdp(['build']);
    expectCode(run, 1);
    expect(statuses(p)).toEqual({
      [M('a')]: 'error',
      [M('b')]: 'skipped',
      [M('c')]: 'skipped',
      [M('d')]: 'success',
      [T('not_null_c_id')]: 'skipped',
    });
    expect(result(p, M('b')).message).toContain('upstream a did not succeed');
    expect(result(p, M('c')).message).toContain('upstream b did not succeed');
    expect(run.stdout).toMatch(/SKIP  view model b \.+ \[SKIP\]/);
    expect(run.stdout).toMatch(/SKIP  table model c \.+ \[SKIP\]/);
    expect(run.stdout).toMatch(/Done\. PASS=1 WARN=0 ERROR=1 SKIP=3 TOTAL=5/);
    const built = await tableNames(p);
    expect(built).toContain('d');
    expect(built).not.toContain('a');
    expect(built).not.toContain('b');
    expect(built).not.toContain('c');
  });

  it('a failing error-severity test skips the models built on top of the tested model in `cdp build`', async () => {
    // dbt build semantics: a model's tests gate its children.
    const p = project({
      'models/a.sql': 'select * from (values (1), (null)) as t(id)',
      'models/b.sql': 'select id from {{ ref "a" }}',
      'models/schema.yml': 'models:\n  - name: a\n    columns:\n      - name: id\n        tests: [not_null]\n',
    });
    const run = await p.cdp(['build']);
    expectCode(run, 3);
    expect(statuses(p)).toEqual({ [M('a')]: 'success', [T('not_null_a_id')]: 'fail', [M('b')]: 'skipped' });
  });

  it('--fail-fast stops after the first failure and reports the rest as SKIP', async () => {
    const files = {
      'models/a_bad.sql': 'select * from missing_relation',
      'models/b.sql': '{{ config materialized="table" }}\nselect 1 as id',
      'models/c.sql': '{{ config materialized="table" }}\nselect 2 as id',
      'models/d.sql': '{{ config materialized="table" }}\nselect 3 as id',
    };
    const p = project(files);
    const run = await p.cdp(['run', '--fail-fast', '--threads', '1']);
    expectCode(run, 1);
    expect(statuses(p)).toEqual({ [M('a_bad')]: 'error', [M('b')]: 'skipped', [M('c')]: 'skipped', [M('d')]: 'skipped' });
    expect(result(p, M('c')).message).toMatch(/fail-fast/);
    expect(run.stdout).toMatch(/Done\. PASS=0 WARN=0 ERROR=1 SKIP=3 TOTAL=4/);
    expect(await tableNames(p)).toEqual([]);

    // Without --fail-fast the independent models are built.
    const q = project(files);
    expectCode(await q.cdp(['run', '--threads', '1']), 1);
    expect(statuses(q)).toEqual({ [M('a_bad')]: 'error', [M('b')]: 'success', [M('c')]: 'success', [M('d')]: 'success' });
  });

  it('--fail-fast with several threads: nodes not yet started are skipped and not built', async () => {
    const files: Record<string, string> = { 'models/a_bad.sql': 'select * from missing_relation' };
    for (let i = 1; i <= 8; i++) files[`models/m${i}.sql`] = `{{ config materialized="table" }}\nselect ${i} as id`;
    const p = project(files);
    expectCode(await p.cdp(['run', '--fail-fast', '--threads', '2']), 1);
    const results = runResults(p).results;
    const skipped = results.filter((r) => r.status === 'skipped');
    expect(skipped.length).toBeGreaterThan(0);
    expect(results.every((r) => ['error', 'success', 'skipped'].includes(r.status))).toBe(true);
    const built = await tableNames(p);
    for (const r of skipped) expect(built).not.toContain(r.unique_id.split('.').at(-1));
  });
});

// ---------------------------------------------------------------------------------------

describe('threads', () => {
  it('--threads 4 on a wide DAG builds everything on several threads, joins after their parents', async () => {
    const files: Record<string, string> = {};
    const name = (i: number) => `m${String(i).padStart(2, '0')}`;
    for (let i = 1; i <= 12; i++) files[`models/${name(i)}.sql`] = `{{ config materialized="table" }}\nselect ${i} as id`;
    for (let j = 0; j < 3; j++) {
      const parts = [1, 2, 3, 4].map((k) => `select id from {{ ref "${name(j * 4 + k)}" }}`);
      files[`models/join_${j + 1}.sql`] = `{{ config materialized="table" }}\nselect sum(id) as total from (\n${parts.join('\nunion all\n')}\n) as u`;
    }
    const p = project(files);
    const run = await p.cdp(['run', '--threads', '4']);
    expectCode(run, 0);
    expect(run.stdout).toMatch(/Done\. PASS=15 WARN=0 ERROR=0 SKIP=0 TOTAL=15/);
    const results = runResults(p).results;
    const threads = new Set(results.map((r) => r.thread_id));
    expect(threads.size).toBeGreaterThan(1);
    for (const t of threads) expect(['Thread-1', 'Thread-2', 'Thread-3', 'Thread-4']).toContain(t);
    for (let j = 0; j < 3; j++) {
      for (let k = 1; k <= 4; k++) expectAfter(p, M(`join_${j + 1}`), M(name(j * 4 + k)));
    }
    const totals = await p.query('select (select total from main.join_1) as a, (select total from main.join_2) as b, (select total from main.join_3) as c');
    expect(totals.map((r) => [Number(r['a']), Number(r['b']), Number(r['c'])])).toEqual([[10, 26, 42]]);
  });
});

// ---------------------------------------------------------------------------------------

describe('cdp build', () => {
  it('runs seeds, then models, then their tests, in DAG order', async () => {
    const p = project({
      'seeds/raw_people.csv': 'id,name\n1,ann\n2,bob\n',
      'seeds/schema.yml': 'seeds:\n  - name: raw_people\n    columns:\n      - name: id\n        tests: [not_null]\n',
      'models/people.sql': '{{ config materialized="table" }}\nselect id, upper(name) as name from {{ ref "raw_people" }}',
      'models/people_count.sql': 'select count(*) as n from {{ ref "people" }}',
      'models/schema.yml': 'models:\n  - name: people\n    columns:\n      - name: name\n        tests: [not_null]\n',
    });
    const run = await p.cdp(['build', '--threads', '4']);
    expectCode(run, 0);
    expect(statuses(p)).toEqual({
      'seed.test_project.raw_people': 'success',
      [M('people')]: 'success',
      [M('people_count')]: 'success',
      [T('not_null_raw_people_id')]: 'pass',
      [T('not_null_people_name')]: 'pass',
    });
    expectAfter(p, M('people'), 'seed.test_project.raw_people');
    expectAfter(p, T('not_null_raw_people_id'), 'seed.test_project.raw_people');
    expectAfter(p, T('not_null_people_name'), M('people'));
    expectAfter(p, M('people_count'), M('people'));
    const order = (text: string) => run.stdout.indexOf(text);
    expect(order('seed raw_people')).toBeLessThan(order('table model people'));
    expect(order('table model people')).toBeLessThan(order('test not_null_people_name'));
    const [row] = await p.query('select n from main.people_count');
    expect(Number(row!['n'])).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------

/*
 *   models/staging/stg_a (tag nightly) ─┐
 *   models/staging/stg_b ───────────────┴─> models/marts/ab (tag nightly) ─> models/marts/ab_report
 *   models/other/lonely
 */
const SELECTION_FILES: Record<string, string> = {
  'models/staging/stg_a.sql': '{{ config tags="nightly" }}\nselect 1 as id',
  'models/staging/stg_b.sql': 'select 2 as id',
  'models/marts/ab.sql': '{{ config tags="nightly" }}\nselect * from {{ ref "stg_a" }} union all select * from {{ ref "stg_b" }}',
  'models/marts/ab_report.sql': 'select count(*) as n from {{ ref "ab" }}',
  'models/marts/schema.yml': 'models:\n  - name: ab\n    columns:\n      - name: id\n        tests: [not_null]\n',
  'models/other/lonely.sql': 'select 3 as id',
};

describe('selection', () => {
  async function ran(p: TempProject, args: string[]): Promise<string[]> {
    const run = await p.cdp(args);
    expectCode(run, 0);
    return runResults(p).results.map((r) => r.unique_id.split('.').at(-1)!).sort();
  }

  it('supports +model, model+, tag:, path:, intersections and --exclude on run and build', async () => {
    const p = project(SELECTION_FILES);
    expectCode(await p.cdp(['run']), 0);

    expect(await ran(p, ['run', '--select', '+ab'])).toEqual(['ab', 'stg_a', 'stg_b']);
    expect(await ran(p, ['run', '--select', 'stg_a+'])).toEqual(['ab', 'ab_report', 'stg_a']);
    expect(await ran(p, ['run', '--select', 'tag:nightly'])).toEqual(['ab', 'stg_a']);
    expect(await ran(p, ['run', '--select', 'path:models/staging'])).toEqual(['stg_a', 'stg_b']);
    expect(await ran(p, ['run', '--select', 'models/other'])).toEqual(['lonely']);
    expect(await ran(p, ['run', '--select', 'tag:nightly,path:models/marts'])).toEqual(['ab']);
    expect(await ran(p, ['run', '--select', '+ab_report', '--exclude', 'stg_b'])).toEqual(['ab', 'ab_report', 'stg_a']);
    expect(await ran(p, ['run', '--exclude', 'tag:nightly'])).toEqual(['ab_report', 'lonely', 'stg_b']);
    expect(await ran(p, ['run', '--select', 'stg_a', 'lonely'])).toEqual(['lonely', 'stg_a']);

    // build adds the tests attached to the selected models.
    expect(await ran(p, ['build', '--select', 'stg_b+'])).toEqual(['ab', 'ab_report', 'not_null_ab_id', 'stg_b']);
    expect(await ran(p, ['build', '--select', 'stg_b+', '--exclude', 'ab_report'])).toEqual(['ab', 'not_null_ab_id', 'stg_b']);
    expect(await ran(p, ['build', '--select', 'stg_b+', '--exclude', 'ab'])).toEqual(['ab_report', 'stg_b']);
    expect(await ran(p, ['build', '--select', 'path:models/staging'])).toEqual(['stg_a', 'stg_b']);
  });

  it('state:modified selects only the changed model, and state:modified+ its children', async () => {
    const p = project(SELECTION_FILES);
    expectCode(await p.cdp(['run']), 0);
    const stateDir = p.path('prod-state');
    cpSync(p.path('target'), stateDir, { recursive: true });

    expect(await ran(p, ['run', '--select', 'state:modified', '--state', stateDir])).toEqual([]);

    p.write({ 'models/staging/stg_b.sql': 'select 20 as id' });
    expect(await ran(p, ['run', '--select', 'state:modified', '--state', stateDir])).toEqual(['stg_b']);
    expect(await ran(p, ['run', '--select', 'state:modified+', '--state', stateDir])).toEqual(['ab', 'ab_report', 'stg_b']);
    expect(await ran(p, ['build', '--select', 'state:modified+', '--state', stateDir])).toEqual(['ab', 'ab_report', 'not_null_ab_id', 'stg_b']);
    const [row] = await p.query('select sum(id) as s from main.ab');
    expect(Number(row!['s'])).toBe(21);
  });

  it('state: without --state is a usage error (exit 2)', async () => {
    const p = project(SELECTION_FILES);
    const run = await p.cdp(['run', '--select', 'state:modified']);
    expectCode(run, 2);
    expect(output(run)).toMatch(/--state/);
  });
});

// ---------------------------------------------------------------------------------------

describe('--vars', () => {
  it('overrides project vars in the rendered SQL', async () => {
    const p = project({
      'cdp_project.yml': 'name: test_project\nvars:\n  active_days: 30\n',
      'models/v.sql': '{{ config materialized="table" }}\nselect {{ var "active_days" }} as days, \'{{ var "region" "eu" }}\' as region',
    });
    expectCode(await p.cdp(['run']), 0);
    expect(p.read('target/compiled/test_project/models/v.sql')).toContain("select 30 as days, 'eu' as region");

    expectCode(await p.cdp(['run', '--vars', '{active_days: 7}']), 0);
    expect(p.read('target/compiled/test_project/models/v.sql')).toContain("select 7 as days, 'eu' as region");
    expect(p.read('target/run/test_project/models/v.sql')).toContain('select 7 as days');
    const [row] = await p.query('select days, region from main.v');
    expect([Number(row!['days']), row!['region']]).toEqual([7, 'eu']);

    expectCode(await p.cdp(['compile', '--vars', '{active_days: 90, region: us}']), 0);
    expect(p.read('target/compiled/test_project/models/v.sql')).toContain("select 90 as days, 'us' as region");
  });

  it('writes var names but never their values to any artifact', async () => {
    const p = project({ 'models/v.sql': 'select {{ var "days" }} as days' });
    for (const command of ['run', 'compile']) {
      expectCode(await p.cdp([command, '--vars', '{password: hunter2xyz, days: 7}']), 0);
      // Every artifact: the JSON files and the compiled and executed SQL (the DuckDB file aside).
      for (const entry of readdirSync(p.path('target'), { recursive: true, withFileTypes: true })) {
        if (!entry.isFile() || entry.name.endsWith('.duckdb')) continue;
        const file = path.join(entry.parentPath, entry.name);
        expect(readFileSync(file, 'utf8'), file).not.toContain('hunter2xyz');
      }
    }
    expectCode(await p.cdp(['run', '--vars', '{password: hunter2xyz, days: 7}']), 0);
    expect((runResults(p) as unknown as { args: { vars: string } }).args.vars).toBe('{"password":"****","days":"****"}');
  });

  it('rejects --vars that is not a YAML mapping with exit 2', async () => {
    const p = project({ 'models/v.sql': 'select 1 as x' });
    expectCode(await p.cdp(['run', '--vars', '[1, 2]']), 2);
  });
});

// ---------------------------------------------------------------------------------------

describe('artifacts', () => {
  it('run_results.json and manifest.json carry the documented fields', async () => {
    const p = project({
      'seeds/countries.csv': 'code\nDE\n',
      'models/sources.yml': 'sources:\n  - name: raw\n    tables:\n      - name: events\n',
      'models/a.sql': '{{ config materialized="table" }}\nselect code from {{ ref "countries" }}',
      'models/b.sql': 'select * from missing_relation',
      'models/c.sql': 'select * from {{ ref "b" }}',
      'models/schema.yml': 'models:\n  - name: a\n    columns:\n      - name: code\n        tests: [not_null]\n',
    });
    const run = await p.cdp(['build']);
    expectCode(run, 1);

    const rr = runResults(p);
    expect(rr.metadata['cdp_schema_version']).toBe('https://cdp.dev/schemas/run-results/v1.json');
    expect(rr.metadata['invocation_id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof rr.metadata['cdp_version']).toBe('string');
    expect(rr.metadata['target']).toEqual({ name: 'dev', type: 'duckdb' });
    expect(rr.command).toBe('build');
    expect(rr.elapsed_time).toBeGreaterThanOrEqual(0);
    // Results come in DAG order.
    const position = (id: string) => rr.results.findIndex((r) => r.unique_id === id);
    expect(position('seed.test_project.countries')).toBeLessThan(position(M('a')));
    expect(position(M('a'))).toBeLessThan(position(T('not_null_a_code')));
    expect(position(M('b'))).toBeLessThan(position(M('c')));
    expect(rr.results).toHaveLength(5);

    const a = result(p, M('a'));
    expect(a.status).toBe('success');
    expect(a.thread_id).toMatch(/^Thread-\d+$/);
    expect(a.execution_time).toBeGreaterThanOrEqual(0);
    expect(a.timing).toHaveLength(1);
    expect(a.timing[0]!.name).toBe('execute');
    expect(Date.parse(a.timing[0]!.started_at)).not.toBeNaN();
    expect(a.timing[0]!.completed_at >= a.timing[0]!.started_at).toBe(true);
    expect(a.compiled_path).toBe('target/compiled/test_project/models/a.sql');
    expect(a.message).toContain('table "main"."a"');
    expect(typeof a.rows_affected).toBe('number');

    const b = result(p, M('b'));
    expect(b.status).toBe('error');
    expect(b.message).toMatch(/missing_relation/);
    expect(b.message).toContain('models/b.sql');
    expect(b.compiled_path).toBe('target/compiled/test_project/models/b.sql');

    const c = result(p, M('c'));
    expect(c.status).toBe('skipped');
    expect(c.thread_id).toBe('main');
    expect(c.timing).toEqual([]);

    const test = result(p, T('not_null_a_code'));
    expect(test.status).toBe('pass');
    expect(test.compiled_path).toBe('target/compiled/test_project/models/not_null_a_code.sql');
    expect(p.read(test.compiled_path!)).toMatch(/WHERE "code" IS NULL/);

    const manifest = p.json<{
      metadata: Record<string, unknown>;
      nodes: Record<string, Record<string, unknown>>;
      sources: Record<string, Record<string, unknown>>;
      parent_map: Record<string, string[]>;
      child_map: Record<string, string[]>;
    }>('target/manifest.json');
    expect(manifest.metadata['cdp_schema_version']).toBe('https://cdp.dev/schemas/manifest/v1.json');
    expect(manifest.metadata['invocation_id']).toBe(rr.metadata['invocation_id']);
    expect(Object.keys(manifest.nodes).sort()).toEqual(['seed.test_project.countries', M('a'), M('b'), M('c'), T('not_null_a_code')].sort());
    expect(Object.keys(manifest.sources)).toEqual(['source.test_project.raw.events']);
    expect(manifest.nodes[M('a')]!['raw_code']).toContain('{{ ref "countries" }}');
    expect(manifest.nodes[M('a')]!['relation_name']).toBe('"main"."a"');
    expect(typeof manifest.nodes[M('a')]!['checksum']).toBe('string');
    expect(manifest.parent_map[M('a')]).toEqual(['seed.test_project.countries']);
    expect(manifest.parent_map[M('c')]).toEqual([M('b')]);
    expect(manifest.child_map[M('b')]).toEqual([M('c')]);
    expect(manifest.child_map[M('a')]).toEqual([T('not_null_a_code')]);
    expect(manifest.parent_map['source.test_project.raw.events']).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------

interface LogLine {
  schema_version: number;
  info: { name: string; code: string; msg: string; level: string; invocation_id: string; pid: number; thread: string; ts: string };
  data: { node_info?: { unique_id: string; node_status: string }; [key: string]: unknown };
}

describe('--log-format json', () => {
  it('writes one JSON event per line with stable codes', async () => {
    const p = project({
      'models/ok.sql': 'select * from (values (1), (2)) as t(id)',
      'models/bad.sql': 'select * from missing_relation',
      'models/after_bad.sql': 'select * from {{ ref "bad" }}',
      'models/nulls.sql': 'select * from (values (1), (null)) as t(id)',
      'models/schema.yml': `models:
  - name: ok
    columns:
      - name: id
        tests: [not_null]
  - name: nulls
    columns:
      - name: id
        tests: [not_null]
`,
    });
    const run = await p.cdp(['build', '--log-format', 'json']);
    expectCode(run, 1);
    expect(run.stderr).toBe('');
    const lines = run.stdout.split('\n').filter((l) => l !== '');
    expect(lines.length).toBeGreaterThan(5);
    const events = lines.map((line) => {
      try {
        return JSON.parse(line) as LogLine;
      } catch {
        throw new Error(`not JSON: ${line}`);
      }
    });
    const invocationId = runResults(p).metadata['invocation_id'];
    for (const e of events) {
      expect(e.info.code).toMatch(/^[A-Z]\d{3}$/);
      expect(typeof e.info.name).toBe('string');
      expect(e.info.invocation_id).toBe(invocationId);
      expect(Date.parse(e.info.ts)).not.toBeNaN();
      if (e.info.code.startsWith('N')) expect(e.data.node_info?.unique_id).toMatch(/^(model|test|seed|source)\./);
    }
    const codeOf = (id: string) =>
      events.filter((e) => e.data.node_info?.unique_id === id && e.info.code !== 'N001').map((e) => e.info.code);
    expect(codeOf(M('ok'))).toEqual(['N002']);
    expect(codeOf(M('nulls'))).toEqual(['N002']);
    expect(codeOf(M('bad'))).toEqual(['N003']);
    expect(codeOf(M('after_bad'))).toEqual(['N004']);
    expect(codeOf(T('not_null_ok_id'))).toEqual(['N005']);
    expect(codeOf(T('not_null_nulls_id'))).toEqual(['N006']);

    const byCode = (code: string) => events.filter((e) => e.info.code === code);
    expect(byCode('N002').every((e) => e.info.name === 'NodeSucceeded')).toBe(true);
    expect(byCode('N003')[0]!.info.name).toBe('NodeFailed');
    expect(byCode('N004')[0]!.info.name).toBe('NodeSkipped');
    expect(byCode('N005')[0]!.info.name).toBe('TestPassed');
    expect(byCode('N006')[0]!.info.name).toBe('TestFailed');
    const summary = byCode('S001');
    expect(summary).toHaveLength(1);
    expect(summary[0]!.info.name).toBe('Summary');
    expect(summary[0]!.data['counts']).toEqual({ PASS: 3, WARN: 0, ERROR: 2, SKIP: 1, TOTAL: 6 });
    expect(events.at(-1)!.info.code).toBe('S001');
    expect(events[0]!.info.code).toBe('A001');
    // Node events carry the run result too.
    const failedTest = byCode('N006')[0]!;
    expect((failedTest.data['result'] as Result).failures).toBe(1);
  });

  it('reports compile errors as a JSON event too (exit 2)', async () => {
    const p = project({ 'models/a.sql': 'select * from {{ ref "missing_model" }}' });
    const run = await p.cdp(['run', '--log-format', 'json']);
    expectCode(run, 2);
    const events = run.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as LogLine);
    const error = events.find((e) => e.info.code === 'E001');
    expect(error).toBeDefined();
    expect(error!.info.msg).toContain('missing_model');
  });
});

describe('test gates in cdp build', () => {
  it('never deadlock when two relationships tests point across each other', async () => {
    // c waits for the test on a (a→b), b waits for the test on e (e→c): a gate cycle if both were added.
    const p = project({
      'models/a.sql': 'select 1 as id\n',
      'models/b.sql': 'select id from {{ ref "a" }}\n',
      'models/e.sql': 'select 1 as id\n',
      'models/c.sql': 'select id from {{ ref "e" }}\n',
      'models/d.sql': 'select b.id from {{ ref "b" }} as b join {{ ref "c" }} as c using (id)\n',
      'models/schema.yml': `models:
  - name: a
    columns:
      - name: id
        tests:
          - relationships: { to: ref('c'), field: id }
  - name: e
    columns:
      - name: id
        tests:
          - relationships: { to: ref('b'), field: id }
`,
    });
    const run = await p.cdp(['build', '--threads', '2']);
    expectCode(run, 0);
    expect(output(run)).toMatch(/Done\. PASS=7 WARN=0 ERROR=0 SKIP=0 TOTAL=7/);
  });
});
