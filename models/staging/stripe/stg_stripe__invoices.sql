MODEL (
  name staging.stg_stripe__invoices,
  kind VIEW,
  grain invoice_id,
  owner analytics_engineering,
  signals [raw_arrivals(sync_gap_hours := @VAR('airbyte_max_sync_gap_hours'))],
  description 'Stripe invoices landed by Airbyte (one row per ID): amounts from minor units (cents) to major units, Unix times (including STATUS_TRANSITIONS) as TIMESTAMP_NTZ.',
  audits (
    not_null(columns := (invoice_id, stripe_customer_id)),
    unique_values(columns := (invoice_id)),
    accepted_values_non_blocking(column := status, is_in := @VAR('invoice_statuses'))
  ),
  column_descriptions (
    invoice_id = 'Stripe invoice ID (in_...).',
    stripe_customer_id = 'Stripe customer (cus_...) billed.',
    subscription_id = 'Subscription the invoice bills; null for one-off invoices.',
    status = 'Stripe status: draft, open, paid, uncollectible, void.',
    currency = 'Invoice currency, lower-case ISO code.',
    amount_due = 'Amount due, in major units of CURRENCY.',
    amount_paid = 'Amount paid, in major units of CURRENCY.',
    amount_remaining = 'Amount still to pay, in major units of CURRENCY.',
    subtotal = 'Subtotal before discounts and tax, in major units of CURRENCY.',
    total = 'Total after discounts and tax, in major units of CURRENCY.',
    is_paid = 'True when the invoice is paid.',
    created_at = 'When the invoice was created (UTC).',
    finalized_at = 'status_transitions.finalized_at (UTC).',
    paid_at = 'status_transitions.paid_at (UTC); null until paid.',
    voided_at = 'status_transitions.voided_at (UTC).',
    period_start_at = 'Start of the billed period (UTC).',
    period_end_at = 'End of the billed period (UTC).',
    extracted_at = 'When Airbyte extracted this version of the record (_AIRBYTE_EXTRACTED_AT, UTC): the sync that landed it.',
    updated_at = 'When Stripe last updated the invoice (UTC).'
  )
);

/* Money: Stripe amounts are integers in the currency's minor unit; @minor_to_major divides by
   10^exponent from the currency seed (the one list of zero- and three-decimal currencies) and casts
   to NUMBER(38, 2). The seed lookup is the one join a staging model makes: it is a unit, not data. */
WITH source AS (
  SELECT
    *
  FROM AIRBYTE_DB.RAW.STRIPE_INVOICES
), currency_exponents AS (
  SELECT
    currency,
    exponent
  FROM seeds.stripe_currency_exponents
), renamed AS (
  SELECT
    /* ids */
    source.id::VARCHAR AS invoice_id,
    customer::VARCHAR AS stripe_customer_id,
    subscription::VARCHAR AS subscription_id,
    /* strings */
    status::VARCHAR AS status,
    LOWER(source.currency)::VARCHAR AS currency,
    /* numerics (major units) */
    @minor_to_major(source.amount_due, currency_exponents.exponent) AS amount_due,
    @minor_to_major(source.amount_paid, currency_exponents.exponent) AS amount_paid,
    @minor_to_major(source.amount_remaining, currency_exponents.exponent) AS amount_remaining,
    @minor_to_major(source.subtotal, currency_exponents.exponent) AS subtotal,
    @minor_to_major(source.total, currency_exponents.exponent) AS total,
    /* booleans */
    COALESCE(paid, FALSE) AS is_paid,
    /* timestamps (Stripe sends Unix seconds) */
    @unix_to_timestamp(created) AS created_at,
    @unix_to_timestamp(
      TRY_CAST(JSON_EXTRACT_PATH_TEXT(status_transitions, 'finalized_at') AS NUMBER(38, 0))
    ) AS finalized_at,
    @unix_to_timestamp(
      TRY_CAST(JSON_EXTRACT_PATH_TEXT(status_transitions, 'paid_at') AS NUMBER(38, 0))
    ) AS paid_at,
    @unix_to_timestamp(
      TRY_CAST(JSON_EXTRACT_PATH_TEXT(status_transitions, 'voided_at') AS NUMBER(38, 0))
    ) AS voided_at,
    @unix_to_timestamp(period_start) AS period_start_at,
    @unix_to_timestamp(period_end) AS period_end_at,
    @unix_to_timestamp(updated) AS updated_at,
    CONVERT_TIMEZONE('UTC', source._airbyte_extracted_at)::TIMESTAMP_NTZ AS extracted_at
  FROM source
  LEFT JOIN currency_exponents
    ON currency_exponents.currency = LOWER(source.currency)
)
SELECT
  invoice_id,
  stripe_customer_id,
  subscription_id,
  status,
  currency,
  amount_due,
  amount_paid,
  amount_remaining,
  subtotal,
  total,
  is_paid,
  created_at,
  finalized_at,
  paid_at,
  voided_at,
  period_start_at,
  period_end_at,
  updated_at,
  extracted_at
FROM renamed
