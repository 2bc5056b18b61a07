select
  nullif(anonymous_id, '') as anonymous_id,
  nullif(trim(user_id), '') as user_id,
  nullif(lower(trim(email)), '') as email,
  scope,
  status,
  source,
  cast(occurred_at as timestamp) as occurred_at
from {{ source "raw" "consent_events" }}
