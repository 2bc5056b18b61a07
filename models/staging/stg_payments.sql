select
  payment_id,
  stripe_customer_id,
  nullif(lower(trim(email)), '') as email,
  cast(amount as decimal(12, 2)) as amount,
  cast(refunded_amount as decimal(12, 2)) as refunded_amount,
  upper(currency) as currency,
  cast(paid_at as timestamp) as paid_at
from {{ source "raw" "payments" }}
