"""Hot path: what a decorated call costs the app when a remote backend is configured and its server is up.

Compares, in the same run, per call:

* a bare call;
* a pass-through ``wrapt`` decorator (the floor for any decorator);
* the workflow_trace decorated call (two inputs, one output: 5 events) with the in-memory backend (the
  library's own cost) and with a ``DeliveringBackend`` whose server (127.0.0.1) is up, timed while the
  background worker is delivering (so GIL contention with the worker is included);
* one raw synchronous ``requests.post`` of one event (new connection, as the SDK does) and through a
  keep-alive ``requests.Session``: what the app would pay per workflow call without a background worker.

The ``emit`` of one event is also timed alone (``MemoryBackend`` vs ``DeliveringBackend``): the part of
the decorated call's cost that belongs to the delivery layer.

Run: python benchmarks/bench_hot_path.py   (under a minute)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import wrapt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from httpserver import EventPostTransport, RecordingServer

import workflow_trace as wt
from workflow_trace._delivery import DeliveringBackend
from workflow_trace._events import Event, StepRef, new_event_id, new_run_id, utcnow
from workflow_trace.backends.memory import MemoryBackend


def bare(project_id: int, dataset_id: int) -> str:
    return "/models/best.pt"


@wrapt.decorator
def passthrough(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    return wrapped(*args, **kwargs)


@passthrough
def wrapped_only(project_id: int, dataset_id: int) -> str:
    return "/models/best.pt"


@wt.consumes_project
@wt.consumes_dataset
@wt.produces_file(model_weight=True)
def traced(project_id: int, dataset_id: int) -> str:
    return "/models/best.pt"


def per_call_us(fn: Callable[[], Any], number: int, repeat: int, between: Callable[[], Any] | None = None) -> float:
    """Median over ``repeat`` rounds of the per-call time of ``number`` calls, in microseconds."""
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number * 1e6)
        if between is not None:
            between()  # not timed: let the worker catch up so each round starts with an empty queue
    return statistics.median(rounds)


def main() -> None:
    results: dict[str, float] = {}
    results["bare call"] = per_call_us(lambda: bare(1, 2), 20_000, 5)
    results["wrapt pass-through"] = per_call_us(lambda: wrapped_only(1, 2), 20_000, 5)

    memory = MemoryBackend()
    wt.configure(memory)
    results["workflow_trace, memory backend"] = per_call_us(lambda: traced(1, 2), 20_000, 5)
    step = StepRef(run_id=new_run_id(), name="bench")
    event = Event(kind="input", event_id=new_event_id(), time=utcnow(), task_id=1, step=step, node=wt.Project(id=1))
    results["MemoryBackend.emit of 1 event"] = per_call_us(lambda: memory.emit([event]), 20_000, 5)
    memory.clear()

    with RecordingServer() as server, tempfile.TemporaryDirectory() as tmp:
        backend = DeliveringBackend(EventPostTransport(server.url), spool_path=Path(tmp) / "spool.db")
        wt.configure(backend)
        traced(1, 2)
        backend.flush(30)  # warm up: worker started, connection open
        results["workflow_trace, DeliveringBackend, server up"] = per_call_us(
            lambda: traced(1, 2), 600, 5, between=lambda: backend.flush(120)
        )
        results["DeliveringBackend.emit of 1 event, server up"] = per_call_us(
            lambda: backend.emit([event]), 2_000, 3, between=lambda: backend.flush(120)
        )
        delivered_ok = backend.flush(120)
        stats = backend.stats()
        wt.reset()
        backend.close()

        body = event.model_dump_json()
        headers = {"Content-Type": "application/json"}
        url = server.url + "/events"
        results["one synchronous requests.post (new connection)"] = per_call_us(
            lambda: requests.post(url, data=body, headers=headers, timeout=5), 300, 3
        )
        session = requests.Session()
        session.trust_env = False
        results["one synchronous Session.post (keep-alive)"] = per_call_us(
            lambda: session.post(url, data=body, headers=headers, timeout=5), 1_000, 3
        )
        received = len(server.requests)

    base = results["bare call"]
    floor = results["wrapt pass-through"]
    traced_us = results["workflow_trace, DeliveringBackend, server up"]
    print(f"{'case':50s} {'us/call':>9s} {'x bare':>8s} {'x wrapt':>8s}")
    for name, us in results.items():
        print(f"{name:50s} {us:9.2f} {us / base:8.1f} {us / floor:8.1f}")
    print()
    print(f"decorated call (5 events, server up) - wrapt pass-through: {traced_us - floor:.1f} us")
    print(
        f"delivery layer's own share: DeliveringBackend vs memory backend, per decorated call "
        f"{traced_us - results['workflow_trace, memory backend']:+.1f} us; per emitted event "
        f"{results['DeliveringBackend.emit of 1 event, server up'] - results['MemoryBackend.emit of 1 event']:+.2f} us"
    )
    print(
        f"one synchronous request / decorated call: "
        f"{results['one synchronous requests.post (new connection)'] / traced_us:.1f}x (new connection), "
        f"{results['one synchronous Session.post (keep-alive)'] / traced_us:.1f}x (keep-alive); "
        f"a decorated call replaces 3 such requests (2 inputs, 1 output)"
    )
    print(
        f"delivered: {stats.delivered} of {stats.emitted} events (flush {'ok' if delivered_ok else 'FAILED'}), "
        f"spooled {stats.spooled}, server saw {received} requests in total"
    )


if __name__ == "__main__":
    main()
