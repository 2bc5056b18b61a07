{{!-- Shopify ids are numbers in the export; identity compares text, so they are cast once here. --}}
select
  cast(order_id as varchar) as order_id,
  cast(customer_id as varchar) as customer_id,
  nullif(lower(trim(email)), '') as email,
  line_items,
  cast(total_price as decimal(12, 2)) as total_price,
  currency,
  cast(created_at as timestamp) as created_at
from {{ source "raw" "orders" }}
