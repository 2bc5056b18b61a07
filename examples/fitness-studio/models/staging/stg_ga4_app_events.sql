{{!--
  The app stream alone. The timeline reads web hits through the client id and app hits through
  the instance id; a hit carrying both (a web view inside the app) is a web hit, read once.
--}}
select * from {{ ref "stg_ga4_events" }} where stream = 'app'
