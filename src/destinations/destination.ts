/**
 * The one seam between the sync engine (src/sync/) and a platform. A connector declares what it
 * supports (checked against each contract before anything runs) and sends batches of records,
 * answering per record. The engine has already applied consent, diffing and batching: a
 * connector only ever sees rows that may leave the warehouse.
 */

/**
 * `update` sends adds and changes like `upsert`, but the connector must never create a record:
 * one the platform does not have is a per-record rejection (docs/destinations.md).
 */
export const SYNC_MODES = ['upsert', 'update', 'mirror', 'insert', 'add_remove'] as const;
export type SyncMode = (typeof SYNC_MODES)[number];

export const ON_REMOVE = ['nothing', 'clear', 'delete'] as const;
export type OnRemove = (typeof ON_REMOVE)[number];

export type RecordOp = 'add' | 'change' | 'remove';

export interface DestinationCapabilities {
  modes: readonly SyncMode[];
  /** Largest batch the platform accepts in one call. */
  maxBatchSize: number;
  /** Target fields the platform has; `any` for schemaless targets (files, webhooks). */
  fields: 'any' | readonly string[];
  /**
   * False when the platform cannot recognise a resent record (Braze events, for instance): the
   * engine then never resends an insert whose outcome a crash left unknown; it reports it as
   * in doubt instead. Upserts by key and idempotency-keyed calls deduplicate (the default).
   */
  deduplicates?: boolean;
}

export interface OutboundRecord {
  op: RecordOp;
  /** The primary key, as text. */
  key: string;
  /** sha256(destination|key|payload_hash): identical for a resend of the same change. */
  idempotencyKey: string;
  payloadHash: string;
  /** Mapped fields (for a remove: the payload last acknowledged, so identifiers are known). */
  payload: Record<string, unknown>;
  /**
   * `payload` as the JSON text the warehouse planned, when the engine has it (it always does for
   * planned records): a connector that sends the payload as JSON can splice it into its body as
   * is, and never touch `payload`, which the engine then never parses. Read-only, like `payload`.
   */
  payloadJson?: string;
  /**
   * For removes: delete the record, clear the mapped fields, or `erase`: a privacy deletion
   * request (docs/privacy.md), which uses the platform's own data-subject deletion whatever the
   * contract's `on_remove` says.
   */
  removal?: Removal;
  /** What the connector returned with this key's last acknowledgement (a remote id, a created flag). */
  meta?: RecordMeta;
}

export type Removal = 'delete' | 'clear' | 'erase';

/** Small facts a connector keeps per record between runs; stored with the snapshot, merged over earlier ones. */
export type RecordMeta = Record<string, string | number | boolean>;

export type RecordResult = { key: string; ok: true; meta?: RecordMeta } | { key: string; ok: false; reason: string };

export interface Destination {
  readonly capabilities: DestinationCapabilities;
  /**
   * Sends one batch and resolves once the platform acknowledged it, with one result per record
   * (any order). A rejected promise means nothing in the batch is known to be acknowledged.
   */
  send(batch: readonly OutboundRecord[]): Promise<RecordResult[]>;
  close(): Promise<void>;
}

/** What the engine tells a connector when it opens it for one run of one contract. */
export interface DestinationContext {
  destination: string;
  object: string;
  runId: string;
  /** The project root, for connectors that write files. */
  projectRoot: string;
  /** The contract's mode: `update` must never create a record. */
  mode: SyncMode;
  options: Record<string, unknown>;
  /**
   * The start of the oldest run of this destination since its last run that went through its
   * whole plan (success or partial; this run included): a write applied after it may never have
   * been acknowledged (a killed run, a lost response). A partial run's rejected records were never
   * applied, so it closes the window too. A connector that learns "created" only from the first write's answer uses it to
   * recognise records an unacknowledged earlier attempt created.
   */
  unacknowledgedSince: Date;
}

/** A problem with a contract's `options`, as a key below `options` and a message. */
export interface OptionProblem {
  key: string;
  message: string;
  /**
   * A credential's environment variable is not set: fatal for `cdp plan` and `cdp sync`, which
   * connect, but not for compile, build or ls, which must work without a destination's secrets.
   */
  credentialUnset?: true;
}

export interface DestinationType {
  readonly type: string;
  readonly capabilities: DestinationCapabilities;
  /** Option keys this connector accepts, with a validator returning problems (empty when fine). */
  validateOptions(options: Record<string, unknown>): OptionProblem[];
  open(context: DestinationContext): Promise<Destination>;
}
