"""Global configuration, the active backend, strict mode and the containment primitive.

Configuration is read at call time: decorate at import, ``configure()`` later. Environment variables
(``WORKFLOW_TRACE_STRICT``, ``WORKFLOW_TRACE_DISABLED``) are read on every call unless ``configure()``
set the value explicitly; the default backend (``WORKFLOW_TRACE_BACKEND``, ``WORKFLOW_TRACE_DB``,
``SERVER_ADDRESS`` + ``API_TOKEN``) is chosen once, on first use after ``configure()`` / ``reset()``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from ._errors import BackendError, ConfigurationError, WorkflowTraceError
from ._events import Event
from .backends import Backend, create_backend

__all__ = [
    "InternalError",
    "configure",
    "contained",
    "emit",
    "env_task_id",
    "flush",
    "get_backend",
    "handle_internal_error",
    "is_enabled",
    "is_strict",
    "logger",
    "reset",
    "safe_repr",
    "suppressed",
]

logger = logging.getLogger("workflow_trace")

_TRUE = frozenset({"1", "true", "yes", "on"})

#: True while workflow_trace itself works (a backend emitting, a version being created): decorated
#: functions called then record nothing.
suppressed: ContextVar[bool] = ContextVar("workflow_trace_suppressed", default=False)


class InternalError(WorkflowTraceError):
    """An unexpected error inside workflow_trace, re-raised in strict mode."""


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.backend: Backend | None = None
        self.owned = False  # whether workflow_trace built the backend (and so closes it)
        self.strict: bool | None = None
        self.enabled: bool | None = None


_state = _State()

#: Called with every internal error that was contained (swallowed); the test suite hooks in here.
internal_error_hooks: list[Callable[[BaseException], None]] = []


def _make_env_reader() -> Callable[[str], str | None]:
    """A fast ``os.environ.get``: the hot path reads a few variables on every call.

    ``os.environ.get`` encodes the key and builds a new string each time (about a microsecond); reading
    the mapping behind ``os.environ`` with pre-encoded keys costs a dict lookup. Both see every change
    made through ``os.environ`` (monkeypatch included). Falls back to ``os.environ.get`` where the
    interpreter's ``os._Environ`` does not look as expected.
    """
    data = getattr(os.environ, "_data", None)
    encode = getattr(os.environ, "encodekey", None)
    decode = getattr(os.environ, "decodevalue", None)
    if not isinstance(data, dict) or encode is None or decode is None:
        return os.environ.get
    keys: dict[str, Any] = {}

    def get(name: str) -> str | None:
        key = keys.get(name)
        if key is None:
            key = keys[name] = encode(name)
        raw = data.get(key)
        return None if raw is None else str(decode(raw))

    return get


env_get = _make_env_reader()


def _env_flag(name: str) -> bool:
    value = env_get(name)
    return value is not None and value.strip().lower() in _TRUE


def is_strict() -> bool:
    """Whether internal errors raise (``configure(strict=True)`` or ``WORKFLOW_TRACE_STRICT=1``)."""
    strict = _state.strict
    return _env_flag("WORKFLOW_TRACE_STRICT") if strict is None else strict


def is_enabled() -> bool:
    """Whether tracking is on (``configure(enabled=...)``, else not ``WORKFLOW_TRACE_DISABLED``)."""
    enabled = _state.enabled
    return not _env_flag("WORKFLOW_TRACE_DISABLED") if enabled is None else enabled


def _make_default_backend() -> Backend:
    spec = os.environ.get("WORKFLOW_TRACE_BACKEND", "").strip()
    if spec:
        return create_backend(spec)
    if os.environ.get("SERVER_ADDRESS") and os.environ.get("API_TOKEN"):
        return create_backend("supervisely")
    from .backends.sqlite import SQLiteBackend

    return SQLiteBackend()


def _close_quietly(backend: Backend) -> None:
    try:
        backend.close()
    except Exception as exc:  # noqa: BLE001 - closing an old backend must not break configure()
        logger.warning("workflow_trace: closing %s failed: %s", safe_repr(backend), safe_repr(exc))


def configure(
    backend: Backend | str | None = None,
    *,
    strict: bool | None = None,
    enabled: bool | None = None,
) -> None:
    """Set the backend, strict mode and the on/off switch. ``None`` leaves a setting as it is.

    Args:
        backend: A backend instance, or a backend string (``"memory"``, ``"null"``,
            ``"sqlite:///abs/path.db"``, ``"sqlite:relative.db"``, ``"supervisely"``,
            ``"openlineage+http://host:port"``, or a scheme registered by a plug-in).
        strict: Raise internal errors (``WorkflowTraceError``) instead of logging them: for tests and CI.
        enabled: Switch tracking on or off.

    Raises:
        ConfigurationError: (a ``ValueError``) an unknown scheme (the message lists those that exist),
            or a value that is not a backend.
    """
    new: Backend | None = None
    if backend is not None:
        if isinstance(backend, str):
            new = create_backend(backend)
        elif isinstance(backend, Backend):
            new = backend
        else:
            raise ConfigurationError(
                f"configure(backend=...) takes a backend string or an object with emit(), flush() and "
                f"close(), not {type(backend).__name__}"
            )
    with _state.lock:
        if new is not None:
            old, owned = _state.backend, _state.owned
            _state.backend, _state.owned = new, isinstance(backend, str)
            if old is not None and owned and old is not new:
                _close_quietly(old)
        if strict is not None:
            _state.strict = bool(strict)
        if enabled is not None:
            _state.enabled = bool(enabled)


def reset() -> None:
    """Forget every setting (the backend workflow_trace built is flushed and closed). For tests."""
    from . import _step

    # Finish the per-process step first, into the backend it was recording to (not a new default one).
    _step.forget_process_step()
    with _state.lock:
        old, owned = _state.backend, _state.owned
        _state.backend, _state.owned = None, False
        _state.strict = None
        _state.enabled = None
    if old is not None and owned:
        _close_quietly(old)


def get_backend() -> Backend:
    """The backend in use: the configured one, else the default (built on first use).

    The default is the Supervisely backend when ``SERVER_ADDRESS`` and ``API_TOKEN`` are set, else the
    local store (``$WORKFLOW_TRACE_DB`` or ``./.workflow_trace/workflow.db``); ``WORKFLOW_TRACE_BACKEND``
    overrides both.
    """
    backend = _state.backend
    if backend is not None:
        return backend
    with _state.lock:
        if _state.backend is None:
            _state.backend = _make_default_backend()
            _state.owned = True
        return _state.backend


def emit(events: Sequence[Event]) -> None:
    """Hand one batch to the backend, with tracking suppressed while it runs.

    Raises:
        BackendError: the backend failed (the caller contains it).
    """
    backend = get_backend()
    token = suppressed.set(True)
    try:
        backend.emit(events)
    except Exception as exc:
        raise BackendError(
            f"{type(backend).__name__} could not record {len(events)} event(s): "
            f"{type(exc).__name__}: {safe_repr(exc, str_=True)}"
        ) from exc
    finally:
        suppressed.reset(token)


def flush(timeout: float | None = None) -> bool:
    """Wait until the backend delivered everything emitted so far.

    Returns:
        ``True`` when everything is delivered; ``False`` when something is still pending (it stays in
        the spool) or the backend failed (logged at WARNING; raised in strict mode).
    """
    backend = _state.backend
    if backend is None:
        return True
    with contained("flush"):
        token = suppressed.set(True)
        try:
            return bool(backend.flush(timeout))
        finally:
            suppressed.reset(token)
    return False


def safe_repr(value: Any, limit: int = 200, *, str_: bool = False) -> str:
    """``repr`` (or ``str``) of a user value that never raises and is bounded in length."""
    try:
        text = str(value) if str_ else repr(value)
    except Exception:  # noqa: BLE001 - a user's __repr__ may raise; we only describe the value
        text = f"<{type(value).__name__} object (its {'__str__' if str_ else '__repr__'} raised)>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def handle_internal_error(exc: Exception, what: str, *, allow_raise: bool = True) -> None:
    """Contain an error raised by workflow_trace: raise it in strict mode, else log it at WARNING.

    Args:
        exc: The error.
        what: What workflow_trace was doing, for the message.
        allow_raise: ``False`` while the user's own exception is propagating: it must win, so even in
            strict mode the tracking error is only logged (at ERROR).
    """
    if is_strict():
        if allow_raise:
            if isinstance(exc, WorkflowTraceError):
                raise exc
            raise InternalError(f"{what}: {type(exc).__name__}: {safe_repr(exc, str_=True)}") from exc
        logger.error("workflow_trace: %s: %s: %s", what, type(exc).__name__, safe_repr(exc, str_=True))
    else:
        logger.warning("workflow_trace: %s: %s: %s", what, type(exc).__name__, safe_repr(exc, str_=True))
    for hook in internal_error_hooks:
        hook(exc)


class contained:
    """The one containment primitive: ``with contained("what"):`` around library logic on the call path.

    Outside strict mode an ``Exception`` raised inside is logged at WARNING on the ``workflow_trace``
    logger and swallowed; in strict mode it is raised as a ``WorkflowTraceError``. ``BaseException``s
    that are not ``Exception`` (``KeyboardInterrupt``, ``SystemExit``) always propagate.
    """

    __slots__ = ("allow_raise", "what")

    def __init__(self, what: str, *, allow_raise: bool = True) -> None:
        self.what = what
        self.allow_raise = allow_raise

    def __enter__(self) -> contained:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        handle_internal_error(exc, self.what, allow_raise=self.allow_raise)
        return True


def env_task_id() -> int | None:
    """The task id from the environment: ``SUPERVISELY_TASK_ID``, else ``TASK_ID`` (what the SDK reads)."""
    for name in ("SUPERVISELY_TASK_ID", "TASK_ID"):
        raw = env_get(name)
        if raw:
            try:
                return int(raw.strip())
            except ValueError:
                logger.warning("workflow_trace: ignoring %s=%s: not an integer task id", name, safe_repr(raw))
    return None
