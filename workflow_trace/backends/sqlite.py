"""The local lineage store: an embedded SQLite database, the default backend on a machine without a server.

Where it lives: ``SQLiteBackend(path)``; with no path, :func:`~workflow_trace._sqlite.default_store_path`
(``$WORKFLOW_TRACE_DB``, else the nearest ``.workflow_trace/`` from the current folder upwards — never
above the git work tree's root or the home directory — else ``./.workflow_trace/workflow.db``). Backend
strings: ``sqlite:///abs/path.db``, ``sqlite:relative/path.db``, ``sqlite:~/lineage.db`` and ``sqlite``.

How it writes: the call path never touches SQLite. Records are encoded as journal lines and appended to
this process's journal (:mod:`workflow_trace._journal`) with one ``os.write``; a writer thread stores them
with group commit. After a decorated call returns, a ``kill -9`` loses none of its events: the next
process that uses the store stores them (and readers show them at once, merged in memory).
``flush()`` means stored. Task ids are reserved in blocks by the writer, so a new local task costs no
I/O on the call path either.

What it keeps (schema version 4, ``PRAGMA user_version``; ``application_id`` ``WFTR``; each version
appends to :data:`MIGRATIONS`):

- ``events``: append-only, every event (``event_id`` UNIQUE: a replayed event is stored once).
- ``tasks``: id, name, origin (``local``: an id this store reserved; ``external``: from the environment
  or ``task_id=``), start/end, status (``failed`` when a root run failed, ``running`` while one runs, else
  ``ok``), the first failure, the number of runs, the process that first stored it, the main node's card.
- ``steps``: every run (explicit, nested or implicit step): task, name, parent, root flag, times, status,
  error, params.
- ``processes``: pid, host, start, command line (secret-looking values masked), working directory,
  Python version, git commit and dirty flag of the script's repository.
- ``nodes``: one row per identity (kind + id + path + project version); relative local paths are stored
  resolved against the directory they were recorded in (``recorded_path`` keeps them as written).
- ``edges``: one row per input/output event: direction, task, run, node, card, time, and for local
  inputs the size and modification time they had when read (``reproduce`` compares them).
- ``task_blocks``, ``journals``: reserved task ids; how far each journal is stored.
- ``version_projects``, ``versions``, ``version_files``: local project versions (:mod:`._versions`);
  ``pushed``: which events ``workflow-trace push`` handed to which destination.

Reading never writes: a file that is not a store, or a newer one, is refused (the file untouched); an
older store is migrated in a memory copy until a writer migrates the file itself.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sqlite3
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from .._codeversion import code_version
from .._context import at_exit, at_fork, contained, describe, logger, mask_argv, warn
from .._errors import BackendError, VersioningError, WorkflowTraceError
from .._events import (
    FINISHED,
    INPUT,
    KINDS,
    OUTPUT,
    STARTED,
    TASK,
    Event,
    Record,
    decode_line,
    encode_events,
    encode_records,
    event_id,
    iso,
)
from .._journal import Checkpoint, JournalWriter, Orphan, find_orphans, journal_dir, read_lines
from .._nodes import Node, Project, key_node
from .._protocols import VersionInfo
from .._sqlite import (
    STORE_APP_ID,
    NotAStoreError,
    connect,
    default_store_path,
    inspect,
    memory_copy,
    open_readonly,
    tables,
    write_transaction,
)
from .._versions import MIGRATION as _VERSIONS_MIGRATION
from .._versions import LocalVersions

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "EdgeRow",
    "RunRow",
    "SQLiteBackend",
    "StepRow",
    "StoreNotFoundError",
    "TaskRow",
    "default_store_path",
]

#: Seconds a writer waits for another process's write transaction before giving up (and retrying).
BUSY_TIMEOUT = 30.0
#: Task ids reserved per block: the first block (one process with one task, a script, takes one id, so
#: ids stay dense across processes), and the most (later blocks grow fourfold; one is kept reserved ahead).
FIRST_BLOCK = 1
MAX_BLOCK = 1024
#: WAL pages after which the writer's commit checkpoints the store (SQLite's default: 1,000).
CHECKPOINT_PAGES = 4000

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
    # 4: runs with params, processes (code version), journals, reserved task ids, local-read fingerprints.
    (
        "ALTER TABLE tasks ADD COLUMN process_id INTEGER",
        "ALTER TABLE tasks ADD COLUMN runs INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN running_roots INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN failed_roots INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE steps ADD COLUMN params TEXT",
        "ALTER TABLE edges ADD COLUMN cwd TEXT",
        "ALTER TABLE edges ADD COLUMN stat TEXT",
        "ALTER TABLE nodes ADD COLUMN recorded_path TEXT",
        """CREATE TABLE processes (
            id INTEGER PRIMARY KEY,
            owner TEXT NOT NULL UNIQUE,
            pid INTEGER,
            host TEXT,
            started_at TEXT,
            command TEXT,
            cwd TEXT,
            python TEXT,
            git_commit TEXT,
            git_dirty INTEGER,
            git_root TEXT
        )""",
        """CREATE TABLE task_blocks (
            first INTEGER NOT NULL,
            last INTEGER NOT NULL,
            owner TEXT NOT NULL,
            reserved_at TEXT NOT NULL
        )""",
        """CREATE TABLE journals (
            owner TEXT NOT NULL,
            segment INTEGER NOT NULL,
            offset INTEGER NOT NULL,
            PRIMARY KEY (owner, segment)
        ) WITHOUT ROWID""",
        "UPDATE nodes SET recorded_path = path",
        """UPDATE tasks SET
            runs = (SELECT count(*) FROM steps WHERE steps.task_id = tasks.id),
            running_roots = (SELECT count(*) FROM steps WHERE steps.task_id = tasks.id AND root
                             AND status = 'running'),
            failed_roots = (SELECT count(*) FROM steps WHERE steps.task_id = tasks.id AND root
                            AND status = 'failed')""",
        f"PRAGMA application_id = {STORE_APP_ID}",
    ),
)

#: The schema version this code writes and reads.
SCHEMA_VERSION = len(MIGRATIONS)

_REQUIRED_TABLES = {"events", "tasks", "steps", "nodes", "edges"}
_OUR_TABLES = _REQUIRED_TABLES | {
    "sqlite_sequence", "version_projects", "versions", "version_files", "pushed", "processes", "task_blocks",
    "journals",
}


class StoreNotFoundError(WorkflowTraceError, FileNotFoundError):
    """The store file to read does not exist."""


def _not_a_store(path: Path | str) -> NotAStoreError:
    return NotAStoreError(f"{path} is an SQLite file but not a workflow_trace store")


def _newer(path: Path | str, version: int) -> NotAStoreError:
    return NotAStoreError(f"{path} has schema version {version}, newer than this workflow_trace understands "
                          f"({SCHEMA_VERSION}); upgrade workflow_trace")


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
    runs: int = 0
    git_commit: Optional[str] = None
    git_dirty: Optional[bool] = None
    python: Optional[str] = None
    cwd: Optional[str] = None


@dataclass(frozen=True)
class RunRow:
    """One run (step) of a task."""

    run_id: str
    task_id: Optional[int]
    name: str
    parent_run_id: Optional[str]
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    status: str
    error_type: Optional[str]
    error_message: Optional[str]
    params: Optional[dict[str, Any]] = None


StepRow = RunRow


@dataclass(frozen=True)
class EdgeRow:
    """One recorded input or output: ``direction`` is ``input`` (node -> task) or ``output``.

    ``node`` has its path resolved against ``cwd`` when it was recorded relative; ``key`` is the node's
    ``ref``, or ``app:TASK`` for an app session (the offline session of the task: one per task); ``stat`` is
    what a local input looked like when read (``{"size", "mtime"}``, folders also ``"files"``), else ``None``.
    """

    direction: str
    task_id: Optional[int]
    run_id: str
    node: Node
    key: str
    meta: Optional[dict[str, Any]]
    time: datetime
    cwd: Optional[str] = None
    stat: Optional[dict[str, Any]] = None
    recorded_path: Optional[str] = None


def _path_from_url(spec: str) -> Path | None:
    scheme, sep, rest = spec.strip().partition(":")
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


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _json(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None


def _resolve(path: str, cwd: str | None) -> str:
    """A recorded path as an absolute one: relative paths against the directory they were recorded in."""
    if cwd is None or os.path.isabs(path) or path.startswith("/"):
        return path
    return os.path.normpath(os.path.join(cwd, path))


def fingerprint(path: str) -> dict[str, Any] | None:
    """Size and modification time of a local file, or of a folder's files (count, total, newest); ``None``
    when there is nothing at ``path``."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not os.path.isdir(path):
        return {"size": st.st_size, "mtime": st.st_mtime_ns}
    files = size = 0
    newest = st.st_mtime_ns
    for root, _dirs, names in os.walk(path):
        if files > 100_000:  # a huge folder: what was counted so far says enough
            return {"files": files, "size": size, "mtime": newest, "partial": True}
        for name in names:
            try:
                fst = os.stat(os.path.join(root, name))
            except OSError:
                continue
            files += 1
            size += fst.st_size
            newest = max(newest, fst.st_mtime_ns)
    return {"files": files, "size": size, "mtime": newest}


