MODEL (
  name intermediate.int_active_users_daily,
  /* DAU/WAU/MAU per date, recomputed only for the dates a run can have changed: from the oldest
     date among the events that arrived through the run's date (a new user-day reaches 27 dates on,
     and an event older than all others moves the first date back), and the dates the run's
     interval spans, so a day without events still gets its row. Earlier dates keep their rows, so
     a run costs how late its events are, not the history. */
  kind INCREMENTAL_BY_UNIQUE_KEY (
    unique_key date
  ),
  grain date,
  owner analytics_engineering,
  description 'Active users per UTC date, from the first event date through the date of the run (the current day included, as far as its events have arrived); METRICS_DAILY publishes the complete dates of it.',
  audits (
    not_null(columns := (date, dau, wau, mau)),
    assert_non_negative(columns := (dau, wau, mau))
  ),
  column_descriptions (
    date = 'UTC calendar date.',
    dau = 'Distinct users with an event on DATE.',
    wau = 'Distinct users with an event in [DATE - 6, DATE].',
    mau = 'Distinct users with an event in [DATE - 27, DATE].'
  )
);

WITH arrived AS (
  /* the oldest date among the events that arrived (anonymous ones too: one can be the new first
     event date) */
  SELECT
    MIN(event_date) AS first_arrived_date
  FROM marts.fct_events
  WHERE
    @arrived(replicated_at)
), first_event AS (
  SELECT
    MIN(event_date) AS first_event_date
  FROM marts.fct_events
), day_offsets AS (
  @whole_numbers(100000, day_offset)
), affected_dates AS (
  /* every date from the oldest arrived event date (or the day before the run's interval) through
     the run's date: each of them can have changed, and none before */
  SELECT
    DATEADD(
      DAY,
      day_offsets.day_offset,
      LEAST(
        COALESCE(arrived.first_arrived_date, DATEADD(DAY, -1, @start_ts::TIMESTAMP_NTZ::DATE)),
        DATEADD(DAY, -1, @start_ts::TIMESTAMP_NTZ::DATE)
      )
    )::DATE AS date
  FROM arrived
  CROSS JOIN day_offsets
), calendar AS (
  SELECT
    affected_dates.date
  FROM affected_dates
  CROSS JOIN first_event
  WHERE
    affected_dates.date >= first_event.first_event_date
    AND affected_dates.date <= @end_ts::TIMESTAMP_NTZ::DATE
), user_days AS (
  /* only the user-days the affected dates can see */
  SELECT
    user_id,
    event_date
  FROM intermediate.int_user_activity_daily
  WHERE
    event_date >= (SELECT DATEADD(DAY, -27, MIN(date)) FROM calendar)
    AND event_date <= (SELECT MAX(date) FROM calendar)
), final AS (
  SELECT
    calendar.date,
    COUNT(DISTINCT IFF(user_days.event_date = calendar.date, user_days.user_id, NULL))::NUMBER(38, 0) AS dau,
    COUNT(
      DISTINCT IFF(user_days.event_date >= DATEADD(DAY, -6, calendar.date)::DATE, user_days.user_id, NULL)
    )::NUMBER(38, 0) AS wau,
    COUNT(DISTINCT user_days.user_id)::NUMBER(38, 0) AS mau
  FROM calendar
  LEFT JOIN user_days
    ON user_days.event_date BETWEEN DATEADD(DAY, -27, calendar.date)::DATE AND calendar.date
  GROUP BY
    calendar.date
)
SELECT
  date,
  dau,
  wau,
  mau
FROM final
