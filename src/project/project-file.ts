import path from 'node:path';
import { existsSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { INCREMENTAL_STRATEGIES, MATERIALIZATIONS, type IncrementalStrategy, type Materialization, type Severity } from '../compile/node.js';
import { assertValidName } from './names.js';
import { YamlValue } from './yaml-reader.js';
import { DEFAULT_PRIVACY_KEY_ENV } from '../privacy/key.js';

export const PROJECT_FILE = 'cdp_project.yml';

/** Model settings that may come from folder defaults, a YAML sidecar or `{{ config }}`; all optional here. */
export interface PartialModelConfig {
  materialized?: Materialization;
  uniqueKey?: string[];
  incrementalStrategy?: IncrementalStrategy;
  tags?: string[];
  schema?: string;
  severity?: Severity;
}

/** `models:` in cdp_project.yml: `+key` entries apply to a folder and everything below it. */
export interface FolderDefaults {
  config: PartialModelConfig;
  folders: Map<string, FolderDefaults>;
}

export interface ProjectFile {
  file: string;
  root: string;
  name: string;
  modelPaths: string[];
  seedPaths: string[];
  testPaths: string[];
  targetPath: string;
  vars: Record<string, unknown>;
  models: FolderDefaults;
  seeds: FolderDefaults;
  /** `privacy.key_env`: the env var holding the privacy HMAC key (docs/privacy.md). */
  privacyKeyEnv: string;
}

const TOP_KEYS = ['name', 'version', 'config-version', 'model-paths', 'seed-paths', 'test-paths', 'target-path', 'vars', 'models', 'seeds', 'privacy'];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function findProjectFile(projectDir: string): string {
  const file = path.join(path.resolve(projectDir), PROJECT_FILE);
  if (!existsSync(file)) {
    throw new ConfigError('project-missing', `No ${PROJECT_FILE} in ${path.resolve(projectDir)}`, {
      hint: 'Run cdp from a project directory, pass --project-dir, or create a project with `cdp init`.',
    });
  }
  return file;
}

export function loadProjectFile(file: string): ProjectFile {
  const root = YamlValue.read(file).onlyKeys(TOP_KEYS);
  const name = assertValidName(root.child('name').string(), 'Project name', { file, line: root.child('name').line, key: 'name' });
  const paths = (key: string, fallback: string) => {
    const value = root.child(key);
    return value.exists ? value.stringList() : [fallback];
  };
  const vars: Record<string, unknown> = {};
  for (const [key, value] of root.child('vars').entries()) vars[key] = value.value;
  return {
    file,
    root: path.dirname(file),
    name,
    modelPaths: paths('model-paths', 'models'),
    seedPaths: paths('seed-paths', 'seeds'),
    testPaths: paths('test-paths', 'tests'),
    targetPath: root.child('target-path').string('target'),
    vars,
    models: readFolderDefaults(root.child('models')),
    seeds: readFolderDefaults(root.child('seeds')),
    privacyKeyEnv: readPrivacyKeyEnv(root.child('privacy')),
  };
}

function readPrivacyKeyEnv(privacy: YamlValue): string {
  if (!privacy.exists) return DEFAULT_PRIVACY_KEY_ENV;
  privacy.onlyKeys(['key_env']);
  const value = privacy.child('key_env');
  const name = value.string(DEFAULT_PRIVACY_KEY_ENV);
  if (!ENV_NAME.test(name)) throw value.error('privacy-key-env', `\`privacy.key_env\` must name an environment variable (letters, digits, _), got ${JSON.stringify(name)}`);
  return name;
}

const CONFIG_KEYS = ['materialized', 'unique_key', 'incremental_strategy', 'tags', 'schema', 'severity'];

/** Reads a `config:` mapping (sidecar) or `+key` entries (folder defaults) into a PartialModelConfig. */
export function readConfigEntries(entries: [string, YamlValue][]): PartialModelConfig {
  const config: PartialModelConfig = {};
  for (const [key, value] of entries) {
    switch (key) {
      case 'materialized':
        config.materialized = value.oneOf(MATERIALIZATIONS);
        break;
      case 'unique_key':
        config.uniqueKey = value.stringList();
        break;
      case 'incremental_strategy':
        config.incrementalStrategy = value.oneOf(INCREMENTAL_STRATEGIES);
        break;
      case 'tags':
        config.tags = value.stringList();
        break;
      case 'schema':
        config.schema = assertValidName(value.string(), 'Schema', { file: value.file, line: value.line, key: value.key });
        break;
      case 'severity':
        config.severity = value.oneOf(['error', 'warn'] as const);
        break;
      default:
        throw value.error('unknown-config', `Unknown config \`${key}\``, `Known config keys: ${CONFIG_KEYS.join(', ')}.`);
    }
  }
  return config;
}

function readFolderDefaults(node: YamlValue): FolderDefaults {
  const configEntries: [string, YamlValue][] = [];
  const folders = new Map<string, FolderDefaults>();
  for (const [key, value] of node.entries()) {
    if (key.startsWith('+')) configEntries.push([key.slice(1), value]);
    else folders.set(key, readFolderDefaults(value));
  }
  return { config: readConfigEntries(configEntries), folders };
}

/** Folder defaults for a file at `segments` (folders below the model path), outermost first. */
export function folderConfigChain(defaults: FolderDefaults, segments: string[]): PartialModelConfig[] {
  const chain = [defaults.config];
  let current: FolderDefaults | undefined = defaults;
  for (const segment of segments) {
    current = current.folders.get(segment);
    if (!current) break;
    chain.push(current.config);
  }
  return chain;
}
