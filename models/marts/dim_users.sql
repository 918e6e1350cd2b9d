MODEL (
  name marts.dim_users,
  kind FULL,
  grain user_id,
  owner analytics_engineering,
  description 'One row per Goodword user: its latest replicated version (greatest UPDATED_AT, then _REPLICATED_AT), soft-deleted users included.',
  audits (
    not_null(columns := (user_id, is_deleted)),
    unique_values(columns := (user_id)),
    accepted_values_non_blocking(column := role, is_in := @VAR('user_roles')),
    accepted_values_non_blocking(column := status, is_in := @VAR('user_statuses'))
  ),
  column_descriptions (
    user_id = 'Goodword user ID (primary key).',
    organization_id = 'Organization the user belongs to; may point at a deleted or not (yet) replicated organization.',
    email = 'Email address, lower-case and trimmed.',
    role = 'Role in the organization: owner, admin, member.',
    status = 'Account status: invited, active, deactivated.',
    is_deleted = 'True when the latest version of the user is soft-deleted (DELETED_AT set).',
    created_at = 'When the user was created (UTC).',
    last_login_at = 'Last login (UTC); null when the user never logged in.'
  )
);

WITH users AS (
  SELECT
    user_id,
    organization_id,
    email,
    role,
    status,
    is_deleted,
    created_at,
    last_login_at
  FROM staging.stg_goodword_app__users
), final AS (
  SELECT
    user_id,
    organization_id,
    email,
    role,
    status,
    is_deleted,
    created_at,
    last_login_at
  FROM users
)
SELECT
  user_id,
  organization_id,
  email,
  role,
  status,
  is_deleted,
  created_at,
  last_login_at
FROM final
