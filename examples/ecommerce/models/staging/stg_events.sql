{{!-- One row per event; blanks become NULL so identity and traits never see an empty identifier. --}}
select
  event_id,
  anonymous_id,
  nullif(trim(user_id), '') as user_id,
  nullif(lower(trim(email)), '') as email,
  platform,
  event_name,
  nullif(product_id, '') as product_id,
  cast(occurred_at as timestamp) as occurred_at
from {{ source "raw" "events" }}
