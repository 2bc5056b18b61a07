import Handlebars from 'handlebars';
import { CdpError, CompileError, type SourceLocation } from '../errors.js';
import { TEMPLATE_HELPERS, templateError } from './template-scan.js';

/**
 * Pass 2: render a model with relations resolved. Helpers are registered once per renderer and
 * read the per-model state from the render context, so one compiled template serves both the
 * `cdp compile` rendering and the runner's `is_incremental` re-rendering.
 */

export interface RenderState {
  file: string;
  resolveRef(name: string, at: SourceLocation): string;
  resolveSource(source: string, table: string, at: SourceLocation): string;
  vars: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  /** The quoted relation of the model itself: what `{{ this }}` prints. */
  self: string;
  isIncremental: boolean;
}

const STATE = Symbol('cdp-render-state');

/** Env vars and vars that look like secrets are refused in models: rendered SQL is written to disk. */
const SECRET_NAME = /SECRET|PASSWORD|TOKEN|PRIVATE_KEY|CREDENTIAL/i;

function refuseSecretName(kind: 'Env var' | 'Var', name: string, options: HelperOptions): void {
  if (!SECRET_NAME.test(name)) return;
  throw new CompileError(kind === 'Var' ? 'var-secret-in-model' : 'env-secret-in-model', `${kind} \`${name}\` looks like a secret and cannot be used in a model`, {
    at: at(options),
    hint: 'Compiled SQL is written to target/compiled. Reference secrets only in profiles.yml.',
  });
}

interface HelperOptions {
  data: { root: { [STATE]: RenderState } };
  loc: { start: { line: number; column: number } };
}

function stateOf(options: HelperOptions): RenderState {
  return options.data.root[STATE];
}

function at(options: HelperOptions): SourceLocation {
  return { file: stateOf(options).file, line: options.loc.start.line, column: options.loc.start.column + 1 };
}

function printable(value: unknown): string {
  return value !== null && typeof value === 'object' ? JSON.stringify(value) : String(value);
}

export class TemplateRenderer {
  private readonly hb = Handlebars.create();
  private readonly cache = new Map<string, HandlebarsTemplateDelegate>();
  private readonly parsed = new Map<string, hbs.AST.Program>();

  constructor() {
    this.hb.registerHelper('ref', (name: string, options: HelperOptions) => stateOf(options).resolveRef(name, at(options)));
    this.hb.registerHelper('source', (source: string, table: string, options: HelperOptions) =>
      stateOf(options).resolveSource(source, table, at(options)),
    );
    this.hb.registerHelper('is_incremental', (options: HelperOptions) => stateOf(options).isIncremental);
    this.hb.registerHelper('config', () => '');
    this.hb.registerHelper('var', (...args: unknown[]) => {
      const options = args.pop() as HelperOptions;
      const [name, fallback] = args as [string, unknown];
      refuseSecretName('Var', name, options);
      const vars = stateOf(options).vars;
      if (Object.hasOwn(vars, name)) return printable(vars[name]);
      if (args.length > 1) return printable(fallback);
      throw new CompileError('var-missing', `Required var \`${name}\` is not set`, {
        at: at(options),
        hint: `Set it under vars: in cdp_project.yml, pass --vars '{${name}: ...}', or give a default: {{ var "${name}" "default" }}.`,
      });
    });
    this.hb.registerHelper('env', (...args: unknown[]) => {
      const options = args.pop() as HelperOptions;
      const [name, fallback] = args as [string, unknown];
      refuseSecretName('Env var', name, options);
      const value = stateOf(options).env[name];
      if (value !== undefined) return value;
      if (args.length > 1) return printable(fallback);
      throw new CompileError('env-missing', `Environment variable ${name} is not set`, {
        at: at(options),
        hint: `Export ${name}, or give a default: {{ env "${name}" "default" }}.`,
      });
    });
  }

  /** Reuse the dependency scan's parse tree: parsing is a fifth of compile time at 1,000 models. */
  rememberParse(text: string, program: hbs.AST.Program): void {
    this.parsed.set(text, program);
  }

  render(text: string, state: RenderState): string {
    const template = this.template(text, state.file);
    // `{{ this }}` prints the render context itself, so the context stringifies to the model's relation.
    const context = { [STATE]: state, toString: () => state.self };
    try {
      return template(context);
    } catch (error) {
      if (error instanceof CdpError) throw error;
      throw templateError(error, state.file);
    }
  }

  private template(text: string, file: string): HandlebarsTemplateDelegate {
    let template = this.cache.get(text);
    if (!template) {
      try {
        template = this.hb.compile(this.parsed.get(text) ?? text, {
          noEscape: true,
          strict: true,
          knownHelpers: Object.fromEntries(TEMPLATE_HELPERS.map((h) => [h, true])),
        });
      } catch (error) {
        throw templateError(error, file);
      }
      this.cache.set(text, template);
    }
    return template;
  }
}
