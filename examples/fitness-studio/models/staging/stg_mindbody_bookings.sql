{{!--
  Phones stay as typed: identity.yml normalises them to E.164 for matching, and the activation
  models format the one phone a profile keeps.
--}}
select
  booking_id,
  cast(customer_id as varchar) as customer_id,
  nullif(lower(trim(email)), '') as email,
  nullif(trim(cast(phone as varchar)), '') as phone,
  class_id,
  status,
  cast(booked_at as timestamp) as booked_at
from {{ source "mindbody" "bookings" }}
