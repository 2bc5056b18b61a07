import type { Relation } from '../compile/node.js';
import { ConfigError, formatLocation } from '../errors.js';
import { normalizeSql } from '../identity/normalize.js';
import type { IdentityRules } from '../identity/rules.js';
import { registerSecret } from '../project/secrets.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';
import { tombstoneHash } from './key.js';
import type { DeletionRequest } from './requests.js';
import { privacyRelation } from './tables.js';

/**
 * Files deletion requests: resolves each identifier through the identity graph to whole
 * profiles, records tombstones for every identifier of those profiles, and removes the people
 * from every table cdp manages, all in one transaction (a crash files nothing). Destinations
 * that received them get a pending propagation row; `cdp sync` erases them there.
 */

/** What cdp manages and may hold a person: found from the compiled project by the caller. */
export interface ManagedTables {
  /** identity_edges, identity_graph and the graph's state tables, when built. */
  // The id registry keeps issued profile ids (no personal data) so an id is never issued twice.
  identity?: { edges: Relation; graph: Relation; idMap: Relation; mergeLog: Relation; nodes: Relation; components: Relation };
  /** Built tables with a `profile_id` column (golden records, traits, timeline, consent, audiences, membership, …). */
  profileTables: Relation[];
  /** cdp_sync.snapshots, when any sync ran. */
  snapshots?: Relation;
}

export interface FiledRequest {
  request_id: string;
  identifier_type: string;
  profiles_matched: number;
  identifiers_tombstoned: number;
  /** Destinations that received the person and will get their erasure on the next sync. */
  destinations: string[];
  /** Set for a request id filed before with the same identifier: nothing new was written. */
  already_filed?: boolean;
}

interface Resolved {
  request: DeletionRequest;
  normalised: string;
  profiles: Set<string>;
  identifiers: Map<string, [string, string]>;
  destinations: Set<string>;
}

const key = (type: string, value: string) => `${type}\u0000${value}`;

export async function fileDeletionRequests(
  session: Session,
  d: Dialect,
  database: string | undefined,
  secret: string,
  rules: IdentityRules,
  managed: ManagedTables,
  requests: DeletionRequest[],
  dryRun: boolean,
): Promise<FiledRequest[]> {
  const resolved = await normalise(session, d, rules, requests);
  const previous = await previouslyFiled(session, d, database, secret, resolved);
  const fresh = resolved.filter((r) => !previous.has(r.request.requestId));
  await resolveProfiles(session, d, managed, fresh);
  if (!dryRun && fresh.length > 0) {
    for (const sql of d.atomically(filingStatements(d, database, secret, managed, fresh), 'dml')) {
      try {
        await session.execute(sql);
      } catch (error) {
        if (sql !== 'BEGIN TRANSACTION') await session.execute('ROLLBACK').catch(() => undefined);
        throw error;
      }
    }
  }
  return resolved.map((r) => previous.has(r.request.requestId)
    ? { request_id: r.request.requestId, identifier_type: r.request.type, profiles_matched: 0, identifiers_tombstoned: 0, destinations: [], already_filed: true }
    : {
        request_id: r.request.requestId,
        identifier_type: r.request.type,
        profiles_matched: r.profiles.size,
        identifiers_tombstoned: r.identifiers.size,
        destinations: [...r.destinations].sort(),
      });
}

/** Normalised by identity.yml's rule for the type, in the warehouse (the same SQL the edges use). */
async function normalise(session: Session, d: Dialect, rules: IdentityRules, requests: DeletionRequest[]): Promise<Resolved[]> {
  const selects = requests.map((r, i) => {
    const type = rules.types.find((t) => t.name === r.type)!;
    return `SELECT ${i} AS i, ${normalizeSql(d, type.normalizer, d.stringLiteral(r.value))} AS v`;
  });
  const values = new Map<number, string | null>();
  for (const row of await session.query(selects.join('\nUNION ALL\n'))) values.set(Number(row['i']), row['v'] === null || row['v'] === undefined ? null : String(row['v']));
  return requests.map((request, i) => {
    const normalised = values.get(i);
    if (normalised === null || normalised === undefined || normalised === '') {
      throw new ConfigError('privacy-identifier-invalid', `The ${request.type} given does not normalise to a valid ${request.type} (identity.yml's rule for it returns nothing); nothing was filed`, { at: request.at });
    }
    registerSecret(normalised);
    return { request, normalised, profiles: new Set(), identifiers: new Map([[key(request.type, normalised), [request.type, normalised]]]), destinations: new Set() };
  });
}

