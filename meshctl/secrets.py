"""Credentials: from the environment, or from AWS Secrets Manager when `MESHCTL_SECRETS=aws`.

The runtime resolves secrets once at start and hands the connection values to SQLMesh through
the same environment variables `config.yaml` reads, so `sqlmesh` and `meshctl` agree. Values are
never logged; errors name the secret and the key only.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterator, Mapping

from pydantic import BaseModel, SecretStr

from meshctl.errors import ExpectedFailure
from meshctl.settings import Settings

# The keys each JSON secret may hold, mapped to fields of its part (settings.snowflake,
# settings.state_db). Documented in docs/deployment.md.
SNOWFLAKE_SECRET_KEYS = {
    "account": "account",
    "user": "user",
    "role": "role",
    "warehouse": "warehouse",
    "database": "database",
    "password": "password",
    "private_key": "private_key",
    "private_key_passphrase": "private_key_passphrase",
}
STATE_DB_SECRET_KEYS = {
    "host": "host",
    "port": "port",
    "dbname": "name",
    "username": "user",
    "password": "password",
}
# Fields of those parts that hold a secret value.
SECRET_FIELDS = {"password", "private_key", "private_key_passphrase"}


class SecretError(ExpectedFailure):
    """A secret is missing, unreadable or lacks a key. The message never holds a value."""


def _fetch_json_secret(client, name: str) -> dict:
    try:
        raw = client.get_secret_value(SecretId=name)
    except client.exceptions.ResourceNotFoundException:
        raise SecretError(f"Secrets Manager secret '{name}' does not exist") from None
    except Exception as exc:  # boto3 raises many classes; the message is what a person needs
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise SecretError(f"cannot read Secrets Manager secret '{name}': {code}") from None
    text = raw.get("SecretString")
    if text is None:
        raise SecretError(f"secret '{name}' is binary; expected a JSON object (SecretString)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SecretError(
            f"secret '{name}' is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(value, dict):
        raise SecretError(f"secret '{name}' must be a JSON object, got {type(value).__name__}")
    return value


def _apply(part: BaseModel, name: str, secret: dict, keys: Mapping[str, str], required: set[str]) -> BaseModel:
    """`part` (settings.snowflake or settings.state_db) with the values of `secret` filled in."""
    missing = sorted(k for k in required if secret.get(k) in (None, ""))
    if missing:
        raise SecretError(f"secret '{name}' lacks key(s): {', '.join(missing)}")
    updates: dict = {}
    for key, field in keys.items():
        if secret.get(key) in (None, ""):
            continue
        # An explicitly set environment variable wins, so one host can override one value.
        if field in part.model_fields_set:
            continue
        value = secret[key]
        if field in SECRET_FIELDS:
            value = SecretStr(str(value))
        elif field == "port":
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise SecretError(f"secret '{name}' key 'port' is not an integer") from None
        else:
            value = str(value)
        updates[field] = value
    return part.model_copy(update=updates)


def resolve(settings: Settings, client=None) -> Settings:
    """Settings with credentials filled from Secrets Manager when enabled; else unchanged.
    Settings this returned are returned as they are (nothing is fetched twice)."""
    if settings.aws.secrets_backend != "aws" or settings._secrets_resolved:
        return settings
    if client is None:
        import boto3

        client = boto3.client(
            "secretsmanager", region_name=settings.aws.region, endpoint_url=settings.aws.endpoint_url
        )
    updates: dict = {}
    if settings.gateway == "snowflake" and settings.snowflake.secret_name:
        name = settings.snowflake.secret_name
        secret = _fetch_json_secret(client, name)
        updates["snowflake"] = _apply(settings.snowflake, name, secret, SNOWFLAKE_SECRET_KEYS, {"account", "user"})
        if not (secret.get("private_key") or secret.get("password")) and not (
            settings.snowflake.private_key_path or settings.snowflake.password
        ):
            raise SecretError(f"secret '{name}' lacks key(s): private_key or password")
    if settings.state_db.secret_name:
        name = settings.state_db.secret_name
        secret = _fetch_json_secret(client, name)
        updates["state_db"] = _apply(settings.state_db, name, secret, STATE_DB_SECRET_KEYS, {"username", "password"})
    resolved = settings.model_copy(update=updates)
    resolved._secrets_resolved = True
    return resolved


def private_key_for_sqlmesh(pem: str, passphrase: str | None) -> str:
    """A PEM private key as base64 DER (unencrypted PKCS#8): SQLMesh accepts that form, and
    unlike PEM it fits in one environment variable that YAML can quote."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(
            pem.encode(), password=passphrase.encode() if passphrase else None
        )
    except (ValueError, TypeError) as exc:
        reason = "wrong or missing passphrase" if "password" in str(exc).lower() else "not a PEM private key"
        raise SecretError(f"Snowflake private key cannot be loaded: {reason}") from None
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return base64.b64encode(der).decode()


