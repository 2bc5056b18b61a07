select
  user_id,
  nullif(lower(trim(email)), '') as email,
  nullif(trim(cast(phone as varchar)), '') as phone,
  cast(created_at as timestamp) as created_at
from {{ source "studio_app" "accounts" }}
