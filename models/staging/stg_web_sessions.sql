select
  session_id,
  client_id,
  nullif(trim(cast(user_id as varchar)), '') as user_id,
  event_name,
  page,
  cast(occurred_at as timestamp) as occurred_at
from {{ source "raw" "web_sessions" }}
