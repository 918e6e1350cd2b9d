MODEL (
  name staging.stg_stripe__customers,
  kind VIEW,
  grain stripe_customer_id,
  owner analytics_engineering,
  signals [raw_arrivals(sync_gap_hours := @VAR('airbyte_max_sync_gap_hours'))],
  description 'Stripe customers landed by Airbyte (one row per ID): Unix times as TIMESTAMP_NTZ, the Goodword organization ID the app writes into metadata extracted as a number.',
  audits (
    not_null(columns := (stripe_customer_id)),
    unique_values(columns := (stripe_customer_id))
  ),
  column_descriptions (
    stripe_customer_id = 'Stripe customer ID (cus_...).',
    metadata_organization_id = 'metadata.organization_id written by the app, as a number; null when absent or not a whole number (customers created outside the app). It may name an organization that does not exist.',
    email = 'Billing email, lower-cased and trimmed.',
    customer_name = 'Customer name in Stripe.',
    currency = 'Default currency of the customer (lower-case ISO code); null until the customer is billed.',
    is_delinquent = 'True when Stripe marks the customer delinquent (latest charge failed).',
    is_deleted = 'True when the customer was deleted in Stripe.',
    is_livemode = 'True for live-mode records, false for test mode.',
    created_at = 'When the customer was created in Stripe (UTC).',
    extracted_at = 'When Airbyte extracted this version of the record (_AIRBYTE_EXTRACTED_AT, UTC): the sync that landed it.',
    updated_at = 'When Stripe last updated the customer (UTC).'
  )
);

/* Airbyte's Append + Deduped mode lands one row per ID (audited, not re-deduplicated here).
   JSON_EXTRACT_PATH_TEXT returns the unquoted text of a JSON string on both Snowflake and DuckDB,
   where `metadata:organization_id::VARCHAR` would keep the JSON quotes ("7") on DuckDB. */
WITH source AS (
  SELECT
    *
  FROM AIRBYTE_DB.RAW.STRIPE_CUSTOMERS
), renamed AS (
  SELECT
    /* ids */
    id::VARCHAR AS stripe_customer_id,
    TRY_CAST(TRIM(JSON_EXTRACT_PATH_TEXT(metadata, 'organization_id')) AS NUMBER(38, 0)) AS metadata_organization_id,
    /* strings */
    @normalized_email(email) AS email,
    name::VARCHAR AS customer_name,
    LOWER(currency)::VARCHAR AS currency,
    /* booleans */
    COALESCE(delinquent, FALSE) AS is_delinquent,
    COALESCE(deleted, FALSE) AS is_deleted,
    COALESCE(livemode, FALSE) AS is_livemode,
    /* timestamps (Stripe sends Unix seconds) */
    @unix_to_timestamp(created) AS created_at,
    @unix_to_timestamp(updated) AS updated_at,
    CONVERT_TIMEZONE('UTC', _airbyte_extracted_at)::TIMESTAMP_NTZ AS extracted_at
  FROM source
)
SELECT
  stripe_customer_id,
  metadata_organization_id,
  email,
  customer_name,
  currency,
  is_delinquent,
  is_deleted,
  is_livemode,
  created_at,
  updated_at,
  extracted_at
FROM renamed
