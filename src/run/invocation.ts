import { existsSync } from 'node:fs';
import path from 'node:path';
import { compileProject, type CompiledProject } from '../compile/compiler.js';
import type { Dag } from '../compile/graph.js';
import { checkEdgeSourceColumns } from '../identity/preflight.js';
import type { NodeReference } from '../project/schema-file.js';
import type { ManifestNode, Relation, ResourceType, SeedNode, SourceNode, TestNode } from '../compile/node.js';
import { selectNodes, type IndirectSelection } from '../compile/selector.js';
import { CdpError, ConfigError, ProblemsError, errorMessage, formatLocation } from '../errors.js';
import { loadProject, type Project } from '../project/project.js';
import { jsonReplacer } from '../project/secrets.js';
import type { Dialect } from '../warehouse/dialect.js';
import { dialectFor, openWarehouse } from '../warehouse/engines.js';
import type { Session, Warehouse } from '../warehouse/warehouse.js';
import { ArtifactWriter, loadPreviousManifest } from './artifacts.js';
import { csvProblem } from './csv-check.js';
import { checkFailureMessage } from './check-failure.js';
import { runDataTest } from './data-test.js';
import type { EventLogger } from './events.js';
import { executeGraph } from './executor.js';
import { materialize } from './materialize.js';
import { checkPrivacyKey, loadCheckedPrivacyKey, readPrivacyKey, type PrivacyKey } from '../privacy/key.js';
import type { NodeResult, TimingEntry } from './result.js';

/** Flags shared by every command that reads a project (dbt's global flags). */
export interface ProjectFlags {
  projectDir: string;
  profilesDir?: string;
  target?: string;
  vars?: string;
  select?: string[];
  exclude?: string[];
  threads?: number;
  fullRefresh?: boolean;
  failFast?: boolean;
  state?: string;
  /** `buildable` when the invocation builds models and runs tests together (cdp build). */
  indirectSelection?: IndirectSelection;
}

export interface PreparedInvocation {
  project: Project;
  dialect: Dialect;
  compiled: CompiledProject;
  artifacts: ArtifactWriter;
  /** Selected node ids, in topological order. */
  selected: string[];
  /** The privacy HMAC key (unset when its env var is), for tombstone suppression. */
  privacyKey: PrivacyKey;
}

/** Load, validate and compile the project, then apply the selection. No connection is opened. */
export function prepareInvocation(flags: ProjectFlags, logger: EventLogger, env: NodeJS.ProcessEnv = process.env): PreparedInvocation {
  const project = loadProject({ projectDir: flags.projectDir, profilesDir: flags.profilesDir, target: flags.target, vars: flags.vars, env });
  const dialect = dialectFor(project.profile.target.type);
  const compiled = compileProject(project, dialect, env);
  const previous = flags.state ? loadPreviousManifest(flags.state) : undefined;
  const chosen = selectNodes(compiled.dag, { select: flags.select, exclude: flags.exclude, previous, indirectSelection: flags.indirectSelection });
  const selected = compiled.dag.topologicalOrder().filter((id) => chosen.has(id));
  const targetDir = path.resolve(project.config.root, project.config.targetPath);
  const artifacts = new ArtifactWriter(targetDir, compiled, dialect, project.profile.target, logger.invocationId);
  return { project, dialect, compiled, artifacts, selected, privacyKey: readPrivacyKey(project.config.privacyKeyEnv, env) };
}

export interface ExecutionSummary {
  results: NodeResult[];
  elapsedSeconds: number;
}

function now(): string {
  return new Date().toISOString();
}

