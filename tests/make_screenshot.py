"""Make docs/viewer.png: the viewer on the quickstart-like graph, focused on the train split (its
upstream in blue, its downstream, with the failed train, in orange).

Run: python tests/make_screenshot.py [OUTPUT]   (needs `pip install playwright` and `apt-get install chromium`)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _browser import launch
from _viewer_data import quickstart

from workflow_trace._viewer import render_page

DOCS = Path(__file__).resolve().parents[1] / "docs" / "viewer.png"


def screenshot(output: Path, node: str = "dataset:7", width: int = 1600, height: int = 720) -> Path:
    """Open the offline page of the quickstart-like graph on ``#node=<node>`` and save a PNG of it."""
    with tempfile.TemporaryDirectory() as folder, launch() as browser:
        page_file = Path(folder) / "lineage.html"
        page_file.write_text(render_page(quickstart(), live=False), encoding="utf-8")
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.goto(f"{page_file.as_uri()}#node={node}")
        page.wait_for_selector("html[data-ready]")
        page.keyboard.press("f")  # all of the focused view
        output.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(output))
        context.close()
    return output


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS
    print(screenshot(target), f"{target.stat().st_size / 1024:.0f} KB")
