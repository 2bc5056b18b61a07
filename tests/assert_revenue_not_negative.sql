{{!-- A custom data test: returns the rows that break the rule; zero rows pass. --}}
select customer_id, lifetime_revenue
from {{ ref "customer_activity" }}
where lifetime_revenue < 0
