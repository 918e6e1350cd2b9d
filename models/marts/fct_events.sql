MODEL (
  name marts.fct_events,
  /* lookback 3: an event that occurred on day E arrives at most 72 h later, so before E+4 00:00
     UTC (the latest case, 23:59:59 on E, lands at 23:59:59 on E+3). Daily runs only process
     complete days, so the run that processes day E+3 starts after that arrival. SQLMesh's lookback
     adds the N preceding intervals to every interval it processes; with 3 that run reprocesses
     E..E+3 and picks the event up on its own date. 2 would miss events of the last hours of E. */
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column event_date,
    lookback 3
  ),
  grain event_id,
  owner analytics_engineering,
  description 'One row per distinct Goodword app event (RAW duplicates removed), by UTC event date. Late events (up to 72 h) are reprocessed onto their own date.',
  audits (
    not_null(columns := (event_id, event_date, occurred_at, has_valid_properties)),
    unique_values(columns := (event_id)),
    accepted_values_non_blocking(
      column := event_type,
      is_in := ('session_started', 'document_created', 'document_shared', 'comment_added', 'invite_sent')
    )
  ),
  column_descriptions (
    event_id = 'Event ID (primary key).',
    user_id = 'User who caused the event; null for anonymous events.',
    organization_id = 'Organization of the event, when known.',
    event_type = 'Event type as sent by the app, e.g. session_started, document_created, document_shared, comment_added, invite_sent; new types appear without notice.',
    occurred_at = 'When the event happened (UTC).',
    event_date = 'UTC calendar date of OCCURRED_AT.',
    properties = 'Event properties (VARIANT); null when the RAW text was not a JSON object (NULL, empty, invalid, array or scalar).',
    has_valid_properties = 'True when the RAW properties text was a JSON object.'
  )
);

WITH events AS (
  SELECT
    event_id,
    user_id,
    organization_id,
    event_type,
    occurred_at,
    event_date,
    properties,
    has_valid_properties
  FROM staging.stg_goodword_app__events
  WHERE
    event_date BETWEEN @start_date AND @end_date
), final AS (
  SELECT
    event_id,
    user_id,
    organization_id,
    event_type,
    occurred_at,
    event_date,
    properties,
    has_valid_properties
  FROM events
)
SELECT
  event_id,
  user_id,
  organization_id,
  event_type,
  occurred_at,
  event_date,
  properties,
  has_valid_properties
FROM final
