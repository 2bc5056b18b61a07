import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { isValidName } from '../../project/names.js';
import type { CommandContext } from '../context.js';
import { scaffoldFiles } from '../scaffold.js';

export function registerInitCommand(program: Command, ctx: CommandContext): void {
  program
    .command('init [dir]')
    .description('create a new project that builds on embedded DuckDB at once')
    .option('--name <name>', 'project name (default: the directory name)')
    .action((dir: string | undefined, flags: { name?: string }) => {
      const root = path.resolve(dir ?? '.');
      const name = flags.name ?? path.basename(root).replace(/[^A-Za-z0-9_]/g, '_').replace(/^(\d)/, '_$1');
      if (!isValidName(name)) {
        throw new ConfigError('invalid-name', `Project name ${JSON.stringify(name)} is not valid`, { hint: 'Pass --name with letters, digits and underscores.' });
      }
      if (existsSync(root) && readdirSync(root).length > 0) {
        throw new ConfigError('init-not-empty', `${root} is not empty; cdp init only writes into a new or empty directory`, {
          hint: 'Pick a new directory: cdp init my_project',
        });
      }
      for (const [file, text] of Object.entries(scaffoldFiles(name))) {
        const target = path.join(root, file);
        mkdirSync(path.dirname(target), { recursive: true });
        writeFileSync(target, text);
      }
      const relative = path.relative(process.cwd(), root);
      // Quoted for the shell: the directory may hold spaces or quotes. npx: cdp is not on PATH after npm install.
      ctx.out.write(`Created project ${name} in ${root}\nNext: ${relative ? `cd ${shellQuote(relative)} && ` : ''}npx cdp build`);
    });
}

function shellQuote(text: string): string {
  return /^[\w./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}
