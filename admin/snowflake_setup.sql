-- One-time Snowflake setup for the Goodword SQLMesh service. Run by an administrator, top to
-- bottom, in a worksheet or `snowsql -f admin/snowflake_setup.sql`.
--
-- What it creates, and nothing account-wide:
--   * SQLMESH_WH    a dedicated X-Small warehouse that suspends after 60 s
--   * SQLMESH_ROLE  reads both RAW schemas (current and future tables), creates and therefore
--                   owns the schemas SQLMesh builds in GOODWORD_WH (STAGING, MARTS, sqlmesh__*,
--                   and per-environment copies such as MARTS__DEV)
--   * SQLMESH       a SERVICE user (no password, RSA key-pair only) holding SQLMESH_ROLE
--   * GOODWORD_WH.SQLMESH_USAGE.QUERY_HISTORY  the service's own rows of QUERY_HISTORY (cost),
--                   owned by SQLMESH_USAGE_OWNER, a role no user holds
-- The service never needs ACCOUNTADMIN, CREATE DATABASE or MANAGE GRANTS.
--
-- Before running: generate the key pair (README "Production setup") and paste the public key
-- body (no header/footer lines) below in place of <RSA_PUBLIC_KEY>.

-- ---------------------------------------------------------------------------------------------
-- Warehouse (SYSADMIN owns compute)
USE ROLE SYSADMIN;
CREATE WAREHOUSE IF NOT EXISTS SQLMESH_WH
  WAREHOUSE_SIZE = XSMALL
  AUTO_SUSPEND = 60
  AUTO_RESUME = TRUE
  INITIALLY_SUSPENDED = TRUE
  COMMENT = 'Goodword SQLMesh transformations';

-- ---------------------------------------------------------------------------------------------
-- Role and service user (SECURITYADMIN owns users, roles and grants)
USE ROLE SECURITYADMIN;
CREATE ROLE IF NOT EXISTS SQLMESH_ROLE COMMENT = 'Goodword SQLMesh service';
-- Role hierarchy: administrators inherit what the service owns, so nothing becomes orphaned.
GRANT ROLE SQLMESH_ROLE TO ROLE SYSADMIN;

CREATE USER IF NOT EXISTS SQLMESH
  TYPE = SERVICE
  DEFAULT_ROLE = SQLMESH_ROLE
  DEFAULT_WAREHOUSE = SQLMESH_WH
  RSA_PUBLIC_KEY = '<RSA_PUBLIC_KEY>'
  COMMENT = 'Goodword SQLMesh service (key-pair auth only)';
GRANT ROLE SQLMESH_ROLE TO USER SQLMESH;

GRANT USAGE, OPERATE ON WAREHOUSE SQLMESH_WH TO ROLE SQLMESH_ROLE;

-- ---------------------------------------------------------------------------------------------
-- Read: GOODWORD_WH.RAW (replicated app tables), current and future tables and views
GRANT USAGE ON DATABASE GOODWORD_WH TO ROLE SQLMESH_ROLE;
GRANT USAGE ON SCHEMA GOODWORD_WH.RAW TO ROLE SQLMESH_ROLE;
GRANT SELECT ON ALL TABLES IN SCHEMA GOODWORD_WH.RAW TO ROLE SQLMESH_ROLE;
GRANT SELECT ON FUTURE TABLES IN SCHEMA GOODWORD_WH.RAW TO ROLE SQLMESH_ROLE;
GRANT SELECT ON ALL VIEWS IN SCHEMA GOODWORD_WH.RAW TO ROLE SQLMESH_ROLE;
GRANT SELECT ON FUTURE VIEWS IN SCHEMA GOODWORD_WH.RAW TO ROLE SQLMESH_ROLE;

-- Read: AIRBYTE_DB.RAW (Stripe streams landed by Airbyte)
GRANT USAGE ON DATABASE AIRBYTE_DB TO ROLE SQLMESH_ROLE;
GRANT USAGE ON SCHEMA AIRBYTE_DB.RAW TO ROLE SQLMESH_ROLE;
GRANT SELECT ON ALL TABLES IN SCHEMA AIRBYTE_DB.RAW TO ROLE SQLMESH_ROLE;
GRANT SELECT ON FUTURE TABLES IN SCHEMA AIRBYTE_DB.RAW TO ROLE SQLMESH_ROLE;

-- ---------------------------------------------------------------------------------------------
-- Write: SQLMesh creates its schemas in GOODWORD_WH and owns what it creates.
GRANT CREATE SCHEMA ON DATABASE GOODWORD_WH TO ROLE SQLMESH_ROLE;

