import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadIdentityRules } from '../../src/identity/rules.js';
import { REPO_ROOT } from '../helpers/project.js';

/** The split-rules example quoted in docs/identity.md, read by the real loader. */
describe('identity.yml split rules example', () => {
  it('loads into isolate and never_join rules', () => {
    const rules = loadIdentityRules(path.join(REPO_ROOT, 'test/fixtures/identity/split_rules.yml'));
    expect(rules.splits.map((s) => (s.kind === 'isolate' ? `isolate ${s.identifier.type}:${s.identifier.value}` : `never_join ${s.identifiers.map((i) => `${i.type}:${i.value}`).join(' ')}`))).toEqual([
      'isolate email:family@example.com',
      'never_join email:ana@example.com email:ben@example.com',
    ]);
    expect(rules.types.map((t) => [t.name, t.priority, t.limit])).toEqual([['user_id', 1, 1], ['email', 2, 5], ['phone', 3, 3]]);
  });
});
