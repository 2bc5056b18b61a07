import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/project.js';

/**
 * Docs cannot rot: every fenced block preceded by `<!-- example: <path> -->` must equal that
 * file of the repo, and those files are built and tested by the e2e suites (the repo-root
 * project, the scaffold, test fixtures).
 */
const MARKER = /<!-- example: (\S+) -->\s*\n```[a-z]*\n([\s\S]*?)```/g;

function docFiles(): string[] {
  const docs = readdirSync(path.join(REPO_ROOT, 'docs'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f));
  return ['README.md', ...docs.sort()];
}

describe('documentation examples', () => {
  const cases = docFiles().flatMap((doc) => {
    const text = readFileSync(path.join(REPO_ROOT, doc), 'utf8');
    return [...text.matchAll(MARKER)].map((m) => ({ doc, file: m[1]!, block: m[2]! }));
  });

  it('has examples to check', () => {
    expect(cases.length).toBeGreaterThan(5);
  });

  it.each(cases)('$doc quotes $file verbatim', ({ file, block }) => {
    expect(block).toBe(readFileSync(path.join(REPO_ROOT, file), 'utf8'));
  });
});
