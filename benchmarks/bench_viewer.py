"""How long the lineage viewer takes to open a large store, in a real headless Chromium.

For synthetic stores of 2,000 and 10,000 tasks (tests/_viewer_data.py: pipelines run again and again,
shared inputs, cache files with many generations, retried tasks), the offline page (``export --format
html``: the JSON inlined) is written to a temporary folder and opened five times in a fresh browser
context; "open" is from navigation until the search field is usable (the graph drawn, the search index
built). Also timed: one search + Enter (focus, lineage highlight, layout, details).

Run: python benchmarks/bench_viewer.py   (needs `pip install playwright` and `apt-get install chromium`)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _browser import launch
from _viewer_data import large

from workflow_trace._viewer import render_page

SIZES = (2_000, 10_000)
REPEAT = 5


def main() -> None:
    """Print the median open and focus times per store size."""
    with tempfile.TemporaryDirectory() as folder, launch() as browser:
        print(f"viewer open time (offline page, headless Chromium {browser.version}), median of {REPEAT}")
        for size in SIZES:
            data = large(size)
            path = Path(folder) / f"lineage-{size}.html"
            path.write_text(render_page(data, live=False), encoding="utf-8")
            opens: list[float] = []
            focuses: list[float] = []
            for _ in range(REPEAT):
                context = browser.new_context(viewport={"width": 1400, "height": 850})
                page = context.new_page()
                start = time.perf_counter()
                page.goto(path.as_uri())
                page.wait_for_selector("html[data-ready] #search:enabled", timeout=120_000)
                opens.append(time.perf_counter() - start)
                target = f"task:{size // 2}"
                start = time.perf_counter()
                page.fill("#search", target)
                page.keyboard.press("Enter")
                page.wait_for_selector(f'#details:not([hidden]) >> text="{target}"')
                focuses.append(time.perf_counter() - start)
                context.close()
            print(
                f"  {size:>6,} tasks, {len(data['nodes']):>6,} nodes, {len(data['edges']):>6,} edges, "
                f"page {path.stat().st_size / 1e6:5.1f} MB: open {statistics.median(opens):6.2f} s, "
                f"search + focus {statistics.median(focuses):5.2f} s"
            )


if __name__ == "__main__":
    main()
