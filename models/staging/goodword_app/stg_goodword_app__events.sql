MODEL (
  name staging.stg_goodword_app__events,
  /* By arrival, not by event date: a run reads only the RAW rows that landed since the last one
     (_REPLICATED_AT, the load time, is how Snowflake lays out an append-only table, so the filter
     prunes to the new micro-partitions), however old the events in them are. lookback 1 re-reads
     the previous 15-minute interval, for a batch stamped before a tick but committed after it. */
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column replicated_at,
    lookback 1
  ),
  /* one row per event ID per arrival window: a batch retried days later lands its events again,
     in a later window; marts.fct_events keeps one row per event */
  grain (event_id, replicated_at),
  owner analytics_engineering,
  signals [raw_arrivals(sync_gap_hours := @VAR('airbyte_max_sync_gap_hours'))],
  description 'Goodword app events as they arrive: one row per event ID per 15-minute arrival window (copies within a window removed; a copy retried in a later batch appears again, FCT_EVENTS keeps one); PROPERTIES parsed from text, kept only when it is a JSON object.',
  audits (
    not_null(columns := (event_id, occurred_at)),
    unique_values(columns := (event_id)),  /* within the window audited */
    accepted_values_non_blocking(
      column := event_type,
      is_in := @VAR('event_types')
    ),
    /* the contract allows events up to 5 minutes ahead of their replication (clock skew) */
    assert_not_later_than(
      column := occurred_at,
      reference_column := replicated_at,
      tolerance_minutes := 5,
      blocking := FALSE
    )
  ),
  column_descriptions (
    event_id = 'Event ID (unique per event in the app).',
    user_id = 'User who caused the event; null for anonymous events.',
    organization_id = 'Organization the event belongs to, when known.',
    event_type = 'Event type as sent by the app (new types appear without notice).',
    properties = 'Event properties parsed from the RAW text; null unless the text is a JSON object.',
    has_valid_properties = 'True when the RAW PROPERTIES text is a JSON object (false for NULL, empty, invalid JSON, arrays and scalars).',
    event_date = 'UTC calendar date of OCCURRED_AT.',
    occurred_at = 'When the event happened (UTC).',
    replicated_at = 'When the batch carrying this copy of the event was loaded (UTC): the arrival time the model is incremental on.'
  )
);

/* EVENTS is append-only and at-least-once: the same row can be appended twice. Copies in the same
   window are reduced to the earliest; a copy in a later window (a retried batch) is staged again and
   merged away by marts.fct_events on EVENT_ID.
   PROPERTIES is text written by the app. It is kept only when it parses and is a JSON object: a
   JSON text that parses and starts with "{" (after leading whitespace) is an object. This test is
   written without IS_OBJECT/TYPEOF, which have no DuckDB equivalent, so it gives the same answer on
   Snowflake and DuckDB. */
WITH source AS (
  SELECT
    *
  FROM GOODWORD_WH.RAW.EVENTS
  WHERE
    _replicated_at BETWEEN @start_ts::TIMESTAMP_NTZ AND @end_ts::TIMESTAMP_NTZ
), renamed AS (
  SELECT
    /* ids */
    id::NUMBER(38, 0) AS event_id,
    user_id::NUMBER(38, 0) AS user_id,
    organization_id::NUMBER(38, 0) AS organization_id,
    /* strings */
    event_type::VARCHAR AS event_type,
    /* semi-structured */
    COALESCE(
      TRY_PARSE_JSON(source.properties) IS NOT NULL
      AND LEFT(REGEXP_REPLACE(source.properties, '^[[:space:]]+', ''), 1) = '{',
      FALSE
    ) AS has_valid_properties,
    IFF(has_valid_properties, TRY_PARSE_JSON(source.properties), NULL) AS properties,
    /* dates */
    source.occurred_at::DATE AS event_date,
    /* timestamps */
    source.occurred_at::TIMESTAMP_NTZ AS occurred_at,
    _replicated_at::TIMESTAMP_NTZ AS replicated_at
  FROM source
), deduplicated AS (
  SELECT
    *
  FROM renamed
  QUALIFY
    ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY replicated_at ASC NULLS LAST) = 1
)
SELECT
  event_id,
  user_id,
  organization_id,
  event_type,
  properties,
  has_valid_properties,
  event_date,
  occurred_at,
  replicated_at
FROM deduplicated
