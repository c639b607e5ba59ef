"""A real HTTP server on 127.0.0.1 in a thread, recording every request (stdlib only).

Used by the delivery, Supervisely and OpenLineage tests::

    server = RecordingServer(handler=lambda req: (200, {"success": True}))
    server.start()            # binds 127.0.0.1 on a free port (or the port it had before a stop())
    ... server.url ...         # "http://127.0.0.1:PORT"
    server.stop()             # the port refuses connections (open ones are cut) until start() again
    server.requests           # list[Request]: method, path, headers, body (bytes), json()

A handler returns ``(status, payload)`` or ``(status, payload, headers)``: a payload that is ``bytes`` is
sent as it is, anything else as JSON; a ``Content-Type`` in ``headers`` replaces ``application/json``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    time: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


# A handler returns (status, json_body) or (status, json_body, extra_headers).
Handler = Callable[[Request], tuple[Any, ...]]


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut the open keep-alive connections too: a stopped server answers nothing."""
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _ok(_: Request) -> tuple[Any, ...]:
    return 200, {"success": True}


class RecordingServer:
    def __init__(self, handler: Handler | None = None, delay: float = 0.0) -> None:
        self.handler: Handler = handler or _ok
        self.delay = delay
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.port = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RecordingServer:
        owner = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle's algorithm and the client's
            # delayed ACK hold every keep-alive response for ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path, dict(self.headers.items()), body)
                if owner.delay:
                    time.sleep(owner.delay)
                result = owner.handler(req)
                status, payload = result[0], result[1]
                extra = result[2] if len(result) > 2 else {}
                if 200 <= status < 300:
                    with owner.lock:
                        owner.requests.append(req)
                else:
                    with owner.lock:
                        owner.rejected.append(req)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                if not any(k.lower() == "content-type" for k in extra):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_PUT = _handle

        self.rejected: list[Request] = getattr(self, "rejected", [])
        httpd = _Server(("127.0.0.1", self.port), _H)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            self._httpd = None

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def bodies(self, path_suffix: str = "") -> list[Any]:
        with self.lock:
            return [r.json() for r in self.requests if r.path.endswith(path_suffix)]


# -- a Transport for the delivery tests and benchmarks ------------------------------------------------


class EventPostTransport:
    """A :class:`~workflow_trace._transport.Transport` that POSTs each event's JSON to ``{url}/events``.

    ``sent`` counts successful POSTs (this transport's view; the server's ``requests`` is the truth).
    """

    def __init__(self, url: str, *, timeout: float = 5.0, key: str | None = None) -> None:
        import requests

        self.url = url.rstrip("/")
        self.timeout = timeout
        self._key = key or f"test:{self.url}"
        self.session = requests.Session()
        self.session.trust_env = False  # 127.0.0.1 only: no proxies, no .netrc look-ups per request
        self.sent = 0
        self.calls = 0
        self.closed = 0

    @property
    def key(self) -> str:
        return self._key

    def send(self, events: Any) -> None:
        import requests

        from workflow_trace._transport import DeliveryError, check_response

        self.calls += 1
        for i, event in enumerate(events):
            try:
                response = self.session.post(
                    self.url + "/events",
                    data=event.model_dump_json(),
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                raise DeliveryError(f"POST failed: {type(exc).__name__}", retryable=True, delivered=i) from None
            check_response(response, delivered=i, what="POST /events")
            self.sent += 1

    def close(self) -> None:
        self.closed += 1
        self.session.close()
