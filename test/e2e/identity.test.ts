import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { duckdbProject, expectCode, output, projectPool, type CliRun, type TempProject } from '../helpers/project.js';

/*
 * Identity resolution end to end on DuckDB: small hand-written projects (seeds → staging views →
 * identity.yml), built with `cdp build`, then checked against hand-computed profiles. Each
 * describe block builds its project once; the stateful one (stable ids) builds it step by step.
 */

/** Keep the developer's own profiles (if any) out of the way: every project here brings its own. */
const ENV: NodeJS.ProcessEnv = { CDP_PROFILES_DIR: '' };

const track = projectPool(afterAll);

function project(files: Record<string, string>): TempProject {
  return track(duckdbProject(files));
}

function cdp(p: TempProject, args: string[]): Promise<CliRun> {
  return p.cdp(args, ENV);
}


async function build(p: TempProject, ...args: string[]): Promise<CliRun> {
  return expectCode(await cdp(p, ['build', ...args]), 0);
}

/** A seed plus a staging view over it, so edge sources read a model as in a real project. */
function seedWithStaging(name: string, header: string, rows: string[]): Record<string, string> {
  return {
    [`seeds/${name}.csv`]: [header, ...rows].join('\n') + '\n',
    [`models/stg_${name}.sql`]: `select * from {{ ref "${name}" }}\n`,
  };
}

/** identifier `type:value` → profile_id, from identity_graph. */
async function profiles(p: TempProject): Promise<Map<string, string>> {
  const rows = await p.query('select identifier_type, identifier_value, profile_id from main.identity_graph');
  return new Map(rows.map((r) => [`${String(r['identifier_type'])}:${String(r['identifier_value'])}`, String(r['profile_id'])]));
}

/** profile_id → sorted `type:value` members. */
function members(graph: Map<string, string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [id, profile] of graph) out.set(profile, [...(out.get(profile) ?? []), id].sort());
  return out;
}

function membersOf(graph: Map<string, string>, identifier: string): string[] {
  const profile = graph.get(identifier);
  if (!profile) throw new Error(`${identifier} is not in identity_graph: ${[...graph.keys()].join(', ')}`);
  return members(graph).get(profile)!;
}

async function edgeStatus(p: TempProject): Promise<Map<string, string>> {
  const rows = await p.query('select type_a, value_a, type_b, value_b, status from main.identity_edges');
  return new Map(rows.map((r) => [`${String(r['type_a'])}:${String(r['value_a'])}~${String(r['type_b'])}:${String(r['value_b'])}`, String(r['status'])]));
}

async function merges(p: TempProject): Promise<Record<string, unknown>[]> {
  return p.query('select * from main.identity_merges order by logged_at, reason, merged_id');
}

const PROFILE_ID = /^prf_[0-9a-f]{24}$/;

// -------------------------------------------------------------------------------------------
// Normalisation, never-trusted values, super-connectors; inspect and report on the result.

const SIGNUP_ROWS = [
  // One person in four spellings: email case and spaces, three phone formats.
  'A1,"  Ana@Example.COM ",912 345 678,2026-01-01 10:00:00',
  'A2,ana@example.com,,2026-01-02 10:00:00',
  'A3,,+351 912-345-678,2026-01-03 10:00:00',
  'A4,,00351912345678,2026-01-04 10:00:00',
  // Too short to be a phone: ignored, the rest of the row still links.
  'A5,a5@example.com,12345,2026-01-05 10:00:00',
  // Default never-trusted values shared by different people.
  'B1,test@test.com,931111111,2026-01-06 10:00:00',
  'B2,TEST@test.com,932222222,2026-01-06 11:00:00',
  'N1,NULL,933333333,2026-01-07 10:00:00',
  'N2,null,934444444,2026-01-07 11:00:00',
  // Custom values, patterns and per-type values.
  'F1,frontdesk@studio.example,935555555,2026-01-09 10:00:00',
  'F2,frontdesk@studio.example,936666666,2026-01-09 11:00:00',
  'G1,fake-1@example.com,937777777,2026-01-10 10:00:00',
  'G2,fake-1@example.com,938888888,2026-01-10 11:00:00',
  'GUEST,h1@example.com,939999991,2026-01-11 10:00:00',
  'GUEST,h2@example.com,939999992,2026-01-11 11:00:00',
  // A super-connector: one email shared by 60 customer ids, max_partners 50.
  ...Array.from({ length: 60 }, (_, i) => `S${String(i + 1).padStart(2, '0')},shared@example.com,,2026-01-12 10:${String(i).padStart(2, '0')}:00`),
];

