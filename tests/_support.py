"""Helpers the tests share (one place, not copies): real processes, real servers, real files, events.

Everything here observes workflow_trace from the outside (what a server received, what a process printed,
what is in a file), so that the fault tests stay valid whatever the internals become.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from workflow_trace._events import ErrorInfo, Event, EventKind, StepRef, new_event_id, utcnow
from workflow_trace._nodes import Node

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

_DROP = ("WORKFLOW_TRACE_", "OPENLINEAGE_")
_DROP_EXACT = {"API_TOKEN", "SERVER_ADDRESS", "TEAM_ID", "TASK_ID", "SUPERVISELY_TASK_ID"}


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: no workflow_trace / Supervisely / OpenLineage settings but
    ``extra``; this worktree's package and the tests folder importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP) and k not in _DROP_EXACT}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(TESTS), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_py(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60,
           input: str | None = None, **popen: Any) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) in a fresh interpreter; ``env`` is added to :func:`child_env`."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=child_env(**(env or {})),
        capture_output=True, text=True, timeout=timeout, input=input, check=False, **popen,
    )


def spawn_py(code: str, *args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """Start ``code`` in a fresh interpreter with pipes for stdin and stdout; stderr goes to a temporary
    file (a full stderr pipe nobody reads would freeze the child), read with :func:`stderr_of`."""
    err = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115 - lives with proc
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=child_env(**(env or {})),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, **popen,
    )
    proc.stderr_file = err  # type: ignore[attr-defined]
    return proc


def stderr_of(proc: subprocess.Popen[str]) -> str:
    """What a process started by :func:`spawn_py` wrote on stderr so far."""
    err = proc.stderr_file  # type: ignore[attr-defined]
    err.seek(0)
    return str(err.read())


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, input: bytes | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """``python -m workflow_trace ARGS`` as a real process; stdout and stderr are bytes."""
    return subprocess.run(
        [sys.executable, "-m", "workflow_trace", *args], env=child_env(**(env or {})), cwd=cwd,
        capture_output=True, timeout=timeout, input=input, check=False,
    )


def cli_text(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """:func:`cli` with text output (UTF-8): what a user reads in a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "workflow_trace", *args], env=child_env(**(env or {})), cwd=cwd,
        capture_output=True, text=True, encoding="utf-8", timeout=timeout, check=False,
    )


class Lines:
    """The lines a child writes on a pipe, readable with a timeout."""

    def __init__(self, stream: Any) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []

        def pump() -> None:
            for line in stream:
                self._queue.put(line)
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def next(self, timeout: float) -> str | None:
        """The next line (without its newline), or ``None`` at EOF or after ``timeout`` seconds."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            self._queue.put(None)
            return None
        self.seen.append(line)
        return line.rstrip("\n")

    def rest(self, timeout: float = 5.0) -> list[str]:
        """Every line until EOF (or until nothing came for ``timeout`` seconds)."""
        out = []
        while (line := self.next(timeout)) is not None:
            out.append(line)
        return out


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (a liveness bound, not a timing check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def refused_url() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class HangingServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (until :meth:`stop`)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def stop(self) -> None:
        self._stopped = True
        for conn in [self._sock, *self.accepted]:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def sly_instance(edge: Callable[[Any], tuple[Any, ...]] | None = None) -> Callable[[Any], tuple[Any, ...]]:
    """A handler for :class:`httpserver.RecordingServer` answering like a Supervisely instance (6.12.44):
    ``instance.version``, and ``edge(request)`` (default: success) for ``workflow.node.add-*``."""

    def handle(req: Any) -> tuple[Any, ...]:
        if req.path.endswith("/instance.version"):
            return 200, {"version": "6.12.44"}
        if "/workflow.node.add-" in req.path:
            return edge(req) if edge else (200, {"success": True})
        return 404, {"error": f"unknown method {req.path}"}

    return handle


def ol_input_names(bodies: Iterable[Any]) -> set[str]:
    """Distinct dataset names in the ``inputs`` of the OpenLineage RunEvents a server received."""
    names: set[str] = set()
    for body in bodies:
        if isinstance(body, dict):
            names.update(d.get("name", "") for d in body.get("inputs") or [])
    return names


def json_line(text: str, prefix: str = "RESULT ") -> Any:
    """The JSON after ``prefix`` on the last line of ``text`` that starts with it (``None`` if none)."""
    found = [line[len(prefix):] for line in text.splitlines() if line.startswith(prefix)]
    return json.loads(found[-1]) if found else None


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and mtime (ns), by relative path."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file()
    }

def make_event(
    kind: EventKind,
    task_id: int | None,
    step: StepRef,
    node: Node | None = None,
    meta: dict[str, Any] | None = None,
    status: str | None = None,
    error: ErrorInfo | None = None,
) -> Event:
    """A new event (fresh id, now) as a backend would receive it."""
    return Event(kind=kind, event_id=new_event_id(), time=utcnow(), task_id=task_id, step=step, node=node,
                 meta=meta, status=status, error=error)  # type: ignore[arg-type]


def write_script(folder: Path, name: str, code: str) -> Path:
    """``code`` (dedented) as the file ``folder/name``: a real script, so that ``sys.argv[0]`` names it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


def run_script(script: Path, *args: str, cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python SCRIPT ARGS`` in ``cwd`` as a user runs it (the script named relative to ``cwd`` when it is
    inside it); ``env`` is added to :func:`child_env` (no WORKFLOW_TRACE_DB unless given)."""
    try:
        named = str(script.relative_to(cwd))
    except ValueError:
        named = str(script)
    return subprocess.run(
        [sys.executable, named, *args], cwd=cwd, env=child_env(**(env or {})), capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def export_json(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    """``workflow-trace export --format json ARGS`` as a real process, parsed (it must exit 0)."""
    done = cli("export", "--format", "json", *args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def json_tasks(doc: Any) -> dict[str, Any]:
    """The ``task`` objects of a JSON export (version 2), by task name (the last one of a name wins)."""
    return {n["task"]["name"]: n["task"] for n in doc["nodes"] if n["kind"] == "task" and n.get("task")}


def table(text: str) -> list[dict[str, str]]:
    """The rows of a table the CLI printed (``tasks``, ``versions list``), as dicts by column name: columns
    are separated by two spaces or more, a cell holds at most single spaces."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=False)) for line in lines[1:]]
