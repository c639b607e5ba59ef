"""The durable hand-off between a decorated call and a SQLite file: a journal and its writer thread.

The call path never touches SQLite. It copies its records, already encoded as lines, into this process's
journal: a segment file mapped into memory (``mmap``, shared with the file). Once the copy is done the
kernel holds the bytes in the file's pages, so a ``kill -9`` of the process loses nothing; and a copy is no
system call, so the caller keeps the GIL (a ``write(2)`` gives it up, and getting it back while the writer
thread runs Python costs tens of microseconds). The writer thread reads the new lines back from the same
mapping, hands them to an *ingest* function that stores them and the journal position in one transaction
(group commit: whatever arrived while the previous transaction ran goes into the next), and deletes the
journal once everything in it is stored and the process ends.

Files, in ``<store>.journal/`` next to the SQLite file they feed:

- ``<owner>.lock``: held with ``flock`` for the life of the journal. A journal whose lock can be taken
  belongs to a process that is gone: the next writer (any process using the same file) ingests it from
  the position its owner stored last, then deletes it. Readers merge it in memory without writing.
- ``<owner>.<n>.log``: segments of :data:`SEGMENT_BYTES`, allocated on disk when created (a full disk
  fails there, as an ``OSError`` the call path counts, never as a ``SIGBUS`` in a later copy). The first
  line of each is a JSON header (process id, host, event id prefix, command line...); the lines follow;
  the rest is zeros until written (readers stop at the first zero byte; a journal closed with lines left
  in it is cut to its end). A call whose lines do not fit starts the next segment.

After ``os.fork()`` the child starts a journal of its own (the parent's segments are unmapped in the
child, never written); ``multiprocessing`` children, which leave with ``os._exit``, finish it in a
finalizer. At exit the writer gets until the exit deadline (``WORKFLOW_TRACE_EXIT_TIMEOUT``, default 2 s,
shared by every backend); whatever it could not store stays in the journal for the next process, and one
WARNING says how many events and why.
"""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._context import at_exit, at_fork, contained, describe, logger, report, run_exit_hooks, warn
from ._events import ids

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: liveness falls back to the process id
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_EXIT_TIMEOUT",
    "SEGMENT_BYTES",
    "Checkpoint",
    "JournalWriter",
    "Orphan",
    "exit_deadline",
    "exit_timeout",
    "find_orphans",
    "journal_dir",
    "read_lines",
]

#: Seconds the exit flush may take, for all backends together (``WORKFLOW_TRACE_EXIT_TIMEOUT``).
DEFAULT_EXIT_TIMEOUT = 2.0
#: A journal segment is rotated once it holds this many bytes.
SEGMENT_BYTES = 8 * 1024 * 1024
#: Lines handed to one ingest call (one transaction) at most. Measured with rows inserted many per statement
#: (bench_store_v2, a step recording 3 new nodes per call): 1,000 ≈ 52k events/s, 500 ≈ 51k, 2,000 ≈ 50.5k,
#: 5,000 ≈ 48k (a bigger batch holds the GIL longer at a time, and its parse makes more objects at once).
MAX_BATCH_LINES = 1_000
#: Seconds between looks for journals of processes that are gone.
ORPHAN_POLL = 30.0
#: Seconds the writer lets records gather before it reads them, unless a flush (or a call) is waiting:
#: bigger transactions, fewer of them, and the GIL left to the threads that record while they are busy
#: (a burst of calls shorter than this is not slowed by the writer at all); the file's write lock stays
#: free most of the time for other processes writing the same store.
GROUP_COMMIT_WINDOW = 0.05

_HOST = socket.gethostname()
_exit_deadline: float | None = None


