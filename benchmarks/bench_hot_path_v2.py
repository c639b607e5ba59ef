"""The decorated call's cost against baselines timed in the same run: a bare call, a ``wrapt`` pass-through
and an OpenTelemetry SDK span.

Cases (``@consumes_project @produces_file`` unless said; all timed in interleaved rounds, see ``_common``):

* bare call; ``wrapt.FunctionWrapper`` pass-through (the baseline ``x wrapt`` divides by); an OpenTelemetry
  SDK span (``TracerProvider`` + ``BatchSpanProcessor``, an exporter that only counts, 3 attributes, ``with
  tracer.start_as_current_span(...)`` inside a ``wrapt`` wrapper: the same shape of decorator);
* inside ``with wt.workflow_step(...)``, the same arguments every call (nodes already recorded);
* inside a step, 3 new nodes every call (``@consumes_project @consumes_dataset @produces_file``, distinct
  values), with the default local store and with the memory backend;
* "the floor": the same 3 new nodes per call journaled by a minimal hand-written ``wrapt`` wrapper
  (``_floor.py``: a set look-up, a JSON line per new node, two copies into a mapped file) — what any
  durable decorator written in Python pays, whatever its design; and the floor of a run per call (a run id,
  4 lines in 2 copies);
* outside any step (an implicit run per call: 4 records in 2 journal appends), with the default local
  store (``wt.configure("sqlite:///tmp/...")``) and with the memory backend;
* a decorator reading a list of N ids (N = 1, 10, 100), inside a step: the same list every call, and N new
  ids every call (the cost per input should be flat in N);
* throughput of 8 threads against 1 thread (the same total number of calls).

The local store's background writer runs while its cases are timed (its CPU time is reported apart, as
"writer CPU"); each round of such a case ends with an untimed ``flush()``, so no backlog spills into the
next case. Run: ``python benchmarks/bench_hot_path_v2.py`` (about two minutes; ``--quick`` for a smoke
run, ``--profile`` adds a cProfile of each hot-path case).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import pstats
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wrapt
from _common import Case, machine, noise_line, ratio, run_rounds, table, verdict
from _floor import FloorJournal, floor_implicit, floor_traced3
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import workflow_trace as wt
from workflow_trace import _journal
from workflow_trace.backends import create_backend
from workflow_trace.backends.memory import MemoryBackend

PATH = "/models/best.pt"


# -- the functions ------------------------------------------------------------------------------------


def bare(project_id: int, path: str) -> str:
    return path


def _passthrough(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    return wrapped(*args, **kwargs)


wrapped_only = wrapt.FunctionWrapper(bare, _passthrough)


@wt.consumes_project
@wt.produces_file
def traced(project_id: int, path: str) -> str:
    return path


@wt.consumes_project
@wt.consumes_dataset
@wt.produces_file
def traced3(project_id: int, dataset_id: int, n: int) -> str:
    return f"/runs/{n}/best.pt"


@wt.consumes_dataset("ids")
def load(ids: list[int]) -> None:
    return None


class CountingExporter(SpanExporter):
    """Counts exported spans (the SDK's own in-memory exporter would keep them all)."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def otel_decorator(provider: TracerProvider) -> Any:
    tracer = provider.get_tracer("bench")

    def span_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        with tracer.start_as_current_span(
            "load", attributes={"code.function": "load", "project.id": args[0], "file.path": args[1]}
        ):
            return wrapped(*args, **kwargs)

    return wrapt.FunctionWrapper(bare, span_wrapper)


class StepAround:
    """Enter a ``workflow_step`` before a round and leave it after (a ``with`` spanning the round)."""

    def __init__(self, backend: Any, warm: Callable[[], Any] | None = None) -> None:
        self.backend = backend
        self.warm = warm
        self.cm: Any = None

    def enter(self) -> None:
        wt.configure(self.backend)
        self.cm = wt.workflow_step("bench")
        self.cm.__enter__()
        if self.warm is not None:
            self.warm()

    def leave(self) -> None:
        self.cm.__exit__(None, None, None)


def configure_and_warm(backend: Any, warm: Callable[[], Any]) -> Callable[[], None]:
    def enter() -> None:
        wt.configure(backend)
        warm()  # the first call after configure() allocates the implicit task: not what is timed

    return enter


def fresh_ids(n: int) -> Callable[[], list[int]]:
    counter = itertools.count(1_000_000, n)

    def make() -> list[int]:
        k = next(counter)
        return list(range(k, k + n))

    return make


# -- threads ------------------------------------------------------------------------------------------


def throughput(fn: Callable[[], Any], threads: int, total: int) -> float:
    """Calls per second of ``threads`` threads making ``total`` calls together."""
    per_thread = total // threads
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            fn()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in workers:
        t.join()
    return per_thread * threads / (time.perf_counter() - start)


def thread_scaling(store: Any, repeats: int, total: int) -> list[list[str]]:
    """1 against 8 threads for four cases; the local store cases make a tenth of the calls (its writer is
    slower than the call path) and start each measurement on a fresh implicit task, as the rounds do. The
    last one has the journal start a new segment every ~1,500 calls (1 MiB segments instead of 8 MiB): a
    segment is created under the journal's lock, which once let the recording threads fall into a convoy
    on that lock (8 threads lost up to 3/4 of their throughput)."""
    rows = []
    step_cm = wt.workflow_step("bench-threads")
    cases: list[tuple[str, Callable[[], Any], int, bool]] = [
        ("wrapt pass-through", lambda: wrapped_only(1, PATH), total, False),
        ("in step, nodes recorded", lambda: traced(1, PATH), total, True),
        ("outside a step, local store", lambda: traced(1, PATH), max(80, total // 10), False),
        ("the same, a new segment every ~1,500 calls", lambda: traced(1, PATH), max(80, total // 10), False),
    ]
    for name, fn, calls, in_step in cases:
        one, eight = [], []
        _journal.SEGMENT_BYTES = 1 << 20 if name.startswith("the same, a new segment") else 8 << 20
        for _ in range(repeats):
            for threads, out in ((1, one), (8, eight)):
                wt.configure(store)
                if in_step:
                    with step_cm:  # threads started inside the step run in it
                        fn()
                        out.append(throughput(fn, threads, calls))
                else:
                    fn()
                    out.append(throughput(fn, threads, calls))
                wt.flush()
        m1, m8 = statistics.median(one), statistics.median(eight)
        change = m8 / m1 - 1
        rows.append([name, f"{m1:,.0f}", f"{m8:,.0f}", f"{change:+.0%}", "lose <= 25%", verdict(change >= -0.25)])
    _journal.SEGMENT_BYTES = 8 << 20
    return rows


# -- profiles -----------------------------------------------------------------------------------------


def profile(name: str, stmt: str, env: dict[str, Any], number: int, enter: Any, leave: Any, top: int) -> str:
    if enter is not None:
        enter()
    code = compile(f"for _ in range({number}):\n    {stmt}\n", "<bench>", "exec")
    prof = cProfile.Profile()
    prof.enable()
    exec(code, env)
    prof.disable()
    if leave is not None:
        leave()
    wt.flush()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    body = out.getvalue()
    body = body[body.find("   ncalls"):]
    return f"--- profile: {name} ({number} calls, sorted by own time; cProfile inflates small functions)\n{body}"


# -- main -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of each hot-path case")
    opts = parser.parse_args()
    rounds = 3 if opts.quick else opts.rounds
    scale = 0.1 if opts.quick else 1.0

    def n(calls: int) -> int:
        return max(10, int(calls * scale))

    print(machine())
    print(noise_line())
    tmp = tempfile.TemporaryDirectory(prefix="wt-bench-")
    store_url = f"sqlite://{Path(tmp.name) / 'lineage.db'}"  # sqlite:///tmp/... (the path is absolute)
    store = create_backend(store_url)  # what wt.configure(store_url) builds; configured as an instance, so that
    wt.configure(store)                # switching to the memory backend between rounds does not close it
    memory = MemoryBackend()
    exporter = CountingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    counter = itertools.count(1).__next__
    floor_journal = FloorJournal(str(Path(tmp.name) / "floor.journal"))
    env: dict[str, Any] = {
        "f": bare, "w": wrapped_only, "o": otel_decorator(provider), "g": traced, "h": traced3, "P": PATH,
        "nxt": counter, "load": load, "floor3": floor_traced3(floor_journal),
        "floor1": floor_implicit(floor_journal),
    }

    def in_step(backend: Any, warm: Callable[[], Any] | None = None) -> dict[str, Any]:
        around = StepAround(backend, warm)
        return {"enter": around.enter, "leave": around.leave}

    cases = {
        "bare": Case("bare call", "f(1, P)", env, n(200_000)),
        "wrapt": Case("wrapt pass-through (baseline)", "w(1, P)", env, n(200_000)),
        "otel": Case("OpenTelemetry SDK span, 3 attributes", "o(1, P)", env, n(20_000),
                     between=lambda: provider.force_flush()),
        "step_seen": Case("in step, nodes already recorded", "g(1, P)", env, n(100_000),
                          **in_step(store, lambda: traced(1, PATH))),
        "step_new": Case("in step, 3 new nodes/call, local store", "i = nxt(); h(i, i, i)", env, n(2_000),
                         between=wt.flush, **in_step(store)),
        "floor": Case("the floor: 3 new nodes, a minimal wrapper", "i = nxt(); floor3(i, i, i)", env, n(5_000)),
        "step_new_mem": Case("in step, 3 new nodes/call, memory", "i = nxt(); h(i, i, i)", env, n(5_000),
                             between=memory.clear, **in_step(memory)),
        "out_store": Case("outside a step, local store", "g(1, P)", env, n(2_000), between=wt.flush,
                          enter=configure_and_warm(store, lambda: traced(1, PATH))),
        "floor_out": Case("the floor: a run per call, a minimal wrapper", "floor1(1, P)", env, n(5_000)),
        "out_mem": Case("outside a step, memory", "g(1, P)", env, n(5_000), between=memory.clear,
                        enter=configure_and_warm(memory, lambda: traced(1, PATH))),
    }
    for size in (1, 10, 100):
        ids = list(range(1, size + 1))
        env[f"IDS{size}"] = ids
        env[f"fresh{size}"] = fresh_ids(size)
        cases[f"seen{size}"] = Case(f"in step, {size} recorded ids/call", f"load(IDS{size})", env,
                                    n(max(2_000, 100_000 // size)),
                                    **in_step(store, lambda ids=ids: load(ids)))
        cases[f"new{size}"] = Case(f"in step, {size} new ids/call, local store", f"load(fresh{size}())", env,
                                   n(max(200, 5_000 // size)), between=wt.flush, **in_step(store))
    start = time.perf_counter()
    run_rounds(list(cases.values()), rounds)
    elapsed = time.perf_counter() - start
    wrapt_ns, otel_ns = cases["wrapt"].median, cases["otel"].median
    goals: dict[str, tuple[str, bool | None]] = {
        "step_seen": ("<= 2x wrapt", cases["step_seen"].median <= 2 * wrapt_ns),
        "step_new": ("<= 10x wrapt", cases["step_new"].median <= 10 * wrapt_ns),
        "step_new_mem": ("<= 10x wrapt", cases["step_new_mem"].median <= 10 * wrapt_ns),
        "out_store": ("<= 10x wrapt, <= OTel/3",
                      cases["out_store"].median <= min(10 * wrapt_ns, otel_ns / 3)),
        "out_mem": ("<= 10x wrapt, <= OTel/3", cases["out_mem"].median <= min(10 * wrapt_ns, otel_ns / 3)),
    }
    header = ["what", "median ns", "spread", "x wrapt", "x OTel", "goal", "met?"]
    rows = []
    for key, case in cases.items():
        goal, ok = goals.get(key, ("", None))
        rows.append([case.name, f"{case.median:,.0f}", f"±{case.spread / 2:.0%}", ratio(case.median, wrapt_ns),
                     ratio(case.median, otel_ns), goal or "-", verdict(ok)])
    print(f"\n{rounds} interleaved rounds in {elapsed:.0f} s; spread = half the inter-quartile range of the "
          "rounds, relative to the median")
    print(table(rows, header))

    print("\nper input (a decorator reading a list of N ids), marginal ns per id: (cost(N) - cost(1)) / (N - 1)")
    flat_rows = []
    for kind, label in (("seen", "recorded ids"), ("new", "new ids, local store")):
        c1, c10, c100 = (cases[f"{kind}{s}"].median for s in (1, 10, 100))
        m10, m100 = (c10 - c1) / 9, (c100 - c10) / 90
        ok = m100 <= 1.5 * m10 + 50  # flat: the 10..100 slope no steeper than the 1..10 one (+50 ns slack)
        flat_rows.append([label, f"{c1:,.0f}", f"{c10:,.0f}", f"{c100:,.0f}", f"{m10:,.0f}", f"{m100:,.0f}",
                          "flat", verdict(ok)])
    print(table(flat_rows, ["ids", "N=1 ns", "N=10 ns", "N=100 ns", "ns/id 1..10", "ns/id 10..100", "goal",
                            "met?"]))

    print("\nlocal store cases: where the time goes (median ns per call)")
    bg_rows = []
    for key in ("step_new", "out_store", "new100"):
        case = cases[key]
        bg_rows.append([case.name, f"{case.median:,.0f}", f"{statistics.median(case.cpu):,.0f}",
                        f"{statistics.median(case.background):,.0f}",
                        ratio(statistics.median(case.cpu), wrapt_ns)])
    print(table(bg_rows, ["what", "caller wall", "caller CPU", "writer CPU", "caller CPU x wrapt"]))
    print(f"OpenTelemetry: {exporter.count:,} spans exported (all of them: none dropped)"
          if exporter.count >= cases["otel"].number * rounds else f"OpenTelemetry: only {exporter.count:,} spans "
          "exported: the BatchSpanProcessor dropped some (its cost is then understated)")

    print("\nthreads: calls per second, the same total number of calls on 1 and on 8 threads")
    start = time.perf_counter()
    scaling = thread_scaling(store, 3 if opts.quick else 5, n(80_000))
    print(f"({time.perf_counter() - start:.0f} s)")
    print(table(scaling,
                ["what", "1 thread", "8 threads", "change", "goal", "met?"]))

    if opts.profile:
        print()
        for key in ("step_seen", "step_new", "out_store", "out_mem", "new100"):
            case = cases[key]
            print(profile(case.name, case.stmt, env, max(case.number, 2_000), case.enter, case.leave, 14))
    wt.reset()
    provider.shutdown()
    store.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
