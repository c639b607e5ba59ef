"""The delivery layer across processes: exit with the server down, fork, multiprocessing, ``kill -9``."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import make_event, wait_for
from httpserver import EventPostTransport, RecordingServer, Request

from workflow_trace._delivery import DeliveringBackend
from workflow_trace._events import Event, StepRef, new_run_id
from workflow_trace._spool import Spool, SpoolRow

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

TESTS = Path(__file__).resolve().parent
FAST = "backoff_base=0.01, backoff_max=0.05, breaker_threshold=2, breaker_cooldown=0.05, spool_poll=0.1"

# The child programs share this prologue: argv[1] is the server URL, argv[2] the spool file.
PROLOGUE = f"""
import json, os, sys, time
sys.path.insert(0, {str(TESTS)!r})
from httpserver import EventPostTransport
from _support import make_event, wait_for
from workflow_trace._delivery import DeliveringBackend
from workflow_trace._events import Event, StepRef, new_run_id
url, spool = sys.argv[1], sys.argv[2]
backend = DeliveringBackend(EventPostTransport(url), spool_path=spool, {FAST})
"""


def run_child(program: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run ``PROLOGUE + program`` in a fresh interpreter; return its stdout (fails on a non-zero exit)."""
    result = subprocess.run(
        [sys.executable, "-c", PROLOGUE + textwrap.dedent(program), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def received_ids(server: RecordingServer) -> list[str]:
    return [body["event_id"] for body in server.bodies("/events") if body]



def run_events(task_id: int, name: str, n: int) -> list[Event]:
    step = StepRef(run_id=new_run_id(), name=name)
    return [make_event("input", task_id, step, meta={"n": i}) for i in range(n)]


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    """A recording server that accepts everything."""
    srv = RecordingServer().start()
    yield srv
    srv.stop()


def test_exit_with_the_server_down_spools_and_the_next_process_delivers(
    server: RecordingServer, tmp_path: Path
) -> None:
    """A process exiting with the server down leaves within its deadline; the next one delivers, in order."""
    spool = tmp_path / "spool.db"
    server.stop()
    emitted = json.loads(
        run_child(
            """
            ids = []
            for task in (1, 2, 3):
                step = StepRef(run_id=new_run_id(), name=f"run{task}")
                events = [make_event("input", task, step, meta={"n": i}) for i in range(10)]
                backend.emit(events)
                ids += [e.event_id for e in events]
            print(json.dumps(ids))
            """,
            server.url,
            str(spool),
            env={"WORKFLOW_TRACE_EXIT_TIMEOUT": "1"},
            timeout=30,  # an SDK-style retry loop would take minutes
        )
    )
    key = f"test:{server.url}"
    assert Spool(spool).pending_count(key) == len(emitted) == 30
    server.start()
    run_child(
        """
        deadline = time.monotonic() + 30
        while backend.spool.pending_count(backend.key) and time.monotonic() < deadline:
            time.sleep(0.02)
        """,
        server.url,
        str(spool),
    )
    assert emitted == received_ids(server)
    assert Spool(spool).pending_count(key) == 0


def test_exit_delivers_the_process_steps_end(server: RecordingServer, tmp_path: Path) -> None:
    """SDK-style calls outside any step: the process step's end, emitted at exit, is delivered by this process."""
    run_child(
        """
        import workflow_trace as wt
        wt.configure(backend)
        wt.workflow.add_input_project(42)
        """,
        server.url,
        str(tmp_path / "spool.db"),
    )
    assert [b["kind"] for b in server.bodies("/events")] == ["step_started", "input", "step_finished"]
    assert Spool(tmp_path / "spool.db").counts() == []


def test_fork_child_sends_its_own_events_not_the_parents(server: RecordingServer, tmp_path: Path) -> None:
    """After fork the child delivers its events with its own worker; the parent's queue is not re-sent."""
    gate = threading.Event()
    parent_seen = threading.Event()

    def handler(req: Request) -> tuple[Any, ...]:
        if (req.json() or {}).get("step", {}).get("name") == "parent":
            parent_seen.set()
            gate.wait(30)
        return 200, {"success": True}

    server.handler = handler
    backend = DeliveringBackend(EventPostTransport(server.url), spool_path=tmp_path / "spool.db")
    try:
        parent_events = run_events(1, "parent", 20)
        backend.emit(parent_events)
        assert parent_seen.wait(30)  # the worker is stuck in a send; most events are still queued
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                child_events = run_events(2, "child", 10)
                backend.emit(child_events)
                code = 0 if backend.flush(20) and backend.stats().emitted == 10 else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        gate.set()
        assert backend.flush(30) is True
        ids = received_ids(server)
        assert len(ids) == len(set(ids)) == 30
        assert [e.event_id for e in parent_events] == [i for i in ids if i in {e.event_id for e in parent_events}]
    finally:
        gate.set()
        backend.close()


def _mp_child(backend: DeliveringBackend) -> None:
    backend.emit(run_events(3, "mp-child", 5))  # no flush: the exit hook of multiprocessing does it


def test_multiprocessing_child_delivers_at_its_exit(server: RecordingServer, tmp_path: Path) -> None:
    """A multiprocessing child that emits and returns (``os._exit``, no atexit) still delivers its events."""
    backend = DeliveringBackend(EventPostTransport(server.url), spool_path=tmp_path / "spool.db")
    try:
        process = multiprocessing.get_context("fork").Process(target=_mp_child, args=(backend,))
        process.start()
        process.join(60)
        assert process.exitcode == 0
        assert len(received_ids(server)) == 5
        assert {"mp-child"} == {b["step"]["name"] for b in server.bodies("/events")}
    finally:
        backend.close()


def test_kill_9_loses_only_unspooled_events_and_never_corrupts_the_spool(
    server: RecordingServer, tmp_path: Path
) -> None:
    """``kill -9`` mid-run: the spool passes integrity_check, holds an unbroken prefix, all of it delivered."""
    spool_path = tmp_path / "spool.db"
    server.stop()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PROLOGUE
            + textwrap.dedent(
                """
                step = StepRef(run_id=new_run_id(), name="killed")
                for i in range(1_000_000):
                    backend.emit([make_event("input", 9, step, meta={"n": i})])
                    if i % 50 == 0:
                        time.sleep(0.001)
                """
            ),
            server.url,
            str(spool_path),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        spool = Spool(spool_path)
        key = f"test:{server.url}"
        assert wait_for(lambda: spool.exists() and spool.pending_count(key) >= 500)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert spool.integrity_check() == "ok"
    with spool._read() as conn:
        rows = conn.execute("SELECT lseq, event_id FROM events WHERE dest = ? ORDER BY lseq", (key,)).fetchall()
    with spool._read() as conn:
        payloads = conn.execute("SELECT event_id, origin, lseq, payload, attempts, last_error FROM events").fetchall()
    events = {row[0]: SpoolRow(*row).event() for row in payloads}
    numbers = [events[event_id].meta["n"] for _, event_id in rows]  # type: ignore[index]
    assert numbers == list(range(len(numbers)))  # an unbroken prefix of what was emitted, in order

    server.start()
    # The dead child may still hold the destination's lease: a live process on this host takes it over.
    backend = DeliveringBackend(EventPostTransport(server.url), spool_path=spool_path, spool_poll=0.1)
    try:
        assert wait_for(lambda: len(received_ids(server)) == len(numbers))
        assert [b["meta"]["n"] for b in server.bodies("/events")] == numbers
    finally:
        backend.close()
