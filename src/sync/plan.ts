import { CdpError, ExitCode } from '../errors.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { RelationInfo, Session } from '../warehouse/warehouse.js';
import type { Contract } from './contract.js';
import { diffSql, duplicateExamplesSql, keyViolationsSql, planCountsSql, planSummarySql, inDoubtPredicate, quarantinedPredicate, staleFingerprintsSql, stateRelation, type DiffInputs } from './sql.js';
import { privacyRelation } from '../privacy/tables.js';
import { DEFAULT_PRIVACY_KEY_ENV, loadPrivacyKey, requireKey, type PrivacyKey } from '../privacy/key.js';

/** The plan of one destination cannot be made (model not built, bad keys, missing columns): nothing is sent. */
export class SyncPlanError extends CdpError {
  override readonly exitCode: ExitCode = ExitCode.nodeFailed;
}

export type Op = 'add' | 'change' | 'remove';
export type OpCounts = Record<Op, number>;

export interface PlanSample {
  primary_key: string;
  payload: unknown;
  reason?: string;
  /** Present (false) for a difference the contract's mode does not send (`not_sent`). */
  sent?: false;
}

export interface DestinationPlan {
  destination: string;
  model: string;
  type: string;
  object: string;
  mode: string;
  /** What will be sent. */
  planned: OpCounts;
  /** Of the planned removes, those whose profile lost the contract's consent. */
  removed_for_consent: number;
  /** Of the planned removes, rows that left the model (what `max_removes` limits). */
  removed_left_model: number;
  /** Rows rejected before sending: in the model, but not sent. */
  rejected: {
    /** Profiles without the required consent that were never sent. */
    consent: number;
  };
  /** The mapping differs from the last planned sync's: every synced row still in the model is re-sent as a change. */
  mapping_changed: boolean;
  /** Differences the contract's mode does not send (e.g. changes in `insert` mode, removes with `on_remove: nothing`). */
  not_sent: OpCounts;
  /** Differences the sync will hold back, not counted in `planned`: quarantined (same op and payload as when quarantined). */
  quarantined: number;
  /** ...and, for a destination that cannot deduplicate, records a crashed run may have delivered (sent again only with --resend-in-doubt). */
  in_doubt: number;
  samples: Record<Op, PlanSample[]>;
}

const SAMPLE_SIZE = 3;
const ERASED = '(withheld: deletion request)';

function num(value: unknown): number {
  return value === null || value === undefined ? 0 : Number(value);
}

/**
 * Checks that can fail a plan before any diff: the model is built and has the mapped columns
 * (schema drift), profile_id when consent is required, and no null or duplicate primary key.
 */
export async function preflight(session: Session, d: Dialect, contract: Contract, privacyKey?: PrivacyKey): Promise<DiffInputs> {
  const at = { file: contract.file };
  if (contract.usesToken) {
    const key = privacyKey ?? { env: DEFAULT_PRIVACY_KEY_ENV };
    requireKey(key, `destination \`${contract.name}\` (a field mapped through \`token\`)`);
    await loadPrivacyKey(session, d, contract.relation.database, key, `destination \`${contract.name}\``);
  }
  const info = await session.describe(contract.relation);
  if (!info) {
    throw new SyncPlanError('destination-model-not-built', `Destination \`${contract.name}\`: model \`${contract.model}\` is not built (${d.quoteRelation(contract.relation)} does not exist)`, {
      at: { ...at, key: 'model' },
      hint: `Run \`cdp build --select +${contract.model}\` first.`,
    });
  }
  const columns = new Set(info.columns.map((c) => c.name.toLowerCase()));
  const needed: [string, string][] = [[contract.primaryKey, 'primary_key'], ...contract.mapping.map((f): [string, string] => [f.column, `mapping.${f.target}`])];
  if (contract.consent.length > 0) needed.push(['profile_id', 'consent']);
  const missing = needed.filter(([column]) => !columns.has(column.toLowerCase()));
  if (missing.length > 0) {
    throw new SyncPlanError('destination-column-missing', `Destination \`${contract.name}\`: model \`${contract.model}\` has no column ${missing.map(([c, key]) => `\`${c}\` (${key})`).join(', ')}; nothing was sent`, {
      at: { ...at, key: missing[0]![1] },
      hint: `Columns of ${contract.model}: ${info.columns.map((c) => c.name).join(', ')}.${contract.consent.length > 0 && missing.some(([, k]) => k === 'consent') ? ' A contract with `consent` reads profile_id to check it.' : ''}`,
    });
  }
  const [violations] = await session.query(keyViolationsSql(d, contract));
  const nulls = num(violations?.['null_keys']);
  const duplicates = num(violations?.['duplicate_keys']);
  if (nulls > 0 || duplicates > 0) {
    const examples = duplicates > 0 ? await session.query(duplicateExamplesSql(d, contract)) : [];
    const parts = [
      ...(nulls > 0 ? [`${nulls} row(s) with a NULL primary key`] : []),
      ...(duplicates > 0 ? [`${duplicates} duplicated primary key(s), e.g. ${examples.map((r) => `${JSON.stringify(String(r['primary_key']))} (${num(r['n'])} rows)`).join(', ')}`] : []),
    ];
    throw new SyncPlanError('destination-bad-keys', `Destination \`${contract.name}\`: model \`${contract.model}\` has ${parts.join(' and ')} in \`${contract.primaryKey}\`; nothing was planned or sent`, {
      at: { ...at, key: 'primary_key' },
      hint: 'The primary key must be unique and not NULL: fix the model, or choose another `primary_key`.',
    });
  }
  const columnTypes = Object.fromEntries(info.columns.map((c) => [c.name.toLowerCase(), c.type]));
  const snapshots = await session.describe(stateRelation(contract.relation.database, 'snapshots'));
  return {
    snapshotsExist: snapshots !== undefined,
    columnTypes,
    fingerprints: await fingerprintState(session, d, contract, snapshots, columnTypes),
    hasProfileId: columns.has('profile_id'),
    privacyLedger: (await session.describe(privacyRelation(contract.relation.database, 'request_profiles'))) !== undefined,
    consentSetAt: contract.consentRelation !== undefined && ((await session.describe(contract.consentRelation))?.columns.some((c) => c.name.toLowerCase() === 'set_at') ?? false),
    mappingChanged: await mappingChanged(session, d, contract),
  };
}

