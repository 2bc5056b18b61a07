import type { Command } from 'commander';
import { prepareInvocation } from '../../run/invocation.js';
import type { CommandContext } from '../context.js';
import { addProjectOptions, toProjectFlags, type CliFlags } from '../options.js';

export function registerCompileCommand(program: Command, ctx: CommandContext): void {
  addProjectOptions(program.command('compile'))
    .description('render every model and test to target/compiled/ (offline, for every target type)')
    .action((flags: CliFlags) => {
      const logger = ctx.logger(flags.logFormat);
      const prepared = prepareInvocation(toProjectFlags(flags), logger, ctx.env);
      const written = prepared.artifacts.writeCompiledSql(prepared.selected);
      const manifest = prepared.artifacts.writeManifest();
      logger.emit('ArtifactWritten', 'info', `Compiled ${written} node(s) for ${prepared.project.profile.target.type} into ${prepared.artifacts.compiledRoot()}/; manifest at ${manifest}`, {
        compiled: written,
        manifest,
      });
    });
}
