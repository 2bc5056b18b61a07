{{!--
  What each shopper has in the cart and has looked at, for the messages of the flow: product
  titles from the timeline of the last 14 days (the flow's longest window). Cart items count only
  after the shopper's last order, so a bought product is never in a reminder.
--}}
with recent as (
  select
    e.profile_id,
    e.event_name,
    e.occurred_at,
    json_extract_string(e.properties, '$.product_id') as product_id
  from {{ ref "profile_events" }} as e
  where e.event_name in ('product_viewed', 'add_to_cart')
    and e.occurred_at > cast('{{ var "as_of" }}' as timestamp) - interval 14 day
    and e.occurred_at <= cast('{{ var "as_of" }}' as timestamp)
)
select
  r.profile_id,
  max(r.occurred_at) filter (where r.event_name = 'add_to_cart') as last_cart_at,
  string_agg(distinct p.title, ', ' order by p.title) filter (
    where r.event_name = 'add_to_cart' and (t.last_order_at is null or r.occurred_at > t.last_order_at)
  ) as cart_items,
  string_agg(distinct p.title, ', ' order by p.title) filter (where r.event_name = 'product_viewed') as viewed_items
from recent as r
join {{ ref "stg_products" }} as p using (product_id)
join {{ ref "profile_traits" }} as t using (profile_id)
group by r.profile_id
