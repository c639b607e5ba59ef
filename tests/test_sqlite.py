"""The local lineage store: real SQLite files in tmp_path, real processes and threads."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shlex
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from workflow_trace._errors import BackendError
from workflow_trace._events import ErrorInfo, Event, StepRef, new_event_id, new_run_id, utcnow
from workflow_trace._nodes import App, Dataset, File, Folder, Job, Node, Project, Task
from workflow_trace.backends import TaskIdBackend, create_backend
from workflow_trace.backends.sqlite import SCHEMA_VERSION, SQLiteBackend, StoreNotFoundError


def step_events(
    task_id: int | None,
    name: str,
    inputs: Sequence[Node] = (),
    outputs: Sequence[Node] = (),
    *,
    error: str | None = None,
    parent: str | None = None,
    meta: dict[str, Any] | None = None,
) -> list[Event]:
    """The events one step emits: started, inputs, outputs, finished."""
    step = StepRef(run_id=new_run_id(), name=name, parent_run_id=parent)

    def event(kind: Any, **fields: Any) -> Event:
        return Event(kind=kind, event_id=new_event_id(), time=utcnow(), task_id=task_id, step=step, **fields)

    events = [event("step_started")]
    events += [event("input", node=n, meta=meta) for n in inputs]
    events += [event("output", node=n, meta=meta) for n in outputs]
    failed = error is not None
    events.append(
        event(
            "step_finished",
            status="failed" if failed else "ok",
            error=ErrorInfo(type="RuntimeError", message=error) if failed else None,
        )
    )
    return events


def rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read rows with a separate plain connection (what another process would see)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> SQLiteBackend:
    """A store in a fresh file."""
    backend = SQLiteBackend(tmp_path / "lineage.db")
    yield backend  # type: ignore[misc]
    backend.close()


class TestLocation:
    def test_absolute_url(self, tmp_path: Path) -> None:
        """sqlite:///abs/path.db names an absolute path."""
        assert tmp_path / "a.db" == SQLiteBackend.from_url(f"sqlite://{tmp_path}/a.db").path

    def test_relative_url(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """sqlite:relative.db is relative to the working directory."""
        monkeypatch.chdir(tmp_path)
        assert tmp_path / "sub" / "r.db" == SQLiteBackend.from_url("sqlite:sub/r.db").path

    @pytest.mark.parametrize("spec", ["sqlite", "sqlite:", "sqlite://"])
    def test_bare_url_is_default(self, spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bare sqlite string means the default store."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("WORKFLOW_TRACE_DB", raising=False)
        assert tmp_path / ".workflow_trace" / "workflow.db" == SQLiteBackend.from_url(spec).path

    def test_env_variable(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """WORKFLOW_TRACE_DB names the default store."""
        monkeypatch.setenv("WORKFLOW_TRACE_DB", str(tmp_path / "env.db"))
        assert tmp_path / "env.db" == SQLiteBackend().path

    @pytest.mark.parametrize("spec", ["sqlite://host/x.db", "sqlite::memory:", "sqlitex:a.db"])
    def test_bad_url(self, spec: str) -> None:
        """Strings that are not a local file are refused with a ValueError."""
        with pytest.raises(ValueError, match=r"sqlite|memory"):
            SQLiteBackend.from_url(spec)

    def test_registry(self, tmp_path: Path) -> None:
        """The backend registry builds the store from its string."""
        backend = create_backend(f"sqlite://{tmp_path}/reg.db")
        assert (SQLiteBackend, tmp_path / "reg.db") == (type(backend), backend.path)  # type: ignore[attr-defined]

    def test_lazy_and_creates_parents(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Nothing is written until first use; then the parent folders are created."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("WORKFLOW_TRACE_DB", raising=False)
        backend = SQLiteBackend()
        assert not (tmp_path / ".workflow_trace").exists()
        backend.new_task_id("x")
        backend.close()
        assert (tmp_path / ".workflow_trace" / "workflow.db").is_file()

    def test_open_existing_missing(self, tmp_path: Path) -> None:
        """Opening a store for reading does not create it."""
        with pytest.raises(StoreNotFoundError, match="no lineage store"):
            SQLiteBackend.open_existing(tmp_path / "missing.db")
        assert not (tmp_path / "missing.db").exists()


class TestSchema:
    def test_version_and_pragmas(self, db: SQLiteBackend) -> None:
        """The schema version is recorded and the journal is WAL."""
        db.new_task_id("x")
        expected = [(SCHEMA_VERSION,)]
        assert expected == rows(db.path, "PRAGMA user_version")
        expected = [("wal",)]
        assert expected == rows(db.path, "PRAGMA journal_mode")

    def test_newer_schema_refused(self, tmp_path: Path) -> None:
        """A store written by a newer version is refused, not damaged."""
        path = tmp_path / "new.db"
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()
        with pytest.raises(BackendError, match="newer"):
            SQLiteBackend(path).new_task_id("x")

    def test_foreign_database_refused(self, tmp_path: Path) -> None:
        """An SQLite file of another application is not turned into a store."""
        path = tmp_path / "other.db"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE customers (id INTEGER)")
        conn.commit()
        conn.close()
        with pytest.raises(BackendError, match="not a workflow_trace store"):
            SQLiteBackend(path).new_task_id("x")

    def test_not_a_database(self, tmp_path: Path) -> None:
        """A file that is not SQLite at all gives a BackendError naming it."""
        path = tmp_path / "junk.db"
        path.write_text("hello, this is not a database" * 20)
        with pytest.raises(BackendError, match=r"junk\.db"):
            SQLiteBackend(path).new_task_id("x")


class TestRecording:
    def test_protocols(self, db: SQLiteBackend) -> None:
        """The store owns task ids and flushes synchronously."""
        expected = (True, True)
        assert expected == (isinstance(db, TaskIdBackend), db.flush(0.1))

    def test_rows_after_a_run(self, db: SQLiteBackend) -> None:
        """A task's run leaves its task, step, nodes, edges and events."""
        task_id = db.new_task_id("train")
        db.emit(step_events(task_id, "train", [Project(id=42)], [File(path="/m/best.pt", model_weight=True)]))
        expected = {"events": 4, "tasks": 1, "steps": 1, "nodes": 2, "edges": 2}
        assert expected == db.counts()
        task = db.tasks()[0]
        expected = ("train", "local", "ok", os.getpid(), True, True)
        actual = (task.name, task.origin, task.status, task.pid, bool(task.host), task.finished_at is not None)
        assert expected == actual
        edges = [(e.direction, e.task_id, e.node) for e in db.edges()]
        expected_edges = [
            ("input", task_id, Project(id=42)),
            ("output", task_id, File(path="/m/best.pt", model_weight=True)),
        ]
        assert expected_edges == edges

    def test_task_row_at_allocation(self, db: SQLiteBackend) -> None:
        """Allocating a task id records the task as running, with its start and command line."""
        task_id = db.new_task_id("import")
        task = db.tasks()[0]
        assert (task_id, "import", "running", True) == (task.id, task.name, task.status, task.started_at is not None)

    def test_failed_root_step_fails_the_task(self, db: SQLiteBackend) -> None:
        """A failed outermost step marks its task failed with the error."""
        task_id = db.new_task_id("export")
        db.emit(step_events(task_id, "export", error="disk full"))
        task = db.tasks()[0]
        expected = ("failed", "RuntimeError", "disk full")
        assert expected == (task.status, task.error_type, task.error_message)

    def test_failed_child_step_does_not_fail_the_task(self, db: SQLiteBackend) -> None:
        """A nested step that failed (and was handled) leaves the task ok."""
        task_id = db.new_task_id("pipeline")
        root = step_events(task_id, "pipeline")
        child = step_events(task_id, "retry", error="flaky", parent=root[0].step.run_id)
        db.emit(root[:1])
        db.emit(child)
        db.emit(root[1:])
        statuses = {s.name: s.status for s in db.steps()}
        expected = ({"pipeline": "ok", "retry": "failed"}, "ok")
        assert expected == (statuses, db.tasks()[0].status)

    def test_child_stored_before_its_parent(self, db: SQLiteBackend) -> None:
        """A failed child step whose events arrive before the parent's start does not fail the task."""
        root = step_events(4, "pipeline")
        child = step_events(4, "retry", error="flaky", parent=root[0].step.run_id)
        db.emit(child)
        db.emit(root)
        expected = ("ok", None)
        task = db.tasks()[0]
        assert expected == (task.status, task.error_type)

    def test_running_until_every_root_step_finishes(self, db: SQLiteBackend) -> None:
        """A task with a step still open is running and has no end."""
        events = step_events(7, "serve")
        db.emit(events[:-1])
        task = db.tasks()[0]
        expected = ("running", None)
        assert expected == (task.status, task.finished_at)

    def test_replayed_batch_stored_once(self, db: SQLiteBackend) -> None:
        """Emitting the same batch again (a retry, a replayed spool) changes nothing."""
        task_id = db.new_task_id("train")
        batch = step_events(task_id, "train", [Dataset(id=1), Dataset(id=2)], [Job(id=3)])
        db.emit(batch)
        db.emit(batch)
        db.emit(batch[1:3])
        expected = {"events": 5, "tasks": 1, "steps": 1, "nodes": 3, "edges": 3}
        assert expected == db.counts()

    def test_node_identity(self, db: SQLiteBackend) -> None:
        """Nodes are kind + id/path + version; a file keeps its model-weight flag."""
        task_id = db.new_task_id("t")
        db.emit(
            step_events(
                task_id, "t",
                [Project(id=42), Project(id=42, version_id=11, version_num=2), Project(id=42), File(path="/a.pt")],
                [File(path="/a.pt", model_weight=True), Folder(path="/out"), App(), Task(id=99)],
            )
        )
        nodes = rows(db.path, "SELECT kind, ext_id, path, version_id, version_num, model_weight FROM nodes ORDER BY id")
        expected = [
            ("project", 42, None, None, None, 0),
            ("project", 42, None, 11, 2, 0),
            ("file", None, "/a.pt", None, None, 1),
            ("folder", None, "/out", None, None, 0),
            ("app", None, None, None, None, 0),
            ("task", 99, None, None, None, 0),
        ]
        assert expected == nodes

    def test_external_task_id_upserted(self, db: SQLiteBackend) -> None:
        """A task id the store did not allocate gets its row on first sight; local ids stay above it."""
        db.emit(step_events(5000, "from-instance", [Project(id=1)]))
        db.emit(step_events(5000, "second-step", [Project(id=2)]))
        local = db.new_task_id("local")
        tasks = [(t.id, t.name, t.origin) for t in db.tasks()]
        expected = ([(5000, "from-instance", "external"), (5001, "local", "local")], 5001)
        assert expected == (tasks, local)

    def test_events_without_task_id(self, db: SQLiteBackend) -> None:
        """Events with no task id get one local task per outermost run; child runs join it."""
        root = step_events(None, "outer", [Dataset(id=1)])
        child = step_events(None, "inner", [Dataset(id=2)], parent=root[0].step.run_id)
        db.emit(root[:2])
        db.emit(child)
        db.emit(root[2:])
        db.emit(step_events(None, "another"))
        tasks = [(t.name, t.status) for t in db.tasks()]
        edge_tasks = {e.task_id for e in db.edges()}
        assert ([("outer", "ok"), ("another", "ok")], {1}) == (tasks, edge_tasks)

    def test_node_card_last_action_wins(self, db: SQLiteBackend) -> None:
        """The main node's card is the last customNodeSettings recorded."""
        task_id = db.new_task_id("t")
        first = {"customNodeSettings": {"title": "<h4>First</h4>"}}
        second = {"customNodeSettings": {"title": "<h4>Second</h4>"}}
        db.emit(step_events(task_id, "t", [Dataset(id=1)], meta=first))
        db.emit(step_events(task_id, "t", [Dataset(id=2)], meta=second))
        expected = {"title": "<h4>Second</h4>"}
        assert expected == db.tasks()[0].node_meta

    def test_iter_events_round_trip(self, db: SQLiteBackend) -> None:
        """Stored events read back equal to what was emitted, in order."""
        batch = step_events(3, "t", [Project(id=1, version_id=2)], [File(id=5, path="/x")], meta={"a": 1})
        db.emit(batch)
        assert batch == list(db.iter_events())

    def test_push_record(self, db: SQLiteBackend) -> None:
        """Events not yet pushed to a destination come back in order, flagged when their task is local;
        marked events are left out for that destination only."""
        local_id = db.new_task_id("local")
        local = step_events(local_id, "local", [Dataset(id=1)])
        external = step_events(5, "external", [Dataset(id=2)])
        db.emit(local)
        db.emit(external)
        first = list(db.iter_unpushed("dest-a"))
        db.mark_pushed("dest-a", [e.event_id for e in local[:2]])
        db.mark_pushed("dest-a", [local[0].event_id])  # twice: recorded once
        expected = (
            [(e, True) for e in local] + [(e, False) for e in external],
            [*local[2:], *external],
            [*local, *external],
            (2, 0),
        )
        assert expected == (
            first,
            [e for e, _ in db.iter_unpushed("dest-a")],
            [e for e, _ in db.iter_unpushed("dest-b")],
            (db.pushed_count("dest-a"), db.pushed_count("dest-b")),
        )

    def test_command_line_masks_secrets(self, db: SQLiteBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        """Values of secret-looking options and the API token never reach the store."""
        monkeypatch.setenv("API_TOKEN", "s3cr3t-token-value")
        monkeypatch.setattr(
            sys, "argv", ["train.py", "--api-token", "abc123", "--password=hunter2", "--lr", "0.1",
                          "--url=https://x/?t=s3cr3t-token-value"],
        )
        db.new_task_id("t")
        command = db.tasks()[0].command or ""
        leaked = [s for s in ("abc123", "hunter2", "s3cr3t-token-value") if s in command]
        expected = ([], True)
        assert expected == (leaked, "--lr 0.1" in command)

    def test_command_is_the_command_as_typed(self, tmp_path: Path) -> None:
        """A script run as `python train.py --lr 0.1` is stored with its interpreter, so `reproduce` prints a
        command that runs again (sys.argv alone lacks the interpreter)."""
        script = tmp_path / "train.py"
        script.write_text("import workflow_trace as wt\nwt.configure('sqlite')\n"
                          "with wt.workflow_step('train'):\n    pass\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_TRACE_")}
        subprocess.run([sys.executable, "train.py", "--lr", "0.1"], cwd=tmp_path, env=env, check=True, timeout=60)
        store = SQLiteBackend(tmp_path / ".workflow_trace" / "workflow.db")
        assert [shlex.join([sys.executable, "train.py", "--lr", "0.1"])] == [t.command for t in store.tasks()]
        store.close()

    def test_close_then_reuse(self, db: SQLiteBackend) -> None:
        """A closed store reopens on the next write."""
        db.emit(step_events(1, "a"))
        db.close()
        db.close()
        db.emit(step_events(1, "b"))
        expected = 2
        assert expected == db.counts()["steps"]

    def test_pickle_reopens_same_file(self, db: SQLiteBackend) -> None:
        """A pickled store (multiprocessing spawn) names the same file."""
        db.new_task_id("x")
        assert db.path == pickle.loads(pickle.dumps(db)).path


class TestTaskIds:
    def test_ids_reserved_ahead_are_given_back(self, tmp_path: Path) -> None:
        """A store keeps a block of ids reserved ahead; what it did not use is given back at close."""
        path = tmp_path / "ids.db"
        first = SQLiteBackend(path)
        used = [first.new_task_id(f"t{i}") for i in range(300)]
        first.close()
        second = SQLiteBackend(path)
        expected = (list(range(1, 301)), 301)
        assert expected == (used, second.new_task_id("next"))
        second.close()

    def test_interleaved_stores_never_share_an_id(self, tmp_path: Path) -> None:
        """Two stores reserving blocks in turn on one file, one closing first: no id is handed out twice."""
        path = tmp_path / "ids.db"
        a, b = SQLiteBackend(path), SQLiteBackend(path)
        ids = []
        for _ in range(40):
            ids += [a.new_task_id("a"), a.new_task_id("a"), b.new_task_id("b")]
        a.close()
        c = SQLiteBackend(path)
        ids += [b.new_task_id("b"), c.new_task_id("c")]
        b.close()
        ids.append(c.new_task_id("c"))
        c.close()
        expected = (len(ids), True)
        assert expected == (len(set(ids)), ids[-1] > max(ids[:-1]))


def _write_events(path: str, worker: int, count: int, batch: int) -> None:
    """Child process: emit ``count`` events in batches through its own store object."""
    backend = SQLiteBackend(path)
    task_id = backend.new_task_id(f"worker-{worker}")
    step = StepRef(run_id=new_run_id(), name=f"worker-{worker}")
    events = [
        Event(kind="input", event_id=new_event_id(), time=utcnow(), task_id=task_id, step=step,
              node=File(path=f"/data/{worker}/{i}.jpg"))
        for i in range(count)
    ]
    for start in range(0, count, batch):
        backend.emit(events[start:start + batch])
    backend.close()


def _write_through_inherited(backend: SQLiteBackend, count: int) -> None:
    """Forked child: use the store object the parent created (and had used) before the fork."""
    for i in range(count):
        backend.emit(step_events(1, f"child-{i}", [Dataset(id=i)]))


class TestConcurrency:
    def test_four_processes_write_one_file(self, tmp_path: Path) -> None:
        """4 processes x 500 events into one file: no errors, every event stored once."""
        path = tmp_path / "shared.db"
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_write_events, args=(str(path), w, 500, 20)) for w in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(120)
        expected = [0, 0, 0, 0]
        assert expected == [p.exitcode for p in procs]
        counts = rows(path, "SELECT count(*), count(DISTINCT event_id) FROM events")
        per_task = rows(path, "SELECT task_id, count(*) FROM edges GROUP BY task_id ORDER BY task_id")
        expected = ([(2000, 2000)], [(1, 500), (2, 500), (3, 500), (4, 500)])
        assert expected == (counts, per_task)

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
    def test_forked_child_gets_its_own_connection(self, db: SQLiteBackend) -> None:
        """After fork() the child writes through the inherited object; the parent keeps working."""
        db.emit(step_events(1, "parent-before"))
        ctx = multiprocessing.get_context("fork")
        proc = ctx.Process(target=_write_through_inherited, args=(db, 20))
        proc.start()
        proc.join(60)
        db.emit(step_events(1, "parent-after"))
        expected = (0, 22)
        assert expected == (proc.exitcode, db.counts()["steps"])

    def test_threads_share_one_store(self, db: SQLiteBackend) -> None:
        """Eight threads emitting through one object lose nothing."""
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(25):
                    db.emit(step_events(db.new_task_id(f"t{n}"), f"t{n}-{i}", [Dataset(id=n * 100 + i)]))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        expected = ([], 200, 600)
        assert expected == (errors, db.counts()["tasks"], db.counts()["events"])
