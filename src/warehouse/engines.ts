import type { Target, TargetType } from '../project/target.js';
import type { Dialect } from './dialect.js';
import { DuckDbDialect } from './duckdb-dialect.js';
import { BigQueryDialect } from './bigquery-dialect.js';
import { SnowflakeDialect } from './snowflake-dialect.js';
import type { Session, Warehouse } from './warehouse.js';

/**
 * The one place that maps a target type to its engine. Dialects are pure and loaded eagerly;
 * warehouse clients are imported on demand so `cdp compile` never loads a cloud SDK.
 */
const DIALECTS: Record<TargetType, () => Dialect> = {
  duckdb: () => new DuckDbDialect(),
  bigquery: () => new BigQueryDialect(),
  snowflake: () => new SnowflakeDialect(),
};

export function dialectFor(type: TargetType): Dialect {
  return DIALECTS[type]();
}

/** `existing`: a command that only reads (plan, history, previews) must not create an empty database. */
export interface OpenOptions {
  existing?: boolean;
}

export async function openWarehouse(target: Target, options: OpenOptions = {}): Promise<Warehouse> {
  if (target.unsetCredential) throw target.unsetCredential;
  switch (target.type) {
    case 'duckdb': {
      const { DuckDbWarehouse } = await import('./duckdb-warehouse.js');
      return DuckDbWarehouse.open(target, options);
    }
    case 'bigquery': {
      const { BigQueryWarehouse } = await import('./bigquery-warehouse.js');
      return BigQueryWarehouse.open(target);
    }
    case 'snowflake': {
      const { SnowflakeWarehouse } = await import('./snowflake-warehouse.js');
      return SnowflakeWarehouse.open(target);
    }
  }
}

/** Opens the target, runs `body` on one session, and closes both whatever happens: for commands that read or write a little. */
export async function withWarehouseSession<T>(target: Target, body: (session: Session) => Promise<T>, options: OpenOptions = {}): Promise<T> {
  const warehouse = await openWarehouse(target, options);
  try {
    const session = await warehouse.session();
    try {
      return await body(session);
    } finally {
      await session.close().catch(() => undefined);
    }
  } finally {
    await warehouse.close();
  }
}
