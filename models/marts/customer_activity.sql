{{ config tags="customers" }}
with bookings as (
  select
    customer_id,
    any_value(email) filter (where email is not null) as email,
    count(*) as bookings,
    count(*) filter (where status = 'attended') as attended,
    count(*) filter (where status = 'cancelled') as cancelled,
    max(booked_at) as last_booked_at
  from {{ ref "stg_bookings" }}
  group by customer_id
),
revenue as (
  select email, sum(net_amount) as lifetime_revenue
  from {{ ref "int_payments_net" }}
  group by email
)
select
  b.customer_id,
  b.email,
  b.bookings,
  b.attended,
  b.cancelled,
  b.last_booked_at,
  coalesce(r.lifetime_revenue, 0) as lifetime_revenue,
  date_diff('day', b.last_booked_at, cast('{{ var "as_of" }}' as timestamp)) > {{ var "active_days" }} as is_lapsed
from bookings as b
left join revenue as r using (email)
