"""What every SQLite file of workflow_trace (the store, the spool) shares: one way to open, inspect,
migrate and write it, and where the local store is found.

- :func:`connect` opens a file for writing: WAL journal, ``synchronous=NORMAL`` (a ``kill -9`` loses
  nothing committed; only a power loss can lose the last transactions), a busy timeout, autocommit mode
  so that :func:`write_transaction` controls transactions.
- :func:`inspect` reads the 100-byte header with plain ``open()``: it never creates, migrates or locks
  anything, so a read-only command can refuse a foreign or crafted file and leave it byte for byte as it
  was (no ``-wal`` or ``-shm`` created either).
- :func:`open_readonly` opens a checked file for reading only; :func:`memory_copy` copies it into memory,
  where an older schema can be migrated and journals of dead processes merged without writing the file.
- Every connection is a :class:`Connection`: each call into SQLite (open, execute and its rows, close,
  backup) runs under one process-wide lock that ``fork()`` takes first. SQLite's own mutexes (its
  allocator's, its file-lock table's) are process-global: a child forked while another thread is inside
  SQLite would inherit one of them locked and hang at its first SQLite call. So rows are fetched before
  the lock is let go, and a fork waits (at most 10 s) for the SQLite call in flight, never for a user.
- :func:`default_store_path`: ``$WORKFLOW_TRACE_DB``, else ``.workflow_trace/workflow.db`` in the nearest
  folder from the current one upwards that has a ``.workflow_trace/`` (never above the enclosing git work
  tree's root or the home directory), else in the current folder — as git finds ``.git``.
"""

from __future__ import annotations

import os
import random
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ._context import around_fork, at_fork
from ._errors import BackendError

__all__ = [
    "FileInfo",
    "NotAStoreError",
    "connect",
    "default_store_path",
    "inspect",
    "memory_copy",
    "open_readonly",
    "write_transaction",
]

_MAGIC = b"SQLite format 3\x00"

#: ``PRAGMA application_id`` of the local store and of the spool.
STORE_APP_ID = 0x57465452  # "WFTR"
SPOOL_APP_ID = 0x57465453  # "WFTS"


class NotAStoreError(BackendError):
    """The file is not one this version of workflow_trace can read (foreign, newer, corrupt)."""


@dataclass(frozen=True)
class FileInfo:
    """What the header of a SQLite file says."""

    user_version: int
    application_id: int
    wal: bool


