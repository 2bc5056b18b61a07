import type { Contract } from './contract.js';
import type { SyncResult } from './engine.js';
import { WarehouseError } from '../errors.js';
import { SyncPlanError, type DestinationPlan, type OpCounts } from './plan.js';

/** Plan and sync output: text for the terminal, markdown for a pull-request comment. */

export interface PlanEntry {
  contract: Contract;
  plan?: DestinationPlan;
  error?: string;
}

/**
 * The message of an error that fails one destination alone (its plan, or SQL the warehouse
 * refused, which does not name the destination itself); undefined for any other error, which
 * stops the command.
 */
export function destinationFailure(destination: string, error: unknown): string | undefined {
  if (error instanceof WarehouseError) return `Destination \`${destination}\`: ${error.describe()}`;
  return error instanceof SyncPlanError ? error.describe() : undefined;
}

function counts(c: OpCounts): string {
  return `${c.add} add, ${c.change} change, ${c.remove} remove`;
}

function header(c: Contract): string {
  return `${c.name}: ${c.model} → ${c.type} \`${c.object}\` (mode ${c.mode}${c.consent.length > 0 ? `, consent ${c.consent.join(', ')}` : ''})`;
}

function notSent(plan: DestinationPlan, c: Contract): string[] {
  const lines: string[] = [];
  if (plan.mapping_changed) lines.push(`the mapping changed since the last sync: every synced row is re-sent (${plan.planned.change} change(s))`);
  if (plan.not_sent.change > 0) lines.push(`${plan.not_sent.change} change(s) not sent: mode ${c.mode} does not send changes`);
  if (plan.not_sent.remove > 0) lines.push(`${plan.not_sent.remove} row(s) left the model and stay at the destination (on_remove: ${c.onRemove})`);
  if (plan.quarantined > 0) lines.push(`${plan.quarantined} quarantined record(s) not counted: the sync sends each again once its payload changes`);
  if (plan.in_doubt > 0) lines.push(`${plan.in_doubt} record(s) in doubt not counted: a crashed run may have delivered them; \`cdp sync --resend-in-doubt\` sends them`);
  return lines;
}

export function planText(entries: PlanEntry[], target: string): string[] {
  const lines = [`Plan for target ${target}: ${entries.length} destination(s). Nothing is sent.`];
  for (const { contract: c, plan, error } of entries) {
    lines.push('', header(c));
    if (!plan) {
      lines.push(`  FAILED: ${error ?? 'unknown error'}`);
      continue;
    }
    lines.push(`  planned: ${counts(plan.planned)}${plan.removed_for_consent > 0 ? ` (${plan.removed_for_consent} remove(s) for lost consent)` : ''}`);
    if (c.consent.length > 0) lines.push(`  rejected before sending: ${plan.rejected.consent} row(s) without consent (${c.consent.join(', ')})`);
    for (const line of notSent(plan, c)) lines.push(`  ${line}`);
    for (const op of ['add', 'change', 'remove'] as const) {
      if (plan.samples[op].length === 0) continue;
      lines.push(`  sample ${op}s:`);
      for (const s of plan.samples[op]) {
        const tags = [...(s.reason ? [s.reason] : []), ...(s.sent === false ? ['not sent'] : [])];
        lines.push(`    ${s.primary_key}${tags.length > 0 ? ` [${tags.join(', ')}]` : ''} ${JSON.stringify(s.payload)}`);
      }
    }
  }
  return lines;
}

function md(text: string): string {
  return text.replace(/[|\\`*_<>]/g, (ch) => `\\${ch}`).replace(/\r?\n/g, ' ');
}

export function planMarkdown(entries: PlanEntry[], target: string): string[] {
  const lines = [
    `### cdp plan (target \`${target}\`)`,
    '',
    '| destination | model | type | mode | add | change | remove | removed for consent | rejected (consent) |',
    '| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const { contract: c, plan } of entries) {
    if (!plan) {
      lines.push(`| ${md(c.name)} | ${md(c.model)} | ${md(c.type)} | ${c.mode} | **failed** | | | | |`);
      continue;
    }
    lines.push(`| ${md(c.name)} | ${md(c.model)} | ${md(c.type)} | ${c.mode} | ${plan.planned.add} | ${plan.planned.change} | ${plan.planned.remove} | ${plan.removed_for_consent} | ${plan.rejected.consent} |`);
  }
  for (const { contract: c, plan, error } of entries) {
    if (!plan) {
      lines.push('', `**${md(c.name)} failed:** ${md(error ?? '')}`);
      continue;
    }
    const samples = (['add', 'change', 'remove'] as const).filter((op) => plan.samples[op].length > 0);
    const extra = notSent(plan, c);
    if (samples.length === 0 && extra.length === 0) continue;
    lines.push('', `<details><summary>${md(c.name)}: samples</summary>`, '');
    for (const line of extra) lines.push(`- ${md(line)}`);
    for (const op of samples) {
      lines.push('', `${op}:`, '', '```json');
      for (const s of plan.samples[op]) lines.push(JSON.stringify(s));
      lines.push('```');
    }
    lines.push('', '</details>');
  }
  return lines;
}

export function syncText(results: SyncResult[], errors: { destination: string; error: string; busy?: boolean }[]): string[] {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${r.destination}: ${r.status.toUpperCase()} (run ${r.run_id})`);
    lines.push(`  planned:   ${counts(r.planned)}${r.removed_for_consent > 0 ? ` (${r.removed_for_consent} remove(s) for lost consent)` : ''}`);
    lines.push(`  succeeded: ${counts(r.succeeded)}`);
    lines.push(`  failed:    ${counts(r.failed)}`);
    if (r.rejected_before_sending.consent > 0) lines.push(`  rejected before sending: ${r.rejected_before_sending.consent} row(s) without consent`);
    for (const j of r.rejections) lines.push(`  rejected ${j.op} ${j.primary_key}: ${j.reason}`);
    if (r.message) lines.push(`  ${r.message}`);
  }
  // The error itself goes to stderr (the CLI prints it there for every format), once.
  for (const e of errors) lines.push(`${e.destination}: ${e.busy ? 'BUSY (another sync holds its lock)' : 'FAILED'}, nothing sent (error below)`);
  return lines;
}
