"""Issue #11, faults of the HTTP backends: redirects, secrets on every error path, hanging and odd servers.

Real servers on 127.0.0.1 (``tests/httpserver.py``); the checks are what the servers received, what
``flush()`` and ``workflow-trace spool`` say, and every log line, exception, repr and file byte.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _support import HangingServer, cli, refused_url, sly_instance, wait_for
from httpserver import RecordingServer, Request

import workflow_trace as wt
from workflow_trace.backends import CompositeBackend, OpenLineageBackend, SQLiteBackend, SuperviselyBackend

TOKEN = "slyTOKEN-4f1d9c2e7b8a4e56-9d3c1b7a2f6e8d40-AbCdEfGh"  # unmistakable in any text
KEY = "olKEY-8e2b7d1c9a3f4e65-1f0e9d8c7b6a5a49-ZyXwVuTs"
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "breaker_cooldown": 0.05, "spool_poll": 0.05}


@wt.consumes_project
@wt.produces_dataset
def convert(project_id: int) -> int:
    return project_id + 1000


@pytest.fixture(autouse=True)
def _short_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLOW_TRACE_EXIT_TIMEOUT", "0.5")


def make_backend(kind: str, url: str, spool: Path, **options: Any) -> Any:
    """A Supervisely (team 7, task 5) or OpenLineage backend pointed at ``url``, with fast retries."""
    if kind == "supervisely":
        return SuperviselyBackend(url, TOKEN, team_id=7, task_id=5, spool_path=spool, timeout=3, **FAST, **options)
    return OpenLineageBackend(url, api_key=KEY, spool_path=spool, timeout=3, **FAST, **options)


# -- 3. redirects are never followed ------------------------------------------------------------------


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("kind", ["supervisely", "openlineage"])
def test_redirects_are_not_followed(kind: str, status: int, tmp_path: Path) -> None:
    """A 302/307 to another server: that server gets nothing, flush() is False, the spool says why."""
    target = RecordingServer(sly_instance() if kind == "supervisely" else None).start()
    redirector = RecordingServer(lambda req: (status, b"", {"Location": target.url + req.path})).start()
    spool = tmp_path / "spool.db"
    try:
        backend = make_backend(kind, redirector.url, spool)
        wt.configure(backend)
        assert 1042 == convert(42)
        flushed = wt.flush(timeout=2)
        backend.close()
        with target.lock:
            reached = [(r.method, r.path, sorted(h.lower() for h in r.headers))
                       for r in target.requests + target.rejected]
    finally:
        redirector.stop()
        target.stop()
    listing = cli("spool", "--spool", str(spool)).stdout.decode()
    rows = [line for line in listing.splitlines() if redirector.url.split("//")[1] in line]
    print(f"flush: {flushed}; the other server got: {reached}\n{listing}")
    assert ([], False) == (reached, flushed)
    assert 1 == len(rows), listing
    assert True is (("redirect" in rows[0].lower()) or (str(status) in rows[0])), rows[0]


# -- 4. secrets stay secret on every error path --------------------------------------------------------


def leaks(text: str) -> bool:
    """Whether ``text`` holds a secret, whole or a recognisable part of it (a cut one too)."""
    return any(part in text for secret in (TOKEN, KEY) for part in (secret, secret[:16], secret[-16:]))


def echo(status: int, cut_at: int | None = None) -> Callable[[Request], tuple[Any, ...]]:
    """A handler answering ``status`` with a body that echoes the request's headers and body; with
    ``cut_at`` the first secret in it is padded to straddle that character."""

    def handle(req: Request) -> tuple[Any, ...]:
        if req.path.endswith("/instance.version"):
            return 200, {"version": "6.12.44"}
        text = json.dumps({"error": "bad request", "headers": req.headers, "body": req.body.decode()})
        if cut_at is not None:
            where = min((i for i in (text.find(TOKEN), text.find(KEY)) if i >= 0), default=-1)
            if 0 <= where < cut_at - 24:  # 24 characters of the secret before the cut, the rest after
                text = "x" * (cut_at - 24 - where) + text
        return status, text.encode(), {"Content-Type": "text/plain"}

    return handle


def plain(status: int) -> Callable[[Request], tuple[Any, ...]]:
    return lambda req: (200, {"version": "6.12.44"}) if req.path.endswith("/instance.version") else (
        status, {"error": f"HTTP {status}", "details": {"message": "refused"}})


SCENARIOS = ["401", "403", "500", "400-echo", "400-echo-cut", "refused", "bad-url", "strict"]


@pytest.mark.internal_errors
@pytest.mark.parametrize("scenario", [*SCENARIOS, "from-url-query-token", "versions-400-echo"])
@pytest.mark.parametrize("kind", ["supervisely", "openlineage"])
def test_secrets_never_appear_anywhere(
    kind: str, scenario: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """On every error path no log line (DEBUG), exception, repr, vars() or file byte holds the token or key."""
    if kind == "openlineage" and scenario in ("from-url-query-token", "versions-400-echo"):
        pytest.skip("a Supervisely-only path")
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("API_TOKEN", TOKEN)
    monkeypatch.setenv("OPENLINEAGE_API_KEY", KEY)
    handlers = {"401": plain(401), "403": plain(403), "500": plain(500), "400-echo": echo(400),
                "400-echo-cut": echo(400, cut_at=300), "strict": plain(401), "from-url-query-token": plain(500),
                "versions-400-echo": echo(400)}
    server = RecordingServer(handlers.get(scenario)).start()
    url = {"refused": refused_url(), "bad-url": "http://127.0.0.1:99999"}.get(scenario, server.url)
    spool, store = tmp_path / "spool.db", tmp_path / "store.db"
    raised: list[BaseException] = []
    objects: list[Any] = []

    def attempt(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            raised.append(exc)
            return None

    def scan_files() -> list[str]:
        return [f"file {p.name}" for p in sorted(tmp_path.rglob("*"))
                if p.is_file() and leaks(p.read_bytes().decode("latin-1"))]

    try:
        if scenario == "strict":
            wt.configure(strict=True)
        if scenario == "from-url-query-token":
            remote = attempt(lambda: SuperviselyBackend.from_url(f"supervisely+{server.url}/?token={TOKEN}"))
        else:
            remote = attempt(lambda: make_backend(kind, url, spool))
        if remote is not None:
            objects += [remote, getattr(remote, "transport", None), getattr(remote, "openlineage", None)]
            attempt(lambda: wt.configure(CompositeBackend(SQLiteBackend(store), remote)))
            attempt(lambda: convert(42))
            with wt.workflow_step("failing", task_id=5) as step:
                step.add_input(wt.Project(id=7))
            if scenario == "versions-400-echo":
                attempt(lambda: wt.version.get_list(42))
            attempt(lambda: wt.flush(timeout=1.5))
            files_open = scan_files()
            attempt(remote.close)
        else:
            files_open = []
        if kind == "openlineage" and scenario == "strict":
            attempt(lambda: wt.configure(f"openlineage+{server.url}?api_key={KEY}"))
        if kind == "supervisely" and scenario == "strict":
            attempt(lambda: wt.configure(f"supervisely+http://user:{TOKEN}@127.0.0.1:1"))
    finally:
        wt.reset()
        server.stop()
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    found = [f"log {r.name}: {r.getMessage()[:120]}" for r in caplog.records if leaks(formatter.format(r))]
    for exc in raised:
        chain: BaseException | None = exc
        while chain is not None:
            if leaks(str(chain)) or leaks(repr(chain)):
                found.append(f"exception {type(chain).__name__}")
            chain = chain.__cause__ or chain.__context__
    for obj in {id(o): o for o in objects if o is not None}.values():
        if leaks(repr(obj)):
            found.append(f"repr({type(obj).__name__})")
        if leaks(repr(vars(obj))):
            found.append(f"vars({type(obj).__name__})")
    found += files_open + scan_files()
    print(f"{len(caplog.records)} log records, {len(raised)} exceptions scanned; leaks: {found}")
    assert [] == found


# -- 6. close() and configure(other) never wait for a hanging server -----------------------------------


@pytest.mark.parametrize("how", ["close", "configure-other"])
def test_openlineage_close_returns_within_the_exit_timeout_while_the_server_hangs(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server accepts and never answers: close() / configure(other) return within ~the exit timeout (0.5 s)."""
    monkeypatch.setenv("WORKFLOW_TRACE_SPOOL", str(tmp_path / "spool.db"))
    hang = HangingServer()
    try:
        if how == "close":
            backend = OpenLineageBackend(hang.url, timeout=30)
            wt.configure(backend)
            finish: Callable[[], None] = backend.close
        else:
            wt.configure(f"openlineage+{hang.url}")  # owned by workflow_trace: configure() closes it
            finish = lambda: wt.configure("memory")  # noqa: E731
        convert(42)
        assert wait_for(lambda: bool(hang.accepted), 5), "no request reached the server"
        time.sleep(0.2)  # the request is in flight, unanswered
        started = time.monotonic()
        worker = threading.Thread(target=finish, daemon=True)
        worker.start()
        worker.join(6)
        took = time.monotonic() - started
    finally:
        hang.stop()
    print(f"{how} returned: {not worker.is_alive()} after {took:.2f} s (WORKFLOW_TRACE_EXIT_TIMEOUT=0.5)")
    assert (True, True) == (not worker.is_alive(), took < 3.0), f"{how} took {took:.1f} s"


