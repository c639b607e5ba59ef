"""``workflow-trace ui`` and ``export --format html`` end to end, on REAL stores, in a real browser.

The stores are written by running code (examples/quickstart.py, a pipeline with a failed task, more runs
while the page is open: tests/_stores.py); the server is ``python -m workflow_trace ui --port 0 --db ...``
in a subprocess, its address read from its stdout; the page is opened in headless Chromium with every
request it makes recorded. The browser tests skip when Playwright or Chromium is missing; the others need
neither.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from _browser import Tab
from _stores import (
    ERROR_LAST_LINE,
    ERROR_LINES,
    FIT_PARAMS,
    WEIGHTS_URL,
    add_run,
    failing_store,
    pipeline_store,
    quickstart_store,
    run_script,
    script_env,
)
from make_screenshot import DOCS, MAX_BYTES, quickstart_screenshot, screenshot


class UI:
    """``python -m workflow_trace ui --port 0 --db DB`` running in a subprocess."""

    def __init__(self, db: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.stderr_path = cwd / f"ui-{os.getpid()}-{id(self)}.err"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workflow_trace", "ui", "--port", "0", "--db", str(db)],
            cwd=cwd, env=env or script_env(None), stdout=subprocess.PIPE, stderr=self._stderr, text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
        try:
            self.url = lines.get(timeout=30).strip()
        except queue.Empty:
            self.close()
            raise AssertionError(f"ui printed no address: {self.stderr()}") from None
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", self.url), (self.url, self.stderr())
        self.origin = self.url.rstrip("/")
        self.port = int(urlsplit(self.url).port or 0)

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text()

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One raw request (the path sent as given, not normalised)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()

    def graph(self, scope: str) -> Any:
        status, body = self.request("GET", f"/api/graph?scope={scope}")
        assert 200 == status, body
        return json.loads(body)

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m workflow_trace ARGS`` in a subprocess (the worktree's package)."""
    return subprocess.run([sys.executable, "-m", "workflow_trace", *args], cwd=cwd, env=env or script_env(None),
                          capture_output=True, text=True, timeout=120, check=False)


