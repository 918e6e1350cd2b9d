/* Rows where a timestamp lies more than `tolerance_minutes` after a reference timestamp of the
   same row, e.g. an event that claims to have happened after it was replicated (clock skew). */
AUDIT (
  name assert_not_later_than,
  defaults (condition = TRUE)
);

SELECT
  *
FROM @this_model
WHERE
  @column > DATEADD('minute', @tolerance_minutes, @reference_column) AND @condition