/** A request id filed before with the same identifier is a retry (an Airflow task run twice): skipped. With another identifier it is an error. */
async function previouslyFiled(session: Session, d: Dialect, database: string | undefined, secret: string, resolved: Resolved[]): Promise<Set<string>> {
  const ids = [...new Set(resolved.map((r) => r.request.requestId))];
  const rows = await session.query(`SELECT request_id, identifier_hash FROM ${d.quoteRelation(privacyRelation(database, 'requests'))} WHERE request_id IN (${ids.map((id) => d.stringLiteral(id)).join(', ')})`);
  const filed = new Map(rows.map((row) => [String(row['request_id']), String(row['identifier_hash'])]));
  const same = new Set<string>();
  for (const r of resolved) {
    const hash = filed.get(r.request.requestId);
    if (hash === undefined) continue;
    if (hash !== tombstoneHash(secret, r.request.type, r.normalised)) {
      throw new ConfigError('privacy-request-id-taken', `Request id ${r.request.requestId} was already filed for another identifier; nothing was filed`, { at: r.request.at, hint: 'Use a new request id, or leave it out to get one.' });
    }
    same.add(r.request.requestId);
  }
  return same;
}

/** Literal rows `(t, v)` to join on: a handful per request, never a table scan of Node memory. */
function identifierRows(d: Dialect, pairs: Iterable<[string, string]>): string {
  return [...pairs].map(([t, v]) => `SELECT ${d.stringLiteral(t)} AS t, ${d.stringLiteral(v)} AS v`).join(' UNION ALL ');
}

function inList(d: Dialect, values: Iterable<string>): string {
  return [...values].map((v) => d.stringLiteral(v)).join(', ');
}

async function resolveProfiles(session: Session, d: Dialect, managed: ManagedTables, resolved: Resolved[]): Promise<void> {
  const identity = managed.identity;
  if (!identity || resolved.length === 0) return;
  const g = d.quoteRelation(identity.graph);
  const requested = identifierRows(d, resolved.map((r) => [r.request.type, r.normalised]));
  const owners = new Map<string, Set<string>>();
  for (const row of await session.query(`SELECT g.identifier_type, g.identifier_value, g.profile_id FROM ${g} AS g JOIN (${requested}) AS s ON s.t = g.identifier_type AND s.v = g.identifier_value`)) {
    const k = key(String(row['identifier_type']), String(row['identifier_value']));
    owners.set(k, (owners.get(k) ?? new Set()).add(String(row['profile_id'])));
  }
  for (const r of resolved) for (const p of owners.get(key(r.request.type, r.normalised)) ?? []) r.profiles.add(p);
  const profiles = new Set(resolved.flatMap((r) => [...r.profiles]));
  if (profiles.size === 0) return;
  const byProfile = new Map<string, [string, string][]>();
  for (const row of await session.query(`SELECT profile_id, identifier_type, identifier_value FROM ${g} WHERE profile_id IN (${inList(d, profiles)})`)) {
    const pair: [string, string] = [String(row['identifier_type']), String(row['identifier_value'])];
    registerSecret(pair[1]);
    byProfile.set(String(row['profile_id']), [...(byProfile.get(String(row['profile_id'])) ?? []), pair]);
  }
  const sentTo = new Map<string, Set<string>>();
  if (managed.snapshots) {
    for (const row of await session.query(`SELECT DISTINCT destination, profile_id FROM ${d.quoteRelation(managed.snapshots)} WHERE profile_id IN (${inList(d, profiles)})`)) {
      sentTo.set(String(row['profile_id']), (sentTo.get(String(row['profile_id'])) ?? new Set()).add(String(row['destination'])));
    }
  }
  for (const r of resolved) {
    for (const p of r.profiles) {
      for (const [t, v] of byProfile.get(p) ?? []) r.identifiers.set(key(t, v), [t, v]);
      for (const dest of sentTo.get(p) ?? []) r.destinations.add(dest);
    }
  }
}

