"""docs/marts.md, docs/lineage.md and docs/architecture.md are what the code says now: regenerated here and compared
with the committed files (`make docs` rewrites them after a model change)."""

from __future__ import annotations

from pathlib import Path

from meshctl.project.docs import write_docs
from meshctl.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_committed_model_docs_are_current(tmp_path):
    settings = Settings(_env_file=None, project_dir=REPO, data_dirs={"local": tmp_path / "local"})
    for path in write_docs(settings, tmp_path / "docs"):
        committed = REPO / "docs" / path.name
        assert committed.exists(), f"docs/{path.name} is missing: run `make docs`"
        assert committed.read_text() == path.read_text(), f"docs/{path.name} is stale: run `make docs`"
    marts = (tmp_path / "docs" / "marts.md").read_text()
    for mart in ("DIM_USERS", "DIM_ORGANIZATIONS", "DIM_ORGANIZATIONS_HISTORY", "FCT_EVENTS", "FCT_INVOICES",
                 "FCT_MRR_DAILY", "METRICS_DAILY"):
        assert f"## GOODWORD_WH.MARTS.{mart}\n" in marts
    lineage = (tmp_path / "docs" / "lineage.md").read_text()
    assert "goodword_wh_raw_events --> goodword_wh_staging_stg_goodword_app__events" in lineage
    assert "goodword_wh_intermediate_int_active_users_daily --> goodword_wh_marts_metrics_daily" in lineage
    architecture = (tmp_path / "docs" / "architecture.md").read_text()
    assert "  cli --> service\n" in architecture and "  core --> cli\n" not in architecture
