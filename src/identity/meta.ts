import type { Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';

/** `cdp_identity_meta (name, value)`: versions and checksums the identity steps hand each other. */
export function metaRelation(near: Relation): Relation {
  return { ...near, name: 'cdp_identity_meta' };
}

export function readMetaSql(d: Dialect, meta: Relation): string {
  return `SELECT name, value FROM ${d.quoteRelation(meta)}`;
}

export function createMetaSql(d: Dialect, meta: Relation): string {
  return d.createTableIfNotExists(meta, [['name', 'string'], ['value', 'string']]);
}

/** Replaces the given entries; DML only, so it can join the step's commit transaction. */
export function writeMetaSql(d: Dialect, meta: Relation, entries: [string, string][]): string[] {
  const table = d.quoteRelation(meta);
  const statements: string[] = [];
  for (const [name, value] of entries) {
    statements.push(`DELETE FROM ${table} WHERE name = ${d.stringLiteral(name)}`);
    statements.push(`INSERT INTO ${table} (name, value) VALUES (${d.stringLiteral(name)}, ${d.stringLiteral(value)})`);
  }
  return statements;
}
