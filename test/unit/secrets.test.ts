import { describe, expect, it } from 'vitest';
import { MASK, redact, redactDeep, registerSecret } from '../../src/project/secrets.js';

describe('secret redaction', () => {
  it('masks secrets with quotes, backslashes and newlines inside JSON values', () => {
    const password = 'pa"ss\\word-123';
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----';
    registerSecret(password);
    registerSecret(pem);
    const value = { message: `login failed for ${password}`, nested: [{ key: pem }], count: 3n };
    const json = JSON.stringify(redactDeep(value));
    expect(json).not.toContain('pa\\"ss');
    expect(json).not.toContain('MIIEvQIBADANBgkqhkiG9w0BAQEFAASC');
    expect(redactDeep(value)).toEqual({ message: `login failed for ${MASK}`, nested: [{ key: MASK }], count: 3 });
    expect(redact(`-- ${password}`)).toBe(`-- ${MASK}`);
  });
});
