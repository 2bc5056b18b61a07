/**
 * Values that must never be printed: every secret resolved from profiles.yml is registered
 * here, and every line the CLI writes (logs, errors, artifacts) passes through `redact`.
 * Process-wide on purpose: a secret may surface from any layer's error message.
 */
const secrets = new Set<string>();

export const MASK = '****';

export function registerSecret(value: string): void {
  // Very short values would mask ordinary words; they are still never printed by us directly.
  if (value.length >= 4) secrets.add(value);
}

export function redact(text: string): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join(MASK);
  return out;
}

/** Warehouse values may be BigInt (DuckDB BIGINT, COUNT(*)); JSON has no such type. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  return value;
}

/**
 * Redacts every string inside a value before it is serialised: a secret with quotes, backslashes
 * or newlines (a PEM key) would no longer match once JSON-escaped.
 */
export function redactDeep<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (key, v: unknown) => {
    const plain = jsonReplacer(key, v);
    return typeof plain === 'string' ? redact(plain) : plain;
  })) as T;
}
