import type { Command } from 'commander';
import { errorMessage } from '../../errors.js';
import { findProfilesFile, loadProfile } from '../../project/profiles-file.js';
import { findProjectFile, loadProjectFile } from '../../project/project-file.js';
import { redact } from '../../project/secrets.js';
import { openWarehouse } from '../../warehouse/engines.js';
import { dialectFor } from '../../warehouse/engines.js';
import { CDP_VERSION } from '../../version.js';
import type { CommandContext } from '../context.js';
import { addProjectOptions, type CliFlags } from '../options.js';

interface DebugFlags extends CliFlags {
  json?: boolean;
}

/** Shows the resolved project and target (secrets masked) and proves the connection works. */
export function registerDebugCommand(program: Command, ctx: CommandContext): void {
  addProjectOptions(program.command('debug'), { selection: false })
    .description('show the resolved project and target, and check the connection')
    .option('--json', 'print the report as JSON')
    .action(async (flags: DebugFlags) => {
      const projectFile = findProjectFile(flags.projectDir);
      const project = loadProjectFile(projectFile);
      const profile = loadProfile(findProfilesFile(project.root, flags.profilesDir, ctx.env), flags.target, ctx.env);
      const report: Record<string, unknown> = {
        cdp_version: CDP_VERSION,
        node_version: process.version,
        project: { name: project.name, file: projectFile, model_paths: project.modelPaths, seed_paths: project.seedPaths },
        profiles_file: profile.file,
        target: { name: profile.target.name, ...profile.display },
      };
      let ok = false;
      try {
        const warehouse = await openWarehouse(profile.target);
        try {
          const session = await warehouse.session();
          await session.query(dialectFor(profile.target.type).pingQuery());
          await session.close();
          report['warehouse_version'] = await warehouse.version();
          ok = true;
        } finally {
          await warehouse.close();
        }
      } catch (error) {
        report['connection_error'] = redact(errorMessage(error));
      }
      report['connection'] = ok ? 'ok' : 'failed';
      if (flags.json) {
        ctx.out.write(redact(JSON.stringify(report, null, 2)));
      } else {
        const target = report['target'] as Record<string, unknown>;
        const lines = [
          `cdp ${CDP_VERSION} (node ${process.version})`,
          `project: ${project.name} (${projectFile})`,
          `profiles: ${profile.file}`,
          `target: ${profile.target.name}`,
          ...Object.entries(target).filter(([k]) => k !== 'name').map(([k, v]) => `  ${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`),
          ok ? `connection: ok (${String(report['warehouse_version'])})` : `connection: FAILED: ${String(report['connection_error'])}`,
        ];
        for (const line of lines) ctx.out.write(redact(line));
      }
      ctx.exitCode = ok ? 0 : 1;
    });
}
