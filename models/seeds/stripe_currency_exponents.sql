MODEL (
  name seeds.stripe_currency_exponents,
  kind SEED (
    path '../../seeds/stripe_currency_exponents.csv'
  ),
  columns (
    currency VARCHAR,
    exponent NUMBER(38, 0)
  ),
  grain currency,
  owner analytics_engineering,
  /* a seed has no query to unit-test; its rows are audited, and every model reading it is tested */
  ignored_rules ['nomissingunittest'],
  description 'Stripe''s currencies whose minor unit is not a hundredth (marts.md "Money in a currency''s major unit"): zero-decimal ones (exponent 0) and three-decimal ones (exponent 3). Every other currency has two decimals. The one list of them; every money column divides by 10^exponent.',
  audits (
    not_null(columns := (currency, exponent)),
    unique_values(columns := (currency)),
    accepted_values(column := exponent, is_in := (0, 3))
  ),
  column_descriptions (
    currency = 'Lower-case ISO 4217 code as Stripe sends it.',
    exponent = 'Decimal places of the minor unit: an amount in minor units divided by 10^exponent is in major units.'
  )
);
