import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CompiledProject } from '../compile/compiler.js';
import type { ManifestNode } from '../compile/node.js';
import type { PreviousManifest } from '../compile/selector.js';
import { ConfigError } from '../errors.js';
import { parseCliVars } from '../project/project.js';
import { MASK, redact, redactDeep } from '../project/secrets.js';
import type { Target } from '../project/target.js';
import type { Dialect } from '../warehouse/dialect.js';
import { CDP_VERSION } from '../version.js';
import type { NodeResult } from './result.js';

/**
 * target/manifest.json, target/run_results.json and the compiled SQL tree. Every artifact has
 * the same versioned `metadata` block; fields are only ever added within a schema version.
 */

export const MANIFEST_SCHEMA = 'https://cdp.dev/schemas/manifest/v1.json';
export const RUN_RESULTS_SCHEMA = 'https://cdp.dev/schemas/run-results/v1.json';

export interface ArtifactMetadata {
  cdp_schema_version: string;
  cdp_version: string;
  generated_at: string;
  invocation_id: string;
  target: { name: string; type: string };
}

export class ArtifactWriter {
  constructor(
    readonly targetDir: string,
    private readonly project: CompiledProject,
    private readonly dialect: Dialect,
    private readonly target: Target,
    readonly invocationId: string,
  ) {}

  metadata(schema: string): ArtifactMetadata {
    return {
      cdp_schema_version: schema,
      cdp_version: CDP_VERSION,
      generated_at: new Date().toISOString(),
      invocation_id: this.invocationId,
      target: { name: this.target.name, type: this.target.type },
    };
  }

  compiledRoot(kind: 'compiled' | 'run' = 'compiled'): string {
    return path.posix.join(path.basename(this.targetDir), kind, this.project.projectName);
  }

  /** Where a node's rendered SQL goes, relative to the project: target/compiled/<project>/<path>. */
  compiledPath(node: ManifestNode, kind: 'compiled' | 'run' = 'compiled'): string {
    const base = this.compiledRoot(kind);
    if (node.resourceType === 'test' && node.generic) return path.posix.join(base, path.posix.dirname(node.path), `${node.name}.sql`);
    // Several nodes generated from one YAML file (identity.yml) each get a file in its folder.
    if (/\.ya?ml$/.test(node.path)) return path.posix.join(base, node.path.replace(/\.ya?ml$/, ''), `${node.name}.sql`);
    return path.posix.join(base, node.path.replace(/\.sql$/, '') + '.sql');
  }

  /** Writes the rendered SQL of the given nodes (all by default); returns how many files. */
  writeCompiledSql(ids: Iterable<string> = this.project.sql.keys()): number {
    let written = 0;
    for (const id of ids) {
      const sql = this.project.sql.get(id);
      if (sql === undefined) continue;
      this.writeSql(this.compiledPath(this.project.dag.get(id)), sql);
      written++;
    }
    return written;
  }

  writeExecutedSql(node: ManifestNode, statements: string[]): string {
    const file = this.compiledPath(node, 'run');
    this.writeSql(file, statements.map((s) => `${s};`).join('\n\n'));
    return file;
  }

  writeManifest(): string {
    const nodes: Record<string, unknown> = {};
    const sources: Record<string, unknown> = {};
    const parentMap: Record<string, string[]> = {};
    const childMap: Record<string, string[]> = {};
    for (const node of this.project.dag.nodes.values()) {
      const { rawSql, ...rest } = node as ManifestNode & { rawSql?: string };
      const entry = {
        ...rest,
        raw_code: rawSql,
        relation_name: 'relation' in node ? this.dialect.quoteRelation(node.relation) : undefined,
        compiled_path: this.project.sql.has(node.uniqueId) ? this.compiledPath(node) : undefined,
      };
      (node.resourceType === 'source' ? sources : nodes)[node.uniqueId] = entry;
      parentMap[node.uniqueId] = [...this.project.dag.parents(node.uniqueId)];
      childMap[node.uniqueId] = [...this.project.dag.children(node.uniqueId)];
    }
    return this.writeJson('manifest.json', { metadata: this.metadata(MANIFEST_SCHEMA), nodes, sources, parent_map: parentMap, child_map: childMap });
  }

  writeRunResults(command: string, args: Record<string, unknown>, results: NodeResult[], elapsedSeconds: number): string {
    return this.writeJson('run_results.json', {
      metadata: this.metadata(RUN_RESULTS_SCHEMA),
      command,
      args: withoutVarValues(args),
      elapsed_time: elapsedSeconds,
      results,
    });
  }

  private writeSql(relativeFile: string, sql: string): void {
    const file = path.join(path.dirname(this.targetDir), relativeFile);
    mkdirSync(path.dirname(file), { recursive: true });
    const text = redact(sql);
    writeFileSync(file, text.endsWith('\n') ? text : text + '\n');
  }

  /** Written to a temporary file and renamed, so a reader never sees half an artifact. */
  private writeJson(name: string, value: unknown): string {
    mkdirSync(this.targetDir, { recursive: true });
    const file = path.join(this.targetDir, name);
    writeFileSync(`${file}.tmp`, JSON.stringify(redactDeep(value), null, 2));
    renameSync(`${file}.tmp`, file);
    return file;
  }
}

/**
 * `--vars` may carry a secret for one run (a password), and artifacts never hold secrets, while
 * which vars were set is worth keeping: the names stay, every value is masked. Not a digest: var
 * values are often short enough to find again from their hash.
 */
function withoutVarValues(args: Record<string, unknown>): Record<string, unknown> {
  if (typeof args['vars'] !== 'string') return args;
  const names = Object.keys(parseCliVars(args['vars']));
  return { ...args, vars: JSON.stringify(Object.fromEntries(names.map((name) => [name, MASK]))) };
}

/** The manifest of a previous run, for `state:` selectors. */
export function loadPreviousManifest(stateDir: string): PreviousManifest {
  const file = path.join(path.resolve(stateDir), 'manifest.json');
  if (!existsSync(file)) {
    throw new ConfigError('state-manifest-missing', `--state ${stateDir}: no manifest.json there`, {
      hint: 'Point --state at the target/ directory of a previous run (e.g. a copy of production artifacts).',
    });
  }
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as { nodes?: Record<string, { checksum: string }>; sources?: Record<string, { checksum: string }> };
  const previous = new Map<string, { checksum: string }>();
  for (const [id, node] of Object.entries({ ...manifest.nodes, ...manifest.sources })) previous.set(id, { checksum: node.checksum });
  return previous;
}
