MODEL (
  name staging.stg_stripe__subscriptions,
  kind VIEW,
  grain subscription_id,
  owner analytics_engineering,
  signals [raw_arrivals(sync_gap_hours := @VAR('airbyte_max_sync_gap_hours'))],
  description 'Stripe subscriptions landed by Airbyte (one row per ID): Unix times as TIMESTAMP_NTZ; ITEMS kept as VARIANT for int_stripe_subscription_items.',
  audits (
    not_null(columns := (subscription_id, stripe_customer_id, status)),
    unique_values(columns := (subscription_id)),
    accepted_values_non_blocking(
      column := status,
      is_in := (
        'active',
        'trialing',
        'past_due',
        'canceled',
        'unpaid',
        'incomplete',
        'incomplete_expired',
        'paused'
      )
    ),
    assert_subscription_items_complete(column := items, blocking := FALSE)
  ),
  column_descriptions (
    subscription_id = 'Stripe subscription ID (sub_...).',
    stripe_customer_id = 'Stripe customer (cus_...) the subscription bills.',
    status = 'Stripe status: active, trialing, past_due, canceled, unpaid, incomplete, incomplete_expired, paused.',
    quantity = 'Subscription-level quantity (Stripe legacy field; item quantities are in ITEMS).',
    items = 'The subscription items object as landed ({"data": [...]}), one element per item with its price or legacy plan.',
    cancel_at_period_end = 'True when the subscription is set to cancel at the end of the current period.',
    created_at = 'When the subscription was created (UTC).',
    started_at = 'START_DATE: when the subscription started (UTC).',
    current_period_start_at = 'Start of the current billing period (UTC).',
    current_period_end_at = 'End of the current billing period (UTC).',
    trial_start_at = 'Start of the trial (UTC); null without a trial.',
    trial_end_at = 'End of the trial (UTC); null without a trial.',
    canceled_at = 'When cancellation was requested (UTC).',
    ended_at = 'When the subscription ended (UTC); null while it runs.',
    extracted_at = 'When Airbyte extracted this version of the record (_AIRBYTE_EXTRACTED_AT, UTC): the sync that landed it.',
    updated_at = 'When Stripe last updated the subscription (UTC).'
  )
);

WITH source AS (
  SELECT
    *
  FROM AIRBYTE_DB.RAW.STRIPE_SUBSCRIPTIONS
), renamed AS (
  SELECT
    /* ids */
    id::VARCHAR AS subscription_id,
    customer::VARCHAR AS stripe_customer_id,
    /* strings */
    status::VARCHAR AS status,
    /* numerics */
    quantity::NUMBER(38, 0) AS quantity,
    /* semi-structured */
    items AS items,
    /* booleans */
    COALESCE(cancel_at_period_end, FALSE) AS cancel_at_period_end,
    /* timestamps (Stripe sends Unix seconds) */
    @unix_to_timestamp(created) AS created_at,
    @unix_to_timestamp(start_date) AS started_at,
    @unix_to_timestamp(current_period_start) AS current_period_start_at,
    @unix_to_timestamp(current_period_end) AS current_period_end_at,
    @unix_to_timestamp(trial_start) AS trial_start_at,
    @unix_to_timestamp(trial_end) AS trial_end_at,
    @unix_to_timestamp(canceled_at) AS canceled_at,
    @unix_to_timestamp(ended_at) AS ended_at,
    @unix_to_timestamp(updated) AS updated_at,
    CONVERT_TIMEZONE('UTC', _airbyte_extracted_at)::TIMESTAMP_NTZ AS extracted_at
  FROM source
)
SELECT
  subscription_id,
  stripe_customer_id,
  status,
  quantity,
  items,
  cancel_at_period_end,
  created_at,
  started_at,
  current_period_start_at,
  current_period_end_at,
  trial_start_at,
  trial_end_at,
  canceled_at,
  ended_at,
  updated_at,
  extracted_at
FROM renamed