const SIGNUPS_IDENTITY = `identifier_types:
  customer_id: { normalize: trim, limit: 5 }
  email: { normalize: email, limit: 5 }
  phone: { normalize: phone, default_country_code: '351', limit: 5 }
priority: [customer_id, email, phone]
edge_sources:
  - name: signups
    from: ref('stg_signups')
    identifiers: { customer_id: customer_id, email: email, phone: phone }
    timestamp: ts
    verified: true
never_trusted:
  values: [frontdesk@studio.example]
  patterns: ['^fake-']
  by_type:
    customer_id: { values: [guest] }
max_partners: 50
`;

function signupsProject(): TempProject {
  return project({ ...seedWithStaging('signups', 'customer_id,email,phone,ts', SIGNUP_ROWS), 'identity.yml': SIGNUPS_IDENTITY });
}

describe('normalisation, never-trusted values and super-connectors', () => {
  let p: TempProject;
  let graph: Map<string, string>;
  beforeAll(async () => {
    p = signupsProject();
    await build(p);
    graph = await profiles(p);
  });

  it('joins emails across case and spaces, and phones across national, +351 and 00351 formats', () => {
    expect(membersOf(graph, 'email:ana@example.com')).toEqual([
      'customer_id:A1', 'customer_id:A2', 'customer_id:A3', 'customer_id:A4', 'email:ana@example.com', 'phone:+351912345678',
    ]);
    for (const id of graph.values()) expect(id).toMatch(PROFILE_ID);
  });

  it('ignores a too-short phone but keeps the rest of the row', () => {
    expect(membersOf(graph, 'customer_id:A5')).toEqual(['customer_id:A5', 'email:a5@example.com']);
    expect([...graph.keys()].filter((k) => k.includes('12345') && !k.includes('912345678'))).toEqual([]);
  });

  it('never lets default never-trusted values join people: test@test.com, null', () => {
    expect(membersOf(graph, 'customer_id:B1')).toEqual(['customer_id:B1', 'phone:+351931111111']);
    expect(membersOf(graph, 'customer_id:B2')).toEqual(['customer_id:B2', 'phone:+351932222222']);
    expect(membersOf(graph, 'customer_id:N1')).toEqual(['customer_id:N1', 'phone:+351933333333']);
    expect(membersOf(graph, 'customer_id:N2')).toEqual(['customer_id:N2', 'phone:+351934444444']);
    expect(graph.has('email:test@test.com')).toBe(false);
    expect(graph.has('email:null')).toBe(false);
  });

  it('applies custom values, patterns and per-type values', () => {
    expect(membersOf(graph, 'customer_id:F1')).toEqual(['customer_id:F1', 'phone:+351935555555']);
    expect(membersOf(graph, 'customer_id:F2')).toEqual(['customer_id:F2', 'phone:+351936666666']);
    expect(membersOf(graph, 'customer_id:G1')).toEqual(['customer_id:G1', 'phone:+351937777777']);
    expect(membersOf(graph, 'customer_id:G2')).toEqual(['customer_id:G2', 'phone:+351938888888']);
    expect(membersOf(graph, 'email:h1@example.com')).toEqual(['email:h1@example.com', 'phone:+351939999991']);
    expect(membersOf(graph, 'email:h2@example.com')).toEqual(['email:h2@example.com', 'phone:+351939999992']);
    expect(graph.has('customer_id:GUEST')).toBe(false);
  });

  it('cuts a super-connector instead of building a giant profile', async () => {
    const sizes = [...members(graph).values()].map((m) => m.length);
    expect(Math.max(...sizes)).toBe(6);
    expect(graph.has('email:shared@example.com')).toBe(false);
    expect(membersOf(graph, 'customer_id:S01')).toEqual(['customer_id:S01']);
    const rows = await p.query(`select status, count(*) as n from main.identity_edges where value_b = 'shared@example.com' group by status`);
    expect(rows.map((r) => [r['status'], Number(r['n'])])).toEqual([['super_connector', 60]]);
  });

  it('totals: 72 profiles over 88 identifiers', () => {
    expect(graph.size).toBe(88);
    expect(new Set(graph.values()).size).toBe(72);
  });

  it('inspect: a normalised value finds its profile, identifiers, edges and profile row (text)', async () => {
    const run = expectCode(await cdp(p, ['identity', 'inspect', 'email:  ANA@example.com ']), 0);
    const id = graph.get('email:ana@example.com')!;
    expect(run.stdout).toContain(`Profile ${id}`);
    expect(run.stdout).toContain('normalised: ana@example.com');
    expect(run.stdout).toContain('6 identifiers (customer_id 4, email 1, phone 1)');
    expect(run.stdout).toContain('merge_confidence 1 (0 unverified)');
    expect(run.stdout).toContain('Identifiers (6)');
    expect(run.stdout).toMatch(/customer_id\s+A1\s+signups\s+2026-01-01 10:00:00/);
    expect(run.stdout).toContain('Edges (6 active, both ends in the profile)');
    expect(run.stdout).toMatch(/customer_id:A1\s+email:ana@example.com\s+signups\s+2026-01-01 10:00:00\s+2026-01-01 10:00:00\s+yes\s+1/);
    expect(run.stdout).toContain('Dropped edges touching email:ana@example.com (0)');
    expect(run.stdout).toContain(`Merges and splits naming ${id} (0)`);
  });

  it('inspect --json: the same as data', async () => {
    const run = expectCode(await cdp(p, ['identity', 'inspect', 'phone:00351 912 345 678', '--json']), 0);
    const out = JSON.parse(run.stdout) as Record<string, any>;
    expect(out['found']).toBe(true);
    expect(out['identifier']).toEqual({ type: 'phone', input: '00351 912 345 678', value: '+351912345678', never_trusted: false });
    expect(out['profile_id']).toBe(graph.get('email:ana@example.com'));
    expect(out['profile']).toMatchObject({ identifiers: 6, customer_id_count: 4, email_count: 1, phone_count: 1, unverified_identifiers: 0, merge_confidence: 1 });
    expect(out['identifiers']).toHaveLength(6);
    expect(out['identifiers'][0]).toEqual({ identifier_type: 'customer_id', identifier_value: 'A1', source: 'signups', first_seen: '2026-01-01T10:00:00.000Z' });
    expect(out['edges']).toHaveLength(6);
    expect(out['edges'][0]).toMatchObject({ type_a: 'customer_id', value_a: 'A1', type_b: 'email', value_b: 'ana@example.com', source: 'signups', verified: true, row_count: 1 });
    expect(out['dropped_edges']).toEqual([]);
    expect(out['merges']).toEqual([]);
  });

  it('inspect: a cut super-connector member shows its dropped edge', async () => {
    const run = expectCode(await cdp(p, ['identity', 'inspect', 'customer_id:S01', '--json']), 0);
    const out = JSON.parse(run.stdout) as Record<string, any>;
    expect(out['identifiers']).toHaveLength(1);
    expect(out['dropped_edges']).toEqual([expect.objectContaining({ partner_type: 'email', partner_value: 'shared@example.com', status: 'super_connector', partner_profile_id: null })]);
  });

  it('inspect: not found exits 1 and says why, including whether the value is never trusted', async () => {
    const trusted = expectCode(await cdp(p, ['identity', 'inspect', 'email:Test@Test.com']), 1);
    expect(trusted.stderr).toMatch(/email:test@test\.com is in no profile: the value is never trusted/);
    const shared = expectCode(await cdp(p, ['identity', 'inspect', 'email:shared@example.com']), 1);
    expect(shared.stderr).toMatch(/super-connector.*max_partners \(50\).*all 60 of its edges were cut.*not a never-trusted value/);
    const short = expectCode(await cdp(p, ['identity', 'inspect', 'phone:12345']), 1);
    expect(short.stderr).toMatch(/`phone` normaliser rejects it/);
    const unknown = expectCode(await cdp(p, ['identity', 'inspect', 'email:nobody@example.com', '--json']), 1);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ found: false, identifier: { value: 'nobody@example.com', never_trusted: false } });
    expect(unknown.stderr).toMatch(/not in identity_edges/);
  });

  it('inspect: values reach the SQL as literals, never spliced', async () => {
    const run = expectCode(await cdp(p, ['identity', 'inspect', "email:x' OR '1'='1", '--json']), 1);
    expect(JSON.parse(run.stdout)).toMatchObject({ found: false, identifier: { value: "x' or '1'='1" } });
  });

  it('inspect: an unknown type is a usage error listing the declared types', async () => {
    const run = expectCode(await cdp(p, ['identity', 'inspect', 'emial:ana@example.com']), 2);
    expect(run.stderr).toContain('`emial` is not an identifier type');
    expect(run.stderr).toContain('customer_id, email, phone');
    expect(expectCode(await cdp(p, ['identity', 'inspect', 'ana@example.com']), 2).stderr).toContain('<type>:<value>');
  });

  it('report: match rate, cluster sizes, largest clusters, super-connectors (json)', async () => {
    const run = expectCode(await cdp(p, ['identity', 'report', '--json', '--top', '3']), 0);
    const report = JSON.parse(run.stdout) as Record<string, any>;
    expect(report["summary"]).toEqual({ identifiers: 88, profiles: 72, edges: 77, active_edges: 17, limit_edges: 0, super_connector_edges: 60 });
    expect(report['match_rate']).toMatchObject({ identifiers: 88, matched: 28, rate: 0.3182 });
    expect(report['match_rate']['by_type']).toEqual([
      { identifier_type: 'customer_id', identifiers: 73, matched: 13, rate: 0.1781 },
      { identifier_type: 'email', identifiers: 4, matched: 4, rate: 1 },
      { identifier_type: 'phone', identifiers: 11, matched: 11, rate: 1 },
    ]);
    expect(report['cluster_sizes']).toEqual([
      { bucket: '1', profiles: 60, identifiers: 60 },
      { bucket: '2', profiles: 11, identifiers: 22 },
      { bucket: '3-5', profiles: 0, identifiers: 0 },
      { bucket: '6-10', profiles: 1, identifiers: 6 },
      { bucket: '11-50', profiles: 0, identifiers: 0 },
      { bucket: '51+', profiles: 0, identifiers: 0 },
    ]);
    expect(report['largest_clusters']).toHaveLength(3);
    expect(report['largest_clusters'][0]).toMatchObject({ profile_id: graph.get('email:ana@example.com'), identifiers: 6, customer_id_count: 4, email_count: 1, phone_count: 1 });
    expect(report['largest_clusters'][1]).toMatchObject({ profile_id: graph.get('customer_id:A5'), identifiers: 2 });
    expect(report['super_connectors']).toEqual({
      threshold: 25,
      max_partners: 50,
      total: 1,
      identifiers: [{ identifier_type: 'email', identifier_value: 'shared@example.com', partners: 60, cut: true, super_connector_edges: 60, profile_id: null }],
    });
    expect(report['limits']).toEqual({ by_type_pair: [], limit_edges: 0, cut_in_graph: 0 });
    expect(report['last_run']).toBeNull();
  });

  it('report: a lower --super-connector-threshold lists watch candidates (text)', async () => {
    const run = expectCode(await cdp(p, ['identity', 'report', '--super-connector-threshold', '2']), 0);
    expect(run.stdout).toContain('Match rate: 31.8% (28 of 88 identifiers share their profile with another identifier)');
    expect(run.stdout).toMatch(/customer_id\s+73\s+13\s+17\.8%/);
    expect(run.stdout).toMatch(/^\s+1\s+60\s+60$/m);
    expect(run.stdout).toMatch(/^\s+6-10\s+1\s+6$/m);
    // ana's email (A1, A2, phone) and phone (A1, A3, A4, email) have more than 2 partners.
    expect(run.stdout).toContain('Super-connectors: 3 identifier(s) with more than 2 distinct partners (cut above max_partners 50)');
    expect(run.stdout).toMatch(/email\s+shared@example\.com\s+60\s+cut \(super_connector\)/);
    expect(run.stdout).toMatch(/phone\s+\+351912345678\s+4\s+watch\s+prf_/);
    expect(run.stdout).toMatch(/email\s+ana@example\.com\s+3\s+watch\s+prf_/);
    expect(run.stdout).toContain('Merges and splits: none logged yet');
  });

  it('compile writes one file per identity node, found through manifest.json', async () => {
    expectCode(await cdp(p, ['compile']), 0);
    const manifest = p.json<{ nodes: Record<string, { compiled_path?: string; path: string }> }>('target/manifest.json');
    const expected: Record<string, string> = {
      identity_edges: `'super_connector'`,
      identity_graph: 'cdp_identity_id_map',
      identity_merges: 'cdp_identity_merge_log',
      identity_profiles: 'merge_confidence',
    };
    const paths = new Set<string>();
    for (const [name, marker] of Object.entries(expected)) {
      const node = manifest.nodes[`model.test_project.${name}`]!;
      expect(node.path).toBe('identity.yml');
      expect(node.compiled_path, name).toBeDefined();
      paths.add(node.compiled_path!);
      expect(existsSync(p.path(node.compiled_path!)), node.compiled_path).toBe(true);
      expect(p.read(node.compiled_path!), `${name} → ${node.compiled_path}`).toContain(marker);
    }
    expect(paths.size).toBe(4);
  });

  it('ls --select identity_graph+ lists the graph and what is built on it', async () => {
    const run = expectCode(await cdp(p, ['ls', '--select', 'identity_graph+', '--output', 'name']), 0);
    expect(run.stdout.split('\n').sort()).toEqual(['identity_graph', 'identity_merges', 'identity_profiles']);
  });
});

