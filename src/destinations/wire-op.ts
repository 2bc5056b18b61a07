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
