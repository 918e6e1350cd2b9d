/* Subscriptions whose ITEMS object may not hold every item: Stripe marked the embedded list as
   truncated (has_more = true), or it holds more than the 20 items int_stripe_subscription_items
   reads (Stripe's own limit per subscription). Either way MRR would be understated. */
AUDIT (
  name assert_subscription_items_complete
);

SELECT
  *
FROM @this_model
WHERE
  JSON_EXTRACT_PATH_TEXT(@column, 'has_more') = 'true'
  OR NOT JSON_EXTRACT_PATH_TEXT(@column, 'data[20]') IS NULL
