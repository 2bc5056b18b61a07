import { describe, expect, it } from 'vitest';
import { generate } from '../../src/generate/index.js';
import { TempProject, expectCode, projectPool } from '../helpers/project.js';

/**
 * Incremental identity runs: after new source rows arrive, identity_edges merges only the rows
 * past each source's watermark and identity_graph recomputes only the components they touch.
 * The result must equal what a --full-refresh computes from the same data: the same partition
 * of identifiers into profiles, under the same profile ids.
 */
const track = projectPool();
const DB = 'target/cdp_demo.duckdb';

async function appendSourceRows(project: TempProject): Promise<void> {
  // About 1% more rows, all newer than anything loaded: web events re-seen (logins stitch
  // anonymous ids to users) and new accounts reusing existing emails and phones (merges).
  await project.query(
    `INSERT INTO raw.web_events
     SELECT 'evt_new_' || n, anonymous_id, user_id, device_id, event_name, page, TIMESTAMP '2026-11-20 10:00:00' + to_seconds(n)
     FROM (SELECT *, row_number() OVER (ORDER BY event_id) AS n FROM raw.web_events USING SAMPLE 1 PERCENT (bernoulli, 42))`,
    DB,
  );
  // Five consent forms name the email of an app user and the phone of a studio customer who
  // were separate profiles: each joins the two (one user_id and one customer_id, within limits).
  await project.query(
    `INSERT INTO raw.consent_events
     SELECT a.email, b.phone, 'sms', 'granted', 'signup_form', TIMESTAMP '2026-11-21 09:00:00' + to_seconds(a.n)
     FROM (SELECT g.identifier_value AS email, row_number() OVER (ORDER BY g.identifier_value) AS n
           FROM main.identity_graph AS g JOIN main.identity_profiles AS p USING (profile_id)
           WHERE g.identifier_type = 'email' AND p.user_id_count = 1 AND p.customer_id_count = 0 AND p.phone_count = 0) AS a
     JOIN (SELECT g.identifier_value AS phone, row_number() OVER (ORDER BY g.identifier_value) AS n
           FROM main.identity_graph AS g JOIN main.identity_profiles AS p USING (profile_id)
           WHERE g.identifier_type = 'phone' AND p.user_id_count = 0 AND p.customer_id_count = 1 AND p.phone_count = 1) AS b ON b.n = a.n
     WHERE a.n <= 5`,
    DB,
  );
  await project.query(
    `INSERT INTO raw.accounts
     SELECT 'usr_new_' || n, email, phone, TIMESTAMP '2026-11-20 12:00:00'
     FROM (SELECT *, row_number() OVER (ORDER BY user_id) AS n FROM raw.accounts USING SAMPLE 2 PERCENT (bernoulli, 7))`,
    DB,
  );
}

describe('incremental identity runs', () => {
  it('read only new rows, recompute touched components, and agree with a full refresh', async () => {
    const project = track(TempProject.fromRepoRoot());
    await generate({ persons: 400, seed: 5, out: project.path('data') });
    expectCode(await project.cdp(['build']), 0);
    const before = await project.query('SELECT COUNT(*) AS n FROM main.identity_graph', DB);

    await appendSourceRows(project);
    // Only the identity nodes: the sources were changed in place, as an EL tool would.
    expectCode(await project.cdp(['run', '--select', 'identity_edges+']), 0);
    const edgesRun = project.read('target/run/cdp_demo/identity/identity_edges.sql');
    const graphRun = project.read('target/run/cdp_demo/identity/identity_graph.sql');
    expect(edgesRun).toContain('MERGE INTO');
    expect(graphRun).toContain('__cdp_idg_changed_edges');
    expect(graphRun).not.toMatch(/connected components of "main"\."__cdp_idg_links"/);
    await project.query('CREATE TABLE main.incremental_graph AS SELECT * FROM main.identity_graph', DB);
    await project.query('CREATE TABLE main.incremental_edges AS SELECT * EXCLUDE (version) FROM main.identity_edges', DB);
    const merges = await project.query("SELECT COUNT(*) AS n FROM main.identity_merges WHERE reason = 'merge'", DB);
    expect(Number(merges[0]!['n'])).toBeGreaterThan(0);

    expectCode(await project.cdp(['run', '--select', 'identity_edges+', '--full-refresh']), 0);
    const [edgeDiff] = await project.query(
      `SELECT (SELECT COUNT(*) FROM (SELECT * FROM main.incremental_edges EXCEPT SELECT * EXCLUDE (version) FROM main.identity_edges)) AS only_incremental,
              (SELECT COUNT(*) FROM (SELECT * EXCLUDE (version) FROM main.identity_edges EXCEPT SELECT * FROM main.incremental_edges)) AS only_full`,
      DB,
    );
    expect([Number(edgeDiff!['only_incremental']), Number(edgeDiff!['only_full'])]).toEqual([0, 0]);
    const [graphDiff] = await project.query(
      `SELECT COUNT(*) AS identifiers,
              SUM(CASE WHEN i.profile_id = f.profile_id THEN 1 ELSE 0 END) AS same_profile
       FROM main.incremental_graph AS i FULL JOIN main.identity_graph AS f USING (identifier_type, identifier_value)`,
      DB,
    );
    expect(Number(graphDiff!['identifiers'])).toBeGreaterThan(Number(before[0]!['n']));
    expect(Number(graphDiff!['same_profile'])).toBe(Number(graphDiff!['identifiers']));
  });

  it('does nothing when no new rows arrived', async () => {
    const project = track(TempProject.fromRepoRoot());
    expectCode(await project.cdp(['build', '--select', '+identity_graph']), 0);
    expectCode(await project.cdp(['run', '--select', 'identity_edges', 'identity_graph']), 0);
    expect(project.read('target/run/cdp_demo/identity/identity_edges.sql')).not.toContain('MERGE INTO');
    expect(project.read('target/run/cdp_demo/identity/identity_graph.sql')).not.toContain('connected components');
  });
});

describe('a source where every row shares one value', () => {
  it('cuts the shared value off as a super-connector instead of building one giant profile', async () => {
    const project = track(
      new TempProject({
        'cdp_project.yml': 'name: shared_value\n',
        'profiles.yml': 'target: dev\ntargets:\n  dev: { type: duckdb, path: target/test.duckdb, schema: main, threads: 2 }\n',
        // 200,000 rows, each a different customer, all with the same email.
        'models/signups.sql': "select 'C' || range as customer_id, 'frontdesk@gym.example' as email, timestamp '2026-01-01' + to_seconds(range) as signed_up_at from range(200000)\n",
        'identity.yml': `identifier_types:
  customer_id: { limit: 1 }
  email: { normalize: email }
edge_sources:
  - name: signups
    from: ref('signups')
    identifiers: { customer_id: customer_id, email: email }
    timestamp: signed_up_at
`,
      }),
    );
    expectCode(await project.cdp(['build']), 0);
    const [profiles] = await project.query('SELECT COUNT(*) AS n, MAX(identifiers) AS largest FROM main.identity_profiles');
    const [edges] = await project.query("SELECT COUNT(*) AS n FROM main.identity_edges WHERE status = 'super_connector'");
    const email = await project.query("SELECT * FROM main.identity_graph WHERE identifier_type = 'email'");
    expect(Number(edges!['n'])).toBe(200_000);
    expect(Number(profiles!['largest'])).toBe(1);
    expect(email).toEqual([]);
  });
});
