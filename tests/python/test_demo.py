"""`meshctl demo`: resets the local warehouse in place (LOCAL_DATA_DIR may be a container volume's
mount point, which cannot be removed), and `--if-missing` keeps a warehouse a demo completed."""

from __future__ import annotations

from click.testing import CliRunner
from raw_helpers import isolated_settings

from meshctl.cli.data import demo_command
from meshctl.demo.build import COMPLETE_MARKER, is_complete, reset_warehouse


def test_reset_removes_the_warehouse_files_and_keeps_the_directory_and_other_files(tmp_path):
    data = tmp_path / "local"
    data.mkdir()
    for name in ("goodword_wh.duckdb", "goodword_wh.duckdb.wal", "airbyte_db.duckdb", COMPLETE_MARKER):
        (data / name).write_text("x")
    (data / "notes.txt").write_text("not the warehouse's")
    inode = data.stat().st_ino
    removed = reset_warehouse(data)
    assert sorted(p.name for p in removed) == sorted(
        [COMPLETE_MARKER, "airbyte_db.duckdb", "goodword_wh.duckdb", "goodword_wh.duckdb.wal"]
    )
    assert data.stat().st_ino == inode
    assert [p.name for p in data.iterdir()] == ["notes.txt"]
    assert not is_complete(data)


def test_demo_builds_in_place_then_if_missing_keeps_it(tmp_path, monkeypatch):
    settings = isolated_settings(tmp_path, monkeypatch)
    data = tmp_path / "local"
    data.mkdir()
    inode = data.stat().st_ino
    # A broken warehouse left behind: opening it would fail, so the build proves the reset.
    (data / "goodword_wh.duckdb").write_bytes(b"not a DuckDB file")
    (data / "notes.txt").write_text("kept")

    first = CliRunner().invoke(demo_command, [], obj=settings, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "Resetting" in first.output and "METRICS_DAILY" in first.output
    assert data.stat().st_ino == inode, "the directory itself was replaced"
    assert (data / "notes.txt").read_text() == "kept"
    assert is_complete(data)

    built = (data / "goodword_wh.duckdb").stat().st_mtime_ns
    again = CliRunner().invoke(demo_command, ["--if-missing"], obj=settings, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "Keeping the demo warehouse" in again.output and "METRICS_DAILY" not in again.output
    assert (data / "goodword_wh.duckdb").stat().st_mtime_ns == built


def test_demo_says_in_one_line_when_the_data_directory_is_not_writable(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the data directory's parent should be")
    settings = isolated_settings(blocker, monkeypatch)
    result = CliRunner().invoke(demo_command, [], obj=settings)
    assert result.exit_code == 1
    assert "cannot write the local warehouse in" in result.output and "LOCAL_DATA_DIR" in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
