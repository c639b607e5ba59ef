"""The delivery layer against a real HTTP server on 127.0.0.1: batches, retries, the spool, the breaker."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from _support import make_event, wait_for
from httpserver import EventPostTransport, RecordingServer, Request

import workflow_trace as wt
from workflow_trace import _runtime
from workflow_trace._delivery import DeliveringBackend, exit_timeout
from workflow_trace._errors import ConfigurationError
from workflow_trace._events import Event, StepRef, new_run_id
from workflow_trace._spool import Spool, default_spool_path
from workflow_trace._transport import DeliveryError

# Small delays so that retries, the breaker and spool polling take milliseconds, not seconds.
FAST: dict[str, Any] = {
    "backoff_base": 0.01,
    "backoff_max": 0.05,
    "breaker_threshold": 3,
    "breaker_cooldown": 0.2,
    "hold_interval": 0.1,
    "spool_poll": 0.2,
}


def run_events(task_id: int | None, n_inputs: int = 2, name: str = "step") -> list[Event]:
    """One run's events: step_started, ``n_inputs`` inputs, an output, step_finished."""
    step = StepRef(run_id=new_run_id(), name=name)
    events = [make_event("step_started", task_id, step)]
    events += [make_event("input", task_id, step, wt.Dataset(id=i + 1)) for i in range(n_inputs)]
    events.append(make_event("output", task_id, step, wt.Project(id=100)))
    events.append(make_event("step_finished", task_id, step, status="ok"))
    return events


def received(server: RecordingServer) -> list[dict[str, Any]]:
    """The event bodies the server accepted, in arrival order."""
    return [body for body in server.bodies("/events") if body]


def received_ids(server: RecordingServer) -> list[str]:
    return [body["event_id"] for body in received(server)]


def by_task(ids_and_tasks: Sequence[tuple[str, int | None]]) -> dict[int | None, list[str]]:
    groups: dict[int | None, list[str]] = {}
    for event_id, task_id in ids_and_tasks:
        groups.setdefault(task_id, []).append(event_id)
    return groups



@pytest.fixture
def server() -> Iterator[RecordingServer]:
    """A recording server that accepts everything."""
    srv = RecordingServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def make_backend(tmp_path: Path) -> Iterator[Callable[..., DeliveringBackend]]:
    """Build DeliveringBackends with fast retry settings and a spool under tmp_path; closed afterwards."""
    made: list[DeliveringBackend] = []

    def make(target: Any, **kwargs: Any) -> DeliveringBackend:
        transport = EventPostTransport(target.url) if isinstance(target, RecordingServer) else target
        options = {**FAST, "spool_path": tmp_path / "spool.db", **kwargs}
        backend = DeliveringBackend(transport, **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


class TestDelivery:
    def test_batches_arrive_in_order_and_leave_no_spool(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend], tmp_path: Path
    ) -> None:
        """Events arrive once each, in emission order, in batches; a healthy run leaves nothing in the spool."""
        backend = make_backend(server, batch_size=50)
        events = [e for task in range(5) for e in run_events(task, n_inputs=40)]
        for start in range(0, len(events), 7):
            backend.emit(events[start : start + 7])
        assert backend.flush(30) is True
        assert [e.event_id for e in events] == received_ids(server)
        assert backend.transport.calls >= len(events) // 50  # type: ignore[attr-defined]
        assert Spool(tmp_path / "spool.db").counts() == []
        assert backend.stats().delivered == len(events)

    def test_event_json_round_trips(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend]
    ) -> None:
        """What the server receives is the event's own JSON."""
        backend = make_backend(server)
        events = run_events(7)
        backend.emit(events)
        assert backend.flush(30)
        assert events == [Event.model_validate(body) for body in received(server)]

    def test_emit_of_nothing_is_a_no_op(self, make_backend: Callable[..., DeliveringBackend]) -> None:
        """An empty batch starts no worker and is trivially flushed."""
        backend = make_backend(EventPostTransport("http://127.0.0.1:9"))
        backend.emit([])
        assert backend.flush(1) is True
        assert backend._thread is None

    def test_decorated_calls_deliver_through_the_runtime(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend]
    ) -> None:
        """A decorated function configured with a DeliveringBackend lands on the server."""
        backend = make_backend(server)
        wt.configure(backend)

        @wt.consumes_project
        @wt.consumes_dataset
        @wt.produces_file
        def train(project_id: int, dataset_id: int) -> str:
            return "/models/best.pt"

        assert train(1, 2) == "/models/best.pt"
        assert wt.flush(30) is True
        kinds = [body["kind"] for body in received(server)]
        assert kinds[0] == "step_started"
        assert kinds[-1] == "step_finished"
        assert {"input", "output"} <= set(kinds)


