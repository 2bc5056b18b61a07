{{!--
  Step 3 rows for the Meta Custom Audience. viewed_items stays in the model for review but is not
  sent: a customer list carries hashed identifiers only (docs/connectors/meta.md). Product-level
  retargeting on Meta uses the catalogue and the pixel's ViewContent events instead.
--}}
select
  a.profile_id,
  g.email,
  c.viewed_items
from {{ ref "audience_cart_ads" }} as a
join {{ ref "golden_records" }} as g using (profile_id)
left join {{ ref "cart_context" }} as c using (profile_id)
where g.email is not null
