"""``import workflow_trace`` stays cheap: what is needed only off the hot path is imported on first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Needed only by a backend, delivery, the store, the CLI or the viewer: never by ``import workflow_trace``.
OFF_THE_HOT_PATH = {
    "asyncio", "http", "importlib.metadata", "requests", "socket", "sqlite3", "ssl", "subprocess", "urllib3",
    "workflow_trace._autolog", "workflow_trace._delivery", "workflow_trace._journal", "workflow_trace._spool",
    "workflow_trace._sqlite", "workflow_trace._transport", "workflow_trace._ui", "workflow_trace.backends.memory",
    "workflow_trace.backends.openlineage", "workflow_trace.backends.sqlite", "workflow_trace.backends.supervisely",
    "workflow_trace.cli", "workflow_trace.graph", "workflow_trace.version", "workflow_trace.workflow",
}


def imported_by(prelude: str, statement: str) -> set[str]:
    """The modules ``statement`` imports in a fresh interpreter, after ``prelude`` ran."""
    code = (f"import json, sys\n{prelude}\nbefore = set(sys.modules)\n{statement}\n"
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return set(json.loads(done.stdout))


def test_import_loads_nothing_off_the_hot_path() -> None:
    """``import workflow_trace`` itself (wrapt and pydantic loaded first) imports no backend, network or store
    module: they load when a backend is configured or a command runs."""
    loaded = imported_by("import wrapt\nfrom pydantic import BaseModel, Field", "import workflow_trace")
    assert set() == loaded & OFF_THE_HOT_PATH


def test_lazy_names_load_on_first_use() -> None:
    """The lazily imported names still work: the facades, autolog and the backends."""
    loaded = imported_by(
        "import workflow_trace as wt",
        "wt.workflow, wt.version, wt.autolog\nfrom workflow_trace.backends import SQLiteBackend",
    )
    assert {"workflow_trace.workflow", "workflow_trace.version", "workflow_trace._autolog",
            "workflow_trace.backends.sqlite", "sqlite3"} <= loaded
