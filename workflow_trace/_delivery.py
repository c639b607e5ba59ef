"""Background delivery for remote backends: a bounded queue, a worker, retries and a durable spool.

``DeliveringBackend(transport)`` turns a :class:`~workflow_trace._transport.Transport` into a
:class:`~workflow_trace.backends.Backend` that never blocks the caller on the network and never loses an
event silently:

* ``emit(events)`` appends to an in-memory queue under a lock that is never held across I/O, and wakes
  the worker. That is all the user's call pays for.
* A background worker thread takes batches of up to ``batch_size`` events and calls
  ``transport.send(batch)``, one batch at a time, so the order of emission is the order of delivery.
* A failed batch (``DeliveryError``, or any ``OSError`` such as requests' ``ConnectionError`` and
  ``Timeout``) goes to the spool (:mod:`workflow_trace._spool`, SQLite) and is retried from there with
  exponential backoff and full jitter, honouring the server's ``Retry-After``. ``delivered=k`` means the
  first ``k`` events went through. ``hold=True`` keeps the events pending without counting attempts and
  retries after ``hold_interval``. A non-retryable error (other 4xx) marks the event it names (the one at
  index ``delivered``) *dead*: it is kept in the spool, logged at WARNING with the server's message and
  shown by ``workflow-trace spool``; the rest of the batch is retried at once.
* Order: while this process has events in the spool, new events queue up behind them (the worker
  drains the spool first), so a ``step_finished`` is never delivered before its ``step_started``. The
  spool is read back in original order: by the emitting process's start time, then its emission counter.
* A circuit breaker: after ``breaker_threshold`` consecutive failures the worker stops calling the server
  for ``breaker_cooldown`` seconds and writes new events straight to the spool, then sends one batch as a
  probe (half-open): success closes the breaker, failure opens it again.
* Queue bound: while the worker is waiting (backoff, open breaker) it moves the queue to the spool. When
  the queue grows past ``max_queue`` anyway (the worker is busy in a slow ``send``), the emitting thread
  itself writes the queue to the spool: a local SQLite write on the user's thread, once per ``max_queue``
  events, is the last resort that keeps memory bounded without dropping anything.
* The spool is shared with later processes: on start the worker delivers what an earlier process with the
  same ``transport.key`` left. A per-destination lease in the spool lets one process at a time deliver
  spooled events (no event sent twice concurrently, order kept).
* ``flush(timeout)`` waits until everything emitted so far is delivered. At interpreter exit a flush runs
  with a deadline of ``WORKFLOW_TRACE_EXIT_TIMEOUT`` seconds (default 2; for all backends together), then
  whatever is still in memory is written to the spool, so the next process delivers it.
* After ``os.fork()`` the child starts with an empty queue and its own worker (and its own connections):
  it never re-sends the parent's in-memory events.
* The worker never dies (every failure is contained and logged on the ``workflow_trace`` logger) and does
  not record workflow events for its own work (:func:`in_delivery_worker`).

Delivery is at least once: an event whose request reached the server but whose answer was lost is sent
again. Every event carries a unique ``event_id`` so the receiver can store it once.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import re
import sqlite3
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._errors import ConfigurationError
from ._events import Event
from ._spool import Spool, SpoolRow, default_spool_path
from ._transport import DeliveryError, Transport

__all__ = [
    "DEFAULT_EXIT_TIMEOUT",
    "DEFAULT_FLUSH_TIMEOUT",
    "DeliveringBackend",
    "DeliveryStats",
    "exit_timeout",
    "in_delivery_worker",
]

log = logging.getLogger("workflow_trace.delivery")

#: Seconds the exit flush may take, for all backends together (``WORKFLOW_TRACE_EXIT_TIMEOUT``).
DEFAULT_EXIT_TIMEOUT = 2.0
#: Seconds ``flush()`` waits when called without a timeout.
DEFAULT_FLUSH_TIMEOUT = 30.0
#: The longest ``Retry-After`` honoured, in seconds (a server asking for more is retried after this).
MAX_RETRY_AFTER = 3600.0

_Kind = Literal["ok", "retry", "dead", "hold"]

_worker_flag = threading.local()
_live: weakref.WeakSet[DeliveringBackend] = weakref.WeakSet()
_exit_done_pid = 0

_SECRET_RE = re.compile(r"(?i)((?:token|api[_-]?key|password|secret|authorization)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;]+")


def in_delivery_worker() -> bool:
    """Whether the calling thread is a delivery worker (the runtime records nothing for its work)."""
    return bool(getattr(_worker_flag, "active", False))


def _report_internal(exc: BaseException) -> None:
    """Tell the runtime's internal-error hooks (the test suite fails a test on an unexpected one)."""
    try:
        from ._runtime import internal_error_hooks

        for hook in list(internal_error_hooks):
            hook(exc)
    except Exception:  # reporting must not take the worker down
        log.debug("an internal-error hook failed", exc_info=True)


