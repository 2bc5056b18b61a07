import Handlebars from 'handlebars';
import { ConfigError, type SourceLocation } from '../errors.js';

export interface RenderedValue {
  value: string;
  /** True when the value came (at least partly) from an environment variable. */
  fromEnv: boolean;
}

/**
 * Renders `{{ env "NAME" }}` / `{{ env "NAME" "default" }}` in a profiles.yml value. Only the
 * `env` helper exists here, so a profile cannot reach anything else.
 */
export function renderEnvTemplate(text: string, at: SourceLocation, env: NodeJS.ProcessEnv = process.env): RenderedValue {
  if (!text.includes('{{')) return { value: text, fromEnv: false };
  const hb = Handlebars.create();
  let fromEnv = false;
  hb.registerHelper('env', (...args: unknown[]) => {
    const params = args.slice(0, -1);
    const name = params[0];
    if (typeof name !== 'string' || name.length === 0) {
      throw new ConfigError('env-bad-call', '`env` needs the variable name as a quoted string', { at, hint: 'Write {{ env "NAME" }}.' });
    }
    const value = env[name];
    if (value !== undefined) {
      fromEnv = true;
      return value;
    }
    if (typeof params[1] === 'string') return params[1];
    throw new ConfigError('env-missing', `Environment variable ${name} is not set`, {
      at,
      hint: `Export ${name} before running cdp, or give a default: {{ env "${name}" "default" }}.`,
    });
  });
  try {
    const value = hb.compile(text, { noEscape: true, strict: true, knownHelpers: { env: true }, knownHelpersOnly: true })({});
    return { value, fromEnv };
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError('env-template', `Bad template in value: ${(error as Error).message.split('\n')[0]}`, {
      at,
      hint: 'Only {{ env "NAME" }} and {{ env "NAME" "default" }} are allowed in profiles.yml.',
    });
  }
}
