{{!-- GA4's names for the ids: the web stream's client id cookie and the app stream's instance id. --}}
select
  event_id,
  nullif(trim(anonymous_id), '') as ga_client_id,
  nullif(trim(device_id), '') as app_instance_id,
  nullif(trim(user_id), '') as user_id,
  case when nullif(trim(anonymous_id), '') is null then 'app' else 'web' end as stream,
  event_name,
  page as page_location,
  cast(occurred_at as timestamp) as occurred_at
from {{ source "ga4" "events" }}