def export(db: Path, fmt: str, cwd: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    done = cli("export", "--db", str(db), "--format", fmt, *extra, cwd=cwd, env=env)
    assert 0 == done.returncode, done.stderr
    return done.stdout


# -- the stores and servers (one of each per module: none of these tests writes to them) ----------


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store examples/quickstart.py writes (import, train, a failed export and its retry)."""
    return quickstart_store(tmp_path_factory.mktemp("quickstart"))


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose task 3 failed with a long multi-line error; task 2's runs have params."""
    return failing_store(tmp_path_factory.mktemp("failing"))


@pytest.fixture(scope="module")
def quickstart_ui(quickstart: Path) -> Iterator[UI]:
    # In the folder the quickstart ran in: relative project paths mean there what they meant then.
    ui = UI(quickstart, quickstart.parents[1])
    yield ui
    ui.close()


@pytest.fixture(scope="module")
def failing_ui(failing: Path) -> Iterator[UI]:
    ui = UI(failing, failing.parents[1])
    yield ui
    ui.close()


# -- the server, without a browser ----------------------------------------------------------------


def test_ui_prints_its_address_and_stops_on_ctrl_c(quickstart: Path) -> None:
    """The address is alone on stdout's first line (the port --port 0 picked) and in a sentence on
    stderr; SIGINT (Ctrl+C) stops the server with exit code 0 and no traceback."""
    ui = UI(quickstart, quickstart.parents[1])
    try:
        assert 200 == ui.request("GET", "/")[0]
        assert f"workflow-trace ui: the lineage viewer is on {ui.url} (Ctrl+C stops it)" in ui.stderr()
        if sys.platform != "win32":
            ui.proc.send_signal(signal.SIGINT)
            assert 0 == ui.proc.wait(10)
            assert "Traceback" not in ui.stderr()
    finally:
        ui.close()


def test_ui_without_a_store_is_a_one_line_error(tmp_path: Path) -> None:
    """No store at --db: one line on stderr, exit code 2, nothing served."""
    done = cli("ui", "--port", "0", "--db", str(tmp_path / "nothing.db"), cwd=tmp_path)
    assert 2 == done.returncode
    assert ("", 1) == (done.stdout, len(done.stderr.splitlines())), done.stderr
    assert done.stderr.startswith("workflow-trace: error: ")


@pytest.mark.parametrize("scope", ["workspace", "project:1", "project:quickstart_data/project", "task:3"])
def test_api_graph_is_the_json_export(quickstart: Path, quickstart_ui: UI, scope: str) -> None:
    """/api/graph?scope=S answers what `workflow-trace export --format json --scope S` writes."""
    exported = json.loads(export(quickstart, "json", quickstart.parents[1], "--scope", scope))
    assert exported == quickstart_ui.graph(scope)
    assert exported["nodes"]
    if scope.startswith("project:"):
        assert exported["scope"].endswith("/quickstart_data/project")


@pytest.mark.parametrize("scope", ["workspace", "project:1", "task:2"])
def test_api_graph_is_the_json_export_of_the_failing_store(failing: Path, failing_ui: UI, scope: str) -> None:
    """The same on the store with the failed task, runs, params and versions."""
    assert json.loads(export(failing, "json", failing.parents[1], "--scope", scope)) == failing_ui.graph(scope)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_writes_are_refused(quickstart_ui: UI, method: str) -> None:
    """The viewer is read-only: every method but GET and HEAD is 405, on every path."""
    for path in ("/", "/api/graph?scope=workspace", "/api/version"):
        assert 405 == quickstart_ui.request(method, path)[0]


@pytest.mark.parametrize("path", [
    "/../etc/passwd", "/api/../../etc/passwd", "/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd",
    "/api/graph/../../workflow.db", "/.workflow_trace/workflow.db", "//etc/passwd", "/..\\workflow.db",
])
def test_traversal_is_refused(quickstart_ui: UI, path: str) -> None:
    """No path reaches a file: the store next to the server's folder included."""
    status, body = quickstart_ui.request("GET", path)
    assert 404 == status
    assert b"SQLite" not in body
    assert b"root:" not in body


def test_bad_scope_is_400_with_the_message(quickstart_ui: UI) -> None:
    """A scope the store does not have is a 400 saying so (the page shows the message)."""
    status, body = quickstart_ui.request("GET", "/api/graph?scope=task:99")
    assert 400 == status
    assert "task:99" in json.loads(body)["error"]


# -- in the browser -------------------------------------------------------------------------------


def _own_origin_only(tab: Tab, ui: UI) -> None:
    foreign = [url for url in tab.requests if not url.startswith(ui.origin + "/")]
    assert [] == foreign


def test_page_opens_clean_and_talks_only_to_its_server(quickstart_ui: UI, open_tab: Callable[..., Tab]) -> None:
    """The live page draws the whole quickstart (3 tasks, 4 data nodes), logs no error and requests
    nothing but its own server, while it polls."""
    tab = open_tab(quickstart_ui.url)
    graph = quickstart_ui.graph("workspace")
    assert {n["id"] for n in graph["nodes"]} == tab.cards()
    tab.page.wait_for_timeout(2600)  # at least one poll of /api/version
    tab.assert_clean()
    _own_origin_only(tab, quickstart_ui)
    paths = [urlsplit(url).path for url in tab.requests]
    assert {"/", "/api/graph", "/api/version"} == set(paths)
    assert paths.count("/api/version") >= 2
    assert "3 tasks (1 failed) · 4 data nodes" in tab.page.inner_text("#summary")


def test_search_enter_focuses_a_node_and_sets_the_link(quickstart_ui: UI, open_tab: Callable[..., Tab]) -> None:
    """Search + Enter focuses the best match and puts it in the address; a path fragment finds a file."""
    tab = open_tab(quickstart_ui.url)
    tab.page.keyboard.press("/")
    tab.page.keyboard.type("export")
    tab.page.wait_for_selector("#results li")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url(re.compile(r"#node=task:3$"))
    assert "focus" in (tab.page.get_attribute('[data-card="task:3"]', "class") or "")
    assert "export" == tab.page.inner_text("#details h2")
    tab.page.fill("#search", "model/best")
    tab.page.keyboard.press("Enter")
    weights = next(n for n in quickstart_ui.graph("workspace")["nodes"] if n["model_weight"])
    tab.page.wait_for_url(re.compile(r"#node=file:/.*/model/best\.json$"))
    assert weights["id"] == tab.page.evaluate("decodeURIComponent(location.hash.slice(6))")
    assert "Model weights" in tab.page.inner_text("#details")
    tab.assert_clean()
    _own_origin_only(tab, quickstart_ui)


def test_node_link_opens_focused(quickstart_ui: UI, open_tab: Callable[..., Tab]) -> None:
    """A #node= link (a project by its path) opens with that node focused, its versions in the panel."""
    project = next(n for n in quickstart_ui.graph("workspace")["nodes"] if n["kind"] == "project")
    tab = open_tab(f"{quickstart_ui.url}#node={project['id']}")
    tab.page.wait_for_selector("#details:not([hidden])")
    assert "focus" in (tab.page.get_attribute(f'[data-card="{project["id"]}"]', "class") or "")
    details = tab.page.inner_text("#details")
    assert project["path"] in details
    assert "v1 (id 1)" in details
    assert "produced by" in details
    assert "import_images #1" in details
    tab.assert_clean()


def test_failed_task_shows_its_full_error(failing_ui: UI, open_tab: Callable[..., Tab]) -> None:
    """The panel of the failed task has its whole multi-line error, as text, once; its runs say they
    failed with it."""
    tab = open_tab(f"{failing_ui.url}#node=task:3")
    error = tab.page.locator("#details pre.error")
    assert 1 == error.count()
    text = error.inner_text()
    assert "RuntimeError: " + "\n".join(ERROR_LINES) == text
    assert text.rstrip().endswith(ERROR_LAST_LINE)
    assert error.evaluate("e => e.scrollHeight <= e.clientHeight + 1")  # all of it, no inner scrolling
    assert 0 == tab.page.locator("#details img").count()  # the markup in it stayed text
    assert 2 == tab.page.locator("#details").get_by_text("failed with the task's error (above)").count()
    assert "FAILED" in (tab.page.text_content('[data-card="task:3"]') or "")
    tab.assert_clean()


def test_runs_show_their_params(failing_ui: UI, open_tab: Callable[..., Tab]) -> None:
    """The panel of a task lists its nested runs with their params (a nested dict as JSON)."""
    tab = open_tab(f"{failing_ui.url}#node=task:2")
    params = tab.page.locator("#details table.params").first.inner_text()
    for key, value in FIT_PARAMS.items():
        shown = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        assert re.search(rf"^{key}\s+{re.escape(shown)}$", params, re.M), params
    assert "epoch ×3" in tab.page.inner_text("#details")
    assert "project v1" in tab.page.inner_text("#details")
    tab.assert_clean()


def test_new_runs_appear_without_reloading(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """A decorated call run into the store by another process shows up in the open page by itself."""
    db = failing_store(tmp_path)
    ui = UI(db, tmp_path)
    try:
        tab = open_tab(ui.url)
        tab.page.wait_for_selector('[data-card="task:3"]')
        tab.page.evaluate("window.__same_document = true")
        add_run(db, tmp_path, "finetune_live")
        tab.page.wait_for_selector('[data-card="task:4"]', timeout=15_000)
        assert tab.page.evaluate("window.__same_document === true")
        assert "finetune_live" in (tab.page.text_content('[data-card="task:4"]') or "")
        assert "4 tasks (1 failed)" in tab.page.inner_text("#summary")
        tab.assert_clean()
        _own_origin_only(tab, ui)
    finally:
        ui.close()


def test_offline_file_makes_no_request_and_shows_the_same_graph(
    quickstart: Path, quickstart_ui: UI, tmp_path: Path, open_tab: Callable[..., Tab]
) -> None:
    """`export --format html -o x.html` opened from file:// requests nothing but itself, holds the JSON
    export and draws what the live page draws, in every scope."""
    page = tmp_path / "x.html"
    done = cli("export", "--db", str(quickstart), "--format", "html", "-o", str(page), cwd=quickstart.parents[1])
    assert 0 == done.returncode, done.stderr
    html_text = page.read_text(encoding="utf-8")
    inlined = re.search(r'<script type="application/json" id="wt-data">(.*?)</script>', html_text, re.S)
    assert inlined is not None
    assert json.loads(export(quickstart, "json", quickstart.parents[1])) == json.loads(inlined.group(1))
    offline = open_tab(page.as_uri())
    live = open_tab(quickstart_ui.url)
    assert live.cards() == offline.cards()
    for scope in ("project:1", "task:3", "workspace"):
        graph = quickstart_ui.graph(scope)
        for tab in (offline, live):
            tab.page.fill("#scope", scope)
            tab.page.dispatch_event("#scope", "change")
            tab.page.wait_for_selector(f"html[data-scope='{graph['scope']}']")
        assert {n["id"] for n in graph["nodes"]} == live.cards() == offline.cards(), scope
    offline.page.fill("#search", "train")
    offline.page.keyboard.press("Enter")
    offline.page.wait_for_url(re.compile(r"#node=task:2$"))
    assert [page.as_uri()] == [url.split("#")[0] for url in offline.requests]
    offline.assert_clean()
    live.assert_clean()


def test_instance_links_only_with_a_server(failing: Path, tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """The weights' card links to the instance when the graph names one (SERVER_ADDRESS); without one it
    shows the local path and no link."""
    cwd = failing.parents[1]
    local, linked = tmp_path / "local.html", tmp_path / "linked.html"
    cli("export", "--db", str(failing), "--format", "html", "-o", str(local), cwd=cwd)
    cli("export", "--db", str(failing), "--format", "html", "-o", str(linked), cwd=cwd,
        env={**script_env(None), "SERVER_ADDRESS": "https://app.example.com/"})
    weights = next(n for n in json.loads(export(failing, "json", cwd))["nodes"] if n["model_weight"])
    card = f'[data-card="{weights["id"]}"]'
    tab = open_tab(f"{linked.as_uri()}#node=task:2")
    assert [f"https://app.example.com{WEIGHTS_URL}"] == tab.page.eval_on_selector_all(
        "#cards a", "els => els.map(a => a.getAttribute('href'))")
    assert "Download" in (tab.page.text_content(f"{card} a") or "")
    tab.page.locator(card).click(position={"x": 40, "y": 40})
    tab.page.wait_for_selector("#details a")
    assert f"https://app.example.com{WEIGHTS_URL}" == tab.page.get_attribute("#details a", "href")
    tab = open_tab(f"{local.as_uri()}#node={weights['id']}")
    assert 0 == tab.page.locator("#cards a, #details a").count()
    assert "models/best.pt" in (tab.page.text_content(card) or "")
    assert weights["path"] in tab.page.inner_text("#details")
    tab.assert_clean()


# -- screenshots (tests/make_screenshot.py makes docs/viewer.png the same way) ---------------------


def test_screenshots_of_real_stores(browser: Any, tmp_path: Path) -> None:
    """The quickstart store (as docs/viewer.png shows it) and a 2,000-task store (its newest tasks; a
    failed train focused) draw without an error and make PNGs of a sensible size, in the test's folder."""
    shots = {"quickstart.png": quickstart_screenshot(tmp_path / "quickstart.png", tmp_path / "qs", browser)}
    db = pipeline_store(tmp_path / "store-2000" / "workflow.db", 2000)
    failed_train = next(n["id"] for n in json.loads(export(db, "json", db.parent))["nodes"]
                        if n["task"] and n["task"]["status"] == "failed")
    shots["store-2000.png"] = screenshot(db, tmp_path / "store-2000.png", browser=browser, fit=False)
    shots["store-2000-failed.png"] = screenshot(db, tmp_path / "store-2000-failed.png", failed_train,
                                                browser=browser, fit=False)
    for name, path in shots.items():
        assert 10_000 < path.stat().st_size < MAX_BYTES, name
    assert DOCS.stat().st_size < MAX_BYTES


def test_a_task_known_only_as_an_input(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """The README's example reads wt.Task(id=5), a task this store never ran: its card and panel say so
    and list who read it (no runs, no generations, no error)."""
    db = tmp_path / "store" / "workflow.db"
    run_script('''
        import workflow_trace as wt
        wt.configure("sqlite")
        with wt.workflow_step("evaluate", inputs=[wt.Task(id=5)]) as step:
            step.add_output(wt.File(path="/reports/eval.html"))
        wt.flush()
    ''', cwd=tmp_path, db=db)
    page = tmp_path / "lineage.html"
    cli("export", "--db", str(db), "--format", "html", "-o", str(page), cwd=tmp_path)
    tab = open_tab(f"{page.as_uri()}#node=task:5")
    details = tab.page.inner_text("#details")
    assert "Not recorded in this store" in details
    assert "evaluate #" in tab.page.inner_text("#details section")
    assert {"task:5", "file:/reports/eval.html"} <= tab.cards()
    assert "not recorded here" in (tab.page.text_content('[data-card="task:5"]') or "")
    tab.assert_clean()


def test_quickstart_train_shows_its_params(quickstart_ui: UI, open_tab: Callable[..., Tab]) -> None:
    """The quickstart records train's params: its panel lists them under its run."""
    tab = open_tab(f"{quickstart_ui.url}#node=task:2")
    params = tab.page.locator("#details table.params").inner_text()
    assert re.search(r"^epochs\s+20$", params, re.M), params
    assert re.search(r"^lr\s+0.5$", params, re.M), params
    tab.assert_clean()
