"""``import workflow_trace`` against ``import pydantic``, in fresh interpreters (median of 10 each).

The goal: ``import workflow_trace`` takes at most ``import pydantic`` + 40 ms. Modules are imported from
byte code cached beforehand (in a temporary ``PYTHONPYCACHEPREFIX``, one warm-up run each), as an installed
package would be: with ``PYTHONDONTWRITEBYTECODE=1`` (set in some environments) a checkout is compiled from
source at every import while site-packages has its ``.pyc`` files, which would charge workflow_trace ~20 ms
of compiling that no user pays. ``import pydantic`` alone is lazy (pydantic 2 loads its submodules on
attribute access), so the other dependencies are shown too: ``from pydantic import BaseModel``, and a first
model class (``defer_build``, as workflow_trace's), which imports ``pydantic.fields`` (with
``pydantic.types``, ``annotated_types``, ``secrets``): what any library defining a model pays. "the floor" is
that model class with ``import wrapt``: what is left of the goal's 40 ms above it is what workflow_trace's
own modules may take. The wrapt version is printed: wrapt 2.x imports ``asyncio`` and ``importlib.metadata``
at its top level (~35 ms), 1.x only ``inspect``. The runs of the modules take turns, so drift hits them
alike. Then ``python -X importtime`` of ``import workflow_trace``: the modules that cost most (own time,
cumulative time).

Run: ``python benchmarks/bench_import.py`` (under a minute).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from importlib import metadata

from _common import ROOT, fresh_subprocess_seconds, machine, noise_line, table, verdict

#: A first model class, its schema built on first use as workflow_trace's models do (``defer_build``).
MODEL = ("from pydantic import BaseModel, ConfigDict\n"
         "class Model(BaseModel):\n    model_config = ConfigDict(defer_build=True)\n    x: int = 0")
FLOOR = "the floor: a first model class, import wrapt"
#: name -> (untimed prelude, timed statement)
STATEMENTS = {
    "import pydantic": ("", "import pydantic"),
    "from pydantic import BaseModel": ("", "from pydantic import BaseModel"),
    "a first model class (BaseModel, pydantic.fields)": ("", MODEL),
    "import wrapt": ("", "import wrapt"),
    FLOOR: ("", f"{MODEL}\nimport wrapt"),
    "import requests": ("", "import requests"),
    "import workflow_trace": ("", "import workflow_trace"),
    "  its own share (a model class, wrapt loaded first)": (f"{MODEL}\nimport wrapt", "import workflow_trace"),
}
GOAL_MS = 40.0


def clean_env(pycache: str) -> dict[str, str]:
    """The environment of the measured interpreters: this checkout importable, byte code cached."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def importtime(statement: str, top: int, env: dict[str, str]) -> tuple[list[list[str]], list[list[str]]]:
    """From ``-X importtime``: the ``top`` modules by own time, and what workflow_trace's modules import
    from outside the package (each such import's cumulative time, grouped by top-level name)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True,
                          env=env, cwd=str(ROOT), check=True)
    rows = []  # (self us, cumulative us, depth, name), in the order printed (children before parents)
    for line in done.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(fields) != 3 or not fields[0].strip().isdigit():
            continue
        name = fields[2].rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((int(fields[0]), int(fields[1]), depth, name.strip()))
    parents: dict[int, str] = {}
    stack: list[tuple[int, str]] = []
    for i in range(len(rows) - 1, -1, -1):  # a parent is printed after its children
        _s, _c, depth, name = rows[i]
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[i] = stack[-1][1] if stack else ""
        stack.append((depth, name))
    outside: dict[str, int] = {}
    for i, (_s, cumulative, _d, name) in enumerate(rows):
        if parents[i].startswith("workflow_trace") and not name.startswith("workflow_trace"):
            root = name.split(".")[0]
            outside[root] = outside.get(root, 0) + cumulative
    total = max((c for _s, c, _d, n in rows if n == statement.split()[-1]), default=0)
    ours = sum(s for s, _c, _d, n in rows if n.startswith("workflow_trace"))
    by_self = sorted(rows, reverse=True)[:top]
    own = [[n, f"{s / 1000:.1f}", f"{c / 1000:.1f}"] for s, c, _d, n in by_self]
    own.append(["(every workflow_trace.* module's own time)", f"{ours / 1000:.1f}", ""])
    own.append([f"(total: {statement})", "", f"{total / 1000:.1f}"])
    pulled = [[name, f"{us / 1000:.1f}"] for name, us in sorted(outside.items(), key=lambda kv: -kv[1])[:top]]
    return own, pulled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    opts = parser.parse_args()
    print(machine())
    print(f"pydantic {metadata.version('pydantic')}, wrapt {metadata.version('wrapt')}")
    print(noise_line())
    pycache = tempfile.TemporaryDirectory(prefix="wt-bench-pycache-")
    env = clean_env(pycache.name)
    times: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _prelude, statement in STATEMENTS.values():  # warm-up: byte code written to the cache
        subprocess.run([sys.executable, "-c", statement], env=env, cwd=str(ROOT), check=True)
    for _ in range(opts.runs):
        for name, (prelude, statement) in STATEMENTS.items():
            code = f"import time\n{prelude}\nt = time.perf_counter()\n{statement}\nprint(time.perf_counter() - t)"
            times[name].extend(fresh_subprocess_seconds(code, 1, env))
    medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    base = medians["import pydantic"]
    rows = []
    for name, values in times.items():
        ms = sorted(v * 1e3 for v in values)
        goal, ok = ("", None)
        if name == "import workflow_trace":
            goal, ok = f"<= {base:.1f} + {GOAL_MS:.0f} ms", medians[name] <= base + GOAL_MS
        elif name.startswith("  its own share"):  # what the goal leaves above the floor
            budget = base + GOAL_MS - medians[FLOOR]
            goal, ok = f"<= {budget:.1f} ms (goal - floor)", medians[name] <= budget
        versus = "-" if name.startswith(" ") else f"{medians[name] - base:+.1f}"  # a share, not a whole import
        rows.append([name, f"{medians[name]:.1f}", f"{ms[0]:.1f}..{ms[-1]:.1f}", versus, goal or "-", verdict(ok)])
    print(f"\nimport time in fresh interpreters, median of {opts.runs} (ms)")
    print(table(rows, ["statement", "median ms", "min..max", "vs import pydantic", "goal", "met?"]))
    own, pulled = importtime("import workflow_trace", 15, env)
    print("\n-X importtime of `import workflow_trace`: the costliest modules by own time (ms)")
    print(table(own, ["module", "self ms", "cumulative ms"]))
    print("\nwhat workflow_trace's modules import from outside the package, first import (cumulative ms)")
    print(table(pulled, ["module", "cumulative ms"]))
    uncached = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"}
    uncached["PYTHONDONTWRITEBYTECODE"] = "1"
    code = "import time\nt = time.perf_counter()\nimport workflow_trace\nprint(time.perf_counter() - t)"
    cold = statistics.median(fresh_subprocess_seconds(code, 5, uncached)) * 1e3
    print(f"\n(for comparison: import workflow_trace compiled from source every time, as with "
          f"PYTHONDONTWRITEBYTECODE=1 in a checkout: {cold:.1f} ms)")
    pycache.cleanup()


if __name__ == "__main__":
    main()
