"""The one-time Snowflake setup grants only what the service needs, and nothing account-wide; and
every statement is one Snowflake accepts, as far as a test without an account can tell.

sqlglot parses what it models into typed expressions and falls back to a generic `Command` for
anything else, so "it parsed" proves nothing: a misspelt GRANT is a Command too. Here a statement
must be either an expression sqlglot models, with each GRANT's privileges checked against the
ones Snowflake has for that kind of object, or one of the few statement kinds sqlglot does not
model, each matched whole against its Snowflake grammar (below). The negative cases prove the
check can fail."""

import re

import pytest
import sqlglot
from sqlglot import exp

from meshctl.settings import PROJECT_DIR

SETUP = (PROJECT_DIR / "admin" / "snowflake_setup.sql").read_text()

# Privileges Snowflake has on each kind of object this file grants on (the subset a service
# role could be given; OWNERSHIP and ALL are left out on purpose: see test_no_account_wide_privilege).
PRIVILEGES = {
    "WAREHOUSE": {"USAGE", "OPERATE", "MONITOR", "MODIFY"},
    "DATABASE": {"USAGE", "MONITOR", "CREATE SCHEMA"},
    "SCHEMA": {"USAGE", "MONITOR", "CREATE TABLE", "CREATE VIEW"},
    "TABLES": {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"},
    "VIEWS": {"SELECT", "REFERENCES"},
    "VIEW": {"SELECT", "REFERENCES"},
}
_NAME = r"[A-Z_][A-Z0-9_$]*"
_QUALIFIED = rf"{_NAME}\.{_NAME}"
_STRING = r"'[^']*'"
_PRIVILEGE_LIST = r"(?P<privileges>[A-Z ]+(?:, [A-Z ]+)*)"
# Statement kinds sqlglot 30.2 parses only as Command, each with the grammar this file may use.
# A Command that matches none of them, or whose privileges are wrong, fails.
COMMANDS = {
    "CREATE ROLE": rf"CREATE ROLE IF NOT EXISTS {_NAME}( COMMENT = {_STRING})?",
    "CREATE USER": (
        rf"CREATE USER IF NOT EXISTS {_NAME}"
        rf"( (TYPE = (SERVICE|PERSON)|DEFAULT_ROLE = {_NAME}|DEFAULT_WAREHOUSE = {_NAME}"
        rf"|RSA_PUBLIC_KEY = {_STRING}|COMMENT = {_STRING}))+"
    ),
    "GRANT ROLE": rf"GRANT ROLE {_NAME} TO (ROLE|USER) {_NAME}",
    "GRANT DATABASE ROLE": rf"GRANT DATABASE ROLE {_QUALIFIED} TO ROLE {_NAME}",
    "GRANT ON ALL/FUTURE": (
        rf"GRANT {_PRIVILEGE_LIST} ON (ALL|FUTURE) (?P<kind>TABLES|VIEWS) IN SCHEMA {_QUALIFIED}"
        rf" TO ROLE {_NAME}"
    ),
    "SHOW GRANTS": rf"SHOW GRANTS TO ROLE {_NAME}",
}
MODELLED = {exp.Use: {"ROLE"}, exp.Create: {"WAREHOUSE", "SCHEMA", "VIEW"}, exp.Grant: set(PRIVILEGES)}


def _statements(text: str = SETUP) -> list[str]:
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def _normalized(statement: str) -> str:
    return " ".join(statement.split())


def problems(statement: str) -> list[str]:
    """Why Snowflake would not take `statement` as this file means it; empty if it would."""
    try:
        parsed = sqlglot.parse_one(statement, read="snowflake")
    except sqlglot.errors.ParseError as exc:
        return [f"does not parse: {str(exc).splitlines()[0]}"]
    if isinstance(parsed, exp.Command):
        text = _normalized(statement)
        for kind, grammar in COMMANDS.items():
            match = re.fullmatch(grammar, text, flags=re.IGNORECASE)
            if match:
                if "privileges" in match.groupdict():
                    allowed = PRIVILEGES[match["kind"].upper()]
                    wrong = [p for p in match["privileges"].upper().split(", ") if p not in allowed]
                    return [f"{kind}: no privilege {p} on {match['kind'].upper()}" for p in wrong]
                return []
        return [f"not a statement sqlglot models, nor one of {sorted(COMMANDS)}: {text}"]
    allowed_kinds = MODELLED.get(type(parsed))
    kind = str(parsed.args.get("kind") or "").upper()
    if allowed_kinds is None or kind not in allowed_kinds:
        return [f"unexpected {type(parsed).__name__} {kind}".strip()]
    if isinstance(parsed, exp.Grant):
        found = []
        for privilege in parsed.args["privileges"]:
            name = _normalized(privilege.this.name if isinstance(privilege.this, exp.Expression) else str(privilege.this)).upper()
            if name not in PRIVILEGES[kind]:
                found.append(f"GRANT: no privilege {name} on {kind}")
        for principal in parsed.args["principals"]:
            if str(principal.args.get("kind") or "").upper() != "ROLE":
                found.append(f"GRANT: privileges go to a ROLE, not {principal.args.get('kind')}")
        return found
    return []


def test_every_statement_is_one_snowflake_takes():
    found = {s: problems(s) for s in _statements()}
    assert {s: p for s, p in found.items() if p} == {}
    # The file does use both kinds: what sqlglot models and what it does not.
    kinds = {type(sqlglot.parse_one(s, read="snowflake")) for s in _statements()}
    assert exp.Grant in kinds and exp.Command in kinds


@pytest.mark.parametrize(
    "statement",
    [
        "GRANT USAG ON DATABASE GOODWORD_WH TO ROLE SQLMESH_ROLE",  # parses as Grant
        "GRANT USAGE ON DATABSE GOODWORD_WH TO ROLE SQLMESH_ROLE",  # falls back to Command
        "GRANT USAGE ON DATABASE GOODWORD_WH TO ROEL SQLMESH_ROLE",
        "GRANT SELCT ON FUTURE TABLES IN SCHEMA GOODWORD_WH.RAW TO ROLE SQLMESH_ROLE",
        "GRANT SELECT ON FUTURE TABLE IN SCHEMA GOODWORD_WH.RAW TO ROLE SQLMESH_ROLE",
        "GRANT SELECT ON ALL TABLES IN SCHEMA RAW TO ROLE SQLMESH_ROLE",
        "GRANT OPERATE ON DATABASE GOODWORD_WH TO ROLE SQLMESH_ROLE",  # a warehouse privilege
        "GRANT USAGE ON DATABASE GOODWORD_WH TO USER SQLMESH",
        "GRANT ROLE SQLMESH_ROLE TO SQLMESH",
        "GRNAT USAGE ON DATABASE GOODWORD_WH TO ROLE SQLMESH_ROLE",
        "CREATE USER IF NOT EXISTS SQLMESH TYPE = SERVCE",
        "SHOW GRANT TO ROLE SQLMESH_ROLE",
    ],
)
def test_a_misspelt_statement_fails_the_check(statement):
    assert problems(statement), f"accepted: {statement}"


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


def test_cost_reads_only_the_service_users_own_query_history_through_a_view():
    from meshctl.settings import Settings

    statements = [" ".join(s.upper().split()) for s in _statements()]
    to_service = [s for s in statements if s.startswith("GRANT") and s.endswith("TO ROLE SQLMESH_ROLE")]
    # Nothing of the SNOWFLAKE database reaches the service role itself.
    assert not any("DATABASE ROLE SNOWFLAKE" in s or "IMPORTED PRIVILEGES" in s for s in to_service)
    view_name = Settings().cost.query_history.upper()
    view = next(s for s in statements if s.startswith("CREATE OR REPLACE SECURE VIEW"))
    assert f"VIEW {view_name} AS" in view
    assert "FROM SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY WHERE USER_NAME = 'SQLMESH'" in view
    assert "QUERY_TEXT" not in view
    for column in ("QUERY_TAG", "START_TIME", "EXECUTION_TIME", "WAREHOUSE_SIZE", "CREDITS_USED_CLOUD_SERVICES"):
        assert column in view  # what meshctl/status/cost.py reads
    assert f"GRANT SELECT ON VIEW {view_name} TO ROLE SQLMESH_ROLE" in to_service
    # The view's owner holds the database role and is granted to no user.
    assert "GRANT DATABASE ROLE SNOWFLAKE.GOVERNANCE_VIEWER TO ROLE SQLMESH_USAGE_OWNER" in statements
    assert not any(s.startswith("GRANT ROLE SQLMESH_USAGE_OWNER TO USER") for s in statements)