class TestFailures:
    def test_server_down_at_start_then_up(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend], tmp_path: Path
    ) -> None:
        """Emitted while the server is down: spooled, then all delivered once, in order per task."""
        server.stop()
        backend = make_backend(server)
        runs = [run_events(task, n_inputs=3) for task in (1, 2, 3, 1)]
        for i in range(max(len(r) for r in runs)):  # interleave the runs, as threads would
            for run in runs:
                if i < len(run):
                    backend.emit([run[i]])
        assert wait_for(lambda: Spool(tmp_path / "spool.db").pending_count(backend.key) > 0)
        assert backend.flush(0.2) is False
        server.start()
        assert backend.flush(30) is True
        bodies = received(server)
        ids = [b["event_id"] for b in bodies]
        assert len(ids) == len(set(ids)) == sum(len(r) for r in runs)
        emitted = [(e.event_id, e.task_id) for run in runs for e in run]
        emitted_in_order = [(e.event_id, e.task_id) for i in range(6) for run in runs for e in run[i : i + 1]]
        assert set(emitted) == set(emitted_in_order)
        assert by_task(emitted_in_order) == by_task([(b["event_id"], b["task_id"]) for b in bodies])
        assert Spool(tmp_path / "spool.db").pending_count(backend.key) == 0

    def test_500_then_200(self, make_backend: Callable[..., DeliveringBackend]) -> None:
        """Server errors are retried until the server answers 200; nothing is duplicated."""
        failures = iter(range(3))

        def handler(req: Request) -> tuple[Any, ...]:
            if next(failures, None) is not None:
                return 500, {"error": "internal"}
            return 200, {"success": True}

        with RecordingServer(handler) as srv:
            backend = make_backend(srv)
            events = run_events(1, n_inputs=5)
            backend.emit(events)
            assert backend.flush(30) is True
            assert [e.event_id for e in events] == received_ids(srv)
            assert len(srv.rejected) == 3
            assert backend.stats().failures == 3

    def test_partial_batches_resume_after_the_delivered_head(
        self, make_backend: Callable[..., DeliveringBackend]
    ) -> None:
        """Every 7th request fails: the delivered head of each batch is not sent again."""
        count = iter(range(1, 10_000))

        def handler(req: Request) -> tuple[Any, ...]:
            return (503, {"error": "flaky"}) if next(count) % 7 == 0 else (200, {"success": True})

        with RecordingServer(handler) as srv:
            backend = make_backend(srv, batch_size=10, breaker_threshold=1000)
            events = [e for task in range(6) for e in run_events(task, n_inputs=6)]
            backend.emit(events)
            assert backend.flush(30) is True
            assert [e.event_id for e in events] == received_ids(srv)

    def test_400_is_dead_not_retried_and_visible(
        self, make_backend: Callable[..., DeliveringBackend], tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 4xx marks that event dead (kept in the spool, logged with the server's message); others go on."""

        def handler(req: Request) -> tuple[Any, ...]:
            if (req.json() or {}).get("kind") == "output":
                return 400, {"error": "node type not supported here"}
            return 200, {"success": True}

        caplog.set_level(logging.WARNING, logger="workflow_trace")
        with RecordingServer(handler) as srv:
            backend = make_backend(srv)
            events = run_events(3, n_inputs=2)
            backend.emit(events)
            assert backend.flush(30) is False  # one event was refused
            assert backend.flush(5) is True  # reported once
            output = next(e for e in events if e.kind == "output")
            assert [e.event_id for e in events if e is not output] == received_ids(srv)
            assert len(srv.rejected) == 1  # not retried
            [counts] = Spool(tmp_path / "spool.db").counts()
            assert (counts.dest, counts.pending, counts.dead) == (backend.key, 0, 1)
            assert "node type not supported here" in (counts.last_error or "")
            assert any("node type not supported here" in r.getMessage() for r in caplog.records)
            assert backend.stats().dead == 1

    def test_the_same_server_error_over_and_over_makes_the_event_dead(
        self, make_backend: Callable[..., DeliveringBackend], tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An event the server answers with the same 5xx `max_server_errors` times is dead (kept, visible,
        logged with the server's message) instead of being retried forever in silence; the rest go on."""

        def handler(req: Request) -> tuple[Any, ...]:
            if (req.json() or {}).get("kind") == "output":
                return 500, {"error": "column node_type cannot be null"}
            return 200, {"success": True}

        caplog.set_level(logging.WARNING, logger="workflow_trace")
        with RecordingServer(handler) as srv:
            backend = make_backend(srv, max_server_errors=3, breaker_threshold=1000)
            events = run_events(4, n_inputs=2)
            backend.emit(events)
            # the spool settles a batch after the server answered it: wait for that too, then look
            assert wait_for(lambda: backend.stats().dead == 1 and len(received_ids(srv)) == len(events) - 1
                            and Spool(tmp_path / "spool.db").counts()[0].pending == 0)
            output = next(e for e in events if e.kind == "output")
            [counts] = Spool(tmp_path / "spool.db").counts()
            assert ([e.event_id for e in events if e is not output], 3, (0, 1)) == (
                received_ids(srv), len(srv.rejected), (counts.pending, counts.dead))
            assert "column node_type cannot be null" in (counts.last_error or "")
            assert any("column node_type cannot be null" in r.getMessage() for r in caplog.records)

    def test_retry_after_is_honoured(self, make_backend: Callable[..., DeliveringBackend]) -> None:
        """After a 429 with Retry-After: 1 the next request waits at least that second."""
        answers = iter([(429, {"error": "slow down"}, {"Retry-After": "1"})])

        def handler(req: Request) -> tuple[Any, ...]:
            return next(answers, (200, {"success": True}))

        with RecordingServer(handler) as srv:
            backend = make_backend(srv)
            events = run_events(1, n_inputs=1)
            backend.emit(events)
            assert backend.flush(30) is True
            assert [e.event_id for e in events] == received_ids(srv)
            # Without Retry-After the backoff here is at most 50 ms.
            assert srv.requests[0].time - srv.rejected[0].time >= 0.9

    def test_hold_keeps_events_without_counting_attempts(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend]
    ) -> None:
        """``hold=True`` keeps the event pending (max_attempts does not apply) and retries it later, without
        holding back the events behind it."""
        inner = EventPostTransport(server.url)
        holds = iter(range(3))

        class Holding:
            key = inner.key

            def send(self, events: Sequence[Event]) -> None:
                if next(holds, None) is not None:
                    raise DeliveryError("instance too old for workflows", retryable=True, hold=True)
                inner.send(events)

            def close(self) -> None:
                inner.close()

        backend = make_backend(Holding(), max_attempts=1)
        events = run_events(1)
        backend.emit(events)
        assert backend.flush(30) is True
        ids = [e.event_id for e in events]
        # Each held event waits; those behind it go on (a hold never blocks the queue head-of-line).
        expected = (sorted(ids), ids[3:], ids[:3])
        assert expected == (sorted(received_ids(server)), received_ids(server)[:2], received_ids(server)[2:])
        assert backend.stats().dead == 0

    def test_max_attempts_gives_up_counted_and_logged(
        self, make_backend: Callable[..., DeliveringBackend], tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With ``max_attempts`` an event that keeps failing is given up: dead in the spool, WARNING, counted."""
        caplog.set_level(logging.WARNING, logger="workflow_trace")
        with RecordingServer(lambda req: (500, {"error": "always"})) as srv:
            backend = make_backend(srv, max_attempts=2, breaker_threshold=100)
            events = run_events(1, n_inputs=1)
            backend.emit(events)
            spool = Spool(tmp_path / "spool.db")
            assert wait_for(lambda: [c.dead for c in spool.counts()] == [len(events)])
            assert backend.flush(5) is False
            assert spool.counts()[0].pending == 0
            assert "gave up after 2 attempts" in (spool.counts()[0].last_error or "")
            assert any("gave up" in r.getMessage() for r in caplog.records)
            assert backend.stats().dead == len(events)

    def test_circuit_breaker_stops_calling_the_server(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend], tmp_path: Path
    ) -> None:
        """After ``breaker_threshold`` failures the server is left alone; new events go to the spool."""
        server.stop()
        transport = EventPostTransport(server.url)
        backend = make_backend(transport, breaker_threshold=2, breaker_cooldown=60)
        backend.emit(run_events(1))
        assert wait_for(lambda: backend.stats().breaker == "open")
        calls = transport.calls
        for task in range(2, 12):
            backend.emit(run_events(task))
        assert wait_for(lambda: backend.stats().spooled == backend.stats().emitted)
        assert transport.calls == calls == 2
        assert Spool(tmp_path / "spool.db").pending_count(backend.key) == backend.stats().emitted
        assert backend.flush(5) is False  # the next attempt is after the deadline: no waiting

    def test_breaker_probe_closes_it_again(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend]
    ) -> None:
        """Half-open: after the cool-down one probe goes through and delivery resumes."""
        server.stop()
        backend = make_backend(server, breaker_threshold=2, breaker_cooldown=0.3)
        events = run_events(1)
        backend.emit(events)
        assert wait_for(lambda: backend.stats().breaker in ("open", "half-open"))
        server.start()
        assert backend.flush(30) is True
        assert backend.stats().breaker == "closed"
        assert [e.event_id for e in events] == received_ids(server)

    @pytest.mark.internal_errors
    def test_a_broken_transport_does_not_kill_the_worker(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend], caplog: pytest.LogCaptureFixture
    ) -> None:
        """An unexpected exception from ``send`` is logged and retried; the events still arrive."""
        inner = EventPostTransport(server.url)
        calls = iter(range(1))

        class Broken:
            key = inner.key

            def send(self, events: Sequence[Event]) -> None:
                if next(calls, None) is not None:
                    raise RuntimeError("bug in a transport")
                inner.send(events)

            def close(self) -> None:
                inner.close()

        backend = make_backend(Broken())
        events = run_events(1)
        backend.emit(events)
        assert backend.flush(30) is True
        assert [e.event_id for e in events] == received_ids(server)
        assert any("raised unexpectedly" in r.getMessage() for r in caplog.records)


class TestQueueAndSpool:
    def test_overflow_goes_to_the_spool_not_dropped(
        self, make_backend: Callable[..., DeliveringBackend], tmp_path: Path
    ) -> None:
        """Past ``max_queue`` (worker stuck in a slow send) events are spooled, then all delivered in order."""
        gate = threading.Event()

        def handler(req: Request) -> tuple[Any, ...]:
            gate.wait(30)
            return 200, {"success": True}

        with RecordingServer(handler) as srv:
            backend = make_backend(srv, max_queue=10, batch_size=5)
            events = [e for task in range(30) for e in run_events(task, n_inputs=1)]
            for event in events:
                backend.emit([event])
            assert wait_for(lambda: backend.stats().spooled > 0)
            assert backend.stats().queued <= 10 + 5
            assert Spool(tmp_path / "spool.db").pending_count(backend.key) > 0
            gate.set()
            assert backend.flush(30) is True
            assert [e.event_id for e in events] == received_ids(srv)

    def test_an_event_is_stored_once(self, tmp_path: Path) -> None:
        """The spool is keyed by destination and event id: adding an event twice stores it once."""
        spool = Spool(tmp_path / "s.db")
        events = run_events(1)
        items = list(enumerate(events, 1))
        assert spool.add("dest", "o", items) == len(events)
        assert spool.add("dest", "o", items) == 0
        assert spool.add("other", "o", items[:1]) == 1
        assert spool.pending_count("dest") == len(events)

    def test_next_process_delivers_spooled_events_first_in_order(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend], tmp_path: Path
    ) -> None:
        """Events an earlier process left for the same key are delivered before this process's own."""
        old = run_events(1, n_inputs=3)
        transport = EventPostTransport(server.url)
        Spool(tmp_path / "spool.db").add(transport.key, "00000000000000000001-1-old", enumerate(old, 1))
        backend = make_backend(transport)
        new = run_events(2)
        backend.emit(new)
        assert backend.flush(30) is True
        assert wait_for(lambda: len(received_ids(server)) == len(old) + len(new))
        assert [e.event_id for e in old + new] == received_ids(server)
        assert Spool(tmp_path / "spool.db").pending_count(transport.key) == 0

    def test_a_live_lease_keeps_other_processes_off(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend], tmp_path: Path
    ) -> None:
        """Spooled events leased by another live process are not sent until the lease is released."""
        transport = EventPostTransport(server.url)
        spool = Spool(tmp_path / "spool.db")
        old = run_events(1)
        spool.add(transport.key, "00000000000000000001-1-old", enumerate(old, 1))
        with sqlite3.connect(spool.path) as conn:
            conn.execute(
                "INSERT INTO leases VALUES (?, '00000000000000000001-1-old', 'someone-else', ?, ?, ?)",
                (transport.key, os.getpid(), socket.gethostname(), time.time() + 600),
            )
        backend = make_backend(transport, spool_poll=0.05)
        time.sleep(0.3)  # several polls of the spool
        assert received_ids(server) == []
        spool.release(transport.key, "someone-else")
        assert wait_for(lambda: len(received_ids(server)) == len(old))
        assert [e.event_id for e in old] == received_ids(server)
        assert wait_for(lambda: backend.stats().delivered == len(old))

    def test_emit_after_close_is_spooled(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend], tmp_path: Path
    ) -> None:
        """A late emit (after close) is written to the spool, and the next backend delivers it."""
        backend = make_backend(server)
        backend.close()
        late = run_events(1)
        backend.emit(late)
        assert Spool(tmp_path / "spool.db").pending_count(backend.key) == len(late)
        make_backend(server)
        assert wait_for(lambda: len(received_ids(server)) == len(late))
        assert [e.event_id for e in late] == received_ids(server)

    def test_spool_cli_operations(self, tmp_path: Path) -> None:
        """``counts``, ``retry_dead`` and ``drop_dead`` work per destination or for all."""
        spool = Spool(tmp_path / "s.db")
        assert spool.counts() == []
        a, b = run_events(1), run_events(2)
        spool.add("a", "o", enumerate(a, 1), status="dead", error="HTTP 400: bad")
        spool.add("b", "o", enumerate(b, 1))
        assert [(c.dest, c.pending, c.dead) for c in spool.counts()] == [("a", 0, len(a)), ("b", len(b), 0)]
        assert spool.retry_dead("b") == 0
        assert spool.retry_dead() == len(a)
        assert spool.pending_count("a") == len(a)
        spool.settle("a", dead=[e.event_id for e in a])
        assert spool.drop_dead("a") == len(a)
        assert [(c.dest, c.pending, c.dead) for c in spool.counts()] == [("b", len(b), 0)]
        assert spool.integrity_check() == "ok"


class TestConcurrency:
    def test_eight_threads_each_event_delivered_once(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend]
    ) -> None:
        """8 threads x 1,000 events: each delivered exactly once, each thread's events in its order."""
        backend = make_backend(server)
        emitted: dict[int, list[str]] = {}
        start = threading.Barrier(8)

        def work(task_id: int) -> None:
            step = StepRef(run_id=new_run_id(), name=f"t{task_id}")
            ids = emitted.setdefault(task_id, [])
            start.wait()
            for i in range(1000):
                event = make_event("input", task_id, step, wt.Dataset(id=i + 1))
                ids.append(event.event_id)
                backend.emit([event])

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert backend.flush(60) is True
        bodies = received(server)
        assert len(bodies) == len({b["event_id"] for b in bodies}) == 8000
        assert emitted == by_task([(b["event_id"], b["task_id"]) for b in bodies])


class TestWorker:
    def test_the_worker_records_nothing_for_its_own_work(
        self, server: RecordingServer, make_backend: Callable[..., DeliveringBackend]
    ) -> None:
        """``send`` runs in the delivery worker's thread, with tracking suppressed."""
        inner = EventPostTransport(server.url)
        seen: list[tuple[bool, bool]] = []

        class Probe:
            key = inner.key

            def send(self, events: Sequence[Event]) -> None:
                worker = threading.current_thread().name.startswith("workflow_trace delivery")
                seen.append((worker, _runtime.suppressed.get()))
                inner.send(events)

            def close(self) -> None:
                inner.close()

        backend = make_backend(Probe())
        backend.emit(run_events(1))
        assert backend.flush(30)
        assert seen
        assert all(flags == (True, True) for flags in seen)
        assert False is _runtime.suppressed.get()

    def test_bad_arguments_are_refused(self) -> None:
        """Out-of-range settings and a transport without a key raise ConfigurationError."""
        transport = EventPostTransport("http://127.0.0.1:9")
        with pytest.raises(ConfigurationError, match="max_queue"):
            DeliveringBackend(transport, max_queue=0)
        with pytest.raises(ConfigurationError, match="backoff_base"):
            DeliveringBackend(transport, backoff_base=-1)
        with pytest.raises(ConfigurationError, match="max_attempts"):
            DeliveringBackend(transport, max_attempts=0)

        class NoKey:
            key = ""

        with pytest.raises(ConfigurationError, match="key"):
            DeliveringBackend(NoKey())  # type: ignore[arg-type]

    def test_repr_names_the_destination_only(self, tmp_path: Path) -> None:
        """The repr shows the transport key and spool path."""
        backend = DeliveringBackend(EventPostTransport("http://127.0.0.1:9"), spool_path=tmp_path / "s.db")
        try:
            assert repr(backend) == f"DeliveringBackend(key='test:http://127.0.0.1:9', spool='{tmp_path / 's.db'}')"
        finally:
            backend.close()


class TestSettings:
    def test_spool_path_from_the_environment(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """WORKFLOW_TRACE_SPOOL wins; else next to WORKFLOW_TRACE_DB; else ./.workflow_trace/spool.db."""
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("WORKFLOW_TRACE_DB", raising=False)
        assert tmp_path / ".workflow_trace" / "spool.db" == default_spool_path()
        monkeypatch.setenv("WORKFLOW_TRACE_DB", str(tmp_path / "store" / "workflow.db"))
        assert tmp_path / "store" / "spool.db" == default_spool_path()
        monkeypatch.setenv("WORKFLOW_TRACE_SPOOL", "rel/spool.db")
        assert tmp_path / "rel" / "spool.db" == default_spool_path()

    def test_exit_timeout_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """WORKFLOW_TRACE_EXIT_TIMEOUT sets the exit deadline; a bad value falls back to 2 s."""
        monkeypatch.delenv("WORKFLOW_TRACE_EXIT_TIMEOUT", raising=False)
        assert exit_timeout() == 2.0
        monkeypatch.setenv("WORKFLOW_TRACE_EXIT_TIMEOUT", "0.5")
        assert exit_timeout() == 0.5
        monkeypatch.setenv("WORKFLOW_TRACE_EXIT_TIMEOUT", "soon")
        assert exit_timeout() == 2.0
