"""Shared helpers of the v2 benchmarks: interleaved timing rounds, the machine's noise, the result table.

Importing this module puts the checkout the benchmark lives in first on ``sys.path``, so a benchmark
measures the code next to it (not whatever copy of workflow_trace the virtualenv has installed).

Timing: every case runs ``number`` calls per round (a ``timeit`` loop compiled from a statement, garbage
collection left on as in an application), and the cases take turns round after round (in a shuffled
order each round), so slow drift of the machine (another job on a shared core, frequency changes) hits
every case alike and ratios between cases measured in the same run stay meaningful. Per case: the
median of the per-call times over the rounds, and the spread as the inter-quartile range relative to the
median. ``between`` runs after a case's round, untimed (a flush, so that background work of one case does
not land in another's round); the CPU time of the other threads during the round and ``between``
(``time.process_time() - time.thread_time()``) is kept as the case's background cost.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    """One line about the machine and the interpreter."""
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load}"
    )


@dataclass
class Case:
    """One thing to time: ``stmt`` run ``number`` times per round in namespace ``env``.

    ``enter``/``leave`` run untimed around each round (configure a backend, open a step); ``between``
    runs untimed after it (flush).
    """

    name: str
    stmt: str
    env: dict[str, Any]
    number: int
    enter: Callable[[], Any] | None = None
    leave: Callable[[], Any] | None = None
    between: Callable[[], Any] | None = None
    wall: list[float] = field(default_factory=list)  # ns per call, one per round
    cpu: list[float] = field(default_factory=list)  # this thread's CPU ns per call
    background: list[float] = field(default_factory=list)  # other threads' CPU ns per call

    def __post_init__(self) -> None:
        self.timer = timeit.Timer(self.stmt, setup="import gc; gc.enable()", globals=self.env)

    def run_round(self) -> None:
        if self.enter is not None:
            self.enter()
        p0, t0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
        self.timer.timeit(self.number)
        w1, t1 = time.perf_counter(), time.thread_time()
        if self.leave is not None:
            self.leave()
        if self.between is not None:
            self.between()
        p1, t2 = time.process_time(), time.thread_time()
        self.wall.append((w1 - w0) / self.number * 1e9)
        self.cpu.append((t1 - t0) / self.number * 1e9)
        self.background.append(max(0.0, (p1 - p0) - (t2 - t0)) / self.number * 1e9)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def spread(self) -> float:
        """Inter-quartile range of the rounds, relative to the median."""
        return iqr(self.wall) / self.median if self.median else 0.0


def iqr(values: Sequence[float]) -> float:
    if len(values) < 4:
        return max(values) - min(values)
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def run_rounds(cases: Sequence[Case], rounds: int, seed: int = 1, warmup: int = 1) -> None:
    """Every case once per round, in a shuffled order; the first ``warmup`` rounds are dropped."""
    rng = random.Random(seed)
    order = list(cases)
    for i in range(rounds + warmup):
        rng.shuffle(order)
        for case in order:
            case.run_round()
        if i < warmup:
            for case in cases:
                case.wall.clear()
                case.cpu.clear()
                case.background.clear()


def noise(samples: int = 41, work: int = 20_000) -> tuple[float, float, float]:
    """The machine's own noise: a fixed pure-Python loop timed ``samples`` times.

    Returns the median in ms, the inter-quartile range relative to the median, and the (max-min)/median.
    """
    def spin() -> int:
        total = 0
        for i in range(work):
            total += i * i
        return total

    times = []
    for _ in range(samples):
        start = time.perf_counter()
        spin()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return median * 1e3, iqr(times) / median, (max(times) - min(times)) / median


def noise_line() -> str:
    median_ms, rel_iqr, rel_range = noise()
    return (
        f"machine noise: a fixed {median_ms:.2f} ms CPU loop varies by {rel_iqr:.1%} (inter-quartile) and "
        f"{rel_range:.0%} (max-min) over 41 runs"
    )


def table(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain text table; numbers are right-aligned."""
    text_rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) if text_rows else len(h) for i, h in enumerate(header)]
    numeric = [all(_numeric(r[i]) for r in text_rows) and text_rows for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.rjust(widths[i]) if numeric[i] and i else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    lines.extend(fmt(r) for r in text_rows)
    return "\n".join(lines)


def _numeric(cell: str) -> bool:
    cell = cell.strip().rstrip("x%").replace(",", "").lstrip("+-±≤≥")
    try:
        float(cell)
    except ValueError:
        return cell in ("", "-")
    return True


def ratio(value: float, base: float | None) -> str:
    return "-" if not base else f"{value / base:.1f}x"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def fresh_subprocess_seconds(code: str, runs: int, env: dict[str, str] | None = None) -> list[float]:
    """Seconds ``code`` takes in fresh interpreters (it prints its own measurement in seconds)."""
    import subprocess

    out = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                              cwd=str(ROOT))
        out.append(float(done.stdout.strip().splitlines()[-1]))
    return out
