import type { Relation } from '../compile/node.js';
import { ConfigError } from '../errors.js';
import type { NodeReference } from '../project/schema-file.js';
import type { Session } from '../warehouse/warehouse.js';
import type { IdentityRules } from './rules.js';

/**
 * Before identity_edges is built: every column an edge source maps must exist in the model it
 * reads. The warehouse would fail too, but with a binder error that names neither the edge
 * source nor the key of identity.yml to fix.
 */
export async function checkEdgeSourceColumns(
  session: Session,
  rules: IdentityRules,
  relationOf: (ref: NodeReference) => Relation | undefined,
): Promise<void> {
  for (const source of rules.sources) {
    const relation = relationOf(source.from);
    if (!relation) continue; // an ephemeral model: nothing to describe, the build reports it
    const info = await session.describe(relation);
    if (!info) continue;
    // Engines that fold unquoted names (Snowflake) report them in another case.
    const columns = info.columns.map((c) => c.name);
    const has = (column: string) => columns.some((c) => c.toLowerCase() === column.toLowerCase());
    const wanted = [
      ...source.identifiers.map((i) => ({ key: `identifiers.${i.type}`, column: i.column })),
      { key: 'timestamp', column: source.timestampColumn },
    ];
    for (const { key, column } of wanted) {
      if (!has(column)) {
        const from = source.from.kind === 'ref' ? source.from.name : `${source.from.source}.${source.from.table}`;
        throw new ConfigError('edge-source-column-missing', `Edge source \`${source.name}\` maps \`${key}\` to column \`${column}\`, which ${from} does not have`, {
          at: { ...source.at, key: `${source.at.key}.${key}` },
          hint: `Columns of ${from}: ${columns.join(', ')}.`,
        });
      }
    }
  }
}
