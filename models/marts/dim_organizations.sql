MODEL (
  name marts.dim_organizations,
  kind FULL,
  grain organization_id,
  owner analytics_engineering,
  description 'One row per Goodword organization ever replicated (soft-deleted ones included), with its current plan and number of active members.',
  audits (
    not_null(columns := (organization_id, active_member_count, is_deleted)),
    unique_values(columns := (organization_id)),
    accepted_values_non_blocking(column := plan, is_in := @VAR('organization_plans')),
    assert_non_negative(columns := (active_member_count))
  ),
  column_descriptions (
    organization_id = 'Goodword organization ID (primary key).',
    organization_name = 'Organization name as entered in the app.',
    plan = 'Current app plan: free, pro, team, enterprise (new values may appear).',
    industry = 'Industry, when the organization gave one.',
    country_code = 'ISO-3166 alpha-2 country code, upper-case; null when unknown.',
    stripe_customer_id = 'Stripe customer (cus_...) billing the organization; null for free organizations.',
    is_deleted = 'True when the organization is soft-deleted in the app.',
    created_at = 'When the organization was created (UTC).',
    active_member_count = 'Users of the organization whose latest version has STATUS active and no DELETED_AT; 0 when none.'
  )
);

WITH organizations AS (
  SELECT
    organization_id,
    organization_name,
    plan,
    industry,
    country_code,
    stripe_customer_id,
    is_deleted,
    created_at
  FROM staging.stg_goodword_app__organizations
), users AS (
  SELECT
    user_id,
    organization_id,
    status,
    deleted_at
  FROM staging.stg_goodword_app__users
), active_members_per_organization AS (
  SELECT
    organization_id,
    COUNT(*) AS active_member_count
  FROM users
  WHERE
    status = 'active' AND deleted_at IS NULL
  GROUP BY
    organization_id
), final AS (
  SELECT
    organizations.organization_id,
    organizations.organization_name,
    organizations.plan,
    organizations.industry,
    organizations.country_code,
    organizations.stripe_customer_id,
    organizations.is_deleted,
    organizations.created_at,
    COALESCE(active_members_per_organization.active_member_count, 0)::NUMBER(38, 0) AS active_member_count
  FROM organizations
  LEFT JOIN active_members_per_organization
    ON active_members_per_organization.organization_id = organizations.organization_id
)
SELECT
  organization_id,
  organization_name,
  plan,
  industry,
  country_code,
  stripe_customer_id,
  is_deleted,
  created_at,
  active_member_count
FROM final
