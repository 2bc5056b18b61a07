{{ config materialized="incremental" unique_key="revenue_date" incremental_strategy="merge" }}
select
  cast(paid_at as date) as revenue_date,
  sum(net_amount) as net_revenue,
  count(*) as payments
from {{ ref "int_payments_net" }}
{{#if (is_incremental)}}
-- Only days at or after the latest day already loaded are recomputed.
where cast(paid_at as date) >= (select max(revenue_date) from {{ this }})
{{/if}}
group by 1