def exit_timeout() -> float:
    """The exit deadline from ``WORKFLOW_TRACE_EXIT_TIMEOUT`` (seconds, default 2)."""
    raw = os.environ.get("WORKFLOW_TRACE_EXIT_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_EXIT_TIMEOUT
    try:
        return max(0.0, float(raw))
    except ValueError:
        warn("exit-timeout", "WORKFLOW_TRACE_EXIT_TIMEOUT=%r is not a number of seconds; using %s", raw,
             DEFAULT_EXIT_TIMEOUT)
        return DEFAULT_EXIT_TIMEOUT


def exit_deadline() -> float:
    """The one ``time.monotonic()`` deadline every backend shares at interpreter exit."""
    global _exit_deadline
    if _exit_deadline is None:
        _exit_deadline = time.monotonic() + exit_timeout()
    return _exit_deadline


def command_line() -> list[str]:
    """The command as typed (``python train.py --lr 0.1``, ``python -m pkg``): ``sys.orig_argv``, unless the
    program changed ``sys.argv``'s arguments since (then the interpreter and ``sys.argv``)."""
    orig, argv = list(getattr(sys, "orig_argv", [])), list(sys.argv)
    if not orig or (len(argv) > 1 and orig[len(orig) - len(argv) + 1:] != argv[1:]):
        return [*orig[:1], *argv]
    return orig


def journal_dir(db_path: Path) -> Path:
    """Where the journals of the SQLite file ``db_path`` live."""
    return db_path.with_name(db_path.name + ".journal")


def _lock(fd: int, blocking: bool) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Checkpoint:
    """Where a journal has been stored up to: segment ``segment`` up to byte ``offset``."""

    owner: str
    segment: int
    offset: int


def read_lines(path: Path, offset: int) -> tuple[list[bytes], int, dict[str, Any] | None]:
    """The complete lines of a segment from ``offset`` (never its header line), the offset of the first
    of them, and the segment's header. A torn last line (a power loss mid-write) is left unread; a segment
    that is gone has no lines."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return [], offset, None
    with f:
        header_line = f.readline()
        header: dict[str, Any] | None = None
        with contextlib.suppress(ValueError):
            value = json.loads(header_line)
            header = value if isinstance(value, dict) else None
        start = max(offset, len(header_line))
        f.seek(start)
        data = f.read()
    data = data.split(b"\0", 1)[0]  # up to the allocated, unwritten tail of a segment
    end = data.rfind(b"\n")
    return data[: end + 1].splitlines(), start, header  # none when end is -1


@dataclass
class Orphan:
    """The journal of a process that is gone: its segments, in order, and its lock (held by us)."""

    owner: str
    segments: list[tuple[int, Path]]
    lock_path: Path
    lock_fd: int

    def release(self, delete: bool) -> None:
        """Delete the journal (it is stored) or just let it go (``delete=False``)."""
        if delete:
            for _n, path in self.segments:
                path.unlink(missing_ok=True)
            self.lock_path.unlink(missing_ok=True)
        os.close(self.lock_fd)


def find_orphans(directory: Path, exclude: str | None = None) -> Iterator[Orphan]:
    """Journals in ``directory`` whose owner is gone (their lock could be taken: we now hold it)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    segments: dict[str, list[tuple[int, Path]]] = {}
    for name in names:
        if not name.endswith(".log"):
            continue
        owner, _, rest = name[:-4].rpartition(".")
        if owner and rest.isdigit() and owner != exclude:
            segments.setdefault(owner, []).append((int(rest), directory / name))
    for owner, segs in segments.items():
        lock_path = directory / f"{owner}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            continue
        if not _lock(fd, blocking=False):
            os.close(fd)  # its owner is alive
            continue
        yield Orphan(owner, sorted(segs), lock_path, fd)


Ingest = Callable[[list[bytes], dict[str, Any], Checkpoint], None]


class _Segment:
    """One segment file of this process's journal, mapped into memory.

    Its space is allocated when it is created (``posix_fallocate``; zeros written where that is missing),
    so a full disk is an ``OSError`` then, never a ``SIGBUS`` on the call path later. ``end`` is where the
    next line goes (the call path, under the writer's lock); ``stored`` is how far the writer stored.
    """

    __slots__ = ("end", "fd", "header", "mm", "n", "path", "size", "stored")

    def __init__(self, path: Path, n: int, header: dict[str, Any], size: int) -> None:
        first = json.dumps(header, separators=(",", ":"), default=str).encode() + b"\n"
        size = max(size, len(first) + 1)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, size)
            except (AttributeError, OSError) as exc:  # macOS, Windows, a file system without it: zeros
                if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise  # ENOSPC and the like: the journal cannot be written
                for at in range(0, size, 1 << 20):
                    os.write(fd, bytes(min(1 << 20, size - at)))
            # MAP_POPULATE: the pages are faulted in now, not one by one on the call path (Linux).
            flags = getattr(mmap, "MAP_SHARED", 0) | getattr(mmap, "MAP_POPULATE", 0)
            self.mm = mmap.mmap(fd, size, flags=flags) if flags else mmap.mmap(fd, size)  # Windows: no flags
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self.mm[: len(first)] = first
        self.path, self.n, self.fd, self.size = path, n, fd, size
        self.header: dict[str, Any] = json.loads(first)  # as a reader of the file sees it
        self.end = self.stored = len(first)

    def unread(self) -> bytes:
        """The lines appended and not stored yet (none once the segment is closed)."""
        return b"" if self.mm.closed else self.mm[self.stored : self.end]

    def close(self, delete: bool) -> None:
        """Unmap and close; delete the file, or cut it to what was written (no zeros for readers)."""
        self.mm.close()  # closing twice is harmless
        if delete:
            self.path.unlink(missing_ok=True)
        else:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.end)
        with contextlib.suppress(OSError):
            os.close(self.fd)


