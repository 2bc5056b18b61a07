import path from 'node:path';
import { ConfigError, ProblemsError } from '../errors.js';
import { YamlValue } from '../project/yaml-reader.js';
import { prepareInvocation, type PreparedInvocation, type ProjectFlags } from '../run/invocation.js';
import type { EventLogger } from '../run/events.js';
import { destinationFiles, destinationsDirOf, loadContract, type Contract } from './contract.js';
import { selectContracts } from './select.js';

export interface PreparedSync {
  prepared: PreparedInvocation;
  contracts: Contract[];
  projectRoot: string;
}

/**
 * Loads and compiles the project, validates every destination contract (a bad contract fails
 * here, exit 2, before any connection), then applies --select / --exclude to the contracts.
 * Only the selected contracts need their credentials' env vars, and only when the command will
 * connect to them (not `cdp sync history`).
 */
export function prepareSync(flags: ProjectFlags, logger: EventLogger, env: NodeJS.ProcessEnv, { credentials = true }: { credentials?: boolean } = {}): PreparedSync {
  // The selection names destinations as well as nodes, so it is applied here, not to the DAG.
  const prepared = prepareInvocation({ ...flags, select: undefined, exclude: undefined, state: undefined }, logger, env);
  const projectRoot = path.resolve(prepared.project.config.root);
  // Duplicate names were reported by the compile, which loads the same files.
  const dir = destinationsDirOf(projectRoot);
  const all = (dir ? destinationFiles(dir) : []).map((file) => loadContract(YamlValue.read(file), prepared.compiled.dag, prepared.compiled.projectName, { credentials: false }));
  if (all.length === 0) {
    throw new ConfigError('no-destinations', `Project \`${prepared.compiled.projectName}\` has no destination contracts`, {
      hint: 'Add one YAML file per destination under destinations/ (docs/destinations.md).',
    });
  }
  const contracts = selectContracts(all, prepared.compiled.dag, prepared.compiled.projectName, flags.select, flags.exclude);
  if (contracts.length === 0) {
    throw new ConfigError('no-destinations-selected', `The selection (${[...(flags.select ?? []).map((s) => `--select ${s}`), ...(flags.exclude ?? []).map((s) => `--exclude ${s}`)].join(' ')}) matches no destination`, { hint: `Select a destination by name, or by the model it reads. Destinations: ${all.map((c) => c.name).join(', ')}.` });
  }
  // `cdp sync history` reads state only: it never connects to a destination.
  if (credentials) requireCredentials(contracts);
  return { prepared, contracts, projectRoot };
}

/** Every unset credential env var of the given contracts at once, each with its file and key. */
function requireCredentials(contracts: Contract[]): void {
  const problems = contracts.flatMap((contract) => contract.connector.validateOptions(contract.options)
    .filter((p) => p.credentialUnset)
    // Re-read for the key's line: only on this failure path.
    .map((p) => YamlValue.read(contract.file).child('options').child(p.key).error('destination-option', `\`options.${p.key}\` ${p.message}`)));
  if (problems.length > 0) throw new ProblemsError(problems);
}
