"""`meshctl demo`: the main job on the embedded local gateway, from nothing to a summary.

Fresh demo RAW data, every model built with `plan` on `prod`, then rows per mart and a few
headline metrics. No credentials: DuckDB files under LOCAL_DATA_DIR.
"""

from __future__ import annotations

import shutil
import time

import click

from meshctl.demo_data import demo_data_command
from meshctl.gateways import open_context
from meshctl.settings import Settings

MARTS = (
    "DIM_ORGANIZATIONS",
    "DIM_ORGANIZATIONS_HISTORY",
    "DIM_USERS",
    "FCT_EVENTS",
    "FCT_INVOICES",
    "FCT_MRR_DAILY",
    "METRICS_DAILY",
)


def summary(context) -> list[str]:
    lines = ["", "Marts (GOODWORD_WH.MARTS, environment prod):"]
    for mart in MARTS:
        count = context.engine_adapter.fetchone(f"SELECT COUNT(*) FROM MARTS.{mart}")[0]
        lines.append(f"  {mart:<27} {count:>10,} rows")
    latest = context.engine_adapter.fetchone(
        "SELECT DATE, DAU, WAU, MAU, NEW_USERS, MRR_USD, PAYING_ORGANIZATIONS "
        "FROM MARTS.METRICS_DAILY ORDER BY DATE DESC LIMIT 1"
    )
    if latest:
        day, dau, wau, mau, new_users, mrr_usd, paying = latest
        lines += [
            f"Latest complete day {day}:",
            f"  DAU {dau:,}   WAU {wau:,}   MAU {mau:,}   new users {new_users:,}",
            f"  MRR (USD) ${mrr_usd:,.2f}   paying organizations {paying:,}",
        ]
    return lines


@click.command("demo")
@click.pass_context
def demo_command(ctx: click.Context) -> None:
    """Reset the local warehouse, generate demo RAW data, build everything, print a summary."""
    settings: Settings = ctx.obj.model_copy(update={"gateway": "local"})
    began = time.monotonic()
    data_dir = settings.resolve(settings.local_data_dir)
    if data_dir.exists():
        # Demo RAW is regenerated whole, so the marts and the embedded state start over with it.
        click.echo(f"Resetting {data_dir} (local DuckDB warehouse and state)")
        shutil.rmtree(data_dir)
    ctx.obj = settings
    ctx.invoke(demo_data_command)
    with open_context(settings) as context:
        context.plan("prod", auto_apply=True, no_prompts=True)
        for line in summary(context):
            click.echo(line)
    click.echo(f"\nDemo built in {time.monotonic() - began:.0f}s. Next: `sqlmesh plan`, "
               "`sqlmesh run`, `sqlmesh ui` (activate .venv first).")
