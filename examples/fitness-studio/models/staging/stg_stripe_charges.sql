{{!-- Net of refunds, so revenue traits never count money that went back. --}}
select
  payment_id,
  nullif(stripe_customer_id, '') as stripe_customer_id,
  nullif(lower(trim(email)), '') as email,
  cast(amount as decimal(12, 2)) - cast(refunded_amount as decimal(12, 2)) as net_amount,
  upper(currency) as currency,
  cast(paid_at as timestamp) as paid_at
from {{ source "stripe" "charges" }}
