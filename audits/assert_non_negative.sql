/* Money and counts that can never be negative (MRR, invoice amounts, member counts). */
AUDIT (
  name assert_non_negative
);

SELECT
  *
FROM @this_model
WHERE
  @REDUCE(@EACH(@columns, c -> c < 0), (l, r) -> l OR r)
