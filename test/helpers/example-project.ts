import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { TempProject, expectCode, output } from './project.js';

/** What the example projects' end-to-end tests share (test/e2e/example-*.test.ts). */

/** The example's committed data/ is byte for byte what the generator writes for it. */
export async function expectGeneratedData(exampleDir: string, generateInto: (dir: string) => Promise<unknown>): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cdp-example-data-'));
  try {
    await generateInto(dir);
    const committed = readdirSync(path.join(exampleDir, 'data')).sort();
    expect(committed).toEqual(readdirSync(dir).sort());
    for (const file of committed) expect(readFileSync(path.join(exampleDir, 'data', file), 'utf8'), file).toBe(readFileSync(path.join(dir, file), 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the CLI on the copied example: asserts the exit code and that no secret was printed; parses `--json` output. */
export async function runExample(p: TempProject, secrets: Record<string, string>, args: string[], code = 0): Promise<Record<string, any>> {
  const run = expectCode(await p.cdp(args), code);
  for (const secret of Object.values(secrets)) expect(output(run)).not.toContain(secret);
  return args.includes('--json') ? (JSON.parse(run.stdout) as Record<string, any>) : {};
}

/** A plan's or sync's per-destination entries, by destination name. */
export function byDestination(result: Record<string, any>): Record<string, any> {
  return Object.fromEntries((result['destinations'] as any[]).map((d) => [d.destination, d]));
}
