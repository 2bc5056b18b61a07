import type { Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';

/** `cdp_identity_meta (name, value)`: versions and checksums the identity steps hand each other. */
export function metaRelation(near: Relation): Relation {
  return { ...near, name: 'cdp_identity_meta' };
}

const NAME = 'name';
const VALUE = 'value';

export function readMetaSql(d: Dialect, meta: Relation): string {
  return `SELECT ${d.quoteIdentifier(NAME)}, ${d.quoteIdentifier(VALUE)} FROM ${d.quoteRelation(meta)}`;
}

export function createMetaSql(d: Dialect, meta: Relation): string {
  return d.createTableIfNotExists(meta, [[NAME, 'string'], [VALUE, 'string']]);
}

/** Replaces the given entries; DML only, so it can join the step's commit transaction. */
export function writeMetaSql(d: Dialect, meta: Relation, entries: [string, string][]): string[] {
  const table = d.quoteRelation(meta);
  const statements: string[] = [];
  for (const [name, value] of entries) {
    statements.push(`DELETE FROM ${table} WHERE ${d.quoteIdentifier(NAME)} = ${d.stringLiteral(name)}`);
    statements.push(`INSERT INTO ${table} (${d.quoteIdentifier(NAME)}, ${d.quoteIdentifier(VALUE)}) VALUES (${d.stringLiteral(name)}, ${d.stringLiteral(value)})`);
  }
  return statements;
}
