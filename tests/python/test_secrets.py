"""Credentials from AWS Secrets Manager (moto over HTTP) through to SQLMesh's Snowflake config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from meshctl import secrets
from meshctl.settings import PROJECT_DIR, Settings

PASSPHRASE = "correct horse battery staple"
STATE_PASSWORD = "pg-pw-7f3a9c"


@pytest.fixture
def rsa_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    ).decode()
    return key, pem


@pytest.fixture
def sm(aws_env):
    return boto3.client("secretsmanager", endpoint_url=aws_env["AWS_ENDPOINT_URL"])


def _put(sm, name: str, value) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        sm.create_secret(Name=name, SecretString=text)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=name, SecretString=text)


def _settings(aws_env, **state_db) -> Settings:
    """Settings on gateway snowflake with secrets from moto; `state_db` values set explicitly."""
    return Settings(
        _env_file=None,
        MESHCTL_GATEWAY="snowflake",
        aws={"MESHCTL_SECRETS": "aws", "AWS_ENDPOINT_URL": aws_env["AWS_ENDPOINT_URL"]},
        snowflake={"SNOWFLAKE_SECRET_NAME": "t-snowflake"},
        state_db={"STATE_DB_SECRET_NAME": "t-aurora", **state_db},
    )


def _snowflake_secret(pem: str) -> dict:
    return {
        "account": "ab12345.us-east-2.aws",
        "user": "SQLMESH",
        "role": "SQLMESH_ROLE",
        "warehouse": "SQLMESH_WH",
        "database": "GOODWORD_WH",
        "private_key": pem,
        "private_key_passphrase": PASSPHRASE,
    }


def test_env_backend_reads_nothing_from_aws(aws_env):
    settings = Settings(_env_file=None, aws={"MESHCTL_SECRETS": "env"}, snowflake={"SNOWFLAKE_ACCOUNT": "acct"})
    assert secrets.resolve(settings, client=object()) is settings


def test_secrets_fill_settings_and_key_reaches_sqlmesh(aws_env, sm, rsa_key, monkeypatch):
    key, pem = rsa_key
    _put(sm, "t-snowflake", _snowflake_secret(pem))
    _put(sm, "t-aurora", {"host": "aurora.internal", "port": 6543, "dbname": "sqlmesh_state",
                          "username": "sqlmesh", "password": STATE_PASSWORD})
    for var in ("SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_PATH", "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
        monkeypatch.delenv(var, raising=False)

    resolved = secrets.resolve(_settings(aws_env))
    assert resolved.snowflake.account == "ab12345.us-east-2.aws"
    assert resolved.snowflake.role == "SQLMESH_ROLE"
    assert resolved.state_db.host == "aurora.internal"
    assert resolved.state_db.port == 6543
    assert resolved.state_db.password.get_secret_value() == STATE_PASSWORD

    from sqlmesh.core.config.loader import load_config_from_paths
    from sqlmesh.core.config import Config

    with secrets.exported(_settings(aws_env)):
        config = load_config_from_paths(Config, project_paths=[PROJECT_DIR / "config.yaml"])
    gateway = config.gateways["snowflake"]
    conn = gateway.connection
    assert conn.account == "ab12345.us-east-2.aws"
    assert conn.user == "SQLMESH" and conn.role == "SQLMESH_ROLE" and conn.warehouse == "SQLMESH_WH"
    assert conn.password is None
    # SQLMesh hands the connector DER bytes; they must be this very key, decrypted.
    loaded = serialization.load_der_private_key(conn.private_key, password=None)
    assert loaded.private_numbers() == key.private_numbers()
    assert conn.session_parameters["QUERY_TAG"].startswith("goodword-sqlmesh:")
    state = gateway.state_connection
    assert (state.host, state.port, state.user, state.password) == (
        "aurora.internal", 6543, "sqlmesh", STATE_PASSWORD)
    assert "STATE_DB_PASSWORD" not in os.environ or os.environ["STATE_DB_PASSWORD"] != STATE_PASSWORD


def test_explicit_environment_wins_over_secret(aws_env, sm, rsa_key):
    _put(sm, "t-snowflake", _snowflake_secret(rsa_key[1]))
    _put(sm, "t-aurora", {"host": "aurora.internal", "username": "sqlmesh", "password": "x"})
    resolved = secrets.resolve(_settings(aws_env, STATE_DB_HOST="override.internal"))
    assert resolved.state_db.host == "override.internal"
    assert resolved.state_db.user == "sqlmesh"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "secret 't-aurora' does not exist"),
        ("{not json", "secret 't-aurora' is not valid JSON"),
        ('["a"]', "secret 't-aurora' must be a JSON object"),
        ({"username": "sqlmesh", "password": ""}, "secret 't-aurora' lacks key(s): password"),
        ({"username": "u", "password": STATE_PASSWORD, "port": "fivefour"},
         "secret 't-aurora' key 'port' is not an integer"),
    ],
)
def test_bad_state_secret_names_secret_and_key_never_value(aws_env, sm, rsa_key, value, expected):
    _put(sm, "t-snowflake", _snowflake_secret(rsa_key[1]))
    name = "t-aurora"
    try:
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except sm.exceptions.ResourceNotFoundException:
        pass
    if value is not None:
        _put(sm, name, value)
    with pytest.raises(secrets.SecretError) as err:
        secrets.resolve(_settings(aws_env))
    assert expected in str(err.value)
    assert STATE_PASSWORD not in str(err.value) and PASSPHRASE not in str(err.value)


def test_snowflake_secret_without_key_or_password(aws_env, sm):
    _put(sm, "t-snowflake", {"account": "a", "user": "u"})
    _put(sm, "t-aurora", {"username": "u", "password": "p"})
    with pytest.raises(secrets.SecretError, match="lacks key.*private_key or password"):
        secrets.resolve(_settings(aws_env))


def test_wrong_passphrase_is_named_not_printed(aws_env, sm, rsa_key, monkeypatch):
    secret = _snowflake_secret(rsa_key[1]) | {"private_key_passphrase": "not it"}
    _put(sm, "t-snowflake", secret)
    _put(sm, "t-aurora", {"username": "u", "password": "p"})
    monkeypatch.delenv("SNOWFLAKE_PRIVATE_KEY_PATH", raising=False)
    with pytest.raises(secrets.SecretError, match="passphrase") as err:
        secrets.connection_env(secrets.resolve(_settings(aws_env)))
    assert "not it" not in str(err.value)


def test_doctor_stops_on_missing_secret_and_prints_no_values(aws_env, sm, tmp_path):
    _put(sm, "t-aurora", {"username": "u", "password": STATE_PASSWORD})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "STATE_DB_"))}
    env.update(aws_env)
    env.update({"MESHCTL_SECRETS": "aws", "SNOWFLAKE_SECRET_NAME": "t-missing",
                "STATE_DB_SECRET_NAME": "t-aurora", "LOCAL_DATA_DIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "-m", "meshctl", "--gateway", "snowflake", "doctor"],
        capture_output=True, text=True, env=env, timeout=120, cwd=PROJECT_DIR,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "t-missing" in out and "does not exist" in out
    assert STATE_PASSWORD not in out
