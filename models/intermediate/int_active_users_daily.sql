MODEL (
  name intermediate.int_active_users_daily,
  /* DAU/WAU/MAU per date, recomputed only for the dates a run can have changed: the 28 dates an
     arrived event counts towards (its own and the 27 after, MAU's reach), and the dates this run's
     interval spans, so a day without events still gets its row. Every other date keeps its row,
     so a run costs what arrived, not the history. */
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

WITH arrived_event_dates AS (
  /* anonymous events too: they change no count, but one can be the new first event date */
  SELECT DISTINCT
    event_date
  FROM marts.fct_events
  WHERE
    @arrived(replicated_at)
), mau_reach AS (
  @whole_numbers(28, day_offset)
), first_event AS (
  SELECT
    MIN(event_date) AS first_event_date
  FROM marts.fct_events
), run_days AS (
  /* the dates this run's interval spans, and the day before (a run just after midnight closes it) */
  @whole_numbers(100000, day_offset)
), affected_dates AS (
  SELECT
    DATEADD(DAY, mau_reach.day_offset, arrived_event_dates.event_date)::DATE AS date
  FROM arrived_event_dates
  CROSS JOIN mau_reach
  UNION
  SELECT
    DATEADD(DAY, run_days.day_offset, DATEADD(DAY, -1, @start_ts::TIMESTAMP_NTZ::DATE))::DATE AS date
  FROM run_days
  WHERE
    DATEADD(DAY, run_days.day_offset, DATEADD(DAY, -1, @start_ts::TIMESTAMP_NTZ::DATE))::DATE
      <= @end_ts::TIMESTAMP_NTZ::DATE
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
