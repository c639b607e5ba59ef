"""The durable spool: a SQLite outbox for events a remote destination has not taken yet.

One file (WAL mode, stdlib ``sqlite3``) holds the events of every destination. A row is keyed by the
destination (``Transport.key``) and the event's id, so an event is never stored twice; it keeps the
event's JSON (never a header or a token), its status (``pending`` or ``dead``), how many delivery attempts
failed, the last error, and its place in the original order: the process that emitted it (``origin``,
which sorts by start time) and that process's emission counter (``lseq``).

Exactly one process at a time delivers a destination's spooled events: it holds the destination's lease
(owner, pid, host, expiry) in the ``leases`` table, renewed with every batch it claims. That keeps two
processes from sending the same event at once and keeps the order. A lease whose holder has died (a
``kill -9``) is taken over at once on the same host, elsewhere when it expires.

The path: ``WORKFLOW_TRACE_SPOOL`` if set; else ``spool.db`` in the directory of ``WORKFLOW_TRACE_DB``
(next to the local store); else ``./.workflow_trace/spool.db``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ._events import Event
from ._sqlite import write_transaction

__all__ = [
    "DestinationCounts",
    "Spool",
    "SpoolRow",
    "default_spool_path",
]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    dest TEXT NOT NULL,
    event_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    lseq INTEGER NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (dest, event_id)
);
CREATE INDEX IF NOT EXISTS events_order ON events (dest, status, origin, lseq);
CREATE TABLE IF NOT EXISTS leases (
    dest TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    expires REAL NOT NULL
);
"""

_HOST = socket.gethostname()

# Connections opened before a fork() belong to the parent. The child must neither use nor close them
# (closing one could checkpoint or unlink the parent's WAL), so they are kept referenced here forever.
_inherited: list[sqlite3.Connection] = []


def default_spool_path(db: str | os.PathLike[str] | None = None) -> Path:
    """The spool file from the environment, made absolute (see the module docstring).

    Args:
        db: A local store path to use instead of ``WORKFLOW_TRACE_DB`` (the command line's ``--db``).
    """
    explicit = os.environ.get("WORKFLOW_TRACE_SPOOL", "").strip()
    if explicit:
        return Path(explicit).expanduser().absolute()
    db = str(db).strip() if db is not None else os.environ.get("WORKFLOW_TRACE_DB", "").strip()
    if db:  # a plain path, as the local store reads it
        return Path(db).expanduser().absolute().parent / "spool.db"
    return Path(".workflow_trace", "spool.db").absolute()


class SpoolRow(NamedTuple):
    """One spooled event as the worker reads it back."""

    event_id: str
    origin: str
    lseq: int
    payload: str
    attempts: int


@dataclass(frozen=True)
class DestinationCounts:
    """What the spool holds for one destination (``workflow-trace spool``)."""

    dest: str
    pending: int
    dead: int
    oldest: float | None
    last_error: str | None


@dataclass(frozen=True)
class Settled:
    """What :meth:`Spool.settle` did: rows deleted, marked dead, and given up after ``max_attempts``."""

    deleted: int
    dead: int
    given_up: int


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, it is just not ours
        return True
    return True


