MODEL (
  name marts.dim_organizations_history,
  /* SCD type 2 by column on PLAN, not by time: ORGANIZATIONS' UPDATED_AT moves on any edit (name,
     country...), so versioning by time would open a new period without a plan change; the grain is
     "per period of unchanged PLAN". */
  kind SCD_TYPE_2_BY_COLUMN (
    unique_key organization_id,
    columns [plan],
    valid_from_name valid_from,
    valid_to_name valid_to,
    time_data_type TIMESTAMP_NTZ,
    /* ORGANIZATIONS is truncated and reloaded: a run that reads it mid-reload must not close every
       period, so rows missing from RAW are not treated as deletions (soft deletes keep the row). */
    invalidate_hard_deletes FALSE
  ),
  grain (organization_id, valid_from),
  owner analytics_engineering,
  description 'Plan history of Goodword organizations: one row per organization per period of unchanged PLAN (SCD type 2). Periods open when a run first sees a plan (the first load opens at 1970-01-01: the plan held before history was kept is unknown) and close when a later run sees another plan.',
  audits (
    not_null(columns := (organization_id, valid_from)),
    unique_combination_of_columns(columns := (organization_id, valid_from)),
    assert_valid_periods(key := organization_id, valid_from := valid_from, valid_to := valid_to),
    accepted_values_non_blocking(column := plan, is_in := @VAR('organization_plans'))
  ),
  column_descriptions (
    organization_id = 'Goodword organization ID.',
    plan = 'App plan during the period: free, pro, team, enterprise (new values may appear).',
    valid_from = 'Start of the period (UTC, inclusive): when a run first saw this plan; 1970-01-01 for plans present at the first load.',
    valid_to = 'End of the period (UTC, exclusive): when a run first saw the next plan; null for the current period.'
  )
);

WITH organizations AS (
  SELECT
    organization_id,
    plan
  FROM staging.stg_goodword_app__organizations
), final AS (
  SELECT
    organization_id,
    plan
  FROM organizations
)
SELECT
  organization_id,
  plan
FROM final