/** Whether the destination's snapshot rows all carry a fingerprint of the current version (DiffInputs.fingerprints). */
async function fingerprintState(session: Session, d: Dialect, contract: Contract, snapshots: RelationInfo | undefined, columnTypes: Record<string, string>): Promise<DiffInputs['fingerprints']> {
  if (snapshots === undefined) return 'current';
  if (!snapshots.columns.some((c) => c.name.toLowerCase() === 'fingerprint_version')) return 'absent';
  const [row] = await session.query(staleFingerprintsSql(d, contract, columnTypes));
  return num(row?.['n']) > 0 ? 'mixed' : 'current';
}

function parsePayload(value: unknown): unknown {
  if (typeof value !== 'string') return value ?? null;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/** Preflight, then the diff's counts and samples. Reads only: writes no state and sends nothing. */
export async function planDestination(session: Session, d: Dialect, contract: Contract, privacyKey?: PrivacyKey): Promise<DestinationPlan> {
  const inputs = await preflight(session, d, contract, privacyKey);
  const diff = diffSql(d, contract, inputs);
  const plan = await summarizePlan(session, d, contract, diff);
  plan.mapping_changed = inputs.mappingChanged;
  await countHeldBack(session, d, contract, diff, plan);
  await checkRemoveLimit(session, d, contract, plan, false);
  return plan;
}

/**
 * The mass-remove guard (`max_removes`): throws when more rows left the model than the contract
 * allows, so an empty or broken model never deletes a CRM. Removals for lost consent and privacy
 * erasures are never held back: the engine must send those whatever their number.
 */
export async function checkRemoveLimit(session: Session, d: Dialect, contract: Contract, plan: DestinationPlan, allowed: boolean): Promise<void> {
  const limit = contract.maxRemoves;
  if (!limit || allowed || plan.removed_left_model === 0) return;
  let max = limit.count ?? 0;
  let synced = 0;
  if (limit.percent !== undefined) {
    const [row] = await session.query(`SELECT COUNT(*) AS n FROM ${d.quoteRelation(stateRelation(contract.relation.database, 'snapshots'))} WHERE destination = ${d.literal(contract.name)}`);
    synced = num(row?.['n']);
    max = Math.floor((synced * limit.percent) / 100);
  }
  if (plan.removed_left_model <= max) return;
  const share = limit.percent !== undefined ? ` (${synced} synced)` : '';
  throw new SyncPlanError('destination-max-removes', `Destination \`${contract.name}\`: ${plan.removed_left_model} row(s) left model \`${contract.model}\`, more than \`max_removes: ${limit.text}\` allows${share}; nothing was sent`, {
    at: { file: contract.file, key: 'max_removes' },
    hint: `Check the model first (an empty or broken upstream table?). If the removals are intended, run \`cdp sync --select ${contract.name} --allow-mass-removes\` once, or raise \`max_removes\`.`,
  });
}

/**
 * What `cdp sync` would hold back, as it does: records in doubt first (a destination that cannot
 * deduplicate), then quarantined ones; both leave `planned`. The diff runs a second time only when
 * the destination has such records at all.
 */
async function countHeldBack(session: Session, d: Dialect, contract: Contract, diff: string, plan: DestinationPlan): Promise<void> {
  const db = contract.relation.database;
  const dest = d.literal(contract.name);
  const guarded = contract.connector.capabilities.deduplicates === false;
  const any = async (table: 'rejections' | 'in_doubt', where: string) =>
    (await session.describe(stateRelation(db, table))) !== undefined &&
    num((await session.query(`SELECT COUNT(*) AS n FROM ${d.quoteRelation(stateRelation(db, table))} WHERE destination = ${dest}${where}`))[0]?.['n']) > 0;
  const inDoubt = guarded && (await any('in_doubt', ''));
  const quarantined = await any('rejections', ` AND status = 'quarantined'`);
  if (!inDoubt && !quarantined) return;
  const held = inDoubt ? inDoubtPredicate(d, contract) : 'FALSE';
  const rows = await session.query(`SELECT p.op,
  SUM(CASE WHEN ${held} THEN 1 ELSE 0 END) AS in_doubt,
  SUM(CASE WHEN NOT (${held}) AND ${quarantined ? quarantinedPredicate(d, contract) : 'FALSE'} THEN 1 ELSE 0 END) AS quarantined
FROM (${diff}) AS p WHERE p.send GROUP BY p.op`);
  for (const row of rows) {
    const op = String(row['op']) as Op;
    const [i, q] = [num(row['in_doubt']), num(row['quarantined'])];
    plan.planned[op] -= i + q;
    plan.in_doubt += i;
    plan.quarantined += q;
  }
}

/**
 * The plan's counts and samples, from `rows`: the diff (`cdp plan`), or a run's materialised
 * plan rows (`cdp sync`, so the diff runs once per sync; it needs no samples, so it only counts).
 */
export async function summarizePlan(session: Session, d: Dialect, contract: Contract, rows: string, options: { samples: boolean } = { samples: true }): Promise<DestinationPlan> {
  const plan: DestinationPlan = {
    destination: contract.name,
    model: contract.model,
    type: contract.type,
    object: contract.object,
    mode: contract.mode,
    planned: { add: 0, change: 0, remove: 0 },
    removed_for_consent: 0,
    removed_left_model: 0,
    rejected: { consent: 0 },
    mapping_changed: false,
    not_sent: { add: 0, change: 0, remove: 0 },
    quarantined: 0,
    in_doubt: 0,
    samples: { add: [], change: [], remove: [] },
  };
  const summary = options.samples ? planSummarySql(d, rows, SAMPLE_SIZE) : planCountsSql(rows);
  for (const row of await session.query(summary)) {
    const op = String(row['op']);
    if (!options.samples || num(row['group_row']) === 1) {
      const n = num(options.samples ? row['group_size'] : row['n']);
      if (op === 'excluded') plan.rejected.consent += n;
      else {
        const counts = row['send'] === true ? plan.planned : plan.not_sent;
        counts[op as Op] += n;
        if (op === 'remove' && row['reason'] === 'consent' && row['send'] === true) plan.removed_for_consent += n;
        if (op === 'remove' && row['reason'] === 'left_model' && row['send'] === true) plan.removed_left_model += n;
      }
    }
    if (options.samples && op !== 'excluded' && num(row['sample_row']) <= SAMPLE_SIZE) {
      // An erasure's key and last payload are the person's data: a plan (a pull-request comment)
      // never shows them.
      const erased = row['reason'] === 'privacy';
      plan.samples[op as Op].push({
        primary_key: erased ? ERASED : String(row['primary_key']),
        payload: erased ? ERASED : parsePayload(row['payload']),
        ...(row['reason'] === null || row['reason'] === undefined ? {} : { reason: String(row['reason']) }),
        ...(row['send'] === true ? {} : { sent: false as const }),
      });
    }
  }
  return plan;
}

/** Rows of every op (excluded ones too): the plan's size. */
export function planSize(plan: DestinationPlan): number {
  const sum = (c: OpCounts) => c.add + c.change + c.remove;
  return sum(plan.planned) + sum(plan.not_sent) + plan.rejected.consent;
}

/** Whether the last run that recorded a mapping (its plan was made) recorded another one. */
async function mappingChanged(session: Session, d: Dialect, contract: Contract): Promise<boolean> {
  const runs = stateRelation(contract.relation.database, 'runs');
  const info = await session.describe(runs);
  if (!info?.columns.some((c) => c.name.toLowerCase() === 'mapping_hash')) return false;
  const [last] = await session.query(`SELECT mapping_hash FROM ${d.quoteRelation(runs)} WHERE destination = ${d.literal(contract.name)} AND mapping_hash IS NOT NULL ORDER BY started_at DESC LIMIT 1`);
  return last !== undefined && String(last['mapping_hash']) !== contract.mappingHash;
}

export function totalPlanned(plan: DestinationPlan): number {
  return plan.planned.add + plan.planned.change + plan.planned.remove;
}