describe("the placeholder phone '0000000000'", () => {
  it('never joins people, and inspect calls it never trusted', async () => {
    const p = project({
      ...seedWithStaging('signups', 'customer_id,email,phone,ts', [
        'Z1,z1@example.com,0000000000,2026-01-08 10:00:00',
        'Z2,z2@example.com,0000000000,2026-01-08 11:00:00',
        'Z3,z3@example.com,+351 939 000 003,2026-01-08 12:00:00',
      ]),
      'identity.yml': SIGNUPS_IDENTITY,
    });
    await build(p);
    // The column is text (the +351 row), so the placeholder reaches identity.yml's rules as typed.
    expect(await p.query(`select phone from main.stg_signups where customer_id = 'Z1'`)).toEqual([{ phone: '0000000000' }]);
    const graph = await profiles(p);
    expect(membersOf(graph, 'customer_id:Z1')).toEqual(['customer_id:Z1', 'email:z1@example.com']);
    expect(membersOf(graph, 'customer_id:Z2')).toEqual(['customer_id:Z2', 'email:z2@example.com']);
    const run = expectCode(await cdp(p, ['identity', 'inspect', 'phone:0000000000']), 1);
    expect(run.stderr).toContain('the value is never trusted');
  });
});

// -------------------------------------------------------------------------------------------
// Limits: per-edge (verified first, then earliest) and per-component (priority demotion).

