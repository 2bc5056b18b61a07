import type { OutboundRecord, RecordOp } from './destination.js';

/**
 * The op a record carries on the wire of the schemaless connectors (webhook, file outbox). A
 * privacy erasure travels as `delete`, distinct from `remove` (a row that left the model), so a
 * receiver cannot mistake a data-subject deletion request for an ordinary removal.
 */
export type WireOp = RecordOp | 'delete';

export function wireOp(record: Pick<OutboundRecord, 'op' | 'removal'>): WireOp {
  return record.op === 'remove' && record.removal === 'erase' ? 'delete' : record.op;
}

/**
 * The payload as it goes on the wire: the JSON text the warehouse planned, spliced as is (never
 * parsed and re-serialised), so it is exactly the text `payload_hash` was computed from and a
 * BIGINT above 2^53 keeps its digits.
 */
export function payloadText(record: Pick<OutboundRecord, 'payload' | 'payloadJson'>): string {
  return record.payloadJson ?? JSON.stringify(record.payload);
}