/** Executes the selected nodes of the given resource types against the target warehouse. */
export async function executeInvocation(
  prepared: PreparedInvocation,
  flags: ProjectFlags,
  types: ReadonlySet<ResourceType>,
  logger: EventLogger,
  warehouseFactory: (p: Project) => Promise<Warehouse> = (p) => openWarehouse(p.profile.target),
): Promise<ExecutionSummary> {
  const { compiled, artifacts } = prepared;
  const dag = compiled.dag;
  const runnable = new Set(prepared.selected.filter((id) => isRunnable(dag.get(id), types)));
  checkCsvFiles(prepared, runnable);
  const started = Date.now();
  const threads = flags.threads ?? prepared.project.profile.target.threads;
  const warehouse = await warehouseFactory(prepared.project);
  const sessions: Session[] = [];
  const sessionFor = async (worker: number) => (sessions[worker] ??= await warehouse.session());
  let done = 0;
  const total = runnable.size;

  try {
    const edges = compiled.identity ? dag.nodes.get(`model.${compiled.projectName}.identity_edges`) : undefined;
    if (edges && runnable.has(edges.uniqueId) && 'relation' in edges) {
      // Before any node runs: without the key, honouring the tombstones is impossible, and a
      // half-built project (the nodes that do not read identity_edges) would be the result.
      await checkPrivacyKey(await sessionFor(0), prepared.dialect, edges.relation.database, prepared.privacyKey, 'building identity_edges');
    }
    await createSchemas(warehouse, dag, runnable);
    const results = await executeGraph(dag, runnable, {
      threads,
      failFast: flags.failFast ?? false,
      transparent: (node) => node.resourceType === 'model' && node.config.materialized === 'ephemeral',
      extraParents: testGates(dag, runnable),
      runNode: async (node, worker) => {
        const thread = `Thread-${worker + 1}`;
        logger.emit('NodeStarted', 'debug', `START ${describeNode(node)}`, { node_info: nodeInfo(node, 'started') }, thread);
        const startedAt = now();
        const t0 = performance.now();
        const base = { unique_id: node.uniqueId, thread_id: thread };
        try {
          const session = await sessionFor(worker);
          const outcome = await runOne(node, session, prepared, flags, warehouse);
          const timing: TimingEntry[] = [{ name: 'execute', started_at: startedAt, completed_at: now() }];
          return { ...base, timing, execution_time: (performance.now() - t0) / 1000, ...outcome };
        } catch (error) {
          const compiledPath = compiled.sql.has(node.uniqueId) ? artifacts.compiledPath(node) : undefined;
          return {
            ...base,
            status: 'error' as const,
            timing: [{ name: 'execute' as const, started_at: startedAt, completed_at: now() }],
            execution_time: (performance.now() - t0) / 1000,
            message: describeFailure(error, node, compiledPath),
            compiled_path: compiledPath,
          };
        }
      },
      skipped: (node, reason) => ({
        unique_id: node.uniqueId,
        status: 'skipped',
        timing: [],
        thread_id: 'main',
        execution_time: 0,
        message: reason,
      }),
      onResult: (result, node) => {
        done++;
        reportResult(logger, result, node, done, total);
      },
    });
    return { results, elapsedSeconds: (Date.now() - started) / 1000 };
  } finally {
    for (const session of sessions) await session?.close().catch(() => undefined);
    await warehouse.close();
  }
}

/**
 * A malformed CSV seed or file-backed source is a usage error found before anything runs (exit 2,
 * nothing loaded), whichever engine would load it: see csv-check.ts. A missing file is left to the
 * load, which names it.
 */
function checkCsvFiles(prepared: PreparedInvocation, runnable: ReadonlySet<string>): void {
  const problems: CdpError[] = [];
  for (const id of runnable) {
    const node = prepared.compiled.dag.get(id);
    if ((node.resourceType !== 'seed' && node.resourceType !== 'source') || node.format !== 'csv' || !existsSync(node.file!)) continue;
    const problem = csvProblem(node.file!);
    if (!problem) continue;
    const file = path.relative(prepared.project.config.root, node.file!).split(path.sep).join('/');
    problems.push(new ConfigError('csv-malformed', `${node.resourceType === 'seed' ? 'Seed' : 'Source'} file is not valid CSV: ${problem.message}`, {
      at: { file, line: problem.line },
      hint: 'Give every row one value per header column, and quote a value holding a comma, quote or line break as "…" with each quote inside doubled (""). Nothing was loaded.',
    }));
  }
  if (problems.length > 0) throw new ProblemsError(problems);
}

/**
 * Schemas are created once, up front and in sequence: concurrent `CREATE SCHEMA IF NOT EXISTS`
 * from several DuckDB connections conflict in the catalog.
 */
