import { createHash, createHmac } from 'node:crypto';
import { ConfigError } from '../errors.js';
import { registerSecret } from '../project/secrets.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';
import { createPrivacySql, privacyRelation, tombstonesSql } from './tables.js';

/**
 * The project's privacy key: HMAC-SHA256 for tombstones and `token` fields. It comes from an
 * environment variable (`privacy.key_env` in cdp_project.yml, default CDP_PRIVACY_KEY) and is
 * never written anywhere: SQL reads it from a session table (Dialect.loadPrivacyKeySql).
 */
export const DEFAULT_PRIVACY_KEY_ENV = 'CDP_PRIVACY_KEY';
const MIN_KEY_LENGTH = 16;
const BLOCK_SIZE = 64;
const KEY_CHECK_INPUT = 'cdp privacy key check';

export interface PrivacyKey {
  /** The env var it is read from. */
  env: string;
  value?: string;
}

export function readPrivacyKey(keyEnv: string, env: NodeJS.ProcessEnv): PrivacyKey {
  const value = env[keyEnv];
  if (value === undefined || value === '') return { env: keyEnv };
  if (value.length < MIN_KEY_LENGTH) {
    throw new ConfigError('privacy-key-weak', `The privacy key in ${keyEnv} is ${value.length} characters long; it needs at least ${MIN_KEY_LENGTH}`, {
      hint: `Generate one, e.g. \`openssl rand -hex 32\`, and keep it in your secret store: every tombstone is keyed by it.`,
    });
  }
  registerSecret(value);
  return { env: keyEnv, value };
}

export function requireKey(key: PrivacyKey, purpose: string): string {
  if (key.value !== undefined) return key.value;
  throw new ConfigError('privacy-key-missing', `Environment variable ${key.env} is not set: ${purpose} needs the project's privacy key`, {
    hint: `Export ${key.env} (at least ${MIN_KEY_LENGTH} characters, from your secret store); cdp_project.yml can name another variable under privacy.key_env. Nothing was written.`,
  });
}

/** HMAC-SHA256 hex, the same function as Dialect.hmacSha256Hex (RFC 2104). */
export function hmacHex(key: string, text: string): string {
  return createHmac('sha256', key).update(text, 'utf8').digest('hex');
}

/** `<type>:<normalised value>`: what a tombstone hashes (docs/privacy.md). */
export function tombstoneHash(key: string, type: string, normalised: string): string {
  return hmacHex(key, `${type}:${normalised}`);
}

/** The inner and outer HMAC pads of a key, as hex (RFC 2104: keys longer than a block are hashed first). */
export function keyPads(key: string): { inner: string; outer: string } {
  let bytes = Buffer.from(key, 'utf8');
  if (bytes.length > BLOCK_SIZE) bytes = createHash('sha256').update(bytes).digest();
  const block = Buffer.alloc(BLOCK_SIZE);
  bytes.copy(block);
  const pads = { inner: Buffer.from(block.map((b) => b ^ 0x36)).toString('hex'), outer: Buffer.from(block.map((b) => b ^ 0x5c)).toString('hex') };
  registerSecret(pads.inner);
  registerSecret(pads.outer);
  return pads;
}

/**
 * Creates the ledger tables if needed and loads the key into the session. A key that differs
 * from the one the tombstones were made with would silently stop suppressing, so it is checked
 * against a fingerprint stored with the first request; with tombstones present, a missing key
 * is an error for the same reason.
 */
export async function loadPrivacyKey(session: Session, d: Dialect, database: string | undefined, key: PrivacyKey, purpose: string): Promise<void> {
  await checkPrivacyKey(session, d, database, key, purpose);
  await loadCheckedPrivacyKey(session, d, key);
}

/** Loads the key's pads into the session's TEMP table, for a key `checkPrivacyKey` already accepted in this invocation. */
export async function loadCheckedPrivacyKey(session: Session, d: Dialect, key: PrivacyKey): Promise<void> {
  const pads = key.value === undefined ? undefined : keyPads(key.value);
  await session.execute(d.loadPrivacyKeySql(pads?.inner ?? null, pads?.outer ?? null));
}

/**
 * Throws ConfigError when the key is missing while tombstones exist, or is not the key they were
 * made with; records the key's fingerprint with the first use. `cdp run` calls it before any node
 * runs, so a missing key stops the whole invocation (exit 2), not one node after others ran.
 */
export async function checkPrivacyKey(session: Session, d: Dialect, database: string | undefined, key: PrivacyKey, purpose: string): Promise<void> {
  for (const sql of createPrivacySql(d, database)) await session.execute(sql);
  const state = d.quoteRelation(privacyRelation(database, 'state'));
  const [check] = await session.query(`SELECT value FROM ${state} WHERE name = 'key_check'`);
  if (key.value === undefined) {
    const [row] = await session.query(`SELECT COUNT(*) AS n FROM (${tombstonesSql(d, database)}) AS t`);
    if (Number(row?.['n'] ?? 0) > 0) requireKey(key, `${purpose} (the project has ${Number(row?.['n'])} tombstone(s) to honour)`);
    return;
  }
  const fingerprint = hmacHex(key.value, KEY_CHECK_INPUT);
  if (check && String(check['value']) !== fingerprint) {
    throw new ConfigError('privacy-key-changed', `The privacy key in ${key.env} is not the key the existing tombstones were made with`, {
      hint: 'Restore the original key: with another one, deleted people would no longer be recognised when their data arrives again.',
    });
  }
  if (!check) await session.execute(`INSERT INTO ${state} (name, value) VALUES ('key_check', ${d.stringLiteral(fingerprint)})`);
}
