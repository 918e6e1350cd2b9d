"""`meshctl project-docs` and `meshctl cost`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from meshctl.project.docs import write_docs
from meshctl.settings import Settings
from meshctl.status.cost import Line, gather


# --- CLI ---------------------------------------------------------------------------------------
def _table(title: str, lines: list[Line], limit: int | None = None, width: int = 60) -> list[str]:
    out = [title, f"  {'':<{width}} {'stmts':>7} {'seconds':>10} {'credits':>10}"]
    for line in lines[:limit] if limit else lines:
        out.append(f"  {line.key[:width]:<{width}} {line.statements:>7,} {line.seconds:>10.1f} {line.credits:>10.4f}")
    if not lines:
        out.append("  (nothing recorded)")
    return out


@click.command("cost")
@click.option("--days", "-d", type=int, default=None, help="How far back (default MESHCTL_COST_DAYS, 30).")
@click.option("--runs", "run_limit", type=int, default=20, show_default=True, help="Runs to list (most credits first).")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@click.pass_obj
def cost_command(settings: Settings, days: int | None, run_limit: int, as_json: bool) -> None:
    """Snowflake credits per model, per run and per day, from the statements' query tags."""
    from meshctl.logs import configure_logging

    configure_logging(settings)
    report = gather(settings, days)
    if as_json:
        click.echo(json.dumps(report.as_json(), default=str))
        return
    if report.explanation:
        click.echo(report.explanation)
    if report.error:
        raise click.ClickException(f"cost report failed: {report.error}")
    if report.source == "none":
        return
    total = report.total
    click.echo(f"\nLast {report.days} days: {total.statements:,} statements, {total.seconds:,.1f} s of "
               f"execution, {total.credits:.4f} credits (estimated)\n")
    lines = _table("Per model", report.by_model) + [""]
    lines += _table(f"Per run (top {run_limit})", report.by_run, run_limit) + [""]
    lines += _table("Per day", report.by_day) + [""]
    if report.source == "emulated":
        lines += ["Query tags seen (what QUERY_HISTORY would be grouped by):"]
        lines += [f"  {line.statements:>7,}  {line.key}" for line in report.tags] or ["  (none)"]
    click.echo("\n".join(lines))

@click.command("project-docs")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write to (default: docs/ in the project).")
@click.pass_obj
def project_docs_command(settings: Settings, out: Path | None) -> None:
    """Write docs/marts.md, docs/lineage.md and docs/architecture.md from the code."""
    for path in write_docs(settings, out):
        click.echo(f"wrote {path}")