def connection_env(settings: Settings) -> dict[str, str]:
    """The variables config.yaml reads, from resolved settings (values only where set)."""
    env: dict[str, str] = {
        "STATE_DB_HOST": settings.state_db.host,
        "STATE_DB_PORT": str(settings.state_db.port),
        "STATE_DB_NAME": settings.state_db.name,
        "STATE_DB_USER": settings.state_db.user,
        "STATE_DB_SSLMODE": settings.state_db.sslmode,
        "STATE_SCHEMA": settings.state_db.state_schema,
        "SNOWFLAKE_DATABASE": settings.snowflake.database,
        "LOCAL_DATA_DIR": str(settings.resolve(settings.data_dirs.local)),
        # The session QUERY_TAG (config.yaml) and the models' tags (macros/query_tag.py) name it.
        "DEPLOY_ENV": settings.deploy_env,
    }
    if settings.state_db.password:
        env["STATE_DB_PASSWORD"] = settings.state_db.password.get_secret_value()
    for field, var in (
        ("account", "SNOWFLAKE_ACCOUNT"),
        ("user", "SNOWFLAKE_USER"),
        ("role", "SNOWFLAKE_ROLE"),
        ("warehouse", "SNOWFLAKE_WAREHOUSE"),
    ):
        if getattr(settings.snowflake, field):
            env[var] = getattr(settings.snowflake, field)
    if settings.snowflake.private_key_path:
        env["SNOWFLAKE_PRIVATE_KEY_PATH"] = str(settings.snowflake.private_key_path)
        if settings.snowflake.private_key_passphrase:
            env["SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"] = (
                settings.snowflake.private_key_passphrase.get_secret_value()
            )
    elif settings.snowflake.private_key:
        key = settings.snowflake.private_key.get_secret_value()
        if key.lstrip().startswith("-----BEGIN"):
            passphrase = settings.snowflake.private_key_passphrase
            key = private_key_for_sqlmesh(key, passphrase.get_secret_value() if passphrase else None)
        env["SNOWFLAKE_PRIVATE_KEY"] = key
    elif settings.snowflake.password:
        env["SNOWFLAKE_PASSWORD"] = settings.snowflake.password.get_secret_value()
    return env


def export(settings: Settings) -> Settings:
    """Resolve secrets and publish the connection values to this process's environment, where
    SQLMesh's config.yaml (and any child process) reads them. Returns the resolved settings."""
    resolved = resolve(settings)
    env = connection_env(resolved)
    if "SNOWFLAKE_PRIVATE_KEY" in env or "SNOWFLAKE_PRIVATE_KEY_PATH" in env:
        # config.yaml picks key-pair auth first; a stale password would make it ambiguous.
        os.environ.pop("SNOWFLAKE_PASSWORD", None)
    if "SNOWFLAKE_PRIVATE_KEY" in env:
        # The key was decrypted into unencrypted DER above; a passphrase would now be refused.
        os.environ.pop("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", None)
    os.environ.update(env)
    return resolved


@contextlib.contextmanager
def exported(settings: Settings) -> Iterator[Settings]:
    """`export`, undone on exit, so one process can open several gateways (tests, doctor)."""
    saved = dict(os.environ)
    try:
        yield export(settings)
    finally:
        os.environ.clear()
        os.environ.update(saved)
