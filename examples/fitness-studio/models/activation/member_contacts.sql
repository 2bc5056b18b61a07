{{!--
  Every member with an email, as a Salesforce contact: the profile's traits and the churn-risk flag
  as fields. Sending the flag to every member, rather than only the at-risk ones, is what lets it
  turn false again when someone comes back.
--}}
select
  g.profile_id,
  g.email,
  ph.phone_e164 as phone,
  -- Salesforce requires LastName on a Contact and the booking export has no names: the same
  -- placeholder Salesforce's own web-to-lead uses. Map your booking system's name column instead.
  '[not provided]' as last_name,
  coalesce(t.lifetime_revenue, 0) as lifetime_revenue,
  coalesce(t.attended_last_30_days, 0) as attended_last_30_days,
  strftime(t.last_cancellation_at, '%Y-%m-%dT%H:%M:%SZ') as last_cancellation_at,
  c.profile_id is not null as churn_risk,
  g.stripe_customer_id
from {{ ref "golden_records" }} as g
join {{ ref "profile_traits" }} as t using (profile_id)
left join {{ ref "audience_churn_risk" }} as c using (profile_id)
left join {{ ref "int_profile_phone" }} as ph using (profile_id)
where g.email is not null
  and g.customer_id is not null
