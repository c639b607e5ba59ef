"""``workflow-trace spool``: pending/dead counts, ``retry`` and ``drop --dead``, run as a real command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import make_event
from httpserver import EventPostTransport, RecordingServer, Request

from workflow_trace._delivery import DeliveringBackend
from workflow_trace._events import Event, StepRef, new_run_id
from workflow_trace._spool import Spool


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m workflow_trace ARGS`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "workflow_trace", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def events(n: int) -> list[Event]:
    step = StepRef(run_id=new_run_id(), name="cli")
    return [make_event("input", 1, step, meta={"n": i}) for i in range(n)]


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    """A spool with 3 pending events for "dest:a" and 2 dead ones for "dest:b"."""
    spool = Spool(tmp_path / "spool.db")
    spool.add("dest:a", "o1", enumerate(events(3), 1), error="POST /events failed: HTTP 503: busy")
    spool.add("dest:b", "o1", enumerate(events(2), 1), status="dead", error="HTTP 400: bad node")
    yield spool
    spool.close()


class TestSpoolCommand:
    def test_status_lists_pending_and_dead_per_destination(self, spool: Spool) -> None:
        """``spool`` prints one line per destination with its counts and last error."""
        result = cli("spool", "--spool", str(spool.path))
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"spool: {spool.path}"
        assert lines[1].split()[:3] == ["DESTINATION", "PENDING", "DEAD"]
        assert lines[2].split()[:3] == ["dest:a", "3", "0"]
        assert lines[3].split()[:3] == ["dest:b", "0", "2"]
        assert "HTTP 400: bad node" in lines[3]

    def test_retry_moves_dead_back_to_pending(self, spool: Spool) -> None:
        """``spool retry`` makes dead events pending again (optionally for one destination)."""
        assert "0 dead event(s)" in cli("spool", "retry", "--dest", "dest:a", "--spool", str(spool.path)).stdout
        result = cli("spool", "retry", "--spool", str(spool.path))
        assert result.returncode == 0, result.stderr
        assert "2 dead event(s) made pending again" in result.stdout
        assert [(c.dest, c.pending, c.dead) for c in spool.counts()] == [("dest:a", 3, 0), ("dest:b", 2, 0)]

    def test_drop_dead_deletes_only_dead_events(self, spool: Spool) -> None:
        """``spool drop --dead`` deletes the dead events; ``drop`` alone is refused."""
        refused = cli("spool", "drop", "--spool", str(spool.path))
        assert refused.returncode == 2
        assert "--dead" in refused.stderr
        result = cli("spool", "drop", "--dead", "--spool", str(spool.path))
        assert result.returncode == 0, result.stderr
        assert "2 dead event(s) deleted" in result.stdout
        assert [(c.dest, c.pending, c.dead) for c in spool.counts()] == [("dest:a", 3, 0)]

    def test_default_spool_is_next_to_the_store(self, tmp_path: Path) -> None:
        """Without ``--spool`` the file next to ``$WORKFLOW_TRACE_DB`` is read; a missing one is empty."""
        store = tmp_path / "store" / "workflow.db"
        result = cli("spool", env={"WORKFLOW_TRACE_DB": str(store)})
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"the spool is empty ({store.parent / 'spool.db'})"
        assert not (store.parent / "spool.db").exists()
        Spool(store.parent / "spool.db").add("dest:c", "o", enumerate(events(1), 1))
        assert "dest:c" in cli("spool", env={"WORKFLOW_TRACE_DB": str(store)}).stdout
        assert "dest:c" in cli("spool", "--db", str(store)).stdout

    def test_a_refused_event_is_retried_after_the_server_is_fixed(self, tmp_path: Path) -> None:
        """A 400 leaves a dead event; after ``spool retry`` the next backend delivers it."""
        refuse = [True]

        def handler(req: Request) -> tuple[Any, ...]:
            return (400, {"error": "unknown node"}) if refuse[0] else (200, {"success": True})

        path = tmp_path / "spool.db"
        with RecordingServer(handler) as srv:
            backend = DeliveringBackend(EventPostTransport(srv.url), spool_path=path, spool_poll=0.1)
            sent = events(1)
            backend.emit(sent)
            assert backend.flush(30) is False
            backend.close()
            status = cli("spool", "--spool", str(path)).stdout
            assert f"test:{srv.url}" in status
            assert "unknown node" in status
            refuse[0] = False
            assert "1 dead event(s) made pending again" in cli("spool", "retry", "--spool", str(path)).stdout
            again = DeliveringBackend(EventPostTransport(srv.url), spool_path=path, spool_poll=0.1)
            try:
                deadline = time.monotonic() + 30
                while Spool(path).pending_count(again.key) and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert [sent[0].event_id] == [b["event_id"] for b in srv.bodies("/events")]
            finally:
                again.close()
