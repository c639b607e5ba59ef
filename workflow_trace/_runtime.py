"""Configuration: the active backend, strict mode, the on/off switches, and where records go.

Configuration is read at call time: decorate at import, ``configure()`` later. The environment
(``WORKFLOW_TRACE_STRICT``, ``WORKFLOW_TRACE_DISABLED``, ``WORKFLOW_TRACE_THREADS``, ``SUPERVISELY_TASK_ID``
/ ``TASK_ID``) is honoured at call time, yet read only when it changed: every write to ``os.environ`` marks
the settings stale and the next record reads them again — which keeps a decorated call near the cost of a
bare ``wrapt`` wrapper. A
setting given to ``configure()`` wins over its variable. The default backend (``WORKFLOW_TRACE_BACKEND``,
``SERVER_ADDRESS`` + ``API_TOKEN``, else the local store) is built on first use, and built again at the next
record after one of those variables or ``WORKFLOW_TRACE_DB`` changed (the one it replaces is closed in the
background: it stores or delivers what it has first). A later ``os.chdir`` does not move the default store.

Records go to :func:`write`: the built-in backends take them as they are (``write_records``); any other
backend gets :class:`~workflow_trace.Event` models built at its door, with tracking suppressed while it
runs (a decorated function it calls records nothing).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from ._context import contained, describe, env_task_id, flush_warnings, settings, suppressed, warn
from ._errors import BackendError, ConfigurationError
from ._events import Record, to_event
from ._protocols import Backend
from .backends import create_backend

__all__ = [
    "configure",
    "env_task_id",
    "flush",
    "get_backend",
    "is_enabled",
    "is_strict",
    "on_reset",
    "reset",
    "state",
    "write",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    warn(("env", name), "ignoring %s=%r: use 1/0, true/false, yes/no or on/off", name, value)
    return default


class _State:
    """The configuration, and what is derived from it once per configuration epoch."""

    def __init__(self) -> None:
        self.lock = threading.RLock()  # configure/reset/get_backend only, never the call path
        self.backend: Backend | None = None
        self.owned = False  # whether workflow_trace built the backend (and so closes it)
        self.strict: bool | None = None
        self.enabled_setting: bool | None = None
        self.threads_setting: bool | None = None
        self.default_key: tuple[int, ...] | None = None  # the variables the default backend was built from
        self.invalidate()

    def invalidate(self) -> None:
        """Forget what was derived (and the count of records a backend raised on): the next record reads the
        environment again."""
        self.ready = False
        self.enabled = True
        self.threads = True
        self.env_task: int | None = None
        self.sink: Callable[[list[Record]], None] | None = None
        self.lost = 0
        self.lost_reason = ""
        self.generation = getattr(self, "generation", 0) + 1

    def resolve(self) -> _State:
        """Read the environment for settings ``configure()`` did not give."""
        self.enabled = (
            not _env_flag("WORKFLOW_TRACE_DISABLED", False) if self.enabled_setting is None else self.enabled_setting
        )
        settings.strict = _env_flag("WORKFLOW_TRACE_STRICT", False) if self.strict is None else self.strict
        self.threads = (
            _env_flag("WORKFLOW_TRACE_THREADS", True) if self.threads_setting is None else self.threads_setting
        )
        self.env_task = env_task_id()
        if self.default_key is not None and self.default_key != _default_key():
            with self.lock:  # checked again: another thread may have replaced it already
                if self.backend is not None and self.default_key not in (None, _default_key()):
                    threading.Thread(target=_close_quietly, args=(self.backend,), name="workflow_trace-close").start()
                    self.backend, self.default_key, self.sink = None, None, None
                    self.generation += 1  # its task ids were the old store's
        self.ready = True
        return self


#: The one configuration of this process (read on the call path without a lock).
state = _State()


def _watch_environment() -> None:
    """Notice every change to ``os.environ``: the next record reads the variables again.

    The call path then pays one attribute check instead of an ``os.environ`` lookup per variable, yet
    ``WORKFLOW_TRACE_DISABLED`` and friends are honoured at call time. Only ``os.environ``'s item methods
    are wrapped (the original runs first, unchanged); ``os.putenv`` alone, which ``os.environ`` does not
    see either, is not noticed.
    """
    cls = type(os.environ)
    if getattr(cls, "_workflow_trace_watched", False):
        return
    set_item, del_item = cls.__setitem__, cls.__delitem__

    def __setitem__(self: Any, key: Any, value: Any) -> None:
        set_item(self, key, value)
        state.ready = False

    def __delitem__(self: Any, key: Any) -> None:
        del_item(self, key)
        state.ready = False

    cls.__setitem__ = __setitem__  # type: ignore[method-assign]
    cls.__delitem__ = __delitem__  # type: ignore[method-assign]
    cls._workflow_trace_watched = True  # type: ignore[attr-defined]


_watch_environment()

#: Called by :func:`reset` before the backend is closed (the steps layer finishes its process step).
on_reset: list[Callable[[], None]] = []


def is_strict() -> bool:
    """Whether internal errors raise (``configure(strict=True)`` or ``WORKFLOW_TRACE_STRICT=1``)."""
    if not state.ready:
        state.resolve()
    return settings.strict


def is_enabled() -> bool:
    """Whether tracking is on (``configure(enabled=...)``, else not ``WORKFLOW_TRACE_DISABLED``)."""
    return (state if state.ready else state.resolve()).enabled


def _default_key() -> tuple[int, ...]:
    """What the default backend depends on (hashed: ``API_TOKEN`` is not kept)."""
    return tuple(hash(os.environ.get(n)) for n in ("WORKFLOW_TRACE_BACKEND", "WORKFLOW_TRACE_DB", "SERVER_ADDRESS",
                                                   "API_TOKEN"))


def _default_backend() -> Backend:
    spec = os.environ.get("WORKFLOW_TRACE_BACKEND", "").strip()
    if spec:
        try:
            return create_backend(spec)
        except ConfigurationError as exc:
            raise ConfigurationError(f"WORKFLOW_TRACE_BACKEND={spec!r}: {exc}") from None
    if os.environ.get("SERVER_ADDRESS") and os.environ.get("API_TOKEN"):
        return create_backend("supervisely")
    return create_backend("sqlite")


def _close_quietly(backend: Backend) -> None:
    with contained(f"closing {type(backend).__name__}", allow_raise=False):
        backend.close()


def configure(
    backend: Backend | str | None = None,
    *,
    strict: bool | None = None,
    enabled: bool | None = None,
    threads: bool | None = None,
) -> None:
    """Set the backend, strict mode and the on/off switches. ``None`` leaves a setting as it is.

    Args:
        backend: A backend instance, or a backend string (``"memory"``, ``"null"``,
            ``"sqlite:///abs/path.db"``, ``"sqlite:relative.db"``, ``"supervisely"``,
            ``"openlineage+http://host:port"``, or a scheme registered by a plug-in).
        strict: Raise internal errors (``WorkflowTraceError``) instead of logging them: for tests and CI.
        enabled: Switch tracking on or off.
        threads: Whether threads started, and ``concurrent.futures`` work submitted, while a step is current
            run in that step (default on; ``WORKFLOW_TRACE_THREADS=0`` switches it off too).

    Raises:
        ConfigurationError: (a ``ValueError``) an unknown scheme (the message lists those that exist),
            or a value that is not a backend.
    """
    new: Backend | None = None
    if backend is not None:
        if isinstance(backend, str):
            new = create_backend(backend)
        elif isinstance(backend, Backend) or hasattr(backend, "write_records"):
            new = backend
        else:
            raise ConfigurationError(
                f"configure(backend=...) takes a backend string or an object with emit(), flush() and "
                f"close(), not {type(backend).__name__}"
            )
    old: Backend | None = None
    with state.lock:
        if new is not None:
            old, owned = state.backend, state.owned
            state.backend, state.owned, state.default_key = new, isinstance(backend, str), None
            if not owned or old is new:
                old = None
        if strict is not None:
            state.strict = settings.strict = bool(strict)
        if enabled is not None:
            state.enabled_setting = bool(enabled)
        if threads is not None:
            state.threads_setting = bool(threads)
        state.invalidate()
    if old is not None:
        _close_quietly(old)


def reset() -> None:
    """Forget every setting (the backend workflow_trace built is flushed and closed). For tests."""
    for hook in list(on_reset):
        with contained("reset", allow_raise=False):
            hook()
    with state.lock:
        old, owned = state.backend, state.owned
        state.backend, state.owned, state.default_key = None, False, None
        state.strict = state.enabled_setting = state.threads_setting = None
        state.invalidate()
    if old is not None and owned:
        _close_quietly(old)
    flush_warnings()


def get_backend() -> Backend:
    """The backend in use: the configured one, else the default (built on first use).

    The default is the Supervisely backend when ``SERVER_ADDRESS`` and ``API_TOKEN`` are set, else the
    local store; ``WORKFLOW_TRACE_BACKEND`` overrides both.

    Raises:
        ConfigurationError: ``WORKFLOW_TRACE_BACKEND`` names no backend (the message names the variable).
    """
    backend = state.backend
    if backend is not None:
        return backend
    with state.lock:
        if state.backend is None:
            state.backend, state.default_key = _default_backend(), _default_key()
            state.owned = True
            state.sink = None
        return state.backend


def _event_sink(backend: Backend) -> Callable[[list[Record]], None]:
    def emit(records: list[Record]) -> None:
        events = [to_event(r) for r in records]
        token = suppressed.set(True)
        try:
            backend.emit(events)
        except Exception as exc:
            raise BackendError(f"{type(backend).__name__} could not record {len(events)} event(s): {exc}") from exc
        finally:
            suppressed.reset(token)

    return emit


def write(records: list[Record]) -> None:
    """Hand one batch of records to the backend.

    Raises:
        BackendError / ConfigurationError: the backend failed or could not be built (callers contain it;
            the records are counted as lost, so the next ``flush()`` says ``False``).
    """
    sink = state.sink
    try:
        if sink is None:  # the backend's own write_records, else events made at its door
            backend = get_backend()
            own = getattr(backend, "write_records", None)
            sink = state.sink = own if callable(own) else _event_sink(backend)
        sink(records)
    except Exception as exc:  # a KeyboardInterrupt is the user stopping the call: nothing lost by us
        state.lost += len(records)
        state.lost_reason = describe(exc.__cause__ or exc)
        raise


def new_task_id(name: str) -> int | None:
    """A task id from a backend that owns ids (the local store), else ``None``."""
    allocate = getattr(get_backend(), "new_task_id", None)
    return None if allocate is None else int(allocate(name))


def flush(timeout: float | None = None) -> bool:
    """Wait until the backend stored or delivered everything recorded so far.

    Returns:
        ``True`` when everything is stored or delivered; ``False`` when something is still pending (it
        stays in the journal or the spool, and is kept) or the backend failed (logged at WARNING; raised
        in strict mode).
    """
    flush_warnings()
    lost, state.lost = state.lost, 0
    if lost:
        warn(("lost", state.lost_reason), "%d event(s) could not be handed to the backend since the last flush: %s",
             lost, state.lost_reason)
    backend = state.backend
    if backend is None:
        return not lost
    with contained("flush"):
        token = suppressed.set(True)
        try:
            return bool(backend.flush(timeout)) and not lost
        finally:
            suppressed.reset(token)
    return False
