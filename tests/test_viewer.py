"""The lineage viewer: the page (CSP, escaping), its server (routes, refusals) and, in a real headless
Chromium, what a user does with it (search, #node= links, details, live updates, a 10,000-task store).

The browser tests skip when Playwright or the system Chromium is missing.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _browser import Tab
from _viewer_data import HOSTILE, TRACEBACK, large, quickstart

from workflow_trace._ui import make_server
from workflow_trace._viewer import render_page

SCOPE = re.compile(r"^(workspace|project:.+|task:\d+)$")


class FakeProvider:
    """A provider over one JSON v2 dict; ``update`` swaps the data and moves the version on."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.revision = 1
        self.scopes: list[str] = []

    def graph(self, scope: str) -> dict[str, Any]:
        self.scopes.append(scope)
        if scope == "task:666":
            raise RuntimeError("the store is corrupt")
        if not SCOPE.match(scope):
            raise ValueError(f"unknown scope {scope!r}: use workspace, project:ID or task:ID")
        if scope == "workspace":
            return self.data
        ids = {n["id"] for n in self.data["nodes"]}
        if scope not in ids:
            raise LookupError(f"no node {scope} in the store")
        edges = [e for e in self.data["edges"] if scope in (e["source"], e["target"])]
        keep = {scope} | {e["source"] for e in edges} | {e["target"] for e in edges}
        return {**self.data, "scope": scope, "nodes": [n for n in self.data["nodes"] if n["id"] in keep],
                "edges": edges}

    def lineage(self, node: str, direction: str, depth: int | None) -> dict[str, Any]:
        if node not in {n["id"] for n in self.data["nodes"]}:
            raise KeyError(f"unknown node {node}")
        return {**self.data, "scope": f"lineage:{node}:{direction}:{depth}"}

    def version(self) -> str:
        return f"rev-{self.revision}"

    def update(self, data: dict[str, Any]) -> None:
        self.data = data
        self.revision += 1


@dataclass
class Served:
    provider: FakeProvider
    url: str
    port: int

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One raw request (the path is sent as given, not normalised)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()


@pytest.fixture
def served() -> Iterator[Served]:
    """The viewer server on a free port over the quickstart-like graph."""
    provider = FakeProvider(quickstart())
    server = make_server(provider, "127.0.0.1", 0)
    port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(provider, f"http://127.0.0.1:{port}", port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- the page ------------------------------------------------------------------------------------


def _blocks(page: str) -> dict[str, str]:
    data_blocks = re.finditer(r'<script type="application/json" id="([\w-]+)">(.*?)</script>', page, re.S)
    found = {m.group(1): m.group(2) for m in data_blocks}
    found["script"] = re.findall(r"<script>(.*?)</script>", page, re.S)[-1]
    found["style"] = re.findall(r"<style>(.*?)</style>", page, re.S)[-1]
    return found


def _sha(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_offline_page_inlines_the_data_escaped_and_allows_only_its_own_code() -> None:
    """Offline: the data is inlined so that </script> in user text cannot end the block; the policy
    allows the inline script and style by hash, no connection at all."""
    data = quickstart()
    page = render_page(data, live=False, title="Lineage <of> us")
    blocks = _blocks(page)
    assert HOSTILE not in page
    assert data == json.loads(blocks["wt-data"])
    assert {"live": False, "title": "Lineage <of> us"} == json.loads(blocks["wt-config"])
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None
    policy = csp.group(1).replace("&#x27;", "'")
    assert policy.startswith("default-src 'none'; ")
    assert f"script-src '{_sha(blocks['script'])}'" in policy
    assert f"style-src '{_sha(blocks['style'])}'" in policy
    assert "connect-src 'none'" in policy
    assert "img-src data:" in policy
    assert "<title>Lineage &lt;of&gt; us</title>" in page
    assert {"http://www.w3.org/2000/svg"} == set(re.findall(r"https?://[^\s\"'`]+", blocks["script"]))


def test_live_page_connects_to_its_own_origin_only() -> None:
    """Live: no data inlined, connections to 'self' only."""
    page = render_page(None, live=True)
    assert "connect-src 'self'" in page.replace("&#x27;", "'")
    assert json.loads(_blocks(page)["wt-data"]) is None


def test_offline_page_needs_data() -> None:
    """An offline page without a graph is a mistake."""
    with pytest.raises(ValueError, match="needs the graph"):
        render_page(None, live=False)


# -- the server ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/version", "/api/graph?scope=workspace",
                                  "/api/lineage?node=task:5&direction=up&depth=2"])
