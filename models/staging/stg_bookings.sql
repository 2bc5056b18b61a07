select
  booking_id,
  customer_id,
  nullif(lower(trim(email)), '') as email,
  nullif(trim(phone), '') as phone,
  class_id,
  status,
  cast(booked_at as timestamp) as booked_at
from {{ source "raw" "bookings" }}
