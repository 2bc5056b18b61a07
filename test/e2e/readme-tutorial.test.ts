import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, spawnCdp, type CliRun } from '../helpers/project.js';

/**
 * The README's tutorial, executed verbatim, so it cannot rot. README.md marks what a reader does:
 *
 *   <!-- tutorial-file: PATH -->   the fenced block after it is a file the reader writes, at PATH
 *                                  relative to the directory the tutorial is in at that point;
 *   <!-- tutorial-step -->         the fenced block after it holds shell lines the reader runs;
 *   <!-- tutorial-output -->       the fenced block after it is what the last command printed.
 *
 * Blocks run in the order they appear in README.md (the privacy section continues the
 * tutorial's project). Shell lines may only be `npx cdp …` (run through the built CLI, bin/cdp.js,
 * in a child process: exactly what npx runs), `cd DIR`, `export NAME=VALUE` and `cat FILES`,
 * joined by `&&`; anything else fails the test, so the README cannot ask a reader for a step this
 * runner does not check. Every `npx cdp` must exit 0.
 *
 * Shown output is checked line by line: each non-empty line must appear in what the command
 * printed (any order, whitespace runs compared as one space). `…` stands for text left out. Values
 * that differ on every run (profile ids, run ids, hashes, timestamps, durations) are replaced by
 * placeholders on both sides, so the README can show real output.
 */

type Block = { kind: 'file'; path: string; body: string } | { kind: 'step'; body: string } | { kind: 'output'; body: string };

const MARKER = /<!-- tutorial-(file: (\S+)|step|output) -->[ \t]*\n```[a-z]*\n([\s\S]*?)```/g;

function tutorialBlocks(readme: string): Block[] {
  return [...readme.matchAll(MARKER)].map((m): Block => {
    if (m[2] !== undefined) return { kind: 'file', path: m[2], body: m[3]! };
    return { kind: m[1] === 'step' ? 'step' : 'output', body: m[3]! };
  });
}

/** Splits a shell line into words: single and double quotes group, nothing is expanded. */
function words(line: string): string[] {
  const out: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === '"' || ch === "'") {
      const end = line.indexOf(ch, i + 1);
      if (end < 0) throw new Error(`unclosed quote in README line: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (/\s/.test(ch)) {
      if (word !== undefined) out.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + ch;
    }
  }
  if (word !== undefined) out.push(word);
  return out;
}

/** A line without its trailing `# comment` (a `#` that starts a word outside quotes). */
function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(0, i);
    }
  }
  return line;
}

/** Values that change on every run, replaced on both sides of the comparison. */
function normalise(text: string): string {
  return text
    .replace(/prf_[0-9a-f]{24}/g, 'prf_<id>')
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g, '<uuid>')
    .replace(/\b[0-9a-f]{64}\b/g, '<sha256>')
    .replace(/\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?/g, '<time>')
    .replace(/\b\d+(\.\d+)?s\b/g, '<n>s')
    .replace(/"deletion_propagation_latency_seconds": \d+/g, '"deletion_propagation_latency_seconds": <n>')
    .replace(/\s+/g, ' ')
    .trim();
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Every shown line appears in the actual output, each matched to a different line. */
function expectOutputShown(shown: string, actual: CliRun, command: string): void {
  const lines = actual.stdout.split('\n').map(normalise);
  const used = new Set<number>();
  for (const raw of shown.split('\n')) {
    const want = normalise(raw);
    if (want === '' || want === '…') continue;
    const pattern = new RegExp(`^${want.split('…').map(escapeRegExp).join('.*')}$`);
    const at = lines.findIndex((line, i) => !used.has(i) && pattern.test(line));
    if (at < 0) throw new Error(`README shows a line that \`${command}\` did not print:\n  ${raw}\n--- it printed\n${actual.stdout}\n--- stderr\n${actual.stderr}`);
    used.add(at);
  }
}

interface Executed {
  command: string;
  run: CliRun;
  /** For `npx cdp sync`: the outbox files it created, relative to the project. */
  newOutboxFiles: string[];
}

/** Runs the README's blocks in a fresh directory that stands in for the reader's clone. */
class TutorialRunner {
  readonly root = mkdtempSync(path.join(os.tmpdir(), 'cdp-readme-'));
  cwd = this.root;
  // The reader's shell starts without these: the tutorial must set what it needs.
  readonly env: NodeJS.ProcessEnv = { CDP_PRIVACY_KEY: undefined, CDP_PROJECT_DIR: undefined };
  readonly executed: Executed[] = [];

  run(blocks: Block[]): void {
    for (const block of blocks) {
      if (block.kind === 'file') {
        const file = path.join(this.cwd, block.path);
        mkdirSync(path.dirname(file), { recursive: true });
        writeFileSync(file, block.body);
      } else if (block.kind === 'step') {
        for (const line of block.body.split('\n')) {
          const commands = words(stripComment(line));
          while (commands.length > 0) {
            const split = commands.indexOf('&&');
            this.exec(split < 0 ? commands.splice(0) : commands.splice(0, split + 1).slice(0, -1));
          }
        }
      } else {
        const last = this.executed.at(-1);
        if (!last) throw new Error('README shows output before any tutorial command');
        expectOutputShown(block.body, last.run, last.command);
      }
    }
  }