const LIMITS_IDENTITY = `identifier_types:
  user_id: { limit: 1 }
  customer_id: { limit: 1 }
  email: { normalize: email, limit: 3 }
  phone: { normalize: phone, default_country_code: '351', limit: 2 }
  anonymous_id: { limit: 20 }
priority: [user_id, customer_id, email, phone, anonymous_id]
edge_sources:
  - name: web
    from: ref('stg_web')
    identifiers: { anonymous_id: anonymous_id, customer_id: customer_id }
    timestamp: ts
    verified: "event = 'login'"
  - name: accounts
    from: ref('stg_accounts')
    identifiers: { user_id: user_id, email: email, phone: phone }
    timestamp: ts
    verified: true
`;

describe('limits', () => {
  let p: TempProject;
  let graph: Map<string, string>;
  let edges: Map<string, string>;
  beforeAll(async () => {
    p = project({
      ...seedWithStaging('web', 'anonymous_id,customer_id,event,ts', [
        'X,C2,pageview,2026-02-01 09:00:00',
        'X,C1,login,2026-02-02 09:00:00',
        'Y,C3,pageview,2026-02-01 09:00:00',
        'Y,C4,pageview,2026-02-03 09:00:00',
      ]),
      ...seedWithStaging('accounts', 'user_id,email,phone,ts', [
        'U1,u1@example.com,911 000 001,2026-03-01 10:00:00',
        'U2,u2@example.com,911 000 001,2026-03-02 10:00:00',
      ]),
      'identity.yml': LIMITS_IDENTITY,
    });
    await build(p);
    graph = await profiles(p);
    edges = await edgeStatus(p);
  });

  it('an anonymous_id keeps one customer_id: the verified one first, even when later', () => {
    expect(edges.get('anonymous_id:X~customer_id:C1')).toBe('active');
    expect(edges.get('anonymous_id:X~customer_id:C2')).toBe('limit');
    expect(membersOf(graph, 'anonymous_id:X')).toEqual(['anonymous_id:X', 'customer_id:C1']);
    expect(membersOf(graph, 'customer_id:C2')).toEqual(['customer_id:C2']);
  });

  it('among unverified edges, the earliest is kept', () => {
    expect(edges.get('anonymous_id:Y~customer_id:C3')).toBe('active');
    expect(edges.get('anonymous_id:Y~customer_id:C4')).toBe('limit');
    expect(membersOf(graph, 'anonymous_id:Y')).toEqual(['anonymous_id:Y', 'customer_id:C3']);
  });

  it('a shared household phone does not glue two user_ids: the component is split, the phone demoted', () => {
    expect(edges.get('phone:+351911000001~user_id:U2')).toBe('limit');
    expect(edges.get('email:u2@example.com~phone:+351911000001')).toBe('active');
    expect(membersOf(graph, 'user_id:U1')).toEqual(['email:u1@example.com', 'user_id:U1']);
    expect(membersOf(graph, 'user_id:U2')).toEqual(['email:u2@example.com', 'user_id:U2']);
    expect(membersOf(graph, 'phone:+351911000001')).toEqual(['phone:+351911000001']);
  });

  it('merge_confidence is 1 for verified links and below 1 when an unverified edge holds the profile', async () => {
    const rows = await p.query('select profile_id, merge_confidence, unverified_identifiers from main.identity_profiles');
    const confidence = new Map(rows.map((r) => [String(r['profile_id']), Number(r['merge_confidence'])]));
    expect(confidence.get(graph.get('anonymous_id:X')!)).toBe(1);
    expect(confidence.get(graph.get('user_id:U1')!)).toBe(1);
    expect(confidence.get(graph.get('anonymous_id:Y')!)).toBe(0.5);
  });

  it('inspect shows the edges the limits dropped', async () => {
    const run = expectCode(await cdp(p, ['identity', 'inspect', 'phone:+351 911 000 001']), 0);
    expect(run.stdout).toContain('Dropped edges touching phone:+351911000001 (4)');
    expect(run.stdout).toMatch(/user_id:U2\s+limit\s+accounts/);
    expect(run.stdout).toMatch(/user_id:U1\s+cut_in_graph\s+accounts/);
    expect(run.stdout).toMatch(/email:u1@example.com\s+cut_in_graph/);
  });

  it('report: limit violations resolved, per pair of types', async () => {
    const report = JSON.parse(expectCode(await cdp(p, ['identity', 'report', '--json']), 0).stdout) as Record<string, any>;
    expect(report['limits']).toEqual({
      by_type_pair: [
        { type_a: 'anonymous_id', type_b: 'customer_id', limit_edges: 2, cut_in_graph: 0 },
        { type_a: 'phone', type_b: 'user_id', limit_edges: 1, cut_in_graph: 1 },
        { type_a: 'email', type_b: 'phone', limit_edges: 0, cut_in_graph: 2 },
      ],
      limit_edges: 3,
      cut_in_graph: 3,
    });
    const text = expectCode(await cdp(p, ['identity', 'report']), 0).stdout;
    expect(text).toContain('Limit violations resolved: 3 edge(s) dropped by limits, 3 active edge(s) cut by the graph step');
    expect(text).toMatch(/anonymous_id ~ customer_id\s+2\s+0/);
  });
});

