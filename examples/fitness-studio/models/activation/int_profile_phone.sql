{{ config materialized="ephemeral" }}
{{!--
  The golden phone as the SMS gateway and Salesforce want it, E.164: the same rules identity.yml
  applies (a 00 prefix becomes +, a national number gets +351), so the number texted is the number
  that was matched. Golden values are kept as typed; this is the one place that formats them.
--}}
with digits as (
  select profile_id, trim(phone) as raw, regexp_replace(phone, '[^0-9]', '', 'g') as d
  from {{ ref "golden_records" }}
  where phone is not null
)
select
  profile_id,
  case
    when raw like '+%' then '+' || d
    when d like '00%' then '+' || substr(d, 3)
    when d like '0%' then '+351' || substr(d, 2)
    else '+351' || d
  end as phone_e164
from digits
where length(d) between 8 and 15
