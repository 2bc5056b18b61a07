select
  nullif(lower(trim(email)), '') as email,
  nullif(trim(cast(phone as varchar)), '') as phone,
  scope,
  status,
  source,
  cast(occurred_at as timestamp) as occurred_at
from {{ source "preferences" "consent_changes" }}