  private exec(argv: string[]): void {
    const command = argv.join(' ');
    const [head, ...rest] = argv;
    if (head === 'cd' && rest.length === 1) {
      this.cwd = path.resolve(this.cwd, rest[0]!);
    } else if (head === 'export' && rest.length === 1 && rest[0]!.includes('=')) {
      const [name, value] = [rest[0]!.slice(0, rest[0]!.indexOf('=')), rest[0]!.slice(rest[0]!.indexOf('=') + 1)];
      // The one substitution the README uses: a fresh random key, as a reader would generate.
      this.env[name] = value === '$(openssl rand -hex 32)' ? randomBytes(32).toString('hex') : value;
      if (this.env[name]!.includes('$')) throw new Error(`the tutorial runner does not expand ${value}`);
    } else if (head === 'cat' && rest.length > 0) {
      const stdout = rest.flatMap((pattern) => this.glob(pattern)).map((f) => readFileSync(f, 'utf8')).join('');
      this.executed.push({ command, run: { code: 0, stdout, stderr: '' }, newOutboxFiles: [] });
    } else if (head === 'npx' && rest[0] === 'cdp') {
      const before = this.outboxFiles();
      const run = spawnCdp(rest.slice(1), this.cwd, this.env);
      if (run.code !== 0) throw new Error(`\`${command}\` (in ${this.cwd}) exited ${run.code}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`);
      this.executed.push({ command, run, newOutboxFiles: this.outboxFiles().filter((f) => !before.includes(f)) });
    } else {
      throw new Error(`the README tutorial runs \`${command}\`, which this test cannot execute; use npx cdp, cd, export or cat`);
    }
  }

  /** `dir/*.ext` style patterns: `*` in the last segment only. */
  private glob(pattern: string): string[] {
    const dir = path.resolve(this.cwd, path.dirname(pattern));
    const base = new RegExp(`^${path.basename(pattern).split('*').map(escapeRegExp).join('.*')}$`);
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => base.test(f)).sort() : [];
    if (files.length === 0) throw new Error(`cat ${pattern}: no such file in ${this.cwd}`);
    return files.map((f) => path.join(dir, f));
  }

  private outboxFiles(): string[] {
    const dir = path.join(this.cwd, 'target/outbox');
    return existsSync(dir) ? readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.jsonl')).map((f) => path.join('target/outbox', f)) : [];
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

interface OutboxLine {
  op: string;
  key: string;
  removal?: string;
  payload: { email?: string };
}

describe('README tutorial', () => {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const blocks = tutorialBlocks(readme);
  const runner = new TutorialRunner();
  afterAll(() => runner.cleanup());

  it('marks files, commands and output to execute', () => {
    const kinds = (k: Block['kind']) => blocks.filter((b) => b.kind === k).length;
    expect(kinds('file')).toBeGreaterThanOrEqual(5);
    expect(kinds('step')).toBeGreaterThanOrEqual(4);
    expect(kinds('output')).toBeGreaterThanOrEqual(4);
    // A marker the pattern above does not understand would silently drop a step.
    expect(readme.match(/<!-- tutorial-/g)?.length).toBe(blocks.length);
  });

  it('goes from `cdp init` to a synced audience, a consent revocation and a deletion request, as written', () => {
    runner.run(blocks);
    const commands = runner.executed.map((e) => e.command);
    expect(commands[0]).toBe('npx cdp init my_cdp');
    for (const step of ['npx cdp build', 'npx cdp audience preview big_spenders', 'npx cdp plan', 'npx cdp sync']) expect(commands).toContain(step);

    const project = runner.cwd;
    const linesOf = (files: string[]) =>
      files.flatMap((f) => readFileSync(path.join(project, f), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as OutboxLine));
    const syncs = runner.executed.filter((e) => e.command === 'npx cdp sync');
    expect(syncs).toHaveLength(3);

    // The tutorial's sync delivers the audience: the two customers with 50 or more who consented.
    const first = linesOf(syncs[0]!.newOutboxFiles);
    expect(syncs[0]!.newOutboxFiles).toHaveLength(1);
    expect(syncs[0]!.newOutboxFiles[0]).toMatch(/^target\/outbox\/big_spenders_outbox\/[0-9a-f-]+\.jsonl$/);
    expect(first.map((l) => [l.op, l.payload.email]).sort()).toEqual([['add', 'ana@example.com'], ['add', 'cleo@example.com']]);

    // Cleo revokes email consent: she leaves the audience and the next sync removes her.
    expect(linesOf(syncs[1]!.newOutboxFiles).map((l) => [l.op, l.removal, l.payload.email])).toEqual([['remove', 'delete', 'cleo@example.com']]);

    // Ana's deletion request: the next sync writes her erasure, and status reports it done.
    expect(linesOf(syncs[2]!.newOutboxFiles).map((l) => [l.op, l.removal, l.payload.email])).toEqual([['delete', 'erase', 'ana@example.com']]);
    const status = runner.executed.filter((e) => e.command.startsWith('npx cdp privacy status')).at(-1);
    const report = JSON.parse(status!.run.stdout) as { status: string; destinations: { destination: string; status: string }[]; deletion_propagation_latency_seconds: number };
    expect(report.status).toBe('done');
    expect(report.destinations).toEqual([expect.objectContaining({ destination: 'big_spenders_outbox', status: 'done' })]);
    expect(report.deletion_propagation_latency_seconds).toBeGreaterThanOrEqual(0);
    // Cleo left the audience because she revoked the scope the contract requires: her removal is a
    // consent propagation, measured from her revocation.
    const summary = spawnCdp(['privacy', 'status', '--json'], runner.cwd, runner.env);
    expect(JSON.parse(summary.stdout).consent_propagation_latency).toEqual([expect.objectContaining({ destination: 'big_spenders_outbox', count: 1 })]);
  });
});