def inspect(path: Path) -> FileInfo:
    """Read a SQLite file's header without opening it as a database.

    Raises:
        NotAStoreError: not a SQLite file (empty, text, truncated), naming the path.
        OSError: it cannot be read.
    """
    with open(path, "rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(_MAGIC):
        raise NotAStoreError(f"{path} is not a usable lineage store (not an SQLite file)")
    user_version, application_id = struct.unpack(">iI", header[60:68])
    return FileInfo(user_version=user_version, application_id=application_id, wal=header[18] == 2)


class _Rows:
    """The rows of a statement, fetched while the lock was held (duck-types the ``Cursor`` we use)."""

    __slots__ = ("_rows", "lastrowid", "rowcount")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._rows = iter(cursor.fetchall())
        self.lastrowid, self.rowcount = cursor.lastrowid, cursor.rowcount
        cursor.close()

    def __iter__(self) -> Iterator[Any]:
        return self._rows

    def fetchone(self) -> Any:
        return next(self._rows, None)

    def fetchall(self) -> list[Any]:
        return list(self._rows)


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


class Connection(sqlite3.Connection):
    """A connection whose every call into SQLite holds the fork lock (see the module docstring).

    SQLite's own busy handler would sleep inside SQLite, holding the lock while another thread of this
    process may need it to finish the very transaction being waited for. So SQLite never waits
    (``busy_timeout`` 0): a statement the file's lock refuses is retried here, the lock let go between
    attempts, for up to :attr:`wait` seconds.
    """

    #: Seconds a statement is retried while another connection holds the file's lock.
    wait = 5.0

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        deadline = None
        while True:
            try:
                return self.execute_once(sql, parameters)
            except sqlite3.OperationalError as exc:
                deadline = deadline or time.monotonic() + self.wait  # (no clock read unless refused)
                if not _busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(random.uniform(0.001, 0.01))

    def execute_once(self, sql: str, parameters: Any = (), /) -> Any:
        """One attempt: ``sqlite3.OperationalError`` ("database is locked") when the file is locked."""
        with _call_lock:
            return _Rows(super().execute(sql, parameters))

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        # Not retried: in autocommit mode a retry could repeat the rows already written. Used inside
        # write_transaction, whose BEGIN IMMEDIATE holds the write lock, so it is never refused.
        with _call_lock:
            return _Rows(super().executemany(sql, parameters))

    def backup(self, target: sqlite3.Connection, **kwargs: Any) -> None:
        with _call_lock:
            super().backup(target, **kwargs)

    def close(self) -> None:
        with _call_lock:
            super().close()


def _open(database: str, wait: float = 5.0, **kwargs: Any) -> Connection:
    with _call_lock:
        conn = sqlite3.connect(database, timeout=0, isolation_level=None, check_same_thread=False,
                               factory=Connection, **kwargs)
    assert isinstance(conn, Connection)
    conn.wait = wait
    return conn


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path`` for reading and writing (created when missing), in WAL mode.

    Raises:
        sqlite3.Error: it cannot be opened (the caller says which file and why).
    """
    conn = _open(str(path), busy_timeout)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -32768")
    except BaseException:
        conn.close()
        raise
    return conn


def open_readonly(path: Path, *, immutable: bool = False) -> sqlite3.Connection:
    """Open ``path`` for reading only (``immutable``: also without locks or a ``-shm`` file)."""
    uri = f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")
    conn = _open(uri, uri=True)
    conn.execute("PRAGMA query_only = 1")
    return conn


def memory_copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    """An in-memory copy of an open database (to migrate or extend without writing the file)."""
    mem = _open(":memory:")
    conn.backup(mem)
    return mem


def tables(conn: sqlite3.Connection) -> set[str]:
    """The names of the tables in a database."""
    return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


# Held while this process is inside a write transaction (on any of its files). SQLite keeps its lock state
# per process and file, shared by every connection; a child forked mid-transaction would inherit "a
# connection of mine holds the write lock" and wait forever. So fork() waits for the transaction to end
# (a background writer's transaction lasts milliseconds), and BEGIN is retried in short attempts so that
# the lock is never held while waiting for another process.
_write_lock = threading.Lock()
#: Held for every single call into SQLite (see the module docstring); fork takes it after ``_write_lock``.
_call_lock = threading.RLock()
_fork_held = (False, False)
#: Seconds one BEGIN IMMEDIATE attempt may wait for another process before the lock is let go and retried.
BEGIN_ATTEMPT = 0.05


def _hold_for_fork() -> None:
    global _fork_held
    deadline = time.monotonic() + 10.0
    write = _write_lock.acquire(timeout=10.0)
    _fork_held = (write, _call_lock.acquire(timeout=max(0.0, deadline - time.monotonic())))


def _release_after_fork() -> None:
    global _fork_held
    write, call = _fork_held
    _fork_held = (False, False)
    if call:
        _call_lock.release()
    if write:
        _write_lock.release()


def _new_lock_in_child() -> None:
    global _write_lock, _call_lock, _fork_held
    _write_lock, _call_lock, _fork_held = threading.Lock(), threading.RLock(), (False, False)


around_fork(_hold_for_fork, _release_after_fork)
at_fork(_new_lock_in_child)


@contextmanager
def write_transaction(conn: sqlite3.Connection, timeout: float = 30.0) -> Iterator[sqlite3.Connection]:
    """One write transaction on an autocommit connection (``isolation_level=None``).

    ``BEGIN IMMEDIATE`` takes the write lock up front, so two readers upgrading to writers cannot deadlock;
    another process's lock is waited for up to ``timeout`` seconds (in short attempts); an exception rolls
    back and propagates. The call path never comes here: a ``KeyboardInterrupt`` (main thread only) can
    never leave a transaction open.

    Raises:
        sqlite3.OperationalError: the file stayed locked for ``timeout`` seconds, or another error.
    """
    deadline = time.monotonic() + timeout
    lock = _write_lock
    begin = conn.execute_once if isinstance(conn, Connection) else conn.execute
    while True:
        lock.acquire()
        try:
            begin("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            lock.release()
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(random.uniform(0.001, BEGIN_ATTEMPT))
        except BaseException:
            lock.release()
            raise
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")
    finally:
        lock.release()


def default_store_path() -> Path:
    """The local store used when none is named (see the module docstring); an absolute path."""
    env = os.environ.get("WORKFLOW_TRACE_DB", "").strip()
    if env:
        return Path(os.path.abspath(os.path.expanduser(env)))
    cwd = Path(os.getcwd())
    home = Path(os.path.expanduser("~"))
    for folder in (cwd, *cwd.parents):
        if (folder / ".workflow_trace").is_dir():
            return folder / ".workflow_trace" / "workflow.db"
        if folder == home or (folder / ".git").exists():
            break
    return cwd / ".workflow_trace" / "workflow.db"
