import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hmacHex, keyPads, tombstoneHash } from '../../src/privacy/key.js';
import { readRequestsFile } from '../../src/privacy/requests.js';
import { DuckDbDialect } from '../../src/warehouse/duckdb-dialect.js';
import { DuckDbWarehouse } from '../../src/warehouse/duckdb-warehouse.js';
import type { Session } from '../../src/warehouse/warehouse.js';
import { TempProject } from '../helpers/project.js';

/** The keyed hash computed in SQL (suppression, token fields) must equal Node's (filing): RFC 2104 HMAC-SHA256. */
const d = new DuckDbDialect();
let warehouse: DuckDbWarehouse;
let session: Session;

beforeAll(async () => {
  warehouse = await DuckDbWarehouse.open({ type: 'duckdb', name: 'test', schema: 'main', threads: 1, path: ':memory:', settings: {} });
  session = await warehouse.session();
});
afterAll(async () => {
  await session.close();
  await warehouse.close();
});

async function sqlHmac(key: string, text: string): Promise<string> {
  const pads = keyPads(key);
  await session.execute(d.loadPrivacyKeySql(pads.inner, pads.outer));
  const [row] = await session.query(`SELECT ${d.hmacSha256Hex(d.stringLiteral(text))} AS h`);
  return String(row!['h']);
}

describe('HMAC-SHA256 in SQL and in Node', () => {
  const keys = ['a-sixteen-char-k', 'k'.repeat(64), 'a key longer than one 64-byte block, which RFC 2104 hashes first: ' + 'x'.repeat(40), 'clé-ünïcødé-0123456'];
  const texts = ['email:ana@example.com', 'phone:+351912345678', '', 'ü ß 中文', "quote ' and \\ backslash"];
  for (const key of keys) {
    for (const text of texts) {
      it(`${key.length}-char key, ${JSON.stringify(text)}`, async () => {
        const expected = createHmac('sha256', key).update(text, 'utf8').digest('hex');
        expect(hmacHex(key, text)).toBe(expected);
        expect(await sqlHmac(key, text)).toBe(expected);
      });
    }
  }

  it('hashes `<type>:<normalised value>` for tombstones', () => {
    expect(tombstoneHash('a-sixteen-char-k', 'email', 'ana@example.com')).toBe(createHmac('sha256', 'a-sixteen-char-k').update('email:ana@example.com').digest('hex'));
  });

  it('without a key, the SQL hash is NULL (the guard then refuses to run with tombstones)', async () => {
    await session.execute(d.loadPrivacyKeySql(null, null));
    const [row] = await session.query(`SELECT ${d.hmacSha256Hex("'x'")} AS h`);
    expect(row!['h']).toBeNull();
  });
});

describe('requests files', () => {
  const types = ['email', 'phone'];
  it('reads JSON Lines and quoted CSV, and names the bad line', () => {
    const p = new TempProject({
      'ok.jsonl': '{"identifier": "email:a@example.com", "request_id": "r1", "reason": "art. 17"}\n\n{"identifier": "phone:+351911111111"}\n',
      'ok.csv': 'identifier,request_id,reason\nemail:b@example.com,r2,"by mail, signed ""yes"""\n',
      'dup.jsonl': '{"identifier": "email:a@example.com", "request_id": "r1"}\n{"identifier": "email:c@example.com", "request_id": "r1"}\n',
      'header.csv': 'email\nemail:a@example.com\n',
      'fields.csv': 'identifier,reason\nemail:a@example.com,x,y\n',
      'noid.jsonl': '{"reason": "x"}\n',
    });
    try {
      const jsonl = readRequestsFile(p.path('ok.jsonl'), types);
      expect(jsonl.map((r) => [r.requestId.startsWith('del_') ? 'generated' : r.requestId, r.type, r.reason, r.at.line])).toEqual([['r1', 'email', 'art. 17', 1], ['generated', 'phone', undefined, 3]]);
      expect(readRequestsFile(p.path('ok.csv'), types)[0]).toMatchObject({ requestId: 'r2', type: 'email', value: 'b@example.com', reason: 'by mail, signed "yes"' });
      expect(() => readRequestsFile(p.path('dup.jsonl'), types)).toThrow(/appears twice \(also line 1\)/);
      expect(() => readRequestsFile(p.path('header.csv'), types)).toThrow(/header must name `identifier`/);
      expect(() => readRequestsFile(p.path('fields.csv'), types)).toThrow(/3 field\(s\); the header has 2/);
      expect(() => readRequestsFile(p.path('noid.jsonl'), types)).toThrow(/no `identifier`/);
    } finally {
      p.cleanup();
    }
  });
});
