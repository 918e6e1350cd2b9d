"""The one typed settings object of the runtime, in parts.

Every value comes from the environment (or a `.env` file in the project directory); no other
module reads `os.environ` for configuration. `config.yaml` reads some of the same variable names
through SQLMesh's `env_var()`, so `sqlmesh plan` and `meshctl` see one configuration.

`Settings` holds what names the project and the run (directory, gateway, environment, log format,
deployment) and one part per thing it configures: `settings.state_db`, `settings.run_lock`,
`settings.artifacts`, ... Each part is its own `BaseSettings` reading its own flat variables
(`MESHCTL_RUN_LOCK_LEASE_SECONDS` is `settings.run_lock.lease_seconds`), so a module can be handed
only the part it uses. `Settings()` builds every part from the same environment and env file.

Defaults live here. config.yaml repeats a few of them as `env_var()` fallbacks, for bare `sqlmesh`
only (meshctl exports every variable it reads before SQLMesh loads it: secrets.connection_env);
tests/python/test_settings.py checks that those copies equal the defaults here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, PrivateAttr, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PROJECT_DIR = Path(__file__).resolve().parent.parent
ENV_FILE = str(PROJECT_DIR / ".env")


class _DocumentedNamesOnly:
    """With fields settable by name (populate_by_name), pydantic-settings would also read a
    variable named like the field: `settings.state_db.user` from $USER, `settings.ui.port` from
    $PORT. Every field here has its variable(s) as alias; read those only."""

    def _extract_field_info(self, field, field_name, model_config=None):
        found = super()._extract_field_info(field, field_name, model_config)
        return [info for info in found if info[0] != field_name] if field.validation_alias else found


class _Env(_DocumentedNamesOnly, EnvSettingsSource):
    pass


class _DotEnv(_DocumentedNamesOnly, DotEnvSettingsSource):
    pass


class Part(BaseSettings):
    """A group of settings read from flat environment variables (each field's alias)."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",  # the environment holds much else
        populate_by_name=True,
    )

    def __init__(self, **values: Any) -> None:
        # extra="ignore" is for the environment; a keyword naming no setting is a mistake (an old
        # flat name, a part's field given to the whole), not something to drop silently.
        unknown = sorted(k for k in values if not k.startswith("_") and k not in self._names())
        if unknown:
            raise TypeError(f"{type(self).__name__} has no setting {', '.join(unknown)}")
        super().__init__(**values)

    @classmethod
    def _names(cls) -> set[str]:
        names = set(cls.model_fields)
        for field in cls.model_fields.values():
            if isinstance(field.validation_alias, AliasChoices):
                names.update(c for c in field.validation_alias.choices if isinstance(c, str))
            elif isinstance(field.validation_alias, str):
                names.add(field.validation_alias)
        return names

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env_file = getattr(dotenv_settings, "env_file", ENV_FILE)
        return init_settings, _Env(settings_cls), _DotEnv(settings_cls, env_file=env_file), file_secret_settings


def env_names(part: type[BaseModel]) -> dict[str, str]:
    """field -> the variable that sets it (the first one, where several may)."""
    names = {}
    for name, field in part.model_fields.items():
        alias = field.validation_alias
        names[name] = alias.choices[0] if isinstance(alias, AliasChoices) else alias or name.upper()
    return names


# --- the parts ---------------------------------------------------------------------------------


class DataDirSettings(Part):
    """Where the local (DuckDB) warehouse and the emulated Snowflake (fakesnow) keep their files."""

    local: Path = Field(Path("data/local"), alias="LOCAL_DATA_DIR")
    fakesnow: Path = Field(Path("data/fakesnow"), alias="FAKESNOW_DATA_DIR")


class DemoSettings(Part):
    """Demo RAW data (issue 2; meshctl/demo/generator.py): the defaults of `meshctl demo-data`.
    Small enough for a laptop build in seconds; the benchmark passes larger values."""

    organizations: int = Field(60, alias="DEMO_ORGANIZATIONS")
    users: int = Field(600, alias="DEMO_USERS")
    days: int = Field(45, alias="DEMO_DAYS")
    events_per_day: int = Field(2000, alias="DEMO_EVENTS_PER_DAY")
    seed: int = Field(20260101, alias="DEMO_SEED")


