"""Opening a SQLMesh context on a gateway, and closing it for real."""

from __future__ import annotations

import subprocess
import sys

from raw_helpers import isolated_settings

from meshctl.project.gateways import open_context


def test_a_closed_context_lets_another_process_open_the_warehouse(tmp_path, monkeypatch):
    """SQLMesh's Context.close() leaves the default engine adapter open when it was used
    directly; on DuckDB the file stayed locked for the process's life, so the scheduler's next
    run (another process) could not open the warehouse after the parent's freshness check."""
    settings = isolated_settings(tmp_path, monkeypatch)
    with open_context(settings, load=False) as context:
        assert context.engine_adapter.fetchone("SELECT 1") == (1,)
    warehouse = settings.resolve(settings.data_dirs.local) / "goodword_wh.duckdb"
    other = subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(warehouse)!r}).execute('SELECT 1')"],
        capture_output=True, text=True, timeout=60,
    )
    assert other.returncode == 0, other.stderr[-500:]
