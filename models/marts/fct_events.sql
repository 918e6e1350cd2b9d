MODEL (
  name marts.fct_events,
  /* Merged by event ID from the staging rows that arrived in this run's window: a late event of any
     age lands on its own EVENT_DATE, and a copy retried days later merges onto the row it copies.
     A window after a quiet hour is empty, and a run with nothing new does not get here at all
     (signals/arrivals.py). */
  kind INCREMENTAL_BY_UNIQUE_KEY (
    unique_key event_id
  ),
  grain event_id,
  owner analytics_engineering,
  description 'One row per distinct Goodword app event (RAW duplicates removed), with its UTC event date. Late events of any age count on their own date once they arrive.',
  /* Audited where this run wrote, not over the whole history: a run's rows are the ones that
     arrived in its window, and a duplicate needs one of them (the merge writes nothing else). */
  audits (
    not_null(
      columns := (event_id, event_date, occurred_at, has_valid_properties),
      condition := @arrived(replicated_at)
    ),
    unique_values(
      columns := (event_id),
      condition := event_id IN (SELECT event_id FROM @this_model WHERE @arrived(replicated_at))
    ),
    accepted_values_non_blocking(
      column := event_type,
      is_in := @VAR('event_types'),
      condition := @arrived(replicated_at)
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
    has_valid_properties = 'True when the RAW properties text was a JSON object.',
    replicated_at = 'When the latest copy of the event landed in RAW (UTC): the arrival time downstream models read their windows by.'
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
    has_valid_properties,
    replicated_at
  FROM staging.stg_goodword_app__events
  WHERE
    @arrived(replicated_at)
), deduplicated AS (
  /* the window can hold two copies of an event (the overlap re-read, or a retried batch) */
  SELECT
    *
  FROM events
  QUALIFY
    ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY replicated_at DESC) = 1
), final AS (
  SELECT
    event_id,
    user_id,
    organization_id,
    event_type,
    occurred_at,
    event_date,
    properties,
    has_valid_properties,
    replicated_at
  FROM deduplicated
)
SELECT
  event_id,
  user_id,
  organization_id,
  event_type,
  occurred_at,
  event_date,
  properties,
  has_valid_properties,
  replicated_at
FROM final
