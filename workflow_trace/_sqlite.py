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


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path`` for reading and writing (created when missing), in WAL mode.

    Raises:
        sqlite3.Error: it cannot be opened (the caller says which file and why).
    """
    conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
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
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA query_only = 1")
    return conn


def memory_copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    """An in-memory copy of an open database (to migrate or extend without writing the file)."""
    mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
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
_fork_held = False
#: Seconds one BEGIN IMMEDIATE attempt may wait for another process before the lock is let go and retried.
BEGIN_ATTEMPT = 0.05


def _hold_for_fork() -> None:
    global _fork_held
    _fork_held = _write_lock.acquire(timeout=10.0)


def _release_after_fork() -> None:
    global _fork_held
    if _fork_held:
        _fork_held = False
        _write_lock.release()


def _new_lock_in_child() -> None:
    global _write_lock, _fork_held
    _write_lock, _fork_held = threading.Lock(), False


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
    conn.execute(f"PRAGMA busy_timeout = {int(BEGIN_ATTEMPT * 1000)}")
    while True:
        lock.acquire()
        try:
            conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            lock.release()
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
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
    folder = cwd
    while True:
        if (folder / ".workflow_trace").is_dir():
            return folder / ".workflow_trace" / "workflow.db"
        if folder == home or (folder / ".git").exists() or folder.parent == folder:
            break
        folder = folder.parent
    return cwd / ".workflow_trace" / "workflow.db"
