import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError, errorMessage } from '../errors.js';
import type { SeedFormat } from '../compile/node.js';
import { findProfilesFile, loadProfile, type ResolvedProfile } from './profiles-file.js';
import { findProjectFile, loadProjectFile, type ProjectFile } from './project-file.js';
import { loadSchemaFile, seedFormatOf, type SchemaFile } from './schema-file.js';

export interface ProjectSourceFile {
  /** Absolute path. */
  file: string;
  /** Project-relative POSIX path, as shown to users and stored in the manifest. */
  path: string;
  /** Folders between the configured root (models/, tests/) and the file. */
  folders: string[];
  /** File name without extension. */
  name: string;
}

export interface SqlFile extends ProjectSourceFile {
  text: string;
}

export interface SeedFile extends ProjectSourceFile {
  format: SeedFormat;
}

export interface Project {
  config: ProjectFile;
  profile: ResolvedProfile;
  /** Project vars overridden by `--vars`. */
  vars: Record<string, unknown>;
  models: SqlFile[];
  tests: SqlFile[];
  seeds: SeedFile[];
  schemaFiles: SchemaFile[];
}

export interface LoadOptions {
  projectDir: string;
  profilesDir?: string;
  target?: string;
  /** The raw `--vars` YAML string. */
  vars?: string;
  env?: NodeJS.ProcessEnv;
}

export function loadProject(options: LoadOptions): Project {
  const config = loadProjectFile(findProjectFile(options.projectDir));
  const profile = loadProfile(findProfilesFile(config.root, options.profilesDir, options.env), options.target, options.env);
  const models = config.modelPaths.flatMap((dir) => listFiles(config.root, dir, ['.sql']));
  const yamlFiles = config.modelPaths.flatMap((dir) => listFiles(config.root, dir, ['.yml', '.yaml']));
  yamlFiles.push(...config.seedPaths.flatMap((dir) => listFiles(config.root, dir, ['.yml', '.yaml'])));
  return {
    config,
    profile,
    vars: { ...config.vars, ...parseCliVars(options.vars) },
    models: models.map(readSql),
    tests: config.testPaths.flatMap((dir) => listFiles(config.root, dir, ['.sql'])).map(readSql),
    seeds: config.seedPaths.flatMap((dir) => listFiles(config.root, dir, ['.csv', '.parquet', '.json', '.jsonl'])).map((f) => ({
      ...f,
      format: seedFormatOf(f.file)!,
    })),
    schemaFiles: yamlFiles.map((f) => loadSchemaFile(f.file, config.root)),
  };
}

export function parseCliVars(text: string | undefined): Record<string, unknown> {
  if (!text) return {};
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (error) {
    throw new ConfigError('bad-vars', `--vars is not valid YAML: ${errorMessage(error).split('\n')[0]}`, {
      hint: `Pass a YAML mapping, e.g. --vars '{days: 30, region: eu}'.`,
    });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError('bad-vars', '--vars must be a YAML mapping', { hint: `For example --vars '{days: 30}'.` });
  }
  return value as Record<string, unknown>;
}

function listFiles(root: string, dir: string, extensions: string[]): ProjectSourceFile[] {
  const base = path.resolve(root, dir);
  if (!existsSync(base)) return [];
  const entries = readdirSync(base, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && extensions.includes(path.extname(e.name).toLowerCase()))
    .map((e) => {
      const file = path.join(e.parentPath, e.name);
      const relToBase = path.relative(base, file).split(path.sep);
      return {
        file,
        path: path.relative(root, file).split(path.sep).join('/'),
        folders: relToBase.slice(0, -1),
        name: path.basename(e.name, path.extname(e.name)),
      };
    })
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function readSql(file: ProjectSourceFile): SqlFile {
  return { ...file, text: readFileSync(file.file, 'utf8') };
}