class SnowflakeSettings(Part):
    """The production warehouse. With MESHCTL_SECRETS=aws the credentials come from the secret
    `secret_name` (keys in docs/deployment.md); explicitly set variables still win."""

    account: str | None = Field(None, alias="SNOWFLAKE_ACCOUNT")
    user: str | None = Field(None, alias="SNOWFLAKE_USER")
    role: str | None = Field(None, alias="SNOWFLAKE_ROLE")
    warehouse: str | None = Field(None, alias="SNOWFLAKE_WAREHOUSE")
    database: str = Field("GOODWORD_WH", alias="SNOWFLAKE_DATABASE")
    password: SecretStr | None = Field(None, alias="SNOWFLAKE_PASSWORD")
    private_key_path: Path | None = Field(None, alias="SNOWFLAKE_PRIVATE_KEY_PATH")
    private_key: SecretStr | None = Field(None, alias="SNOWFLAKE_PRIVATE_KEY")
    private_key_passphrase: SecretStr | None = Field(None, alias="SNOWFLAKE_PRIVATE_KEY_PASSPHRASE")
    secret_name: str = Field("snowflake-warehouse", alias="SNOWFLAKE_SECRET_NAME")


class StateDbSettings(Part):
    """The state database (PostgreSQL; Aurora in production): SQLMesh's state, and meshctl's run
    lock, run history and status tables in their own schema. With MESHCTL_SECRETS=aws the
    connection values come from the secret `secret_name`; explicitly set variables still win."""

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("STATE_DB_HOST", "PGHOST"))
    port: int = Field(5432, validation_alias=AliasChoices("STATE_DB_PORT", "PGPORT"))
    name: str = Field("sqlmesh_state", alias="STATE_DB_NAME")
    user: str = Field("postgres", validation_alias=AliasChoices("STATE_DB_USER", "PGUSER"))
    password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("STATE_DB_PASSWORD", "PGPASSWORD")
    )
    sslmode: str = Field("prefer", alias="STATE_DB_SSLMODE")
    state_schema: str = Field("sqlmesh", alias="STATE_SCHEMA")  # SQLMesh's
    run_history_schema: str = Field("meshctl", alias="MESHCTL_RUN_HISTORY_SCHEMA")  # meshctl's
    secret_name: str = Field("aurora-data-operations", alias="STATE_DB_SECRET_NAME")
    # Bounded wait for the state database at start (exponential backoff, capped per try).
    wait_seconds: float = Field(60, alias="MESHCTL_STATE_DB_WAIT_SECONDS")


