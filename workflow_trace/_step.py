"""Steps: the runs that inputs and outputs belong to.

The current step lives in a ``ContextVar``: threads and asyncio tasks each see their own. A decorated
function called outside any step opens an implicit step named after its qualified name; nested steps are
child runs linked to their parent and share its task.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Literal, TypeVar

from . import _runtime
from ._errors import ConfigurationError, NodeCoercionError, VersioningNotSupportedError
from ._events import ErrorInfo, Event, new_run_id, step_ref
from ._meta import MetaLike, meta_to_wire
from ._nodes import App, Node, Project, coerce_nodes, node_class
from ._runtime import contained, safe_repr

__all__ = ["Step", "current_step", "workflow_step"]

Direction = Literal["input", "output"]
F = TypeVar("F", bound=Callable[..., Any])

_current: ContextVar[Step | None] = ContextVar("workflow_trace_step", default=None)


def current_step() -> Step | None:
    """The step the caller runs in, or ``None``."""
    return _current.get()


class Step:
    """A running step (one run). Returned by ``with workflow_step(...) as step``.

    Attributes:
        name: The step's name.
        run_id: A time-ordered UUID of this run.
        parent: The enclosing step, or ``None``.
        task_id: The task (workflow main node) the step records for, or ``None``.
        status: ``None`` while running, then ``"ok"`` or ``"failed"``.
        error: The exception type and message when it failed.
    """

    __slots__ = (
        "_pending", "_seen", "active", "error", "inputs", "name", "outputs", "parent", "ref", "run_id",
        "status", "task_id",
    )

    def __init__(self, name: str, parent: Step | None, task_id: int | None, *, active: bool = True) -> None:
        self.name = name
        self.parent = parent
        self.task_id = task_id
        self.run_id = new_run_id()
        self.ref = step_ref(self.run_id, name, parent.run_id if parent else None)
        self.inputs: list[Node] = []
        self.outputs: list[Node] = []
        self.status: Literal["ok", "failed"] | None = None
        self.error: ErrorInfo | None = None
        self.active = active  # False when tracking is off: the step records nothing
        self._pending: list[Event] = []
        self._seen: set[tuple[Any, ...]] = set()

    def __repr__(self) -> str:
        return (
            f"Step(name={self.name!r}, run_id={self.run_id!r}, task_id={self.task_id!r}, "
            f"inputs={len(self.inputs)}, outputs={len(self.outputs)}, status={self.status!r})"
        )

    # -- public API -------------------------------------------------------------------------------------
    def add_input(
        self, value: Any, kind: str | type[Node] | None = None, meta: MetaLike = None
    ) -> list[Node]:
        """Record ``value`` (a node, or a value coerced with ``kind``) as an input of this step.

        Never raises outside strict mode (a bad value is logged at WARNING). Returns the nodes recorded.
        """
        return self._add("input", value, kind, meta)

    def add_output(
        self, value: Any, kind: str | type[Node] | None = None, meta: MetaLike = None
    ) -> list[Node]:
        """Record ``value`` (a node, or a value coerced with ``kind``) as an output of this step.

        Never raises outside strict mode (a bad value is logged at WARNING). Returns the nodes recorded.
        """
        return self._add("output", value, kind, meta)

    # -- internals --------------------------------------------------------------------------------------
    def _add(self, direction: Direction, value: Any, kind: str | type[Node] | None, meta: MetaLike) -> list[Node]:
        if not self.active or not _runtime.is_enabled():
            return []
        with contained(f"step {self.name!r}: add_{direction}"):
            wire = meta_to_wire(meta)
            culprit = f"add_{direction}"
            if kind is None:
                if isinstance(value, Node):
                    nodes: list[Node] = [value]
                elif isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, Node) for v in value):
                    nodes = list(value)
                else:
                    raise NodeCoercionError(
                        f"{culprit}: pass a node (wt.Project(id=...)) or kind= for a value of type "
                        f"{type(value).__name__}"
                    )
            else:
                nodes = coerce_nodes(node_class(kind), value, culprit=culprit)
            if direction == "input" and any(isinstance(n, App) for n in nodes):
                raise NodeCoercionError(f"{culprit}: the app session (App) is an output only")
            return self.record(direction, [(n, wire) for n in nodes])
        return []

    def record(
        self, direction: Direction, items: Sequence[tuple[Node, dict[str, Any] | None]], *, send: bool = True
    ) -> list[Node]:
        """Emit events for the items this step has not recorded yet (one batch, with any pending event;
        with ``send=False`` they wait in the step for the next batch).

        A node recorded twice in one step, in the same direction with the same meta, is recorded once.
        """
        events = self._pending
        self._pending = []
        recorded: list[Node] = []
        target = self.inputs if direction == "input" else self.outputs
        for node, meta in items:
            key = (direction, node, None if meta is None else json.dumps(meta, sort_keys=True))
            if key in self._seen:
                continue
            self._seen.add(key)
            target.append(node)
            recorded.append(node)
            events.append(Event.fast(direction, self.task_id, self.ref, node, meta))
        if not send:
            self._pending = events
        elif events:
            _runtime.emit(events)
        return recorded

    def start_event(self) -> Event:
        return Event.fast("step_started", self.task_id, self.ref)

    def finish(self, exc: BaseException | None, outputs: Sequence[tuple[Node, dict[str, Any] | None]] = ()) -> None:
        """Set the status, record ``outputs`` (only when the step succeeded) and emit ``step_finished``."""
        if exc is None:
            self.status = "ok"
        else:
            self.status = "failed"
            self.error = ErrorInfo(type=type(exc).__name__, message=safe_repr(exc, 2000, str_=True))
        if not self.active:
            return
        if exc is None and outputs:
            self.record("output", outputs, send=False)  # outputs and step_finished go out as one batch
        self._pending.append(Event.fast("step_finished", self.task_id, self.ref, status=self.status, error=self.error))
        events, self._pending = self._pending, []
        _runtime.emit(events)


def _resolve_task_id(explicit: int | None, parent: Step | None, name: str) -> int | None:
    if explicit is not None:
        return explicit
    if parent is not None:
        return parent.task_id
    from_env = _runtime.env_task_id()
    if from_env is not None:
        return from_env
    backend = _runtime.get_backend()
    new_task_id = getattr(backend, "new_task_id", None)
    if new_task_id is None:
        return None
    token = _runtime.suppressed.set(True)
    try:
        return int(new_task_id(name))
    finally:
        _runtime.suppressed.reset(token)


def open_step(name: str, task_id: int | None = None, *, emit_now: bool, check_enabled: bool = True) -> Step:
    """Create a step under the current one (its task id resolved) and make it current.

    With ``emit_now`` the ``step_started`` event is emitted at once; otherwise it waits in the step and
    goes out with the first batch (so an implicit step costs one emit before the call, one after).
    Never raises outside strict mode: a failure to resolve the task or emit is logged.
    """
    parent = _current.get()
    if check_enabled and (not _runtime.is_enabled() or _runtime.suppressed.get()):
        return Step(name, parent, task_id, active=False)
    step: Step | None = None
    with contained(f"step {name!r}: start"):
        step = Step(name, parent, _resolve_task_id(task_id, parent, name))
        step._pending.append(step.start_event())
        if emit_now:
            events, step._pending = step._pending, []
            _runtime.emit(events)
    if step is None:  # resolving the task id failed: record without a task rather than not at all
        step = Step(name, parent, task_id)
        step._pending.append(step.start_event())
    return step


def version_project(project: Project, title: str | None, step: Step) -> Project:
    """Create a version of ``project`` on the backend and return the project pinned to that version.

    Raises:
        VersioningNotSupportedError: the backend cannot version projects.
    """
    backend = _runtime.get_backend()
    create = getattr(backend, "create_version", None)
    if create is None:
        raise VersioningNotSupportedError(
            f"{type(backend).__name__} does not support versions; {project.ref} is recorded without a version"
        )
    who = f"task {step.task_id}" if step.task_id is not None else f"step {step.name!r}"
    description = f"created automatically by {who}"
    token = _runtime.suppressed.set(True)
    try:
        version_id = int(create(project, title or f"Before {step.name}", description))
        number = getattr(backend, "version_number", None)
        version_num = number(version_id) if number is not None else None
    finally:
        _runtime.suppressed.reset(token)
    update: dict[str, Any] = {"version_id": version_id}
    if version_num is not None:
        update["version_num"] = int(version_num)
    return project.model_copy(update=update)


def versioned_inputs(
    items: Sequence[tuple[Node, dict[str, Any] | None]], version: bool | str, step: Step, culprit: str
) -> list[tuple[Node, dict[str, Any] | None]]:
    """Replace each project by a fresh version of it (``version`` true or a title); contained per item."""
    if not version:
        return list(items)
    title = version if isinstance(version, str) else None
    out: list[tuple[Node, dict[str, Any] | None]] = []
    for node, meta in items:
        if isinstance(node, Project) and node.version_id is None:
            versioned = node
            with contained(f"{culprit}: versioning {node.ref}"):
                versioned = version_project(node, title, step)
            node = versioned
        out.append((node, meta))
    return out


def _check_nodes(values: Iterable[Any], what: str) -> tuple[Node, ...]:
    nodes: list[Node] = []
    for value in values:
        if isinstance(value, App) and what == "inputs":
            raise TypeError("workflow_step(inputs=...): the app session (App) is an output only")
        if isinstance(value, Node):
            nodes.append(value)
        elif isinstance(value, (list, tuple, set, frozenset)):
            nodes.extend(_check_nodes(value, what))
        else:
            raise TypeError(
                f"workflow_step({what}=...) takes nodes such as wt.Project(id=42), not {type(value).__name__}"
            )
    return tuple(nodes)


class workflow_step:
    """A step: a context manager, an async context manager and a decorator.

    ``with workflow_step("train", inputs=[wt.Project(id=42)]) as step: ... step.add_output(...)``

    Args:
        name: The step's name (a decorated function's qualified name by default, else ``"step"``).
        inputs: Nodes recorded as inputs when the step opens.
        outputs: Nodes recorded as outputs when the step ends without an exception.
        task_id: The task to record for; else the parent step's, ``SUPERVISELY_TASK_ID``, ``TASK_ID``, or
            a new local task id from backends that own ids (the local store).
        version_inputs: Version every project input before the block runs (``True`` or a title).
        meta: Card settings applied to ``inputs`` and ``outputs`` (a ``WorkflowMeta`` or wire dict).

    Raises:
        TypeError / ValueError: bad arguments, at construction.
    """

    def __new__(cls, name: Any = None, **kwargs: Any) -> Any:
        # Bare use as a decorator, ``@workflow_step`` without parentheses: decorate at once.
        if name is not None and not isinstance(name, str) and not kwargs and (
            callable(name) or isinstance(name, (classmethod, staticmethod))
        ):
            return cls()(name)
        return super().__new__(cls)

    def __init__(
        self,
        name: str | None = None,
        *,
        inputs: Iterable[Node] = (),
        outputs: Iterable[Node] = (),
        task_id: int | None = None,
        version_inputs: bool | str = False,
        meta: MetaLike = None,
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"workflow_step(name=...) must be a str, not {type(name).__name__}")
        if task_id is not None and (isinstance(task_id, bool) or not isinstance(task_id, int)):
            raise TypeError(f"workflow_step(task_id=...) must be an int, not {type(task_id).__name__}")
        if not isinstance(version_inputs, (bool, str)):
            raise TypeError("workflow_step(version_inputs=...) must be True, False or a version title")
        self.name = name
        self.inputs = _check_nodes(inputs, "inputs")
        self.outputs = _check_nodes(outputs, "outputs")
        self.task_id = task_id
        self.version_inputs = version_inputs
        try:
            self.meta = meta_to_wire(meta)
        except ConfigurationError as exc:
            raise ConfigurationError(f"workflow_step(meta=...): {exc}") from None
        self._active: list[tuple[Step, Token[Step | None] | None]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"workflow_step(name={self.name!r}, task_id={self.task_id!r})"

    # -- context manager ----------------------------------------------------------------------------------
    def _enter(self, name: str | None = None) -> Step:
        step = open_step(name or self.name or "step", self.task_id, emit_now=not self.inputs)
        if step.active and self.inputs:
            with contained(f"step {step.name!r}: inputs"):
                items = [(n, self.meta) for n in self.inputs]
                items = versioned_inputs(items, self.version_inputs, step, f"step {step.name!r}")
                step.record("input", items)
        token: Token[Step | None] | None = _current.set(step)
        with self._lock:
            self._active.append((step, token))
        return step

    def _exit(self, exc: BaseException | None) -> None:
        with self._lock:
            step, token = self._active.pop()
        if token is not None:
            try:
                _current.reset(token)
            except ValueError:  # exited in another context (e.g. another asyncio task): restore parent
                _current.set(step.parent)
        with contained(f"step {step.name!r}: finish", allow_raise=exc is None):
            step.finish(exc, [(n, self.meta) for n in self.outputs])

    def __enter__(self) -> Step:
        return self._enter()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        self._exit(exc)
        return False

    async def __aenter__(self) -> Step:
        return self._enter()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        self._exit(exc)
        return False

    # -- decorator ----------------------------------------------------------------------------------------
    def __call__(self, func: F) -> F:
        """Run every call of ``func`` in its own step (named ``name`` or the function's qualified name)."""
        if not callable(func) and not isinstance(func, (classmethod, staticmethod)):
            raise TypeError(f"workflow_step(...) decorates a function, not {type(func).__name__}")
        from ._decorators import trace_function

        return trace_function(func, step=self)

    def copy(self) -> workflow_step:
        """A fresh, unentered step with the same settings (a decorator enters one per call)."""
        new: workflow_step = object.__new__(workflow_step)
        new.__dict__.update(self.__dict__)
        new._active = []
        new._lock = threading.Lock()
        return new


# -- the process step: where `workflow_trace.workflow.add_*` calls outside any step go ---------------------
_process_lock = threading.Lock()
_process: dict[int, Step] = {}


def process_step() -> Step:
    """One step per process for facade calls made outside any step (like an SDK app: one task per run).

    It is opened on first use and finished (``ok``) at interpreter exit.
    """
    pid = os.getpid()
    step = _process.get(pid)
    if step is not None:
        return step
    with _process_lock:
        step = _process.get(pid)
        if step is None:
            script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
            token = _current.set(None)
            try:
                step = open_step(script or "python", emit_now=True)
            finally:
                _current.reset(token)
            _process.clear()
            _process[pid] = step
    return step


def forget_process_step() -> None:
    """Finish the process step, if any (at exit, and on ``reset()``)."""
    with _process_lock:
        steps = list(_process.values())
        _process.clear()
    for step in steps:
        if step.status is None and step.active:
            with contained(f"step {step.name!r}: finish"):
                step.finish(None)


atexit.register(forget_process_step)


# -- helpers for the decorator machinery ---------------------------------------------------------------
def iter_with_step(
    gen: Generator[Any, Any, Any], begin: Callable[[], Callable[[BaseException | None], None]]
) -> Generator[Any, Any, Any]:
    """Drive a generator inside a step: ``begin()`` runs at the first ``next()``; its return is called
    with the exception (or ``None``) when the generator ends. ``send``/``throw``/``close`` pass through."""
    end = begin()
    try:
        result = yield from gen
    except GeneratorExit:
        end(None)  # the consumer stopped early: the run itself did not fail
        raise
    except BaseException as exc:
        end(exc)
        raise
    end(None)
    return result


async def aiter_with_step(
    agen: AsyncIterator[Any], begin: Callable[[], Callable[[BaseException | None], None]]
) -> AsyncIterator[Any]:
    """Async-generator twin of :func:`iter_with_step` (values pass through; ``asend`` is not forwarded)."""
    end = begin()
    try:
        async for item in agen:
            yield item
    except GeneratorExit:
        end(None)
        raise
    except BaseException as exc:
        end(exc)
        raise
    end(None)

