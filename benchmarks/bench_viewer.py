"""How long the lineage viewer takes to open a REAL store, in headless Chromium.

Stores of 2,000 and 10,000 tasks are written through the public API (tests/_stores.py: runs of a
four-task pipeline — prepare, train with three epochs, evaluate, export — sharing raw folders and
datasets, weights rewritten run after run, one train in nine failing). Each is opened five times, in a
fresh browser context:

- offline: the file ``workflow-trace export --format html`` writes, from file://;
- live: ``workflow-trace ui --port 0`` (a subprocess), from its address.

"Open" is from navigation until the search field is usable (the graph drawn, the search index built);
"focus" is one search + Enter on a task id until its details show. Medians of 5 (and the first open:
live, the server builds the graph from the store then, and serves it from its cache afterwards).

Run: python benchmarks/bench_viewer.py   (needs `pip install playwright` and `apt-get install chromium`)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _browser import launch
from _stores import pipeline_store, script_env

SIZES = (2_000, 10_000)
REPEAT = 5


def _open(browser: Any, url: str, target: str) -> tuple[float, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 850})
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("html[data-ready] #search:enabled", timeout=300_000)
        opened = time.perf_counter() - start
        start = time.perf_counter()
        page.fill("#search", target)
        page.keyboard.press("Enter")
        page.wait_for_selector(f'#details:not([hidden]) >> text="{target}"', timeout=300_000)
        return opened, time.perf_counter() - start
    finally:
        context.close()


def _measure(browser: Any, url: str, target: str) -> str:
    runs = [_open(browser, url, target) for _ in range(REPEAT)]
    # The first open is shown too: live, it is the one whose graph the server builds from the store
    # (the others get it from the server's cache until the store changes).
    return (f"open {statistics.median(r[0] for r in runs):5.2f} s (first {runs[0][0]:5.2f} s), "
            f"search + focus {statistics.median(r[1] for r in runs):5.2f} s")


def _ui(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "workflow_trace", "ui", "--port", "0", "--db", str(db)],
                            env=script_env(None), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> None:
    """Print the median open and focus times per store size, offline and live."""
    with tempfile.TemporaryDirectory() as folder, launch() as browser:
        print(f"viewer open time on real stores (headless Chromium {browser.version}), median of {REPEAT}")
        for size in SIZES:
            db = Path(folder) / f"store-{size}" / "workflow.db"
            db.parent.mkdir()
            start = time.perf_counter()
            pipeline_store(db, size)
            written = time.perf_counter() - start
            page = Path(folder) / f"lineage-{size}.html"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "workflow_trace", "export", "--db", str(db), "--format", "html",
                            "-o", str(page)], env=script_env(None), check=True, capture_output=True)
            exported = time.perf_counter() - start
            target = f"task:{size // 2}"
            print(f"  {size:>6,} tasks (store written in {written:4.1f} s, export --format html {exported:4.1f} s, "
                  f"{page.stat().st_size / 1e6:4.1f} MB)")
            print(f"      offline file:        {_measure(browser, page.as_uri(), target)}")
            proc, url = _ui(db)
            try:
                print(f"      workflow-trace ui:   {_measure(browser, url, target)}")
            finally:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
