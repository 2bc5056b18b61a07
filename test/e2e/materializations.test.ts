import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { duckdbProject, expectCode, output, projectPool, type CliRun, type TempProject } from '../helpers/project.js';

/*
 * Materializations against a real DuckDB file. Every test drives the CLI in-process and then
 * reads target/test.duckdb to check what exists, with which rows, and what was left behind.
 */

const track = projectPool();

function project(files: Record<string, string> = {}): TempProject {
  return track(duckdbProject(files));
}


interface RelationRow {
  schema: string;
  name: string;
  type: string;
}

async function relations(p: TempProject): Promise<RelationRow[]> {
  const rows = await p.query(`select table_schema, table_name, table_type from information_schema.tables order by table_schema, table_name`);
  return rows.map((r) => ({ schema: String(r['table_schema']), name: String(r['table_name']), type: String(r['table_type']) }));
}

async function relationType(p: TempProject, name: string, schema = 'main'): Promise<string | undefined> {
  return (await relations(p)).find((r) => r.schema === schema && r.name === name)?.type;
}

/** Staging relations (`x__cdp_tmp`, `x__cdp_new`) must never outlive a run. */
async function leftovers(p: TempProject): Promise<string[]> {
  return (await relations(p)).filter((r) => r.name.includes('__cdp_')).map((r) => `${r.schema}.${r.name}`);
}

/** Rows as plain JS with numbers instead of BigInts, ordered by the first column. */
async function rows(p: TempProject, sql: string): Promise<Record<string, unknown>[]> {
  const result = await p.query(sql);
  return result.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])));
}

async function count(p: TempProject, relation: string): Promise<number> {
  const [row] = await p.query(`select count(*) as n from ${relation}`);
  return Number(row!['n']);
}

const RAW_EVENTS_SOURCE = `sources:
  - name: raw
    tables:
      - name: events
        file: data/events.csv
`;

