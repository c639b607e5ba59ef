"""The local store end to end: how fast decorated calls get stored, and loading and exporting a large graph.

1. Ingest rate, end to end: N decorated calls, then ``wt.flush()``; events per second = events / (time of
   the calls + the flush), each case in a fresh store file. Cases:

   * outside any step (an implicit run per call: 4 events: start, input, output, finish), for growing N —
     one function is one task, so N is also the number of runs of that task (a rate that falls with N
     means the writer's work per event grows with the task);
   * inside one step, 3 new nodes per call (3 events per call);
   * 10,000 explicit steps (one task each) reading 2 earlier outputs and writing 3 files (7 events each):
     the graph of part 2, recorded through the public API.

   "writer" is the part of the time after the last call returned (the flush); "calls" the calls themselves
   (the writer runs meanwhile).
2. The graph of 10,000 tasks and 50,000 edges: ``workflow_trace.graph.load_graph(path)``, then
   ``graph.to_json()``.

Run: ``python benchmarks/bench_store_v2.py`` (a few minutes; ``--quick`` for a smoke run). Everything goes
to a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import machine, noise_line, table, verdict

import workflow_trace as wt
from workflow_trace.backends import create_backend
from workflow_trace.graph import load_graph

GOAL = 50_000  # events per second


@wt.consumes_project
@wt.produces_file
def load_one(project_id: int, path: str) -> str:
    return path


@wt.consumes_project
@wt.consumes_dataset
@wt.produces_file
def three_new(project_id: int, dataset_id: int, n: int) -> str:
    return f"/runs/{n}/best.pt"


@wt.consumes_file("inputs")
@wt.produces_file
def train(inputs: list[str], task: int) -> list[str]:
    return [f"/runs/{task}/out{k}.bin" for k in range(3)]


def ingest(folder: Path, name: str, calls: int, events_per_call: int, body: Callable[[int], None]) -> dict[str, Any]:
    """Time ``body(calls)`` then ``flush()`` into a fresh store; the rates."""
    db = folder / f"{name}.db"
    store = create_backend(f"sqlite://{db}")
    wt.configure(store)
    start = time.perf_counter()
    body(calls)
    called = time.perf_counter()
    ok = wt.flush(900)
    done = time.perf_counter()
    wt.reset()
    store.close()
    events = calls * events_per_call
    return {"events": events, "calls_s": called - start, "flush_s": done - called, "total_s": done - start,
            "rate": events / (done - start), "ok": ok, "db": db}


def outside(n: int) -> None:
    for i in range(n):
        load_one(i % 50, "/models/best.pt")


def in_step(n: int) -> None:
    with wt.workflow_step("bench"):
        for i in range(n):
            three_new(i, i, i)


def graph_tasks(n: int) -> None:
    for task in range(n):
        inputs = [f"/runs/{max(0, task - 1 - k * 7)}/out{k}.bin" for k in range(2)]  # two earlier outputs
        with wt.workflow_step(f"task-{task}"):
            train(inputs, task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each ingest case (fresh store each)")
    opts = parser.parse_args()
    scale = 0.05 if opts.quick else 1.0
    tasks = max(200, int(10_000 * scale))
    print(machine())
    print(noise_line())
    with tempfile.TemporaryDirectory(prefix="wt-bench-store-") as tmp:
        folder = Path(tmp)
        cases: list[tuple[str, int, int, Callable[[int], None]]] = [
            (f"outside a step, {n:,} calls (runs of one task)", n, 4, outside)
            for n in (max(100, int(x * scale)) for x in (1_000, 5_000, 20_000))
        ]
        cases.append((f"in one step, 3 new nodes/call, {max(100, int(20_000 * scale)):,} calls",
                      max(100, int(20_000 * scale)), 3, in_step))
        cases.append((f"{tasks:,} steps, 2 inputs + 3 outputs each", tasks, 7, graph_tasks))
        rows = []
        graph_db: Path | None = None
        for i, (name, calls, per_call, body) in enumerate(cases):
            runs = [ingest(folder, f"case{i}-{r}", calls, per_call, body) for r in range(opts.repeat)]
            rates = [r["rate"] for r in runs]
            best = statistics.median(rates)
            rows.append([
                name, f"{runs[0]['events']:,}", " / ".join(f"{r['calls_s']:.2f}" for r in runs),
                " / ".join(f"{r['flush_s']:.2f}" for r in runs), " / ".join(f"{x:,.0f}" for x in rates),
                f">= {GOAL:,}", verdict(best >= GOAL and all(r["ok"] for r in runs)),
            ])
            if body is graph_tasks:
                graph_db = runs[0]["db"]
        print(f"\ningest, end to end (N decorated calls, then flush()); {opts.repeat} runs each, fresh store each")
        print(table(rows, ["case", "events", "calls s", "writer s", "events/s", "goal", "met?"]))

        assert graph_db is not None
        print(f"\ngraph of {tasks:,} tasks (load_graph + to_json), 3 times")
        load_times, json_times = [], []
        for _ in range(3):
            start = time.perf_counter()
            graph = load_graph(graph_db)
            load_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            text = graph.to_json()
            json_times.append(time.perf_counter() - start)
        sizes = ", ".join(f"{len(getattr(graph, a)):,} {a}" for a in ("tasks", "nodes", "edges") if hasattr(graph, a))
        print(table(
            [["load_graph(path)", " / ".join(f"{t:.2f}" for t in load_times), sizes],
             ["graph.to_json()", " / ".join(f"{t:.2f}" for t in json_times), f"{len(text) / 1e6:.1f} MB"]],
            ["what", "seconds", "size"],
        ))


if __name__ == "__main__":
    main()
