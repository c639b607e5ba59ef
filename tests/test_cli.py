"""The ``workflow-trace`` command, run as a real process (``python -m workflow_trace``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from _support import cli_text as cli

from workflow_trace._events import ErrorInfo, Event, StepRef, new_event_id, new_run_id, utcnow
from workflow_trace._nodes import File, Folder, Node, Project
from workflow_trace.backends.sqlite import SQLiteBackend

REPO = Path(__file__).resolve().parents[1]



def record(store: SQLiteBackend, name: str, inputs: Sequence[Node], outputs: Sequence[Node],
           error: str | None = None) -> int:
    """Record one task in ``store``."""
    task_id = store.new_task_id(name)
    step = StepRef(run_id=new_run_id(), name=name)

    def event(kind: Any, **fields: Any) -> Event:
        return Event(kind=kind, event_id=new_event_id(), time=utcnow(), task_id=task_id, step=step, **fields)

    store.emit([
        event("step_started"),
        *(event("input", node=n) for n in inputs),
        *(event("output", node=n) for n in outputs),
        event("step_finished", status="failed" if error else "ok",
              error=ErrorInfo(type="ValueError", message=error) if error else None),
    ])
    return task_id


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with a three-task pipeline, the last one failed."""
    path = tmp_path / "store" / "lineage.db"
    with SQLiteBackend(path) as backend:
        record(backend, "import", [Folder(path="/raw")], [Project(id=42)])
        record(backend, "train", [Project(id=42)], [File(path="/models/best.pt", model_weight=True)])
        record(backend, "export", [File(path="/models/best.pt")], [File(path="/out/model.zip")], error="no space")
    return path


class TestCommands:
    def test_help_lists_subcommands(self, tmp_path: Path) -> None:
        """--help names every subcommand."""
        result = cli("--help", cwd=tmp_path)
        expected = (0, True)
        assert expected == (result.returncode, all(c in result.stdout for c in ("show", "export", "tasks", "lineage")))

    def test_show(self, store: Path, tmp_path: Path) -> None:
        """show prints every task with its inputs and outputs."""
        result = cli("show", "--db", str(store), cwd=tmp_path)
        lines = result.stdout.splitlines()
        expected = (0, "scope workspace: 3 tasks, 4 data nodes, 6 edges", 3, "")
        assert expected == (result.returncode, lines[0], sum(line.startswith("task:") for line in lines), result.stderr)
        assert "task:3 export [FAILED ValueError: no space]" in result.stdout

    def test_show_scope(self, store: Path, tmp_path: Path) -> None:
        """show --scope task:ID shows that task's neighbourhood."""
        result = cli("show", "--scope", "task:2", "--db", str(store), cwd=tmp_path)
        expected = (0, "scope task:2: 1 task, 2 data nodes, 2 edges")
        assert expected == (result.returncode, result.stdout.splitlines()[0])

    def test_tasks_table(self, store: Path, tmp_path: Path) -> None:
        """tasks prints a table: id, name, status, runs, start, duration, inputs, outputs."""
        result = cli("tasks", "--db", str(store), cwd=tmp_path)
        rows = [line.split() for line in result.stdout.splitlines()]
        expected_header = ["ID", "NAME", "STATUS", "RUNS", "START", "DURATION", "INPUTS", "OUTPUTS"]
        summary = [(r[0], r[1], r[2], r[3], r[-2], r[-1]) for r in rows[1:]]
        expected = (0, expected_header, [("1", "import", "ok", "1", "1", "1"), ("2", "train", "ok", "1", "1", "1"),
                                         ("3", "export", "failed", "1", "1", "1")])
        assert expected == (result.returncode, rows[0], summary)

    @pytest.mark.parametrize("fmt", ["mermaid", "dot", "json", "html"])
    def test_export_to_file(self, fmt: str, store: Path, tmp_path: Path) -> None:
        """export -o writes the file and says so on stderr; stdout stays empty."""
        out = tmp_path / "exports" / f"graph.{fmt}"
        result = cli("export", "--format", fmt, "-o", str(out), "--db", str(store), cwd=tmp_path)
        expected = (0, "", True, True)
        assert expected == (result.returncode, result.stdout, out.is_file(), "7 nodes, 6 edges" in result.stderr)

    def test_export_json_to_stdout(self, store: Path, tmp_path: Path) -> None:
        """export --format json prints the documented JSON."""
        result = cli("export", "--format", "json", "--scope", "project:42", "--db", str(store), cwd=tmp_path)
        data = json.loads(result.stdout)
        expected = (0, "project:42", 5)
        assert expected == (result.returncode, data["scope"], len(data["nodes"]))

    def test_lineage(self, store: Path, tmp_path: Path) -> None:
        """lineage NODE prints what a node came from and what came from it."""
        result = cli("lineage", "file:/models/best.pt", "--db", str(store), cwd=tmp_path)
        expected = [
            "file:/models/best.pt [model weights]",
            "upstream (what it came from):",
            "    <- task:2 train [ok]",
            "        <- project:42",
            "            <- task:1 import [ok]",
            "                <- folder:/raw",
            "downstream (what came from it):",
            "    -> task:3 export [failed]",
            "        -> file:/out/model.zip",
        ]
        assert (0, expected) == (result.returncode, result.stdout.splitlines())

    def test_lineage_upstream_only_as_mermaid(self, store: Path, tmp_path: Path) -> None:
        """lineage --direction up --format mermaid exports the upstream subgraph."""
        result = cli("lineage", "project:42", "--direction", "up", "--format", "mermaid", "--db", str(store),
                     cwd=tmp_path)
        expected = (0, "flowchart LR", 2)
        assert expected == (result.returncode, result.stdout.splitlines()[0], result.stdout.count(" --> "))

    def test_default_store_from_cwd(self, store: Path, tmp_path: Path) -> None:
        """Without --db the command reads ./.workflow_trace/workflow.db."""
        default = tmp_path / "proj" / ".workflow_trace"
        default.mkdir(parents=True)
        with SQLiteBackend(default / "workflow.db") as backend:
            record(backend, "only-here", [], [])
        result = cli("tasks", cwd=tmp_path / "proj")
        expected = (0, True)
        assert expected == (result.returncode, "only-here" in result.stdout)

    def test_default_store_from_env(self, store: Path, tmp_path: Path) -> None:
        """WORKFLOW_TRACE_DB names the store when --db is not given."""
        result = cli("show", cwd=tmp_path, env={"WORKFLOW_TRACE_DB": str(store)})
        expected = (0, True)
        assert expected == (result.returncode, "task:2 train" in result.stdout)

    def test_empty_store(self, tmp_path: Path) -> None:
        """An empty store says nothing was recorded (exit 0)."""
        with SQLiteBackend(tmp_path / "empty.db") as backend:
            backend.counts()
        result = cli("show", "--db", str(tmp_path / "empty.db"), cwd=tmp_path)
        expected = (0, f"no lineage recorded yet in scope workspace\nstore: {tmp_path / 'empty.db'}\n")
        assert expected == (result.returncode, result.stdout)

    def test_show_names_its_store(self, store: Path, tmp_path: Path) -> None:
        """show says which store it read, under the header line (a subfolder finds the project's store)."""
        result = cli("show", "--db", str(store), cwd=tmp_path)
        assert (0, f"store: {store}") == (result.returncode, result.stdout.splitlines()[1])


