"""``workflow-trace push``: replay the local store to a real HTTP server on 127.0.0.1, idempotently."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _support import cli_text
from httpserver import RecordingServer, Request

import workflow_trace as wt
from workflow_trace.backends.sqlite import SQLiteBackend

REPO = Path(__file__).resolve().parents[1]
TOKEN = "push-T0KEN-" + "y" * 40
API = "/public/api/v3/"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m workflow_trace ARGS`` in ``cwd``; exit waits at most a second for a server."""
    return cli_text(*args, cwd=cwd, env={"WORKFLOW_TRACE_EXIT_TIMEOUT": "1", **(env or {})})



def report(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The ``name: value`` lines of push's report."""
    out: dict[str, str] = {}
    for line in result.stdout.splitlines()[1:]:
        name, _, value = line.strip().partition(":")
        out[name] = value.strip()
    return out


def pipeline(db: Path, data: Path) -> None:
    """Record a small pipeline in ``db``: a versioned training step and an export."""
    project = data / "coco"
    project.mkdir(parents=True, exist_ok=True)
    (project / "a.jpg").write_bytes(b"image")
    backend = SQLiteBackend(db)
    wt.configure(backend, strict=True)

    @wt.consumes_project(version=True)
    @wt.produces_file(model_weight=True)
    def train(project: str) -> str:
        return str(data / "best.pt")

    @wt.consumes_file("weights")
    @wt.produces_folder(arg="out")
    def export(weights: str, out: str) -> None:
        """Export the weights."""

    export(train(str(project)), str(data / "out"))
    wt.reset()
    backend.close()


def run_ids(requests: list[Request]) -> list[str]:
    """The OpenLineage run id of each received RunEvent."""
    return [r.json()["run"]["runId"] for r in requests]


class TestOpenLineage:
    def test_push_twice_sends_once(self, tmp_path: Path) -> None:
        """The first push delivers every event; the second sends nothing; a new task alone goes next."""
        db = tmp_path / "store" / "workflow.db"
        pipeline(db, tmp_path / "data")
        store = SQLiteBackend(db)
        events = store.counts()["events"]
        store.close()
        with RecordingServer() as server:
            dest = f"openlineage+{server.url}"
            first = cli("push", dest, "--db", str(db), cwd=tmp_path)
            after_first = list(server.requests)
            second = cli("push", dest, "--db", str(db), cwd=tmp_path)
            after_second = list(server.requests)
            pipeline(db, tmp_path / "data2")
            third = cli("push", dest, "--db", str(db), cwd=tmp_path)
            new = server.requests[len(after_second):]
        expected = {
            "first": (0, "", str(events), str(events), "0"),
            "second": (0, "", "0", f"{events} (not sent again)", len(after_first)),
            "third": (0, f"{events} (not sent again)", str(events), len(after_first), set()),
        }
        actual = {
            "first": (first.returncode, first.stderr, report(first)["replayed now"], report(first)["delivered"],
                      report(first)["waiting in the spool"]),
            "second": (second.returncode, second.stderr, report(second)["replayed now"],
                       report(second)["pushed before"], len(after_second)),
            # the same pipeline again: as many new events and RunEvents, all of new runs
            "third": (third.returncode, report(third)["pushed before"], report(third)["replayed now"], len(new),
                      set(run_ids(new)) & set(run_ids(after_first))),
        }
        assert expected == actual
        assert [f"pushed to openlineage:{server.url}/api/v1/lineage"] == first.stdout.splitlines()[:1]

    def test_events_keep_their_order(self, tmp_path: Path) -> None:
        """RunEvents arrive in the order the store recorded them: each run starts before it completes."""
        db = tmp_path / "store" / "workflow.db"
        pipeline(db, tmp_path / "data")
        with RecordingServer() as server:
            result = cli("push", f"openlineage+{server.url}", "--db", str(db), cwd=tmp_path)
            kinds = [(r.json()["run"]["runId"], r.json()["eventType"]) for r in server.requests]
        starts = {run: i for i, (run, kind) in reversed(list(enumerate(kinds))) if kind == "START"}
        completes = {run: i for i, (run, kind) in enumerate(kinds) if kind == "COMPLETE"}
        expected = (0, set(starts), True)
        assert expected == (result.returncode, set(completes), all(starts[r] < completes[r] for r in completes))

    def test_server_down_then_up(self, tmp_path: Path) -> None:
        """With the server away, push keeps the events in the spool (exit 1); the next push delivers them
        once, and a third push sends nothing."""
        db = tmp_path / "store" / "workflow.db"
        pipeline(db, tmp_path / "data")
        server = RecordingServer().start()
        server.stop()  # the port refuses connections
        dest = f"openlineage+{server.url}"
        down = cli("push", dest, "--db", str(db), "--timeout", "2", cwd=tmp_path)
        server.start()
        try:
            up = cli("push", dest, "--db", str(db), cwd=tmp_path)
            delivered = len(server.requests)
            again = cli("push", dest, "--db", str(db), cwd=tmp_path)
            total = len(server.requests)
        finally:
            server.stop()
        with RecordingServer() as fresh:
            cli("push", f"openlineage+{fresh.url}", "--db", str(db), cwd=tmp_path)
            one_push = len(fresh.requests)
        expected = (1, True, 0, "0", 0, one_push, one_push)
        actual = (
            down.returncode, "spool" in down.stderr, up.returncode, report(up)["waiting in the spool"],
            again.returncode, delivered, total,
        )
        assert expected == actual

    def test_spool_next_to_the_store(self, tmp_path: Path) -> None:
        """Undelivered events wait in spool.db next to the pushed store, as `spool --db` shows them."""
        db = tmp_path / "store" / "workflow.db"
        pipeline(db, tmp_path / "data")
        server = RecordingServer().start()
        server.stop()
        cli("push", f"openlineage+{server.url}", "--db", str(db), "--timeout", "1", cwd=tmp_path)
        status = cli("spool", "--db", str(db), cwd=tmp_path)
        expected = (True, True)
        assert expected == ((db.parent / "spool.db").is_file(), f"openlineage:{server.url}" in status.stdout)


class FakeInstance:
    """Answers what the Supervisely backend asks: the instance version and the workflow edges."""

    def __init__(self) -> None:
        self.server = RecordingServer(self.handle)

    def handle(self, req: Request) -> tuple[Any, ...]:
        method = req.path[len(API):]
        if req.headers.get("x-api-key") != TOKEN:
            return 401, {"error": "Unauthorized"}
        if method == "instance.version":
            return 200, {"version": "6.12.44"}
        if method in ("workflow.node.add-input", "workflow.node.add-output"):
            return 200, {"success": True}
        return 404, {"error": f"unknown method {method}"}

    def edges(self) -> list[Any]:
        """The bodies of the edge requests received, in order."""
        return [r.json() for r in self.server.requests if r.path.startswith(API + "workflow.node.")]


class TestSupervisely:
    @pytest.fixture
    def store(self, tmp_path: Path) -> Path:
        """A store with one task of the instance (id 5) and one task the store numbered itself."""
        db = tmp_path / "store" / "workflow.db"
        wt.configure(SQLiteBackend(db), strict=True)
        with wt.workflow_step("train", task_id=5) as step:
            step.add_input(wt.Project(id=42))
            step.add_output(wt.File(id=999, model_weight=True))
        with wt.workflow_step("local experiment", inputs=[wt.Project(id=43)]):
            pass
        wt.reset()
        return db

    def test_push_twice_sends_once(self, store: Path, tmp_path: Path) -> None:
        """Edges of instance tasks are sent once; local tasks are left out; the token is shown nowhere."""
        instance = FakeInstance()
        with instance.server as server:
            env = {"SERVER_ADDRESS": server.url, "API_TOKEN": TOKEN, "TEAM_ID": "7"}
            first = cli("push", "supervisely", "--db", str(store), cwd=tmp_path, env=env)
            second = cli("push", "supervisely", "--db", str(store), cwd=tmp_path, env=env)
            edges = instance.edges()
        expected = {
            "edges": [
                {"teamId": 7, "node": {"type": "task", "id": 5}, "type": "project", "id": 42},
                {"teamId": 7, "node": {"type": "task", "id": 5}, "type": "model_weight", "id": 999},
            ],
            "codes": (0, 0),
            "first": ("4", "3", "2"),
            "second": "0",
        }
        actual = {
            "edges": edges,
            "codes": (first.returncode, second.returncode),
            "first": (report(first)["replayed now"], report(first)["of local tasks"].split()[0],
                      report(first)["delivered"]),
            "second": report(second)["replayed now"],
        }
        assert expected == actual
        dump = "\n".join(sqlite3.connect(store).iterdump())
        assert [False, False] == [TOKEN in text for text in (first.stdout + first.stderr, dump)]


class TestErrors:
    def test_no_store(self, tmp_path: Path) -> None:
        """Pushing a store that does not exist: one line, exit code 2."""
        result = cli("push", "openlineage+http://127.0.0.1:9", "--db", str(tmp_path / "none.db"), cwd=tmp_path)
        expected = (2, 1)
        assert expected == (result.returncode, len(result.stderr.splitlines()))

    @pytest.mark.parametrize("dest", ["nosuch://x", "memory,null"])
    def test_bad_destination(self, tmp_path: Path, dest: str) -> None:
        """An unknown backend string or several destinations: one line, exit code 2."""
        db = tmp_path / "store" / "workflow.db"
        pipeline(db, tmp_path / "data")
        result = cli("push", dest, "--db", str(db), cwd=tmp_path)
        expected = (2, 1)
        assert expected == (result.returncode, len(result.stderr.splitlines()))

    def test_into_itself(self, tmp_path: Path) -> None:
        """A store is not pushed into itself."""
        db = tmp_path / "store" / "workflow.db"
        pipeline(db, tmp_path / "data")
        result = cli("push", f"sqlite://{db}", "--db", str(db), cwd=tmp_path)
        expected = (2, True)
        assert expected == (result.returncode, "into itself" in result.stderr)


def test_push_into_another_store(tmp_path: Path) -> None:
    """A store pushed into another local store gives the same graph there; pushing again adds nothing."""
    db = tmp_path / "store" / "workflow.db"
    other = tmp_path / "other" / "workflow.db"
    pipeline(db, tmp_path / "data")
    first = cli("push", f"sqlite://{other}", "--db", str(db), cwd=tmp_path)
    second = cli("push", f"sqlite://{other}", "--db", str(db), cwd=tmp_path)
    source, target = SQLiteBackend(db), SQLiteBackend(other)
    try:
        expected = (0, 0, source.counts(), "0")
        assert expected == (first.returncode, second.returncode, target.counts(), report(second)["replayed now"])
    finally:
        source.close()
        target.close()
