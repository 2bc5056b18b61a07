/** The compiled project graph's vocabulary: one node per seed, source, model or data test. */

export type ResourceType = 'seed' | 'source' | 'model' | 'test';
export const RESOURCE_TYPES: readonly ResourceType[] = ['seed', 'source', 'model', 'test'];

export type UserMaterialization = 'view' | 'table' | 'incremental' | 'ephemeral';
/** The ones a user may configure; generators (identity) use internal ones on their own nodes. */
export const MATERIALIZATIONS: readonly UserMaterialization[] = ['view', 'table', 'incremental', 'ephemeral'];
/** `destination`: a destination contract's node (src/sync/destination-nodes.ts); never executed by run/build. */
export type Materialization = UserMaterialization | 'identity_edges' | 'identity_graph' | 'audience_membership' | 'destination';

export type IncrementalStrategy = 'merge' | 'delete+insert';
export const INCREMENTAL_STRATEGIES: readonly IncrementalStrategy[] = ['merge', 'delete+insert'];

export type Severity = 'error' | 'warn';

export interface Relation {
  /** BigQuery project / Snowflake database; absent on DuckDB's default catalog. */
  database?: string;
  schema: string;
  name: string;
}

export interface ModelConfig {
  materialized: Materialization;
  uniqueKey: string[];
  incrementalStrategy: IncrementalStrategy;
  tags: string[];
  schema?: string;
}

export interface TestConfig {
  severity: Severity;
  /** The model or source the test is attached to, for `--select` indirect selection. */
  attachedTo?: string;
  /** Generic test name (`unique`, ...) or `custom` for SQL files under tests/. */
  testName: string;
  column?: string;
}

interface NodeBase {
  /** `<resource_type>.<project>.<name>`, stable across runs; the key of manifest.json. */
  uniqueId: string;
  name: string;
  /** Project-relative POSIX path of the file that defines the node. */
  path: string;
  fqn: string[];
  tags: string[];
  description: string;
  dependsOn: string[];
  /** Hash of what the user wrote (template + config), not of what it rendered to: see docs/selection.md. */
  checksum: string;
}

export interface SeedNode extends NodeBase {
  resourceType: 'seed';
  relation: Relation;
  /** Absolute path of the CSV, Parquet or JSON file. */
  file: string;
  format: SeedFormat;
}

export interface SourceNode extends NodeBase {
  resourceType: 'source';
  sourceName: string;
  relation: Relation;
  /** A source may be backed by a file that `cdp seed` loads. */
  file?: string;
  format?: SeedFormat;
}

export interface ModelNode extends NodeBase {
  resourceType: 'model';
  relation: Relation;
  config: ModelConfig;
  rawSql: string;
  columns: ColumnSpec[];
}

export interface TestNode extends NodeBase {
  resourceType: 'test';
  config: TestConfig;
  /** Template for the custom SQL test, or the generic test's arguments. */
  rawSql?: string;
  generic?: GenericTestSpec;
}

export type SeedFormat = 'csv' | 'parquet' | 'json';

export interface ColumnSpec {
  name: string;
  description: string;
}

export type GenericTestSpec =
  | { kind: 'unique'; target: string; column: string }
  | { kind: 'not_null'; target: string; column: string }
  | { kind: 'accepted_values'; target: string; column: string; values: (string | number | boolean)[] }
  | { kind: 'relationships'; target: string; column: string; to: string; field: string };

export type ManifestNode = SeedNode | SourceNode | ModelNode | TestNode;

export function isExecutable(node: ManifestNode): boolean {
  return node.resourceType !== 'source' || node.file !== undefined;
}