-- If STAGING or MARTS already exist (created by someone else), hand them over instead, keeping
-- the grants consumers already have. Uncomment the lines that apply:
-- GRANT OWNERSHIP ON SCHEMA GOODWORD_WH.STAGING TO ROLE SQLMESH_ROLE COPY CURRENT GRANTS;
-- GRANT OWNERSHIP ON SCHEMA GOODWORD_WH.MARTS TO ROLE SQLMESH_ROLE COPY CURRENT GRANTS;

-- ---------------------------------------------------------------------------------------------
-- Cost attribution (`meshctl cost`, the status page): the service reads its OWN rows of
-- SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY, through a view, and nothing else of ACCOUNT_USAGE.
-- Why not a grant to SQLMESH_ROLE: QUERY_HISTORY is readable through the SNOWFLAKE database role
-- GOVERNANCE_VIEWER, or through IMPORTED PRIVILEGES ON DATABASE SNOWFLAKE, which opens every
-- ACCOUNT_USAGE view (login and access history included). Either would show the service every
-- user's statements, their query text included. Instead a role granted to no user owns a secure
-- view of the service user's rows, without QUERY_TEXT, and the service may only SELECT the view:
-- a view runs with its owner's rights, so SQLMESH_ROLE needs nothing on the SNOWFLAKE database.
-- (MESHCTL_COST_QUERY_HISTORY names the view; the columns are those meshctl/cost.py reads.)
USE ROLE SECURITYADMIN;
CREATE ROLE IF NOT EXISTS SQLMESH_USAGE_OWNER COMMENT = 'Owns the view of the SQLMesh service query history';
GRANT ROLE SQLMESH_USAGE_OWNER TO ROLE SYSADMIN;
-- Granting a SNOWFLAKE database role takes its owner or MANAGE GRANTS (SECURITYADMIN has it); an
-- account that refuses it here needs an account administrator for this one statement.
GRANT DATABASE ROLE SNOWFLAKE.GOVERNANCE_VIEWER TO ROLE SQLMESH_USAGE_OWNER;

USE ROLE SYSADMIN;
CREATE SCHEMA IF NOT EXISTS GOODWORD_WH.SQLMESH_USAGE COMMENT = 'The SQLMesh service own usage (cost attribution)';
GRANT USAGE ON DATABASE GOODWORD_WH TO ROLE SQLMESH_USAGE_OWNER;
GRANT USAGE, CREATE VIEW ON SCHEMA GOODWORD_WH.SQLMESH_USAGE TO ROLE SQLMESH_USAGE_OWNER;

USE ROLE SQLMESH_USAGE_OWNER;
CREATE OR REPLACE SECURE VIEW GOODWORD_WH.SQLMESH_USAGE.QUERY_HISTORY AS
SELECT QUERY_ID, QUERY_TAG, QUERY_TYPE, USER_NAME, ROLE_NAME, WAREHOUSE_NAME, WAREHOUSE_SIZE,
       EXECUTION_STATUS, START_TIME, END_TIME, TOTAL_ELAPSED_TIME, EXECUTION_TIME,
       CREDITS_USED_CLOUD_SERVICES
FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY
WHERE USER_NAME = 'SQLMESH';

USE ROLE SYSADMIN;
GRANT USAGE ON SCHEMA GOODWORD_WH.SQLMESH_USAGE TO ROLE SQLMESH_ROLE;
GRANT SELECT ON VIEW GOODWORD_WH.SQLMESH_USAGE.QUERY_HISTORY TO ROLE SQLMESH_ROLE;

-- ---------------------------------------------------------------------------------------------
-- Consumers (optional): a reporting role reads the marts. SQLMesh publishes MARTS as views over
-- its sqlmesh__MARTS tables; Snowflake views run with their owner's rights, so SELECT on the
-- views is all a reader needs. Replace REPORTER with your BI role.
-- GRANT USAGE ON DATABASE GOODWORD_WH TO ROLE REPORTER;
-- GRANT USAGE ON SCHEMA GOODWORD_WH.MARTS TO ROLE REPORTER;
-- GRANT SELECT ON FUTURE VIEWS IN SCHEMA GOODWORD_WH.MARTS TO ROLE REPORTER;

-- ---------------------------------------------------------------------------------------------
-- Check (as the service): `meshctl --gateway snowflake doctor` runs every probe this grants.
SHOW GRANTS TO ROLE SQLMESH_ROLE;
