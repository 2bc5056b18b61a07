import { Option, type Command } from 'commander';
import { RESOURCE_TYPES, type ResourceType } from '../../compile/node.js';
import { prepareInvocation } from '../../run/invocation.js';
import type { CommandContext } from '../context.js';
import { addProjectOptions, toProjectFlags, type CliFlags } from '../options.js';

interface LsFlags extends CliFlags {
  resourceType?: ResourceType[];
  output: 'name' | 'path' | 'selector' | 'json';
}

export function registerLsCommand(program: Command, ctx: CommandContext): void {
  addProjectOptions(program.command('ls').alias('list'), { execution: false })
    .description('list the selected nodes')
    .addOption(new Option('--resource-type <type...>', 'only these resource types').choices(RESOURCE_TYPES))
    .addOption(new Option('--output <format>', 'what to print per node').choices(['name', 'path', 'selector', 'json']).default('selector'))
    .action((flags: LsFlags) => {
      const logger = ctx.logger(flags.logFormat);
      const prepared = prepareInvocation(toProjectFlags(flags), logger, ctx.env);
      const dag = prepared.compiled.dag;
      for (const id of prepared.selected) {
        const node = dag.get(id);
        if (flags.resourceType && !flags.resourceType.includes(node.resourceType)) continue;
        const line = flags.output === 'json'
          ? JSON.stringify({ unique_id: node.uniqueId, name: node.name, resource_type: node.resourceType, path: node.path, tags: node.tags, depends_on: node.dependsOn })
          : flags.output === 'path' ? node.path : flags.output === 'name' ? node.name : node.fqn.join('.');
        ctx.out.write(line);
      }
    });
}