# -- 8. a 2xx with a body that is not JSON is delivered ------------------------------------------------


def test_supervisely_2xx_with_a_non_json_body_is_delivered_once(tmp_path: Path) -> None:
    """200 with a text body for each edge: flush() is True and each edge was POSTed exactly once."""
    server = RecordingServer(sly_instance(lambda req: (200, b"OK", {"Content-Type": "text/plain"}))).start()
    try:
        backend = make_backend("supervisely", server.url, tmp_path / "spool.db")
        wt.configure(backend)
        assert 1042 == convert(42)
        flushed = wt.flush(timeout=3)
        time.sleep(0.5)  # time for any retry to show up
        backend.close()
        posts = Counter(r.path.rsplit("/", 1)[1] for r in server.requests if "/workflow.node." in r.path)
    finally:
        server.stop()
    print("flush:", flushed, "POSTs:", dict(posts))
    assert (True, {"workflow.node.add-input": 1, "workflow.node.add-output": 1}) == (flushed, dict(posts))


def test_openlineage_2xx_with_a_non_json_body_is_delivered_once(tmp_path: Path) -> None:
    """200 with an HTML body: flush() is True and every RunEvent was POSTed exactly once."""
    server = RecordingServer(lambda req: (200, b"<html>ok</html>", {"Content-Type": "text/html"})).start()
    try:
        backend = make_backend("openlineage", server.url, tmp_path / "spool.db")
        wt.configure(backend)
        assert 1042 == convert(42)
        flushed = wt.flush(timeout=3)
        time.sleep(0.5)
        backend.close()
        posts = Counter((b["run"]["runId"], b["eventType"]) for b in server.bodies())
    finally:
        server.stop()
    print("flush:", flushed, "POSTs:", dict(posts))
    assert (True, ["COMPLETE", "START"], {1}) == (flushed, sorted(t for _, t in posts), set(posts.values()))