class JournalWriter:
    """A journal this process appends to, and the thread that ingests it (see the module docstring).

    Args:
        directory: The journal folder (``journal_dir(db_path)``).
        ingest: Called in the writer thread with new complete lines, the segment header and the
            checkpoint to store in the same transaction. Raising means "not stored": retried later.
        recover: Called in the writer thread, before it ingests its own journal and then every
            :data:`ORPHAN_POLL` seconds, with the orphans of ``directory``; it ingests and releases them.
        header: Extra fields for each segment's header line.
        name: For messages and the thread name ("the local store at ...").
    """

    def __init__(
        self,
        directory: Path,
        ingest: Ingest,
        recover: Callable[[list[Orphan]], None],
        *,
        header: dict[str, Any] | None = None,
        name: str = "journal",
    ) -> None:
        self.directory = directory
        self._ingest = ingest
        self._recover = recover
        self._header_extra = dict(header or {})
        self.name = name
        at_fork(self._after_fork)
        at_exit(self.close_at_exit, order=60)
        self._reset()

    def _reset(self) -> None:
        """State of one process (set again in a forked child, and after close)."""
        self._generation = getattr(self, "_generation", 0) + 1  # a thread of another generation stops
        self._lock_fd = -1
        self._owner = ""
        self._seg: _Segment | None = None  # the segment appended to
        self._segs: list[_Segment] = []  # every segment not deleted yet, in order (the current one last)
        self._lock = threading.Lock()  # appending, opening and rotating (the call path); closing
        self._cond = threading.Condition(threading.Lock())
        self._wake = threading.Event()  # records arrived (the writer was idle), or someone waits
        self._hurry = threading.Event()  # someone waits (flush, call, close): no gathering
        self._idle = False
        self._thread: threading.Thread | None = None
        self._stop = False
        self._error: str | None = None  # why the last ingest failed (None: the last one worked)
        self._failures = 0  # ingests that failed (a flush waits for no more than one more)
        self._lost = 0  # events that could not even be journaled (since the last flush)
        self._next_orphan_check = 0.0
        self._calls: list[_Call] = []

    def __repr__(self) -> str:
        return f"JournalWriter({str(self.directory)!r})"

    @property
    def owner(self) -> str:
        """This process's journal name (empty until the first append)."""
        return self._owner

    # -- the call path -----------------------------------------------------------------------------

    def append(self, data: bytes, events: int) -> None:
        """Copy encoded lines (``events`` of them) into the journal and wake the writer.

        A copy into the mapped segment: no system call, and the GIL is kept (a system call would give it
        up, and with the writer busy in Python, waiting to get it back costs far more than the write).
        The offset moves after the copy, so an interrupt halfway leaves no gap for the writer to read.
        No thread waits inside ``acquire()``: a thread woken there holds the lock while it waits for the
        GIL, the GIL's holder then blocks on the lock, and so on at every append — a convoy that, once a
        segment's creation (system calls, under the lock) started it, cost 8 recording threads up to 3/4
        of their throughput. A thread that finds the lock taken gives the GIL up until it is free; and the
        lock is held across no call and no loop (but that creation), where CPython could switch threads.

        Raises:
            OSError: the journal cannot be written (counted: :meth:`flush` then returns ``False``).
        """
        size, lock = len(data), self._lock
        while lock.locked():  # wait with the GIL given up, not inside acquire() (see above)
            time.sleep(0)
        try:
            with lock:  # no call and no loop in here (see above)
                seg = self._seg or self._open()
                end = seg.end + size
                if end > seg.size:
                    seg = self._rotate(size)
                    end = seg.end + size
                seg.mm[seg.end : end] = data
                seg.end = end
        except (OSError, ValueError) as exc:  # ValueError: a segment closed under a late append
            self._lost += events
            raise exc if isinstance(exc, OSError) else OSError(f"the journal is closed ({exc})") from None
        if self._idle:
            self._idle = False
            self._wake.set()

    def _open(self) -> _Segment:
        """Start this process's journal (the lock held). Interrupt-safe: the segment the call path writes
        to is published last, and the thread is started whenever it is missing."""
        self.directory.mkdir(parents=True, exist_ok=True)
        owner = f"{time.time_ns():x}-{os.getpid()}"
        self._lock_fd = os.open(self.directory / f"{owner}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        _lock(self._lock_fd, blocking=True)
        self._owner = owner
        seg = self._new_segment(0, SEGMENT_BYTES)
        self._segs.append(seg)
        self._seg = seg
        self._ensure_thread()
        return seg

    def _new_segment(self, n: int, size: int) -> _Segment:
        header = {
            "journal": 1, "owner": self._owner, "segment": n, "pid": os.getpid(), "host": _HOST,
            "started": time.time(), "prefix": ids.prefix, "argv": list(sys.argv), "command": command_line(),
            "cwd": os.getcwd(),
            "python": sys.version.split()[0], **self._header_extra,
        }
        return _Segment(self.directory / f"{self._owner}.{n}.log", n, header, size)

    def _rotate(self, need: int) -> _Segment:
        """A new segment for lines that do not fit (the lock held); the writer deletes the old one once it
        is stored."""
        seg = self._new_segment(self._segs[-1].n + 1, max(SEGMENT_BYTES, need + 4096))
        self._segs.append(seg)
        self._seg = seg
        return seg

    # -- the writer thread -------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        _finish_in_multiprocessing_child()
        thread = threading.Thread(target=self._run, name=f"workflow_trace writer ({self.name})", daemon=True)
        thread.start()
        self._thread = thread

    def call(self, fn: Callable[[], Any], timeout: float, *, after_stored: bool = False) -> Any:
        """Run ``fn`` in the writer thread (which owns the connection) and return its result.

        ``fn`` runs as soon as the writer is between two transactions (not behind its gathering, nor
        behind the lines waiting to be stored); with ``after_stored``, what was journaled before the
        call is stored first. The caller only waits: a ``KeyboardInterrupt`` while waiting leaves ``fn``
        to finish in the thread, never a transaction open on the caller's side.

        Raises:
            TimeoutError: ``fn`` did not finish within ``timeout``; whatever ``fn`` raised.
        """
        with self._lock:
            if self._seg is None:
                self._open()
        job = _Call(fn, after_stored)
        self._calls.append(job)
        self._nudge()
        if not job.done.wait(timeout):
            raise TimeoutError(f"{self.name}: the writer did not answer within {timeout:.0f} s")
        if job.error is not None:
            raise job.error
        return job.result

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in the writer thread between two transactions, without waiting (errors are
        contained there)."""
        if self._seg is not None:
            self._calls.append(_Call(fn, False))
            self._nudge()

    def _run_calls(self, *, between_transactions: bool = False) -> None:
        """Run the waiting calls in order; one that wants the journal stored first gets it stored first
        (``between_transactions``: in the middle of storing, stop at such a call)."""
        while self._calls:
            job = self._calls[0]
            if job.after_stored:
                if between_transactions:
                    return
                with contained(f"{self.name}: writer", allow_raise=False):
                    self._work()
            self._calls.pop(0)
            try:
                job.result = job.fn()
            except Exception as exc:  # noqa: BLE001 - handed to the waiting caller, who reports it
                job.error = exc
            job.done.set()

    @property
    def last_error(self) -> str | None:
        """Why the last attempt to store failed (``None`` when it worked)."""
        return self._error

    def _run(self) -> None:
        backoff = 0.05
        generation = self._generation
        while generation == self._generation:
            if self._calls:
                self._run_calls()
            failed = True
            with contained(f"{self.name}: writer", allow_raise=False):
                if time.monotonic() >= self._next_orphan_check:
                    self._next_orphan_check = time.monotonic() + ORPHAN_POLL
                    if orphans := list(find_orphans(self.directory, exclude=self._owner)):
                        self._recover(orphans)
                worked = self._work()
                failed = self._error is not None
                if worked and not failed:
                    backoff = 0.05
                    if self._pending() and not self._stop:
                        self._gather()
                    continue
            if self._stop or generation != self._generation:
                return
            if failed:  # the store refused, or a surprise was contained: wait, then try again
                self._wake.wait(backoff)
                self._wake.clear()
                backoff = min(backoff * 2, 5.0)
                continue
            self._idle = True
            if not self._pending() and not self._calls:
                self._wake.wait(0.5)
            self._wake.clear()
            self._idle = False
            if self._pending():
                self._gather()

    def _nudge(self) -> None:
        """Wake the writer and have it store at once."""
        self._hurry.set()
        self._wake.set()

    def _gather(self) -> None:
        """Let records gather for :data:`GROUP_COMMIT_WINDOW`, unless someone waits."""
        if not (self._calls or self._stop):
            self._hurry.wait(GROUP_COMMIT_WINDOW)
        self._hurry.clear()

    def _pending(self) -> bool:
        return any(seg.end > seg.stored for seg in self._segs)

    def _work(self) -> bool:
        """Ingest what is new, oldest segment first; ``True`` when something was stored. A segment the
        call path left (rotated) is deleted once stored: its end moves no more."""
        did = False
        for seg in list(self._segs):
            did = self._ingest_segment(seg) or did
            if seg is not self._seg and seg.stored >= seg.end:  # in this order: see the docstring
                self._segs.remove(seg)
                seg.close(delete=True)
        return did

    def _ingest_segment(self, seg: _Segment) -> bool:
        data = seg.unread()
        if not data:
            return False
        lines = data.splitlines()
        start, stored = seg.stored, False
        for i in range(0, len(lines), MAX_BATCH_LINES):
            chunk = lines[i : i + MAX_BATCH_LINES]
            chunk_end = start + sum(len(line) + 1 for line in chunk)
            try:
                self._ingest(chunk, seg.header, Checkpoint(self._owner, seg.n, chunk_end))
            except Exception as exc:  # noqa: BLE001 - kept in the journal and retried; flush() says False
                self._error, self._failures = describe(exc), self._failures + 1
                report(exc, f"{self.name}: cannot store events yet (they are kept in {self.directory})",
                       allow_raise=False)
                return stored
            seg.stored, start, stored, self._error = chunk_end, chunk_end, True, None
            with self._cond:
                self._cond.notify_all()
            if self._calls:
                self._run_calls(between_transactions=True)
        return stored

    # -- flush, close, fork --------------------------------------------------------------------------

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything appended so far is stored; ``False`` on timeout, as soon as an attempt to
        store fails after the call (the events stay in the journal, for the writer's next attempt or the next
        process), or when events could not be journaled since the last flush."""
        lost, self._lost = self._lost, 0
        last = self._seg
        if last is None:
            return lost == 0
        with self._lock:
            self._ensure_thread()
        target, failures = last.end, self._failures
        deadline = time.monotonic() + (30.0 if timeout is None else max(0.0, timeout))
        with self._cond:
            while True:
                self._nudge()
                if all(s.stored >= (target if s is last else s.end) for s in list(self._segs) if s.n <= last.n):
                    return lost == 0
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._failures > failures or not (self._thread and self._thread.is_alive()):
                    return False
                self._cond.wait(min(remaining, 0.05))

    def pending_events(self) -> int:
        """Lines appended by this process and not stored yet (a count for messages)."""
        return sum(seg.unread().count(b"\n") for seg in list(self._segs))

    def close(self, deadline: float | None = None) -> bool:
        """Store what is left (until ``deadline``), stop the thread, delete the journal if all is stored.

        Returns:
            ``True`` when everything was stored; otherwise the journal stays for the next process and one
            WARNING says how many events it holds and why.
        """
        if self._seg is None:
            return self._lost == 0
        timeout = 30.0 if deadline is None else max(0.0, deadline - time.monotonic())
        ok = self.flush(timeout)
        self._stop = True
        self._nudge()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0 if deadline is None else max(0.05, deadline - time.monotonic()))
        self._generation += 1  # a thread still in an ingest (a store that hangs) stops after it
        with self._lock:
            if self._seg is None:
                return ok
            ok = ok and not self._pending()  # an append after the flush: kept for the next process
            left = 0 if ok else self.pending_events()
            for seg in self._segs:
                seg.close(delete=ok)
            if ok:
                (self.directory / f"{self._owner}.lock").unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # other processes' journals may still be there
                    self.directory.rmdir()
            elif left:
                logger.warning(
                    "%s: %d event(s) could not be stored before exit (%s); they are kept in "
                    "%s and stored by the next process that uses it", self.name, left,
                    self._error or "the exit deadline passed", self.directory,
                )
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
            self._reset()  # a later append starts a new journal
        return ok

    def close_at_exit(self) -> None:
        """The exit hook: close against the shared exit deadline."""
        self.close(exit_deadline())

    def _after_fork(self) -> None:
        # The parent's segments and lock are not ours: unmapping and closing our copies leaves them alone.
        for seg in self._segs:
            seg.mm.close()  # unmaps this process's copy only
        for fd in (*(seg.fd for seg in self._segs), self._lock_fd):
            with contextlib.suppress(OSError):  # -1: no lock taken yet
                os.close(fd)
        self._reset()


@dataclass(slots=True, eq=False)
class _Call:
    fn: Callable[[], Any]
    after_stored: bool
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


_mp_registered_pid = 0


def _finish_in_multiprocessing_child() -> None:
    """A ``multiprocessing`` child leaves with ``os._exit`` (no atexit): run the exit hooks there too."""
    global _mp_registered_pid
    if _mp_registered_pid == os.getpid():
        return
    _mp_registered_pid = os.getpid()
    mp = sys.modules.get("multiprocessing")
    if mp is None or mp.parent_process() is None:
        return
    from multiprocessing import util

    util.Finalize(None, run_exit_hooks, exitpriority=100)
