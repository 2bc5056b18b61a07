import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { renderEnvTemplate } from './env-template.js';
import { assertValidName } from './names.js';
import { registerSecret } from './secrets.js';
import { SECRET_KEYS, TARGET_TYPES, type Target, type TargetType } from './target.js';
import { YamlValue } from './yaml-reader.js';

export const PROFILES_FILE = 'profiles.yml';

/** Where profiles.yml is looked up, in order: the flag, $CDP_PROFILES_DIR, the project, ~/.cdp. */
export function findProfilesFile(projectDir: string, profilesDir?: string, env: NodeJS.ProcessEnv = process.env): string {
  const candidates = profilesDir
    ? [path.resolve(profilesDir)]
    : [env['CDP_PROFILES_DIR'], projectDir, path.join(os.homedir(), '.cdp')].filter((d): d is string => !!d).map((d) => path.resolve(d));
  for (const dir of candidates) {
    const file = path.join(dir, PROFILES_FILE);
    if (existsSync(file)) return file;
  }
  throw new ConfigError('profiles-missing', `No ${PROFILES_FILE} found (looked in ${candidates.join(', ')})`, {
    hint: 'Create profiles.yml in the project directory (cdp init writes one), or pass --profiles-dir.',
  });
}

/** Checked in every target, selected or not: a committed plain-text secret is a leak either way. */
function rejectPlainSecrets(targets: YamlValue): void {
  for (const [, target] of targets.entries()) {
    for (const key of SECRET_KEYS) {
      const field = target.child(key);
      if (field.exists && !field.string().includes('{{')) {
        throw field.error('secret-literal', `\`${field.key}\` holds a secret written in plain text`, `Reference an environment variable instead: ${key}: '{{ env "CDP_${key.toUpperCase()}" }}'.`);
      }
    }
  }
}

const KEYS_BY_TYPE: Record<TargetType, readonly string[]> = {
  duckdb: ['type', 'path', 'schema', 'threads', 'settings'],
  bigquery: ['type', 'project', 'dataset', 'schema', 'location', 'keyfile', 'keyfile_json', 'threads', 'timeout_seconds'],
  snowflake: ['type', 'account', 'user', 'password', 'private_key', 'private_key_passphrase', 'role', 'warehouse', 'database', 'schema', 'threads'],
};

export interface ResolvedProfile {
  file: string;
  target: Target;
  /** The target as written, with secrets masked: what `cdp debug` shows. */
  display: Record<string, unknown>;
}

/**
 * Reads profiles.yml:
 *
 *   target: dev
 *   targets:
 *     dev: { type: duckdb, path: target/cdp.duckdb, schema: main, threads: 1 }
 */
export function loadProfile(file: string, targetName?: string, env: NodeJS.ProcessEnv = process.env): ResolvedProfile {
  const root = YamlValue.read(file).onlyKeys(['target', 'targets']);
  const targets = root.child('targets');
  if (!targets.exists) throw targets.error('missing-key', 'profiles.yml has no `targets`', 'Declare at least one target under `targets:`.');
  rejectPlainSecrets(targets);
  const name = targetName ?? root.child('target').string(targets.keys()[0] ?? 'dev');
  const node = targets.child(name);
  if (!node.exists) {
    throw new ConfigError('target-missing', `Target \`${name}\` is not defined in ${file}`, {
      at: { file, key: 'targets' },
      hint: `Defined targets: ${targets.keys().join(', ') || '(none)'}.`,
    });
  }
  const type = node.child('type').oneOf(TARGET_TYPES);
  node.onlyKeys(KEYS_BY_TYPE[type]);

  const display: Record<string, unknown> = {};
  let unsetCredential: ConfigError | undefined;
  const read = (key: string, fallback?: string): string | undefined => {
    const field = node.child(key);
    if (!field.exists) {
      if (fallback !== undefined) display[key] = fallback;
      return fallback;
    }
    const raw = field.string();
    const at = { file, line: field.line, key: field.key };
    const secret = SECRET_KEYS.has(key);
    let rendered;
    try {
      rendered = renderEnvTemplate(raw, at, env);
    } catch (error) {
      if (!secret || !(error instanceof ConfigError) || error.code !== 'env-missing') throw error;
      unsetCredential ??= error;
      display[key] = '(unset)';
      return undefined;
    }
    if (secret) registerSecret(rendered.value);
    display[key] = secret ? '****' : rendered.value;
    return rendered.value;
  };
  const required = (key: string): string => {
    const value = read(key);
    if (value === undefined || value === '') throw node.child(key).error('missing-key', `Target \`${name}\` (type ${type}) needs \`${key}\``);
    return value;
  };
  const threads = node.child('threads').integer(1, 1);
  display['type'] = type;
  display['threads'] = threads;
  const schemaAt = (key: string) => ({ file, line: node.child(key).line, key: node.child(key).key });

  let target: Target;
  switch (type) {
    case 'duckdb': {
      const rawPath = read('path', ':memory:')!;
      const settings: Record<string, string> = {};
      for (const [key, value] of node.child('settings').entries()) settings[key] = value.string();
      target = {
        type,
        name,
        threads,
        schema: assertValidName(read('schema', 'main')!, 'Schema', schemaAt('schema')),
        path: rawPath === ':memory:' ? rawPath : path.resolve(path.dirname(file), rawPath),
        settings,
      };
      break;
    }
    case 'bigquery': {
      const dataset = read('dataset') ?? read('schema');
      if (!dataset) throw node.error('missing-key', `Target \`${name}\` (type bigquery) needs \`dataset\``);
      target = {
        type,
        name,
        threads,
        project: required('project'),
        schema: assertValidName(dataset, 'Dataset', schemaAt('dataset')),
        location: read('location'),
        keyfile: read('keyfile'),
        keyfileJson: read('keyfile_json'),
        timeoutSeconds: node.child('timeout_seconds').integer(300, 1),
      };
      break;
    }
    case 'snowflake': {
      // Credentials are checked when connecting, not here: `cdp compile` must work offline without them.
      const password = read('password') || undefined;
      const privateKey = read('private_key') || undefined;
      target = {
        type,
        name,
        threads,
        account: required('account'),
        user: required('user'),
        password,
        privateKey,
        privateKeyPassphrase: read('private_key_passphrase'),
        role: read('role'),
        warehouse: required('warehouse'),
        database: required('database'),
        schema: assertValidName(required('schema'), 'Schema', schemaAt('schema')),
      };
      break;
    }
  }
  if (unsetCredential) target.unsetCredential = unsetCredential;
  return { file, target, display };
}