// -------------------------------------------------------------------------------------------
// Stable ids across runs, split rules, merges and the merge log.

const CONTACTS_HEADER = 'email,phone,ts';
const CONTACTS = [
  'a@example.com,911000001,2026-04-01 10:00:00',
  'b@example.com,911000001,2026-04-02 10:00:00',
  'c@example.com,922000002,2026-04-03 10:00:00',
  'd@example.com,933000003,2026-04-04 10:00:00',
];

function contactsIdentity(splitRules = ''): string {
  return `identifier_types:
  email: { normalize: email, limit: 5 }
  phone: { normalize: phone, default_country_code: '351', limit: 5 }
edge_sources:
  - name: contacts
    from: ref('stg_contacts')
    identifiers: { email: email, phone: phone }
    timestamp: ts
    verified: true
${splitRules}`;
}

describe('stable ids, split rules and merges across runs', () => {
  let p: TempProject;
  let first: Map<string, string>;
  beforeAll(async () => {
    p = project({ ...seedWithStaging('contacts', CONTACTS_HEADER, CONTACTS), 'identity.yml': contactsIdentity() });
    await build(p);
    first = await profiles(p);
  });

  // The steps depend on each other: vitest runs them in order.
  it('first run: opaque ids, one per profile', () => {
    expect(new Set(first.values()).size).toBe(3);
    for (const id of first.values()) expect(id).toMatch(PROFILE_ID);
    expect(membersOf(first, 'email:a@example.com')).toEqual(['email:a@example.com', 'email:b@example.com', 'phone:+351911000001']);
  });

  it('a rerun without changes keeps every id and logs nothing', async () => {
    await build(p);
    expect(await profiles(p)).toEqual(first);
    expect(await merges(p)).toEqual([]);
  });

  it('--full-refresh keeps every id', async () => {
    await build(p, '--full-refresh');
    expect(await profiles(p)).toEqual(first);
    expect(await merges(p)).toEqual([]);
  });

  it('never_join splits a glued profile; the larger part keeps the old id; a split is logged', async () => {
    p.write({ 'identity.yml': contactsIdentity('split_rules:\n  - never_join: [email:A@Example.com, email:b@example.com]\n') });
    await build(p);
    const graph = await profiles(p);
    const old = first.get('email:a@example.com')!;
    // The shared phone is as near to a as to b; ties go to the first listed.
    expect(membersOf(graph, 'email:a@example.com')).toEqual(['email:a@example.com', 'phone:+351911000001']);
    expect(graph.get('email:a@example.com')).toBe(old);
    const b = graph.get('email:b@example.com')!;
    expect(b).not.toBe(old);
    expect(b).toMatch(PROFILE_ID);
    expect(membersOf(graph, 'email:b@example.com')).toEqual(['email:b@example.com']);
    const log = await merges(p);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ reason: 'split', surviving_id: old, merged_id: b });
  });

  it('isolate cuts one identifier out of its profile', async () => {
    p.write({
      'identity.yml': contactsIdentity('split_rules:\n  - never_join: [email:a@example.com, email:b@example.com]\n  - isolate: "phone:933 000 003"\n'),
    });
    await build(p);
    const graph = await profiles(p);
    expect(membersOf(graph, 'email:d@example.com')).toEqual(['email:d@example.com']);
    expect(membersOf(graph, 'phone:+351933000003')).toEqual(['phone:+351933000003']);
    expect(graph.get('email:d@example.com')).toBe(first.get('email:d@example.com'));
    const splits = (await merges(p)).filter((m) => m['surviving_id'] === first.get('email:d@example.com'));
    expect(splits).toEqual([expect.objectContaining({ reason: 'split', merged_id: graph.get('phone:+351933000003') })]);
  });

  it('a new edge joining two profiles keeps the older id and logs the merge with the joining edge', async () => {
    // e gets its profile in a later run than c's...
    p.write(seedWithStaging('contacts', CONTACTS_HEADER, [...CONTACTS, 'e@example.com,944000004,2026-04-05 10:00:00']));
    await build(p);
    const before = await profiles(p);
    const older = before.get('email:c@example.com')!;
    const newer = before.get('email:e@example.com')!;
    expect(newer).not.toBe(older);
    expect(older).toBe(first.get('email:c@example.com'));
    // ...then one row links c to e's phone.
    p.write(seedWithStaging('contacts', CONTACTS_HEADER, [
      ...CONTACTS,
      'e@example.com,944000004,2026-04-05 10:00:00',
      'c@example.com,944 000 004,2026-04-06 10:00:00',
    ]));
    await build(p);
    const after = await profiles(p);
    expect(membersOf(after, 'email:c@example.com')).toEqual(['email:c@example.com', 'email:e@example.com', 'phone:+351922000002', 'phone:+351944000004']);
    expect(after.get('email:e@example.com')).toBe(older);
    const log = (await merges(p)).filter((m) => m['reason'] === 'merge');
    expect(log).toEqual([expect.objectContaining({
      surviving_id: older,
      merged_id: newer,
      edge_type_a: 'email',
      edge_value_a: 'c@example.com',
      edge_type_b: 'phone',
      edge_value_b: '+351944000004',
      edge_source: 'contacts',
    })]);
  });

  it('inspect lists the merge-log rows that name the profile', async () => {
    const graph = await profiles(p);
    const id = graph.get('email:c@example.com')!;
    const out = JSON.parse(expectCode(await cdp(p, ['identity', 'inspect', 'email:e@example.com', '--json']), 0).stdout) as Record<string, any>;
    expect(out['profile_id']).toBe(id);
    expect(out['merges']).toEqual([expect.objectContaining({ reason: 'merge', surviving_id: id, edge_source: 'contacts' })]);
    const text = expectCode(await cdp(p, ['identity', 'inspect', 'email:c@example.com']), 0).stdout;
    expect(text).toContain(`Merges and splits naming ${id} (1)`);
    expect(text).toMatch(/merge\s+prf_\w+\s+prf_\w+\s+email:c@example.com ~ phone:\+351944000004 \(contacts\)/);
  });

  it('report: the last run with changes and the totals of the merge log', async () => {
    const report = JSON.parse(expectCode(await cdp(p, ['identity', 'report', '--json']), 0).stdout) as Record<string, any>;
    expect(report['last_run']).toMatchObject({ merges: 1, splits: 0 });
    expect(report['all_runs']).toEqual({ runs: 3, merges: 1, splits: 2 });
    const text = expectCode(await cdp(p, ['identity', 'report']), 0).stdout;
    expect(text).toMatch(/Last run with profile changes: \S+ at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?: 1 merge\(s\), 0 split\(s\) \(3 run\(s\) logged: 1 merge\(s\), 2 split\(s\) in total\)/);
  });
});

