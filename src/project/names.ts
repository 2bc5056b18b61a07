import { ConfigError, type SourceLocation } from '../errors.js';

/**
 * Names from user files become SQL identifiers. They are quoted by the Dialect anyway; this
 * rule additionally keeps them portable across engines (Snowflake case folding, BigQuery's
 * dataset rules) and makes an injection attempt fail loudly at load time.
 */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export function isValidName(name: string): boolean {
  return IDENTIFIER.test(name);
}

export function assertValidName(name: string, what: string, at: SourceLocation): string {
  if (!isValidName(name)) {
    throw new ConfigError('invalid-name', `${what} ${JSON.stringify(name)} is not a valid name`, {
      at,
      hint: 'Use letters, digits and underscores, starting with a letter or underscore (at most 128 characters).',
    });
  }
  return name;
}
