"""`meshctl doctor`: can this host do its job? A pass/fail table with a fix per failure."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import click
from sqlglot import exp

from meshctl import secrets
from meshctl.project import state_version
from meshctl.project.gateways import open_context
from meshctl.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _probe(name: str, fix: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(name, True, fn() or "ok")
    except Exception as exc:  # a check reports every failure; it never stops the others
        return Check(name, False, _first_line(exc), fix)


def _warehouse_checks(context, settings: Settings) -> Iterator[Check]:
    adapter = context.engine_adapter
    login = _probe(
        "warehouse: reachable and authenticated",
        "Check SNOWFLAKE_ACCOUNT/USER and the key or password (or the secret "
        f"'{settings.snowflake.secret_name}'); the key's public half must be set on the user.",
        lambda: adapter.fetchone("SELECT 1") and f"{adapter.dialect} answered",
    )
    yield login
    if not login.ok:
        return

    for model in sorted(context.models.values(), key=lambda m: m.fqn):
        if model.kind.is_external:
            table = exp.to_table(model.fqn)
            yield _probe(
                f"read {'.'.join(part.name for part in table.parts)}",
                "Grant the service role USAGE on the RAW database and schema and SELECT on its "
                "tables (see admin/snowflake_setup.sql); if the table is missing, the "
                "replication/Airbyte sync has not created it yet.",
                lambda table=table: (
                    adapter.fetchone(exp.select("1").from_(table).limit(0)) or "readable"
                ),
            )

    schemas = sorted(
        {exp.to_table(m.fqn).db for m in context.models.values() if not m.kind.is_external}
    )
    if not schemas:
        yield Check("target schemas", False, "the project defines no models", "Run from the project directory.")
    catalog = context.default_catalog
    for schema in schemas + [f"sqlmesh__{s}" for s in schemas]:
        yield _probe(
            f"create in {catalog}.{schema}",
            "Grant the service role OWNERSHIP of (or CREATE TABLE/VIEW on) this schema, or "
            "CREATE SCHEMA on the database (see admin/snowflake_setup.sql).",
            lambda schema=schema: _create_and_drop(adapter, catalog, schema),
        )


def _create_and_drop(adapter, catalog: str | None, schema: str) -> str:
    adapter.create_schema(exp.table_("", db=schema, catalog=catalog, quoted=True))
    probe = exp.table_(
        f"_MESHCTL_DOCTOR_{uuid.uuid4().hex[:8].upper()}", db=schema, catalog=catalog, quoted=True
    )
    adapter.create_table(probe, {"X": exp.DataType.build("int")})
    adapter.drop_table(probe)
    return "created and dropped a probe table"


def _state_check(context, settings: Settings) -> Check:
    name = "state database: reachable, version matches"
    where = (
        f"{settings.state_db.host}:{settings.state_db.port}/{settings.state_db.name}"
        if settings.gateway != "local"
        else "embedded (local gateway)"
    )
    try:
        status = state_version.check_context(context)
    except Exception as exc:
        return Check(
            name,
            False,
            f"{where}: {_first_line(exc)}",
            "Check STATE_DB_HOST/PORT/NAME/USER and the password (or the secret "
            f"'{settings.state_db.secret_name}'), STATE_DB_SSLMODE, and that the security group "
            "admits this host on 5432.",
        )
    if not status.compatible:
        return Check(
            name,
            False,
            f"{where}: {status.detail}",
            "Stop the scheduler and UI, then run `meshctl sqlmesh migrate` once from one host "
            "(never automatically, never from two at once).",
        )
    return Check(name, True, f"{where}: {status.detail}")


def _bucket_check(settings: Settings) -> Check:
    bucket = settings.artifacts.bucket
    name = f"S3 bucket {bucket}: reachable and writable"

    def probe() -> str:
        from meshctl.artifacts.s3 import Bucket

        store = Bucket(settings)
        # Listing under our own prefix, not head_bucket: the instance role may list only there.
        next(iter(store.list(store.key("_doctor") + "/")), None)
        key = store.key("_doctor", uuid.uuid4().hex)
        store.put_bytes(key, b"ok", "text/plain")
        store.delete([key])
        return f"wrote and deleted {store.url(key)}"

    return _probe(
        name,
        "Check ARTIFACTS_BUCKET and the region; the instance role needs s3:PutObject and "
        "s3:DeleteObject under the prefix (deploy/ creates both).",
        probe,
    )


def run_checks(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    try:
        resolved = secrets.resolve(settings)
    except secrets.SecretError as exc:
        return [Check("secrets", False, str(exc), "Create or fix the secret; keys are in docs/deployment.md.")]
    if resolved.aws.secrets_backend == "aws":
        checks.append(Check("secrets", True, "resolved from AWS Secrets Manager"))
    try:
        with open_context(resolved) as context:
            checks.extend(_warehouse_checks(context, resolved))
            checks.append(_state_check(context, resolved))
    except Exception as exc:  # the project itself did not load: nothing else can be checked
        checks.append(
            Check("project loads", False, _first_line(exc), "Run `sqlmesh info` for the details.")
        )
    if resolved.artifacts.bucket:
        checks.append(_bucket_check(resolved))
    return checks


def render(checks: list[Check]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="meshctl doctor")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for check in checks:
        table.add_row(
            check.name, "[green]PASS[/green]" if check.ok else "[red]FAIL[/red]", check.detail
        )
    console.print(table)
    for check in checks:
        if not check.ok:
            console.print(f"[red]FAIL[/red] {check.name}\n     fix: {check.fix}", highlight=False)
    passed = sum(c.ok for c in checks)
    click.echo(f"doctor: {passed} of {len(checks)} checks passed")