function csv(lines: string[]): string {
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------

describe('view', () => {
  it('is created, replaced on re-run, and can switch to a table and back', async () => {
    const p = project({ 'models/m.sql': 'select 1 as id, \'one\' as label' });
    expectCode(await p.cdp(['run']), 0);
    expect(await relationType(p, 'm')).toBe('VIEW');
    expect(await rows(p, 'select * from main.m')).toEqual([{ id: 1, label: 'one' }]);

    // Re-running with changed SQL replaces the view.
    p.write({ 'models/m.sql': 'select 2 as id, \'two\' as label union all select 3, \'three\'' });
    expectCode(await p.cdp(['run']), 0);
    expect(await relationType(p, 'm')).toBe('VIEW');
    expect(await rows(p, 'select * from main.m order by id')).toEqual([
      { id: 2, label: 'two' },
      { id: 3, label: 'three' },
    ]);

    // view -> table
    p.write({ 'models/m.sql': '{{ config materialized="table" }}\nselect 4 as id, \'four\' as label' });
    expectCode(await p.cdp(['run']), 0);
    expect(await relationType(p, 'm')).toBe('BASE TABLE');
    expect(await rows(p, 'select * from main.m')).toEqual([{ id: 4, label: 'four' }]);

    // table -> view
    p.write({ 'models/m.sql': '{{ config materialized="view" }}\nselect 5 as id, \'five\' as label' });
    expectCode(await p.cdp(['run']), 0);
    expect(await relationType(p, 'm')).toBe('VIEW');
    expect(await rows(p, 'select * from main.m')).toEqual([{ id: 5, label: 'five' }]);

    // and back to a table once more
    p.write({ 'models/m.sql': '{{ config materialized="table" }}\nselect 6 as id, \'six\' as label' });
    expectCode(await p.cdp(['run']), 0);
    expect(await relationType(p, 'm')).toBe('BASE TABLE');
    expect(await rows(p, 'select * from main.m')).toEqual([{ id: 6, label: 'six' }]);
    expect(await leftovers(p)).toEqual([]);
  });
});

describe('table', () => {
  it('is built under a temporary name and swapped in, leaving no __cdp_tmp relation', async () => {
    const p = project({ 'models/t.sql': '{{ config materialized="table" }}\nselect 1 as id union all select 2' });
    const first = await p.cdp(['run']);
    expectCode(first, 0);
    expect(await relationType(p, 't')).toBe('BASE TABLE');
    expect(await count(p, 'main.t')).toBe(2);
    expect(await leftovers(p)).toEqual([]);
    // The executed statements name the staging table and the rename.
    const executed = p.read('target/run/test_project/models/t.sql');
    expect(executed).toContain('"main"."t__cdp_tmp"');
    expect(executed).toMatch(/ALTER TABLE "main"\."t__cdp_tmp" RENAME TO "t"/);

    // A rebuild of an existing table swaps the new rows in.
    p.write({ 'models/t.sql': '{{ config materialized="table" }}\nselect 10 as id union all select 20 union all select 30' });
    expectCode(await p.cdp(['run']), 0);
    expect(await rows(p, 'select id from main.t order by id')).toEqual([{ id: 10 }, { id: 20 }, { id: 30 }]);
    expect(await leftovers(p)).toEqual([]);
  });

  it('keeps the old table and its rows when a rebuild fails with an SQL error', async () => {
    const p = project({ 'models/t.sql': '{{ config materialized="table" }}\nselect 1 as id, \'a\' as v union all select 2, \'b\'' });
    expectCode(await p.cdp(['run']), 0);

    p.write({ 'models/t.sql': '{{ config materialized="table" }}\nselect cast(v as integer) as id, v from (select \'x\' as v)' });
    const failed = await p.cdp(['run']);
    expectCode(failed, 1);
    expect(output(failed)).toMatch(/ERROR/);
    expect(output(failed)).toMatch(/Conversion Error|Could not convert/i);

    expect(await relationType(p, 't')).toBe('BASE TABLE');
    expect(await rows(p, 'select id, v from main.t order by id')).toEqual([
      { id: 1, v: 'a' },
      { id: 2, v: 'b' },
    ]);
    expect(await leftovers(p)).toEqual([]);
  });

  it('reports how many rows a table build wrote', async () => {
    const p = project({ 'models/t.sql': '{{ config materialized="table" }}\nselect * from range(3) as r(id)' });
    expectCode(await p.cdp(['run']), 0);
    const [result] = p.json<{ results: { rows_affected?: number; message: string }[] }>('target/run_results.json').results;
    expect(result!.rows_affected).toBe(3);
    expect(result!.message).toContain('(3 rows)');
  });

  it('does not leave anything behind when the first build fails', async () => {
    const p = project({ 'models/t.sql': '{{ config materialized="table" }}\nselect cast(\'x\' as integer) as id' });
    expectCode(await p.cdp(['run']), 1);
    expect(await relationType(p, 't')).toBeUndefined();
    expect(await leftovers(p)).toEqual([]);
  });
});

describe('materialization switches that fail', () => {
  it('a failed switch from table to view keeps the old table', async () => {
    const p = project({ 'models/m.sql': '{{ config materialized="table" }}\nselect 1 as id' });
    expectCode(await p.cdp(['run']), 0);
    p.write({ 'models/m.sql': '{{ config materialized="view" }}\nselect * from relation_that_does_not_exist' });
    const failed = await p.cdp(['run']);
    expectCode(failed, 1);
    expect(await relationType(p, 'm')).toBe('BASE TABLE');
    expect(await rows(p, 'select id from main.m')).toEqual([{ id: 1 }]);
  });

  it('a failed switch from view to table keeps the old view', async () => {
    const p = project({ 'models/m.sql': 'select 1 as id' });
    expectCode(await p.cdp(['run']), 0);
    p.write({ 'models/m.sql': '{{ config materialized="table" }}\nselect cast(\'x\' as integer) as id' });
    expectCode(await p.cdp(['run']), 1);
    expect(await relationType(p, 'm')).toBe('VIEW');
    expect(await leftovers(p)).toEqual([]);
  });
});

describe('parallel builds into a schema that does not exist yet', () => {
  it('models and file-backed sources in a new schema build on 4 threads without catalog conflicts', async () => {
    // Each worker runs CREATE SCHEMA IF NOT EXISTS on its own connection; on a fresh database
    // these race. Several fresh databases make the race near-certain to show if it exists.
    for (let attempt = 0; attempt < 5; attempt++) {
      const files: Record<string, string> = { 'models/sources.yml': 'sources:\n  - name: landing\n    tables:\n' };
      for (let i = 1; i <= 8; i++) {
        files[`models/m${i}.sql`] = `{{ config materialized="table" schema="analytics" }}\nselect ${i} as id`;
        files[`data/f${i}.csv`] = `id\n${i}\n`;
        files['models/sources.yml'] += `      - name: f${i}\n        file: data/f${i}.csv\n`;
      }
      const p = project(files);
      const seeded = await p.cdp(['seed', '--threads', '4']);
      expectCode(seeded, 0);
      const built = await p.cdp(['run', '--threads', '4']);
      expectCode(built, 0);
      expect(await count(p, 'analytics.m8')).toBe(1);
      expect(await count(p, 'landing.f8')).toBe(1);
      p.cleanup();
    }
  });
});

// ---------------------------------------------------------------------------------------

const INCREMENTAL_FILTER = `{{#if (is_incremental)}}
where updated_at > (select max(updated_at) from {{ this }})
{{/if}}`;

function incrementalProject(strategy: 'merge' | 'delete+insert'): TempProject {
  return project({
    'models/sources.yml': RAW_EVENTS_SOURCE,
    'data/events.csv': csv(['id,name,updated_at', '1,alpha,1', '2,beta,1', '3,gamma,1']),
    'models/inc.sql': `{{ config materialized="incremental" unique_key="id" incremental_strategy="${strategy}" }}
select id, name, updated_at
from {{ source "raw" "events" }}
${INCREMENTAL_FILTER}
`,
  });
}

async function seedAndRun(p: TempProject, extra: string[] = []): Promise<CliRun> {
  expectCode(await p.cdp(['seed']), 0);
  return p.cdp(['run', ...extra]);
}

const FIRST_ROWS = [
  { id: 1, name: 'alpha', updated_at: 1 },
  { id: 2, name: 'beta', updated_at: 1 },
  { id: 3, name: 'gamma', updated_at: 1 },
];

describe.each(['merge', 'delete+insert'] as const)('incremental (%s)', (strategy) => {
  it('builds every row first, then inserts new rows and updates changed ones', async () => {
    const p = incrementalProject(strategy);
    expectCode(await seedAndRun(p), 0);
    expect(await relationType(p, 'inc')).toBe('BASE TABLE');
    expect(await rows(p, 'select * from main.inc order by id')).toEqual(FIRST_ROWS);

    // Row 1 changes without a newer updated_at: the is_incremental filter must leave it out.
    p.write({ 'data/events.csv': csv(['id,name,updated_at', '1,alpha-ignored,1', '2,beta-v2,2', '3,gamma,1', '4,delta,2']) });
    const second = await seedAndRun(p);
    expectCode(second, 0);
    expect(await rows(p, 'select * from main.inc order by id')).toEqual([
      { id: 1, name: 'alpha', updated_at: 1 },
      { id: 2, name: 'beta-v2', updated_at: 2 },
      { id: 3, name: 'gamma', updated_at: 1 },
      { id: 4, name: 'delta', updated_at: 2 },
    ]);
    expect(await leftovers(p)).toEqual([]);

    // target/run holds what was executed: the incremental SELECT against {{ this }} and the strategy's DML.
    const executed = p.read('target/run/test_project/models/inc.sql');
    expect(executed).toContain('where updated_at > (select max(updated_at) from "main"."inc")');
    expect(executed).toContain('"main"."inc__cdp_new"');
    if (strategy === 'merge') {
      expect(executed).toMatch(/MERGE INTO "main"\."inc" AS tgt\s+USING "main"\."inc__cdp_new" AS src/);
      expect(executed).toContain('WHEN MATCHED THEN UPDATE SET');
      expect(executed).toContain('WHEN NOT MATCHED THEN INSERT');
    } else {
      expect(executed).not.toContain('MERGE');
      expect(executed).toMatch(/DELETE FROM "main"\."inc"/);
      expect(executed).toMatch(/INSERT INTO "main"\."inc"/);
    }
    // target/compiled keeps the non-incremental rendering.
    expect(p.read('target/compiled/test_project/models/inc.sql')).not.toContain('max(updated_at)');

    // A third run with nothing new changes nothing.
    expectCode(await seedAndRun(p), 0);
    expect(await count(p, 'main.inc')).toBe(4);
  });

  it('reports the rows it merged in run_results.json', async () => {
    const p = incrementalProject(strategy);
    expectCode(await seedAndRun(p), 0);
    p.write({ 'data/events.csv': csv(['id,name,updated_at', '1,alpha,1', '2,beta-v2,2', '3,gamma,1', '4,delta,2']) });
    expectCode(await seedAndRun(p), 0);
    const result = p.json<{ results: { status: string; rows_affected?: number }[] }>('target/run_results.json').results[0]!;
    expect(result.status).toBe('success');
    // One updated and one inserted row (delete+insert may also count the deleted one).
    if (strategy === 'merge') expect(result.rows_affected).toBe(2);
    else expect(result.rows_affected).toBeGreaterThanOrEqual(2);
  });

  it('fails on NULL unique keys in the new rows and leaves the target untouched', async () => {
    const p = incrementalProject(strategy);
    expectCode(await seedAndRun(p), 0);

    p.write({ 'data/events.csv': csv(['id,name,updated_at', '1,alpha,1', '2,beta-v2,2', '3,gamma,1', ',no-key-1,2', ',no-key-2,3']) });
    const failed = await seedAndRun(p);
    expectCode(failed, 1);
    expect(output(failed)).toMatch(/2 new row\(s\) of inc have a NULL unique_key \(id\)/);

    expect(await rows(p, 'select * from main.inc order by id')).toEqual(FIRST_ROWS);
    expect(await count(p, 'main.inc where id is null')).toBe(0);
    expect(await leftovers(p)).toEqual([]);
    const results = p.json<{ results: { status: string; message: string }[] }>('target/run_results.json').results;
    expect(results[0]!.status).toBe('error');
    expect(results[0]!.message).toContain('NULL unique_key');
  });

  it('fails on duplicated keys in the new rows and leaves the target untouched', async () => {
    const p = incrementalProject(strategy);
    expectCode(await seedAndRun(p), 0);

    p.write({ 'data/events.csv': csv(['id,name,updated_at', '1,alpha,1', '2,beta,1', '3,gamma,1', '4,dup-a,2', '4,dup-b,2', '2,beta-v2,2']) });
    const failed = await seedAndRun(p);
    expectCode(failed, 1);
    expect(output(failed)).toMatch(/1 unique_key value\(s\) \(id\) appear more than once in the new rows of inc/);
    expect(output(failed)).toMatch(/Deduplicate/);

    expect(await rows(p, 'select * from main.inc order by id')).toEqual(FIRST_ROWS);
    expect(await leftovers(p)).toEqual([]);
  });
});

describe('incremental --full-refresh and schema changes', () => {
  it('only --full-refresh drops rows that were deleted from the source', async () => {
    const p = incrementalProject('merge');
    expectCode(await seedAndRun(p), 0);

    p.write({ 'data/events.csv': csv(['id,name,updated_at', '1,alpha,1', '3,gamma,2']) });
    expectCode(await seedAndRun(p), 0);
    expect(await rows(p, 'select id, updated_at from main.inc order by id')).toEqual([
      { id: 1, updated_at: 1 },
      { id: 2, updated_at: 1 },
      { id: 3, updated_at: 2 },
    ]);

    const refreshed = await p.cdp(['run', '--full-refresh']);
    expectCode(refreshed, 0);
    expect(await rows(p, 'select id, updated_at from main.inc order by id')).toEqual([
      { id: 1, updated_at: 1 },
      { id: 3, updated_at: 2 },
    ]);
    expect(await relationType(p, 'inc')).toBe('BASE TABLE');
    expect(await leftovers(p)).toEqual([]);
    // A full refresh is a table build: no MERGE was executed.
    expect(p.read('target/run/test_project/models/inc.sql')).not.toContain('MERGE');
  });

  it('fails with a --full-refresh hint when the columns changed, then --full-refresh rebuilds', async () => {
    const p = incrementalProject('merge');
    expectCode(await seedAndRun(p), 0);

    p.write({
      'models/inc.sql': `{{ config materialized="incremental" unique_key="id" }}
select id, name, updated_at, upper(name) as shout
from {{ source "raw" "events" }}
${INCREMENTAL_FILTER}
`,
      'data/events.csv': csv(['id,name,updated_at', '1,alpha,1', '2,beta,1', '3,gamma,1', '4,delta,2']),
    });
    const failed = await seedAndRun(p);
    expectCode(failed, 1);
    expect(output(failed)).toMatch(/columns of incremental model inc changed \(new columns: shout\)/);
    expect(output(failed)).toContain('--full-refresh');
    expect(await rows(p, 'select * from main.inc order by id')).toEqual(FIRST_ROWS);
    expect(await leftovers(p)).toEqual([]);

    expectCode(await p.cdp(['run', '--full-refresh']), 0);
    expect(await rows(p, 'select id, shout from main.inc order by id')).toEqual([
      { id: 1, shout: 'ALPHA' },
      { id: 2, shout: 'BETA' },
      { id: 3, shout: 'GAMMA' },
      { id: 4, shout: 'DELTA' },
    ]);
  });

  it('also fails with the hint when a column was removed', async () => {
    const p = incrementalProject('delete+insert');
    expectCode(await seedAndRun(p), 0);
    p.write({
      'models/inc.sql': `{{ config materialized="incremental" unique_key="id" incremental_strategy="delete+insert" }}
select id, updated_at from {{ source "raw" "events" }}
${INCREMENTAL_FILTER}
`,
      'data/events.csv': csv(['id,name,updated_at', '1,alpha,1', '2,beta,1', '3,gamma,1', '4,delta,2']),
    });
    const failed = await seedAndRun(p);
    expectCode(failed, 1);
    expect(output(failed)).toMatch(/missing columns: name/);
    expect(output(failed)).toContain('--full-refresh');
    expect(await rows(p, 'select * from main.inc order by id')).toEqual(FIRST_ROWS);
    expect(await leftovers(p)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------

describe('ephemeral', () => {
  /*
   * slow (table) -> eph_a (ephemeral) -> eph_b (ephemeral) -> final (table)
   * plus independent fillers so that, with 4 threads, `final` would start at once if the
   * scheduler did not look through the ephemerals.
   */
  const files = (): Record<string, string> => ({
    'models/slow.sql': `{{ config materialized="table" }}
select i as id, i % 3 as grp
from (select unnest(generate_series(1, 6)) as i) as s
where (select count(*) from range(3000000)) > 0`,
    'models/eph_a.sql': '{{ config materialized="ephemeral" }}\nselect id, grp from {{ ref "slow" }} where id > 1',
    'models/eph_b.sql': '{{ config materialized="ephemeral" }}\nselect grp, count(*) as n from {{ ref "eph_a" }} group by grp',
    'models/final.sql': '{{ config materialized="table" }}\nselect * from {{ ref "eph_b" }}',
    'models/reads_eph.sql': 'select sum(n) as total from {{ ref "eph_b" }}',
    'models/filler_1.sql': 'select 1 as x',
    'models/filler_2.sql': 'select 2 as x',
    'models/schema.yml': `models:
  - name: eph_b
    columns:
      - name: grp
        tests: [not_null]
      - name: n
        tests:
          - accepted_values: { values: [1, 2] }
`,
    'tests/eph_a_has_rows.sql': 'select 1 as missing where (select count(*) from {{ ref "eph_a" }}) <> 5',
  });

  interface Result {
    unique_id: string;
    status: string;
    timing: { started_at: string; completed_at: string }[];
  }

  it('is never created, is inlined into the models that ref it, and is scheduled through', async () => {
    const p = project(files());
    const run = await p.cdp(['build', '--threads', '4']);
    expectCode(run, 0);

    const names = (await relations(p)).map((r) => r.name);
    expect(names).not.toContain('eph_a');
    expect(names).not.toContain('eph_b');
    expect(names).toEqual(expect.arrayContaining(['slow', 'final', 'reads_eph']));
    expect(await rows(p, 'select grp, n from main.final order by grp')).toEqual([
      { grp: 0, n: 2 },
      { grp: 1, n: 1 },
      { grp: 2, n: 2 },
    ]);
    expect(await rows(p, 'select total from main.reads_eph')).toEqual([{ total: 5 }]);

    // The compiled SQL inlines the ephemerals; they have no run SQL of their own.
    const compiled = p.read('target/compiled/test_project/models/final.sql');
    expect(compiled).toContain('"main"."slow"');
    expect(compiled).not.toContain('"eph_b"');
    expect(existsSync(p.path('target/run/test_project/models/eph_a.sql'))).toBe(false);

    const results = p.json<{ results: Result[] }>('target/run_results.json').results;
    const byId = new Map(results.map((r) => [r.unique_id, r]));
    // Ephemerals are not executed nodes.
    expect(byId.has('model.test_project.eph_a')).toBe(false);
    expect(byId.has('model.test_project.eph_b')).toBe(false);
    // Tests on (and through) an ephemeral ran and passed.
    const tests = results.filter((r) => r.unique_id.startsWith('test.'));
    expect(tests.map((t) => [t.unique_id, t.status]).sort()).toEqual([
      ['test.test_project.accepted_values_eph_b_n', 'pass'],
      ['test.test_project.eph_a_has_rows', 'pass'],
      ['test.test_project.not_null_eph_b_grp', 'pass'],
    ]);

    // Everything downstream of the ephemerals started after `slow` finished.
    const slowDone = byId.get('model.test_project.slow')!.timing[0]!.completed_at;
    for (const id of ['model.test_project.final', 'model.test_project.reads_eph', ...tests.map((t) => t.unique_id)]) {
      const started = byId.get(id)!.timing[0]!.started_at;
      expect(started >= slowDone, `${id} started at ${started}, before slow finished at ${slowDone}`).toBe(true);
    }
  });

  it('a failing parent of an ephemeral skips the models behind it', async () => {
    const p = project({ ...files(), 'models/slow.sql': '{{ config materialized="table" }}\nselect cast(\'x\' as integer) as id, 1 as grp' });
    const run = await p.cdp(['run', '--threads', '4']);
    expectCode(run, 1);
    const results = p.json<{ results: Result[] }>('target/run_results.json').results;
    const status = Object.fromEntries(results.map((r) => [r.unique_id, r.status]));
    expect(status).toEqual({
      'model.test_project.slow': 'error',
      'model.test_project.final': 'skipped',
      'model.test_project.reads_eph': 'skipped',
      'model.test_project.filler_1': 'success',
      'model.test_project.filler_2': 'success',
    });
  });

  it('a failing test on an ephemeral model is reported against it', async () => {
    const p = project({
      ...files(),
      'models/schema.yml': `models:
  - name: eph_b
    columns:
      - name: n
        tests:
          - accepted_values: { values: [1, 2] }
`,
      'tests/eph_b_groups_are_small.sql': 'select cast(grp as integer) as grp from {{ ref "eph_b" }} where n > 1',
    });
    const run = await p.cdp(['build', '--threads', '4']);
    expectCode(run, 3);
    expect(output(run)).toMatch(/FAIL\s+test eph_b_groups_are_small/);
    expect(output(run)).toContain('2 failing row(s)');
  });
});

// ---------------------------------------------------------------------------------------

async function writeParquet(file: string, selectSql: string): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await connection.run(`COPY (${selectSql}) TO '${file.replaceAll("'", "''")}' (FORMAT parquet)`);
  } finally {
    connection.disconnectSync();
    instance.closeSync();
  }
}

function jsonLines(records: Record<string, unknown>[]): string {
  return records.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

describe('seeds', () => {
  it('loads CSV, Parquet and JSON files from seeds/ and from sources with file:, and reloads them', async () => {
    const p = project({
      'seeds/countries.csv': csv(['code,name', 'DE,Germany', 'FR,France']),
      'seeds/people.json': jsonLines([{ id: 1, name: 'ann' }, { id: 2, name: 'bob' }, { id: 3, name: 'cy' }]),
      'data/users.csv': csv(['user_id,email', '1,a@example.com']),
      'data/clicks.json': JSON.stringify([{ click_id: 1, page: '/' }, { click_id: 2, page: '/pricing' }]),
      'data/visits.jsonl': jsonLines([{ visit: 'v1' }, { visit: 'v2' }]),
      'models/sources.yml': `sources:
  - name: raw
    tables:
      - name: users
        file: data/users.csv
      - name: orders
        file: data/orders.parquet
      - name: clicks
        file: data/clicks.json
      - name: visits
        file: data/visits.jsonl
      - name: not_a_file
`,
      'models/uses_seeds.sql': 'select c.code, p.name from {{ ref "countries" }} as c, {{ ref "people" }} as p, {{ source "raw" "orders" }} as o',
    });
    await writeParquet(p.path('seeds/products.parquet'), 'select i as product_id, \'p\' || i as sku from range(4) t(i)');
    await writeParquet(p.path('data/orders.parquet'), 'select i as order_id, i * 10 as amount from range(5) t(i)');

    // One thread: the CREATE SCHEMA race is covered by its own test above.
    const seeded = await p.cdp(['seed', '--threads', '1']);
    expectCode(seeded, 0);
    expect(output(seeded)).toMatch(/Done\. PASS=7 WARN=0 ERROR=0 SKIP=0 TOTAL=7/);
    expect(await rows(p, 'select * from main.countries order by code')).toEqual([
      { code: 'DE', name: 'Germany' },
      { code: 'FR', name: 'France' },
    ]);
    expect(await count(p, 'main.people')).toBe(3);
    expect(await rows(p, 'select name from main.people where id = 2')).toEqual([{ name: 'bob' }]);
    expect(await count(p, 'main.products')).toBe(4);
    expect(await rows(p, 'select sku from main.products order by product_id limit 1')).toEqual([{ sku: 'p0' }]);
    expect(await count(p, 'raw.users')).toBe(1);
    expect(await count(p, 'raw.orders')).toBe(5);
    expect(await rows(p, 'select sum(amount) as s from raw.orders')).toEqual([{ s: 100 }]);
    expect(await rows(p, 'select page from raw.clicks order by click_id')).toEqual([{ page: '/' }, { page: '/pricing' }]);
    expect(await count(p, 'raw.visits')).toBe(2);
    // `cdp seed` builds no models, and a source without file: is left alone.
    const names = (await relations(p)).map((r) => r.name);
    expect(names).not.toContain('uses_seeds');
    expect(names).not.toContain('not_a_file');

    // Re-running reloads (replaces) every file, it does not append.
    p.write({
      'seeds/countries.csv': csv(['code,name', 'IT,Italy']),
      'seeds/people.json': jsonLines([{ id: 9, name: 'zed' }]),
      'data/users.csv': csv(['user_id,email', '1,a@example.com', '2,b@example.com', '3,c@example.com']),
      'data/clicks.json': JSON.stringify([{ click_id: 7, page: '/blog' }]),
    });
    await writeParquet(p.path('seeds/products.parquet'), 'select 42 as product_id, \'only\' as sku');
    await writeParquet(p.path('data/orders.parquet'), 'select i as order_id, i as amount from range(2) t(i)');
    expectCode(await p.cdp(['seed', '--threads', '1']), 0);
    expect(await rows(p, 'select * from main.countries')).toEqual([{ code: 'IT', name: 'Italy' }]);
    expect(await rows(p, 'select id, name from main.people')).toEqual([{ id: 9, name: 'zed' }]);
    expect(await rows(p, 'select * from main.products')).toEqual([{ product_id: 42, sku: 'only' }]);
    expect(await count(p, 'raw.users')).toBe(3);
    expect(await count(p, 'raw.orders')).toBe(2);
    expect(await rows(p, 'select page from raw.clicks')).toEqual([{ page: '/blog' }]);
    expect(await count(p, 'raw.visits')).toBe(2);

    // Models can read every kind of seed.
    expectCode(await p.cdp(['run']), 0);
    expect(await count(p, 'main.uses_seeds')).toBe(2);
  });

  it('reports how many rows each file loaded', async () => {
    const p = project({ 'seeds/three.csv': csv(['a', '1', '2', '3']) });
    expectCode(await p.cdp(['seed']), 0);
    const [result] = p.json<{ results: { rows_affected?: number; message: string }[] }>('target/run_results.json').results;
    expect(result!.rows_affected).toBe(3);
    expect(result!.message).toContain('(3 rows)');
  });

  it('reports a missing seed file as an error for that node only', async () => {
    const p = project({
      'seeds/ok.csv': csv(['a', '1']),
      'models/sources.yml': `sources:
  - name: raw
    tables:
      - name: gone
        file: data/gone.csv
`,
    });
    const run = await p.cdp(['seed']);
    expectCode(run, 1);
    expect(await count(p, 'main.ok')).toBe(1);
    const status = Object.fromEntries(p.json<{ results: { unique_id: string; status: string }[] }>('target/run_results.json').results.map((r) => [r.unique_id, r.status]));
    expect(status).toEqual({ 'seed.test_project.ok': 'success', 'source.test_project.raw.gone': 'error' });
  });
});