class Spool:
    """A SQLite spool file. Thread-safe; safe across processes; reopened in a forked child.

    Args:
        path: The file. Its directory is created on the first write, not before: a process whose
            deliveries never fail leaves no file behind.
        busy_timeout: Seconds to wait for another process's write lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path).expanduser().absolute()
        self._busy_timeout = busy_timeout
        # One connection per process, used under this lock (held across SQLite I/O only, never the network).
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r})"

    # -- connection -------------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the file exists (a status query never creates it)."""
        return self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self.after_fork()
        if self._conn is not None:
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Create the file owner-only before SQLite does: events name the user's files and projects.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a crash of the process (kill -9); only a power loss can lose the tail.
            conn.execute("PRAGMA synchronous=NORMAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``: takes the write lock up front, no upgrade deadlock)."""
        with self._lock, write_transaction(self._connect()) as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connect()

    def after_fork(self) -> None:
        """Forget the parent's connection (never closing it) so the child opens its own."""
        self._lock = threading.RLock()
        if self._conn is not None:
            _inherited.append(self._conn)
        self._conn = None
        self._pid = os.getpid()

    def close(self) -> None:
        """Close this process's connection (it is reopened on next use)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- the worker's side -------------------------------------------------------------------------

    def add(
        self,
        dest: str,
        origin: str,
        items: Iterable[tuple[int, Event]],
        *,
        status: str = "pending",
        attempts: int = 0,
        error: str | None = None,
    ) -> int:
        """Store events (``(lseq, event)`` pairs, in order); an event already stored is left as it is.

        Returns:
            How many rows were added.
        """
        now = time.time()
        rows = [
            (dest, event.event_id, origin, lseq, event.model_dump_json(), status, attempts, error, now, now)
            for lseq, event in items
        ]
        if not rows:
            return 0
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO events (dest, event_id, origin, lseq, payload, status, attempts,"
                " last_error, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return conn.total_changes - before

    def claim(self, dest: str, owner: str, limit: int, lease_seconds: float) -> list[SpoolRow] | None:
        """Take (or renew) ``dest``'s lease and read its oldest pending events, in original order.

        Returns:
            ``None`` when another live process holds the lease; else up to ``limit`` rows (an empty list
            releases the lease: there is nothing left to deliver).
        """
        with self._write() as conn:
            now = time.time()
            row = conn.execute("SELECT owner, pid, host, expires FROM leases WHERE dest = ?", (dest,)).fetchone()
            held_by_other = row is not None and row[0] != owner and row[3] > now
            if held_by_other and not (row[2] == _HOST and not _pid_alive(int(row[1]))):
                return None
            rows = [
                SpoolRow(*r)
                for r in conn.execute(
                    "SELECT event_id, origin, lseq, payload, attempts FROM events"
                    " WHERE dest = ? AND status = 'pending' ORDER BY origin, lseq LIMIT ?",
                    (dest, limit),
                )
            ]
            if rows:
                conn.execute(
                    "INSERT OR REPLACE INTO leases (dest, owner, pid, host, expires) VALUES (?, ?, ?, ?, ?)",
                    (dest, owner, os.getpid(), _HOST, now + lease_seconds),
                )
            else:
                conn.execute("DELETE FROM leases WHERE dest = ? AND owner = ?", (dest, owner))
            return rows

    def release(self, dest: str, owner: str) -> None:
        """Give ``dest``'s lease up if ``owner`` holds it."""
        with self._write() as conn:
            conn.execute("DELETE FROM leases WHERE dest = ? AND owner = ?", (dest, owner))

    def settle(
        self,
        dest: str,
        *,
        delete: Sequence[str] = (),
        dead: Sequence[str] = (),
        failed: Sequence[str] = (),
        error: str | None = None,
        count_attempt: bool = True,
        max_attempts: int | None = None,
    ) -> Settled:
        """Record a delivery's outcome in one transaction.

        Args:
            dest: The destination.
            delete: Event ids delivered (their rows are deleted).
            dead: Event ids the server refused (status ``dead``, ``error`` kept).
            failed: Event ids to retry later (``attempts`` + 1 when ``count_attempt``, ``error`` kept).
            error: The reason, stored as ``last_error``.
            count_attempt: Whether the failure counts against ``max_attempts``.
            max_attempts: Failed rows reaching this many attempts are given up (marked ``dead``).
        """
        now = time.time()
        given_up = 0
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany("DELETE FROM events WHERE dest = ? AND event_id = ?", [(dest, i) for i in delete])
            deleted = conn.total_changes - before
            before = conn.total_changes
            conn.executemany(
                "UPDATE events SET status = 'dead', last_error = ?, attempts = attempts + 1, updated = ?"
                " WHERE dest = ? AND event_id = ?",
                [(error, now, dest, i) for i in dead],
            )
            marked = conn.total_changes - before
            if failed:
                step = 1 if count_attempt else 0
                conn.executemany(
                    "UPDATE events SET attempts = attempts + ?, last_error = ?, updated = ?"
                    " WHERE dest = ? AND event_id = ?",
                    [(step, error, now, dest, i) for i in failed],
                )
                if max_attempts is not None and count_attempt:
                    before = conn.total_changes
                    conn.executemany(
                        "UPDATE events SET status = 'dead', last_error = 'gave up after ' || attempts ||"
                        " ' attempts: ' || coalesce(last_error, '') WHERE dest = ? AND event_id = ?"
                        " AND status = 'pending' AND attempts >= ?",
                        [(dest, i, max_attempts) for i in failed],
                    )
                    given_up = conn.total_changes - before
        return Settled(deleted=deleted, dead=marked, given_up=given_up)

    def has_pending(self, dest: str) -> bool:
        """Whether ``dest`` has anything pending (a cheap read; ``False`` when there is no file)."""
        if not self.exists():
            return False
        with self._read() as conn:
            row = conn.execute("SELECT 1 FROM events WHERE dest = ? AND status = 'pending' LIMIT 1", (dest,)).fetchone()
            return row is not None

    def pending_count(self, dest: str, origin: str | None = None, upto: int | None = None) -> int:
        """Pending events of ``dest``, optionally only those ``origin`` emitted up to its ``upto``-th."""
        if not self.exists():
            return 0
        sql = "SELECT COUNT(*) FROM events WHERE dest = ? AND status = 'pending'"
        args: list[object] = [dest]
        if origin is not None:
            sql += " AND origin = ?"
            args.append(origin)
        if upto is not None:
            sql += " AND lseq <= ?"
            args.append(upto)
        with self._read() as conn:
            return int(conn.execute(sql, args).fetchone()[0])

    # -- the command line's side -------------------------------------------------------------------

    def counts(self) -> list[DestinationCounts]:
        """Pending and dead counts per destination (empty when there is no file)."""
        if not self.exists():
            return []
        with self._read() as conn:
            agg = conn.execute(
                "SELECT dest, SUM(status = 'pending'), SUM(status = 'dead'), MIN(created) FROM events"
                " GROUP BY dest ORDER BY dest"
            ).fetchall()
            result = []
            for dest, pending, dead, oldest in agg:
                err = conn.execute(
                    "SELECT last_error FROM events WHERE dest = ? AND last_error IS NOT NULL"
                    " ORDER BY updated DESC LIMIT 1",
                    (dest,),
                ).fetchone()
                result.append(
                    DestinationCounts(dest, int(pending or 0), int(dead or 0), oldest, err[0] if err else None)
                )
            return result

    def retry_dead(self, dest: str | None = None) -> int:
        """Move dead events (of ``dest``, or of all destinations) back to pending; returns how many."""
        if not self.exists():
            return 0
        with self._write() as conn:
            before = conn.total_changes
            conn.execute(
                "UPDATE events SET status = 'pending', attempts = 0, updated = ?"
                " WHERE status = 'dead' AND (? IS NULL OR dest = ?)",
                (time.time(), dest, dest),
            )
            return conn.total_changes - before

    def drop_dead(self, dest: str | None = None) -> int:
        """Delete dead events (of ``dest``, or of all destinations); returns how many."""
        if not self.exists():
            return 0
        with self._write() as conn:
            before = conn.total_changes
            conn.execute("DELETE FROM events WHERE status = 'dead' AND (? IS NULL OR dest = ?)", (dest, dest))
            return conn.total_changes - before

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``'s answer (``"ok"`` for a sound file)."""
        with self._read() as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
