"""Per-call cost of a decorated function with the in-memory backend.

Compares, in the same run: a bare call, a pass-through ``wrapt`` decorator, a workflow_trace decorated
call (two inputs, one output) outside any step (an implicit step: 4 events) and inside a step (3 events,
the same nodes each time, so deduplicated after the first call), and with tracking disabled.

Run: python benchmarks/bench_core.py
"""

from __future__ import annotations

import statistics
import timeit
from typing import Any

import wrapt

import workflow_trace as wt
from workflow_trace.backends.memory import MemoryBackend
from workflow_trace.backends.null import NullBackend


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


def per_call_us(fn: Any, number: int, repeat: int = 5) -> float:
    times = timeit.repeat(fn, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def main() -> None:
    n = 20_000
    results: dict[str, float] = {}
    results["bare call"] = per_call_us(lambda: bare(1, 2), n)
    results["wrapt pass-through"] = per_call_us(lambda: wrapped_only(1, 2), n)

    memory = MemoryBackend()
    wt.configure(memory)
    results["workflow_trace, implicit step (memory)"] = per_call_us(lambda: traced(1, 2), n)
    memory.clear()

    wt.configure(NullBackend())
    results["workflow_trace, implicit step (null)"] = per_call_us(lambda: traced(1, 2), n)

    wt.configure(memory)
    with wt.workflow_step("bench"):
        results["workflow_trace, inside a step (memory)"] = per_call_us(lambda: traced(1, 2), n)
    memory.clear()

    wt.configure(enabled=False)
    results["workflow_trace, disabled"] = per_call_us(lambda: traced(1, 2), n)
    wt.reset()

    base = results["bare call"]
    wrapt_cost = results["wrapt pass-through"]
    print(f"{'case':45s} {'us/call':>9s} {'x bare':>8s} {'x wrapt':>8s}")
    for name, us in results.items():
        print(f"{name:45s} {us:9.2f} {us / base:8.1f} {us / wrapt_cost:8.1f}")


if __name__ == "__main__":
    main()
