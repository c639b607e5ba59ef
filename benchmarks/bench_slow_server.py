"""Slow server: the app's own latency with workflow_trace vs with synchronous workflow calls.

The server (127.0.0.1) takes 200 ms per request. The app's step does 20 ms of its own work and records
two inputs and one output. Compared, in the same run, per call of the step:

* bare: the work only;
* workflow_trace: the same function under ``@consumes_project @consumes_dataset @produces_file`` with a
  ``DeliveringBackend`` to the slow server (delivery happens in the background);
* synchronous: the work plus three ``requests.post`` calls (two inputs, one output), as an app that calls
  the SDK's workflow API directly does.

Afterwards the background worker's delivery is awaited and every event checked on the server.

Run: python benchmarks/bench_slow_server.py   (about half a minute)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from httpserver import EventPostTransport, RecordingServer

import workflow_trace as wt
from workflow_trace._delivery import DeliveringBackend
from workflow_trace._events import Event, StepRef, new_event_id, new_run_id, utcnow

DELAY = 0.2
WORK = 0.02
CALLS = 15


def work() -> None:
    time.sleep(WORK)  # the app's own work (I/O-bound, as loading a dataset is)


def bare(project_id: int, dataset_id: int) -> str:
    work()
    return "/models/best.pt"


@wt.consumes_project
@wt.consumes_dataset
@wt.produces_file(model_weight=True)
def traced(project_id: int, dataset_id: int) -> str:
    work()
    return "/models/best.pt"


def make_synchronous(url: str) -> Callable[[int, int], str]:
    step = StepRef(run_id=new_run_id(), name="sync")

    def post(kind: Any, node: wt.Node) -> None:
        event = Event(kind=kind, event_id=new_event_id(), time=utcnow(), task_id=1, step=step, node=node)
        body = event.model_dump_json()
        requests.post(url + "/sync", data=body, headers={"Content-Type": "application/json"}, timeout=30)

    def synchronous(project_id: int, dataset_id: int) -> str:
        post("input", wt.Project(id=project_id))
        post("input", wt.Dataset(id=dataset_id))
        work()
        post("output", wt.File(path="/models/best.pt", model_weight=True))
        return "/models/best.pt"

    return synchronous


def latencies_ms(fn: Callable[[int, int], str], calls: int) -> list[float]:
    out = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i + 1, i + 1)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def main() -> None:
    results: dict[str, list[float]] = {}
    with RecordingServer(delay=DELAY) as server, tempfile.TemporaryDirectory() as tmp:
        results["bare (the work only)"] = latencies_ms(bare, CALLS)
        backend = DeliveringBackend(EventPostTransport(server.url, timeout=30), spool_path=Path(tmp) / "spool.db")
        wt.configure(backend)
        results["workflow_trace (DeliveringBackend)"] = latencies_ms(traced, CALLS)
        app_done = time.perf_counter()
        results["synchronous calls (3 requests per step)"] = latencies_ms(make_synchronous(server.url), CALLS)
        delivered = backend.flush(120)
        drained_after = time.perf_counter() - app_done
        stats = backend.stats()
        wt.reset()
        backend.close()
        ids = Counter(body["event_id"] for body in server.bodies("/events"))

    base = statistics.median(results["bare (the work only)"])
    print(f"server latency {DELAY * 1e3:.0f} ms per request; the step's own work {WORK * 1e3:.0f} ms; {CALLS} calls")
    print(f"{'case':42s} {'median ms':>10s} {'max ms':>8s} {'x bare':>7s}")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:42s} {median:10.1f} {max(values):8.1f} {median / base:7.2f}")
    traced_ms = statistics.median(results["workflow_trace (DeliveringBackend)"])
    sync_ms = statistics.median(results["synchronous calls (3 requests per step)"])
    print()
    print(
        f"app latency added by workflow_trace: {traced_ms - base:+.1f} ms per step; by synchronous calls: "
        f"{sync_ms - base:+.1f} ms ({sync_ms / traced_ms:.1f}x slower than with workflow_trace)"
    )
    print(
        f"background delivery: {stats.delivered} of {stats.emitted} events delivered "
        f"(flush {'ok' if delivered else 'FAILED'}) {drained_after:.1f} s after the app's last traced call; "
        f"on the server: {len(ids)} distinct, {sum(n - 1 for n in ids.values())} duplicates"
    )


if __name__ == "__main__":
    main()
