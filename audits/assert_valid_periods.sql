/* Validity periods of a slowly changing dimension: each period ends after it starts, and each key
   has at most one open (current) period. Returns the offending rows. */
AUDIT (
  name assert_valid_periods
);

SELECT
  *
FROM @this_model
WHERE
  @valid_to IS NOT NULL AND @valid_from >= @valid_to
UNION ALL
SELECT
  *
FROM @this_model
WHERE
  @valid_to IS NULL
QUALIFY
  COUNT(*) OVER (PARTITION BY @key) > 1
