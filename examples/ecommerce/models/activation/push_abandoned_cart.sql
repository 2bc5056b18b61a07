{{!-- Step 1 rows for the push gateway, which addresses app users by account id. --}}
select
  a.profile_id,
  g.user_id,
  c.cart_items
from {{ ref "audience_cart_push" }} as a
join {{ ref "golden_records" }} as g using (profile_id)
left join {{ ref "cart_context" }} as c using (profile_id)
-- Push consent is only ever given in the logged-in app, so members have an account; the filter
-- keeps a profile without one out rather than sending a push nobody can receive.
where g.user_id is not null
