MODEL (
  name intermediate.int_user_activity_daily,
  /* The user-days DAU/WAU/MAU count: one row per user and date with at least one event. Events are
     immutable and never removed, so a pair, once there, stays; a run merges the pairs of the
     events that arrived in its window and touches nothing else. */
  kind INCREMENTAL_BY_UNIQUE_KEY (
    unique_key (user_id, event_date)
  ),
  grain (user_id, event_date),
  owner analytics_engineering,
  description 'One row per Goodword user and UTC date on which the user caused at least one event (distinct events, anonymous ones left out).',
  audits (
    not_null(columns := (user_id, event_date))
  ),
  column_descriptions (
    user_id = 'User who caused at least one event on EVENT_DATE.',
    event_date = 'UTC calendar date of the events.'
  )
);

WITH arrived_events AS (
  SELECT
    user_id,
    event_date
  FROM marts.fct_events
  WHERE
    @arrived(replicated_at) AND NOT user_id IS NULL
), final AS (
  SELECT DISTINCT
    user_id,
    event_date
  FROM arrived_events
)
SELECT
  user_id,
  event_date
FROM final
