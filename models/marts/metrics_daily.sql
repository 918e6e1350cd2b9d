MODEL (
  name marts.metrics_daily,
  kind FULL,
  grain date,
  owner analytics_engineering,
  description 'Company metrics per UTC day, one row per date from the first event date to the latest complete date (marts.md: the day before the run, once the replication run and an Airbyte sync after its midnight have landed). Rebuilt on every run after something landed, from small inputs: active users come per date from int_active_users_daily, which recomputes only the dates new events touch.',
  audits (
    not_null(
      columns := (date, dau, wau, mau, new_users, new_organizations, mrr_usd, paying_organizations)
    ),
    unique_values(columns := (date)),
    assert_non_negative(
      columns := (dau, wau, mau, new_users, new_organizations, mrr_usd, paying_organizations)
    )
  ),
  column_descriptions (
    date = 'UTC calendar date (primary key).',
    dau = 'Daily active users: distinct non-null USER_ID over distinct events with EVENT_DATE = DATE.',
    wau = 'Weekly active users: distinct non-null USER_ID over distinct events with EVENT_DATE in [DATE - 6, DATE].',
    mau = 'Monthly active users: distinct non-null USER_ID over distinct events with EVENT_DATE in [DATE - 27, DATE].',
    new_users = 'Users (latest versions, deleted ones included) created on DATE.',
    new_organizations = 'Organizations (deleted ones included) created on DATE.',
    mrr_usd = 'Sum of FCT_MRR_DAILY.MRR on DATE where CURRENCY = usd, in dollars; 0 when there is none.',
    paying_organizations = 'Distinct non-null ORGANIZATION_ID with MRR > 0 on DATE in FCT_MRR_DAILY (any currency).'
  )
);

/* Dates come from int_active_users_daily, which holds every date from the first event date; the
   whole-days rule (@closed_through_date) decides how far they are published. */
WITH active_users AS (
  SELECT
    date,
    dau,
    wau,
    mau
  FROM intermediate.int_active_users_daily
), users AS (
  SELECT
    user_id,
    created_at
  FROM marts.dim_users
), organizations AS (
  SELECT
    organization_id,
    created_at
  FROM marts.dim_organizations
), mrr AS (
  SELECT
    date,
    organization_id,
    currency,
    mrr
  FROM marts.fct_mrr_daily
), calendar AS (
  /* every day from the first event date through the latest complete date */
  SELECT
    date AS date_day
  FROM active_users
  WHERE
    date <= @closed_through_date()
), new_users_per_day AS (
  SELECT
    created_at::DATE AS created_date,
    COUNT(*) AS new_users
  FROM users
  GROUP BY
    created_at::DATE
), new_organizations_per_day AS (
  SELECT
    created_at::DATE AS created_date,
    COUNT(*) AS new_organizations
  FROM organizations
  GROUP BY
    created_at::DATE
), revenue_per_day AS (
  SELECT
    date,
    SUM(IFF(currency = 'usd', mrr, 0)) AS mrr_usd,
    COUNT(DISTINCT IFF(mrr > 0, organization_id, NULL)) AS paying_organizations
  FROM mrr
  GROUP BY
    date
), final AS (
  SELECT
    calendar.date_day AS date,
    active_users.dau::NUMBER(38, 0) AS dau,
    active_users.wau::NUMBER(38, 0) AS wau,
    active_users.mau::NUMBER(38, 0) AS mau,
    COALESCE(new_users_per_day.new_users, 0)::NUMBER(38, 0) AS new_users,
    COALESCE(new_organizations_per_day.new_organizations, 0)::NUMBER(38, 0) AS new_organizations,
    COALESCE(revenue_per_day.mrr_usd, 0)::NUMBER(38, 2) AS mrr_usd,
    COALESCE(revenue_per_day.paying_organizations, 0)::NUMBER(38, 0) AS paying_organizations
  FROM calendar
  INNER JOIN active_users
    ON active_users.date = calendar.date_day
  LEFT JOIN new_users_per_day
    ON new_users_per_day.created_date = calendar.date_day
  LEFT JOIN new_organizations_per_day
    ON new_organizations_per_day.created_date = calendar.date_day
  LEFT JOIN revenue_per_day
    ON revenue_per_day.date = calendar.date_day
)
SELECT
  date,
  dau,
  wau,
  mau,
  new_users,
  new_organizations,
  mrr_usd,
  paying_organizations
FROM final
