import type { TestNode } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Row, Session } from '../warehouse/warehouse.js';

export interface DataTestOutcome {
  status: 'pass' | 'fail' | 'warn';
  failures: number;
  sample: Row[];
}

const SAMPLE_ROWS = 5;

/** A data test is a SELECT of failing rows: count them, and fetch a few to show the user. */
export async function runDataTest(session: Session, dialect: Dialect, node: TestNode, sql: string): Promise<DataTestOutcome> {
  const [row] = await session.query(`SELECT COUNT(*) AS ${dialect.quoteIdentifier('failures')} FROM (\n${sql}\n) AS test_rows`);
  const failures = Number(row?.['failures'] ?? 0);
  if (failures === 0) return { status: 'pass', failures, sample: [] };
  const sample = await session.query(dialect.limit(sql, SAMPLE_ROWS));
  return { status: node.config.severity === 'warn' ? 'warn' : 'fail', failures, sample };
}
