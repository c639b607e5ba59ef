"""The leaf every module may import: containment, internal-error hooks, suppression, secrets, warnings,
and the one fork hook and the one exit hook of the package.

Nothing here imports another module of workflow_trace except the errors. Keeping these in one leaf is what
lets the delivery worker, the exit path and the fork path use the same containment as the call path
without importing the runtime (the layering of OpenTelemetry's ``context`` module).

- :class:`contained` is the one containment primitive. Outside strict mode an ``Exception`` raised inside
  is logged (rate-limited, see :func:`warn`) and swallowed; in strict mode it is raised as a
  ``WorkflowTraceError``. Either way every contained error reaches :data:`internal_error_hooks` (the test
  suite fails a test on an unexpected one). ``BaseException``s that are not ``Exception`` always pass.
- :data:`suppressed`: true while workflow_trace itself works (a backend, a version being created); decorated
  functions called then record nothing.
- :class:`Secret` holds a credential; :func:`redact` masks every secret ever held and secret-looking
  ``key=value`` pairs in a text that came from a server, a URL or an exception. A filter on the package's
  logger redacts every record, whatever the call site passed.
- :func:`warn` logs one WARNING per cause, then at most one "... N more times" line a minute;
  :func:`flush_warnings` writes the pending counts (``flush()``, ``reset()`` and exit call it).
- :func:`at_fork` / :func:`at_exit`: callbacks run in the child after ``os.fork()`` / at interpreter exit,
  in order. Bound methods are held weakly.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from ._errors import WorkflowTraceError

__all__ = [
    "InternalError",
    "Secret",
    "around_fork",
    "at_exit",
    "at_fork",
    "contained",
    "env_task_id",
    "flush_warnings",
    "internal_error_hooks",
    "logger",
    "mask_argv",
    "mask_params",
    "redact",
    "report",
    "safe_repr",
    "settings",
    "suppressed",
    "warn",
]

#: The package's one logger. Messages start with ``workflow_trace:`` exactly once.
logger = logging.getLogger("workflow_trace")

#: True while workflow_trace itself works: decorated functions called then record nothing.
suppressed: ContextVar[bool] = ContextVar("workflow_trace_suppressed", default=False)

#: Called with every error :class:`contained` swallowed or raised; the test suite hooks in here.
internal_error_hooks: list[Callable[[BaseException], None]] = []


class InternalError(WorkflowTraceError):
    """An unexpected error inside workflow_trace, raised in strict mode."""


class _Settings:
    """What containment needs to know of the configuration (the runtime sets it)."""

    __slots__ = ("strict",)

    def __init__(self) -> None:
        self.strict = False


#: Set by the runtime (``configure(strict=...)`` / ``WORKFLOW_TRACE_STRICT``).
settings = _Settings()


# -- secrets -----------------------------------------------------------------------------------------

_secret_values: set[str] = set()
_secret_re: re.Pattern[str] | None = None
_PAIR_RE = re.compile(
    r"(?i)((?:api[_-]?key|apikey|access[_-]?token|token|password|passwd|secret|authorization|x-api-key)"
    r"[\"']?\s*[=:]\s*[\"']?(?:bearer\s+|basic\s+)?)[^\s&\"',;}]+"
)
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")


class Secret:
    """A credential: ``repr``, ``str`` and ``vars()`` of its holder never show it; :meth:`reveal` does.

    Every value ever wrapped is also masked by :func:`redact` (a server may echo it back).
    """

    __slots__ = ("__value",)

    def __init__(self, value: str) -> None:
        global _secret_re
        self.__value = value
        if value and len(value) >= 4 and value not in _secret_values:
            _secret_values.add(value)
            alternatives = sorted(_secret_values, key=len, reverse=True)
            _secret_re = re.compile("|".join(re.escape(v) for v in alternatives))

    def reveal(self) -> str:
        """The credential itself, for the one place that sends it."""
        return self.__value

    def __bool__(self) -> bool:
        return bool(self.__value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.__value == self.__value

    def __hash__(self) -> int:
        return hash(self.__value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled (credentials stay in the process that was given them)")


#: Variables whose values are credentials wherever they appear (the SDK's token, the OpenLineage key).
SECRET_VARIABLES = ("API_TOKEN", "OPENLINEAGE_API_KEY", "OPENLINEAGE__TRANSPORT__AUTH__APIKEY")


def redact(text: str) -> str:
    """``text`` with every known secret (those held in a :class:`Secret`, and the values of
    :data:`SECRET_VARIABLES`) and every secret-looking ``key=value`` / bearer token masked."""
    if not text:
        return text
    pattern = _secret_re
    if pattern is not None:
        text = pattern.sub("***", text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 4 and value in text:
            text = text.replace(value, "***")
    text = _PAIR_RE.sub(r"\1***", text)
    return _BEARER_RE.sub(r"\1 ***", text)


_SECRET_NAME = re.compile(r"token|password|passwd|secret|api[-_]?key|apikey|credential|auth", re.IGNORECASE)


def mask_argv(argv: list[str], limit: int = 2000) -> list[str]:
    """A command line with the values of secret-looking options (``--token X``, ``--api-key=X``) and every
    known secret masked."""
    out: list[str] = []
    mask_next = False  # the previous argument was a secret option without "=": this one is its value
    for arg in argv:
        name, eq, _value = arg.partition("=")
        secret = arg.startswith("-") and _SECRET_NAME.search(name) is not None
        out.append("***" if mask_next else redact(f"{name}=***" if secret and eq else arg)[:limit])
        mask_next = secret and not eq and not mask_next
    return out


def mask_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the values of secret-looking keys masked (nested mappings too)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if _SECRET_NAME.search(str(key)):
            out[key] = "***"
        elif isinstance(value, dict):
            out[key] = mask_params(value)
        elif isinstance(value, str):
            out[key] = redact(value)
        else:
            out[key] = value
    return out


class _RedactingFilter(logging.Filter):
    """Masks secrets in every record of the package's logger, whatever the call site formatted; names the
    package when no handler is configured (the last-resort handler prints only the message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record whose arguments do not format is logged as it is
            return True
        clean = redact(message)
        if not logger.hasHandlers() and not clean.startswith("workflow_trace"):
            clean = "workflow_trace: " + clean
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


logger.addFilter(_RedactingFilter())


# -- reprs and reports -------------------------------------------------------------------------------


def safe_repr(value: Any, limit: int = 200, *, str_: bool = False) -> str:
    """``repr`` (or ``str``) of a user value that never raises, is bounded and has secrets masked."""
    try:
        text = str(value) if str_ else repr(value)
    except Exception:  # noqa: BLE001 - a user's __repr__ may raise; we only describe the value
        text = f"<{type(value).__name__} object (its {'__str__' if str_ else '__repr__'} raised)>"
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, bounded and redacted."""
    return f"{type(exc).__name__}: {safe_repr(exc, 500, str_=True)}"


def report(exc: BaseException, what: str, *, allow_raise: bool = True) -> None:
    """Contain an error raised by workflow_trace: tell the hooks, then raise it (strict mode) or log it.

    Args:
        exc: The error.
        what: What workflow_trace was doing, for the message (also the rate-limiting key).
        allow_raise: ``False`` while the user's own exception propagates, or on a path that must not
            raise (a worker, exit, fork): the error is only logged, at ERROR in strict mode.
    """
    if settings.strict and allow_raise:
        if isinstance(exc, WorkflowTraceError):
            raise exc
        raise InternalError(f"{what}: {describe(exc)}") from exc
    for hook in list(internal_error_hooks):  # every error that is swallowed reaches the hooks
        try:
            hook(exc)
        except Exception:
            logger.debug("an internal-error hook failed", exc_info=True)
    text = describe(exc)
    if settings.strict:
        logger.error("%s: %s", what, text)
        return
    root = exc.__cause__ or exc  # one cause: the underlying error, wherever and however it was met
    warn(("error", type(root).__name__, safe_repr(root, 200, str_=True)), "%s: %s", what, text)


class contained:
    """``with contained("what"):`` around library logic: the one containment primitive.

    Stateless apart from its two settings, so one instance can be made once (at decoration time) and
    entered by any number of threads.
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
        report(exc, self.what, allow_raise=self.allow_raise)
        return True


# -- rate-limited warnings ---------------------------------------------------------------------------

#: Seconds between two "... N more times" lines of one cause.
WARN_INTERVAL = 60.0

_warn_lock = threading.Lock()
# cause -> [first message, suppressed count, time the last line was written]
_warned: dict[Any, list[Any]] = {}
_MAX_CAUSES = 1000


def warn(cause: Any, message: str, *args: Any, level: int = logging.WARNING) -> None:
    """Log ``message`` once per ``cause``; repeats are counted and reported at most once a minute.

    ``message`` is %-formatted with ``args`` (only when it is written). Call sites never write a
    ``workflow_trace:`` prefix: the logger's name says it, and the filter below adds it when logging is not
    configured at all (Python's last-resort handler prints the bare message).
    """
    now = time.monotonic()
    with _warn_lock:
        entry = _warned.get(cause)
        if entry is None:
            if len(_warned) >= _MAX_CAUSES:
                _warned.clear()
            _warned[cause] = [message, 0, now, args]
            emit_count = 0
        else:
            entry[1] += 1
            if now - entry[2] < WARN_INTERVAL:
                return
            emit_count, entry[1], entry[2] = entry[1], 0, now
    if emit_count:
        logger.log(level, message + " (... %d more times)", *args, emit_count)
    else:
        logger.log(level, message, *args)


def flush_warnings() -> None:
    """Write the pending "... N more times" counts now (and start counting afresh)."""
    with _warn_lock:
        pending = [(e[0], e[3], e[1]) for e in _warned.values() if e[1]]
        _warned.clear()
    for message, args, count in pending:
        logger.warning(message + " (... %d more times)", *args, count)


_ENV_TASK = ("SUPERVISELY_TASK_ID", "TASK_ID")
_env_task_last: tuple[tuple[str, ...], int | None] | None = None  # the raw values last read, and their task


def env_task_id() -> int | None:
    """The task id from the environment: ``SUPERVISELY_TASK_ID``, else ``TASK_ID``.

    One policy for every part of workflow_trace: a value that is not an integer is ignored, with one
    WARNING naming the variable. The runtime and the backends read it whenever the environment changes;
    the same values read again give the same answer without another WARNING (or a repeat count).
    """
    global _env_task_last
    raw = tuple(os.environ.get(name, "").strip() for name in _ENV_TASK)
    last = _env_task_last
    if last is not None and last[0] == raw:
        return last[1]
    task: int | None = None
    for name, value in zip(_ENV_TASK, raw, strict=True):
        if value:
            try:
                task = int(value)
                break
            except ValueError:
                warn(("env", name, value), "ignoring %s=%r: not an integer task id", name, value[:40])
    _env_task_last = (raw, task)
    return task


# -- fork and exit -----------------------------------------------------------------------------------

_Callback = Callable[[], None]
_fork_hooks: list[Callable[[], _Callback | None]] = []
_before_fork: list[tuple[_Callback, _Callback]] = []
_exit_hooks: list[tuple[int, int, Callable[[], _Callback | None]]] = []
_hooks_lock = threading.Lock()


def _ref(callback: _Callback) -> Callable[[], _Callback | None]:
    if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
        return weakref.WeakMethod(callback)
    return lambda: callback


def at_fork(callback: _Callback) -> None:
    """Run ``callback`` in the child after ``os.fork()`` (bound methods are held weakly)."""
    with _hooks_lock:
        _fork_hooks.append(_ref(callback))


def around_fork(before: _Callback, after_in_parent: _Callback) -> None:
    """Run ``before`` just before ``os.fork()`` and ``after_in_parent`` in the parent after it (to keep a
    fork from happening in the middle of something the child would inherit half done)."""
    with _hooks_lock:
        _before_fork.append((before, after_in_parent))


def _run_all(callbacks: Iterable[_Callback | None], what: str) -> None:
    """Call each callback (``None``: a weakly held one that is gone), containing what it raises."""
    for callback in callbacks:
        if callback is not None:
            with contained(what, allow_raise=False):
                callback()


def _before_fork_hook() -> None:
    _run_all((before for before, _after in _before_fork), "preparing a fork")


def _after_fork_in_parent() -> None:
    _run_all((after for _before, after in reversed(_before_fork)), "after a fork")


def at_exit(callback: _Callback, order: int = 50) -> None:
    """Run ``callback`` at interpreter exit, lower ``order`` first (bound methods are held weakly)."""
    with _hooks_lock:
        _exit_hooks.append((order, len(_exit_hooks), _ref(callback)))


def _after_fork_in_child() -> None:
    global _hooks_lock, _warn_lock
    _hooks_lock = threading.Lock()
    _warn_lock = threading.Lock()
    _run_all((ref() for ref in list(_fork_hooks)), "resetting state after fork")
    _fork_hooks[:] = [ref for ref in _fork_hooks if ref() is not None]


_exit_pid = 0


def run_exit_hooks() -> None:
    """Run the exit callbacks once per process (also from a ``multiprocessing`` child's finalizer)."""
    global _exit_pid
    if _exit_pid == os.getpid():
        return
    _exit_pid = os.getpid()
    with _hooks_lock:
        hooks = sorted(_exit_hooks, key=lambda item: (item[0], item[1]))
    _run_all((ref() for _order, _n, ref in hooks), "finishing at exit")
    flush_warnings()


def _reset_exit_pid() -> None:
    global _exit_pid
    _exit_pid = 0


atexit.register(run_exit_hooks)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork_hook, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
at_fork(_reset_exit_pid)
