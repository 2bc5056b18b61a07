import { describe, expect, it } from 'vitest';
import { idempotencyKey } from '../../src/sync/engine.js';
import { payloadExpression } from '../../src/sync/sql.js';
import type { Contract } from '../../src/sync/contract.js';
import { dialectFor } from '../../src/warehouse/engines.js';

const contract = (mapping: Contract['mapping']): Contract => ({ mapping } as Contract);

describe('sync SQL', () => {
  const d = dialectFor('duckdb');

  it('builds the payload in sorted field order whatever the mapping order', () => {
    const a = payloadExpression(d, contract([
      { target: 'email', column: 'email', transforms: ['trim', 'lower'] },
      { target: 'age', column: 'age', type: 'integer', transforms: [] },
    ]));
    const b = payloadExpression(d, contract([
      { target: 'age', column: 'age', type: 'integer', transforms: [] },
      { target: 'email', column: 'email', transforms: ['trim', 'lower'] },
    ]));
    expect(a).toBe(b);
    expect(a).toBe(`CAST(json_object('age', CAST(m."age" AS BIGINT), 'email', LOWER(CAST(TRIM(CAST(m."email" AS VARCHAR)) AS VARCHAR))) AS VARCHAR)`);
  });

  it('normalises before hashing, and quotes hostile names', () => {
    const sql = payloadExpression(d, contract([{ target: "it's", column: 'e"mail', transforms: ['sha256'] }]));
    expect(sql).toBe(`CAST(json_object('it''s', sha256(LOWER(TRIM(CAST(m."e""mail" AS VARCHAR))))) AS VARCHAR)`);
  });

  it('derives idempotency keys from destination, key and payload hash; a remove never equals the add', () => {
    expect(idempotencyKey('crm', '1', 'add', 'h')).toBe(idempotencyKey('crm', '1', 'change', 'h'));
    expect(idempotencyKey('crm', '1', 'add', 'h')).not.toBe(idempotencyKey('crm', '1', 'remove', 'h'));
    expect(idempotencyKey('crm', '1', 'add', 'h')).not.toBe(idempotencyKey('crm', '1', 'add', 'h2'));
    expect(idempotencyKey('crm', '1', 'add', 'h')).toMatch(/^[0-9a-f]{64}$/);
  });
});
