MODEL (
  name staging.stg_goodword_app__events,
  /* Incremental, not a view: a view deduplicates all of RAW EVENTS on every run before a date
     filter can apply, so a run's cost grew with the history (see README "Benchmark"). Lookback 3
     for the same reason as marts.fct_events: a 72 h late event lands inside the reprocessed days. */
  kind INCREMENTAL_BY_TIME_RANGE (
    time_column event_date,
    lookback 3
  ),
  grain event_id,
  owner analytics_engineering,
  /* Build an interval only once the replication batch that closes it has landed. */
  signals [goodword_raw_landed(table := 'GOODWORD_WH.RAW.EVENTS')],
  description 'Goodword app events, one row per distinct event ID (RAW can hold the same row twice); PROPERTIES parsed from text, kept only when it is a JSON object.',
  audits (
    not_null(columns := (event_id, occurred_at)),
    unique_values(columns := (event_id)),
    accepted_values_non_blocking(
      column := event_type,
      is_in := ('session_started', 'document_created', 'document_shared', 'comment_added', 'invite_sent')
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
    replicated_at = 'When the earliest copy of the event was loaded (UTC).'
  )
);

/* EVENTS is append-only and at-least-once: the same row can be appended twice, so keep one copy per
   ID (the copies are identical; the earliest load is kept so REPLICATED_AT is the first arrival).
   Copies share OCCURRED_AT, so they fall in the same interval: deduplicating within it is exact.
   PROPERTIES is text written by the app. It is kept only when it parses and is a JSON object: a
   JSON text that parses and starts with "{" (after leading whitespace) is an object. This test is
   written without IS_OBJECT/TYPEOF, which have no DuckDB equivalent, so it gives the same answer on
   Snowflake and DuckDB. */
WITH source AS (
  SELECT
    *
  FROM GOODWORD_WH.RAW.EVENTS
  WHERE
    occurred_at BETWEEN @start_ts AND @end_ts
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