def test_routes_answer_with_security_headers(served: Served, path: str) -> None:
    """Every route answers 200 with the page's policy and nosniff."""
    status, headers, body = served.request("GET", path)
    assert 200 == status
    assert headers["content-security-policy"].startswith("default-src 'none'; script-src 'sha256-")
    assert "connect-src 'self'" in headers["content-security-policy"]
    assert "nosniff" == headers["x-content-type-options"]
    if path != "/":
        assert "application/json" == headers["content-type"]
        json.loads(body)


def test_api_answers_the_providers_data(served: Served) -> None:
    """/api/graph and /api/lineage pass their parameters to the provider; /api/version its version."""
    assert {"version": "rev-1"} == json.loads(served.request("GET", "/api/version")[2])
    graph = json.loads(served.request("GET", "/api/graph?scope=project:42")[2])
    assert "project:42" == graph["scope"]
    lineage = json.loads(served.request("GET", "/api/lineage?node=file:/models/best.pt&direction=down")[2])
    assert "lineage:file:/models/best.pt:down:None" == lineage["scope"]


def test_graph_etag_makes_a_poll_cheap(served: Served) -> None:
    """Asking again with the ETag answers 304 without building the graph; a new version answers 200."""
    _, headers, _ = served.request("GET", "/api/graph?scope=workspace")
    calls = len(served.provider.scopes)
    status, _, body = served.request("GET", "/api/graph?scope=workspace", {"If-None-Match": headers["etag"]})
    assert (304, b"", calls) == (status, body, len(served.provider.scopes))
    served.provider.update(quickstart(more=1))
    assert 200 == served.request("GET", "/api/graph?scope=workspace", {"If-None-Match": headers["etag"]})[0]


def test_head_answers_headers_only(served: Served) -> None:
    """HEAD / has the page's headers and no body."""
    status, headers, body = served.request("HEAD", "/")
    assert (200, b"") == (status, body)
    assert headers["content-type"].startswith("text/html")
    assert int(headers["content-length"]) > 1000


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_writes_are_refused(served: Served, method: str) -> None:
    """The viewer is read-only: every other method is 405."""
    status, headers, _ = served.request(method, "/api/graph")
    assert 405 == status
    assert "GET, HEAD" == headers["allow"]


@pytest.mark.parametrize("path", [
    "/../etc/passwd", "/api/../../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2E%2Fetc%2Fpasswd",
    "/..%2fetc%2fpasswd", "/api/graph/..", "/..\\..\\windows\\win.ini", "/viewer.js", "/favicon.ico",
    "//etc/passwd", "/api/graph/extra",
])
def test_other_paths_are_not_found(served: Served, path: str) -> None:
    """Traversal in any spelling, and any file, is 404: the server has nothing else to serve."""
    status, _, body = served.request("GET", path)
    assert 404 == status
    assert b"root:" not in body


@pytest.mark.parametrize(("path", "message"), [
    ("/api/graph?scope=nonsense", "unknown scope 'nonsense'"),
    ("/api/graph?scope=project:999", "no node project:999"),
    ("/api/lineage?node=task:404", "unknown node task:404"),
    ("/api/lineage?node=task:5&direction=sideways", "direction must be one of up, down, both"),
    ("/api/lineage?node=task:5&depth=two", "depth must be a whole number"),
    ("/api/lineage", "missing node="),
])
def test_bad_requests_are_400_with_the_message(served: Served, path: str, message: str) -> None:
    """A bad scope, node or parameter is a 400 whose JSON body says what was wrong."""
    status, _, body = served.request("GET", path)
    assert 400 == status
    assert message in json.loads(body)["error"]


@pytest.mark.internal_errors
def test_provider_failure_is_500_without_details(
    served: Served, caplog: pytest.LogCaptureFixture, swallowed: list[BaseException]
) -> None:
    """A provider crash is a 500 with a generic message; the exception goes to the log and to the
    internal-error hooks (the one containment primitive), and the server goes on answering."""
    status, _, body = served.request("GET", "/api/graph?scope=task:666")
    assert 500 == status
    assert "corrupt" not in json.loads(body)["error"]
    assert "the store is corrupt" in caplog.text
    assert ["the store is corrupt"] == [str(e) for e in swallowed]
    assert 200 == served.request("GET", "/api/version")[0]