async function createSchemas(warehouse: Warehouse, dag: Dag, runnable: ReadonlySet<string>): Promise<void> {
  const schemas = new Map<string, { database?: string; schema: string }>();
  for (const id of runnable) {
    const node = dag.get(id);
    if ('relation' in node) schemas.set(`${node.relation.database ?? ''}.${node.relation.schema}`, node.relation);
  }
  if (schemas.size === 0) return;
  const session = await warehouse.session();
  try {
    for (const { database, schema } of schemas.values()) await session.execute(warehouse.dialect.createSchema(database, schema));
  } finally {
    await session.close();
  }
}

/**
 * In `cdp build`, a data test gates the models built on what it tests, as in dbt: each selected
 * child of a tested node also waits for the test, unless the child is one of the test's own
 * inputs (a relationships test reads its parent), which would be a cycle.
 */
function testGates(dag: Dag, runnable: ReadonlySet<string>): Map<string, string[]> {
  const gates = new Map<string, string[]>();
  // A gate child → test means the test must run before the child; it must not also (through
  // the DAG or earlier gates) come after it, or the schedule would wait forever.
  const waitsFor = (from: string, target: string): boolean => {
    const seen = new Set<string>();
    const stack = [from];
    while (stack.length > 0) {
      const id = stack.pop()!;
      if (id === target) return true;
      if (seen.has(id)) continue;
      seen.add(id);
      stack.push(...dag.parents(id), ...(gates.get(id) ?? []));
    }
    return false;
  };
  for (const id of runnable) {
    const test = dag.get(id);
    if (test.resourceType !== 'test' || !test.config.attachedTo) continue;
    for (const child of dag.children(test.config.attachedTo)) {
      if (child === id || !runnable.has(child) || dag.get(child).resourceType === 'test') continue;
      if (waitsFor(id, child)) continue;
      gates.set(child, [...(gates.get(child) ?? []), id]);
    }
  }
  return gates;
}

function referencedRelation(prepared: PreparedInvocation, ref: NodeReference): Relation | undefined {
  const { dag, projectName } = prepared.compiled;
  const id = ref.kind === 'ref'
    ? [`model.${projectName}.${ref.name}`, `seed.${projectName}.${ref.name}`].find((candidate) => dag.nodes.has(candidate))
    : `source.${projectName}.${ref.source}.${ref.table}`;
  const node = id ? dag.nodes.get(id) : undefined;
  if (!node || !('relation' in node)) return undefined;
  return node.resourceType === 'model' && node.config.materialized === 'ephemeral' ? undefined : node.relation;
}

function isRunnable(node: ManifestNode, types: ReadonlySet<ResourceType>): boolean {
  if (node.resourceType === 'source') return types.has('seed') && node.file !== undefined;
  if (node.resourceType === 'model' && (node.config.materialized === 'ephemeral' || node.config.materialized === 'destination')) return false;
  return types.has(node.resourceType);
}

type Outcome = Omit<NodeResult, 'unique_id' | 'thread_id' | 'timing' | 'execution_time'>;

async function runOne(node: ManifestNode, session: Session, prepared: PreparedInvocation, flags: ProjectFlags, warehouse: Warehouse): Promise<Outcome> {
  const { dialect, compiled, artifacts } = prepared;
  switch (node.resourceType) {
    case 'seed':
    case 'source':
      return loadSeed(node, warehouse, dialect);
    case 'model': {
      if (compiled.identity && node.uniqueId === `model.${compiled.projectName}.identity_edges`) {
        await checkEdgeSourceColumns(session, compiled.identity, (ref) => referencedRelation(prepared, ref));
        // executeInvocation checked the key before any node ran; this session only needs its pads.
        await loadCheckedPrivacyKey(session, dialect, prepared.privacyKey);
      }
      const identityEdges = compiled.identity ? compiled.dag.nodes.get(`model.${compiled.projectName}.identity_edges`) : undefined;
      const result = await materialize({
        session,
        dialect,
        node,
        runId: prepared.artifacts.invocationId,
        identity: compiled.identity && identityEdges && 'relation' in identityEdges ? { rules: compiled.identity, edges: identityEdges.relation } : undefined,
        fullRefresh: flags.fullRefresh ?? false,
        render: (isIncremental) => compiled.renderModel(node, isIncremental),
      });
      artifacts.writeExecutedSql(node, result.executed);
      return {
        status: 'success',
        message: `${node.config.materialized} ${dialect.quoteRelation(node.relation)}${result.rowsAffected !== undefined ? ` (${result.rowsAffected} rows)` : ''}`,
        rows_affected: result.rowsAffected,
        compiled_path: artifacts.compiledPath(node),
        relation_name: dialect.quoteRelation(node.relation),
      };
    }
    case 'test':
      return runTest(node, session, prepared);
  }
}

