import type { Materialization } from './node.js';

/**
 * A model that a generator (identity.yml, golden_record.yml) adds to the DAG. Its template is
 * compiled like a user's model: its `ref` calls become dependencies and `cdp compile` shows it.
 */
export interface GeneratedModel {
  name: string;
  materialized: Materialization;
  template: string;
  /** Dependencies the SQL cannot show (a step that writes a table another node reads). */
  extraRefs: string[];
  description: string;
}
