{{!-- Step 2 rows for the email list: the address and what the reminder email shows. --}}
select
  a.profile_id,
  g.email,
  c.cart_items,
  c.viewed_items
from {{ ref "audience_cart_email" }} as a
join {{ ref "golden_records" }} as g using (profile_id)
left join {{ ref "cart_context" }} as c using (profile_id)
where g.email is not null