function filingStatements(d: Dialect, database: string | undefined, secret: string, managed: ManagedTables, resolved: Resolved[]): string[] {
  const rel = (t: Parameters<typeof privacyRelation>[1]) => d.quoteRelation(privacyRelation(database, t));
  const now = d.currentTimestamp();
  const lit = (v: string | undefined | null) => (v === undefined || v === null ? 'NULL' : d.stringLiteral(v));
  const statements: string[] = [];
  for (const r of resolved) {
    const id = d.stringLiteral(r.request.requestId);
    statements.push(`INSERT INTO ${rel('requests')} (request_id, identifier_type, identifier_hash, reason, requested_at, filed_from, profiles_matched, identifiers_tombstoned)
VALUES (${id}, ${d.stringLiteral(r.request.type)}, ${d.stringLiteral(tombstoneHash(secret, r.request.type, r.normalised))}, ${lit(r.request.reason)}, ${now}, ${d.stringLiteral(formatLocation(r.request.at))}, ${r.profiles.size}, ${r.identifiers.size})`);
    statements.push(`INSERT INTO ${rel('tombstones')} (identifier_hash, identifier_type, request_id, scope, created_at) VALUES\n${[...r.identifiers.values()]
      .map(([t, v]) => `(${d.stringLiteral(tombstoneHash(secret, t, v))}, ${d.stringLiteral(t)}, ${id}, 'all', ${now})`)
      .join(',\n')}`);
    if (r.profiles.size > 0) statements.push(`INSERT INTO ${rel('request_profiles')} (request_id, profile_id) VALUES ${[...r.profiles].map((p) => `(${id}, ${d.stringLiteral(p)})`).join(', ')}`);
    if (r.destinations.size > 0) {
      statements.push(`INSERT INTO ${rel('propagation')} (request_id, destination, status, reason, requested_at, updated_at, confirmed_at, attempts) VALUES\n${[...r.destinations]
        .map((dest) => `(${id}, ${d.stringLiteral(dest)}, 'pending', NULL, ${now}, ${now}, NULL, 0)`)
        .join(',\n')}`);
    }
  }
  return [...statements, ...purgeStatements(d, managed, resolved)];
}

/** Removes the people from cdp's own tables now; the next run rebuilds the rest without them. */
function purgeStatements(d: Dialect, managed: ManagedTables, resolved: Resolved[]): string[] {
  const pairs = new Map(resolved.flatMap((r) => [...r.identifiers]));
  const profiles = new Set(resolved.flatMap((r) => [...r.profiles]));
  const statements: string[] = [];
  const scope = identifierRows(d, pairs.values());
  const matches = (t: string, v: string) => `EXISTS (SELECT 1 FROM (${scope}) AS s WHERE s.t = ${t} AND s.v = ${v})`;
  const q = (r: Relation) => d.quoteRelation(r);
  const ids = inList(d, profiles);
  const identity = managed.identity;
  if (identity) {
    statements.push(
      `DELETE FROM ${q(identity.edges)} WHERE ${matches('type_a', 'value_a')} OR ${matches('type_b', 'value_b')}`,
      `DELETE FROM ${q(identity.components)} WHERE node IN (SELECT n.node FROM ${q(identity.nodes)} AS n WHERE ${matches('n.identifier_type', 'n.identifier_value')})`,
      `DELETE FROM ${q(identity.nodes)} WHERE ${matches('identifier_type', 'identifier_value')}`,
      `DELETE FROM ${q(identity.idMap)} WHERE ${matches('identifier_type', 'identifier_value')}${profiles.size > 0 ? ` OR profile_id IN (${ids})` : ''}`,
      `DELETE FROM ${q(identity.mergeLog)} WHERE ${matches('edge_type_a', 'edge_value_a')} OR ${matches('edge_type_b', 'edge_value_b')}${profiles.size > 0 ? ` OR surviving_id IN (${ids}) OR merged_id IN (${ids})` : ''}`,
      `DELETE FROM ${q(identity.graph)} WHERE ${matches('identifier_type', 'identifier_value')}${profiles.size > 0 ? ` OR profile_id IN (${ids})` : ''}`,
    );
  }
  if (profiles.size > 0) for (const table of managed.profileTables) statements.push(`DELETE FROM ${q(table)} WHERE profile_id IN (${ids})`);
  return statements;
}
