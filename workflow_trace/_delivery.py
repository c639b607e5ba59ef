"""Background delivery for remote backends: journal -> spool -> worker -> transport.

``DeliveringBackend(transport)`` turns a :class:`~workflow_trace._transport.Transport` into a backend that
never blocks the caller on the network and never loses an event silently:

* The call path encodes its records and appends them to the spool's journal (one ``os.write``): no lock,
  no SQLite, no network. After a decorated call returns, a ``kill -9`` loses none of its events; memory does
  not grow with a server that is down, since the events live on disk.
* The journal's writer stores them in the spool (:mod:`workflow_trace._spool`, an SQLite outbox) with
  group commit. One worker thread per backend claims the oldest due rows of its destination (a lease keeps
  other processes off), calls ``transport.send(batch)`` and deletes what was delivered, in order.
* A failed batch stays where it is and is retried with exponential backoff and full jitter, honouring the
  server's ``Retry-After``; after ``breaker_threshold`` consecutive failures the delay is
  ``breaker_cooldown`` (that is the circuit breaker: the same schedule, capped). A non-retryable error
  (another 4xx, a redirect) marks the event it names *dead*: kept, logged once per cause at WARNING with
  the server's reason, shown by ``workflow-trace spool``; the rest go on at once. ``hold=True`` (the
  destination cannot take this event yet, e.g. an old instance) makes that event wait ``hold_interval``
  without counting attempts, and does not hold back the events behind it. A server that answers the same
  error ``max_server_errors`` times for one event makes it dead with that reason, rather than retrying it
  forever in silence; connection errors are retried until the server is back.
* ``flush(timeout)`` waits until everything emitted so far is delivered. At exit every backend shares one
  deadline (``WORKFLOW_TRACE_EXIT_TIMEOUT``, default 2 s); a destination whose last attempt failed is not
  waited for (its events are safe in the spool). ``close()`` returns within the exit timeout whatever the
  server does (a send in flight is abandoned to its daemon thread; its events stay in the spool).
* The spool is shared with later processes: the worker delivers what an earlier process left for the same
  ``transport.key``, and journals of processes that died are stored in the spool by the next one.
* After ``os.fork()`` the child has its own journal, spool connection and worker; its transport is closed
  once before its first send, so connections inherited from the parent are never shared.
* The worker never dies (everything it does runs inside the containment primitive) and records no
  workflow events for its own work.

Delivery is at least once: an event whose request reached the server but whose answer was lost is sent
again. Every event carries a unique ``event_id`` so the receiver can store it once.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._context import at_exit, at_fork, contained, describe, logger, report, suppressed, warn
from ._errors import ConfigurationError
from ._events import Event, Record, complete_models, encode_events, encode_records, to_event
from ._journal import Checkpoint, JournalWriter, Orphan, exit_deadline, exit_timeout, journal_dir, read_lines
from ._spool import Spool, SpoolRow, default_spool_path
from ._transport import DeliveryError, Transport

__all__ = [
    "DEFAULT_EXIT_TIMEOUT", "DEFAULT_FLUSH_TIMEOUT", "DeliveringBackend", "DeliveryStats", "exit_timeout", "warn_hold",
]

from ._journal import DEFAULT_EXIT_TIMEOUT

#: Seconds ``flush()`` waits when called without a timeout.
DEFAULT_FLUSH_TIMEOUT = 30.0
#: The longest ``Retry-After`` honoured, in seconds (a server asking for more is retried after this).
MAX_RETRY_AFTER = 3600.0


def warn_hold(key: str, message: str) -> None:
    """One WARNING per cause for events a destination cannot take yet (the transport that knows why, and
    the delivery layer that holds them, say it once between them)."""
    warn(("hold", key, message), "%s cannot take some workflow events yet: %s; they wait in the spool and are "
         "tried again later, the others go on", key, message)


@dataclass(frozen=True)
class DeliveryStats:
    """Counters of one backend in this process (for tests, benchmarks and diagnostics).

    Attributes:
        emitted: Events given to the backend.
        delivered: Events the worker delivered (its own and those it took from the spool).
        spooled: Events this process stored in the spool (every event goes through it).
        dead: Events refused by the server or given up (kept in the spool).
        failures: Failed sends (retryable errors).
        queued: Events held in memory (none: every event is on disk, in the journal or the spool, from the
            moment it is emitted).
        breaker: ``closed``, ``open`` (waiting out the cool-down) or ``half-open`` (probing).
    """

    emitted: int
    delivered: int
    spooled: int
    dead: int
    failures: int
    queued: int
    breaker: str


class DeliveringBackend:
    """A backend that delivers through a transport in the background (see the module docstring).

    Args:
        transport: Where events go; ``transport.key`` names the destination in the spool.
        spool_path: The spool file; default :func:`~workflow_trace._spool.default_spool_path`.
        batch_size: Events per ``transport.send`` call.
        backoff_base: First retry delay bound, in seconds; doubles per consecutive failure (full jitter).
        backoff_max: Largest retry delay bound before the breaker opens, in seconds.
        breaker_threshold: Consecutive failures after which the delay is ``breaker_cooldown``.
        breaker_cooldown: Seconds between attempts while the destination keeps failing.
        hold_interval: Seconds a held event waits before it is tried again.
        max_attempts: Failed attempts after which an event is given up (dead, counted, logged); ``None``
            (the default) retries connection errors until delivered.
        max_server_errors: The same error answered this many times for one event makes it dead.
        lease_seconds: How long a claim on the destination's spooled events lasts without renewal.
        spool_poll: Seconds between looks for events other processes left in the spool.
        max_queue: Accepted for compatibility; nothing is queued in memory any more.

    Raises:
        ConfigurationError: A parameter out of range, or a transport without a ``key``.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        spool_path: str | os.PathLike[str] | None = None,
        batch_size: int = 100,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        hold_interval: float = 60.0,
        max_attempts: int | None = None,
        max_server_errors: int = 10,
        lease_seconds: float = 60.0,
        spool_poll: float = 30.0,
        max_queue: int | None = None,
    ) -> None:
        key = getattr(transport, "key", None)
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"{type(transport).__name__} has no 'key' (a non-empty str)")
        for name, value in (("batch_size", batch_size), ("breaker_threshold", breaker_threshold),
                            ("max_server_errors", max_server_errors),
                            ("max_queue", 1 if max_queue is None else max_queue)):
            if value < 1:
                raise ConfigurationError(f"{name} must be at least 1, not {value!r}")
        if max_attempts is not None and max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1 or None, not {max_attempts!r}")
        for name, fvalue in (("backoff_base", backoff_base), ("backoff_max", backoff_max),
                             ("breaker_cooldown", breaker_cooldown), ("hold_interval", hold_interval),
                             ("lease_seconds", lease_seconds), ("spool_poll", spool_poll)):
            if not fvalue >= 0:
                raise ConfigurationError(f"{name} must be a non-negative number of seconds, not {fvalue!r}")
        complete_models()  # before any worker starts: see complete_models
        self.transport = transport
        self.key: str = key
        self.spool = Spool(default_spool_path() if spool_path is None else Path(spool_path))
        self.batch_size = batch_size
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self.hold_interval = hold_interval
        self.max_attempts = max_attempts
        self.max_server_errors = max_server_errors
        self.lease_seconds = lease_seconds
        self.spool_poll = spool_poll
        self._journal = JournalWriter(
            journal_dir(self.spool.path), self._ingest, self._recover,
            header={"kind": "spool", "dest": key}, name=f"the spool for {key}",
        )
        self._init_process_state()
        at_fork(self._after_fork)
        at_exit(self.close_at_exit, order=50)
        if self.spool.exists():
            self._ensure_worker()  # an earlier process may have left events for this destination

    def _init_process_state(self) -> None:
        """Everything that belongs to one process (set again in a forked child)."""
        self._generation = getattr(self, "_generation", 0) + 1  # a worker of another generation stops
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()  # starting the worker only; never held across I/O
        self._stop = False
        self._exiting = False
        self._closed = False
        self._owner = f"{time.time_ns():x}-{os.getpid()}-{random.getrandbits(32):08x}"
        self._origins: set[str] = set()
        self._reset_transport = False
        self._failures = 0  # consecutive failed sends (the last attempt failed when non-zero)
        self._pause_until = 0.0
        self._same: tuple[str, str, int] = ("", "", 0)
        self._dead_since_flush = 0
        self._n_emitted = self._n_delivered = self._n_spooled = self._n_dead = self._n_failures = 0

    def __repr__(self) -> str:
        return f"DeliveringBackend(key={self.key!r}, spool={str(self.spool.path)!r})"

    # -- the caller's side ----------------------------------------------------------------------------

    def write_records(self, records: list[Record]) -> None:
        """Journal records for delivery (one append; never waits for the spool or the network).

        Raises:
            OSError: the journal cannot be written (the caller contains it; flush() says False).
        """
        if records and self._closed:  # after close() there is no worker: into the spool at once
            self._spool_late([to_event(r) for r in records])
        elif records:
            self._journal.append(encode_records(records), len(records))
        self._n_emitted += len(records)

    def emit(self, events: Sequence[Event]) -> None:
        """Journal events for delivery (as :meth:`write_records`)."""
        if events and self._closed:
            self._spool_late(list(events))
        elif events:
            self._journal.append(encode_events(list(events)), len(events))
        self._n_emitted += len(events)

    def _spool_late(self, events: list[Event]) -> None:
        """Store in the spool (the next process delivers)."""
        self._n_spooled += self.spool.add(self.key, f"{time.time_ns():x}-{os.getpid()}-late", enumerate(events, 1))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event emitted so far is delivered.

        Args:
            timeout: Seconds to wait at most (``None``: :data:`DEFAULT_FLUSH_TIMEOUT`). Returns early, with
                ``False``, when the worker will not try again before the deadline.

        Returns:
            ``True`` when everything emitted before the call was delivered and no event was refused (dead)
            since the previous flush; ``False`` when some events are still in the spool (they are
            delivered later, by this process or the next) or were refused.
        """
        deadline = time.monotonic() + (DEFAULT_FLUSH_TIMEOUT if timeout is None else max(0.0, timeout))
        if not self._journal.flush(max(0.0, deadline - time.monotonic())):
            return False
        if self._journal.owner:
            self._origins.add(self._journal.owner)
        self._wake.set()
        while True:
            if (pending := self._pending_own()) == 0:
                dead, self._dead_since_flush = self._dead_since_flush, 0
                return dead == 0
            now = time.monotonic()
            due = self.spool.next_due(self.key, list(self._origins))  # when the next attempt is due (time.time())
            if (now >= deadline or (self._exiting and self._failures) or self._pause_until > deadline
                    or (due is not None and due - time.time() > deadline - now)):
                if not self._exiting:  # out of time, or no attempt in time; close() says what is left itself
                    warn(("pending", self.key, pending), "%d event(s) for %s wait in the spool %s: they are retried "
                         "with backoff, by this process or the next that uses it", pending, self.key, self.spool.path)
                return False
            self._ensure_worker()
            time.sleep(min(0.02, max(0.0, deadline - now)))

    def _pending_own(self) -> int:
        return sum(self.spool.pending_count(self.key, origin) for origin in self._origins)

    def stats(self) -> DeliveryStats:
        """This process's counters (see :class:`DeliveryStats`)."""
        breaker = "closed"
        if self._failures >= self.breaker_threshold:
            breaker = "open" if time.monotonic() < self._pause_until else "half-open"
        return DeliveryStats(self._n_emitted, self._n_delivered, self._n_spooled, self._n_dead, self._n_failures,
                             0, breaker)

    def close(self, deadline: float | None = None) -> None:
        """Store what is left in the spool, stop the worker, release the connections — within the exit
        timeout (or ``deadline``), whatever the server does. Events not delivered stay in the spool."""
        if deadline is None:
            deadline = time.monotonic() + exit_timeout()
        self._exiting = True
        with contained(f"closing the delivery to {self.key}", allow_raise=False):
            self.flush(max(0.0, deadline - time.monotonic()))
        self._journal.close(deadline)
        self._closed = True
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        left = 0
        with contained(f"closing the delivery to {self.key}", allow_raise=False):
            if thread is None or not thread.is_alive():
                if self.spool.exists():
                    left = self._pending_own()
                    self.spool.release(self.key, self._owner)
                self.transport.close()
                self.spool.close()  # the last connection: SQLite folds the WAL back and removes -wal/-shm
        if left:
            logger.warning("%d event(s) for %s wait in the spool %s; the next process using it "
                           "delivers them", left, self.key, self.spool.path)

    def close_at_exit(self) -> None:
        """The exit hook: close against the deadline every backend shares."""
        self.close(exit_deadline())

    # -- the journal's writer (stores journal lines in the spool) ---------------------------------------

    def _ingest(self, lines: list[bytes], header: dict[str, Any], checkpoint: Checkpoint) -> None:
        self._store(lines, header, checkpoint)
        self._origins.add(checkpoint.owner)
        self._ensure_worker()
        self._wake.set()

    def _store(self, lines: list[bytes], header: dict[str, Any], checkpoint: Checkpoint) -> None:
        dest = str(header.get("dest") or self.key)
        start = checkpoint.offset - sum(len(line) + 1 for line in lines)
        base = checkpoint.segment * 10**12 + start
        added = self.spool.ingest(dest, checkpoint.owner, base, lines, str(header.get("prefix") or ""),
                                  (checkpoint.owner, checkpoint.segment, checkpoint.offset))
        if dest == self.key:
            self._n_spooled += added

    def _recover(self, orphans: list[Orphan]) -> None:
        """Store the journals of processes that are gone in the spool, then delete them."""
        for orphan in orphans:
            for segment, path in orphan.segments:
                lines, start, header = read_lines(path, self.spool.journal_offset(orphan.owner, segment))
                if not lines:
                    continue
                end = start + sum(len(line) + 1 for line in lines)
                try:
                    self._store(lines, header or {}, Checkpoint(orphan.owner, segment, end))
                except OSError as exc:
                    warn(("spool", "recover"), "%s: cannot store the journal of a process that ended (%s); "
                         "trying again later", self.spool.path, exc)
                    orphan.release(delete=False)
                    break
            else:  # all of it is in the spool
                self.spool.forget_journal(orphan.owner)
                orphan.release(delete=True)
        self._wake.set()

    # -- the worker ---------------------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop = False
                self._thread = threading.Thread(target=self._run, name=f"workflow_trace delivery ({self.key})",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        suppressed.set(True)  # this thread's own context: nothing it calls is recorded
        generation = self._generation
        backoff = 0.05
        while not self._stop and generation == self._generation:
            idle, failed = True, True
            with contained(f"delivering to {self.key}", allow_raise=False):
                idle = not self._work()
                failed = False
            if self._stop or generation != self._generation:
                return
            if failed:  # contained above: never spin on a surprise
                self._wake.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            elif idle:
                backoff = 0.05
                poll = self.spool_poll if self.spool_poll > 0 else 1.0
                due = self.spool.next_due(self.key, list(self._origins))
                self._wake.wait(max(0.01, poll if due is None else min(poll, due - time.time())))
                self._wake.clear()

    def _work(self) -> bool:
        """Deliver one batch; ``False`` when there is nothing to do now."""
        now = time.monotonic()
        if now < self._pause_until:
            self._wake.wait(self._pause_until - now)
            self._wake.clear()
            return True
        if not self.spool.exists():
            return False
        rows = self.spool.claim(self.key, self._owner, self.batch_size, self.lease_seconds, sorted(self._origins))
        if rows is None:  # other live processes deliver what is due
            self._wake.wait(min(1.0, self.lease_seconds))
            self._wake.clear()
            return True
        if not rows:
            return False
        events: list[Event] = []
        for row in rows:
            try:
                events.append(row.event())
            except ValueError as exc:
                self.spool.settle(self.key, dead=[row.event_id], error=f"cannot read the event: {exc}")
                self._n_dead += 1
                warn(("spool", "unreadable", self.key), "a spooled event for %s cannot be read; marked dead",
                     self.key)
                return True  # claim again: the dead row is skipped
        if self._reset_transport:
            self._reset_transport = False
            with contained(f"resetting the transport for {self.key}", allow_raise=False):
                self.transport.close()
        self._settle(rows, events, self._send(events))
        return True

    def _send(self, events: list[Event]) -> DeliveryError | None:
        """Call the transport; what went wrong, as a :class:`DeliveryError` (``None``: all delivered). Never raises."""
        try:
            self.transport.send(events)
        except DeliveryError as exc:
            return exc
        except OSError as exc:  # requests' ConnectionError and Timeout are OSErrors too
            return DeliveryError(describe(exc), retryable=True)
        except Exception as exc:  # noqa: BLE001 - a broken transport must not stop the worker
            report(exc, f"the transport for {self.key} raised unexpectedly (will retry)", allow_raise=False)
            return DeliveryError(describe(exc), retryable=True)
        return None

    def _settle(self, rows: list[SpoolRow], events: list[Event], error: DeliveryError | None) -> None:
        k = len(rows) if error is None else min(max(int(error.delivered), 0), len(rows))
        done = [r.event_id for r in rows[:k]]
        rest = rows[k:]
        self._n_delivered += k
        if error is None or not rest:
            self.spool.settle(self.key, delete=done)
            self._recovered()
            return
        head = rest[0]
        message = str(error)
        if not error.hold and not error.retryable:
            self._dead(done, head, events[k], message)
            self._recovered()
            return
        if error.hold:
            delay = max(self.hold_interval, min(error.retry_after or 0.0, MAX_RETRY_AFTER))
            self.spool.settle(self.key, delete=done, held=[head.event_id], error=message,
                              not_before=time.time() + delay)
            warn_hold(self.key, message)
            return
        # retry: the destination failed (no answer, or an error it may recover from)
        self._failures += 1
        self._n_failures += 1
        answered = error.status is not None
        count = self._same[2] + 1 if answered and self._same[:2] == (head.event_id, message) else 1
        self._same = (head.event_id, message, count) if answered else ("", "", 0)
        if answered and count >= self.max_server_errors:
            self._dead(done, head, events[k], f"gave up after {count} identical answers: {message}")
            self._same = ("", "", 0)
            self._pause_until = time.monotonic() + self._delay(error.retry_after)
            return
        given_up = self.spool.settle(self.key, delete=done, failed=[r.event_id for r in rest], error=message,
                                     max_attempts=self.max_attempts)
        if given_up:
            self._n_dead += given_up
            if any(r.origin in self._origins for r in rest):
                self._dead_since_flush += given_up
            warn(("gave up", self.key), "gave up %d workflow event(s) for %s after %d attempts (%s); kept in the "
                 "spool as dead", given_up, self.key, self.max_attempts, message)
        delay = self._delay(error.retry_after)
        self._pause_until = time.monotonic() + delay
        if self._failures == 1:
            warn(("failing", self.key), "delivery to %s failed (%s); the events are kept in the spool and "
                 "retried with backoff", self.key, message)
        elif self._failures == self.breaker_threshold:
            warn(("breaker", self.key), "%d consecutive failures delivering to %s (%s): trying again every %.1f s; "
                 "new events wait in the spool", self._failures, self.key, message, delay)

    def _delay(self, retry_after: float | None) -> float:
        """Full-jitter exponential backoff, the cool-down after ``breaker_threshold`` failures."""
        if self._failures >= self.breaker_threshold:
            delay = self.breaker_cooldown
        else:
            delay = random.uniform(0.0, min(self.backoff_max, self.backoff_base * 2 ** max(0, self._failures - 1)))
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay

    def _recovered(self) -> None:
        if self._failures:
            logger.warning("delivery to %s resumed after %d failed attempt(s)", self.key, self._failures)
        self._failures = 0
        self._pause_until = 0.0

    def _dead(self, done: list[str], row: SpoolRow, event: Event, message: str) -> None:
        """Delete what was delivered and mark ``row`` dead (counted, logged once per cause)."""
        self.spool.settle(self.key, delete=done, dead=[row.event_id], error=message)
        self._n_dead += 1
        if row.origin in self._origins:
            self._dead_since_flush += 1
        warn(("dead", self.key, message), "%s refused a workflow event (%s of step %r): %s; kept in the spool as "
             "dead (see `workflow-trace spool`)", self.key, event.kind, event.step.name, message)

    # -- fork -------------------------------------------------------------------------------------------

    def _after_fork(self) -> None:
        self._init_process_state()
        self._reset_transport = True
