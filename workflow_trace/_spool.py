"""The durable spool: the SQLite outbox of every remote destination.

Every event for a remote backend goes through here (an outbox, not a fallback): the call path appends it
to the spool's journal (:mod:`workflow_trace._journal`), the journal's writer stores it as a row, the
delivery worker sends rows and deletes what was delivered. So a ``kill -9`` loses nothing and a server that
is down costs the caller nothing.

One file (WAL mode; ``application_id`` ``WFTS``) holds the events of every destination. A row is keyed by
the destination (``Transport.key``) and the event's id, so an event is never stored twice; it keeps the
event as a journal line (never a header or a token), its status (``pending`` or ``dead``), how many
delivery attempts failed, the last error, ``not_before`` (a held event waits without holding back those
behind it) and its place in the original order: the journal it came from (``origin``, which sorts by start
time) and its position there (``lseq``).

Exactly one process at a time delivers the events of one origin (one journal, so one process): it holds
that origin's lease (owner, pid, host, expiry) in the ``leases`` table, renewed with every batch it claims.
So a process always delivers its own events, in order, whatever another process is doing (a forked child
is not held up by its parent's stuck send), and takes over another origin's events only when that
origin's process is gone: at once on the same host (its pid is dead), elsewhere when the lease expires.

The path: ``WORKFLOW_TRACE_SPOOL`` if set; else ``spool.db`` next to the local store.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ._context import at_fork
from ._events import Event, decode_line, event_id
from ._sqlite import SPOOL_APP_ID, NotAStoreError, connect, default_store_path, inspect, tables, write_transaction

__all__ = ["DestinationCounts", "Spool", "SpoolRow", "default_spool_path"]

SCHEMA_VERSION = 2

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS events (
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
        )""",
        "CREATE INDEX IF NOT EXISTS events_order ON events (dest, status, origin, lseq)",
        """CREATE TABLE IF NOT EXISTS leases (
            dest TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            expires REAL NOT NULL
        )""",
    ),
    (
        "ALTER TABLE events ADD COLUMN not_before REAL NOT NULL DEFAULT 0",
        "DROP TABLE leases",
        """CREATE TABLE leases (
            dest TEXT NOT NULL,
            origin TEXT NOT NULL,
            owner TEXT NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            expires REAL NOT NULL,
            PRIMARY KEY (dest, origin)
        )""",
        """CREATE TABLE journals (
            owner TEXT NOT NULL,
            segment INTEGER NOT NULL,
            offset INTEGER NOT NULL,
            PRIMARY KEY (owner, segment)
        ) WITHOUT ROWID""",
        f"PRAGMA application_id = {SPOOL_APP_ID}",
    ),
)

_HOST = socket.gethostname()
#: Seconds to wait for another process's write lock.
_BUSY_TIMEOUT = 10.0


def default_spool_path(db: str | os.PathLike[str] | None = None) -> Path:
    """The spool file from the environment, made absolute (see the module docstring).

    Args:
        db: A local store path to use instead of the default store (the command line's ``--db``).
    """
    explicit = os.environ.get("WORKFLOW_TRACE_SPOOL", "").strip()
    if explicit:
        return Path(explicit).expanduser().absolute()
    store = Path(str(db).strip()).expanduser().absolute() if db is not None else default_store_path()
    return store.parent / "spool.db"


class SpoolRow(NamedTuple):
    """One spooled event as the worker reads it back."""

    event_id: str
    origin: str
    lseq: int
    payload: str
    attempts: int
    last_error: str | None

    def event(self) -> Event:
        """The event (0.1.0 spooled event JSON; 0.2 spools journal lines).

        Raises:
            ValueError: the payload is not an event.
        """
        if self.payload.startswith("{"):
            return Event.model_validate_json(self.payload)
        return decode_line(json.loads(self.payload), "").model_copy(update={"event_id": self.event_id})


