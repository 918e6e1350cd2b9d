"""The one-time Snowflake setup grants only what the service needs, and nothing account-wide."""

import re

import sqlglot
from sqlglot import exp

from meshctl.settings import PROJECT_DIR

SETUP = (PROJECT_DIR / "admin" / "snowflake_setup.sql").read_text()


def _statements() -> list[str]:
    body = "\n".join(line for line in SETUP.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def test_every_statement_parses_as_snowflake():
    for statement in _statements():
        parsed = sqlglot.parse_one(statement, read="snowflake")
        assert parsed is not None, statement


def test_no_account_wide_privilege():
    for statement in _statements():
        upper = " ".join(statement.upper().split())
        assert "ACCOUNTADMIN" not in upper, statement
        assert not re.search(r"\bON ACCOUNT\b", upper), statement
        assert "MANAGE GRANTS" not in upper and "CREATE DATABASE" not in upper, statement
        if upper.startswith("GRANT") and "TO ROLE SQLMESH_ROLE" in upper:
            assert "ALL PRIVILEGES" not in upper, statement


def test_reads_both_raw_schemas_now_and_later():
    grants = {" ".join(s.upper().split()) for s in _statements() if s.upper().startswith("GRANT")}
    for schema in ("GOODWORD_WH.RAW", "AIRBYTE_DB.RAW"):
        assert f"GRANT USAGE ON SCHEMA {schema} TO ROLE SQLMESH_ROLE" in grants
        assert f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO ROLE SQLMESH_ROLE" in grants
        assert f"GRANT SELECT ON FUTURE TABLES IN SCHEMA {schema} TO ROLE SQLMESH_ROLE" in grants
    assert "GRANT CREATE SCHEMA ON DATABASE GOODWORD_WH TO ROLE SQLMESH_ROLE" in grants
    # Writing anywhere but GOODWORD_WH is not granted.
    assert not any("AIRBYTE_DB" in g and ("CREATE" in g or "OWNERSHIP" in g) for g in grants)


def test_service_user_is_key_pair_only_on_a_small_suspending_warehouse():
    statements = [" ".join(s.upper().split()) for s in _statements()]
    user = next(s for s in statements if s.startswith("CREATE USER"))
    assert "TYPE = SERVICE" in user and "RSA_PUBLIC_KEY" in user and "PASSWORD" not in user
    warehouse = next(s for s in statements if s.startswith("CREATE WAREHOUSE"))
    assert "WAREHOUSE_SIZE = XSMALL" in warehouse and "AUTO_SUSPEND = 60" in warehouse
    assert isinstance(sqlglot.parse_one(user, read="snowflake"), exp.Expression)


def test_cost_reads_only_the_service_users_own_query_history_through_a_view():
    from meshctl.settings import Settings

    statements = [" ".join(s.upper().split()) for s in _statements()]
    to_service = [s for s in statements if s.startswith("GRANT") and s.endswith("TO ROLE SQLMESH_ROLE")]
    # Nothing of the SNOWFLAKE database reaches the service role itself.
    assert not any("DATABASE ROLE SNOWFLAKE" in s or "IMPORTED PRIVILEGES" in s for s in to_service)
    view_name = Settings().cost_query_history.upper()
    view = next(s for s in statements if s.startswith("CREATE OR REPLACE SECURE VIEW"))
    assert f"VIEW {view_name} AS" in view
    assert "FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY WHERE USER_NAME = 'SQLMESH'" in view
    assert "QUERY_TEXT" not in view
    for column in ("QUERY_TAG", "START_TIME", "EXECUTION_TIME", "WAREHOUSE_SIZE", "CREDITS_USED_CLOUD_SERVICES"):
        assert column in view  # what meshctl/cost.py reads
    assert f"GRANT SELECT ON VIEW {view_name} TO ROLE SQLMESH_ROLE" in to_service
    # The view's owner holds the database role and is granted to no user.
    assert "GRANT DATABASE ROLE SNOWFLAKE.GOVERNANCE_VIEWER TO ROLE SQLMESH_USAGE_OWNER" in statements
    assert not any(s.startswith("GRANT ROLE SQLMESH_USAGE_OWNER TO USER") for s in statements)
