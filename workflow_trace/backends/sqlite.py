"""The local lineage store: an embedded SQLite database, the default backend on a machine without a server.

Where it lives: ``SQLiteBackend(path)``; with no path, ``$WORKFLOW_TRACE_DB`` or
``./.workflow_trace/workflow.db`` (relative to the working directory when the backend is created; parent
folders are created on first use). Backend strings: ``sqlite:///abs/path.db`` (absolute),
``sqlite:relative/path.db`` (relative to the working directory), ``sqlite:~/lineage.db`` (home) and
``sqlite`` / ``sqlite:`` / ``sqlite://`` (the default path).

What it keeps (schema version 3, ``PRAGMA user_version``; each version appends to :data:`MIGRATIONS`):

- ``events``: append-only, every event as JSON; ``event_id`` is UNIQUE, so a replayed batch is stored once
  and only newly stored events update the tables below.
- ``tasks``: id, name, origin (``local``: allocated here; ``external``: an id from the environment or an
  explicit ``task_id``), start/end, status (``running``, ``ok``, ``failed``: from the task's outermost
  steps), error, pid, host and command line (of the process that allocated the id or, for an external
  id, first stored it; secret-looking option values masked), the main node's card
  (``customNodeSettings``, the last one wins).
- ``steps``: run ids, names, parent links, start/end, status, error.
- ``nodes``: one row per identity (kind + id/path + project version); files keep their model-weight flag.
- ``edges``: one row per input/output event (``event_seq``): direction, task, step, node, card meta, time.
- ``version_projects``, ``versions``, ``version_files`` (schema 2): local project versions, see
  :mod:`workflow_trace._versions`; the stored file contents live in ``objects/`` next to the store file.
- ``pushed`` (schema 3): which events ``workflow-trace push`` handed to which destination (its
  ``transport.key``), so that pushing again sends only what is new.

Versions: the backend implements :class:`~workflow_trace.backends.VersioningBackend` for local project
folders (``Project(path=...)``, or ``Project(id=...)`` with the id the store registered for a folder).
Versioning hashes and copies files outside the lock that serialises :meth:`SQLiteBackend.emit`, on its
own short connections: recording events from other threads never waits for a large folder to be hashed.

Task ids are one namespace per store: an id the store allocated and the same number given explicitly or
through ``SUPERVISELY_TASK_ID`` / ``TASK_ID`` name the same task (that is how the SDK's ``task_id=``
attaches records to an existing task). New local ids come from the store's own sequence
(``AUTOINCREMENT``), which always stays above every id the store has seen, so a new local task never joins
an existing one. Runs inside Supervisely tasks report to the instance; if you also record them locally,
give them their own file (``WORKFLOW_TRACE_DB``) so a later instance id cannot meet an earlier local one.

Concurrency: WAL journal, ``synchronous=NORMAL``, a 30 s busy timeout and ``BEGIN IMMEDIATE`` writes, so
several processes (a training job and its data-loader workers, two apps) can write one file without errors
or lost rows. One :meth:`SQLiteBackend.emit` call is one transaction. An instance is thread-safe (one
connection behind a lock) and fork-safe (a child process opens its own connection).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import sqlite3
import sys
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from .._errors import BackendError, VersioningError, WorkflowTraceError
from .._events import Event, utcnow
from .._nodes import App, File, Node, Project, node_class
from .._sqlite import write_transaction
from .._versions import MIGRATION as _VERSIONS_MIGRATION
from .._versions import LocalVersions
from . import VersionInfo

__all__ = [
    "DEFAULT_PATH",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "EdgeRow",
    "SQLiteBackend",
    "StepRow",
    "StoreNotFoundError",
    "TaskRow",
    "default_store_path",
]

#: Where the store lives when neither a path nor ``$WORKFLOW_TRACE_DB`` is given (relative to the cwd).
DEFAULT_PATH = os.path.join(".workflow_trace", "workflow.db")

#: Seconds a writer waits for another process's write transaction before giving up.
BUSY_TIMEOUT = 30.0

#: Page cache per connection, in KiB.
CACHE_KIB = 32 * 1024

#: Schema migrations: ``MIGRATIONS[n]`` takes a store from version ``n`` to ``n + 1``. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            time TEXT NOT NULL,
            task_id INTEGER,
            run_id TEXT NOT NULL,
            body TEXT NOT NULL
        )""",
        """CREATE TABLE tasks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT,
            origin TEXT NOT NULL CHECK (origin IN ('local', 'external')),
            started_at TEXT,
            finished_at TEXT,
            status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
            error_type TEXT,
            error_message TEXT,
            pid INTEGER,
            host TEXT,
            command TEXT,
            node_meta TEXT,
            node_meta_time TEXT
        )""",
        """CREATE TABLE steps (
            run_id TEXT PRIMARY KEY,
            task_id INTEGER REFERENCES tasks(id),
            name TEXT NOT NULL,
            parent_run_id TEXT,
            root INTEGER NOT NULL DEFAULT 1,
            started_at TEXT,
            finished_at TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            error_type TEXT,
            error_message TEXT
        )""",
        "CREATE INDEX steps_by_task ON steps (task_id, root)",
        "CREATE INDEX steps_by_parent ON steps (parent_run_id)",
        """CREATE TABLE nodes (
            id INTEGER PRIMARY KEY,
            identity TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            ref TEXT NOT NULL,
            ext_id INTEGER,
            path TEXT,
            version_id INTEGER,
            version_num INTEGER,
            model_weight INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE edges (
            id INTEGER PRIMARY KEY,
            event_seq INTEGER NOT NULL REFERENCES events(seq),
            direction TEXT NOT NULL CHECK (direction IN ('input', 'output')),
            task_id INTEGER REFERENCES tasks(id),
            run_id TEXT NOT NULL,
            node_id INTEGER NOT NULL REFERENCES nodes(id),
            meta TEXT,
            time TEXT NOT NULL
        )""",
        "CREATE INDEX edges_by_task ON edges (task_id)",
        "CREATE INDEX edges_by_node ON edges (node_id)",
    ),
    # 2: local project versions (workflow_trace._versions).
    tuple(_VERSIONS_MIGRATION),
    # 3: events `workflow-trace push` handed to a destination (keyed by the destination's transport key).
    (
        """CREATE TABLE pushed (
            dest TEXT NOT NULL,
            event_id TEXT NOT NULL,
            pushed_at TEXT NOT NULL,
            PRIMARY KEY (dest, event_id)
        ) WITHOUT ROWID""",
    ),
)