@dataclass(frozen=True)
class DestinationCounts:
    """What the spool holds for one destination (``workflow-trace spool``)."""

    dest: str
    pending: int
    dead: int
    oldest: float | None
    last_error: str | None
    held: int = 0


def _changes(conn: sqlite3.Connection, sql: str, rows: Iterable[Sequence[Any]]) -> int:
    """Run ``sql`` once per row; how many rows it changed."""
    before = conn.total_changes
    conn.executemany(sql, rows)
    return conn.total_changes - before


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:  # EPERM: it exists, it is just not ours
        return not isinstance(exc, ProcessLookupError)
    return True


class Spool:
    """A SQLite spool file. Thread-safe; safe across processes; reopened in a forked child.

    Args:
        path: The file. Its directory is created on the first write, not before.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().absolute()
        self._lock = threading.RLock()  # background threads and the CLI only, never the call path
        self._conn: sqlite3.Connection | None = None
        at_fork(self._after_fork)

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r})"

    def exists(self) -> bool:
        """Whether the file exists (a status query never creates it)."""
        return self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if self.path.is_dir():
            raise NotAStoreError(f"{self.path} is a directory, not a spool")
        if self.path.is_file() and self.path.stat().st_size > 0:
            info = inspect(self.path)
            if info.application_id not in (0, SPOOL_APP_ID) or info.user_version > SCHEMA_VERSION:
                raise NotAStoreError(f"{self.path} is not a workflow_trace spool (or a newer one)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Create the file owner-only before SQLite does: events name the user's files and projects.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        conn = connect(self.path, _BUSY_TIMEOUT)  # only background threads and the CLI wait
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:  # (a newer spool was refused above, before connecting)
                with write_transaction(conn):
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    if version == 0 and tables(conn) - {"events", "leases"}:
                        raise NotAStoreError(f"{self.path} is an SQLite file but not a workflow_trace spool")
                    for statements in _MIGRATIONS[version:]:
                        for statement in statements:
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, write_transaction(self._connect()) as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connect()

    def _after_fork(self) -> None:
        # The parent's connection is the parent's: neither used nor closed here (SQLite forbids both).
        if self._conn is not None:
            _inherited.append(self._conn)
        self._conn = None
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close this process's connection (it is reopened on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    # -- the journal's writer --------------------------------------------------------------------

    def ingest(self, dest: str, owner: str, base: int, lines: Sequence[bytes], prefix: str,
               checkpoint: tuple[str, int, int]) -> int:
        """Store journal lines as pending events of ``dest`` (in order) and the journal position, in one
        transaction. Events already stored are left as they are. Returns how many rows were added."""
        now = time.time()
        rows = []
        for i, raw in enumerate(lines):
            try:
                ident = json.loads(raw)[1]
            except (ValueError, IndexError, TypeError):
                continue
            eid = ident if isinstance(ident, str) else event_id(prefix, ident)
            rows.append((dest, eid, owner, base + i, raw.decode(), now, now))
        with self._write() as conn:
            added = _changes(conn, "INSERT OR IGNORE INTO events (dest, event_id, origin, lseq, payload, created,"
                             " updated) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("INSERT OR REPLACE INTO journals (owner, segment, offset) VALUES (?, ?, ?)", checkpoint)
            return added

    def add(self, dest: str, origin: str, items: Iterable[tuple[int, Event]], *, status: str = "pending",
            error: str | None = None) -> int:
        """Store events (``(lseq, event)`` pairs, in order) directly; an event already stored is left as it
        is. For tools, tests, and events emitted after a backend was closed. Returns how many were added."""
        now = time.time()
        rows = [(dest, e.event_id, origin, lseq, e.model_dump_json(), status, error, now, now) for lseq, e in items]
        with self._write() as conn:
            return _changes(conn, "INSERT OR IGNORE INTO events (dest, event_id, origin, lseq, payload, status,"
                            " last_error, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def journal_offset(self, owner: str, segment: int) -> int:
        """How far the journal ``owner`` was stored in its segment ``segment``."""
        with self._read() as conn:
            row = conn.execute("SELECT offset FROM journals WHERE owner = ? AND segment = ?",
                               (owner, segment)).fetchone()
        return int(row[0]) if row else 0

    def forget_journal(self, owner: str) -> None:
        """Drop the position of a journal that is stored and deleted."""
        with self._write() as conn:
            conn.execute("DELETE FROM journals WHERE owner = ?", (owner,))

    # -- the worker's side -------------------------------------------------------------------------

    def claim(self, dest: str, owner: str, limit: int, lease_seconds: float,
              own: Sequence[str] = ()) -> list[SpoolRow] | None:
        """Take (or renew) the lease of one origin of ``dest`` and read its oldest due pending events.

        ``own`` origins (this process's journals) come first; then the oldest origin whose process is gone.

        Returns:
            ``None`` when every origin with due events is leased by another live process; else up to
            ``limit`` rows of one origin, in order (an empty list: nothing is due).
        """
        with self._write() as conn:
            now = time.time()
            origins = [str(r[0]) for r in conn.execute(
                "SELECT DISTINCT origin FROM events WHERE dest = ? AND status = 'pending' AND not_before <= ?"
                " ORDER BY origin", (dest, now))]
            if not origins:
                return []
            for origin in sorted(origins, key=lambda o: (o not in own, o)):
                lease = conn.execute("SELECT owner, pid, host, expires FROM leases WHERE dest = ? AND origin = ?",
                                     (dest, origin)).fetchone()
                if lease is not None and lease[0] != owner and lease[3] > now and not (
                        lease[2] == _HOST and not _pid_alive(int(lease[1]))):
                    continue  # another live process delivers this origin
                rows = [SpoolRow(*r) for r in conn.execute(
                    "SELECT event_id, origin, lseq, payload, attempts, last_error FROM events WHERE dest = ?"
                    " AND origin = ? AND status = 'pending' AND not_before <= ? ORDER BY lseq LIMIT ?",
                    (dest, origin, now, limit))]
                if rows:
                    conn.execute("INSERT OR REPLACE INTO leases (dest, origin, owner, pid, host, expires) VALUES"
                                 " (?, ?, ?, ?, ?, ?)", (dest, origin, owner, os.getpid(), _HOST, now + lease_seconds))
                    return rows
            return None

    def release(self, dest: str, owner: str) -> None:
        """Give up every lease ``owner`` holds on ``dest``."""
        with self._write() as conn:
            conn.execute("DELETE FROM leases WHERE dest = ? AND owner = ?", (dest, owner))

    def settle(self, dest: str, *, delete: Sequence[str] = (), dead: Sequence[str] = (), failed: Sequence[str] = (),
               held: Sequence[str] = (), error: str | None = None, max_attempts: int | None = None,
               not_before: float = 0.0) -> int:
        """Record a delivery's outcome in one transaction; returns how many failed rows were given up.

        Args:
            dest: The destination.
            delete: Event ids delivered (their rows are deleted).
            dead: Event ids the server refused (status ``dead``, ``error`` kept).
            failed: Event ids to retry later (``attempts`` + 1, ``error`` kept).
            held: Event ids the destination cannot take yet: pending again at ``not_before``, attempts unchanged.
            error: The reason, stored as ``last_error``.
            max_attempts: Failed rows reaching this many attempts are given up (marked ``dead``).
            not_before: When held rows are due again (``time.time()``).
        """
        now = time.time()
        where = " WHERE dest = ? AND event_id = ?"
        with self._write() as conn:
            conn.executemany("DELETE FROM events" + where, [(dest, i) for i in delete])
            conn.executemany("UPDATE events SET status = 'dead', last_error = ?, attempts = attempts + 1, updated = ?"
                             + where, [(error, now, dest, i) for i in dead])
            conn.executemany("UPDATE events SET not_before = ?, last_error = ?, updated = ?" + where,
                             [(not_before, error, now, dest, i) for i in held])
            conn.executemany("UPDATE events SET attempts = attempts + 1, last_error = ?, updated = ?" + where,
                             [(error, now, dest, i) for i in failed])
            if not failed or max_attempts is None:
                return 0
            return _changes(conn, "UPDATE events SET status = 'dead', last_error = 'gave up after ' || attempts ||"
                            " ' attempts: ' || coalesce(last_error, '')" + where + " AND status = 'pending'"
                            " AND attempts >= ?", [(dest, i, max_attempts) for i in failed])

    def has_pending(self, dest: str) -> bool:
        """Whether ``dest`` has anything pending (``False`` when there is no file)."""
        return self.pending_count(dest) > 0

    def pending_count(self, dest: str, origin: str | None = None) -> int:
        """Pending events of ``dest`` (only those from the journal ``origin``, when given)."""
        if not self.exists():
            return 0
        sql = "SELECT COUNT(*) FROM events WHERE dest = ? AND status = 'pending'"
        args = (dest,) if origin is None else (dest, origin)
        with self._read() as conn:  # origin = ? written out, so that the index serves it
            return int(conn.execute(sql if origin is None else sql + " AND origin = ?", args).fetchone()[0])

    def next_due(self, dest: str, origins: Sequence[str]) -> float | None:
        """When the earliest pending event of ``origins`` is due (``time.time()``), or ``None``: none left."""
        if not self.exists() or not origins:
            return None
        marks = ",".join("?" * len(origins))
        with self._read() as conn:
            row = conn.execute(f"SELECT min(not_before) FROM events WHERE dest = ? AND status = 'pending' AND origin"
                               f" IN ({marks})", (dest, *origins)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    # -- the command line's side -------------------------------------------------------------------

    def counts(self) -> list[DestinationCounts]:
        """Pending, held and dead counts per destination (empty when there is no file)."""
        if not self.exists():
            return []
        with self._read() as conn:
            rows = conn.execute(
                "SELECT dest, SUM(status = 'pending'), SUM(status = 'dead'), MIN(created),"
                " (SELECT e.last_error FROM events AS e WHERE e.dest = events.dest AND e.last_error IS NOT NULL"
                "  ORDER BY e.updated DESC LIMIT 1),"
                " SUM(status = 'pending' AND not_before > ?) FROM events GROUP BY dest ORDER BY dest",
                (time.time(),),
            ).fetchall()
        return [DestinationCounts(dest, int(pending or 0), int(dead or 0), oldest, error, int(held or 0))
                for dest, pending, dead, oldest, error, held in rows]

    def retry_dead(self, dest: str | None = None) -> int:
        """Move dead events (of ``dest``, or of all destinations) back to pending; returns how many."""
        if not self.exists():
            return 0
        with self._write() as conn:
            return _changes(conn, "UPDATE events SET status = 'pending', attempts = 0, not_before = 0, updated = ?"
                            " WHERE status = 'dead' AND (? IS NULL OR dest = ?)", [(time.time(), dest, dest)])

    def drop(self, dest: str | None = None, *, dead_only: bool = True) -> int:
        """Delete dead events (or, with ``dead_only=False``, every event) of ``dest`` or of all; how many."""
        if not self.exists():
            return 0
        with self._write() as conn:
            before = conn.total_changes
            conn.execute("DELETE FROM events WHERE (? = 0 OR status = 'dead') AND (? IS NULL OR dest = ?)",
                         (int(dead_only), dest, dest))
            if not dead_only:
                conn.execute("DELETE FROM leases WHERE (? IS NULL OR dest = ?)", (dest, dest))
            return conn.total_changes - before

    def drop_dead(self, dest: str | None = None) -> int:
        """Delete dead events (of ``dest``, or of all destinations); returns how many."""
        return self.drop(dest, dead_only=True)

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``'s answer (``"ok"`` for a sound file)."""
        with self._read() as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


# Connections opened before a fork() belong to the parent. The child must neither use nor close them
# (closing one could checkpoint or unlink the parent's WAL), so they are kept referenced here forever.
_inherited: list[Any] = []