# -- 13. a server refusing every event gives one WARNING, not one per event ----------------------------


@pytest.mark.internal_errors
@pytest.mark.parametrize("kind", ["supervisely", "openlineage"])
def test_events_left_in_the_spool_are_counted_in_a_warning(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server refuses connections: flush() is False and a WARNING says how many events wait in the spool;
    closing (as at exit) says it again with what is left (it said so only at INFO, which a script that
    configures no logging never shows)."""
    caplog.set_level(logging.WARNING)
    backend = make_backend(kind, refused_url(), tmp_path / "spool.db")
    wt.configure(backend)
    for i in range(4):
        convert(i)  # a run of 4 events each: 16 events, 8 of them edges (what Supervisely is sent)
    count = f"{8 if kind == 'supervisely' else 16} event(s)"
    assert False is wt.flush(timeout=1.5)
    flushed = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    backend.close()
    closed = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][len(flushed):]
    print("after flush:", flushed, "\nafter close:", closed)
    assert [m for m in flushed if count in m and "wait in the spool" in m]
    assert [m for m in closed if count in m and "wait in the spool" in m]


@pytest.mark.parametrize("kind", ["supervisely", "openlineage"])
def test_a_server_answering_400_to_everything_gives_one_warning(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """200 calls, each edge answered 400: at most 3 WARNING records, not one per event."""
    handler = sly_instance(lambda req: (400, {"error": "schema violation"})) if kind == "supervisely" else (
        lambda req: (400, {"error": "schema violation"}))
    server = RecordingServer(handler).start()
    caplog.set_level(logging.WARNING)
    try:
        backend = make_backend(kind, server.url, tmp_path / "spool.db")
        wt.configure(backend)
        for i in range(200):
            convert(i)
        wt.flush(timeout=5)
        backend.close()
        refused = len(server.rejected)
    finally:
        server.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    print(f"server refused {refused} requests; {len(warnings)} WARNING records; first: {warnings[:2]}")
    assert True is (len(warnings) <= 3), f"{len(warnings)} WARNING records for {refused} refused requests"

