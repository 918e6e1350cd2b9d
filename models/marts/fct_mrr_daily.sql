MODEL (
  name marts.fct_mrr_daily,
  kind FULL,
  grain (date, stripe_customer_id, currency),
  owner analytics_engineering,
  description 'Monthly recurring revenue per day, Stripe customer and currency, for every date from the earliest subscription start to the latest complete date (marts.md: the day before the run, once the replication run and an Airbyte sync after its midnight have landed); only rows with MRR > 0. Rebuilt in full on every run after something landed, because a Stripe upsert re-prices past days (end dates, trials, statuses); its inputs are Stripe-sized, not event-sized.',
  audits (
    not_null(columns := (date, stripe_customer_id, currency, mrr)),
    unique_combination_of_columns(columns := (date, stripe_customer_id, currency)),
    assert_non_negative(columns := (mrr))
  ),
  column_descriptions (
    date = 'UTC calendar date the MRR applies to.',
    stripe_customer_id = 'Stripe customer (cus_...).',
    organization_id = 'Goodword organization of the customer (its STRIPE_CUSTOMER_ID, else Stripe metadata.organization_id when that organization exists); null when neither resolves.',
    currency = 'Currency of the prices, lower-case ISO code.',
    mrr = 'Sum over the customer''s counted subscriptions of item unit_amount x quantity normalized to a month, in major units of CURRENCY (10^exponent minor units, from the currency seed), rounded to cents; always > 0.'
  )
);

/* A subscription counts on day D when date(START) <= D, ENDED_AT is null or date(ENDED_AT) > D,
   it is not in trial on D (TRIAL_END null or date(TRIAL_END) <= D), and its status is not
   incomplete / incomplete_expired (marts.md). Item amounts are summed at 6 decimals and rounded
   to cents once per row. Days run from the first subscription start through
   @closed_through_date() (the whole-days rule, macros/arrivals.py), on @calendar_days. */
WITH subscriptions AS (
  SELECT
    subscription_id,
    stripe_customer_id,
    status,
    started_at,
    trial_end_at,
    ended_at
  FROM staging.stg_stripe__subscriptions
), subscription_items AS (
  SELECT
    subscription_id,
    currency,
    monthly_amount
  FROM intermediate.int_stripe_subscription_items
), customer_organizations AS (
  SELECT
    stripe_customer_id,
    organization_id
  FROM intermediate.int_stripe_customer_organizations
), subscription_mrr AS (
  /* MRR of each counted subscription per currency, with the dates that decide when it counts */
  SELECT
    subscriptions.subscription_id,
    subscriptions.stripe_customer_id,
    subscription_items.currency,
    subscriptions.started_at::DATE AS started_date,
    subscriptions.trial_end_at::DATE AS trial_end_date,
    subscriptions.ended_at::DATE AS ended_date,
    SUM(subscription_items.monthly_amount) AS mrr
  FROM subscriptions
  INNER JOIN subscription_items
    ON subscription_items.subscription_id = subscriptions.subscription_id
  WHERE
    NOT subscriptions.status IN ('incomplete', 'incomplete_expired')
  GROUP BY
    subscriptions.subscription_id,
    subscriptions.stripe_customer_id,
    subscription_items.currency,
    subscriptions.started_at::DATE,
    subscriptions.trial_end_at::DATE,
    subscriptions.ended_at::DATE
), calendar AS (
  /* every day from the first subscription start through the latest complete date */
  @calendar_days(subscriptions, started_at::DATE, @closed_through_date())
), daily_customer_mrr AS (
  SELECT
    calendar.date_day,
    subscription_mrr.stripe_customer_id,
    subscription_mrr.currency,
    ROUND(SUM(subscription_mrr.mrr), 2)::NUMBER(38, 2) AS mrr
  FROM calendar
  INNER JOIN subscription_mrr
    ON subscription_mrr.started_date <= calendar.date_day
    AND (
      subscription_mrr.ended_date IS NULL OR subscription_mrr.ended_date > calendar.date_day
    )
    AND (
      subscription_mrr.trial_end_date IS NULL OR subscription_mrr.trial_end_date <= calendar.date_day
    )
  GROUP BY
    calendar.date_day,
    subscription_mrr.stripe_customer_id,
    subscription_mrr.currency
), final AS (
  SELECT
    daily_customer_mrr.date_day AS date,
    daily_customer_mrr.stripe_customer_id,
    customer_organizations.organization_id,
    daily_customer_mrr.currency,
    daily_customer_mrr.mrr
  FROM daily_customer_mrr
  LEFT JOIN customer_organizations
    ON customer_organizations.stripe_customer_id = daily_customer_mrr.stripe_customer_id
  WHERE
    daily_customer_mrr.mrr > 0
)
SELECT
  date,
  stripe_customer_id,
  organization_id,
  currency,
  mrr
FROM final
