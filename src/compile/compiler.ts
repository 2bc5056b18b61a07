import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { CompileError, ProblemsError, type CdpError, type SourceLocation } from '../errors.js';
import { assertValidName } from '../project/names.js';
import { folderConfigChain, type PartialModelConfig } from '../project/project-file.js';
import type { Project } from '../project/project.js';
import type { ColumnDecl, NodeReference, ResourceDecl, SourceTableDecl } from '../project/schema-file.js';
import { targetDatabase } from '../project/target.js';
import type { Dialect } from '../warehouse/dialect.js';
import { identityModels } from '../identity/generator.js';
import { goldenRecordFileOf, loadGoldenRecord } from '../profiles/rules.js';
import { profileModels } from '../profiles/generator.js';
import { audienceEnvironment, audienceFiles, audiencesDirOf, audiencesDirPath, duplicateAudience, loadAudience, type Audience } from '../audiences/rules.js';
import { audienceModels, membershipModel } from '../audiences/generator.js';
import { destinationNodes } from '../sync/destination-nodes.js';
import type { GeneratedModel } from './generated-model.js';
import { identityFileOf, loadIdentityRules, type IdentityRules } from '../identity/rules.js';
import { genericTestSql } from './generic-tests.js';
import { Dag } from './graph.js';
import type { ManifestNode, ModelConfig, ModelNode, Relation, SeedNode, SourceNode, TestNode } from './node.js';
import { didYouMean } from './suggest.js';
import { TemplateRenderer } from './template-render.js';
import { parseTemplate, scanTemplate, type RefCall, type SourceCall } from './template-scan.js';

/**
 * Project files → a validated DAG with every model and test rendered to SQL. Works offline:
 * it needs the target's Dialect, never a connection.
 */
export interface CompiledProject {
  projectName: string;
  /** identity.yml, when the project has one; the identity_graph materialization needs it. */
  identity?: IdentityRules;
  dag: Dag;
  /** Rendered SQL per node id (models and tests); `is_incremental` renders false here. */
  sql: Map<string, string>;
  /** Re-render one model, e.g. with `is_incremental` true at run time. */
  renderModel(node: ModelNode, isIncremental: boolean): string;
  /** What `ref`/`source` print for a node: a quoted relation, or an inlined subquery for ephemerals. */
  relationSql(id: string): string;
}

