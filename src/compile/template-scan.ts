import Handlebars from 'handlebars';
import { stringify } from 'yaml';
import { CompileError, ConfigError, type SourceLocation } from '../errors.js';
import { readConfigEntries, type PartialModelConfig } from '../project/project-file.js';
import { YamlValue } from '../project/yaml-reader.js';

/**
 * Pass 1 of dbt's two-pass design, done statically: walk the Handlebars AST and record every
 * `ref`, `source` and `config` call with its location, without rendering. Because the walk sees
 * every branch, a ref inside `{{#if (is_incremental)}}` is a dependency too, which dbt misses.
 * The price: arguments must be string literals (documented in docs/models.md).
 */

export const TEMPLATE_HELPERS = ['ref', 'source', 'var', 'env', 'is_incremental', 'config'] as const;
const BUILTIN_HELPERS = ['if', 'unless', 'each', 'with', 'lookup', 'log'];

export interface RefCall {
  name: string;
  at: SourceLocation;
}

export interface SourceCall {
  source: string;
  table: string;
  at: SourceLocation;
}

export interface TemplateScan {
  refs: RefCall[];
  sources: SourceCall[];
  config: PartialModelConfig;
}

type AstNode = hbs.AST.Node & Record<string, unknown>;
type CallNode = hbs.AST.MustacheStatement | hbs.AST.SubExpression | hbs.AST.BlockStatement;

export function parseTemplate(text: string, file: string): hbs.AST.Program {
  try {
    return Handlebars.parse(text);
  } catch (error) {
    const unclosed = unclosedTag(text);
    if (unclosed && /got '(EOF|INVALID)'/.test(String((error as Error).message))) {
      throw unclosedError(unclosed, file);
    }
    throw templateError(error, file);
  }
}

/**
 * Handlebars reports an unclosed `{{` where it gave up, often the end of the file; the useful
 * place is where the tag opened: the first `{{` with no `}}` before the next `{{`.
 */
function unclosedTag(text: string): { line: number; column: number } | undefined {
  let from = 0;
  for (;;) {
    const open = text.indexOf('{{', from);
    if (open < 0) return undefined;
    const close = text.indexOf('}}', open + 2);
    const next = text.indexOf('{{', open + 2);
    if (close < 0 || (next >= 0 && next < close)) {
      const before = text.slice(0, open).split('\n');
      return { line: before.length, column: before[before.length - 1]!.length + 1 };
    }
    from = close + 2;
  }
}

function unclosedError(at: { line: number; column: number }, file: string): CompileError {
  return new CompileError('template-error', 'Template error: `{{` is never closed', {
    at: { file, ...at },
    hint: 'Close the tag with `}}`.',
  });
}

/** Handlebars reports "Parse error on line N" or "... - line:col"; keep the location, drop the noise. */
export function templateError(error: unknown, file: string): CompileError {
  const message = error instanceof Error ? error.message : String(error);
  const parseLine = /Parse error on line (\d+)/.exec(message);
  const trailing = / - (\d+):(\d+)$/.exec(message.split('\n')[0]!);
  const line = parseLine ? Number(parseLine[1]) : trailing ? Number(trailing[1]) : undefined;
  const column = trailing ? Number(trailing[2]) + 1 : undefined;
  const firstLine = message.split('\n')[0]!.replace(/ - \d+:\d+$/, '');
  const expecting = /Expecting (.*), got '(.*)'/.exec(message);
  const detail = expecting ? `${firstLine.replace(/:$/, '')}: unexpected ${expecting[2]}` : firstLine;
  return new CompileError('template-error', `Template error: ${detail}`, {
    at: { file, line, column },
    hint: 'Check the {{ }} tags on that line: helpers are ref, source, var, env, this, is_incremental and config.',
  });
}

