"""The local store's throughput, and loading and exporting a large lineage graph.

1. Store throughput: events per second through ``SQLiteBackend.emit`` for several batch sizes (one batch
   is one transaction, synced as WAL with ``synchronous=NORMAL``), events built beforehand.
2. A graph of 10,000 tasks and 50,000 edges (each task reads two earlier outputs and writes three files),
   recorded through ``emit`` as a pipeline would; then the time to load it from the file and to export
   it in every format, and to compute a scope and a lineage; and issue 15's goal, load + HTML export
   under 1.5 s, as the medians of ``--repeat`` loads and HTML exports.

Run: python benchmarks/bench_store.py [--repeat N]   (about a minute; everything goes to a temporary folder)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from _common import noise_line

from workflow_trace._events import Event, StepRef, new_event_id, new_run_id, utcnow
from workflow_trace._nodes import Dataset, File, Node, Project
from workflow_trace.backends.sqlite import SQLiteBackend
from workflow_trace.graph import Graph, load_graph

T = TypeVar("T")

TASKS = 10_000
GOAL_S = 1.5  # issue 15: load + HTML export of the 10,000-task graph
INPUTS_PER_TASK = 2
OUTPUTS_PER_TASK = 3


def timed(label: str, fn: Callable[[], T]) -> tuple[T, float]:
    """Run ``fn`` once, print how long it took, return its result and the seconds."""
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"  {label:<44} {seconds:8.3f} s")
    return result, seconds


def make_events(task_id: int, name: str, inputs: list[Node], outputs: list[Node]) -> list[Event]:
    """The events of one task's outermost step."""
    step = StepRef(run_id=new_run_id(), name=name)

    def event(kind: Any, **fields: Any) -> Event:
        return Event(kind=kind, event_id=new_event_id(), time=utcnow(), task_id=task_id, step=step, **fields)

    return [
        event("step_started"),
        *(event("input", node=n) for n in inputs),
        *(event("output", node=n) for n in outputs),
        event("step_finished", status="ok"),
    ]


def throughput(folder: Path) -> None:
    """Events per second for several batch sizes, each into a fresh file."""
    print("store throughput (SQLiteBackend.emit, one batch = one transaction)")
    for batch, total in ((1, 5_000), (10, 20_000), (100, 50_000), (1000, 50_000)):
        store = SQLiteBackend(folder / f"throughput-{batch}.db")
        task_id = store.new_task_id("bench")
        step = StepRef(run_id=new_run_id(), name="bench")
        events = [
            Event(kind="input", event_id=new_event_id(), time=utcnow(), task_id=task_id, step=step,
                  node=File(path=f"/data/{i}.jpg"))
            for i in range(total)
        ]
        start = time.perf_counter()
        for i in range(0, total, batch):
            store.emit(events[i:i + batch])
        seconds = time.perf_counter() - start
        store.close()
        print(f"  batch {batch:>5}: {total:>6} events in {seconds:6.2f} s = {total / seconds:>9,.0f} events/s")


def record_large_graph(path: Path) -> int:
    """Record TASKS tasks x (2 inputs + 3 outputs); returns the number of events."""
    rng = random.Random(42)
    store = SQLiteBackend(path)
    pool: list[Node] = [Project(id=i) for i in range(1, 51)] + [Dataset(id=i) for i in range(1, 51)]
    batches: list[list[Event]] = []
    for t in range(TASKS):
        task_id = t + 1
        # Read two recent outputs (a realistic pipeline mostly builds on recent work).
        window = pool[-300:]
        inputs = rng.sample(window, INPUTS_PER_TASK)
        outputs: list[Node] = [File(path=f"/runs/{task_id}/out{k}.bin", model_weight=k == 0)
                               for k in range(OUTPUTS_PER_TASK)]
        batches.append(make_events(task_id, f"task-{task_id}", inputs, outputs))
        pool.extend(outputs)
    start = time.perf_counter()
    for batch in batches:
        store.emit(batch)
    seconds = time.perf_counter() - start
    count = sum(len(b) for b in batches)
    print(f"  recorded {TASKS:,} tasks, {count:,} events in {seconds:.2f} s = {count / seconds:,.0f} events/s "
          f"(batches of {len(batches[0])})")
    store.close()
    return count


def large_graph(folder: Path) -> Path:
    """Load and export a graph of 10,000 tasks and 50,000 edges; the store's path."""
    print(f"graph of {TASKS:,} tasks and {TASKS * (INPUTS_PER_TASK + OUTPUTS_PER_TASK):,} edges")
    path = folder / "large.db"
    record_large_graph(path)
    graph, load_s = timed("load_graph (workspace)", lambda: load_graph(path))
    assert isinstance(graph, Graph)
    print(f"  -> {len(graph.tasks):,} tasks, {len(graph.nodes):,} nodes, {len(graph.edges):,} edges")
    total = load_s
    for fmt in ("text", "mermaid", "dot", "json", "html"):
        text, seconds = timed(f"export {fmt}", lambda fmt=fmt: graph.export(fmt))  # type: ignore[misc]
        total += seconds
        print(f"     {len(text) / 1e6:.1f} MB")
    project = next(k for k in graph.nodes if k.startswith("project:"))
    timed(f"scope {project}", lambda: graph.scoped(project))
    timed(f"scope task:{TASKS // 2}", lambda: graph.scoped(f"task:{TASKS // 2}"))
    timed("upstream of the last task's output", lambda: graph.upstream(f"file:/runs/{TASKS}/out0.bin"))
    print(f"  load + every export: {total:.2f} s")
    return path


def goal(path: Path, repeat: int) -> None:
    """Issue 15's goal: the medians of ``repeat`` loads and HTML exports, each with no other graph in memory."""
    loads, pages = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        graph = load_graph(path)
        loads.append(time.perf_counter() - start)
        start = time.perf_counter()
        graph.to_html()
        pages.append(time.perf_counter() - start)
        del graph
    load_s, html_s = statistics.median(loads), statistics.median(pages)
    print(f"  load_graph, {repeat} times: median {load_s:.3f} s ({' / '.join(f'{t:.2f}' for t in loads)})")
    print(f"  export html, {repeat} times: median {html_s:.3f} s ({' / '.join(f'{t:.2f}' for t in pages)})")
    verdict = "met" if load_s + html_s < GOAL_S else "NOT met"
    print(f"  load + html (medians): {load_s + html_s:.2f} s; goal < {GOAL_S} s: {verdict}")


def main() -> None:
    """Run both benchmarks in a temporary folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="loads and HTML exports for the medians (default 5)")
    opts = parser.parse_args()
    print(f"python {sys.version.split()[0]}, sqlite {__import__('sqlite3').sqlite_version}")
    print(noise_line())
    with tempfile.TemporaryDirectory(prefix="workflow-trace-bench-") as tmp:
        throughput(Path(tmp))
        goal(large_graph(Path(tmp)), max(1, opts.repeat))


if __name__ == "__main__":
    main()