export function compileProject(project: Project, dialect: Dialect, env: NodeJS.ProcessEnv = process.env): CompiledProject {
  return new ProjectCompiler(project, dialect, env).compile();
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A file's content hash, read in chunks so a large seed is never held in memory whole. */
function fileSha256(file: string): string {
  const hash = createHash('sha256');
  const buffer = Buffer.alloc(1 << 20);
  const fd = openSync(file, 'r');
  try {
    for (let n = readSync(fd, buffer); n > 0; n = readSync(fd, buffer)) hash.update(buffer.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** JSON of a declaration without its source locations: they move when unrelated lines of the file do. */
function withoutLocations(value: unknown): string {
  return JSON.stringify(value, (key, v: unknown) => (key === 'at' ? undefined : v));
}

interface PendingModel {
  refs: RefCall[];
  sources: SourceCall[];
}

class ProjectCompiler {
  private readonly name: string;
  private readonly database: string | undefined;
  private readonly nodes = new Map<string, ManifestNode>();
  /** Model and seed names → unique id; both are addressable by `ref`. */
  private readonly refTargets = new Map<string, string>();
  private readonly sourceTargets = new Map<string, string>();
  private readonly pending = new Map<string, PendingModel>();
  private readonly problems: CdpError[] = [];
  private readonly renderer = new TemplateRenderer();
  private readonly sql = new Map<string, string>();
  private readonly yamlTexts = new Map<string, string>();
  private identity?: IdentityRules;
  private identityFile?: string;

  constructor(
    private readonly project: Project,
    private readonly dialect: Dialect,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.name = project.config.name;
    this.database = targetDatabase(project.profile.target);
  }

  compile(): CompiledProject {
    const modelDecls = this.collectDecls('models');
    const seedDecls = this.collectDecls('seeds');
    this.addSeeds(seedDecls);
    this.addSources();
    this.addModels(modelDecls);
    this.addIdentityModels();
    this.addProfileModels();
    this.addAudienceModels();
    this.failOnProblems();
    this.resolveDependencies();
    this.addDestinationNodes();
    this.addGenericTests(modelDecls, seedDecls);
    this.addCustomTests();
    this.failOnProblems();
    const dag = new Dag(this.nodes.values());
    for (const id of dag.topologicalOrder()) this.renderNode(dag.get(id));
    this.failOnProblems();
    return {
      projectName: this.name,
      identity: this.identity,
      dag,
      sql: this.sql,
      renderModel: (node, isIncremental) => this.renderModelSql(node, isIncremental),
      relationSql: (id) => this.relationSql(id),
    };
  }

  private failOnProblems(): void {
    if (this.problems.length > 0) throw new ProblemsError(this.problems.splice(0));
  }

  private relation(schema: string, name: string): Relation {
    return this.database ? { database: this.database, schema, name } : { schema, name };
  }

  private collectDecls(kind: 'models' | 'seeds'): Map<string, ResourceDecl> {
    const decls = new Map<string, ResourceDecl>();
    for (const schemaFile of this.project.schemaFiles) {
      for (const decl of schemaFile[kind]) {
        const previous = decls.get(decl.name);
        if (previous) {
          this.problems.push(new CompileError('duplicate-declaration', `${kind === 'models' ? 'Model' : 'Seed'} \`${decl.name}\` is declared twice`, {
            at: decl.at,
            hint: `It is also declared in ${previous.at.file}:${previous.at.line}. Keep one entry.`,
          }));
        }
        decls.set(decl.name, decl);
      }
    }
    return decls;
  }

  private claimName(name: string, id: string, path: string): boolean {
    const existing = this.refTargets.get(name);
    if (existing) {
      this.problems.push(new CompileError('duplicate-name', `Two resources are named \`${name}\``, {
        at: { file: path },
        hint: `\`${name}\` is also defined by ${this.nodes.get(existing)?.path}. Names must be unique across models and seeds; rename one file.`,
      }));
      return false;
    }
    this.refTargets.set(name, id);
    return true;
  }

  private addSeeds(decls: Map<string, ResourceDecl>): void {
    const target = this.project.profile.target;
    for (const seed of this.project.seeds) {
      const decl = decls.get(seed.name);
      const config = mergeConfigs([...folderConfigChain(this.project.config.seeds, seed.folders), decl?.config ?? {}]);
      const name = assertValidName(seed.name, 'Seed name', { file: seed.file });
      const node: SeedNode = {
        resourceType: 'seed',
        uniqueId: `seed.${this.name}.${name}`,
        name,
        path: seed.path,
        fqn: [this.name, ...seed.folders, name],
        tags: config.tags ?? [],
        description: decl?.description ?? '',
        dependsOn: [],
        // Content, not mtime: a fresh clone of the same commit must not flag every seed.
        checksum: sha256(`${fileSha256(seed.file)}:${JSON.stringify(config)}`),
        relation: this.relation(config.schema ?? target.schema, name),
        file: seed.file,
        format: seed.format,
      };
      if (this.claimName(name, node.uniqueId, seed.path)) this.nodes.set(node.uniqueId, node);
    }
    for (const [name, decl] of decls) {
      if (!this.refTargets.has(name)) {
        this.problems.push(new CompileError('seed-missing', `Seed \`${name}\` is declared but has no file`, {
          at: decl.at,
          hint: `Add ${name}.csv (or .parquet/.json) under ${this.project.config.seedPaths.join(', ')}, or remove the entry.`,
        }));
      }
    }
  }

  private addSources(): void {
    for (const schemaFile of this.project.schemaFiles) {
      for (const table of schemaFile.sources) {
        const key = `${table.sourceName}.${table.name}`;
        const id = `source.${this.name}.${key}`;
        if (this.nodes.has(id)) {
          this.problems.push(new CompileError('duplicate-source', `Source table \`${key}\` is declared twice`, { at: table.at }));
          continue;
        }
        const node: SourceNode = {
          resourceType: 'source',
          uniqueId: id,
          name: key,
          sourceName: table.sourceName,
          path: relativePath(this.project, schemaFile.file),
          fqn: [this.name, table.sourceName, table.name],
          tags: [],
          description: table.description,
          dependsOn: [],
          checksum: this.sourceChecksum(table),
          relation: this.relation(table.schema, table.name),
          file: table.file,
          format: table.format,
        };
        this.nodes.set(id, node);
        this.sourceTargets.set(key, id);
      }
    }
  }

  /**
   * The YAML entry with its file relative to the project (the absolute path differs per checkout),
   * plus the file's content: `cdp seed` loads a file-backed source like a seed.
   */
  private sourceChecksum(table: SourceTableDecl): string {
    if (!table.file) return sha256(withoutLocations(table));
    const content = existsSync(table.file) ? fileSha256(table.file) : 'missing';
    return sha256(`${withoutLocations({ ...table, file: relativePath(this.project, table.file) })}:${content}`);
  }

  private addModels(decls: Map<string, ResourceDecl>): void {
    const target = this.project.profile.target;
    for (const file of this.project.models) {
      try {
        const name = assertValidName(file.name, 'Model name', { file: file.path });
        const program = parseTemplate(file.text, file.path);
        this.renderer.rememberParse(file.text, program);
        const scan = scanTemplate(program, file.path);
        const decl = decls.get(name);
        const config = resolveModelConfig(
          [...folderConfigChain(this.project.config.models, file.folders), decl?.config ?? {}, scan.config],
          { file: file.path },
        );
        const node: ModelNode = {
          resourceType: 'model',
          uniqueId: `model.${this.name}.${name}`,
          name,
          path: file.path,
          fqn: [this.name, ...file.folders, name],
          tags: config.tags,
          description: decl?.description ?? '',
          dependsOn: [],
          checksum: sha256(file.text + JSON.stringify(config)),
          relation: this.relation(config.schema ?? target.schema, name),
          config,
          rawSql: file.text,
          columns: (decl?.columns ?? []).map((c) => ({ name: c.name, description: c.description })),
        };
        if (this.claimName(name, node.uniqueId, file.path)) {
          this.nodes.set(node.uniqueId, node);
          this.pending.set(node.uniqueId, { refs: scan.refs, sources: scan.sources });
        }
      } catch (error) {
        this.problems.push(error as CdpError);
      }
    }
    for (const [name, decl] of decls) {
      if (!this.refTargets.has(name)) {
        this.problems.push(new CompileError('model-missing', `Model \`${name}\` is declared in YAML but has no SQL file`, {
          at: decl.at,
          hint: `Create ${name}.sql under ${this.project.config.modelPaths.join(', ')}, or fix the name. ${didYouMean(name, this.refTargets.keys())}`.trim(),
        }));
      }
    }
  }

  /** identity.yml generates ordinary models (src/identity/generator.ts), compiled like user models. */
  private addIdentityModels(): void {
    const file = identityFileOf(this.project.config.root);
    if (!file) return;
    this.identityFile = file;
    try {
      this.identity = loadIdentityRules(file);
    } catch (error) {
      this.problems.push(error as CdpError);
      return;
    }
    const schema = this.project.profile.target.schema;
    this.addGeneratedModels('identity', file, this.userText([file]), identityModels(this.dialect, this.identity, (name) => this.relation(schema, name)));
  }

  /** golden_record.yml: the event timeline and traits (src/profiles/generator.ts); needs identity.yml. */
  private addProfileModels(): void {
    const file = goldenRecordFileOf(this.project.config.root);
    // identity.yml exists but is broken: its own error says so; "needs identity.yml" would mislead.
    if (!file || (this.identityFile !== undefined && this.identity === undefined)) return;
    try {
      const rules = loadGoldenRecord(file, this.identity);
      this.addGeneratedModels('profiles', file, this.userText([this.identityFile, file]), profileModels(this.dialect, rules, this.identity!));
    } catch (error) {
      this.problems.push(error as CdpError);
    }
  }

  /** audiences/*.yml: one model per audience plus the membership history (src/audiences/). */
  private addAudienceModels(): void {
    const names = this.addAudienceNodes();
    // Also with no audience file (or folder) left: its run closes the open rows of removed audiences.
    if (!this.refTargets.has('profile_traits')) return;
    // The membership model is made of the audiences' names alone.
    this.addGeneratedModels('audiences', audiencesDirPath(this.project.config.root), JSON.stringify([...names].sort()), [membershipModel(this.dialect, names)]);
  }

  /** One model per audience file; returns the names of the audiences that loaded. */
  private addAudienceNodes(): string[] {
    const dir = audiencesDirOf(this.project.config.root);
    if (!dir) return [];
    const files = audienceFiles(dir);
    if (files.length === 0) return [];
    const env = audienceEnvironment(this.project.config.root, this.identity, this.refTargets.has('consent_state'));
    // golden_record.yml exists but does not load: addProfileModels reported it already.
    if (!env) return [];
    const loaded = new Map<string, Audience>();
    for (const file of files) {
      try {
        if (!this.refTargets.has('profile_traits')) {
          throw new CompileError('audience-needs-profiles', 'Audiences select from profile_traits, which this project does not have', {
            at: { file: relativePath(this.project, file) },
            hint: 'Add golden_record.yml (and identity.yml) at the project root: see docs/golden-record.md.',
          });
        }
        const audience = loadAudience(file, env);
        const previous = loaded.get(audience.name);
        if (previous) throw duplicateAudience(audience, previous);
        loaded.set(audience.name, audience);
        // The trait catalog the audience is checked against comes from golden_record.yml and identity.yml.
        const input = this.userText([this.identityFile, goldenRecordFileOf(this.project.config.root), file]);
        this.addGeneratedModels('audiences', file, input, audienceModels(this.dialect, audience, env.traits));
      } catch (error) {
        this.problems.push(error as CdpError);
      }
    }
    return [...loaded.keys()];
  }

  /**
   * destinations/*.yml: one node per contract, validated by the loader `cdp plan` and `cdp sync`
   * use (src/sync/destination-nodes.ts). It depends on the model it reads, is never executed by
   * run/build, and compiles to the diff query `cdp plan` runs.
   */
  private addDestinationNodes(): void {
    const found = destinationNodes(this.project.config.root, new Dag(this.nodes.values()), this.name, this.dialect, (file) => relativePath(this.project, file));
    this.problems.push(...found.problems);
    for (const node of found.nodes) {
      this.nodes.set(node.uniqueId, node);
      this.sql.set(node.uniqueId, found.sql.get(node.uniqueId)!);
    }
  }

  /**
   * What generated models are made from, as the user wrote it: the project-relative path and text
   * of each YAML file. Their SQL is dialect- and target-specific, so hashing it would flag every
   * generated model when state from another target is compared (docs/selection.md).
   */
  private userText(files: (string | undefined)[]): string {
    return files
      .filter((file): file is string => file !== undefined)
      .map((file) => {
        let text = this.yamlTexts.get(file);
        if (text === undefined) this.yamlTexts.set(file, (text = readFileSync(file, 'utf8')));
        return `${relativePath(this.project, file)}\n${text}`;
      })
      .join('\0');
  }

  private addGeneratedModels(generator: string, file: string, userInput: string, models: GeneratedModel[]): void {
    const path = relativePath(this.project, file);
    const schema = this.project.profile.target.schema;
    for (const model of models) {
      const config: ModelConfig = { materialized: model.materialized, uniqueKey: [], incrementalStrategy: 'merge', tags: [generator] };
      const node: ModelNode = {
        resourceType: 'model',
        uniqueId: `model.${this.name}.${model.name}`,
        name: model.name,
        path,
        fqn: [this.name, generator, model.name],
        tags: config.tags,
        description: model.description,
        dependsOn: [],
        checksum: sha256(`${userInput}\0${model.name}\0${JSON.stringify(config)}`),
        relation: this.relation(schema, model.name),
        config,
        rawSql: model.template,
        columns: [],
      };
      try {
        const program = parseTemplate(model.template, path);
        this.renderer.rememberParse(model.template, program);
        const scan = scanTemplate(program, path);
        const at = { file: path };
        if (this.claimName(model.name, node.uniqueId, path)) {
          this.nodes.set(node.uniqueId, node);
          this.pending.set(node.uniqueId, { refs: [...scan.refs, ...model.extraRefs.map((name) => ({ name, at }))], sources: scan.sources });
        }
      } catch (error) {
        this.problems.push(error as CdpError);
      }
    }
  }

  private resolveDependencies(): void {
    for (const [id, pending] of this.pending) {
      const deps = new Set<string>();
      for (const ref of pending.refs) {
        const target = this.refTargets.get(ref.name);
        if (target) deps.add(target);
        else this.problems.push(this.missingRef(ref.name, ref.at));
      }
      for (const call of pending.sources) {
        const target = this.sourceTargets.get(`${call.source}.${call.table}`);
        if (target) deps.add(target);
        else this.problems.push(this.missingSource(call.source, call.table, call.at));
      }
      (this.nodes.get(id) as ModelNode | TestNode).dependsOn = [...deps];
    }
  }

  private missingRef(name: string, at: SourceLocation): CompileError {
    return new CompileError('ref-not-found', `ref \`${name}\` does not match any model or seed`, {
      at,
      hint: didYouMean(name, this.refTargets.keys()) || 'Check the model name (the SQL file name without .sql).',
    });
  }

  private missingSource(source: string, table: string, at: SourceLocation): CompileError {
    return new CompileError('source-not-found', `source \`${source}.${table}\` is not declared`, {
      at,
      hint: didYouMean(`${source}.${table}`, this.sourceTargets.keys()) || 'Declare it under sources: in a YAML file beside the models.',
    });
  }

  private resolveReference(ref: NodeReference, at: SourceLocation): string | undefined {
    if (ref.kind === 'ref') {
      const id = this.refTargets.get(ref.name);
      if (!id) this.problems.push(this.missingRef(ref.name, at));
      return id;
    }
    const id = this.sourceTargets.get(`${ref.source}.${ref.table}`);
    if (!id) this.problems.push(this.missingSource(ref.source, ref.table, at));
    return id;
  }

  private addGenericTests(modelDecls: Map<string, ResourceDecl>, seedDecls: Map<string, ResourceDecl>): void {
    const attach = (targetId: string | undefined, columns: ColumnDecl[]) => {
      if (!targetId) return;
      const target = this.nodes.get(targetId)!;
      for (const column of columns) {
        for (const test of column.tests) {
          const base = `${test.kind}_${target.name.replace('.', '_')}_${column.name}`;
          const parentId = test.kind === 'relationships' ? this.resolveReference(test.to, test.at) : undefined;
          if (test.kind === 'relationships' && !parentId) continue;
          const parentName = parentId ? this.nodes.get(parentId)!.name.replace('.', '_') : '';
          let name = test.kind === 'relationships' ? `${base}__${parentName}_${test.field}` : base;
          for (let n = 2; this.nodes.has(`test.${this.name}.${name}`); n++) name = `${base}_${n}`;
          const generic = test.kind === 'relationships'
            ? { kind: test.kind, target: targetId, column: column.name, to: parentId!, field: test.field }
            : test.kind === 'accepted_values'
              ? { kind: test.kind, target: targetId, column: column.name, values: test.values }
              : { kind: test.kind, target: targetId, column: column.name };
          const node: TestNode = {
            resourceType: 'test',
            uniqueId: `test.${this.name}.${name}`,
            name,
            path: test.at.file ? relativePath(this.project, test.at.file) : target.path,
            fqn: [this.name, name],
            tags: target.tags,
            description: '',
            dependsOn: parentId ? [targetId, parentId] : [targetId],
            checksum: sha256(JSON.stringify({ generic, severity: test.severity })),
            config: { severity: test.severity, attachedTo: targetId, testName: test.kind, column: column.name },
            generic,
          };
          this.nodes.set(node.uniqueId, node);
        }
      }
    };
    for (const [name, decl] of modelDecls) attach(this.refTargets.get(name), decl.columns);
    for (const [name, decl] of seedDecls) attach(this.refTargets.get(name), decl.columns);
    for (const schemaFile of this.project.schemaFiles) {
      for (const table of schemaFile.sources) attach(this.sourceTargets.get(`${table.sourceName}.${table.name}`), table.columns);
    }
  }

  private addCustomTests(): void {
    for (const file of this.project.tests) {
      try {
        const name = assertValidName(file.name, 'Test name', { file: file.path });
        const program = parseTemplate(file.text, file.path);
        this.renderer.rememberParse(file.text, program);
        const scan = scanTemplate(program, file.path);
        const deps = new Set<string>();
        for (const ref of scan.refs) {
          const id = this.resolveReference({ kind: 'ref', name: ref.name }, ref.at);
          if (id) deps.add(id);
        }
        for (const call of scan.sources) {
          const id = this.resolveReference({ kind: 'source', source: call.source, table: call.table }, call.at);
          if (id) deps.add(id);
        }
        const node: TestNode = {
          resourceType: 'test',
          uniqueId: `test.${this.name}.${name}`,
          name,
          path: file.path,
          fqn: [this.name, ...file.folders, name],
          tags: scan.config.tags ?? [],
          description: '',
          dependsOn: [...deps],
          checksum: sha256(file.text),
          config: { severity: scan.config.severity ?? 'error', attachedTo: [...deps][0], testName: 'custom' },
          rawSql: file.text,
        };
        this.nodes.set(node.uniqueId, node);
      } catch (error) {
        this.problems.push(error as CdpError);
      }
    }
  }

  private renderNode(node: ManifestNode): void {
    try {
      // A destination's compiled text (its plan SQL) is set by addDestinationNodes: its raw code is YAML.
      if (node.resourceType === 'model' && node.config.materialized === 'destination') return;
      if (node.resourceType === 'model') this.sql.set(node.uniqueId, this.renderModelSql(node, false));
      if (node.resourceType === 'test') this.sql.set(node.uniqueId, this.renderTestSql(node));
    } catch (error) {
      this.problems.push(error as CdpError);
    }
  }

  private renderModelSql(node: ModelNode, isIncremental: boolean): string {
    return this.renderer.render(node.rawSql, this.renderState(node.path, this.dialect.quoteRelation(node.relation), isIncremental));
  }

  private renderTestSql(node: TestNode): string {
    if (node.generic) {
      const spec = node.generic;
      return genericTestSql(this.dialect, spec, this.relationSql(spec.target), spec.kind === 'relationships' ? this.relationSql(spec.to) : undefined);
    }
    return this.renderer.render(node.rawSql!, this.renderState(node.path, '', false));
  }

  private renderState(file: string, self: string, isIncremental: boolean) {
    return {
      file,
      self,
      isIncremental,
      vars: this.project.vars,
      env: this.env,
      resolveRef: (name: string, at: SourceLocation) => {
        const id = this.refTargets.get(name);
        if (!id) throw this.missingRef(name, at);
        return this.relationSql(id);
      },
      resolveSource: (source: string, table: string, at: SourceLocation) => {
        const id = this.sourceTargets.get(`${source}.${table}`);
        if (!id) throw this.missingSource(source, table, at);
        return this.relationSql(id);
      },
    };
  }

  /** Ephemeral models are inlined as a parenthesised subquery: valid in FROM and JOIN on every engine we target. */
  private relationSql(id: string): string {
    const node = this.nodes.get(id)!;
    if (node.resourceType === 'model' && node.config.materialized === 'ephemeral') return `(\n${this.sql.get(id)}\n)`;
    if (node.resourceType === 'test') throw new Error(`a test has no relation: ${id}`);
    return this.dialect.quoteRelation(node.relation);
  }
}

function relativePath(project: Project, file: string): string {
  const root = project.config.root.endsWith('/') ? project.config.root : `${project.config.root}/`;
  return file.startsWith(root) ? file.slice(root.length) : file;
}

function mergeConfigs(layers: PartialModelConfig[]): PartialModelConfig {
  const merged: PartialModelConfig = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      // Tags accumulate down the folder tree, as in dbt; everything else is overridden.
      if (key === 'tags') merged.tags = [...new Set([...(merged.tags ?? []), ...(value as string[])])];
      else (merged as Record<string, unknown>)[key] = value;
    }
  }
  return merged;
}

export function resolveModelConfig(layers: PartialModelConfig[], at: SourceLocation): ModelConfig {
  const merged = mergeConfigs(layers);
  const config: ModelConfig = {
    materialized: merged.materialized ?? 'view',
    uniqueKey: merged.uniqueKey ?? [],
    incrementalStrategy: merged.incrementalStrategy ?? 'merge',
    tags: merged.tags ?? [],
    ...(merged.schema ? { schema: merged.schema } : {}),
  };
  if (config.materialized === 'incremental' && config.uniqueKey.length === 0) {
    throw new CompileError('incremental-needs-key', 'An incremental model needs a `unique_key`', {
      at,
      hint: 'Add unique_key to its config, e.g. {{ config materialized="incremental" unique_key="id" }}.',
    });
  }
  for (const key of config.uniqueKey) assertValidName(key, 'unique_key column', at);
  return config;
}

export function readSeedHeader(file: string): string {
  return readFileSync(file, 'utf8').split('\n', 1)[0] ?? '';
}
