MODEL (
  name marts.fct_invoices,
  kind FULL,
  grain invoice_id,
  owner analytics_engineering,
  description 'One row per Stripe invoice, amounts in major units of its currency, with the Goodword organization of its customer.',
  audits (
    not_null(columns := (invoice_id, stripe_customer_id)),
    unique_values(columns := (invoice_id)),
    accepted_values_non_blocking(column := status, is_in := @VAR('invoice_statuses')),
    assert_non_negative(columns := (amount_due, amount_paid))
  ),
  column_descriptions (
    invoice_id = 'Stripe invoice ID (primary key, in_...).',
    stripe_customer_id = 'Stripe customer (cus_...) billed.',
    organization_id = 'Goodword organization of the customer: the organization whose STRIPE_CUSTOMER_ID is the customer, else the customer metadata.organization_id when that organization exists; null otherwise.',
    subscription_id = 'Subscription the invoice bills; null for one-off invoices.',
    status = 'Stripe status: draft, open, paid, uncollectible, void.',
    currency = 'Invoice currency, lower-case ISO code.',
    amount_due = 'Amount due, major units of CURRENCY, NUMBER(38, 2).',
    amount_paid = 'Amount paid, major units of CURRENCY, NUMBER(38, 2).',
    created_at = 'When the invoice was created (UTC).',
    paid_at = 'When the invoice was paid (status_transitions.paid_at, UTC); null until paid.',
    period_start_at = 'Start of the billed period (UTC).',
    period_end_at = 'End of the billed period (UTC).'
  )
);

WITH invoices AS (
  SELECT
    invoice_id,
    stripe_customer_id,
    subscription_id,
    status,
    currency,
    amount_due,
    amount_paid,
    created_at,
    paid_at,
    period_start_at,
    period_end_at
  FROM staging.stg_stripe__invoices
), customer_organizations AS (
  SELECT
    stripe_customer_id,
    organization_id
  FROM intermediate.int_stripe_customer_organizations
), final AS (
  SELECT
    invoices.invoice_id,
    invoices.stripe_customer_id,
    customer_organizations.organization_id,
    invoices.subscription_id,
    invoices.status,
    invoices.currency,
    invoices.amount_due,
    invoices.amount_paid,
    invoices.created_at,
    invoices.paid_at,
    invoices.period_start_at,
    invoices.period_end_at
  FROM invoices
  LEFT JOIN customer_organizations
    ON customer_organizations.stripe_customer_id = invoices.stripe_customer_id
)
SELECT
  invoice_id,
  stripe_customer_id,
  organization_id,
  subscription_id,
  status,
  currency,
  amount_due,
  amount_paid,
  created_at,
  paid_at,
  period_start_at,
  period_end_at
FROM final
