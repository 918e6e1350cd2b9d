"""Is the SQLMesh state compatible with the installed SQLMesh? Shared by `doctor` and the UI.

`sqlmesh migrate` is never run from here: two processes migrating one state at once corrupt it,
so migration stays a deliberate, single command run by a person.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmesh.core.state_sync import StateSync
from sqlmesh.utils.errors import SQLMeshError


@dataclass(frozen=True)
class StateVersion:
    compatible: bool
    empty: bool
    detail: str


def check(state_sync: StateSync) -> StateVersion:
    """Compare the versions recorded in the state with the installed ones (network errors raise)."""
    versions = state_sync.get_versions(validate=False)
    if versions.schema_version == 0:
        return StateVersion(True, True, "empty: the first `sqlmesh plan` creates it")
    try:
        state_sync.get_versions(validate=True)
    except SQLMeshError as exc:
        return StateVersion(False, False, str(exc))
    return StateVersion(
        True,
        False,
        f"schema {versions.schema_version}, sqlmesh {versions.sqlmesh_version}, "
        f"sqlglot {versions.sqlglot_version}",
    )


def check_context(context) -> StateVersion:
    """`check` on a context's state store without going through `Context.state_sync`, which
    would initialize an empty state and raise on a mismatch before we could report it."""
    return check(context._new_state_sync())
