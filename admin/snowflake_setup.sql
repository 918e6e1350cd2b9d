-- One-time Snowflake setup for the Goodword SQLMesh service. Run by an administrator, top to
-- bottom, in a worksheet or `snowsql -f admin/snowflake_setup.sql`.
--
-- What it creates, and nothing account-wide:
--   * SQLMESH_WH    a dedicated X-Small warehouse that suspends after 60 s
--   * SQLMESH_ROLE  reads both RAW schemas (current and future tables), creates and therefore
--                   owns the schemas SQLMesh builds in GOODWORD_WH (STAGING, MARTS, sqlmesh__*,
--                   and per-environment copies such as MARTS__DEV)
--   * SQLMESH       a SERVICE user (no password, RSA key-pair only) holding SQLMESH_ROLE
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
-- Consumers (optional): a reporting role reads the marts. SQLMesh publishes MARTS as views over
-- its sqlmesh__MARTS tables; Snowflake views run with their owner's rights, so SELECT on the
-- views is all a reader needs. Replace REPORTER with your BI role.
-- GRANT USAGE ON DATABASE GOODWORD_WH TO ROLE REPORTER;
-- GRANT USAGE ON SCHEMA GOODWORD_WH.MARTS TO ROLE REPORTER;
-- GRANT SELECT ON FUTURE VIEWS IN SCHEMA GOODWORD_WH.MARTS TO ROLE REPORTER;

-- ---------------------------------------------------------------------------------------------
-- Check (as the service): `meshctl --gateway snowflake doctor` runs every probe this grants.
SHOW GRANTS TO ROLE SQLMESH_ROLE;