def exit_timeout() -> float:
    """The exit flush deadline from ``WORKFLOW_TRACE_EXIT_TIMEOUT`` (seconds, default 2)."""
    raw = os.environ.get("WORKFLOW_TRACE_EXIT_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_EXIT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        log.warning("WORKFLOW_TRACE_EXIT_TIMEOUT=%r is not a number; using %s s", raw, DEFAULT_EXIT_TIMEOUT)
        return DEFAULT_EXIT_TIMEOUT
    return max(0.0, value)


def _redact(message: str, limit: int = 500) -> str:
    """A failure message safe to log and store: secrets that look like ``token=...`` masked, truncated."""
    message = _SECRET_RE.sub(r"\1***", message)
    return message if len(message) <= limit else message[:limit] + "..."


def _new_origin() -> str:
    # Sorts by process start time, so spooled events of an older process are delivered first.
    return f"{time.time_ns():020d}-{os.getpid()}-{random.getrandbits(32):08x}"


@dataclass(frozen=True)
class DeliveryStats:
    """Counters of one backend in this process (for tests, benchmarks and diagnostics).

    Attributes:
        emitted: Events given to ``emit``.
        delivered: Events the worker delivered (its own and those it took from the spool).
        spooled: Events this process wrote to the spool.
        dead: Events refused by the server or given up after ``max_attempts`` (kept in the spool).
        failures: Failed sends (retryable errors).
        queued: Events in memory now (queued and in flight).
        breaker: ``closed``, ``open`` or ``half-open``.
    """

    emitted: int
    delivered: int
    spooled: int
    dead: int
    failures: int
    queued: int
    breaker: str


@dataclass
class _Outcome:
    delivered: int
    kind: _Kind = "ok"
    message: str = ""
    retry_after: float | None = None


class DeliveringBackend:
    """A :class:`~workflow_trace.backends.Backend` that delivers through a transport in the background.

    One worker thread per backend rather than one per process: two destinations (a Supervisely instance
    and an OpenLineage endpoint) must not wait on each other's slow or failing server, and a process has
    one or two remote backends, so the threads are few. The worker starts on the first ``emit`` (or at
    construction when the spool holds events for this destination).

    In a forked child the worker calls ``transport.close()`` once before its first send, so that
    connections inherited from the parent are never shared with it; a transport must open new
    connections on its next ``send`` after ``close()`` (a ``requests.Session`` does).

    Args:
        transport: Where events go; ``transport.key`` names the destination in the spool.
        spool_path: The spool file; default :func:`~workflow_trace._spool.default_spool_path`
            (``WORKFLOW_TRACE_SPOOL``, else next to ``WORKFLOW_TRACE_DB``, else ``./.workflow_trace/spool.db``).
        max_queue: Events held in memory before they are written to the spool.
        batch_size: Events per ``transport.send`` call.
        backoff_base: First retry delay bound, in seconds; doubles per consecutive failure (full jitter).
        backoff_max: Largest retry delay bound, in seconds.
        breaker_threshold: Consecutive failures that open the circuit breaker.
        breaker_cooldown: Seconds the open breaker keeps the worker from calling the server.
        hold_interval: Seconds to wait after a ``DeliveryError(hold=True)``.
        max_attempts: Failed attempts after which an event is given up (marked dead, counted, logged);
            ``None`` (the default) retries until delivered.
        lease_seconds: How long a claim on the destination's spooled events lasts without renewal.
        spool_poll: Seconds between checks for events other processes left in the spool.

    Raises:
        ConfigurationError: A parameter out of range, or a transport without a ``key``.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        spool_path: str | os.PathLike[str] | None = None,
        max_queue: int = 10_000,
        batch_size: int = 100,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        hold_interval: float = 60.0,
        max_attempts: int | None = None,
        lease_seconds: float = 60.0,
        spool_poll: float = 30.0,
    ) -> None:
        key = getattr(transport, "key", None)
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"{type(transport).__name__} has no 'key' (a non-empty str)")
        for name, value in (
            ("max_queue", max_queue),
            ("batch_size", batch_size),
            ("breaker_threshold", breaker_threshold),
        ):
            if value < 1:
                raise ConfigurationError(f"{name} must be at least 1, not {value!r}")
        if max_attempts is not None and max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1 or None, not {max_attempts!r}")
        for name, fvalue in (
            ("backoff_base", backoff_base),
            ("backoff_max", backoff_max),
            ("breaker_cooldown", breaker_cooldown),
            ("hold_interval", hold_interval),
            ("lease_seconds", lease_seconds),
            ("spool_poll", spool_poll),
        ):
            if not fvalue >= 0:
                raise ConfigurationError(f"{name} must be a non-negative number of seconds, not {fvalue!r}")
        self.transport = transport
        self.key: str = key
        self.spool = Spool(default_spool_path() if spool_path is None else Path(spool_path))
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self.hold_interval = hold_interval
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.spool_poll = spool_poll
        self._closed = False
        self._init_process_state()
        _live.add(self)
        if self.spool.exists():
            # An earlier process may have left events for this destination: deliver them now.
            with self._lock:
                self._ensure_worker()

    def _init_process_state(self) -> None:
        """Everything that belongs to one process (set again in a forked child)."""
        self._pid = os.getpid()
        self._origin = _new_origin()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # notified whenever the worker settles a batch
        self._spill_lock = threading.Lock()  # serialises writes of this process's events to the spool
        self._wake = threading.Event()
        self._queue: deque[tuple[int, Event]] = deque()
        self._inflight: list[tuple[int, Event]] = []
        self._inflight_spooled = False
        self._settling = False
        self._busy = 0
        self._seq = 0
        self._spool_mode = False  # this process has events in the spool: new ones wait behind them
        self._spill_gen = 0
        self._spilling = 0
        self._spill_retry_at = 0.0
        self._spool_retry_at = 0.0
        self._next_spool_check = 0.0
        self._thread: threading.Thread | None = None
        self._stop = False
        self._reset_transport = False
        self._failures = 0
        self._pause_until = 0.0
        self._holding = False
        self._dead_since_flush = 0
        self._n_emitted = 0
        self._n_delivered = 0
        self._n_spooled = 0
        self._n_dead = 0
        self._n_failures = 0

    def __repr__(self) -> str:
        return f"DeliveringBackend(key={self.key!r}, spool={str(self.spool.path)!r})"

    # -- the user's side ---------------------------------------------------------------------------

    def emit(self, events: Sequence[Event]) -> None:
        """Queue ``events`` for delivery (no I/O unless the queue is over ``max_queue``)."""
        if not events:
            return
        with self._lock:
            closed = self._closed
            if not closed:
                seq = self._seq
                append = self._queue.append
                for event in events:
                    seq += 1
                    append((seq, event))
                self._n_emitted += seq - self._seq
                self._seq = seq
                overflow = len(self._queue) > self.max_queue
                if self._thread is None:
                    self._ensure_worker()
        if closed:
            self._spool_late(events)
            return
        if not self._wake.is_set():
            self._wake.set()
        if overflow and time.monotonic() >= self._spill_retry_at:
            self._spill_memory("the delivery queue was full")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event emitted so far is delivered.

        Args:
            timeout: Seconds to wait at most (``None``: :data:`DEFAULT_FLUSH_TIMEOUT`). Returns early, with
                ``False``, when the worker will not try again before the deadline (backoff, open breaker).

        Returns:
            ``True`` when everything emitted before the call was delivered and no event was refused (dead)
            since the previous flush; ``False`` when some events are still queued or spooled (they are
            delivered later, by this process or the next) or were refused.
        """
        deadline = time.monotonic() + (DEFAULT_FLUSH_TIMEOUT if timeout is None else max(0.0, timeout))
        with self._lock:
            target = self._seq
        self._wake.set()
        while True:
            with self._lock:
                head = self._inflight[0][0] if self._inflight else (self._queue[0][0] if self._queue else None)
                in_memory = head is not None and head <= target
                spool_mode, spilling, pause_until = self._spool_mode, self._spilling, self._pause_until
                busy = self._busy
            done = False
            if not in_memory and spilling == 0 and busy == 0:
                if not spool_mode:
                    done = True
                else:
                    try:
                        done = self.spool.pending_count(self.key, self._origin, target) == 0
                    except (sqlite3.Error, OSError):
                        done = False
            if done:
                with self._lock:
                    dead, self._dead_since_flush = self._dead_since_flush, 0
                return dead == 0
            now = time.monotonic()
            if now >= deadline or pause_until > deadline:
                return False
            with self._cond:
                self._cond.wait(min(deadline - now, 0.05 if spool_mode else 0.5))

    def close(self) -> None:
        """Flush (up to the exit timeout), keep the rest in the spool, stop the worker, close the transport."""
        if self._closed:
            return
        deadline = time.monotonic() + exit_timeout()
        self._shutdown(deadline)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        try:
            self.transport.close()
        except Exception:  # closing must not raise into the caller
            log.debug("closing the transport of %s failed", self.key, exc_info=True)
        _live.discard(self)

    def stats(self) -> DeliveryStats:
        """A snapshot of this backend's counters in this process."""
        with self._lock:
            queued = len(self._queue) + len(self._inflight)
        if self._failures < self.breaker_threshold:
            breaker = "closed"
        elif time.monotonic() < self._pause_until:
            breaker = "open"
        else:
            breaker = "half-open"
        return DeliveryStats(
            emitted=self._n_emitted,
            delivered=self._n_delivered,
            spooled=self._n_spooled,
            dead=self._n_dead,
            failures=self._n_failures,
            queued=queued,
            breaker=breaker,
        )

    # -- shutdown and fork -------------------------------------------------------------------------

    def _shutdown(self, deadline: float) -> None:
        """Flush until ``deadline``, then write what is left in memory to the spool and stop the worker."""
        if self._closed:
            return
        try:
            self.flush(max(0.0, deadline - time.monotonic()))
        except Exception:  # shutdown goes on, whatever flush did
            log.exception("flushing %s at shutdown failed", self.key)
        left = self._spill_memory("not delivered before shutdown", at_exit=True)
        self._wake.set()
        # A worker that is settling a failed batch writes it to the spool itself: give it a moment.
        with self._cond:
            self._cond.wait_for(
                lambda: not self._spilling and not (self._inflight and not self._inflight_spooled),
                timeout=max(0.0, deadline - time.monotonic()) + 0.5,
            )
        if left:
            log.warning(
                "%d workflow event(s) for %s not delivered before shutdown; kept in the spool %s for later",
                left,
                self.key,
                self.spool.path,
            )
        thread = self._thread
        if thread is None or not thread.is_alive():
            # Otherwise the worker releases the lease when it stops: it may be sending spooled events now,
            # and another process must not send them again meanwhile. (A worker killed with its process
            # leaves a lease that the next process on this host takes over at once: its pid is gone.)
            self._release_lease()

    def _spool_late(self, events: Sequence[Event]) -> None:
        """An emit after close: write straight to the spool (the next process delivers it)."""
        with self._lock:
            seq = self._seq
            items = [(seq + i + 1, e) for i, e in enumerate(events)]
            self._seq = seq + len(items)
        try:
            with self._spill_lock:
                self.spool.add(self.key, self._origin, items, error="emitted after close")
            self._n_spooled += len(items)
        except (sqlite3.Error, OSError) as exc:
            log.warning("%d workflow event(s) emitted after close were lost: %s", len(items), exc)

    def _after_fork_in_child(self) -> None:
        closed = self._closed
        self._init_process_state()
        self._closed = closed
        self._reset_transport = True
        # The child does not look for other processes' events straight away (children are often many).
        self._next_spool_check = time.monotonic() + self.spool_poll
        self.spool.after_fork()

    # -- the worker --------------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        """Start the worker (call with ``self._lock`` held)."""
        if self._thread is not None or self._stop:
            return
        thread = threading.Thread(target=self._run, name=f"workflow-trace-delivery[{self.key}]", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: the exit path spools what is queued
            log.debug("cannot start the delivery worker for %s", self.key, exc_info=True)
            return
        self._thread = thread
        _register_multiprocessing_exit()

    def _run(self) -> None:
        _worker_flag.active = True
        try:
            # Whatever the transport calls (an SDK function someone decorated) records nothing.
            from ._runtime import suppressed

            suppressed.set(True)
        except ImportError:  # pragma: no cover - the runtime is part of the package
            pass
        while not self._stop:
            try:
                self._run_once()
            except BaseException as exc:  # the worker must never die; the spool keeps the events
                log.exception("the delivery worker for %s failed; retrying in 1 s", self.key)
                _report_internal(exc)
                self._wake.wait(1.0)
        self._release_lease()

    def _release_lease(self) -> None:
        """Let other processes deliver this destination's spool (at once, not after the lease expires)."""
        try:
            if self.spool.exists():
                self.spool.release(self.key, self._origin)
        except (sqlite3.Error, OSError):
            log.debug("releasing the spool lease of %s failed", self.key, exc_info=True)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._wake.wait(seconds)

    def _run_once(self) -> None:
        self._wake.clear()
        if self._reset_transport:
            self._reset_transport = False
            try:
                self.transport.close()  # drop connections inherited from the parent process
            except Exception:  # a transport failing to close must not stop delivery
                log.debug("closing the inherited transport of %s failed", self.key, exc_info=True)
        now = time.monotonic()
        if now < self._pause_until:
            # Waiting out a backoff or an open breaker: keep new events safe on disk meanwhile.
            if self._queue and now >= self._spill_retry_at:
                self._spill_memory("waiting for the server")
            self._wait(self._pause_until - now)
            return
        if (self._spool_mode or now >= self._next_spool_check) and now >= self._spool_retry_at:
            try:
                if self._work_spool(now):
                    return
            except (sqlite3.Error, OSError) as exc:
                # The spool is unusable (read-only disk?): keep delivering from memory meanwhile.
                log.error("the spool %s is unusable (%s); delivering from memory", self.spool.path, exc)
                self._spool_retry_at = now + 30.0
                with self._lock:
                    self._spool_mode = False
        self._work_memory()

    def _leave_spool_mode(self, gen: int) -> bool:
        """Leave spool mode unless a spill started since ``gen`` was read (its rows might be missed)."""
        with self._lock:
            if self._spill_gen == gen and self._spilling == 0:
                self._spool_mode = False
                self._cond.notify_all()
                return True
        return False

    def _work_spool(self, now: float) -> bool:
        """Deliver one batch from the spool; ``False`` when the worker should turn to the memory queue."""
        with self._lock:
            gen, spilling, spool_mode = self._spill_gen, self._spilling, self._spool_mode
        if not spool_mode and not self.spool.has_pending(self.key):
            self._next_spool_check = now + self.spool_poll
            return False
        rows = self.spool.claim(self.key, self._origin, self.batch_size, self.lease_seconds)
        if rows is None:
            # Another live process is delivering this destination's spool (ours included, in order).
            if spool_mode:
                if (
                    spilling == 0
                    and self.spool.pending_count(self.key, self._origin) == 0
                    and self._leave_spool_mode(gen)
                ):
                    return False
                if self._queue:
                    self._spill_memory("another process is delivering the spool")
                self._wait(min(1.0, self.lease_seconds))
                return True
            self._next_spool_check = now + self.spool_poll
            return False
        if not rows:
            self._next_spool_check = now + self.spool_poll
            if spilling == 0 and self._leave_spool_mode(gen):
                return False
            if not spool_mode:
                return False
            self._wait(0.01)  # a spill is being written; look again in a moment
            return True
        self._deliver_rows(rows)
        return True

    def _deliver_rows(self, rows: list[SpoolRow]) -> None:
        events: list[Event] = []
        for row in rows:
            try:
                events.append(Event.model_validate_json(row.payload))
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                self.spool.settle(self.key, dead=[row.event_id], error=_redact(f"cannot read the event: {exc}"))
                self._n_dead += 1
                log.warning("spooled event %s for %s cannot be read; marked dead", row.event_id, self.key)
                return  # claim again: the dead row is skipped
        outcome = self._send(events)
        with self._lock:
            self._busy += 1  # flush() must not see the rows settled before the counters are
        try:
            self._settle_rows(rows, events, outcome)
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def _settle_rows(self, rows: list[SpoolRow], events: list[Event], outcome: _Outcome) -> None:
        """Record a spool batch's outcome: delete what went through, mark refused dead, count a failure."""
        k = outcome.delivered
        done = [r.event_id for r in rows[:k]]
        rest = rows[k:]
        dead: list[str] = []
        failed: list[str] = []
        if outcome.kind == "dead":
            dead = [rest[0].event_id]
        elif outcome.kind in ("retry", "hold"):
            failed = [r.event_id for r in rest]
        settled = self.spool.settle(
            self.key,
            delete=done,
            dead=dead,
            failed=failed,
            error=outcome.message or None,
            count_attempt=outcome.kind == "retry",
            max_attempts=self.max_attempts,
        )
        self._n_delivered += k
        if outcome.kind == "dead":
            self._count_dead(rest[0].origin, events[k], outcome.message)
        if settled.given_up:
            self._n_dead += settled.given_up
            if any(r.origin == self._origin for r in rest):
                with self._lock:
                    self._dead_since_flush += settled.given_up
            log.warning(
                "gave up %d workflow event(s) for %s after %d attempts (%s); kept in the spool as dead",
                settled.given_up,
                self.key,
                self.max_attempts,
                outcome.message,
            )
        self._after_outcome(outcome)

    def _work_memory(self) -> None:
        with self._lock:
            if self._spool_mode or self._stop:
                return
            queue = self._queue
            if not queue:
                batch: list[tuple[int, Event]] = []
            else:
                batch = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
                self._inflight = batch
        if not batch:
            self._wait(max(0.05, self._next_spool_check - time.monotonic()))
            return
        outcome = self._send([e for _, e in batch])
        k = outcome.delivered
        self._n_delivered += k
        rest = batch[k:]
        with self._lock:
            # Either the exit path took this batch to the spool already, or from now on it leaves it to us.
            spooled_at_exit = self._inflight_spooled
            self._settling = not spooled_at_exit
        try:
            self._after_outcome(outcome)
            if spooled_at_exit:
                if k:  # remove from the spool what did go through
                    self.spool.settle(self.key, delete=[e.event_id for _, e in batch[:k]])
            elif rest:
                if outcome.kind == "dead":
                    self._count_dead(self._origin, rest[0][1], outcome.message)
                    self._spill_items(rest[:1], "dead", outcome.message, attempts=1)
                    rest = rest[1:]
                if rest:
                    attempts = 1 if outcome.kind == "retry" else 0
                    self._spill_items(rest, "pending", outcome.message, attempts=attempts)
        except (sqlite3.Error, OSError):
            log.debug("could not remove delivered events from the spool", exc_info=True)
        finally:
            with self._cond:
                self._inflight = []
                self._inflight_spooled = False
                self._settling = False
                self._cond.notify_all()

    def _send(self, events: list[Event]) -> _Outcome:
        """Call the transport; classify what happened. Never raises."""
        try:
            self.transport.send(events)
        except DeliveryError as exc:
            k = min(max(int(exc.delivered), 0), len(events))
            if k >= len(events):
                return _Outcome(len(events))
            kind: _Kind = "hold" if exc.hold else ("retry" if exc.retryable else "dead")
            return _Outcome(k, kind, _redact(str(exc)), exc.retry_after)
        except OSError as exc:  # requests' ConnectionError and Timeout are OSErrors too
            return _Outcome(0, "retry", _redact(f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # a broken transport must not stop the worker (logged with its traceback)
            log.error("the transport for %s raised unexpectedly; will retry", self.key, exc_info=True)
            _report_internal(exc)
            return _Outcome(0, "retry", _redact(f"{type(exc).__name__}: {exc}"))
        return _Outcome(len(events))

    def _count_dead(self, origin: str, event: Event, message: str) -> None:
        self._n_dead += 1
        if origin == self._origin:
            with self._lock:
                self._dead_since_flush += 1
        log.warning(
            "%s refused workflow event %s (%s of step %r): %s; kept in the spool as dead (see `workflow-trace spool`)",
            self.key,
            event.event_id,
            event.kind,
            event.step.name,
            message,
        )

    def _after_outcome(self, outcome: _Outcome) -> None:
        """Update the retry schedule and the circuit breaker from one send's outcome."""
        now = time.monotonic()
        if outcome.kind in ("ok", "dead"):  # the server answered
            if self._failures or self._holding:
                log.warning("delivery to %s resumed after %d failed attempt(s)", self.key, self._failures)
            self._failures = 0
            self._holding = False
            self._pause_until = 0.0
            return
        if outcome.kind == "hold":
            if not self._holding:
                log.warning(
                    "%s cannot take workflow events yet (%s); keeping them in the spool, retrying every %.0f s",
                    self.key,
                    outcome.message,
                    self.hold_interval,
                )
            self._holding = True
            self._pause_until = now + max(self.hold_interval, outcome.retry_after or 0.0)
            return
        self._failures += 1
        self._n_failures += 1
        if self._failures >= self.breaker_threshold:
            delay = self.breaker_cooldown
            if self._failures == self.breaker_threshold:
                log.warning(
                    "circuit open: %d consecutive failures delivering to %s (%s); events go to the spool, "
                    "next attempt in %.1f s",
                    self._failures,
                    self.key,
                    outcome.message,
                    delay,
                )
            else:
                log.debug("probe of %s failed (%s)", self.key, outcome.message)
        else:
            delay = random.uniform(0.0, min(self.backoff_max, self.backoff_base * 2 ** (self._failures - 1)))
            if self._failures == 1:
                log.warning(
                    "delivery to %s failed (%s); events kept in the spool, retrying with backoff",
                    self.key,
                    outcome.message,
                )
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
        self._pause_until = now + delay

    # -- spilling to the spool ---------------------------------------------------------------------

    def _spill_memory(self, reason: str, *, at_exit: bool = False) -> int:
        """Move the memory queue to the spool, in order; returns how many events were written.

        With ``at_exit`` the backend is closed at the same time, and a batch in flight (the worker may be
        stuck in a send) is written too unless the worker is already settling it itself.
        """
        with self._spill_lock:
            with self._lock:
                items: list[tuple[int, Event]] = []
                if at_exit:
                    self._closed = True
                    self._stop = True
                    if self._inflight and not self._settling:
                        items.extend(self._inflight)
                        self._inflight_spooled = True
                n_inflight = len(items)
                items.extend(self._queue)
                self._queue.clear()
                if not items:
                    return 0
                self._spilling += 1
                self._spill_gen += 1
                self._spool_mode = True
            ok = False
            try:
                self.spool.add(self.key, self._origin, items, error=reason)
                ok = True
            except (sqlite3.Error, OSError) as exc:
                log.error(
                    "cannot write %d workflow event(s) to the spool %s (%s); keeping them in memory",
                    len(items),
                    self.spool.path,
                    exc,
                )
                self._spill_retry_at = time.monotonic() + 5.0
            finally:
                with self._cond:
                    self._spilling -= 1
                    if ok:
                        self._n_spooled += len(items)
                    else:
                        self._queue.extendleft(reversed(items[n_inflight:]))
                    self._cond.notify_all()
            return len(items) if ok else 0

    def _spill_items(self, items: list[tuple[int, Event]], status: str, error: str, *, attempts: int = 0) -> None:
        """Write a failed batch's events to the spool; if that fails, put them back at the queue's head."""
        with self._spill_lock:
            with self._lock:
                self._spilling += 1
                self._spill_gen += 1
                if status == "pending":
                    self._spool_mode = True
            ok = False
            try:
                self.spool.add(self.key, self._origin, items, status=status, attempts=attempts, error=error)
                ok = True
            except (sqlite3.Error, OSError) as exc:
                log.error("cannot write to the spool %s (%s); keeping events in memory", self.spool.path, exc)
            finally:
                with self._cond:
                    self._spilling -= 1
                    if ok:
                        self._n_spooled += len(items)
                    elif status == "pending":
                        self._queue.extendleft(reversed(items))
                    self._cond.notify_all()


# -- process-wide hooks ----------------------------------------------------------------------------


def _at_exit() -> None:
    """Flush every live backend against one shared deadline, then spool what is left."""
    global _exit_done_pid
    if _exit_done_pid == os.getpid():
        return
    _exit_done_pid = os.getpid()
    deadline = time.monotonic() + exit_timeout()
    # The process-level step (SDK-style calls outside any step) finishes at exit too. Its atexit hook was
    # registered before this one, so it would run after it: finish it first, so that its step_finished is
    # delivered now rather than by the next process.
    step_module = sys.modules.get("workflow_trace._step")
    forget = getattr(step_module, "forget_process_step", None)
    if callable(forget):
        try:
            forget()
        except Exception:  # finishing the step is best effort; delivery goes on
            log.exception("finishing the process step at exit failed")
    for backend in list(_live):
        try:
            backend._shutdown(deadline)
        except Exception:  # one backend failing must not keep the others from the spool
            log.exception("shutting down %r at exit failed", backend)


def _after_fork_in_child() -> None:
    global _exit_done_pid
    _exit_done_pid = 0
    for backend in list(_live):
        try:
            backend._after_fork_in_child()
        except Exception:  # a fork hook must never raise into the forking code
            log.exception("resetting %r after fork failed", backend)


_mp_hook_pid = 0


def _register_multiprocessing_exit() -> None:
    """In a ``multiprocessing`` child (which leaves with ``os._exit``, skipping atexit), flush at its exit."""
    global _mp_hook_pid
    if _mp_hook_pid == os.getpid():
        return
    _mp_hook_pid = os.getpid()
    mp = sys.modules.get("multiprocessing")
    if mp is None or mp.parent_process() is None:
        return
    from multiprocessing import util

    util.Finalize(None, _at_exit, exitpriority=100)


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
