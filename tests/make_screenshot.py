"""Make docs/viewer.png: the viewer on the REAL quickstart store, focused on the failed export task.

examples/quickstart.py runs in a new temporary folder as its docstring says; ``workflow-trace export
--format html`` writes the offline viewer of the store it recorded; headless Chromium opens that file on
``#node=task:3`` and the view is fitted to the window (``f``). tests/test_ui.py takes its screenshots
with the same functions.

Run: python tests/make_screenshot.py [OUTPUT] [--db STORE] [--node NODE]
(needs `pip install playwright` and `apt-get install chromium`; --db shoots another store instead)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _browser import launch, open_tab
from _stores import quickstart_store, script_env

DOCS = Path(__file__).resolve().parents[1] / "docs" / "viewer.png"
MAX_BYTES = 300_000  # docs/viewer.png stays below this


def export_html(db: Path, output: Path, cwd: Path | None = None) -> Path:
    """``workflow-trace export --format html -o OUTPUT`` of ``db`` (this checkout's package)."""
    done = subprocess.run(
        [sys.executable, "-m", "workflow_trace", "export", "--db", str(db), "--format", "html", "-o", str(output)],
        cwd=cwd or db.parent, env=script_env(None), capture_output=True, text=True, timeout=300, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"export --format html failed: {done.stderr}")
    return output


def screenshot(db: Path, output: Path, node: str | None = None, *, width: int = 1600, height: int = 720,
               browser: Any = None, fit: bool = True) -> Path:
    """A PNG of the offline viewer of ``db`` (on ``#node=<node>``, fitted to the window if ``fit``).

    Raises:
        AssertionError: the page logged an error or a warning, or requested anything but itself.
    """
    if browser is None:
        with launch() as chromium:
            return screenshot(db, output, node, width=width, height=height, browser=chromium, fit=fit)
    with tempfile.TemporaryDirectory() as folder:
        page_file = export_html(db, Path(folder) / "lineage.html")
        url = page_file.as_uri() + (f"#node={node}" if node else "")
        tab = open_tab(browser, url, width=width, height=height, timeout=120_000)
        try:
            if fit:
                tab.page.keyboard.press("f")
            tab.page.wait_for_timeout(200)  # fonts and the camera settled
            output.parent.mkdir(parents=True, exist_ok=True)
            tab.page.screenshot(path=str(output))
            tab.assert_clean()
            assert [page_file.as_uri()] == [u.split("#")[0] for u in tab.requests], tab.requests
        finally:
            tab.page.context.close()
    return output


def quickstart_screenshot(output: Path, folder: Path | None = None, browser: Any = None) -> Path:
    """Run the quickstart in ``folder`` (default: a new temporary one) and shoot its store."""
    where = folder or Path(tempfile.mkdtemp(prefix="quickstart-"))
    db = quickstart_store(where)
    return screenshot(db, output, "task:3", browser=browser)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DOCS)
    parser.add_argument("--db", type=Path, help="shoot this store instead of a fresh quickstart")
    parser.add_argument("--node", help="the node to focus (default for the quickstart: task:3)")
    args = parser.parse_args()
    target = screenshot(args.db, args.output, args.node) if args.db else quickstart_screenshot(args.output)
    size = target.stat().st_size
    print(target, f"{size / 1024:.0f} KB")
    if target == DOCS and size >= MAX_BYTES:
        sys.exit(f"{target} is {size / 1024:.0f} KB: keep it under {MAX_BYTES / 1000:.0f} KB")


if __name__ == "__main__":
    main()
