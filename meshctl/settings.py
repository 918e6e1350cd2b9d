"""The one typed settings object of the runtime.

Every value comes from the environment (or a `.env` file in the project directory); no other
module reads `os.environ` for configuration. `config.yaml` reads the same variable names through
SQLMesh's `env_var()`, so `sqlmesh plan` and `meshctl` see one configuration.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr
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

    # --- demo RAW data (issue 2; meshctl/demo/generator.py): defaults of `meshctl demo-data` ------
    # Small enough for a laptop build in seconds; the benchmark passes larger values.
    demo_organizations: int = Field(60, alias="DEMO_ORGANIZATIONS")
    demo_users: int = Field(600, alias="DEMO_USERS")
    demo_days: int = Field(45, alias="DEMO_DAYS")
    demo_events_per_day: int = Field(2000, alias="DEMO_EVENTS_PER_DAY")
    demo_seed: int = Field(20260101, alias="DEMO_SEED")

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
    # `aws`: fill credentials from Secrets Manager (JSON secrets, keys in docs/deployment.md); explicitly
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

    # --- artifacts in S3 (issue 5; meshctl/artifacts/bundles.py, s3.py, state_backup.py, run_records.py)
    # Every put is encrypted: SSE-KMS with this key when set, else SSE-S3 (AES256).
    artifacts_kms_key_id: str | None = Field(None, alias="ARTIFACTS_KMS_KEY_ID")
    # botocore's retry modes (no hand-written loops): retries after the first try, which is
    # what botocore's `retries={"max_attempts": N}` means.
    artifacts_retry_mode: Literal["standard", "adaptive"] = Field(
        "standard", alias="ARTIFACTS_RETRY_MODE"
    )
    artifacts_max_retries: int = Field(4, ge=0, alias="ARTIFACTS_MAX_RETRIES")
    # Files larger than the threshold go up in parts (S3's minimum part size is 5 MiB).
    artifacts_multipart_threshold: int = Field(
        64 * 1024 * 1024, ge=1, alias="ARTIFACTS_MULTIPART_THRESHOLD_BYTES"
    )
    artifacts_multipart_chunksize: int = Field(
        16 * 1024 * 1024, ge=5 * 1024 * 1024, alias="ARTIFACTS_MULTIPART_CHUNKSIZE_BYTES"
    )
    # Start from a project bundle: `latest` or a version; unset = use project_dir as it is.
    bundle: str | None = Field(None, alias="MESHCTL_BUNDLE")
    bundle_dir: Path = Field(Path("data/bundle"), alias="MESHCTL_BUNDLE_DIR")
    # State backups: keep a backup if it is among the newest KEEP_COUNT or younger than
    # KEEP_DAYS; 0 turns a rule off (both 0 = keep all). Cron is UTC.
    state_backup_keep_count: int = Field(30, ge=0, alias="STATE_BACKUP_KEEP_COUNT")
    state_backup_keep_days: float = Field(0, ge=0, alias="STATE_BACKUP_KEEP_DAYS")
    state_backup_cron: str = Field("0 3 * * *", alias="STATE_BACKUP_CRON")
    # The scheduler's backup runs in a child process, killed past this limit.
    state_backup_time_limit_seconds: float = Field(900, gt=0, alias="MESHCTL_STATE_BACKUP_TIME_LIMIT_SECONDS")

    # --- service: UI and scheduler (issue 4; meshctl/service/ui.py, scheduler.py, ...) -------------
    # Scheduler: croniter expression (UTC; a 6th field is seconds), per-run time limit, retries
    # of transient failures (exponential backoff from `initial` up to `max` seconds between tries).
    schedule_cron: str = Field("*/15 * * * *", alias="MESHCTL_SCHEDULE_CRON")
    run_time_limit_seconds: float = Field(3600, alias="MESHCTL_RUN_TIME_LIMIT_SECONDS")
    run_max_attempts: int = Field(3, alias="MESHCTL_RUN_MAX_ATTEMPTS")
    run_retry_initial_seconds: float = Field(30, alias="MESHCTL_RUN_RETRY_INITIAL_SECONDS")
    run_retry_max_seconds: float = Field(300, alias="MESHCTL_RUN_RETRY_MAX_SECONDS")
    # On SIGTERM the current run may finish for this long before it is killed (compose's
    # stop_grace_period must be longer).
    shutdown_grace_seconds: float = Field(240, alias="MESHCTL_SHUTDOWN_GRACE_SECONDS")
    # The run lock (locks.py): one writer at a time across every host. A lease in the state
    # database, renewed every quarter lease; a writer that dies blocks others for one lease at
    # most. A writer that finds it held waits up to MESHCTL_RUN_LOCK_WAIT_SECONDS (cron ticks
    # do not wait: the next tick catches up).
    run_lock_key: int = Field(7_311_203_145_002_001, alias="MESHCTL_RUN_LOCK_KEY")
    run_lock_lease_seconds: float = Field(60, ge=4, alias="MESHCTL_RUN_LOCK_LEASE_SECONDS")
    run_lock_wait_seconds: float = Field(600, ge=0, alias="MESHCTL_RUN_LOCK_WAIT_SECONDS")
    run_history_schema: str = Field("meshctl", alias="MESHCTL_RUN_HISTORY_SCHEMA")
    # Bounded wait for the state database at start (exponential backoff, capped per try).
    state_db_wait_seconds: float = Field(60, alias="MESHCTL_STATE_DB_WAIT_SECONDS")
    # Heartbeat written by the scheduler (and a marker by the UI) for `meshctl health`.
    heartbeat_path: Path = Field(Path("logs/heartbeat.json"), alias="MESHCTL_HEARTBEAT_PATH")
    heartbeat_interval_seconds: float = Field(15, alias="MESHCTL_HEARTBEAT_INTERVAL_SECONDS")
    heartbeat_max_age_seconds: float = Field(120, alias="MESHCTL_HEARTBEAT_MAX_AGE_SECONDS")
    # Each run's SQLMesh output, also uploaded with its run record when S3 is configured.
    run_log_dir: Path = Field(Path("logs/runs"), alias="MESHCTL_RUN_LOG_DIR")
    # Failure notifications (SQLMesh notification targets): Slack incoming webhook and/or SMTP.
    slack_webhook_url: SecretStr | None = Field(None, alias="MESHCTL_SLACK_WEBHOOK_URL")
    smtp_host: str | None = Field(None, alias="MESHCTL_SMTP_HOST")
    smtp_port: int = Field(465, alias="MESHCTL_SMTP_PORT")
    smtp_user: str | None = Field(None, alias="MESHCTL_SMTP_USER")
    smtp_password: SecretStr | None = Field(None, alias="MESHCTL_SMTP_PASSWORD")
    smtp_sender: str | None = Field(None, alias="MESHCTL_SMTP_SENDER")
    smtp_recipients: str | None = Field(None, alias="MESHCTL_SMTP_RECIPIENTS")  # comma-separated
    # UI: HTTP Basic credentials in front of SQLMesh's UI; without a password it refuses to
    # start unless MESHCTL_UI_INSECURE_NO_AUTH=true (local development only).
    ui_host: str = Field("0.0.0.0", alias="MESHCTL_UI_HOST")
    ui_port: int = Field(8000, alias="MESHCTL_UI_PORT")
    ui_mode: Literal["ide", "catalog", "docs", "plan"] = Field("plan", alias="MESHCTL_UI_MODE")
    ui_username: str = Field("admin", alias="MESHCTL_UI_USERNAME")
    ui_password: SecretStr | None = Field(None, alias="MESHCTL_UI_PASSWORD")
    ui_insecure_no_auth: bool = Field(False, alias="MESHCTL_UI_INSECURE_NO_AUTH")

    # Set by meshctl.secrets.resolve on the copy it returns (and kept by model_copy), so code
    # that needs the resolved values (the upload scan) fetches them once, not once per caller.
    _secrets_resolved: bool = PrivateAttr(False)

    # --- status page, cost and alerts (issue 12; meshctl/status/, cost.py, alerts.py) ----------
    # Where people open the status page (alerts link to it), e.g. http://172.22.2.10:8000.
    status_base_url: str | None = Field(None, alias="MESHCTL_STATUS_BASE_URL")
    # Runs listed on /status (newest first).
    status_runs_limit: int = Field(50, ge=1, alias="MESHCTL_STATUS_RUNS")
    # The scheduler assesses each mart's freshness after every finished run (and alerts on it).
    freshness_check: bool = Field(True, alias="MESHCTL_FRESHNESS_CHECK")
    # Each run's log is kept in the state database for the status page, up to this size, for
    # this many days (the run's summary stays).
    run_log_max_bytes: int = Field(256 * 1024, ge=1024, alias="MESHCTL_RUN_LOG_MAX_BYTES")
    run_log_keep_days: float = Field(14, ge=0, alias="MESHCTL_RUN_LOG_KEEP_DAYS")
    # Alerts: a mart behind its freshness target for longer than this; an audit warning whose
    # row count reaches FACTOR x its recent baseline (the median over the last BASELINE_RUNS runs
    # that built its model) and at least MIN_ROWS more, or a new one of at least MIN_ROWS rows.
    alert_behind_after_seconds: float = Field(3600, ge=0, alias="MESHCTL_ALERT_BEHIND_AFTER_SECONDS")
    alert_audit_jump_factor: float = Field(2.0, ge=1, alias="MESHCTL_ALERT_AUDIT_JUMP_FACTOR")
    alert_audit_jump_min_rows: int = Field(10, ge=1, alias="MESHCTL_ALERT_AUDIT_JUMP_MIN_ROWS")
    alert_audit_baseline_runs: int = Field(10, ge=1, alias="MESHCTL_ALERT_AUDIT_BASELINE_RUNS")
    # Cost: the QUERY_HISTORY the service may read (admin/snowflake_setup.sql makes a view of the
    # service user's own rows), how far back the status page looks, how long it keeps a result.
    cost_query_history: str = Field(
        "GOODWORD_WH.SQLMESH_USAGE.QUERY_HISTORY", alias="MESHCTL_COST_QUERY_HISTORY"
    )
    cost_days: int = Field(30, ge=1, alias="MESHCTL_COST_DAYS")
    cost_cache_seconds: float = Field(3600, ge=0, alias="MESHCTL_COST_CACHE_SECONDS")

    def resolve(self, path: Path) -> Path:
        """A configured path, relative to the project directory unless absolute."""
        return path if path.is_absolute() else self.project_dir / path


def settings_for_child(settings: Settings) -> str:
    """`settings` as JSON for a child process's stdin: the child gets this process's settings,
    secrets resolved once here, and never through its environment (readable by every process of
    the user in /proc)."""
    data = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in ((name, getattr(settings, name)) for name in Settings.model_fields)
    }
    data["_secrets_resolved"] = settings._secrets_resolved
    return json.dumps(data, default=str)


def settings_from_parent(text: str) -> Settings:
    data = json.loads(text)
    resolved = data.pop("_secrets_resolved", False)
    settings = Settings(_env_file=None, **data)
    settings._secrets_resolved = resolved
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