class TestErrors:
    def error_line(self, result: subprocess.CompletedProcess[str]) -> tuple[int, str, int]:
        """(exit code, stderr's first line, number of stderr lines)."""
        lines = result.stderr.splitlines()
        return result.returncode, lines[0] if lines else "", len(lines)

    @pytest.mark.parametrize("command", [["show"], ["tasks"], ["export", "--format", "dot"], ["lineage", "project:1"]])
    def test_missing_store(self, command: list[str], tmp_path: Path) -> None:
        """A missing store is one line on stderr and exit code 2, on every subcommand; nothing is created."""
        result = cli(*command, "--db", str(tmp_path / "none.db"), cwd=tmp_path)
        expected = (2, f"workflow-trace: error: no lineage store at {tmp_path / 'none.db'} "
                       "(run a pipeline first, or pass --db / set WORKFLOW_TRACE_DB)", 1)
        assert expected == self.error_line(result)
        assert not (tmp_path / "none.db").exists()

    def test_bad_scope(self, store: Path, tmp_path: Path) -> None:
        """A malformed scope is one line and exit code 2."""
        result = cli("show", "--scope", "projects:1", "--db", str(store), cwd=tmp_path)
        expected = (2, "workflow-trace: error: bad scope 'projects:1': use workspace, project:ID or task:ID "
                       "(e.g. project:42)", 1)
        assert expected == self.error_line(result)

    def test_scope_not_in_store(self, store: Path, tmp_path: Path) -> None:
        """A scope naming a task that is not recorded is one line naming the closest tasks, and exit code 2."""
        result = cli("export", "--format", "json", "--scope", "task:99", "--db", str(store), cwd=tmp_path)
        expected = (2, "workflow-trace: error: no node task:99 in the store; closest: task:3, task:2, task:1", 1)
        assert expected == self.error_line(result)

    def test_unknown_node(self, store: Path, tmp_path: Path) -> None:
        """lineage of a node that is not recorded is one line and exit code 2."""
        result = cli("lineage", "dataset:404", "--db", str(store), cwd=tmp_path)
        expected = (2, "workflow-trace: error: no node dataset:404 in the store", 1)
        assert expected == self.error_line(result)

    def test_unknown_node_names_the_closest(self, store: Path, tmp_path: Path) -> None:
        """A node that is not recorded, with known ones of its kind: the closest are named."""
        result = cli("lineage", "project:43", "--db", str(store), cwd=tmp_path)
        expected = (2, "workflow-trace: error: no node project:43 in the store; closest: project:42", 1)
        assert expected == self.error_line(result)

    def test_bad_node(self, store: Path, tmp_path: Path) -> None:
        """lineage of text that is not a node ref is one line and exit code 2."""
        result = cli("lineage", "model:best", "--db", str(store), cwd=tmp_path)
        code, line, count = self.error_line(result)
        expected = (2, True, 1)
        assert expected == (code, line.startswith("workflow-trace: error: bad node 'model:best'"), count)

    def test_not_a_store(self, tmp_path: Path) -> None:
        """A file that is not a store is one line and exit code 2."""
        (tmp_path / "x.db").write_text("not sqlite " * 100)
        code, line, count = self.error_line(cli("show", "--db", str(tmp_path / "x.db"), cwd=tmp_path))
        expected = (2, True, 1)
        assert expected == (code, "not a usable lineage store" in line, count)

    def test_unknown_format(self, store: Path, tmp_path: Path) -> None:
        """argparse refuses an unknown export format with exit code 2."""
        result = cli("export", "--format", "svg", "--db", str(store), cwd=tmp_path)
        expected = (2, True)
        assert expected == (result.returncode, "invalid choice: 'svg'" in result.stderr)
