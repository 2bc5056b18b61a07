import type { CdpError } from '../errors.js';

/** A resolved target from profiles.yml: env references already substituted, secrets registered. */

interface TargetBase {
  /** The target's key in profiles.yml, e.g. `dev`. */
  name: string;
  /** Schema (BigQuery: dataset) that models build into unless a model overrides it. */
  schema: string;
  threads: number;
  /**
   * A credential whose environment variable is not set: compiling needs no credential, so the
   * error is raised when cdp connects (openWarehouse), not when profiles.yml is read.
   */
  unsetCredential?: CdpError;
}

export interface DuckDbTarget extends TargetBase {
  type: 'duckdb';
  /** Absolute path of the database file, or `:memory:`. */
  path: string;
  settings: Record<string, string>;
}

export interface BigQueryTarget extends TargetBase {
  type: 'bigquery';
  project: string;
  location?: string;
  /** Path to a service-account key file; absent means application default credentials. */
  keyfile?: string;
  /** Inline service-account JSON (a secret). */
  keyfileJson?: string;
  /** Per-query job timeout. */
  timeoutSeconds: number;
}

export interface SnowflakeTarget extends TargetBase {
  type: 'snowflake';
  account: string;
  user: string;
  password?: string;
  privateKey?: string;
  privateKeyPassphrase?: string;
  role?: string;
  warehouse: string;
  database: string;
}

export type Target = DuckDbTarget | BigQueryTarget | SnowflakeTarget;
export type TargetType = Target['type'];
export const TARGET_TYPES: readonly TargetType[] = ['duckdb', 'bigquery', 'snowflake'];

/** Keys whose values are secrets: they must be env references and are always masked. */
export const SECRET_KEYS: ReadonlySet<string> = new Set(['password', 'private_key', 'private_key_passphrase', 'keyfile_json', 'token']);

/** The database part of a relation for this target (BigQuery project, Snowflake database). */
export function targetDatabase(target: Target): string | undefined {
  switch (target.type) {
    case 'duckdb':
      return undefined;
    case 'bigquery':
      return target.project;
    case 'snowflake':
      return target.database;
  }
}