def test_foreign_host_header_is_refused(served: Served) -> None:
    """On 127.0.0.1 a request naming another host (a DNS-rebinding page) gets nothing."""
    assert 421 == served.request("GET", "/api/graph", {"Host": "evil.example:8765"})[0]
    assert 200 == served.request("GET", "/api/version", {"Host": f"localhost:{served.port}"})[0]


def test_binding_beyond_loopback_warns(caplog: pytest.LogCaptureFixture) -> None:
    """Listening on every interface logs a warning; 127.0.0.1 does not."""
    with caplog.at_level(logging.WARNING, logger="workflow_trace"):
        make_server(FakeProvider(quickstart()), "127.0.0.1", 0).server_close()
        assert not caplog.records
        make_server(FakeProvider(quickstart()), "0.0.0.0", 0).server_close()
    assert ["WARNING"] == [r.levelname for r in caplog.records]
    assert "0.0.0.0" in caplog.text


# -- in the browser ------------------------------------------------------------------------------


def _offline(tmp_path: Path, data: dict[str, Any], name: str = "lineage.html") -> str:
    path = tmp_path / name
    path.write_text(render_page(data, live=False), encoding="utf-8")
    return path.as_uri()


def _card(tab: Tab, node: str) -> Any:
    return tab.page.locator(f'[data-card="{node}"]')


def test_live_ui_loads_without_errors_or_foreign_requests(served: Served, open_tab: Callable[..., Tab]) -> None:
    """The served page draws the graph, logs no error and talks to its own origin only."""
    tab = open_tab(served.url + "/")
    tab.page.wait_for_selector('[data-card="task:5"]')
    assert 18 == tab.page.locator("[data-card]").count()
    tab.page.wait_for_timeout(2500)  # one poll of /api/version
    tab.assert_clean()
    assert all(url.startswith(served.url + "/") for url in tab.requests), tab.requests
    assert any(url.endswith("/api/version") for url in tab.requests[2:])


def test_offline_file_makes_no_request_and_shows_user_text_as_text(
    tmp_path: Path, open_tab: Callable[..., Tab]
) -> None:
    """Opened from disk, the page requests nothing but itself, and markup in user text stays text."""
    url = _offline(tmp_path, quickstart())
    tab = open_tab(url + "#node=task:3")
    assert [url + "#node=task:3"] == tab.requests or [url] == tab.requests, tab.requests
    assert HOSTILE in tab.page.inner_text("#details")
    assert 0 == tab.page.locator("img, #details b").count()
    tab.assert_clean()


