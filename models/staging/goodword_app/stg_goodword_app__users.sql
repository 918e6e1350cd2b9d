MODEL (
  name staging.stg_goodword_app__users,
  kind VIEW,
  grain user_id,
  owner analytics_engineering,
  signals [raw_arrivals(sync_gap_hours := @VAR('airbyte_max_sync_gap_hours'))],
  description 'Goodword users, latest replicated version per ID (greatest UPDATED_AT, then greatest _REPLICATED_AT); email lower-cased and trimmed.',
  audits (
    not_null(columns := (user_id)),
    unique_values(columns := (user_id)),
    accepted_values_non_blocking(column := role, is_in := @VAR('user_roles')),
    accepted_values_non_blocking(column := status, is_in := @VAR('user_statuses'))
  ),
  column_descriptions (
    user_id = 'Goodword user ID (app primary key).',
    organization_id = 'Organization the user belongs to; may point at a deleted or not-yet-replicated organization.',
    email = 'Email address, lower-cased, surrounding whitespace removed.',
    full_name = 'Full name, when given.',
    role = 'Role in the organization: owner, admin, member.',
    status = 'Account status: invited, active, deactivated.',
    is_deleted = 'True when the user is soft-deleted (DELETED_AT set) in its latest version.',
    created_at = 'When the user was created (UTC).',
    updated_at = 'When this (latest) version was written in the app (UTC).',
    last_login_at = 'Last login (UTC); null when the user never logged in.',
    deleted_at = 'When the user was soft-deleted (UTC); null when not deleted.',
    replicated_at = 'When the replication batch carrying this version was loaded (UTC).'
  )
);

/* USERS is replicated incrementally: one RAW row per replicated version, and a retried batch can
   append the same version again. The latest version wins: greatest UPDATED_AT, ties broken by the
   latest _REPLICATED_AT (NULLS LAST written out: Snowflake and DuckDB default differently). */
WITH source AS (
  SELECT
    *
  FROM GOODWORD_WH.RAW.USERS
), renamed AS (
  SELECT
    /* ids */
    id::NUMBER(38, 0) AS user_id,
    organization_id::NUMBER(38, 0) AS organization_id,
    /* strings */
    /* trims any surrounding whitespace (tabs, line breaks), not only spaces as TRIM does */
    @normalized_email(email) AS email,
    full_name::VARCHAR AS full_name,
    role::VARCHAR AS role,
    status::VARCHAR AS status,
    /* booleans */
    deleted_at IS NOT NULL AS is_deleted,
    /* timestamps */
    created_at::TIMESTAMP_NTZ AS created_at,
    updated_at::TIMESTAMP_NTZ AS updated_at,
    last_login_at::TIMESTAMP_NTZ AS last_login_at,
    deleted_at::TIMESTAMP_NTZ AS deleted_at,
    _replicated_at::TIMESTAMP_NTZ AS replicated_at
  FROM source
), deduplicated AS (
  SELECT
    *
  FROM renamed
  QUALIFY
    ROW_NUMBER() OVER (
      PARTITION BY user_id
      ORDER BY updated_at DESC NULLS LAST, replicated_at DESC NULLS LAST
    ) = 1
)
SELECT
  user_id,
  organization_id,
  email,
  full_name,
  role,
  status,
  is_deleted,
  created_at,
  updated_at,
  last_login_at,
  deleted_at,
  replicated_at
FROM deduplicated
