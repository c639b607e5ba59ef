"""``workflow-trace ui``: the lineage viewer served from a local, read-only HTTP server (stdlib only).

Routes (GET and HEAD; every other method is 405):

- ``/``: the live viewer page (:func:`workflow_trace._viewer.render_page`).
- ``/api/graph?scope=S``: the JSON v2 graph of a scope (``workspace``, ``project:ID``, ``task:ID``), with an
  ETag from the store's version so a poll that finds nothing new costs a 304.
- ``/api/lineage?node=N&direction=up|down|both&depth=K``: the lineage subgraph of a node.
- ``/api/version``: ``{"version": "..."}``, which changes when the store changes (the page polls it).

Anything else is 404, and so is any path with ``..``, a backslash or an encoded ``.``, ``/`` or ``\\``: the
server has no files to serve beyond its own page. A provider's ``ValueError`` / ``LookupError`` (a bad
scope or node) is a 400 with its message; any other failure a 500 (logged, not shown).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import sys
import threading
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from ._context import contained, logger
from ._viewer import content_security_policy, render_page

__all__ = ["GraphProvider", "make_server", "serve"]


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_DIRECTIONS = ("up", "down", "both")
_ALLOW = "GET, HEAD"
_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache"}


class GraphProvider(Protocol):
    """What the server shows: the CLI passes one reading the local store."""

    def graph(self, scope: str) -> dict[str, Any]:
        """The JSON v2 graph of ``scope``; ValueError / LookupError for a bad scope."""

    def lineage(self, node: str, direction: str, depth: int | None) -> dict[str, Any]:
        """The JSON v2 lineage subgraph of ``node``; ValueError / LookupError for an unknown node."""

    def version(self) -> str:
        """A token that changes whenever the store changes."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "workflow-trace"
    sys_version = ""

    def _refuse_method(self) -> None:
        self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "read-only: only GET and HEAD"}, {"Allow": _ALLOW})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def do_GET(self) -> None:
        """Answer a GET, or a HEAD (the same answer without its body: see :meth:`_send`)."""
        if not self._host_allowed():
            # A page on another site reaching us through a rebound DNS name would send its own Host.
            self._send_json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "unexpected Host header"})
            return
        parts = urlsplit(self.path)
        # Routes match exactly: a path with "..", a backslash or an encoded dot, slash or backslash is a 404.
        raw = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        answered = False
        # The command's server: a failed answer is a 500 and a WARNING (through the one containment
        # primitive, so the internal-error hooks see it), never a crash of the server.
        with contained(f"workflow-trace ui: answering {raw}", allow_raise=False):
            try:
                if raw == "/":
                    self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
                elif raw == "/api/version":
                    self._send_json(HTTPStatus.OK, {"version": self.server.provider.version()})
                elif raw == "/api/graph":
                    self._graph(query.get("scope") or "workspace")
                elif raw == "/api/lineage":
                    self._lineage(query)
                else:
                    self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            except (ValueError, LookupError) as exc:  # a bad request: 400
                message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
                self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(message)})
            answered = True
        if not answered:
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error (see the server log)"})

    do_HEAD = do_GET

    def _graph(self, scope: str) -> None:
        version = self.server.provider.version()
        etag = '"' + hashlib.sha256(f"{version}\0{scope}".encode()).hexdigest()[:32] + '"'
        if self.headers.get("If-None-Match") == etag:
            self._send(HTTPStatus.NOT_MODIFIED, b"", None, extra={"ETag": etag})
            return
        cached = self.server.graph_cache  # (read once: another thread may replace it meanwhile)
        if cached is None or cached[0] != etag:
            # Every new tab asks for the same graph: it is written once per store version and scope.
            cached = self.server.graph_cache = (etag, _json(self.server.provider.graph(scope)))
        self._send(HTTPStatus.OK, cached[1], "application/json", extra={"ETag": etag})

    def _lineage(self, query: dict[str, str]) -> None:
        node = query.get("node")
        if not node:
            raise ValueError("missing node= (a node id such as task:3 or file:/models/best.pt)")
        direction = query.get("direction") or "both"
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(_DIRECTIONS)}, not {direction!r}")
        depth = query.get("depth")
        if depth and not depth.isdigit():
            raise ValueError(f"depth must be a whole number, not {depth!r}")
        self._send_json(HTTPStatus.OK, self.server.provider.lineage(node, direction, int(depth) if depth else None))

    def _host_allowed(self) -> bool:
        if self.server.bind_host not in _LOCAL_HOSTS:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        if host.startswith("["):
            name = host[1:].partition("]")[0]
        else:
            name = host.rpartition(":")[0] if host.count(":") == 1 else host
        return name in _LOCAL_HOSTS

    def _send(self, status: HTTPStatus, payload: bytes, content_type: str | None,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(payload)))
        for key, value in {"Content-Security-Policy": self.server.csp, **_HEADERS, **(extra or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and status != HTTPStatus.NOT_MODIFIED:
            self.wfile.write(payload)

    def _send_json(self, status: HTTPStatus, value: object, extra: dict[str, str] | None = None) -> None:
        self._send(status, _json(value), "application/json", extra)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("workflow-trace ui: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], provider: GraphProvider, bind_host: str) -> None:
        self.provider = provider
        self.bind_host = bind_host
        self.graph_cache: tuple[str, bytes] | None = None  # (ETag, JSON) of the last graph answered
        self.page = render_page(None, live=True).encode("utf-8")
        self.csp = content_security_policy(live=True) + "; frame-ancestors 'none'"
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser that went away mid-answer (a closed tab, a cancelled poll): not worth a traceback.
        logger.debug("workflow-trace ui: request from %s failed", client_address, exc_info=True)


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def make_server(provider: GraphProvider, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A bound, not yet serving, viewer server (``port=0`` picks a free port: see ``server_address``).

    Binding to a host other than 127.0.0.1 / localhost logs a warning: the viewer is read-only, but it
    shows everything recorded in the store to whoever reaches that address.
    """
    if host not in _LOCAL_HOSTS:
        logger.warning(
            "workflow-trace ui: listening on %s, not 127.0.0.1: anyone who can reach this address can read "
            "the whole lineage store (task names, paths, params, errors)", host,
        )
    return _Server((host, port), provider, host)


def serve(provider: GraphProvider, host: str = "127.0.0.1", port: int = 8765, *, open_browser: bool = False) -> None:
    """Serve the viewer until interrupted (Ctrl+C), optionally opening it in the default browser.

    The address goes to stdout alone on one line, once the server listens (for scripts:
    ``workflow-trace ui --port 0 | head -1``), and as a sentence to stderr (for people).
    """
    server = make_server(provider, host, port)
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    url = f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}/"
    print(f"workflow-trace ui: the lineage viewer is on {url} (Ctrl+C stops it)", file=sys.stderr, flush=True)
    # `| head -1` may have read it and left, or stdout may be closed: the sentence on stderr said it too.
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(url, flush=True)
    if open_browser:
        threading.Timer(0.3, webbrowser.open, args=(url,)).start()
    with server, contextlib.suppress(KeyboardInterrupt):  # leaving the block closes the server
        server.serve_forever()
