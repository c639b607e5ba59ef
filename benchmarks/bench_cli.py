"""Wall time of `workflow-trace show` and `workflow-trace export --format json` on a large store (issue #13).

The store is recorded the way a user's code records it: a script run in a fresh interpreter, through the
public API only, makes 10,000 tasks of 10 runs each — an outermost ``workflow_step`` (a new local task)
with nine nested steps carrying params — where each task reads the previous task's output file and writes
its own (100,000 runs, 20,000 edges). Then each command runs as a real process (``python -m
workflow_trace``), output to a pipe that is read to the end; the median of five runs is printed.

Run: python benchmarks/bench_cli.py   (a few minutes; everything goes to a temporary folder)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = 10_000
RUNS_PER_TASK = 10
REPEAT = 5

RECORD = f"""
    import workflow_trace as wt

    wt.configure("sqlite")
    previous = None
    for i in range({TASKS}):
        with wt.workflow_step(f"task-{{i}}", params={{"index": i}}) as step:
            if previous is not None:
                step.add_input(previous)
            for epoch in range({RUNS_PER_TASK - 1}):
                with wt.workflow_step("epoch", params={{"epoch": epoch}}):
                    pass
            previous = wt.File(path=f"out/{{i}}.bin")
            step.add_output(previous)
    assert wt.flush(600)
"""


def env() -> dict[str, str]:
    """This checkout importable, no workflow_trace settings from the caller."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_TRACE_")}
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), out.get("PYTHONPATH")]))
    return out


def timed(args: list[str], cwd: Path) -> tuple[float, int]:
    """Seconds for one real process to finish (its output read to the end), and the bytes it wrote."""
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, check=True)
    return time.perf_counter() - start, len(done.stdout)


def main() -> None:
    """Record the store, then time the two commands."""
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="workflow-trace-bench-cli-") as tmp:
        folder = Path(tmp)
        seconds, _ = timed([sys.executable, "-c", textwrap.dedent(RECORD)], folder)
        db = folder / ".workflow_trace" / "workflow.db"
        print(f"recorded {TASKS:,} tasks x {RUNS_PER_TASK} runs through the public API in {seconds:.1f} s "
              f"(store {db.stat().st_size / 1e6:.1f} MB)")
        for name, args in (("show", ["show"]), ("export --format json", ["export", "--format", "json"])):
            times, size = [], 0
            for _ in range(REPEAT):
                seconds, size = timed([sys.executable, "-m", "workflow_trace", *args], folder)
                times.append(seconds)
            print(f"  workflow-trace {name:<22} median {statistics.median(times):6.2f} s "
                  f"(min {min(times):.2f}, max {max(times):.2f}; {size / 1e6:.1f} MB of output)")


if __name__ == "__main__":
    main()
