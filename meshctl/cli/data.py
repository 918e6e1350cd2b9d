"""Data verbs: `demo`, `demo-data`, `load-raw`."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import click

from meshctl.demo.build import COMPLETE_MARKER, ensure_writable, is_complete, reset_warehouse, summary, warehouse_files
from meshctl.demo.generator import DemoParams, append_day, generate, yesterday_utc
from meshctl.project.gateways import open_context
from meshctl.raw import warehouse as raw_warehouse
from meshctl.raw.loader import load_raw
from meshctl.raw.schema import raw_tables
from meshctl.settings import Settings


@click.command("demo")
@click.option(
    "--if-missing",
    is_flag=True,
    help="Keep a warehouse an earlier demo completed; build one only if there is none "
    "(how docker-compose.yml's `local` profile seeds each role's volume on first start).",
)
@click.pass_context
def demo_command(ctx: click.Context, if_missing: bool) -> None:
    """Reset the local warehouse, generate demo RAW data, build everything, print a summary."""
    settings: Settings = ctx.obj.updated(gateway="local")
    began = time.monotonic()
    data_dir = settings.resolve(settings.data_dirs.local)
    ensure_writable(data_dir)
    if if_missing and is_complete(data_dir):
        click.echo(f"Keeping the demo warehouse in {data_dir} (built "
                   f"{(data_dir / COMPLETE_MARKER).read_text().strip()}); `meshctl demo` rebuilds it")
        return
    if data_dir.is_dir() and warehouse_files(data_dir):
        # Demo RAW is regenerated whole, so the marts and the embedded state start over with it.
        # The files go, not the directory: it may be a mount point.
        click.echo(f"Resetting {data_dir} (local DuckDB warehouse and state)")
        reset_warehouse(data_dir)
    ctx.obj = settings
    ctx.invoke(demo_data_command)
    with open_context(settings) as context:
        context.plan("prod", auto_apply=True, no_prompts=True)
        for line in summary(context):
            click.echo(line)
    (data_dir / COMPLETE_MARKER).write_text(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds") + "\n")
    click.echo(f"\nDemo built in {time.monotonic() - began:.0f}s in {data_dir}. Next: `sqlmesh plan`, "
               "`sqlmesh run`, `sqlmesh ui` (activate .venv first), or `meshctl ui` / "
               "`meshctl sqlmesh plan` in the container.")

@click.command("demo-data")
@click.option("--organizations", type=click.IntRange(min=1), default=None,
              help="Organizations to generate. Default: DEMO_ORGANIZATIONS (60).")
@click.option("--users", type=click.IntRange(min=1), default=None,
              help="Users to generate. Default: DEMO_USERS (600).")
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Days of events, ending with --end-date. Default: DEMO_DAYS (45).")
@click.option("--events-per-day", type=click.IntRange(min=1), default=None,
              help="On-time events per day (late, future and duplicate rows come on top). "
                   "Default: DEMO_EVENTS_PER_DAY (2000).")
@click.option("--seed", type=int, default=None, help="Random seed. Default: DEMO_SEED.")
@click.option("--end-date", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last complete day of the window (UTC). Default: yesterday.")
@click.option("--append-day", "append_next_day", is_flag=True,
              help="Keep RAW and append the next day's batch instead (late events for the last "
                   "three days, new users and user versions, organization and Stripe changes).")
@click.pass_obj
def demo_data_command(settings: Settings, organizations, users, days, events_per_day, seed,
                      end_date, append_next_day: bool) -> None:
    """Generate RAW demo data into the selected gateway's warehouse (replacing RAW)."""
    tables = raw_tables(settings.project_dir)
    seed = settings.demo.seed if seed is None else seed
    events_per_day = events_per_day or settings.demo.events_per_day
    began = time.monotonic()
    with raw_warehouse.open_warehouse(settings) as adapter:
        if append_next_day:
            day = append_day(adapter, tables, seed, events_per_day, click.echo)
            click.echo(f"Appended {day} to RAW on gateway {settings.gateway} "
                       f"in {time.monotonic() - began:.1f}s.")
            return
        params = DemoParams(
            organizations=organizations or settings.demo.organizations,
            users=users or settings.demo.users,
            days=days or settings.demo.days,
            events_per_day=events_per_day,
            seed=seed,
            end_date=end_date.date() if end_date else yesterday_utc(),
        )
        click.echo(f"Generating RAW on gateway {settings.gateway}: {params.days} days to "
                   f"{params.end_date}, seed {params.seed}")
        counts = generate(adapter, tables, params, click.echo)
    click.echo(f"Done: {sum(counts.values()):,} rows in {len(counts)} tables "
               f"in {time.monotonic() - began:.1f}s.")

@click.command("load-raw")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--replace", is_flag=True,
              help="Replace the rows of every table that has a file (default: append).")
@click.pass_obj
def load_raw_command(settings: Settings, directory: Path, replace: bool) -> None:
    """Load a RAW snapshot: DIRECTORY/<DATABASE>.<SCHEMA>.<TABLE>.jsonl, one JSON object a line."""
    began = time.monotonic()
    for line in load_raw(settings, directory, replace=replace):
        click.echo(line)
    click.echo(f"Loaded into gateway {settings.gateway} in {time.monotonic() - began:.1f}s.")