class AwsSettings(Part):
    """AWS: where secrets come from, and the region and endpoint of Secrets Manager and S3."""

    # `aws`: fill credentials from Secrets Manager (JSON secrets, keys in docs/deployment.md);
    # explicitly set environment variables still win. `env`: environment only.
    secrets_backend: Literal["env", "aws"] = Field("env", alias="MESHCTL_SECRETS")
    region: str = Field("us-east-2", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    endpoint_url: str | None = Field(None, alias="AWS_ENDPOINT_URL")


class ArtifactsSettings(Part):
    """Artifacts in S3 (issue 5; meshctl/artifacts/bundles.py, s3.py, state_backups.py, run_records.py)."""

    bucket: str | None = Field(None, alias="ARTIFACTS_BUCKET")
    prefix: str = Field("sqlmesh", alias="ARTIFACTS_PREFIX")
    # Every put is encrypted: SSE-KMS with this key when set, else SSE-S3 (AES256).
    kms_key_id: str | None = Field(None, alias="ARTIFACTS_KMS_KEY_ID")
    # botocore's retry modes (no hand-written loops): retries after the first try, which is
    # what botocore's `retries={"max_attempts": N}` means.
    retry_mode: Literal["standard", "adaptive"] = Field("standard", alias="ARTIFACTS_RETRY_MODE")
    max_retries: int = Field(4, ge=0, alias="ARTIFACTS_MAX_RETRIES")
    # Files larger than the threshold go up in parts (S3's minimum part size is 5 MiB).
    multipart_threshold: int = Field(64 * 1024 * 1024, ge=1, alias="ARTIFACTS_MULTIPART_THRESHOLD_BYTES")
    multipart_chunksize: int = Field(
        16 * 1024 * 1024, ge=5 * 1024 * 1024, alias="ARTIFACTS_MULTIPART_CHUNKSIZE_BYTES"
    )
    # Start from a project bundle: `latest` or a version; unset = use project_dir as it is.
    bundle: str | None = Field(None, alias="MESHCTL_BUNDLE")
    bundle_dir: Path = Field(Path("data/bundle"), alias="MESHCTL_BUNDLE_DIR")


class StateBackupSettings(Part):
    """State backups to S3: keep a backup if it is among the newest `keep_count` or younger than
    `keep_days`; 0 turns a rule off (both 0 = keep all). `cron` is UTC. The scheduler's backup
    runs in a child process, killed past `time_limit_seconds`."""

    keep_count: int = Field(30, ge=0, alias="STATE_BACKUP_KEEP_COUNT")
    keep_days: float = Field(0, ge=0, alias="STATE_BACKUP_KEEP_DAYS")
    cron: str = Field("0 3 * * *", alias="STATE_BACKUP_CRON")
    time_limit_seconds: float = Field(900, gt=0, alias="MESHCTL_STATE_BACKUP_TIME_LIMIT_SECONDS")


class SchedulerSettings(Part):
    """The scheduler (issue 4; meshctl/service/scheduler.py, attempts.py): croniter expression
    (UTC; a 6th field is seconds), per-run time limit, retries of transient failures (exponential
    backoff from `initial` up to `max` seconds between tries), and each run's log."""

    cron: str = Field("*/15 * * * *", alias="MESHCTL_SCHEDULE_CRON")
    run_time_limit_seconds: float = Field(3600, alias="MESHCTL_RUN_TIME_LIMIT_SECONDS")
    run_max_attempts: int = Field(3, alias="MESHCTL_RUN_MAX_ATTEMPTS")
    run_retry_initial_seconds: float = Field(30, alias="MESHCTL_RUN_RETRY_INITIAL_SECONDS")
    run_retry_max_seconds: float = Field(300, alias="MESHCTL_RUN_RETRY_MAX_SECONDS")
    # On SIGTERM the current run may finish for this long before it is killed (compose's
    # stop_grace_period must be longer).
    shutdown_grace_seconds: float = Field(240, alias="MESHCTL_SHUTDOWN_GRACE_SECONDS")
    # Each run's SQLMesh output, also uploaded with its run record when S3 is configured.
    run_log_dir: Path = Field(Path("logs/runs"), alias="MESHCTL_RUN_LOG_DIR")
    # Each run's log is kept in the state database for the status page, up to this size, for
    # this many days (the run's summary stays).
    run_log_max_bytes: int = Field(256 * 1024, ge=1024, alias="MESHCTL_RUN_LOG_MAX_BYTES")
    run_log_keep_days: float = Field(14, ge=0, alias="MESHCTL_RUN_LOG_KEEP_DAYS")


class RunLockSettings(Part):
    """The run lock (meshctl/service/run_lock.py): one writer at a time across every host. A lease
    in the state database, renewed every quarter lease; a writer that dies blocks others for one
    lease at most. A writer that finds it held waits up to `wait_seconds` (cron ticks do not
    wait: the next tick catches up)."""

    key: int = Field(7_311_203_145_002_001, alias="MESHCTL_RUN_LOCK_KEY")
    lease_seconds: float = Field(60, ge=4, alias="MESHCTL_RUN_LOCK_LEASE_SECONDS")
    wait_seconds: float = Field(600, ge=0, alias="MESHCTL_RUN_LOCK_WAIT_SECONDS")


class HeartbeatSettings(Part):
    """Heartbeat written by the scheduler (and a marker by the UI) for `meshctl health`."""

    path: Path = Field(Path("logs/heartbeat.json"), alias="MESHCTL_HEARTBEAT_PATH")
    interval_seconds: float = Field(15, alias="MESHCTL_HEARTBEAT_INTERVAL_SECONDS")
    max_age_seconds: float = Field(120, alias="MESHCTL_HEARTBEAT_MAX_AGE_SECONDS")


class NotifySettings(Part):
    """Failure notifications and alerts (SQLMesh notification targets): Slack incoming webhook
    and/or SMTP."""

    slack_webhook_url: SecretStr | None = Field(None, alias="MESHCTL_SLACK_WEBHOOK_URL")
    smtp_host: str | None = Field(None, alias="MESHCTL_SMTP_HOST")
    smtp_port: int = Field(465, alias="MESHCTL_SMTP_PORT")
    smtp_user: str | None = Field(None, alias="MESHCTL_SMTP_USER")
    smtp_password: SecretStr | None = Field(None, alias="MESHCTL_SMTP_PASSWORD")
    smtp_sender: str | None = Field(None, alias="MESHCTL_SMTP_SENDER")
    smtp_recipients: str | None = Field(None, alias="MESHCTL_SMTP_RECIPIENTS")  # comma-separated


class UiSettings(Part):
    """The UI: HTTP Basic credentials in front of SQLMesh's UI; without a password it refuses to
    start unless MESHCTL_UI_INSECURE_NO_AUTH=true (local development only)."""

    host: str = Field("0.0.0.0", alias="MESHCTL_UI_HOST")
    port: int = Field(8000, alias="MESHCTL_UI_PORT")
    mode: Literal["ide", "catalog", "docs", "plan"] = Field("plan", alias="MESHCTL_UI_MODE")
    username: str = Field("admin", alias="MESHCTL_UI_USERNAME")
    password: SecretStr | None = Field(None, alias="MESHCTL_UI_PASSWORD")
    insecure_no_auth: bool = Field(False, alias="MESHCTL_UI_INSECURE_NO_AUTH")


class StatusSettings(Part):
    """The status page (issue 12; meshctl/status/)."""

    # Where people open the status page (alerts link to it), e.g. http://172.22.2.10:8000.
    base_url: str | None = Field(None, alias="MESHCTL_STATUS_BASE_URL")
    # Runs listed on /status (newest first).
    runs_limit: int = Field(50, ge=1, alias="MESHCTL_STATUS_RUNS")


class AlertSettings(Part):
    """Alerts (meshctl/service/alerts.py): a mart behind its freshness target for longer than
    `behind_after_seconds`; an audit warning whose row count reaches FACTOR x its recent baseline
    (the median over the last BASELINE_RUNS runs that built its model) and at least MIN_ROWS more,
    or a new one of at least MIN_ROWS rows."""

    # The scheduler assesses each mart's freshness after every finished run (and alerts on it).
    freshness_check: bool = Field(True, alias="MESHCTL_FRESHNESS_CHECK")
    behind_after_seconds: float = Field(3600, ge=0, alias="MESHCTL_ALERT_BEHIND_AFTER_SECONDS")
    audit_jump_factor: float = Field(2.0, ge=1, alias="MESHCTL_ALERT_AUDIT_JUMP_FACTOR")
    audit_jump_min_rows: int = Field(10, ge=1, alias="MESHCTL_ALERT_AUDIT_JUMP_MIN_ROWS")
    audit_baseline_runs: int = Field(10, ge=1, alias="MESHCTL_ALERT_AUDIT_BASELINE_RUNS")


class CostSettings(Part):
    """Cost (meshctl/status/cost.py): the QUERY_HISTORY the service may read
    (admin/snowflake_setup.sql makes a view of the service user's own rows), how far back the
    status page looks, how long it keeps a result."""

    query_history: str = Field("GOODWORD_WH.SQLMESH_USAGE.QUERY_HISTORY", alias="MESHCTL_COST_QUERY_HISTORY")
    days: int = Field(30, ge=1, alias="MESHCTL_COST_DAYS")
    cache_seconds: float = Field(3600, ge=0, alias="MESHCTL_COST_CACHE_SECONDS")


class Settings(Part):
    """The project and the run, and every part (each its own group of variables)."""

    project_dir: Path = Field(PROJECT_DIR, alias="MESHCTL_PROJECT_DIR")
    # The one place the gateway is carried: code that needs another gateway makes settings with it.
    gateway: str = Field("local", alias="MESHCTL_GATEWAY")
    environment: str = Field("prod", alias="MESHCTL_ENVIRONMENT")
    log_format: Literal["json", "text"] = Field("text", alias="MESHCTL_LOG_FORMAT")
    # Names the deployment in every Snowflake session's QUERY_TAG (config.yaml reads it too).
    deploy_env: str = Field("prod", alias="DEPLOY_ENV")

    data_dirs: DataDirSettings = Field(default_factory=DataDirSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    snowflake: SnowflakeSettings = Field(default_factory=SnowflakeSettings)
    state_db: StateDbSettings = Field(default_factory=StateDbSettings)
    aws: AwsSettings = Field(default_factory=AwsSettings)
    artifacts: ArtifactsSettings = Field(default_factory=ArtifactsSettings)
    state_backup: StateBackupSettings = Field(default_factory=StateBackupSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    run_lock: RunLockSettings = Field(default_factory=RunLockSettings)
    heartbeat: HeartbeatSettings = Field(default_factory=HeartbeatSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    status: StatusSettings = Field(default_factory=StatusSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    cost: CostSettings = Field(default_factory=CostSettings)

    # Set by meshctl.secrets.resolve on the copy it returns (and kept by model_copy), so code
    # that needs the resolved values (the upload scan) fetches them once, not once per caller.
    _secrets_resolved: bool = PrivateAttr(False)

    def __init__(self, _env_file: Any = ENV_FILE, **values: Any) -> None:
        # Every part reads the same env file as the whole (`Settings(_env_file=None)`: none).
        # A part given as a dict is read like one left out, with the dict's values on top.
        for name, part in PARTS.items():
            given = values.get(name)
            if given is None or isinstance(given, dict):
                values[name] = part(_env_file=_env_file, **(given or {}))
        super().__init__(_env_file=_env_file, **values)

    def resolve(self, path: Path) -> Path:
        """A configured path, relative to the project directory unless absolute."""
        return path if path.is_absolute() else self.project_dir / path

    def updated(self, **changes: Any) -> Settings:
        """A copy with `changes`: a project value by name, a part's values as a dict, e.g.
        `settings.updated(gateway="fakesnow", run_lock={"lease_seconds": 4})`. Like model_copy
        (which it uses) the values are not validated, and the secrets-resolved flag is kept."""
        update = {}
        for name, value in changes.items():
            if name not in type(self).model_fields:
                raise TypeError(f"Settings has no setting {name}")
            if name in PARTS and isinstance(value, dict):
                part = getattr(self, name)
                unknown = sorted(set(value) - set(type(part).model_fields))
                if unknown:
                    raise TypeError(f"{type(part).__name__} has no setting {', '.join(unknown)}")
                value = part.model_copy(update=value)
            update[name] = value
        return self.model_copy(update=update)


# name on Settings -> its part's class
PARTS: dict[str, type[Part]] = {
    name: field.annotation
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, Part)
}


def every_setting() -> list[tuple[str, FieldInfo]]:
    """(variable, field) of every setting: Settings' own and every part's. The variable is the
    first one read where several may be (STATE_DB_HOST, then PGHOST)."""
    out = []
    for part in (Settings, *PARTS.values()):
        names = env_names(part)
        out += [(names[name], field) for name, field in part.model_fields.items() if name not in PARTS]
    return out


def variable_names() -> set[str]:
    """Every environment variable a setting is read from."""
    return {name for part in (Settings, *PARTS.values()) for name in part._names() - set(part.model_fields)}


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def settings_for_child(settings: Settings) -> str:
    """`settings` as JSON for a child process's stdin: the child gets this process's settings,
    secrets resolved once here, and never through its environment (readable by every process of
    the user in /proc)."""
    data = settings.model_dump()
    data["_secrets_resolved"] = settings._secrets_resolved
    return json.dumps(data, default=_plain)


def settings_from_parent(text: str) -> Settings:
    data = json.loads(text)
    resolved = data.pop("_secrets_resolved", False)
    settings = Settings(_env_file=None, **data)
    settings._secrets_resolved = resolved
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
