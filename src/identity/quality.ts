import type { Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';

/**
 * Clustering quality of an identity graph against ground truth, computed in the warehouse.
 *
 * Inputs are two relations:
 *  - truth     `(identifier_type, identifier_value, person_id)`
 *  - predicted `(identifier_type, identifier_value, profile_id)`
 *
 * Records are the identifiers present in truth (distinct `(identifier_type, identifier_value)`).
 * Predicted rows for identifiers not in truth (junk values, identifiers the truth does not know)
 * are ignored. A truth identifier missing from the prediction counts as a singleton cluster of
 * its own, so an identity layer that drops identifiers loses recall, never precision. Should
 * either relation map one identifier to several ids, the smallest id wins (keeps the metrics
 * defined; a correct input has one row per identifier).
 *
 * With n_ij = records in predicted cluster i and true person j, a_i = Σ_j n_ij, b_j = Σ_i n_ij,
 * N = Σ n_ij:
 *  - pairwise: TP = Σ n_ij(n_ij−1)/2, predicted pairs = Σ a_i(a_i−1)/2, true pairs = Σ b_j(b_j−1)/2;
 *    P = TP / predicted pairs, R = TP / true pairs. Pairs are never enumerated: the SQL groups
 *    the contingency table and sums n(n−1)/2 per group.
 *  - B-cubed: P = Σ n_ij² / a_i / N, R = Σ n_ij² / b_j / N.
 * An empty denominator (no predicted pairs, no true pairs, no records) gives 1.0; F1 is the
 * harmonic mean, 0 when P + R = 0.
 *
 * Portable SQL (CTEs, GROUP BY, window aggregates, CASE): the same text runs on DuckDB,
 * BigQuery and Snowflake. Column names are left unquoted so each engine applies its own case
 * folding to the fixed names above.
 */

/** A relation, or a SELECT used as a subquery. */
export type QualityInput = Relation | { sql: string };

export interface QualityOptions {
  /** A predicted cluster holding more than this many distinct true persons counts as glued. Default 1. */
  gluePersons?: number;
  /** A predicted cluster with more than this many records counts as large. Default 64 (Amperity's flag). */
  largeCluster?: number;
}

export interface PrecisionRecall {
  precision: number;
  recall: number;
  f1: number;
}

export interface QualityMetrics {
  /** Distinct identifiers in truth. */
  records: number;
  truePersons: number;
  /** Predicted clusters over the records, singletons for missing identifiers included. */
  predictedClusters: number;
  /** Truth identifiers absent from the prediction (each counted as its own singleton cluster). */
  missingFromPrediction: number;
  pairwise: PrecisionRecall & { truePositivePairs: number; predictedPairs: number; truePairs: number };
  bcubed: PrecisionRecall;
  /** Records in the largest predicted cluster. */
  maxClusterSize: number;
  /** Records of the person with most identifiers. */
  maxTrueClusterSize: number;
  /** Distinct true persons in the most mixed predicted cluster: the junk-glue check (1 is perfect). */
  maxPersonsPerCluster: number;
  /** Predicted clusters with more than `gluePersons` true persons. */
  gluedClusters: number;
  /** Predicted clusters with more than `largeCluster` records. */
  largeClusters: number;
}

function source(dialect: Dialect, input: QualityInput): string {
  return 'sql' in input ? `(\n${input.sql}\n)` : dialect.quoteRelation(input);
}

function nonNegativeInt(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  return v;
}

/** The SQL computing every metric in one row (columns named as in `QualityMetrics`, snake_case). Pure. */
export function qualitySql(dialect: Dialect, truth: QualityInput, predicted: QualityInput, options: QualityOptions = {}): string {
  const glue = nonNegativeInt(options.gluePersons, 1, 'gluePersons');
  const large = nonNegativeInt(options.largeCluster, 64, 'largeCluster');
  const str = dialect.types.string;
  const dbl = dialect.types.float;
  const ratio = (num: string, den: string) => `CASE WHEN ${den} = 0 THEN 1.0 ELSE ${num} / ${den} END`;
  const f1 = (p: string, r: string) => `CASE WHEN ${p} + ${r} = 0 THEN 0.0 ELSE 2 * ${p} * ${r} / (${p} + ${r}) END`;
  return `WITH truth_ids AS (
  SELECT CAST(identifier_type AS ${str}) AS id_type, CAST(identifier_value AS ${str}) AS id_value, MIN(CAST(person_id AS ${str})) AS person_id
  FROM ${source(dialect, truth)} AS truth_in
  WHERE identifier_type IS NOT NULL AND identifier_value IS NOT NULL AND person_id IS NOT NULL
  GROUP BY CAST(identifier_type AS ${str}), CAST(identifier_value AS ${str})
),
predicted_ids AS (
  SELECT CAST(identifier_type AS ${str}) AS id_type, CAST(identifier_value AS ${str}) AS id_value, MIN(CAST(profile_id AS ${str})) AS profile_id
  FROM ${source(dialect, predicted)} AS predicted_in
  WHERE identifier_type IS NOT NULL AND identifier_value IS NOT NULL AND profile_id IS NOT NULL
  GROUP BY CAST(identifier_type AS ${str}), CAST(identifier_value AS ${str})
),
records AS (
  -- A record missing from the prediction is its own cluster, keyed by its identifier.
  SELECT t.person_id,
    p.profile_id,
    CASE WHEN p.profile_id IS NULL THEN t.id_type END AS single_type,
    CASE WHEN p.profile_id IS NULL THEN t.id_value END AS single_value
  FROM truth_ids AS t
  LEFT JOIN predicted_ids AS p ON p.id_type = t.id_type AND p.id_value = t.id_value
),
cells AS (
  -- The contingency table: n records shared by one predicted cluster and one true person.
  SELECT profile_id, single_type, single_value, person_id, COUNT(*) AS n
  FROM records
  GROUP BY profile_id, single_type, single_value, person_id
),
sized AS (
  SELECT profile_id, n,
    SUM(n) OVER (PARTITION BY profile_id, single_type, single_value) AS cluster_size,
    COUNT(*) OVER (PARTITION BY profile_id, single_type, single_value) AS cluster_persons,
    ROW_NUMBER() OVER (PARTITION BY profile_id, single_type, single_value ORDER BY person_id) AS cluster_row,
    SUM(n) OVER (PARTITION BY person_id) AS person_size,
    ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY profile_id, single_type, single_value) AS person_row
  FROM cells
),
totals AS (
  SELECT
    COALESCE(SUM(n), 0) AS records,
    COALESCE(SUM(CASE WHEN person_row = 1 THEN 1 ELSE 0 END), 0) AS true_persons,
    COALESCE(SUM(CASE WHEN cluster_row = 1 THEN 1 ELSE 0 END), 0) AS predicted_clusters,
    COALESCE(SUM(CASE WHEN profile_id IS NULL THEN n ELSE 0 END), 0) AS missing_from_prediction,
    COALESCE(SUM(CAST(n AS ${dbl}) * (n - 1) / 2), 0) AS true_positive_pairs,
    COALESCE(SUM(CAST(n AS ${dbl}) * (cluster_size - 1) / 2), 0) AS predicted_pairs,
    COALESCE(SUM(CAST(n AS ${dbl}) * (person_size - 1) / 2), 0) AS true_pairs,
    COALESCE(SUM(CAST(n AS ${dbl}) * n / cluster_size), 0) AS bcubed_precision_sum,
    COALESCE(SUM(CAST(n AS ${dbl}) * n / person_size), 0) AS bcubed_recall_sum,
    COALESCE(MAX(cluster_size), 0) AS max_cluster_size,
    COALESCE(MAX(person_size), 0) AS max_true_cluster_size,
    COALESCE(MAX(cluster_persons), 0) AS max_persons_per_cluster,
    COALESCE(SUM(CASE WHEN cluster_row = 1 AND cluster_persons > ${glue} THEN 1 ELSE 0 END), 0) AS glued_clusters,
    COALESCE(SUM(CASE WHEN cluster_row = 1 AND cluster_size > ${large} THEN 1 ELSE 0 END), 0) AS large_clusters
  FROM sized
),
rates AS (
  SELECT totals.*,
    ${ratio('true_positive_pairs', 'predicted_pairs')} AS pairwise_precision,
    ${ratio('true_positive_pairs', 'true_pairs')} AS pairwise_recall,
    ${ratio('bcubed_precision_sum', 'records')} AS bcubed_precision,
    ${ratio('bcubed_recall_sum', 'records')} AS bcubed_recall
  FROM totals
)
SELECT records, true_persons, predicted_clusters, missing_from_prediction,
  true_positive_pairs, predicted_pairs, true_pairs,
  pairwise_precision, pairwise_recall, ${f1('pairwise_precision', 'pairwise_recall')} AS pairwise_f1,
  bcubed_precision, bcubed_recall, ${f1('bcubed_precision', 'bcubed_recall')} AS bcubed_f1,
  max_cluster_size, max_true_cluster_size, max_persons_per_cluster, glued_clusters, large_clusters
FROM rates`;
}

/** Runs `qualitySql` and returns the metrics as numbers. */
export async function measureQuality(
  session: Pick<Session, 'query'>,
  dialect: Dialect,
  truth: QualityInput,
  predicted: QualityInput,
  options: QualityOptions = {},
): Promise<QualityMetrics> {
  const rows = await session.query(qualitySql(dialect, truth, predicted, options));
  const row = rows[0];
  if (!row) throw new Error('quality query returned no row');
  const num = (key: string): number => {
    const value = row[key] ?? row[key.toUpperCase()];
    return value === null || value === undefined ? Number.NaN : Number(value);
  };
  return {
    records: num('records'),
    truePersons: num('true_persons'),
    predictedClusters: num('predicted_clusters'),
    missingFromPrediction: num('missing_from_prediction'),
    pairwise: {
      precision: num('pairwise_precision'),
      recall: num('pairwise_recall'),
      f1: num('pairwise_f1'),
      truePositivePairs: num('true_positive_pairs'),
      predictedPairs: num('predicted_pairs'),
      truePairs: num('true_pairs'),
    },
    bcubed: { precision: num('bcubed_precision'), recall: num('bcubed_recall'), f1: num('bcubed_f1') },
    maxClusterSize: num('max_cluster_size'),
    maxTrueClusterSize: num('max_true_cluster_size'),
    maxPersonsPerCluster: num('max_persons_per_cluster'),
    gluedClusters: num('glued_clusters'),
    largeClusters: num('large_clusters'),
  };
}