// -------------------------------------------------------------------------------------------
// Commands on a project that is not built, or has no identity.yml.

describe('identity commands before a build', () => {
  it('inspect and report ask for `cdp build --select identity_graph+` (exit 2)', async () => {
    const p = signupsProject();
    for (const args of [['identity', 'inspect', 'email:ana@example.com'], ['identity', 'report']]) {
      const run = expectCode(await cdp(p, args), 2);
      expect(run.stderr).toContain('not built');
      expect(run.stderr).toContain('cdp build --select identity_graph+');
    }
    // Seeds and staging built, identity not yet: the same answer.
    expectCode(await cdp(p, ['build', '--select', '+stg_signups']), 0);
    const run = expectCode(await cdp(p, ['identity', 'report']), 2);
    expect(run.stderr).toContain('missing: identity_edges, identity_graph, identity_merges, identity_profiles');
  });

  it('a project without identity.yml: exit 2', async () => {
    const p = project({ 'models/m.sql': 'select 1 as x\n' });
    const run = expectCode(await cdp(p, ['identity', 'report']), 2);
    expect(run.stderr).toContain('has no identity.yml');
  });
});

// -------------------------------------------------------------------------------------------
// Bad identity.yml: usage errors (exit 2) that name the file and the key.

describe('bad identity.yml', () => {
  const staging = seedWithStaging('signups', 'customer_id,email,phone,ts', ['A1,a@example.com,911000001,2026-01-01 10:00:00']);
  const source = (identifiers: string) => `edge_sources:
  - name: signups
    from: ref('stg_signups')
    identifiers: ${identifiers}
    timestamp: ts
`;
  const types = `identifier_types:
  customer_id: { limit: 1 }
  email: { normalize: email }
`;
  const cases: { name: string; yml: string; key: string; message: RegExp }[] = [
    { name: 'an unknown identifier type in an edge source', yml: types + source('{ customer_id: customer_id, emial: email }'), key: 'edge_sources.0.identifiers.emial', message: /`emial` is not a declared identifier type/ },
    { name: 'a limit of 0', yml: types.replace('{ limit: 1 }', '{ limit: 0 }') + source('{ customer_id: customer_id, email: email }'), key: 'identifier_types.customer_id.limit', message: /is 0/ },
    { name: 'a regex that does not compile', yml: types + source('{ customer_id: customer_id, email: email }') + "never_trusted:\n  patterns: ['(unclosed']\n", key: 'never_trusted.patterns.0', message: /not a valid regular expression/ },
    { name: 'an edge source with one identifier', yml: types + source('{ email: email }'), key: 'edge_sources.0.identifiers', message: /maps 1 identifier\(s\); an edge needs at least two/ },
    { name: 'an unknown key', yml: types + source('{ customer_id: customer_id, email: email }') + 'max_partner: 10\n', key: 'max_partner', message: /Unknown key `max_partner`/ },
    { name: 'priority naming an unknown type', yml: types + 'priority: [customer_id, phone]\n' + source('{ customer_id: customer_id, email: email }'), key: 'priority.1', message: /`priority` names `phone`, which is not an identifier type/ },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const p = project({ ...staging, 'identity.yml': c.yml });
      const run = expectCode(await cdp(p, ['compile']), 2);
      expect(run.stderr).toMatch(c.message);
      expect(run.stderr).toContain('identity.yml');
      expect(run.stderr).toContain(`(key \`${c.key}\`)`);
      expect(existsSync(p.path('target/test.duckdb'))).toBe(false);
    });
  }

  it('an edge source whose model lacks a mapped column fails the run (exit 1) naming the column', async () => {
    const p = project({ ...staging, 'identity.yml': types + source('{ customer_id: customer_id, email: e_mail }') });
    const run = expectCode(await cdp(p, ['build']), 1);
    expect(output(run)).toMatch(/ERROR\s+identity model identity_edges/);
    expect(output(run)).toContain('e_mail');
    expect(output(run)).toMatch(/SKIP.*identity_graph/);
  });
});
