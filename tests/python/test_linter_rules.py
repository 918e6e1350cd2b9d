"""The project's own SQLMesh linter rules (linter/): they pass on the project and fire on bad models."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from sqlmesh import Context

PROJECT = Path(__file__).resolve().parents[2]
OUR_RULES = ["onlystagingreadsraw", "martcolumnsdocumented", "modelcontractdeclared"]

CONFIG = """
gateways:
  local:
    connection:
      type: duckdb
default_gateway: local
model_defaults:
  dialect: snowflake
  start: '2026-01-01'
linter:
  enabled: true
  rules: [onlystagingreadsraw, martcolumnsdocumented, modelcontractdeclared]
"""

GOOD_STAGING = """
MODEL (name staging.stg_events, kind VIEW, grain event_id, owner me, description 'Events.');
SELECT id AS event_id FROM GOODWORD_WH.RAW.EVENTS
"""

# Reads RAW from a mart, leaves a column undocumented and declares no grain.
BAD_MART = """
MODEL (
  name marts.fct_bad,
  kind FULL,
  owner me,
  description 'Reads RAW directly.',
  column_descriptions (event_id = 'Event ID.')
);
SELECT id AS event_id, event_type FROM GOODWORD_WH.RAW.EVENTS
"""

# A staging model that joins another staging model (and so reads no RAW table of its own).
BAD_STAGING = """
MODEL (name staging.stg_joined, kind VIEW, grain event_id, owner me, description 'Joins.');
SELECT event_id FROM staging.stg_events
"""

GOOD_MART = """
MODEL (
  name marts.fct_good,
  kind FULL,
  grain event_id,
  owner me,
  description 'Reads staging.',
  column_descriptions (event_id = 'Event ID.')
);
SELECT event_id FROM staging.stg_events
"""


def _violations(context: Context) -> dict[tuple[str, str], str]:
    return {
        (v.model.name, v.rule.name): v.violation_msg
        for v in context.lint_models(raise_on_error=False)
    }


@pytest.fixture
def bad_project(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(CONFIG)
    shutil.copy(PROJECT / "external_models.yaml", tmp_path / "external_models.yaml")
    shutil.copytree(PROJECT / "linter", tmp_path / "linter", ignore=shutil.ignore_patterns("__pycache__"))
    models = tmp_path / "models"
    models.mkdir()
    for name, sql in {
        "stg_events.sql": GOOD_STAGING,
        "stg_joined.sql": BAD_STAGING,
        "fct_bad.sql": BAD_MART,
        "fct_good.sql": GOOD_MART,
    }.items():
        (models / name).write_text(textwrap.dedent(sql))
    return tmp_path


def test_rules_fire_on_bad_models(bad_project: Path) -> None:
    violations = _violations(Context(paths=[str(bad_project)]))

    assert "reads RAW" in violations[("marts.fct_bad", "onlystagingreadsraw")]
    assert "EVENT_TYPE" in violations[("marts.fct_bad", "martcolumnsdocumented")]
    assert "grain" in violations[("marts.fct_bad", "modelcontractdeclared")]
    assert "exactly one RAW table" in violations[("staging.stg_joined", "onlystagingreadsraw")]
    assert not {key for key in violations if key[0] in {"staging.stg_events", "marts.fct_good"}}


def test_project_models_pass_our_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The local gateway attaches DuckDB files under LOCAL_DATA_DIR: keep them out of the checkout.
    monkeypatch.setenv("LOCAL_DATA_DIR", str(tmp_path))
    context = Context(paths=[str(PROJECT)])
    ours = {key: msg for key, msg in _violations(context).items() if key[1] in OUR_RULES}
    assert ours == {}
    assert set(OUR_RULES) <= set(context._linters[context.config.project or ""].all_rules)
