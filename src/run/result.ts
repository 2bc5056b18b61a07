/** One node's outcome, shaped like dbt's run_results.json entries. */

export type RunStatus = 'success' | 'error' | 'skipped' | 'pass' | 'fail' | 'warn';

export interface TimingEntry {
  name: 'compile' | 'execute';
  started_at: string;
  completed_at: string;
}

export interface NodeResult {
  unique_id: string;
  status: RunStatus;
  timing: TimingEntry[];
  thread_id: string;
  execution_time: number;
  rows_affected?: number;
  message: string;
  /** Failing row count, for data tests. */
  failures?: number;
  /** A few failing rows, for data tests. */
  failing_rows?: Record<string, unknown>[];
  compiled_path?: string;
  relation_name?: string;
}

/** A status that stops the node's descendants from running. */
export function blocksDescendants(result: NodeResult): boolean {
  return result.status === 'error' || result.status === 'skipped' || result.status === 'fail';
}