def check_store_file(path: Path) -> None:
    """Refuse a file this version cannot read, without changing it (not even creating ``-wal``/``-shm``).

    The header says what the file is; while a ``-wal`` file exists (the store is in use) its newest
    header may still be in the WAL, so SQLite is asked instead, read-only.

    Raises:
        StoreNotFoundError: there is no file.
        NotAStoreError: not SQLite, not a workflow_trace store, a newer store, or an unreadable one.
    """
    if not path.exists():
        raise StoreNotFoundError(
            f"no lineage store at {path} (run a pipeline first, or pass --db / set WORKFLOW_TRACE_DB)"
        )
    if path.is_dir():
        raise NotAStoreError(f"{path} is a directory, not a lineage store")
    try:
        info = inspect(path)
    except OSError as exc:
        raise NotAStoreError(f"cannot read {path}: {exc.strerror or exc}") from None
    user_version, app_id = info.user_version, info.application_id
    if app_id not in (0, STORE_APP_ID):  # another application's (or our spool's) file: not even opened
        raise _not_a_store(path)
    live = info.wal and path.with_name(path.name + "-wal").exists()
    found: set[str] | None = None
    if live or app_id == 0:
        try:
            with closing(open_readonly(path, immutable=not live)) as conn:
                if live:
                    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
                    app_id = conn.execute("PRAGMA application_id").fetchone()[0] & 0xFFFFFFFF
                found = tables(conn)
        except sqlite3.DatabaseError as exc:
            raise NotAStoreError(f"{path} is not a usable lineage store: {exc}") from None
    if user_version > SCHEMA_VERSION:
        raise _newer(path, user_version)
    if app_id not in (0, STORE_APP_ID) or user_version < 1 or (found is not None and not _REQUIRED_TABLES <= found):
        raise _not_a_store(path)


