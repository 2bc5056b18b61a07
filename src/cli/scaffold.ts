/** The files `cdp init` writes: a project that builds and tests on embedded DuckDB at once. */
export function scaffoldFiles(name: string): Record<string, string> {
  return {
    'cdp_project.yml': `name: ${name}
version: 1

model-paths: [models]
seed-paths: [seeds]
test-paths: [tests]

vars:
  active_days: 30

# Defaults by folder; a model's YAML entry or {{ config }} overrides them.
models:
  +materialized: view
  marts:
    +materialized: table
`,
    'profiles.yml': `target: dev
targets:
  dev:
    type: duckdb
    path: target/${name}.duckdb
    schema: main
    threads: 1
`,
    'seeds/customers.csv': `customer_id,email,signed_up_at,plan
1,ana@example.com,2026-01-04 10:00:00,pro
2,ben@example.com,2026-02-11 09:30:00,free
3,cleo@example.com,2026-03-20 17:45:00,pro
`,
    'seeds/orders.csv': `order_id,customer_id,amount,ordered_at
100,1,49.00,2026-03-01 12:00:00
101,1,19.50,2026-04-02 08:15:00
102,3,99.00,2026-04-10 19:20:00
`,
    'models/staging/stg_customers.sql': `select
  customer_id,
  lower(trim(email)) as email,
  cast(signed_up_at as timestamp) as signed_up_at,
  plan
from {{ ref "customers" }}
`,
    'models/staging/stg_orders.sql': `select order_id, customer_id, cast(amount as decimal(12, 2)) as amount, cast(ordered_at as timestamp) as ordered_at
from {{ ref "orders" }}
`,
    'models/staging/schema.yml': `models:
  - name: stg_customers
    columns:
      - name: customer_id
        tests: [unique, not_null]
      - name: plan
        tests:
          - accepted_values: { values: [free, pro] }
  - name: stg_orders
    columns:
      - name: order_id
        tests: [unique, not_null]
      - name: customer_id
        tests:
          - relationships: { to: ref('stg_customers'), field: customer_id }
`,
    'models/marts/customer_revenue.sql': `select
  c.customer_id,
  c.email,
  coalesce(sum(o.amount), 0) as lifetime_revenue,
  max(o.ordered_at) as last_order_at
from {{ ref "stg_customers" }} as c
left join {{ ref "stg_orders" }} as o using (customer_id)
group by 1, 2
`,
    '.gitignore': `target/
logs/
`,
  };
}
