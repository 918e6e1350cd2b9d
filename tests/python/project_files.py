"""Loading the project's own Python files (signals, macros) as SQLMesh does: as modules of the
project, whose root is on the import path."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def project_module(name: str) -> ModuleType:
    """`project_module("signals.arrivals")`: the module of that file under the project root."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module(name)