def migrate(conn: sqlite3.Connection, path: Path | str) -> None:
    """Bring a store (or an empty file) to :data:`SCHEMA_VERSION`, in one write transaction.

    Raises:
        NotAStoreError: a newer store, or an SQLite file with tables of another application.
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    with write_transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise _newer(path, version)
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if version < 0 or (version == 0 and tables(conn) - _OUR_TABLES) or app_id not in (0, STORE_APP_ID):
            raise _not_a_store(path)
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    # The header (schema version, application id) into the main file, where readers look first.
    with contained("checkpointing the store after a migration", allow_raise=False):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


#: A task's row, with the pid, host and command of the process that stored it first (``task_id, name, origin,
#: started_at, process_id, process_id``).
_INSERT_TASK = (
    "INSERT OR IGNORE INTO tasks (id, name, origin, started_at, status, process_id, pid, host, command) "
    "SELECT ?, ?, ?, ?, 'running', ?, p.pid, p.host, p.command FROM (SELECT 1) LEFT JOIN processes p ON p.id = ?"
)
#: What one batch changes in a task: the lists of ``_Batch.deltas``, the named parameters of :data:`_UPDATE_TASK`.
_DELTA = ("runs", "running", "failed", "started", "finished", "err_type", "err_message")

#: Adds a batch's changes (:data:`_DELTA`) to a task's counts, times and status.
_UPDATE_TASK = """UPDATE tasks SET
        runs = runs + :runs,
        running_roots = max(0, running_roots + :running),
        failed_roots = max(0, failed_roots + :failed),
        started_at = CASE WHEN :started IS NOT NULL AND (started_at IS NULL OR started_at > :started)
                          THEN :started ELSE started_at END,
        finished_at = CASE WHEN running_roots + :running > 0 THEN NULL
                           WHEN :finished IS NULL THEN finished_at
                           WHEN finished_at IS NULL OR finished_at < :finished THEN :finished
                           ELSE finished_at END,
        status = CASE WHEN failed_roots + :failed > 0 THEN 'failed'
                      WHEN running_roots + :running > 0 THEN 'running' ELSE 'ok' END,
        error_type = CASE WHEN failed_roots + :failed <= 0 THEN NULL
                          ELSE coalesce(error_type, :err_type) END,
        error_message = CASE WHEN failed_roots + :failed <= 0 THEN NULL
                             ELSE coalesce(error_message, :err_message) END
    WHERE id = :task"""

#: Values bound to one statement at most (SQLite's limit before 3.32).
_MAX_VALUES = 999


def _insert(conn: sqlite3.Connection, insert: str, rows: Sequence[Sequence[Any]]) -> None:
    """``insert`` (``INSERT INTO table (columns)``) of ``rows``, many rows per statement: SQLite runs each
    statement with the GIL let go, and with a statement per row the writer thread let it go per row and got
    it back only at the recording thread's next switch interval (it stored almost nothing while calls ran)."""
    if not rows:
        return
    one = "(" + ",".join("?" * len(rows[0])) + ")"
    per = _MAX_VALUES // len(rows[0])
    for i in range(0, len(rows), per):
        chunk = rows[i : i + per]
        conn.execute(f"{insert} VALUES {','.join([one] * len(chunk))}", [v for row in chunk for v in row])


