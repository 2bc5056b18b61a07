/** Project files several e2e suites share. */

/** identity.yml linking a `customers` model's customer_id and email. */
export const CUSTOMERS_IDENTITY = `identifier_types:
  customer_id: { limit: 1 }
  email: { normalize: email }
edge_sources:
  - name: customers
    from: ref('customers')
    identifiers: { customer_id: customer_id, email: email }
    timestamp: created_at
    verified: true
`;

/** The event sources of golden_record.yml over `bookings` and `payments` seeds, as of 2026-11-15. */
export const BOOKINGS_AND_PAYMENTS_EVENTS = `as_of: "CAST('2026-11-15 00:00:00' AS TIMESTAMP)"
event_sources:
  - name: bookings
    from: ref('bookings')
    identifier: { type: customer_id, column: customer_id }
    timestamp: booked_at
    event_sql: "'class_' || status"
    properties: [class_id]
  - name: payments
    from: ref('payments')
    identifier: { type: email, column: email }
    timestamp: paid_at
    event: payment
    properties: [amount]
`;
