"""The one typed settings object of the runtime.

Every value comes from the environment (or a `.env` file in the project directory); no other
module reads `os.environ` for configuration. `config.yaml` reads the same variable names through
SQLMesh's `env_var()`, so `sqlmesh plan` and `meshctl` see one configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=str(PROJECT_DIR / ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- project -------------------------------------------------------------------------
    project_dir: Path = Field(PROJECT_DIR, alias="MESHCTL_PROJECT_DIR")
    gateway: str = Field("local", alias="MESHCTL_GATEWAY")
    environment: str = Field("prod", alias="MESHCTL_ENVIRONMENT")
    log_format: Literal["json", "text"] = Field("text", alias="MESHCTL_LOG_FORMAT")

    # --- local (DuckDB) warehouse ----------------------------------------------------------
    local_data_dir: Path = Field(Path("data/local"), alias="LOCAL_DATA_DIR")

    # --- emulated Snowflake (fakesnow) -----------------------------------------------------
    fakesnow_data_dir: Path = Field(Path("data/fakesnow"), alias="FAKESNOW_DATA_DIR")

    # --- Snowflake (production warehouse) --------------------------------------------------
    snowflake_account: str | None = Field(None, alias="SNOWFLAKE_ACCOUNT")
    snowflake_user: str | None = Field(None, alias="SNOWFLAKE_USER")
    snowflake_role: str | None = Field(None, alias="SNOWFLAKE_ROLE")
    snowflake_warehouse: str | None = Field(None, alias="SNOWFLAKE_WAREHOUSE")
    snowflake_database: str = Field("GOODWORD_WH", alias="SNOWFLAKE_DATABASE")
    snowflake_password: SecretStr | None = Field(None, alias="SNOWFLAKE_PASSWORD")
    snowflake_private_key_path: Path | None = Field(None, alias="SNOWFLAKE_PRIVATE_KEY_PATH")
    snowflake_private_key: SecretStr | None = Field(None, alias="SNOWFLAKE_PRIVATE_KEY")
    snowflake_private_key_passphrase: SecretStr | None = Field(
        None, alias="SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"
    )

    # --- SQLMesh state (PostgreSQL; Aurora in production) ----------------------------------
    state_db_host: str = Field(
        "127.0.0.1", validation_alias=AliasChoices("STATE_DB_HOST", "PGHOST")
    )
    state_db_port: int = Field(5432, validation_alias=AliasChoices("STATE_DB_PORT", "PGPORT"))
    state_db_name: str = Field("sqlmesh_state", alias="STATE_DB_NAME")
    state_db_user: str = Field(
        "postgres", validation_alias=AliasChoices("STATE_DB_USER", "PGUSER")
    )
    state_db_password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("STATE_DB_PASSWORD", "PGPASSWORD")
    )
    state_db_sslmode: str = Field("prefer", alias="STATE_DB_SSLMODE")
    state_schema: str = Field("sqlmesh", alias="STATE_SCHEMA")

    # --- secrets ---------------------------------------------------------------------------
    # `aws`: fill credentials from Secrets Manager (JSON secrets, keys in the README); explicitly
    # set environment variables still win. `env`: environment only.
    secrets_backend: Literal["env", "aws"] = Field("env", alias="MESHCTL_SECRETS")
    snowflake_secret_name: str = Field("snowflake-warehouse", alias="SNOWFLAKE_SECRET_NAME")
    state_db_secret_name: str = Field("aurora-data-operations", alias="STATE_DB_SECRET_NAME")
    # Names the deployment in every Snowflake session's QUERY_TAG (config.yaml reads it too).
    deploy_env: str = Field("prod", alias="DEPLOY_ENV")

    # --- AWS (Secrets Manager, S3) ---------------------------------------------------------
    aws_region: str = Field("us-east-2", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    aws_endpoint_url: str | None = Field(None, alias="AWS_ENDPOINT_URL")
    artifacts_bucket: str | None = Field(None, alias="ARTIFACTS_BUCKET")
    artifacts_prefix: str = Field("sqlmesh", alias="ARTIFACTS_PREFIX")

    def resolve(self, path: Path) -> Path:
        """A configured path, relative to the project directory unless absolute."""
        return path if path.is_absolute() else self.project_dir / path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
