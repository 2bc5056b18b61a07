import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Dag } from '../compile/graph.js';
import type { ModelNode } from '../compile/node.js';
import { ConfigError, type CdpError } from '../errors.js';
import { YamlValue } from '../project/yaml-reader.js';
import type { Dialect } from '../warehouse/dialect.js';
import { destinationFiles, destinationsDirOf, loadContract, type Contract } from './contract.js';
import { diffSql, STATE_SCHEMA, stateRelation } from './sql.js';

/**
 * Destinations as DAG nodes (docs/destinations.md, "Destinations in the DAG").
 *
 * Each contract of `destinations/*.yml` becomes a model-like node with the internal
 * materialization `destination`: unique id `destination.<project>.<name>`, path the YAML file,
 * and one dependency, the model it reads. So `--select` reaches destinations like any node
 * (`cdp ls --select +high_value_outbox`, `audience_high_value+`), `cdp compile` writes the
 * diff query `cdp plan` runs, and `cdp run` / `cdp build` never execute it (only `cdp sync` sends).
 * The unique id is not `model.…`: a destination is not addressable by `ref`, and a contract's
 * `model:` can never name another destination.
 */
export const DESTINATION_MATERIALIZATION = 'destination';

export interface DestinationNodes {
  nodes: ModelNode[];
  /** The compiled text per node id: a comment block describing the contract, then the diff SQL. */
  sql: Map<string, string>;
  contracts: Contract[];
  problems: CdpError[];
}

export function destinationNodeId(projectName: string, name: string): string {
  return `destination.${projectName}.${name}`;
}

/**
 * Validates every contract against `dag` (the models and seeds compiled so far) with the same
 * loader `cdp plan` and `cdp sync` use, collecting every bad contract rather than stopping at the
 * first, and returns one node per valid contract.
 */
export function destinationNodes(projectRoot: string, dag: Dag, projectName: string, dialect: Dialect, relativePath: (file: string) => string): DestinationNodes {
  const result: DestinationNodes = { nodes: [], sql: new Map(), contracts: [], problems: [] };
  const dir = destinationsDirOf(projectRoot);
  if (!dir) return result;
  const seen = new Map<string, string>();
  for (const file of destinationFiles(dir)) {
    let contract: Contract;
    let text: string;
    try {
      contract = loadContract(YamlValue.read(file), dag, projectName, { credentials: false });
      text = readFileSync(file, 'utf8');
    } catch (error) {
      result.problems.push(error as CdpError);
      continue;
    }
    const path = relativePath(file);
    const other = seen.get(contract.name);
    if (other) {
      result.problems.push(new ConfigError('destination-duplicate', `Two destination contracts are named \`${contract.name}\``, {
        at: { file: contract.file, key: 'name' },
        hint: `Also defined in ${other}; names must be unique.`,
      }));
      continue;
    }
    seen.set(contract.name, path);
    const modelId = [`model.${projectName}.${contract.model}`, `seed.${projectName}.${contract.model}`].find((id) => dag.nodes.has(id))!;
    const node: ModelNode = {
      resourceType: 'model',
      uniqueId: destinationNodeId(projectName, contract.name),
      name: contract.name,
      path,
      fqn: [projectName, 'destinations', contract.name],
      tags: [],
      description: contract.description,
      dependsOn: [modelId],
      checksum: createHash('sha256').update(text).digest('hex'),
      // Where the destination's state lives; nothing is ever materialized here by run/build.
      relation: stateRelation(contract.relation.database, 'snapshots'),
      config: { materialized: DESTINATION_MATERIALIZATION, uniqueKey: [contract.primaryKey], incrementalStrategy: 'merge', tags: [] },
      // What the user wrote; the compiled text is the plan SQL below.
      rawSql: text,
      columns: contract.mapping.map((f) => ({ name: f.target, description: `from ${contract.model}.${f.column}` })),
    };
    result.nodes.push(node);
    result.contracts.push(contract);
    result.sql.set(node.uniqueId, destinationSql(dialect, contract, path));
  }
  return result;
}

/** A comment block describing the contract, then the diff `cdp plan` and `cdp sync` run (rendered offline). */
export function destinationSql(d: Dialect, c: Contract, path: string): string {
  const mapping = c.mapping.map((f) => `${f.target} <- ${f.column}${f.type ? ` ${f.type}` : ''}${f.transforms.length > 0 ? ` [${f.transforms.join(', ')}]` : ''}`);
  const lines = [
    `-- Destination \`${c.name}\` (${path}): ${c.model} -> ${c.type} \`${c.object}\``,
    `-- mode ${c.mode}, on_remove ${c.onRemove}, primary_key ${c.primaryKey}, batch_size ${c.batchSize}${c.consent.length > 0 ? `, consent ${c.consent.join(', ')}` : ''}`,
    `-- mapping: ${mapping.join('; ')}`,
    `-- Not executed by cdp run or cdp build. This is the diff cdp plan and cdp sync run against the last`,
    `-- acknowledged snapshot in ${STATE_SCHEMA}.snapshots (before the first sync, against an empty one):`,
    `-- op add | change | remove | excluded (rows without consent, never sent); send = whether the mode sends it.`,
    `-- Shown for a model with profile_id and a privacy ledger; otherwise those parts read empty relations;`,
    `-- and for fingerprints all of the current version, whose seed names the model's column types (looked up`,
    `-- when the plan is made, so the literal there differs), with the mapping unchanged since the last sync.`,
  ];
  return `${lines.join('\n')}\n${diffSql(d, c, { snapshotsExist: true, hasProfileId: true, privacyLedger: true, consentSetAt: true, columnTypes: {}, fingerprints: 'current', mappingChanged: false })}\n`;
}
