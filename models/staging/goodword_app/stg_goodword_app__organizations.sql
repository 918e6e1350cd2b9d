MODEL (
  name staging.stg_goodword_app__organizations,
  kind VIEW,
  grain organization_id,
  owner analytics_engineering,
  /* A view (ORGANIZATIONS is small and reloaded in full); evaluated, and audited, only on runs
     after something landed in RAW. */
  signals [raw_arrivals(sync_gap_hours := @VAR('airbyte_max_sync_gap_hours'))],
  description 'Goodword organizations as replicated from the app (full reload, one row per ID): renamed, typed, country code upper-cased.',
  audits (
    not_null(columns := (organization_id)),
    unique_values(columns := (organization_id)),
    accepted_values_non_blocking(column := plan, is_in := @VAR('organization_plans'))
  ),
  column_descriptions (
    organization_id = 'Goodword organization ID (app primary key).',
    stripe_customer_id = 'Stripe customer (cus_...) billing this organization; null for free organizations.',
    organization_name = 'Organization name as entered in the app.',
    plan = 'App plan label: free, pro, team, enterprise (new values may appear, passed through as sent).',
    industry = 'Industry, when the organization gave one.',
    country_code = 'ISO-3166 alpha-2 country code, upper-cased (the app does not guarantee case); null when unknown.',
    is_deleted = 'True when the organization is soft-deleted (DELETED_AT set).',
    created_at = 'When the organization was created (UTC).',
    updated_at = 'When the organization row last changed in the app (UTC).',
    deleted_at = 'When the organization was soft-deleted (UTC); null when not deleted.',
    replicated_at = 'When the replication batch carrying this row was loaded (UTC).'
  )
);

/* The replication service reloads ORGANIZATIONS in full (one row per ID), so there is nothing to
   deduplicate; the unique_values audit stops the build if that promise is ever broken. */
WITH source AS (
  SELECT
    *
  FROM GOODWORD_WH.RAW.ORGANIZATIONS
), renamed AS (
  SELECT
    /* ids */
    id::NUMBER(38, 0) AS organization_id,
    stripe_customer_id::VARCHAR AS stripe_customer_id,
    /* strings */
    name::VARCHAR AS organization_name,
    plan::VARCHAR AS plan,
    industry::VARCHAR AS industry,
    UPPER(country_code)::VARCHAR AS country_code,
    /* booleans */
    deleted_at IS NOT NULL AS is_deleted,
    /* timestamps */
    created_at::TIMESTAMP_NTZ AS created_at,
    updated_at::TIMESTAMP_NTZ AS updated_at,
    deleted_at::TIMESTAMP_NTZ AS deleted_at,
    _replicated_at::TIMESTAMP_NTZ AS replicated_at
  FROM source
)
SELECT
  organization_id,
  stripe_customer_id,
  organization_name,
  plan,
  industry,
  country_code,
  is_deleted,
  created_at,
  updated_at,
  deleted_at,
  replicated_at
FROM renamed
