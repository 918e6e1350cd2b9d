MODEL (
  name intermediate.int_stripe_subscription_items,
  kind VIEW,
  grain (subscription_id, item_index),
  owner analytics_engineering,
  description 'One row per Stripe subscription item, flattened out of ITEMS, with its monthly amount (MRR contribution) in major units of its currency, as marts.md defines it.',
  audits (
    not_null(columns := (subscription_id, item_index, monthly_amount)),
    unique_combination_of_columns(columns := (subscription_id, item_index)),
    assert_non_negative(columns := (monthly_amount)),
    accepted_values_non_blocking(column := billing_interval, is_in := ('day', 'week', 'month', 'year'))
  ),
  column_descriptions (
    subscription_id = 'Stripe subscription the item belongs to.',
    item_index = 'Position of the item in ITEMS.data (0-based).',
    subscription_item_id = 'Stripe subscription item ID (si_...).',
    amount_source = 'Where amount, currency and interval come from: price, or plan (legacy items without a price); null when the item has neither.',
    currency = 'Currency of the price (lower-case ISO code).',
    unit_amount_minor = 'Price per unit in the currency''s minor unit (cents for usd, yen for jpy); null for metered or tiered prices.',
    quantity = 'Item quantity; 1 when Stripe sends none (e.g. metered items).',
    billing_interval = 'Recurring interval: day, week, month or year; null for a non-recurring price.',
    interval_count = 'Number of intervals between bills (e.g. 3 with month = quarterly).',
    monthly_amount = 'MRR contribution of the item: unit_amount x quantity / 10^exponent of its currency normalized to a month (year / 12, week x 52 / 12, day x 365 / 12, each / interval_count); 0 when the amount or interval is missing. NUMBER(38, 6), rounded to cents only after summing.'
  )
);

/* Flattening without LATERAL FLATTEN: sqlglot does not transpile FLATTEN of a VARIANT to a working
   DuckDB UNNEST, so each item is fetched by position with GET(array, index), which is neutral.
   Stripe caps a subscription at 20 items, so positions 0..19 cover every item; the audit
   assert_subscription_items_complete on the staging model warns if ITEMS ever holds more (or
   was truncated by Stripe, has_more = true).
   Values are read with JSON_EXTRACT_PATH_TEXT (unquoted text on both engines) then cast. The
   monthly amount is cast to NUMBER(38, 6) per item, so DuckDB (which divides in DOUBLE) and Snowflake
   (exact NUMBER division) sum the same decimals and round to the same cents. */
WITH subscriptions AS (
  SELECT
    subscription_id,
    items
  FROM staging.stg_stripe__subscriptions
), item_positions AS (
  /* Stripe returns at most 20 items per subscription */
  @whole_numbers(20, item_index)
), flattened AS (
  SELECT
    subscriptions.subscription_id,
    item_positions.item_index,
    GET(subscriptions.items:data, item_positions.item_index) AS item
  FROM subscriptions
  CROSS JOIN item_positions
), sourced AS (
  /* an item takes amount, currency and interval from its price, or from its legacy plan when it
     has no price (absent or JSON null) */
  SELECT
    subscription_id,
    item_index,
    item,
    CASE
      WHEN NOT JSON_EXTRACT_PATH_TEXT(item, 'price') IS NULL
      THEN 'price'
      WHEN NOT JSON_EXTRACT_PATH_TEXT(item, 'plan') IS NULL
      THEN 'plan'
    END AS amount_source
  FROM flattened
  WHERE
    /* positions past the end of ITEMS.data (filtered here, not on GET(...) in flattened: DuckDB
       would bind IS NULL tighter than the -> that GET becomes) */
    NOT item IS NULL
), parsed AS (
  SELECT
    subscription_id,
    item_index,
    JSON_EXTRACT_PATH_TEXT(item, 'id')::VARCHAR AS subscription_item_id,
    amount_source,
    LOWER(
      IFF(
        amount_source = 'price',
        JSON_EXTRACT_PATH_TEXT(item, 'price.currency'),
        JSON_EXTRACT_PATH_TEXT(item, 'plan.currency')
      )
    )::VARCHAR AS currency,
    TRY_CAST(IFF(
      amount_source = 'price',
      JSON_EXTRACT_PATH_TEXT(item, 'price.unit_amount'),
      JSON_EXTRACT_PATH_TEXT(item, 'plan.amount')
    ) AS NUMBER(38, 0)) AS unit_amount_minor,
    COALESCE(TRY_CAST(JSON_EXTRACT_PATH_TEXT(item, 'quantity') AS NUMBER(38, 0)), 1) AS quantity,
    LOWER(
      IFF(
        amount_source = 'price',
        JSON_EXTRACT_PATH_TEXT(item, 'price.recurring.interval'),
        JSON_EXTRACT_PATH_TEXT(item, 'plan.interval')
      )
    )::VARCHAR AS billing_interval,
    COALESCE(
      TRY_CAST(IFF(
        amount_source = 'price',
        JSON_EXTRACT_PATH_TEXT(item, 'price.recurring.interval_count'),
        JSON_EXTRACT_PATH_TEXT(item, 'plan.interval_count')
      ) AS NUMBER(38, 0)),
      1
    ) AS interval_count
  FROM sourced
), currency_exponents AS (
  SELECT
    currency,
    exponent
  FROM seeds.stripe_currency_exponents
), normalized AS (
  /* minor units per major unit: 100 unless the currency seed says otherwise */
  SELECT
    parsed.subscription_id,
    parsed.item_index,
    parsed.subscription_item_id,
    parsed.amount_source,
    parsed.currency,
    parsed.unit_amount_minor,
    parsed.quantity,
    parsed.billing_interval,
    parsed.interval_count,
    COALESCE(
      CASE
        WHEN parsed.interval_count <= 0
        THEN NULL
        WHEN parsed.billing_interval = 'month'
        THEN parsed.unit_amount_minor * parsed.quantity / (
          @minor_units_per_major(currency_exponents.exponent) * parsed.interval_count
        )
        WHEN parsed.billing_interval = 'year'
        THEN parsed.unit_amount_minor * parsed.quantity / (
          @minor_units_per_major(currency_exponents.exponent) * 12 * parsed.interval_count
        )
        WHEN parsed.billing_interval = 'week'
        THEN parsed.unit_amount_minor * parsed.quantity * 52 / (
          @minor_units_per_major(currency_exponents.exponent) * 12 * parsed.interval_count
        )
        WHEN parsed.billing_interval = 'day'
        THEN parsed.unit_amount_minor * parsed.quantity * 365 / (
          @minor_units_per_major(currency_exponents.exponent) * 12 * parsed.interval_count
        )
      END,
      0
    )::NUMBER(38, 6) AS monthly_amount
  FROM parsed
  LEFT JOIN currency_exponents
    ON currency_exponents.currency = parsed.currency
)
SELECT
  subscription_id,
  item_index,
  subscription_item_id,
  amount_source,
  currency,
  unit_amount_minor,
  quantity,
  billing_interval,
  interval_count,
  monthly_amount
FROM normalized
