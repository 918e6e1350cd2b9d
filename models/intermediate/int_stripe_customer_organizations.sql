MODEL (
  name intermediate.int_stripe_customer_organizations,
  kind VIEW,
  grain stripe_customer_id,
  owner analytics_engineering,
  description 'The Goodword organization of every Stripe customer seen in customers, subscriptions or invoices (marts.md: the organization whose STRIPE_CUSTOMER_ID is the customer, else metadata.organization_id when that organization exists, else null).',
  audits (
    not_null(columns := (stripe_customer_id)),
    unique_values(columns := (stripe_customer_id)),
    accepted_values(column := organization_match, is_in := ('organization_stripe_customer_id', 'stripe_customer_metadata'))
  ),
  column_descriptions (
    stripe_customer_id = 'Stripe customer ID (cus_...).',
    organization_id = 'Goodword organization of the customer; null when neither rule resolves.',
    organization_match = 'Which rule resolved ORGANIZATION_ID: organization_stripe_customer_id or stripe_customer_metadata; null when unresolved.'
  )
);

/* Customers that appear only on an invoice or a subscription (not in STRIPE_CUSTOMERS) are kept:
   the first rule needs only the customer ID. "Exists" means the organization was replicated,
   soft-deleted or not (the first rule does not exclude deleted organizations either). Should two
   organizations carry the same STRIPE_CUSTOMER_ID, a live one wins over a soft-deleted one, then the
   lowest ID, so the answer is deterministic. */
WITH customers AS (
  SELECT
    stripe_customer_id,
    metadata_organization_id
  FROM staging.stg_stripe__customers
), subscriptions AS (
  SELECT
    stripe_customer_id
  FROM staging.stg_stripe__subscriptions
), invoices AS (
  SELECT
    stripe_customer_id
  FROM staging.stg_stripe__invoices
), organizations AS (
  SELECT
    organization_id,
    stripe_customer_id,
    is_deleted
  FROM staging.stg_goodword_app__organizations
), stripe_customer_ids AS (
  SELECT
    stripe_customer_id
  FROM customers
  UNION
  SELECT
    stripe_customer_id
  FROM subscriptions
  UNION
  SELECT
    stripe_customer_id
  FROM invoices
), organization_by_stripe_customer_id AS (
  SELECT
    stripe_customer_id,
    organization_id
  FROM organizations
  WHERE
    NOT stripe_customer_id IS NULL
  QUALIFY
    ROW_NUMBER() OVER (PARTITION BY stripe_customer_id ORDER BY is_deleted ASC, organization_id ASC) = 1
), final AS (
  SELECT
    stripe_customer_ids.stripe_customer_id,
    COALESCE(
      organization_by_stripe_customer_id.organization_id,
      metadata_organizations.organization_id
    ) AS organization_id,
    CASE
      WHEN NOT organization_by_stripe_customer_id.organization_id IS NULL
      THEN 'organization_stripe_customer_id'
      WHEN NOT metadata_organizations.organization_id IS NULL
      THEN 'stripe_customer_metadata'
    END AS organization_match
  FROM stripe_customer_ids
  LEFT JOIN organization_by_stripe_customer_id
    ON organization_by_stripe_customer_id.stripe_customer_id = stripe_customer_ids.stripe_customer_id
  LEFT JOIN customers
    ON customers.stripe_customer_id = stripe_customer_ids.stripe_customer_id
  LEFT JOIN organizations AS metadata_organizations
    ON metadata_organizations.organization_id = customers.metadata_organization_id
  WHERE
    NOT stripe_customer_ids.stripe_customer_id IS NULL
)
SELECT
  stripe_customer_id,
  organization_id,
  organization_match
FROM final
