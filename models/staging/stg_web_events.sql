select
  event_id,
  anonymous_id,
  nullif(trim(user_id), '') as user_id,
  nullif(trim(device_id), '') as device_id,
  event_name,
  page,
  cast(occurred_at as timestamp) as occurred_at
from {{ source "raw" "web_events" }}
