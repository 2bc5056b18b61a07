select
  lower(trim(email)) as email,
  scope,
  status,
  source,
  cast(occurred_at as timestamp) as occurred_at
from {{ source "raw" "consent_events" }}
