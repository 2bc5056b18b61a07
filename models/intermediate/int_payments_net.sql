{{!-- Ephemeral (folder default): inlined into the models that ref it, never built. --}}
select
  email,
  stripe_customer_id,
  amount - refunded_amount as net_amount,
  paid_at
from {{ ref "stg_payments" }}
