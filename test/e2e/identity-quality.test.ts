import { describe, expect, it } from 'vitest';
import { generate } from '../../src/generate/index.js';
import { measureQuality, type QualityMetrics } from '../../src/identity/quality.js';
import { DuckDbWarehouse } from '../../src/warehouse/duckdb-warehouse.js';
import { TempProject } from '../helpers/project.js';

/**
 * Match quality of the repo-root project's identity rules on generated data with ground truth,
 * at several seeds. Two views of recall: over every true identifier (evidence the sources never
 * link, like an anonymous id that never logs in, is a miss), and over the identifiers the
 * sources do link, which isolates what the rules and guards lose.
 */
const TYPES = ['user_id', 'customer_id', 'email', 'phone', 'device_id', 'anonymous_id'];

async function buildAndMeasure(seed: number): Promise<{ all: QualityMetrics; linked: QualityMetrics; maxProfile: number }> {
  const project = TempProject.fromRepoRoot();
  try {
    await generate({ persons: 600, seed, out: project.path('data') });
    const run = await project.cdp(['build', '--select', '+identity_profiles']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'q', path: project.path('target/cdp_demo.duckdb'), schema: 'main', threads: 2, settings: {} });
    const session = await warehouse.session();
    try {
      const types = TYPES.map((t) => `'${t}'`).join(', ');
      const truth = `SELECT * FROM read_csv('${project.path('data/truth.csv')}', all_varchar = true) WHERE identifier_type IN (${types})`;
      const predicted = { sql: 'SELECT identifier_type, identifier_value, profile_id FROM main.identity_graph' };
      const all = await measureQuality(session, warehouse.dialect, { sql: truth }, predicted);
      const linked = await measureQuality(session, warehouse.dialect, {
        sql: `${truth} AND (identifier_type, identifier_value) IN (SELECT identifier_type, identifier_value FROM main.identity_graph)`,
      }, predicted);
      const [row] = await session.query('SELECT MAX(identifiers) AS n FROM main.identity_profiles');
      return { all, linked, maxProfile: Number(row?.['n']) };
    } finally {
      await session.close();
      await warehouse.close();
    }
  } finally {
    project.cleanup();
  }
}

describe('identity match quality against generated ground truth', () => {
  it.each([1, 2, 3])('seed %i: high precision, no junk glue, recall bounded only by missing evidence', async (seed) => {
    const { all, linked, maxProfile } = await buildAndMeasure(seed);
    const f = (q: QualityMetrics) =>
      `pairwise P/R/F1 ${q.pairwise.precision.toFixed(3)}/${q.pairwise.recall.toFixed(3)}/${q.pairwise.f1.toFixed(3)}, B³ ${q.bcubed.precision.toFixed(3)}/${q.bcubed.recall.toFixed(3)}/${q.bcubed.f1.toFixed(3)}`;
    console.log(`seed ${seed}: all identifiers: ${f(all)}; linked identifiers: ${f(linked)}; max persons in one profile ${all.maxPersonsPerCluster}; largest profile ${maxProfile}`);
    expect(all.pairwise.precision).toBeGreaterThanOrEqual(0.97);
    expect(all.bcubed.precision).toBeGreaterThanOrEqual(0.98);
    expect(linked.bcubed.recall).toBeGreaterThanOrEqual(0.9);
    expect(linked.bcubed.f1).toBeGreaterThanOrEqual(0.95);
    expect(linked.pairwise.f1).toBeGreaterThanOrEqual(0.9);
    expect(all.bcubed.f1).toBeGreaterThanOrEqual(0.8);
    // Junk values (test@test.com, 0000000000, ...) and shared household phones or tablets never
    // glue more than a handful of people together.
    expect(all.maxPersonsPerCluster).toBeLessThanOrEqual(3);
    expect(maxProfile).toBeLessThan(80);
  });
});
