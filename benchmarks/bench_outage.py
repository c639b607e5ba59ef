"""Outage: 10,000 events emitted while the server is down for 10 s, then the server comes back.

The app runs a decorated step (two inputs, one output: 5 events per call) in a loop until 10,000 events
are emitted, with the server (127.0.0.1) down; the server stays down until 10 s have passed, then starts
again. Reported, from the same run:

* the app's throughput during the outage, against the same loop with the in-memory backend (the
  library's own cost) and against bare calls;
* where the events went meanwhile (spooled to disk, not held in memory, none dropped);
* after the server is back: time to drain (with the default settings, so the circuit breaker's 30 s
  cool-down is part of it), and on the server every event exactly once.

Run: python benchmarks/bench_outage.py   (about a minute)
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from httpserver import EventPostTransport, RecordingServer

import workflow_trace as wt
from workflow_trace._delivery import DeliveringBackend
from workflow_trace._spool import Spool
from workflow_trace.backends.memory import MemoryBackend

EVENTS = 10_000
OUTAGE = 10.0
PER_CALL = 5


def bare(project_id: int, dataset_id: int) -> str:
    return "/models/best.pt"


@wt.consumes_project
@wt.consumes_dataset
@wt.produces_file(model_weight=True)
def traced(project_id: int, dataset_id: int) -> str:
    return "/models/best.pt"


def calls_per_second(fn: object, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i, i)  # type: ignore[operator]
    return calls / (time.perf_counter() - start)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="  log: %(levelname)s %(message)s", stream=sys.stdout)
    calls = EVENTS // PER_CALL
    bare_rate = calls_per_second(bare, calls)
    wt.configure(MemoryBackend())
    memory_rate = calls_per_second(traced, calls)
    wt.reset()

    server = RecordingServer().start()
    server.stop()  # the port now refuses connections
    with tempfile.TemporaryDirectory() as tmp:
        spool_path = Path(tmp) / "spool.db"
        backend = DeliveringBackend(EventPostTransport(server.url), spool_path=spool_path)
        wt.configure(backend)
        outage_start = time.monotonic()
        outage_rate = calls_per_second(traced, calls)
        emitted = backend.stats().emitted
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - outage_start)))
        during = backend.stats()
        spooled_during = Spool(spool_path).pending_count(backend.key)
        server.start()
        up = time.monotonic()
        delivered = backend.flush(110)
        drain = time.monotonic() - up
        after = backend.stats()
        left = Spool(spool_path).pending_count(backend.key)
        wt.reset()
        backend.close()
    server.stop()

    ids = Counter(body["event_id"] for body in server.bodies("/events"))
    duplicates = sum(n - 1 for n in ids.values())
    print()
    print(f"{EVENTS:,} events ({calls:,} decorated calls x {PER_CALL}) emitted with the server down for {OUTAGE:.0f} s")
    print(f"{'app throughput':40s} {'calls/s':>10s} {'events/s':>10s}")
    for name, rate in (
        ("bare calls", bare_rate),
        ("workflow_trace, memory backend", memory_rate),
        ("workflow_trace, server down (outage)", outage_rate),
    ):
        events = "-" if name == "bare calls" else f"{rate * PER_CALL:,.0f}"
        print(f"{name:40s} {rate:10,.0f} {events:>10s}")
    print(f"outage throughput / memory-backend throughput: {outage_rate / memory_rate:.2f}")
    print(
        f"at the end of the outage: {during.spooled:,} events written to the spool ({spooled_during:,} pending), "
        f"{during.queued} in memory, {during.failures} failed sends, breaker {during.breaker}"
    )
    print(
        f"after the server came back: flush {'ok' if delivered else 'FAILED'} in {drain:.1f} s "
        f"(breaker cool-down included); {after.delivered:,} delivered, {left} left in the spool"
    )
    print(
        f"on the server: {sum(ids.values()):,} received, {len(ids):,} distinct of {emitted:,} emitted, "
        f"{duplicates} duplicates, {emitted - len(ids)} lost"
    )


if __name__ == "__main__":
    main()