class _Batch:
    """The rows of one ingest, written with a few statements per table (new tasks first)."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.ids: set[str] = set()
        self.tasks: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.steps: list[Sequence[Any]] = []
        self.restarts: list[tuple[str, str]] = []
        self.finishes: list[tuple[Any, ...]] = []
        self.edges: list[tuple[Any, ...]] = []
        self.cards: list[tuple[Any, ...]] = []
        self.started: list[str] = []
        self.maybe_known: set[str] = set()
        self.open: dict[str, list[Any]] = {}  # run id -> its row in steps, for runs started in this batch
        self.deltas: dict[int, list[Any]] = {}  # task id -> its changes (see _DELTA)

    def delta(self, task_id: int, started: str | None = None) -> list[Any]:
        return self.deltas.setdefault(task_id, [0, 0, 0, started, None, None, None])

    def write_tasks(self, conn: sqlite3.Connection) -> None:
        conn.executemany(_INSERT_TASK, self.tasks)
        self.tasks.clear()

    def write(self, conn: sqlite3.Connection) -> None:
        self.write_tasks(conn)
        _insert(conn, "INSERT INTO events (seq, event_id, kind, time, task_id, run_id, body)", self.events)
        _insert(conn, "INSERT OR IGNORE INTO steps (run_id, task_id, name, parent_run_id, root, started_at, params, "
                "finished_at, status, error_type, error_message)", self.steps)
        _insert(conn, "INSERT INTO edges (event_seq, direction, task_id, run_id, node_id, meta, time, cwd, stat)",
                self.edges)
        for sql, rows in (
            ("UPDATE steps SET started_at = ? WHERE run_id = ?", self.restarts),
            ("UPDATE steps SET finished_at = ?, status = ?, error_type = ?, error_message = ?, "
             "params = coalesce(?, params) WHERE run_id = ?", self.finishes),
            # The main node's card: the last action wins (as on the instance).
            ("UPDATE tasks SET node_meta = ?, node_meta_time = ? "
             "WHERE id = ? AND (node_meta_time IS NULL OR node_meta_time <= ?)", self.cards),
        ):
            conn.executemany(sql, rows)


_json_value = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _identity(key: tuple[Any, ...]) -> str:
    """A node's identity: the JSON of its key (``json.dumps(list(key), separators=(",", ":"),
    ensure_ascii=False)``), written part by part (twice as fast: a new node's identity is made per line)."""
    return "[" + ",".join(["null" if v is None else str(v) if type(v) is int else _json_value(v) for v in key]) + "]"


def _parse_lines(lines: list[bytes], where: Path) -> list[tuple[str, list[Any]]]:
    """``(text, row)`` per journal line: one JSON parse for the batch, line by line only if one is bad."""
    texts = [line.decode("utf-8", "replace") for line in lines]
    try:
        rows = json.loads("[" + ",".join(texts) + "]")
        if all(isinstance(r, list) and len(r) >= 7 for r in rows):
            return list(zip(texts, rows, strict=True))
    except ValueError:
        pass
    out = []
    for text in texts:
        try:
            row = json.loads(text)
        except ValueError:
            row = None
        if isinstance(row, list) and len(row) >= 7:
            out.append((text, row))
        else:
            warn(("store", "bad line"), "%s: skipped a journal line that cannot be read", where)
    return out


_LIVE: weakref.WeakValueDictionary[int, SQLiteBackend] = weakref.WeakValueDictionary()


def flush_writers(path: Path, timeout: float = 30.0) -> None:
    """Store what this process's backends have journaled for ``path`` (readers see their own writes)."""
    for backend in list(_LIVE.values()):
        if backend.path == path:
            backend.flush(timeout)


def _open_store(path: Path) -> sqlite3.Connection:
    """A connection that writes the store, migrated first (the file is created when missing)."""
    conn = connect(path, BUSY_TIMEOUT)
    try:
        migrate(conn, path)
        # Checkpoints (pages copied into the file, two fsyncs) every 16 MB of WAL, not every 4 MB: a page
        # changed again meanwhile is copied once. Commits are as durable as before.
        conn.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
    except BaseException:
        conn.close()
        raise
    return conn


def _top_task_id(conn: sqlite3.Connection) -> int:
    """The highest task id stored, reserved, or handed out by AUTOINCREMENT."""
    return int(conn.execute(
        "SELECT max((SELECT coalesce(max(id), 0) FROM tasks), (SELECT coalesce(max(last), 0) FROM task_blocks), "
        "(SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'tasks'))"
    ).fetchone()[0])


class _Ingest:
    """The writer thread's side of one store: its connection and caches (used by that thread only)."""

    def __init__(self, backend: SQLiteBackend) -> None:
        self.backend = backend
        self.conn: sqlite3.Connection | None = None
        self.nodes: dict[tuple[Any, ...], tuple[int, int]] = {}
        self.runs: dict[str, tuple[int | None, bool]] = {}
        self.tasks: set[int] = set()
        self.processes: dict[str, int] = {}
        self.fingerprints: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self.own_code_done = False

    def connection(self) -> sqlite3.Connection:
        if self.conn is None:
            path = self.backend.path
            if path.is_dir():
                raise BackendError(f"{path} is a directory, not a lineage store")
            if path.is_file() and path.stat().st_size > 0:
                info = inspect(path)
                if info.application_id not in (0, STORE_APP_ID) or info.user_version > SCHEMA_VERSION:
                    check_store_file(path)  # raises, naming what the file is
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = _open_store(path)
        return self.conn

    def forget(self) -> None:
        """Caches may name rows of a rolled-back transaction: start afresh."""
        for cache in (self.nodes, self.runs, self.tasks, self.processes):
            cache.clear()

    # -- journals ---------------------------------------------------------------------------------

    def ingest(self, conn: sqlite3.Connection, lines: list[bytes], header: dict[str, Any], own: bool) -> None:
        """Store journal lines (call inside a write transaction): one parse per batch, a few statements per table.

        Lines of this process's (or a dead process's) journal are stored exactly once (the journal position
        is stored in the same transaction), so they are inserted without a look-up; a replayed event (its
        own id, from ``emit``/``push``) is checked first and stored once.
        """
        prefix = str(header.get("prefix") or "")
        process_id = self._process(conn, header, own)
        rows = _parse_lines(lines, self.backend.path)
        batch = _Batch(int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]))
        self._resolve_nodes(conn, [row for _raw, row in rows if not isinstance(row[1], str)])  # not replayed
        for raw, row in rows:
            kind, ident, timestamp, task_id, run_id = row[0], row[1], row[2], row[3], row[4]
            when = iso(timestamp)
            if kind == TASK:  # a local task id was allocated: its row, before any of its events
                batch.tasks.append((int(task_id), row[5], "local", when, process_id, process_id))
                self.tasks.add(int(task_id))
                continue
            eid = ident if isinstance(ident, str) else event_id(prefix, ident)
            if isinstance(ident, str) and (eid in batch.ids or conn.execute(
                "SELECT 1 FROM events WHERE event_id = ?", (eid,)
            ).fetchone()):
                continue  # a replayed event: stored once
            batch.ids.add(eid)
            task_id = self._task(conn, task_id, row, when, process_id, batch)
            batch.seq += 1
            batch.events.append((batch.seq, eid, KINDS[kind], when, task_id, run_id, raw))
            if kind == STARTED:
                self._started(conn, row, task_id, when, batch)
            elif kind == FINISHED:
                self._finished(conn, row, task_id, when, batch)
            else:
                self._edge(conn, row, kind, task_id, when, own, batch)
        batch.write(conn)
        self._adopt(conn, batch)
        conn.executemany(_UPDATE_TASK, [{"task": task, **dict(zip(_DELTA, delta, strict=True))}
                                        for task, delta in batch.deltas.items()])

    def _process(self, conn: sqlite3.Connection, header: dict[str, Any], own: bool) -> int | None:
        owner = header.get("owner")
        if not isinstance(owner, str):
            return None
        process_id = self.processes.get(owner)
        if process_id is None:
            argv = [str(a) for a in header.get("command") or header.get("argv") or []]
            started = header.get("started")
            conn.execute(
                "INSERT OR IGNORE INTO processes (owner, pid, host, started_at, command, cwd, python)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    owner, header.get("pid"), header.get("host"),
                    iso(started) if isinstance(started, (int, float)) else None,
                    shlex.join(mask_argv(argv))[:2000] if argv else None, header.get("cwd"), header.get("python"),
                ),
            )
            row = conn.execute("SELECT id FROM processes WHERE owner = ?", (owner,)).fetchone()
            process_id = self.processes[owner] = int(row[0])
        if own and not self.own_code_done:
            # This process's own code version, read once (only the writer thread does it, never the call path).
            self.own_code_done = True
            version = code_version(str((header.get("argv") or [""])[0]), header.get("cwd"))
            conn.execute(
                "UPDATE processes SET git_commit = ?, git_dirty = ?, git_root = ? WHERE id = ?",
                (version.git_commit, None if version.git_dirty is None else int(version.git_dirty),
                 version.git_root, process_id),
            )
        return process_id

    def _task(self, conn: sqlite3.Connection, task_id: Any, row: list[Any], when: str, process_id: int | None,
              batch: _Batch) -> int | None:
        if task_id is None:
            # No task id (a backend that owns none allocated it): the run, or its parent, decides.
            for run_id in (row[4], row[6]):
                known = None if run_id is None else self._run(conn, run_id)
                if known is not None and known[0] is not None:
                    return int(known[0])
            batch.write_tasks(conn)  # the ids of earlier lines first: SQLite picks this one above them
            tid = int(conn.execute(_INSERT_TASK, (None, row[5], "local", when, process_id, process_id)).lastrowid or 0)
            self.tasks.add(tid)
            self.runs[row[4]] = (tid, True)
            return tid
        tid = int(task_id)
        if tid not in self.tasks:
            if conn.execute("SELECT 1 FROM tasks WHERE id = ?", (tid,)).fetchone() is None:
                local = conn.execute("SELECT 1 FROM task_blocks WHERE ? BETWEEN first AND last", (tid,)).fetchone()
                batch.tasks.append((tid, row[5], "external" if local is None else "local", when, process_id,
                                    process_id))
            self.tasks.add(tid)
        return tid

    def _run(self, conn: sqlite3.Connection, run_id: str) -> tuple[int | None, bool] | None:
        """``(task id, root)`` of a run started before (this batch or stored), else ``None``."""
        known = self.runs.get(run_id)
        if known is None:
            found = conn.execute("SELECT task_id, root FROM steps WHERE run_id = ?", (run_id,)).fetchone()
            known = None if found is None else (found[0], bool(found[1]))
        return known

    def _root(self, conn: sqlite3.Connection, parent: str | None, task_id: int | None) -> bool:
        known = None if parent is None else self._run(conn, parent)
        return known is None or known[0] != task_id

    def _started(self, conn: sqlite3.Connection, row: list[Any], task_id: int | None, when: str,
                 batch: _Batch) -> None:
        run_id, name, parent, params = row[4], row[5], row[6], row[7]
        root = self._root(conn, parent, task_id)
        if len(self.runs) > 100_000:
            self.runs.clear()
        if run_id in batch.maybe_known:  # its end came first in this batch (a replay out of order)
            batch.restarts.append((when, run_id))
            return
        self.runs[run_id] = (task_id, root)
        step = [run_id, task_id, name, parent, int(root), when, None if params is None else json.dumps(params),
                None, "running", None, None]
        batch.steps.append(step)
        batch.open[run_id] = step  # its end, if in this batch too, goes into this row (no UPDATE)
        batch.started.append(run_id)
        if task_id is None:
            return
        delta = batch.delta(task_id, when)
        delta[0] += 1
        if root:
            delta[1] += 1
            delta[3] = min(delta[3], when) if delta[3] else when

    def _adopt(self, conn: sqlite3.Connection, batch: _Batch) -> None:
        """A child run stored before its parent (another process's journal) is not a root after all."""
        for i in range(0, len(batch.started), 500):
            chunk = batch.started[i : i + 500]
            # by parent_run_id alone: with (task_id, root) too the planner picks the task index and scans
            # the task's every run (quadratic for a loader with 10,000 runs)
            found = conn.execute(
                f"SELECT s.run_id, s.status, s.task_id, s.root, p.task_id FROM steps s JOIN steps p "
                f"ON p.run_id = s.parent_run_id WHERE s.parent_run_id IN ({','.join('?' * len(chunk))})", chunk,
            ).fetchall()
            for child, status, child_task, child_root, parent_task in found:
                if not child_root or child_task != parent_task or child_task is None:
                    continue
                conn.execute("UPDATE steps SET root = 0 WHERE run_id = ?", (child,))
                self.runs[child] = (child_task, False)
                delta = batch.delta(child_task)
                delta[1] -= status == "running"
                delta[2] -= status == "failed"

    def _finished(self, conn: sqlite3.Connection, row: list[Any], task_id: int | None, when: str,
                  batch: _Batch) -> None:
        run_id, name, parent = row[4], row[5], row[6]
        status, err_type, err_message, params = row[7], row[8], row[9], row[10]
        params_json = None if params is None else json.dumps(params)
        step = batch.open.pop(run_id, None)
        known = self.runs.pop(run_id, None)
        was_running = True
        if step is not None:  # started in this batch: its row gets the end
            step[6:11] = [params_json or step[6], when, status, err_type, err_message]
            root = bool(step[4])
        elif known is not None:
            root = known[1]
        else:
            found = conn.execute("SELECT root, status FROM steps WHERE run_id = ?", (run_id,)).fetchone()
            if found is None:  # its start was never stored (another journal, or lost): the run ends here
                root, was_running = self._root(conn, parent, task_id), False
                batch.steps.append((run_id, task_id, name, parent, int(root), None, params_json, None, "running",
                                    None, None))
                batch.maybe_known.add(run_id)
                if task_id is not None:
                    batch.delta(task_id)[0] += 1
            else:
                root, was_running = bool(found[0]), found[1] == "running"
        if step is None:
            batch.finishes.append((when, status, err_type, err_message, params_json, run_id))
        if task_id is None or not root:
            return
        delta = batch.delta(task_id)
        if was_running:
            delta[1] -= 1
        if status == "failed":
            delta[2] += 1
            if delta[5] is None:
                delta[5], delta[6] = err_type, err_message
        delta[4] = max(delta[4], when) if delta[4] else when

    def _edge(self, conn: sqlite3.Connection, row: list[Any], kind: int, task_id: int | None, when: str,
              own: bool, batch: _Batch) -> None:
        found = row[10] if len(row) > 10 else self._node_key(row)
        if found is None:
            return
        key, fields, path = found
        if key not in self.nodes:  # not resolved with its batch (a replayed event, or the cache was cleared)
            self._resolve_nodes(conn, [row])
        node_id, known_weight = self.nodes[key]
        if fields.get("model_weight") and not known_weight:  # this line raises the node's model-weight flag
            conn.execute("UPDATE nodes SET model_weight = 1 WHERE id = ?", (node_id,))
            self.nodes[key] = (node_id, 1)
        meta, cwd = row[8], row[9]
        stat = None
        if own and kind == INPUT and path is not None and fields["kind"] in ("file", "folder", "project"):
            stat = self._fingerprint(path)
        batch.edges.append((batch.seq, KINDS[kind], task_id, row[4], node_id, json.dumps(meta) if meta else None,
                            when, cwd, None if stat is None else json.dumps(stat)))
        node_settings = meta.get("customNodeSettings") if isinstance(meta, dict) else None
        if node_settings and task_id is not None:
            batch.cards.append((json.dumps(node_settings), when, task_id, when))

    def _fingerprint(self, path: str) -> dict[str, Any] | None:
        now = time.monotonic()
        cached = self.fingerprints.get(path)
        if cached is not None and now - cached[0] < 2.0:
            return cached[1]
        value = fingerprint(path)
        if len(self.fingerprints) > 10_000:
            self.fingerprints.clear()
        self.fingerprints[path] = (now, value)
        return value

    @staticmethod
    def _node_key(row: list[Any]) -> tuple[tuple[Any, ...], dict[str, Any], str | None] | None:
        """``(key, fields, resolved path)`` of an input/output line's node, ``None`` for a line without one."""
        fields, cwd = row[7], row[9]
        if not isinstance(fields, dict) or "kind" not in fields:
            return None
        recorded = fields.get("path")
        path = None if recorded is None else _resolve(str(recorded), cwd)
        key = (fields["kind"], fields.get("id"), path, fields.get("version_id"), fields.get("version_num"))
        return key, fields, path

    def _resolve_nodes(self, conn: sqlite3.Connection, rows: list[list[Any]]) -> None:
        """Put the node id of every input/output of ``rows`` in the cache: the nodes known to the file are
        looked up, the new ones inserted, a few statements for the whole batch (not one per node)."""
        new: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        nodes = self.nodes
        for row in rows:
            if row[0] != INPUT and row[0] != OUTPUT:
                continue
            found = self._node_key(row)
            row.append(found)  # row[10]: read back by _edge (the key is made once per line)
            if found is None or found[0] in nodes or found[0] in new:
                continue
            key, fields, path = found
            kind, ext_id, _path, version_id, version_num = key
            ident = ext_id if ext_id is not None else path
            ref = kind if ident is None else f"{kind}:{ident}"
            if kind == "project" and ext_id is None and path is None:
                ref = f"project:version-{version_id}"
            new[key] = (_identity(key), kind, ref, ext_id, path, version_id, version_num,
                        int(bool(fields.get("model_weight"))), fields.get("path"))
        if not new:
            return
        if len(nodes) + len(new) > 100_000:
            nodes.clear()
        identities = [v[0] for v in new.values()]
        known: dict[str, tuple[int, int]] = {}
        for i in range(0, len(identities), 500):
            chunk = identities[i : i + 500]
            for identity, node_id, weight in conn.execute(
                f"SELECT identity, id, model_weight FROM nodes WHERE identity IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall():
                known[identity] = (int(node_id), int(weight))
        next_id = int(conn.execute("SELECT coalesce(max(id), 0) FROM nodes").fetchone()[0])
        insert = []
        for key, v in new.items():
            if v[0] not in known:
                next_id += 1
                known[v[0]] = (next_id, v[7])
                insert.append((next_id, *v))
            nodes[key] = known[v[0]]
        _insert(conn, "INSERT INTO nodes (id, identity, kind, ref, ext_id, path, version_id, version_num, "
                "model_weight, recorded_path)", insert)


class SQLiteBackend:
    """Records events in a local SQLite file and reads them back for the graph (see the module docstring).

    Args:
        path: The store file. ``None``: the default store (``$WORKFLOW_TRACE_DB`` or the nearest
            ``.workflow_trace/``). Relative paths are resolved against the working directory now.

    Nothing touches the disk until the first record or read.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path: Path = default_store_path() if path is None else Path(os.path.abspath(os.fspath(path)))
        self._fresh()
        self._writer = JournalWriter(
            journal_dir(self.path), functools.partial(self._store, own=True), self._recover,
            header={"kind": "store"}, name=f"the local store {self.path}",
        )
        self._readonly = False  # opened for reading (never writes, not even a new empty store)
        at_fork(self._fresh)
        at_exit(self._release_at_exit, order=55)
        _LIVE[id(self)] = self

    def _fresh(self) -> None:
        """A new writer state and no task ids (at start, and in a forked child: the parent's ids are the parent's)."""
        self._state = _Ingest(self)
        self._free_ids: list[int] = []
        self._block = FIRST_BLOCK
        self._allocated = 0  # ahead-of-time reservation starts with the second task (one-task scripts: no gaps)
        self._reserving = False

    @classmethod
    def from_url(cls, spec: str) -> SQLiteBackend:
        """Build from ``sqlite:///abs/path.db``, ``sqlite:relative.db`` or ``sqlite`` (the default path).

        Raises:
            ValueError: a string that is not one of those forms.
        """
        return cls(_path_from_url(spec))

    @classmethod
    def open_existing(cls, path: str | os.PathLike[str] | None = None) -> SQLiteBackend:
        """A store that must already exist, checked for reading (the file is not changed).

        Raises:
            StoreNotFoundError: there is no file at ``path``.
            NotAStoreError: (a ``BackendError``) not a workflow_trace store, or a newer one.
        """
        backend = cls(path)
        check_store_file(backend.path)
        backend._readonly = True
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

    # -- writing (the call path: encode and append, nothing else) ----------------------------------

    def write_records(self, records: list[Record]) -> None:
        """Journal records (the built-in fast path; see the module docstring).

        Raises:
            BackendError: the journal cannot be written (the caller contains it; flush() says False).
        """
        self._append(encode_records(records), len(records))

    def _append(self, data: bytes, count: int) -> None:
        try:
            self._writer.append(data, count)
        except OSError as exc:
            raise BackendError(f"cannot record {count} event(s) in {self._writer.directory}: "
                               f"{exc.strerror or exc}") from None

    def emit(self, events: Sequence[Event]) -> None:
        """Store public events (a replay, ``push``, a third-party caller) before returning; events already
        stored (same ``event_id``) are skipped. The call path does not come here (it uses the journal).

        Raises:
            BackendError: the store cannot be written (the events stay in the journal and are stored later).
        """
        if not events:
            return
        self._append(encode_events(list(events)), len(events))
        if not self._writer.flush(BUSY_TIMEOUT):
            raise BackendError(f"{self.path}: cannot store events yet ({self._writer.last_error or 'timeout'}); "
                               "they are kept in the journal")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far is stored; ``False`` on timeout or a store that fails."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        """Store what is left (within the exit timeout), stop the writer, close its connection."""
        self._release_at_exit()
        self._writer.close(time.monotonic() + 30.0)
        conn, self._state.conn = self._state.conn, None
        if conn is not None:
            with contained("closing the store", allow_raise=False):
                conn.close()

    # -- task ids -----------------------------------------------------------------------------------

    def new_task_id(self, name: str) -> int:
        """A new local task id from a block the writer thread reserved in the store.

        The caller waits only for the first id of a process, and for the second (a process with one task
        reserves one id, so ids stay dense across processes running at once); from then on the writer
        keeps a block reserved ahead, so the call path never waits for SQLite.

        Raises:
            BackendError: no block can be reserved (the store cannot be opened or written).
        """
        free = self._free_ids
        try:
            task_id = free.pop()
        except IndexError:
            try:
                self._writer.call(self._reserve, BUSY_TIMEOUT + 5.0)
            except (sqlite3.Error, OSError, TimeoutError, BackendError) as exc:
                raise BackendError(f"cannot reserve task ids in {self.path}: {describe(exc)}") from None
            task_id = free.pop()
        self._allocated += 1
        if self._allocated > 1 and len(free) < self._block and not self._reserving:
            self._reserving = True
            self._writer.call_soon(self._reserve)
        # The task's row (name, start, process) is stored with the allocation, before any of its events.
        self._writer.append(f"[{TASK},0,{time.time()!r},{task_id},null,{json.dumps(name)},null]\n".encode(), 0)
        return task_id

    def _reserve(self) -> None:
        """Reserve the next block of task ids (in the writer thread); blocks grow fourfold, up to
        :data:`MAX_BLOCK`."""
        try:
            conn = self._state.connection()
            with write_transaction(conn):
                first = _top_task_id(conn) + 1
                last = first + self._block - 1
                conn.execute(
                    "INSERT INTO task_blocks (first, last, owner, reserved_at) VALUES (?, ?, ?, datetime('now'))",
                    (first, last, self._writer.owner),
                )
                if not conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'tasks'", (last,)).rowcount:
                    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('tasks', ?)", (last,))
            self._free_ids[:0] = range(last, first - 1, -1)  # popped from the end: lowest first
            self._block = min(self._block * 4, MAX_BLOCK)
        finally:
            self._reserving = False

    def _release_unused(self) -> None:
        """Give back the reserved ids this process did not use, when nobody reserved after them (in the
        writer thread, at close, once its journal is stored): runs one after the other keep dense ids."""
        free, conn = set(self._free_ids), self._state.conn
        self._free_ids.clear()
        if not free or conn is None:
            return
        high = low = max(free)
        while low - 1 in free:  # only the run of our ids at the top: the blocks below may hold others'
            low -= 1
        with write_transaction(conn):
            if _top_task_id(conn) != high or conn.execute("SELECT 1 FROM tasks WHERE id >= ?", (low,)).fetchone():
                return
            conn.execute("UPDATE task_blocks SET last = ? WHERE last >= ?", (low - 1, low))
            conn.execute("DELETE FROM task_blocks WHERE first > last")
            conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'tasks'", (low - 1,))

    def _release_at_exit(self) -> None:
        if self._free_ids and self._writer.owner:
            with contained("giving back unused task ids", allow_raise=False):
                self._writer.call(self._release_unused, 5.0, after_stored=True)

    # -- the writer thread ----------------------------------------------------------------------------

    def _store(self, lines: list[bytes], header: dict[str, Any], checkpoint: Checkpoint, *, own: bool) -> None:
        state = self._state
        conn = state.connection()
        try:
            with write_transaction(conn):
                state.ingest(conn, lines, header, own)
                conn.execute(
                    "INSERT OR REPLACE INTO journals (owner, segment, offset) VALUES (?, ?, ?)",
                    (checkpoint.owner, checkpoint.segment, checkpoint.offset),
                )
        except BaseException:
            state.forget()
            raise

    @staticmethod
    def _orphan_lines(conn: sqlite3.Connection, orphan: Orphan
                      ) -> Iterator[tuple[int, list[bytes], int, dict[str, Any]]]:
        """``(segment, lines, start, header)`` per segment of an orphan with lines the store does not have."""
        for segment, path in orphan.segments:
            row = conn.execute(
                "SELECT offset FROM journals WHERE owner = ? AND segment = ?", (orphan.owner, segment)
            ).fetchone()
            lines, start, header = read_lines(path, int(row[0]) if row else 0)
            if lines:
                yield segment, lines, start, header or {}

    def _recover(self, orphans: list[Orphan]) -> None:
        """Store the journals of processes that are gone, then delete them."""
        conn = self._state.connection()
        for orphan in orphans:
            done = True
            stored = 0
            for segment, lines, start, header in self._orphan_lines(conn, orphan):
                end = start + sum(len(line) + 1 for line in lines)
                try:
                    self._store(lines, header, Checkpoint(orphan.owner, segment, end), own=False)
                    stored += len(lines)
                except (sqlite3.Error, OSError) as exc:
                    done = False
                    warn(("store", "recover"), "%s: cannot store the journal of a process that ended (%s); "
                         "trying again later", self.path, exc)
                    break
            if done:
                with write_transaction(conn):
                    conn.execute("DELETE FROM journals WHERE owner = ?", (orphan.owner,))
            orphan.release(delete=done)
            if stored:
                logger.info("stored %d event(s) a process left in its journal (%s)", stored,
                            orphan.owner)

    # -- reading ----------------------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reading; the file itself is never written (see the module docstring).

        This process's own records are stored first (readers see their own writes).
        """
        flush_writers(self.path)
        if not self._readonly and not self.path.exists():
            self.local_versions()  # a store of our own, read before anything was recorded: create it
        check_store_file(self.path)
        try:
            conn = open_readonly(self.path)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn = open_readonly(self.path, immutable=True)  # a read-only folder: no -shm can be made
        try:
            conn = self._complete(conn)
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        finally:
            conn.close()

    def _complete(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """``conn``, or an in-memory copy migrated and with the journals of ended processes merged."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        directory = journal_dir(self.path)
        orphans = list(find_orphans(directory)) if directory.is_dir() else []
        if version == SCHEMA_VERSION and not orphans:
            return conn
        with closing(conn):
            mem = memory_copy(conn)
        migrate(mem, self.path)
        state = _Ingest(self)
        for orphan in orphans:
            try:
                for _segment, lines, _start, header in self._orphan_lines(mem, orphan):
                    with write_transaction(mem):
                        state.ingest(mem, lines, header, own=False)
            finally:
                orphan.release(delete=False)
        return mem

    def tasks(self) -> list[TaskRow]:
        """Every task, by id."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT t.id, t.name, t.origin, t.started_at, t.finished_at, t.status, t.error_type, "
                "t.error_message, coalesce(p.pid, t.pid), coalesce(p.host, t.host), coalesce(p.command, t.command), "
                "t.node_meta, t.runs, p.git_commit, p.git_dirty, p.python, p.cwd "
                "FROM tasks t LEFT JOIN processes p ON p.id = t.process_id ORDER BY t.id"
            ).fetchall()
        return [
            TaskRow(
                id=r[0], name=r[1], origin=r[2], started_at=_time(r[3]), finished_at=_time(r[4]),
                status=r[5], error_type=r[6], error_message=r[7], pid=r[8], host=r[9], command=r[10],
                node_meta=_json(r[11]), runs=int(r[12] or 0), git_commit=r[13],
                git_dirty=None if r[14] is None else bool(r[14]), python=r[15], cwd=r[16],
            )
            for r in rows
        ]

    def runs(self) -> list[RunRow]:
        """Every run, by start time."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT run_id, task_id, name, parent_run_id, started_at, finished_at, status, error_type, "
                "error_message, params FROM steps ORDER BY coalesce(started_at, finished_at), run_id"
            ).fetchall()
        return [RunRow(r[0], r[1], r[2], r[3], _time(r[4]), _time(r[5]), r[6], r[7], r[8], _json(r[9])) for r in rows]

    steps = runs

    def edges(self) -> list[EdgeRow]:
        """Every recorded input and output, in the order they were stored."""
        with self._reading() as conn:
            node_rows = conn.execute(
                "SELECT id, kind, ext_id, path, version_id, version_num, model_weight, recorded_path FROM nodes"
            ).fetchall()
            edge_rows = conn.execute(
                "SELECT direction, task_id, run_id, node_id, meta, time, cwd, stat FROM edges ORDER BY id"
            ).fetchall()
        nodes = {}
        for r in node_rows:
            node = key_node((r[1], r[2], r[4], r[5], r[3], bool(r[6])))
            nodes[r[0]] = (node, None if r[1] == "app" else node.ref, r[7])
        out = []
        for r in edge_rows:
            node, key, recorded = nodes[r[3]]
            out.append(EdgeRow(r[0], r[1], r[2], node, key or f"app:{r[1]}", _json(r[4]), datetime.fromisoformat(r[5]),
                               r[6], _json(r[7]), recorded))
        return out

    def iter_events(self) -> Iterator[Event]:
        """Every stored event, in the order it was stored (for replaying the store elsewhere)."""
        return (event for event, _local in self.iter_unpushed(None))

    def iter_unpushed(self, dest: str | None) -> Iterator[tuple[Event, bool]]:
        """The stored events not yet pushed to ``dest`` (``None``: all of them), in the order they were stored.

        Yields:
            ``(event, local)``: ``local`` is true when the event's task id was allocated by this store
            (it means nothing to a server that owns task ids, such as a Supervisely instance).
        """
        last = 0
        while True:
            with self._reading() as conn:
                rows = conn.execute(
                    "SELECT e.seq, e.body, e.event_id, t.origin FROM events e "
                    "LEFT JOIN tasks t ON t.id = e.task_id WHERE e.seq > ? AND (? IS NULL OR NOT EXISTS "
                    "(SELECT 1 FROM pushed p WHERE p.dest = ? AND p.event_id = e.event_id)) ORDER BY e.seq LIMIT 1000",
                    (last, dest, dest),
                ).fetchall()
            if not rows:
                return
            for seq, body, eid, origin in rows:
                last = seq
                yield _event_of(body, eid), origin == "local"

    def mark_pushed(self, dest: str, event_ids: Sequence[str]) -> None:
        """Record that ``event_ids`` were handed to ``dest`` (``workflow-trace push``).

        Raises:
            BackendError: the store cannot be written.
        """
        if not event_ids:
            return
        try:
            with closing(_open_store(self.path)) as conn, write_transaction(conn):
                conn.executemany(
                    "INSERT OR IGNORE INTO pushed (dest, event_id, pushed_at) VALUES (?, ?, datetime('now'))",
                    [(dest, e) for e in event_ids],
                )
        except sqlite3.Error as exc:
            raise BackendError(f"{self.path}: cannot record pushed events: {exc}") from exc

    def pushed_count(self, dest: str) -> int:
        """How many stored events were pushed to ``dest`` before."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pushed p JOIN events e ON e.event_id = p.event_id WHERE p.dest = ?", (dest,)
            ).fetchone()
        return int(row[0])

    def local_project_ids(self) -> dict[str, int]:
        """The ids this store gave local project folders (``project:1`` names the folder in every command)."""
        with self._reading() as conn:  # at the current schema (a memory copy migrated if need be)
            return {str(path): int(pid) for pid, path in conn.execute("SELECT id, path FROM version_projects")}

    def counts(self) -> dict[str, int]:
        """Row counts per table: ``events``, ``tasks``, ``steps``, ``nodes``, ``edges``."""
        with self._reading() as conn:
            return {
                table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("events", "tasks", "steps", "nodes", "edges")
            }

    # -- versions -----------------------------------------------------------------------------------

    def local_versions(self) -> LocalVersions:
        """The project versions kept in this store (the file is created and migrated first).

        Raises:
            BackendError: the store cannot be opened.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _open_store(self.path).close()
        except (sqlite3.Error, OSError) as exc:
            raise BackendError(f"cannot open the store {self.path}: {exc}") from None
        return LocalVersions(self.path, timeout=BUSY_TIMEOUT)

    def create_version(self, project: Project, title: str | None, description: str | None) -> int:
        """Snapshot a local project folder; the latest version's id when nothing changed since it.

        Raises:
            VersioningError: not a local project, a missing folder, or the store cannot be written.
        """
        with self._versioning("record a version"):
            return self.local_versions().create(project, title, description)

    def restore_version(
        self,
        project: Project,
        version_id: int | None = None,
        version_num: int | None = None,
        skip_missed_entities: bool = False,
    ) -> Project:
        """Recreate a version (by id or number) as a new folder next to the original; the new project.

        Raises:
            VersioningError: neither ``version_id`` nor ``version_num``, no such version, a bad record, or a
                stored file missing or damaged (named) while ``skip_missed_entities`` is false.
        """
        if version_id is None and version_num is None:
            raise VersioningError("restore_version needs a version_id or a version_num")
        with self._versioning("restore a version"):
            return self.local_versions().restore(project, version_id, version_num, skip_missed_entities)

    def list_versions(self, project: Project, filters: list[dict[str, Any]] | None = None) -> list[VersionInfo]:
        """The versions of a local project, oldest first (filters as in the seed).

        Raises:
            ValueError: a malformed filter.
            VersioningError: not a local project, or the store cannot be read.
        """
        with self._versioning("read versions"):
            return self.local_versions().list(project, filters)

    def version_number(self, version_id: int) -> int | None:
        """The number (1, 2, ...) of a version id of this store, or ``None``."""
        with self._versioning("read versions"):
            return self.local_versions().version_number(version_id)

    @contextmanager
    def _versioning(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise VersioningError(f"{self.path}: cannot {what}: {exc}") from exc


def _event_of(body: str, eid: str) -> Event:
    """The public event of a stored row (0.1.0 stored event JSON; 0.2 stores journal lines)."""
    if body.startswith("{"):
        return Event.model_validate_json(body)
    return decode_line(json.loads(body), "").model_copy(update={"event_id": eid})
