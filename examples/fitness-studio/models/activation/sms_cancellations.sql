{{!--
  One row per recent cancellation of a recent_cancellation member: the SMS destination inserts
  each row once, keyed by the booking, so every cancellation is one message and a member who
  cancels twice gets two. The audience decides who may be texted (its condition and the sms
  consent); this model picks which of their cancellations, by the audience's own rule applied to
  each one, so a cancellation already followed by a new booking is never texted.
--}}
select
  json_extract_string(e.properties, '$.booking_id') as booking_id,
  a.profile_id,
  ph.phone_e164 as phone,
  cl.display_name as class_name,
  strftime(e.occurred_at, '%Y-%m-%dT%H:%M:%SZ') as class_at
from {{ ref "audience_recent_cancellation" }} as a
join {{ ref "profile_events" }} as e
  on e.profile_id = a.profile_id
  and e.event_name = 'class_cancelled'
  -- The audience's window, so a member's older cancellations are not texted now.
  and e.occurred_at >= cast('{{ var "as_of" }}' as timestamp) - interval 3 day
  and e.occurred_at <= cast('{{ var "as_of" }}' as timestamp)
  and not exists (
    select 1 from {{ ref "profile_events" }} as f
    where f.profile_id = e.profile_id
      and f.event_name in ('class_booked', 'class_attended')
      and f.occurred_at >= e.occurred_at
      and f.occurred_at <= e.occurred_at + interval 72 hour
  )
join {{ ref "int_profile_phone" }} as ph on ph.profile_id = a.profile_id
join {{ ref "classes" }} as cl on cl.class_id = json_extract_string(e.properties, '$.class_id')