#: The schema version this code writes and reads.
SCHEMA_VERSION = len(MIGRATIONS)

_OUR_TABLES = {
    "events", "tasks", "steps", "nodes", "edges", "sqlite_sequence",
    "version_projects", "versions", "version_files", "pushed",
}
_SECRET_ARG = re.compile(r"token|password|passwd|secret|api[-_]?key|credential", re.IGNORECASE)
_MAX_COMMAND = 2000


class StoreNotFoundError(WorkflowTraceError, FileNotFoundError):
    """The store file to read does not exist."""


@dataclass(frozen=True)
class TaskRow:
    """One task as the store keeps it (times are timezone-aware UTC)."""

    id: int
    name: Optional[str]
    origin: str
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    status: str
    error_type: Optional[str]
    error_message: Optional[str]
    pid: Optional[int]
    host: Optional[str]
    command: Optional[str]
    node_meta: Optional[dict[str, Any]]


@dataclass(frozen=True)
class StepRow:
    """One step (run) of a task."""

    run_id: str
    task_id: Optional[int]
    name: str
    parent_run_id: Optional[str]
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    status: str
    error_type: Optional[str]
    error_message: Optional[str]


@dataclass(frozen=True)
class EdgeRow:
    """One recorded input or output: ``direction`` is ``input`` (node -> task) or ``output``."""

    direction: str
    task_id: Optional[int]
    run_id: str
    node: Node
    meta: Optional[dict[str, Any]]
    time: datetime


def default_store_path() -> Path:
    """The store used when none is named: ``$WORKFLOW_TRACE_DB`` or ``./.workflow_trace/workflow.db``.

    Returns:
        An absolute path (resolved against the current working directory now).
    """
    env = os.environ.get("WORKFLOW_TRACE_DB", "").strip()
    return Path(os.path.abspath(os.path.expanduser(env or DEFAULT_PATH)))


