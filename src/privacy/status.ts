import type { Dialect } from '../warehouse/dialect.js';
import type { Row, Session } from '../warehouse/warehouse.js';
import { stateRelation } from '../sync/sql.js';
import { privacyRelation } from './tables.js';

/**
 * What `cdp privacy status` reports. A request is done when every destination that received
 * the person confirmed the erasure (or none ever did); deletion propagation latency is the time
 * from filing to the last confirmation. Consent propagation latency is the time from a consent
 * revocation to its removal from a destination (cdp_sync.consent_removals).
 */

export type PropagationStatus = 'pending' | 'done' | 'failed';

export interface DestinationPropagation {
  destination: string;
  status: PropagationStatus;
  reason: string | null;
  requested_at: string;
  updated_at: string;
  confirmed_at: string | null;
  attempts: number;
}

export interface RequestStatus {
  request_id: string;
  identifier_type: string;
  reason: string | null;
  requested_at: string;
  filed_from: string;
  profiles_matched: number;
  identifiers_tombstoned: number;
  restored_at: string | null;
  status: PropagationStatus | 'restored';
  destinations: DestinationPropagation[];
  /** Seconds from filing to the last confirmation; null until done. */
  deletion_propagation_latency_seconds: number | null;
}

export interface LatencySummary {
  count: number;
  avg_seconds: number | null;
  max_seconds: number | null;
}

export interface PrivacySummary {
  requests: Record<PropagationStatus | 'restored', number>;
  deletion_propagation_latency: LatencySummary;
  /** Per destination. */
  consent_propagation_latency: (LatencySummary & { destination: string })[];
}

const text = (v: unknown): string | null => (v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : String(v));
const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

function overall(destinations: DestinationPropagation[]): PropagationStatus {
  if (destinations.some((x) => x.status === 'failed')) return 'failed';
  return destinations.some((x) => x.status === 'pending') ? 'pending' : 'done';
}

export async function requestStatus(session: Session, d: Dialect, database: string | undefined, requestId: string): Promise<RequestStatus | undefined> {
  const rel = (t: Parameters<typeof privacyRelation>[1]) => d.quoteRelation(privacyRelation(database, t));
  const id = d.stringLiteral(requestId);
  const [request] = await session.query(`SELECT q.request_id, q.identifier_type, q.reason, q.requested_at, q.filed_from, q.profiles_matched, q.identifiers_tombstoned,
  (SELECT MAX(r.restored_at) FROM ${rel('restores')} AS r WHERE r.request_id = q.request_id) AS restored_at
FROM ${rel('requests')} AS q WHERE q.request_id = ${id}`);
  if (!request) return undefined;
  const destinations = (await session.query(`SELECT destination, status, reason, requested_at, updated_at, confirmed_at, attempts FROM ${rel('propagation')} WHERE request_id = ${id} ORDER BY destination`))
    .map((row: Row): DestinationPropagation => ({
      destination: String(row['destination']),
      status: String(row['status']) as PropagationStatus,
      reason: text(row['reason']),
      requested_at: text(row['requested_at'])!,
      updated_at: text(row['updated_at'])!,
      confirmed_at: text(row['confirmed_at']),
      attempts: num(row['attempts']),
    }));
  const status = overall(destinations);
  const [latency] = await session.query(`SELECT ${d.dateDiff('second', 'q.requested_at', `COALESCE(MAX(p.confirmed_at), q.requested_at)`)} AS seconds
FROM ${rel('requests')} AS q LEFT JOIN ${rel('propagation')} AS p ON p.request_id = q.request_id WHERE q.request_id = ${id} GROUP BY q.requested_at`);
  const restoredAt = text(request['restored_at']);
  return {
    request_id: String(request['request_id']),
    identifier_type: String(request['identifier_type']),
    reason: text(request['reason']),
    requested_at: text(request['requested_at'])!,
    filed_from: String(request['filed_from']),
    profiles_matched: num(request['profiles_matched']),
    identifiers_tombstoned: num(request['identifiers_tombstoned']),
    restored_at: restoredAt,
    status: restoredAt !== null ? 'restored' : status,
    destinations,
    deletion_propagation_latency_seconds: status === 'done' ? num(latency?.['seconds']) : null,
  };
}

export async function privacySummary(session: Session, d: Dialect, database: string | undefined): Promise<PrivacySummary> {
  const rel = (t: Parameters<typeof privacyRelation>[1]) => d.quoteRelation(privacyRelation(database, t));
  const perRequest = `SELECT q.request_id, q.requested_at, MAX(p.confirmed_at) AS confirmed_at,
    SUM(CASE WHEN p.status = 'failed' THEN 1 ELSE 0 END) AS failed, SUM(CASE WHEN p.status = 'pending' THEN 1 ELSE 0 END) AS pending,
    (SELECT COUNT(*) FROM ${rel('restores')} AS r WHERE r.request_id = q.request_id) AS restores
  FROM ${rel('requests')} AS q LEFT JOIN ${rel('propagation')} AS p ON p.request_id = q.request_id
  GROUP BY q.request_id, q.requested_at`;
  const [row] = await session.query(`SELECT
  SUM(CASE WHEN restores > 0 THEN 1 ELSE 0 END) AS restored,
  SUM(CASE WHEN restores = 0 AND failed > 0 THEN 1 ELSE 0 END) AS failed,
  SUM(CASE WHEN restores = 0 AND failed = 0 AND pending > 0 THEN 1 ELSE 0 END) AS pending,
  SUM(CASE WHEN restores = 0 AND failed = 0 AND pending = 0 THEN 1 ELSE 0 END) AS done,
  AVG(CASE WHEN restores = 0 AND failed = 0 AND pending = 0 THEN ${d.dateDiff('second', 'requested_at', 'COALESCE(confirmed_at, requested_at)')} END) AS avg_seconds,
  MAX(CASE WHEN restores = 0 AND failed = 0 AND pending = 0 THEN ${d.dateDiff('second', 'requested_at', 'COALESCE(confirmed_at, requested_at)')} END) AS max_seconds
FROM (${perRequest}) AS x`);
  const done = num(row?.['done']);
  const consent = (await session.describe(stateRelation(database, 'consent_removals')))
    ? await session.query(`SELECT destination, COUNT(*) AS n, AVG(${d.dateDiff('second', 'revoked_at', 'removed_at')}) AS avg_seconds, MAX(${d.dateDiff('second', 'revoked_at', 'removed_at')}) AS max_seconds
FROM ${d.quoteRelation(stateRelation(database, 'consent_removals'))} GROUP BY destination ORDER BY destination`)
    : [];
  const seconds = (v: unknown) => (v === null || v === undefined ? null : Math.round(Number(v)));
  return {
    requests: { pending: num(row?.['pending']), done, failed: num(row?.['failed']), restored: num(row?.['restored']) },
    deletion_propagation_latency: { count: done, avg_seconds: seconds(row?.['avg_seconds']), max_seconds: seconds(row?.['max_seconds']) },
    consent_propagation_latency: consent.map((c) => ({ destination: String(c['destination']), count: num(c['n']), avg_seconds: seconds(c['avg_seconds']), max_seconds: seconds(c['max_seconds']) })),
  };
}