export function scanTemplate(program: hbs.AST.Program, file: string): TemplateScan {
  const scan: TemplateScan = { refs: [], sources: [], config: {} };
  const visit = (node: AstNode | undefined): void => {
    if (!node || typeof node !== 'object') return;
    if (node.type === 'MustacheStatement' || node.type === 'SubExpression' || node.type === 'BlockStatement') {
      recordCall(node as unknown as CallNode, file, scan);
    }
    for (const value of Object.values(node)) {
      if (Array.isArray(value)) value.forEach((v) => visit(v as AstNode));
      else if (value && typeof value === 'object' && 'type' in value) visit(value as AstNode);
    }
  };
  visit(program as unknown as AstNode);
  return scan;
}

function locationOf(node: hbs.AST.Node, file: string): SourceLocation {
  return { file, line: node.loc.start.line, column: node.loc.start.column + 1 };
}

function literalArgs(call: CallNode, file: string, helper: string): string[] {
  return call.params.map((param) => {
    if (param.type !== 'StringLiteral') {
      throw new CompileError('dynamic-helper-argument', `\`${helper}\` arguments must be quoted string literals`, {
        at: locationOf(call, file),
        hint: `Write {{ ${helper} "name" }}: dependencies are read before rendering, so they cannot be computed.`,
      });
    }
    return (param as hbs.AST.StringLiteral).value;
  });
}

function recordCall(call: CallNode, file: string, scan: TemplateScan): void {
  if (call.path.type !== 'PathExpression') return;
  const helper = (call.path as hbs.AST.PathExpression).original;
  const hasArgs = call.params.length > 0 || (call.hash?.pairs.length ?? 0) > 0;
  const at = locationOf(call, file);
  switch (helper) {
    case 'ref': {
      const args = literalArgs(call, file, helper);
      if (args.length !== 1) throw new CompileError('bad-ref', '`ref` takes exactly one model name', { at, hint: 'Write {{ ref "model_name" }}.' });
      scan.refs.push({ name: args[0]!, at });
      return;
    }
    case 'source': {
      const args = literalArgs(call, file, helper);
      if (args.length !== 2) {
        throw new CompileError('bad-source', '`source` takes a source name and a table name', { at, hint: 'Write {{ source "raw" "bookings" }}.' });
      }
      scan.sources.push({ source: args[0]!, table: args[1]!, at });
      return;
    }
    case 'config':
      Object.assign(scan.config, readConfigHash(call, file));
      return;
    default:
      if (hasArgs && !(TEMPLATE_HELPERS as readonly string[]).includes(helper) && !BUILTIN_HELPERS.includes(helper)) {
        throw new CompileError('unknown-helper', `Unknown helper \`${helper}\``, {
          at,
          hint: `Available helpers: ${TEMPLATE_HELPERS.join(', ')}, this (and Handlebars' if, unless, each, with).`,
        });
      }
  }
}

/** `{{ config materialized="table" unique_key="id" tags="a,b" }}`, validated by the same code as YAML config. */
function readConfigHash(call: CallNode, file: string): PartialModelConfig {
  const at = locationOf(call, file);
  const raw: Record<string, unknown> = {};
  for (const pair of call.hash?.pairs ?? []) {
    const value = pair.value;
    if (value.type !== 'StringLiteral' && value.type !== 'NumberLiteral' && value.type !== 'BooleanLiteral') {
      throw new CompileError('dynamic-helper-argument', `config \`${pair.key}\` must be a literal`, { at });
    }
    const literal = (value as hbs.AST.StringLiteral).value;
    raw[pair.key] = (pair.key === 'tags' || pair.key === 'unique_key') && typeof literal === 'string'
      ? literal.split(',').map((s) => s.trim()).filter(Boolean)
      : literal;
  }
  try {
    return readConfigEntries(YamlValue.parse(file, stringify(raw)).entries());
  } catch (error) {
    if (error instanceof ConfigError) throw new CompileError(error.code, `In {{ config }}: ${error.message}`, { at, hint: error.hint });
    throw error;
  }
}
