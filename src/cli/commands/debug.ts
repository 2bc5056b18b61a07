import type { Command } from 'commander';
import { errorMessage } from '../../errors.js';
import { findProfilesFile, loadProfile } from '../../project/profiles-file.js';
import { findProjectFile, loadProjectFile } from '../../project/project-file.js';
import { redact } from '../../project/secrets.js';
import type { Target } from '../../project/target.js';
import { dialectFor, openWarehouse } from '../../warehouse/engines.js';
import { CDP_VERSION } from '../../version.js';
import type { CommandContext } from '../context.js';
import { addProjectOptions, type CliFlags } from '../options.js';

interface DebugFlags extends CliFlags {
  json?: boolean;
  connection: boolean;
  timeout: string;
}

/** Cloud SDKs retry logins for minutes; `cdp debug` should answer quickly either way. */
async function withTimeout<T>(work: Promise<T>, seconds: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${seconds}s (raise it with --timeout)`)), seconds * 1000);
    timer.unref();
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Shows the resolved project and target (secrets masked) and proves the connection works. */
export function registerDebugCommand(program: Command, ctx: CommandContext): void {
  addProjectOptions(program.command('debug'), { selection: false })
    .description('show the resolved project and target, and check the connection')
    .option('--json', 'print the report as JSON')
    .option('--no-connection', 'only show the resolved configuration; do not connect')
    .option('--timeout <seconds>', 'give up on the connection check after this long', '30')
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
      let ok = !flags.connection;
      if (flags.connection) {
        try {
          report['warehouse_version'] = await withTimeout(checkConnection(profile.target), Number(flags.timeout) || 30);
          ok = true;
        } catch (error) {
          report['connection_error'] = redact(errorMessage(error));
        }
      }
      report['connection'] = !flags.connection ? 'not checked' : ok ? 'ok' : 'failed';
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
          !flags.connection
            ? 'connection: not checked (--no-connection)'
            : ok ? `connection: ok (${String(report['warehouse_version'])})` : `connection: FAILED: ${String(report['connection_error'])}`,
        ];
        for (const line of lines) ctx.out.write(redact(line));
      }
      ctx.exitCode = ok ? 0 : 1;
    });
}

async function checkConnection(target: Target): Promise<string> {
  const warehouse = await openWarehouse(target);
  try {
    const session = await warehouse.session();
    await session.query(dialectFor(target.type).pingQuery());
    await session.close();
    return await warehouse.version();
  } finally {
    await warehouse.close();
  }
}
