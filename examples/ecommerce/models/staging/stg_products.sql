select product_id, title, category, cast(price as decimal(12, 2)) as price
from {{ source "raw" "products" }}