async function loadSeed(node: SeedNode | SourceNode, warehouse: Warehouse, dialect: Dialect): Promise<Outcome> {
  const result = await warehouse.loadFile(node.relation, node.file!, node.format!);
  return {
    status: 'success',
    message: `loaded ${path.basename(node.file!)} into ${dialect.quoteRelation(node.relation)}${result.rowsAffected !== undefined ? ` (${result.rowsAffected} rows)` : ''}`,
    rows_affected: result.rowsAffected,
    relation_name: dialect.quoteRelation(node.relation),
  };
}

async function runTest(node: TestNode, session: Session, prepared: PreparedInvocation): Promise<Outcome> {
  const sql = prepared.compiled.sql.get(node.uniqueId)!;
  const outcome = await runDataTest(session, prepared.dialect, node, sql);
  return {
    status: outcome.status,
    failures: outcome.failures,
    failing_rows: outcome.sample,
    message: outcome.failures === 0 ? 'pass' : `${outcome.failures} failing row(s)`,
    compiled_path: prepared.artifacts.compiledPath(node),
  };
}

function describeNode(node: ManifestNode): string {
  if (node.resourceType === 'model') {
    // Generator materializations (identity_edges, identity_graph) read better as their generator.
    const kind = node.config.materialized.startsWith('identity_') ? 'identity' : node.config.materialized;
    return `${kind} model ${node.name}`;
  }
  if (node.resourceType === 'test') return `test ${node.name}`;
  return `${node.resourceType} ${node.name}`;
}

function nodeInfo(node: ManifestNode, status: string): Record<string, unknown> {
  return { unique_id: node.uniqueId, node_path: node.path, resource_type: node.resourceType, node_status: status };
}

function describeFailure(error: unknown, node: ManifestNode, compiledPath: string | undefined): string {
  const base = checkFailureMessage(error) ?? (error instanceof CdpError ? error.message + (error.hint ? ` (hint: ${error.hint})` : '') : errorMessage(error));
  const where = error instanceof CdpError && error.at ? formatLocation(error.at) : node.path;
  return compiledPath ? `${base}\n  in ${where}, compiled SQL: ${compiledPath}` : `${base}\n  in ${where}`;
}

const STATUS_LABEL: Record<NodeResult['status'], string> = {
  success: 'OK',
  pass: 'PASS',
  fail: 'FAIL',
  warn: 'WARN',
  error: 'ERROR',
  skipped: 'SKIP',
};

function reportResult(logger: EventLogger, result: NodeResult, node: ManifestNode, index: number, total: number): void {
  const label = STATUS_LABEL[result.status];
  const head = `${String(index).padStart(String(total).length)} of ${total} ${label.padEnd(5)} ${describeNode(node)}`;
  const tail = result.status === 'skipped' ? '[SKIP]' : `[${label} in ${result.execution_time.toFixed(2)}s]`;
  const rows = (result.failing_rows ?? []).map((row) => `\n      ${JSON.stringify(row, jsonReplacer)}`).join('');
  const detail = result.status === 'success' || result.status === 'pass' || result.status === 'skipped' ? '' : `\n    ${result.message}${rows}`;
  const event = ({ success: 'NodeSucceeded', pass: 'TestPassed', fail: 'TestFailed', warn: 'TestWarned', error: 'NodeFailed', skipped: 'NodeSkipped' } as const)[result.status];
  const level = result.status === 'error' || result.status === 'fail' ? 'error' : result.status === 'warn' ? 'warn' : 'info';
  logger.emit(event, level === 'error' ? 'info' : level, `${head} ${'.'.repeat(Math.max(3, 72 - head.length))} ${tail}${detail}`, {
    node_info: nodeInfo(node, result.status),
    result,
  }, result.thread_id);
}