def test_search_enter_focuses_a_node_and_sets_the_link(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """Search + Enter focuses the best match, highlights its lineage both ways and puts it in the URL."""
    tab = open_tab(_offline(tmp_path, quickstart()))
    tab.page.keyboard.press("/")
    assert "search" == tab.page.evaluate("document.activeElement.id")
    tab.page.keyboard.type("evaluate")
    tab.page.wait_for_selector("#results li")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url(re.compile(r"#node=task:7$"))
    assert "focus" in (_card(tab, "task:7").get_attribute("class") or "")
    assert "evaluate" == tab.page.inner_text("#details h2")
    assert tab.page.locator(".e.up").count() >= 3
    assert 1 == tab.page.locator(".e.down").count()
    # Generations: the failed train read the same datasets but is no ancestor of evaluate.
    failed = _card(tab, "task:5")
    assert 0 == failed.count() or "dim" in (failed.get_attribute("class") or "")
    tab.assert_clean()


def test_node_link_opens_focused_with_full_error_and_params(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """A #node= link opens with that task focused; the panel has its full error and its runs' params."""
    tab = open_tab(_offline(tmp_path, quickstart()) + "#node=task:5")
    assert "focus" in (_card(tab, "task:5").get_attribute("class") or "")
    details = tab.page.inner_text("#details")
    for line in TRACEBACK.splitlines():
        assert line.strip() in details
    assert "FAILED" in details.upper()
    params = tab.page.locator("#details table.params").first.inner_text()
    for key, value in (("lr", "0.1"), ("batch_size", "64"), ("model", "yolov8n")):
        assert re.search(rf"{key}\s+{re.escape(value)}", params), params
    assert "epoch 3" in details  # the nested run that failed
    assert "python train.py --lr 0.1 --epochs 3" in details
    tab.assert_clean()


def test_data_node_details_show_generations_and_versions(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """A project's panel lists its generations (who produced each) and versions (who read each)."""
    tab = open_tab(_offline(tmp_path, quickstart()) + "#node=project:42")
    details = tab.page.inner_text("#details")
    assert "Generations (2)" in details or "GENERATIONS (2)" in details
    assert "v1 (id 11)" in details
    assert "v2 (id 12)" in details
    tab.page.click("#details button.node-link:has-text('split')")
    tab.page.wait_for_url(re.compile(r"#node=task:4$"))
    tab.assert_clean()


def test_new_runs_appear_without_reloading(served: Served, open_tab: Callable[..., Tab]) -> None:
    """When the store changes, the page picks the new task up by itself (no navigation)."""
    tab = open_tab(served.url + "/")
    tab.page.wait_for_selector('[data-card="task:8"]')
    tab.page.evaluate("window.__same_document = true")
    served.provider.update(quickstart(more=1))
    tab.page.wait_for_selector('[data-card="task:9"]', timeout=10_000)
    assert tab.page.evaluate("window.__same_document === true")
    assert "finetune_9" in (_card(tab, "task:9").text_content() or "")
    tab.assert_clean()


def test_scope_and_failed_filter_offline(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """Offline the scope is applied in the page; "failed only" keeps the failed tasks and their data."""
    tab = open_tab(_offline(tmp_path, quickstart()))
    tab.page.fill("#scope", "task:4")
    tab.page.dispatch_event("#scope", "change")
    _card(tab, "task:1").wait_for(state="detached")
    cards = set(tab.page.eval_on_selector_all("[data-card]", "els => els.map(e => e.dataset.card)"))
    assert {"task:4", "project:42", "dataset:7", "dataset:8"} == cards  # the task and what it touched
    tab.page.fill("#scope", "workspace")
    tab.page.dispatch_event("#scope", "change")
    tab.page.check("#failed")
    cards = tab.page.eval_on_selector_all("[data-card]", "els => els.map(e => e.dataset.card)")
    assert ["task:5"] == [c for c in cards if c.startswith("task:")]
    tab.assert_clean()


def test_live_scope_switch_refetches(served: Served, open_tab: Callable[..., Tab]) -> None:
    """Live, a new scope is asked from the server."""
    tab = open_tab(served.url + "/")
    tab.page.fill("#scope", "project:42")
    tab.page.dispatch_event("#scope", "change")
    _card(tab, "task:8").wait_for(state="detached")
    assert "project:42" in served.provider.scopes
    tab.assert_clean()


def test_instance_links_only_with_a_server(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """A card's url links to the instance when the graph names one; otherwise the local path shows."""
    tab = open_tab(_offline(tmp_path, quickstart(server="https://app.example.com"), "a.html") + "#node=task:8")
    assert 1 == tab.page.locator('#cards a[href="https://app.example.com/files/1/models/best.onnx"]').count()
    tab = open_tab(_offline(tmp_path, quickstart(), "b.html") + "#node=task:8")
    assert 0 == tab.page.locator("#cards a").count()
    assert "/models/best.onnx" in (_card(tab, "file:/models/best.onnx").text_content() or "")


def test_similar_tasks_fold_until_clicked(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """Same-name tasks fold into one card ("train \u00d7N") that expands on a click."""
    tab = open_tab(_offline(tmp_path, large(400)))
    folds = tab.page.locator('[data-card^="fold:task:"]')
    assert folds.count() >= 1
    fold_id = folds.first.get_attribute("data-card")
    text = folds.first.text_content() or ""
    assert re.search(r"\u00d7\d+", text), text
    before = tab.page.locator("[data-card^='task:']").count()
    tab.page.keyboard.press("f")  # everything in view
    folds.first.click()
    _card(tab, fold_id).wait_for(state="detached")
    assert tab.page.locator("[data-card^='task:']").count() > before
    tab.assert_clean()


def test_keyboard_escape_and_fit(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """Esc leaves the focus (and the URL), f fits the view."""
    tab = open_tab(_offline(tmp_path, quickstart()) + "#node=task:2")
    tab.page.wait_for_selector("#details:not([hidden])")
    tab.page.keyboard.press("Escape")
    tab.page.wait_for_url(re.compile(r"\.html$"))
    assert tab.page.locator("#details").is_hidden()
    tab.page.mouse.wheel(0, -600)
    zoomed = tab.page.get_attribute("#viewport", "transform")
    tab.page.keyboard.press("f")
    assert zoomed != tab.page.get_attribute("#viewport", "transform")
    tab.assert_clean()


def test_ten_thousand_tasks_open_with_search_usable(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """A 10,000-task store opens (newest tasks first) and its search answers."""
    url = _offline(tmp_path, large(10_000))
    start = time.perf_counter()
    tab = open_tab(url, timeout=60_000)
    seconds = time.perf_counter() - start
    assert seconds < 30, seconds
    assert tab.page.locator("[data-card]").count() <= 200
    tab.page.fill("#search", "task:4321")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url(re.compile(r"#node=task:4321$"))
    assert "task:4321" in tab.page.inner_text("#details")
    tab.assert_clean()


def test_screenshots(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """Screenshots of the quickstart-like graph (focused on the failed train) and of a 2,000-task store."""
    shots = {
        "quickstart.png": _offline(tmp_path, quickstart(), "q.html") + "#node=task:5",
        "quickstart-overview.png": _offline(tmp_path, quickstart(), "q.html"),
        "store-2000.png": _offline(tmp_path, large(2000), "l.html"),
    }
    for name, url in shots.items():
        tab = open_tab(url)
        tab.page.screenshot(path=str(tmp_path / name))
        tab.assert_clean()
        assert (tmp_path / name).stat().st_size > 10_000


def test_generator_follows_the_contract() -> None:
    """The synthetic graphs: one edge per (source, target, relation, generation), generations 1..n."""
    for data in (quickstart(), large(500)):
        keys = [(e["source"], e["target"], e["relation"], e["generation"]) for e in data["edges"]]
        assert len(keys) == len(set(keys))
        for node in data["nodes"]:
            assert [g["generation"] for g in node["generations"]] == list(range(1, len(node["generations"]) + 1))
        assert 2 == data["version"]


def test_copy_buttons(served: Served, browser: Any, open_tab: Callable[..., Tab]) -> None:
    """The panel copies the node id and the reproduce command."""
    tab = open_tab(served.url + "/#node=task:5")
    tab.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served.url)
    tab.page.click("#details button:has-text('Copy reproduce command')")
    assert "workflow-trace reproduce task:5" == tab.page.evaluate("navigator.clipboard.readText()")
    tab.page.click("#details button:has-text('Copy id')")
    assert "task:5" == tab.page.evaluate("navigator.clipboard.readText()")
    tab.assert_clean()


def test_live_unknown_scope_says_so_and_keeps_the_view(served: Served, open_tab: Callable[..., Tab]) -> None:
    """A scope the server refuses (400) is reported in the page; the graph stays."""
    tab = open_tab(served.url + "/")
    tab.page.fill("#scope", "project:999")
    tab.page.dispatch_event("#scope", "change")
    tab.page.wait_for_selector("#notice:not([hidden])")
    assert "no node project:999" in tab.page.inner_text("#notice")
    assert "workspace" == tab.page.input_value("#scope")
    assert 18 == tab.page.locator("[data-card]").count()
    assert [] == tab.errors


def test_live_scope_from_the_address(served: Served, open_tab: Callable[..., Tab]) -> None:
    """/?scope=task:4 opens on that scope."""
    tab = open_tab(served.url + "/?scope=task:4")
    assert "task:4" == tab.page.input_value("#scope")
    assert "task:4" in served.provider.scopes
    tab.assert_clean()


def test_repeated_runs_fold_in_the_details(tmp_path: Path, open_tab: Callable[..., Tab]) -> None:
    """Runs of one name inside a task fold into one line ("x.shard \u00d75") that opens on a click."""
    data = large(300)
    task = next(n for n in data["nodes"] if n["task"] and len(n["task"]["runs"]) == 6)
    tab = open_tab(_offline(tmp_path, data) + f"#node={task['id']}")
    summary = tab.page.locator("#details summary")
    assert f"{task['label']}.shard \u00d75" in summary.inner_text()
    assert not tab.page.locator("#details details ul.runs li").first.is_visible()
    summary.click()
    assert tab.page.locator("#details details ul.runs li").first.is_visible()
    tab.assert_clean()
