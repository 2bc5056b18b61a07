/**
 * Recognising records an unacknowledged write of cdp created (docs/connectors/hubspot.md and
 * salesforce.md, "Which records cdp created"). An upsert says whether it created the record, but
 * only the first write's answer says so: when that answer was lost (a killed run, a response lost
 * after the platform applied the write), the resend answers "updated". The record's creation time
 * on the platform tells the two apart: created at or after `unacknowledgedSince` (the start of the
 * oldest run since the destination's last successful one), it was created by one of those runs, or
 * by someone else inside that window, which cdp cannot tell apart.
 */
export function createdInWindow(createdAt: unknown, unacknowledgedSince: Date): boolean {
  if (typeof createdAt !== 'string' || createdAt === '') return false;
  const created = Date.parse(createdAt);
  // Salesforce keeps creation times to the whole second: a record created in the second the run started counts.
  const since = Math.floor(unacknowledgedSince.getTime() / 1000) * 1000;
  return Number.isFinite(created) && created >= since;
}
