import path from 'node:path';
import { ConfigError } from '../errors.js';
import { prepareInvocation, type PreparedInvocation, type ProjectFlags } from '../run/invocation.js';
import type { EventLogger } from '../run/events.js';
import { loadContracts, type Contract } from './contract.js';
import { selectContracts } from './select.js';

export interface PreparedSync {
  prepared: PreparedInvocation;
  contracts: Contract[];
  projectRoot: string;
}

/**
 * Loads and compiles the project, validates every destination contract (a bad contract fails
 * here, exit 2, before any connection), then applies --select / --exclude to the contracts.
 */
export function prepareSync(flags: ProjectFlags, logger: EventLogger, env: NodeJS.ProcessEnv): PreparedSync {
  // The selection names destinations as well as nodes, so it is applied here, not to the DAG.
  const prepared = prepareInvocation({ ...flags, select: undefined, exclude: undefined, state: undefined }, logger, env);
  const projectRoot = path.resolve(prepared.project.config.root);
  const all = loadContracts(projectRoot, prepared.compiled.dag, prepared.compiled.projectName);
  if (all.length === 0) {
    throw new ConfigError('no-destinations', `Project \`${prepared.compiled.projectName}\` has no destination contracts`, {
      hint: 'Add one YAML file per destination under destinations/ (docs/destinations.md).',
    });
  }
  const contracts = selectContracts(all, prepared.compiled.dag, prepared.compiled.projectName, flags.select, flags.exclude);
  if (contracts.length === 0) {
    throw new ConfigError('no-destinations-selected', `The selection (${[...(flags.select ?? []).map((s) => `--select ${s}`), ...(flags.exclude ?? []).map((s) => `--exclude ${s}`)].join(' ')}) matches no destination`, { hint: `Select a destination by name, or by the model it reads. Destinations: ${all.map((c) => c.name).join(', ')}.` });
  }
  return { prepared, contracts, projectRoot };
}