def _path_from_url(spec: str) -> Path | None:
    text = spec.strip()
    scheme, sep, rest = text.partition(":")
    if scheme.lower() != "sqlite":
        raise ValueError(f"a sqlite backend string starts with 'sqlite:' (got {spec!r})")
    if not sep or rest in ("", "//"):
        return None
    if rest.startswith("//"):
        rest = rest[2:]
        if not rest.startswith("/"):
            raise ValueError(
                f"{spec!r}: use sqlite:///absolute/path.db (three slashes) or sqlite:relative/path.db"
            )
    if rest == ":memory:":
        raise ValueError("an in-memory sqlite store is per connection; use the 'memory' backend instead")
    return Path(os.path.abspath(os.path.expanduser(rest)))


def _command_line() -> str:
    """This process's command line, with values of secret-looking options and the API token masked."""
    token = os.environ.get("API_TOKEN") or ""
    out: list[str] = []
    mask_next = False
    for arg in sys.argv:
        if mask_next:
            out.append("***")
            mask_next = False
            continue
        if arg.startswith("-") and _SECRET_ARG.search(arg.split("=", 1)[0]):
            if "=" in arg:
                arg = arg.split("=", 1)[0] + "=***"
            else:
                mask_next = True
        if token and len(token) >= 4 and token in arg:
            arg = arg.replace(token, "***")
        out.append(arg)
    text = shlex.join(out)
    return text if len(text) <= _MAX_COMMAND else text[: _MAX_COMMAND - 3] + "..."


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _json(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None


def _identity(node: Node) -> tuple[str, list[Any]]:
    """The store's identity of a node (kind + id/path + version) and the column values."""
    fields = node.__dict__  # the model's field values (faster than getattr on missing fields)
    values = [fields.get("id"), fields.get("path"), fields.get("version_id"), fields.get("version_num")]
    return json.dumps([fields["kind"], *values], separators=(",", ":")), values


def _node_from_row(kind: str, ext_id: Any, path: Any, version_id: Any, version_num: Any, mw: Any) -> Node:
    cls = node_class(kind)
    if cls is App:
        return App()
    fields: dict[str, Any] = {}
    if ext_id is not None:
        fields["id"] = ext_id
    if path is not None:
        fields["path"] = path
    if cls is Project:
        fields["version_id"] = version_id
        fields["version_num"] = version_num
    if cls is File:
        fields["model_weight"] = bool(mw)
    return cls(**fields)


_INSTANCES: weakref.WeakSet[SQLiteBackend] = weakref.WeakSet()
# Connections inherited across fork(): never used and never closed in the child (SQLite forbids both),
# only kept referenced so that garbage collection does not close them either.
_INHERITED: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    for backend in list(_INSTANCES):
        backend._forget_connection()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class SQLiteBackend:
    """Records events in a local SQLite file and reads them back for the graph (see the module docstring).

    Args:
        path: The store file. ``None``: ``$WORKFLOW_TRACE_DB`` or ``./.workflow_trace/workflow.db``.
            Relative paths are resolved against the working directory now.

    Nothing touches the disk until the first write or read.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path: Path = default_store_path() if path is None else Path(os.path.abspath(os.fspath(path)))
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._known_tasks: set[int] = set()
        self._node_ids: dict[str, tuple[int, int]] = {}  # identity -> (row id, model_weight as stored)
        _INSTANCES.add(self)

    @classmethod
    def from_url(cls, spec: str) -> SQLiteBackend:
        """Build from ``sqlite:///abs/path.db``, ``sqlite:relative.db`` or ``sqlite`` (the default path).

        Raises:
            ValueError: a string that is not one of those forms.
        """
        return cls(_path_from_url(spec))

    @classmethod
    def open_existing(cls, path: str | os.PathLike[str] | None = None) -> SQLiteBackend:
        """Open a store that must already exist (for reading).

        Raises:
            StoreNotFoundError: there is no file at ``path``.
            BackendError: the file is not a workflow_trace store, or a newer version of one.
        """
        backend = cls(path)
        if not backend.path.is_file():
            raise StoreNotFoundError(
                f"no lineage store at {backend.path} (run a pipeline first, or pass --db / set "
                "WORKFLOW_TRACE_DB)"
            )
        with backend._lock:
            backend._connection()
        return backend

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.path)!r})"

    def __reduce__(self) -> tuple[type[SQLiteBackend], tuple[str]]:
        # A pickled backend (multiprocessing "spawn") reopens the same file in the other process.
        return (type(self), (str(self.path),))

    def __enter__(self) -> SQLiteBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connection ------------------------------------------------------------------------------

    def _forget_connection(self) -> None:
        """Drop the connection without touching it (after fork) and get a fresh lock."""
        if self._conn is not None:
            _INHERITED.append(self._conn)
        self._conn = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        """The open connection of this process (opened and migrated on first use). Call under the lock."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self._conn is not None:  # forked without the at-fork hook (should not happen)
            _INHERITED.append(self._conn)
            self._conn = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.path), timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise BackendError(f"{self.path}: cannot switch the store to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            # The event_id and node identity indexes take random keys: a larger page cache keeps them hot.
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise BackendError(f"{self.path}: not a usable lineage store: {exc}") from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._pid = os.getpid()
        self._known_tasks = set()
        self._node_ids = {}
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        with write_transaction(conn):
            # Read again under the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise BackendError(
                    f"{self.path} has schema version {version}, newer than this workflow_trace "
                    f"understands ({SCHEMA_VERSION}); upgrade workflow_trace"
                )
            if version == 0:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if tables - _OUR_TABLES:
                    raise BackendError(f"{self.path} is an SQLite file but not a workflow_trace store")
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- Backend protocol ------------------------------------------------------------------------

    def emit(self, events: Sequence[Event]) -> None:
        """Store one batch in one transaction; events already stored (same ``event_id``) are skipped.

        Raises:
            BackendError: the store cannot be opened or written (the caller contains it).
        """
        if not events:
            return
        rows = [(e.event_id, e.kind, e.time.isoformat(), e.step.run_id, e.model_dump_json()) for e in events]
        with self._lock:
            conn = self._connection()
            try:
                with write_transaction(conn):
                    for event, (event_id, kind, time, run_id, body) in zip(events, rows, strict=True):
                        task_id = self._resolve_task(conn, event)
                        cur = conn.execute(
                            "INSERT OR IGNORE INTO events (event_id, kind, time, task_id, run_id, body) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            (event_id, kind, time, task_id, run_id, body),
                        )
                        if cur.rowcount == 1:
                            assert cur.lastrowid is not None
                            self._derive(conn, event, task_id, time, cur.lastrowid)
            except sqlite3.Error as exc:
                # The caches may name rows of the rolled-back transaction.
                self._known_tasks = set()
                self._node_ids = {}
                raise BackendError(f"{self.path}: cannot store events: {exc}") from exc
            except BaseException:
                self._known_tasks = set()
                self._node_ids = {}
                raise

    def flush(self, timeout: float | None = None) -> bool:
        """Writes are synchronous: everything emitted is already stored."""
        return True

    def close(self) -> None:
        """Close this process's connection (a later call opens a new one)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- TaskIdBackend ---------------------------------------------------------------------------

    def new_task_id(self, name: str) -> int:
        """Allocate a local task id and record the task (name, start, pid, host, command line).

        Raises:
            BackendError: the store cannot be written.
        """
        with self._lock:
            conn = self._connection()
            try:
                with write_transaction(conn):
                    task_id = self._insert_task(conn, None, name, "local", utcnow().isoformat())
            except sqlite3.Error as exc:
                raise BackendError(f"{self.path}: cannot allocate a task id: {exc}") from exc
            self._known_tasks.add(task_id)
            return task_id

    # -- VersioningBackend -----------------------------------------------------------------------

    def local_versions(self) -> LocalVersions:
        """The project versions kept in this store (the file is created and migrated first).

        The lock is held only while the store is opened: versioning itself runs on the returned
        object's own short connections, so hashing a large folder never delays :meth:`emit`.

        Raises:
            BackendError: the store cannot be opened.
        """
        with self._lock:
            self._connection()
        return LocalVersions(self.path, timeout=BUSY_TIMEOUT)

    def create_version(self, project: Project, title: str | None, description: str | None) -> int:
        """Snapshot a local project folder; the latest version's id when nothing changed since it.

        Raises:
            VersioningError: not a local project, a missing folder, or the store cannot be written.
        """
        try:
            return self.local_versions().create(project, title, description)
        except sqlite3.Error as exc:
            raise VersioningError(f"{self.path}: cannot record a version: {exc}") from exc

    def restore_version(
        self,
        project: Project,
        version_id: int | None = None,
        version_num: int | None = None,
        skip_missed_entities: bool = False,
    ) -> Project:
        """Recreate a version (by id or number) as a new folder next to the original; the new project.

        Raises:
            VersioningError: neither ``version_id`` nor ``version_num``, no such version, or a stored file
                missing or damaged (named) while ``skip_missed_entities`` is false.
        """
        if version_id is None and version_num is None:
            raise VersioningError("restore_version needs a version_id or a version_num")
        try:
            return self.local_versions().restore(project, version_id, version_num, skip_missed_entities)
        except sqlite3.Error as exc:
            raise VersioningError(f"{self.path}: cannot restore a version: {exc}") from exc

    def list_versions(self, project: Project, filters: list[dict[str, Any]] | None = None) -> list[VersionInfo]:
        """The versions of a local project, oldest first (filters as in the seed: ``field``,
        ``operator``, ``value`` over ``id``, ``version``, ``title``, ``description``, ``created_at``).

        Raises:
            ValueError: a malformed filter.
            VersioningError: not a local project, or the store cannot be read.
        """
        try:
            return self.local_versions().list(project, filters)
        except sqlite3.Error as exc:
            raise VersioningError(f"{self.path}: cannot read versions: {exc}") from exc

    def version_number(self, version_id: int) -> int | None:
        """The number (1, 2, ...) of a version id of this store, or ``None``."""
        try:
            return self.local_versions().version_number(version_id)
        except sqlite3.Error as exc:
            raise VersioningError(f"{self.path}: cannot read versions: {exc}") from exc

    # -- push bookkeeping ------------------------------------------------------------------------

    def iter_unpushed(self, dest: str) -> Iterator[tuple[Event, bool]]:
        """The stored events not yet pushed to ``dest``, in the order they were stored.

        Yields:
            ``(event, local)``: ``local`` is true when the event's task id was allocated by this store
            (it means nothing to a server that owns task ids, such as a Supervisely instance).
        """
        last = 0
        while True:
            with self._reading() as conn:
                rows = conn.execute(
                    "SELECT e.seq, e.body, t.origin FROM events e LEFT JOIN tasks t ON t.id = e.task_id "
                    "WHERE e.seq > ? AND NOT EXISTS "
                    "(SELECT 1 FROM pushed p WHERE p.dest = ? AND p.event_id = e.event_id) "
                    "ORDER BY e.seq LIMIT 1000",
                    (last, dest),
                ).fetchall()
            if not rows:
                return
            for seq, body, origin in rows:
                last = seq
                yield Event.model_validate_json(body), origin == "local"

    def mark_pushed(self, dest: str, event_ids: Sequence[str]) -> None:
        """Record that ``event_ids`` were handed to ``dest`` (``workflow-trace push``).

        Raises:
            BackendError: the store cannot be written.
        """
        if not event_ids:
            return
        now = utcnow().isoformat()
        with self._lock:
            conn = self._connection()
            try:
                with write_transaction(conn):
                    conn.executemany(
                        "INSERT OR IGNORE INTO pushed (dest, event_id, pushed_at) VALUES (?, ?, ?)",
                        [(dest, event_id, now) for event_id in event_ids],
                    )
            except sqlite3.Error as exc:
                raise BackendError(f"{self.path}: cannot record pushed events: {exc}") from exc

    def pushed_count(self, dest: str) -> int:
        """How many stored events were pushed to ``dest`` before."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pushed p JOIN events e ON e.event_id = p.event_id WHERE p.dest = ?",
                (dest,),
            ).fetchone()
        return int(row[0])

    # -- deriving rows ---------------------------------------------------------------------------

    @staticmethod
    def _insert_task(
        conn: sqlite3.Connection, task_id: int | None, name: str, origin: str, started_at: str
    ) -> int:
        cur = conn.execute(
            "INSERT OR IGNORE INTO tasks (id, name, origin, started_at, status, pid, host, command) "
            "VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
            (task_id, name, origin, started_at, os.getpid(), socket.gethostname(), _command_line()),
        )
        if task_id is None:
            assert cur.lastrowid is not None
            return cur.lastrowid
        return task_id

    def _resolve_task(self, conn: sqlite3.Connection, event: Event) -> int:
        """The task of an event; creates the row of a task id first seen here."""
        task_id = event.task_id
        if task_id is None:
            # No task id (another backend allocated none): the step's run, or its parent's, decides;
            # otherwise the run becomes a new local task.
            for run_id in (event.step.run_id, event.step.parent_run_id):
                if run_id is None:
                    continue
                row = conn.execute("SELECT task_id FROM steps WHERE run_id = ?", (run_id,)).fetchone()
                if row is not None and row[0] is not None:
                    return int(row[0])
            task_id = self._insert_task(conn, None, event.step.name, "local", event.time.isoformat())
            self._known_tasks.add(task_id)
            return task_id
        if task_id not in self._known_tasks:
            self._insert_task(conn, task_id, event.step.name, "external", event.time.isoformat())
            self._known_tasks.add(task_id)
        return task_id

    def _derive(self, conn: sqlite3.Connection, event: Event, task_id: int, time: str, seq: int) -> None:
        step = event.step
        if event.kind in ("step_started", "step_finished"):
            root = 1
            if step.parent_run_id is not None:
                parent = conn.execute(
                    "SELECT task_id FROM steps WHERE run_id = ?", (step.parent_run_id,)
                ).fetchone()
                root = int(parent is None or parent[0] != task_id)
            if event.kind == "step_started":
                conn.execute(
                    "INSERT INTO steps (run_id, task_id, name, parent_run_id, root, started_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
                    "started_at = excluded.started_at",
                    (step.run_id, task_id, step.name, step.parent_run_id, root, time),
                )
                # A child step stored before this one (its events were sent first) is not a root after all.
                adopted = conn.execute(
                    "UPDATE steps SET root = 0 WHERE parent_run_id = ? AND task_id = ? AND root = 1",
                    (step.run_id, task_id),
                ).rowcount
                if adopted:
                    self._update_task_status(conn, task_id)
                conn.execute(
                    "UPDATE tasks SET started_at = ? WHERE id = ? AND (started_at IS NULL OR started_at > ?)",
                    (time, task_id, time),
                )
            else:
                err = event.error
                conn.execute(
                    "INSERT INTO steps (run_id, task_id, name, parent_run_id, root, finished_at, status, "
                    "error_type, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (run_id) DO UPDATE SET finished_at = excluded.finished_at, "
                    "status = excluded.status, error_type = excluded.error_type, "
                    "error_message = excluded.error_message",
                    (
                        step.run_id, task_id, step.name, step.parent_run_id, root, time,
                        event.status or "ok", err.type if err else None, err.message if err else None,
                    ),
                )
            if root:
                self._update_task_status(conn, task_id)
        elif event.node is not None:
            node_id = self._node_id(conn, event.node)
            conn.execute(
                "INSERT INTO edges (event_seq, direction, task_id, run_id, node_id, meta, time) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    seq, event.kind, task_id, step.run_id, node_id,
                    json.dumps(event.meta) if event.meta else None, time,
                ),
            )
        node_settings = (event.meta or {}).get("customNodeSettings")
        if node_settings:
            # The main node's card: the last action wins (as on the instance).
            conn.execute(
                "UPDATE tasks SET node_meta = ?, node_meta_time = ? "
                "WHERE id = ? AND (node_meta_time IS NULL OR node_meta_time <= ?)",
                (json.dumps(node_settings), time, task_id, time),
            )

    @staticmethod
    def _update_task_status(conn: sqlite3.Connection, task_id: int) -> None:
        """A task is failed if a root step failed, running while one runs, else ok."""
        conn.execute(
            """UPDATE tasks SET
                status = CASE
                    WHEN EXISTS (SELECT 1 FROM steps WHERE task_id = :t AND root AND status = 'failed')
                        THEN 'failed'
                    WHEN EXISTS (SELECT 1 FROM steps WHERE task_id = :t AND root AND status = 'running')
                        THEN 'running'
                    ELSE 'ok' END,
                finished_at = CASE
                    WHEN EXISTS (SELECT 1 FROM steps WHERE task_id = :t AND root AND status = 'running')
                        THEN NULL
                    ELSE (SELECT max(finished_at) FROM steps WHERE task_id = :t AND root) END,
                error_type = (SELECT error_type FROM steps WHERE task_id = :t AND root
                              AND status = 'failed' ORDER BY finished_at LIMIT 1),
                error_message = (SELECT error_message FROM steps WHERE task_id = :t AND root
                                 AND status = 'failed' ORDER BY finished_at LIMIT 1)
            WHERE id = :t""",
            {"t": task_id},
        )

    def _node_id(self, conn: sqlite3.Connection, node: Node) -> int:
        identity, values = _identity(node)
        model_weight = int(bool(node.__dict__.get("model_weight")))
        cached = self._node_ids.get(identity)
        if cached is not None:
            node_id, known_weight = cached
            if model_weight and not known_weight:
                conn.execute("UPDATE nodes SET model_weight = 1 WHERE id = ?", (node_id,))
                self._node_ids[identity] = (node_id, 1)
            return node_id
        cur = conn.execute(
            "INSERT OR IGNORE INTO nodes (identity, kind, ref, ext_id, path, version_id, version_num, "
            "model_weight) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (identity, node.__dict__["kind"], node.ref, *values, model_weight),
        )
        if cur.rowcount == 1 and cur.lastrowid is not None:
            node_id = cur.lastrowid
        else:  # known to the file (another process, or before this connection): read it, mark it
            node_id = int(conn.execute("SELECT id FROM nodes WHERE identity = ?", (identity,)).fetchone()[0])
            if model_weight:
                conn.execute("UPDATE nodes SET model_weight = 1 WHERE id = ? AND model_weight = 0", (node_id,))
        self._node_ids[identity] = (node_id, model_weight)
        return node_id

    # -- reading ---------------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot (one read transaction) under the lock."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def tasks(self) -> list[TaskRow]:
        """Every task, by id."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT id, name, origin, started_at, finished_at, status, error_type, error_message, "
                "pid, host, command, node_meta FROM tasks ORDER BY id"
            ).fetchall()
        return [
            TaskRow(
                id=r[0], name=r[1], origin=r[2], started_at=_time(r[3]), finished_at=_time(r[4]),
                status=r[5], error_type=r[6], error_message=r[7], pid=r[8], host=r[9], command=r[10],
                node_meta=_json(r[11]),
            )
            for r in rows
        ]

    def steps(self) -> list[StepRow]:
        """Every step, by start time."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT run_id, task_id, name, parent_run_id, started_at, finished_at, status, error_type, "
                "error_message FROM steps ORDER BY started_at, run_id"
            ).fetchall()
        return [StepRow(r[0], r[1], r[2], r[3], _time(r[4]), _time(r[5]), r[6], r[7], r[8]) for r in rows]

    def edges(self) -> list[EdgeRow]:
        """Every recorded input and output, in the order they were stored."""
        with self._reading() as conn:
            node_rows = conn.execute(
                "SELECT id, kind, ext_id, path, version_id, version_num, model_weight FROM nodes"
            ).fetchall()
            edge_rows = conn.execute(
                "SELECT direction, task_id, run_id, node_id, meta, time FROM edges ORDER BY id"
            ).fetchall()
        nodes = {r[0]: _node_from_row(*r[1:]) for r in node_rows}
        return [
            EdgeRow(r[0], r[1], r[2], nodes[r[3]], _json(r[4]), datetime.fromisoformat(r[5]))
            for r in edge_rows
        ]

    def iter_events(self) -> Iterator[Event]:
        """Every stored event, in the order it was stored (for replaying the store elsewhere)."""
        last = 0
        while True:
            with self._reading() as conn:
                rows = conn.execute(
                    "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT 1000", (last,)
                ).fetchall()
            if not rows:
                return
            for seq, body in rows:
                last = seq
                yield Event.model_validate_json(body)

    def counts(self) -> dict[str, int]:
        """Row counts per table: ``events``, ``tasks``, ``steps``, ``nodes``, ``edges``."""
        with self._reading() as conn:
            return {
                table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("events", "tasks", "steps", "nodes", "edges")
            }
