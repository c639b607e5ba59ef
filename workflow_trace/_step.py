"""Steps: the runs that inputs and outputs belong to, and the tasks that hold them.

The current step lives in a ``ContextVar``: asyncio tasks each see their own; threads started and
``concurrent.futures`` work submitted while a step is current run inside it (the context is carried at
``Thread.start`` / ``Executor.submit``, as sentry's and OpenTelemetry's threading integrations do; switch
it off with ``configure(threads=False)`` or ``WORKFLOW_TRACE_THREADS=0``). Process pools are not covered:
in a worker process, pass ``task_id=`` to a ``workflow_step`` there (or let the worker record its own runs).

A ``workflow_step`` (in the tracing layer) is configuration only; every entry (``with``, or a call of a
decorated function) gets a :class:`Step` of its own — its run — so one object can be entered by several
threads or tasks at once. The task (the workflow's main node) of a run: an explicit ``task_id``, else the
parent step's, else
``SUPERVISELY_TASK_ID`` / ``TASK_ID``, else — on a backend that owns ids, like the local store — a local
task: a new one for each explicit outermost step, and one per function and process for implicit steps (a
loader called 10,000 times is one task with 10,000 runs). Facade calls outside any step record into one
step per process (named after the script, finished at exit).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, Literal

from . import _runtime
from ._context import at_exit, at_fork, contained, mask_params, safe_repr, suppressed
from ._errors import NodeCoercionError, VersioningNotSupportedError
from ._events import FINISHED, INPUT, OUTPUT, STARTED, Record, RunRef, StepRef, ids, new_run_id
from ._meta import Meta, MetaLike, to_meta
from ._nodes import App, Node, NodeKey, Project, coerce_keys, key_node, node_class, node_key

__all__ = ["Step", "current_step", "finish", "open_run", "process_step", "start"]

_current: ContextVar[Step | None] = ContextVar("workflow_trace_step", default=None)
_next_seq = ids.next_seq
_now = time.time_ns


def current_step() -> Step | None:
    """The step the caller runs in, or ``None``."""
    return _current.get()


def check_nodes(value: Any, culprit: str, kind: int, hint: str = "") -> list[Node]:
    """``value`` as nodes: a node, or a list, tuple, set or iterator of nodes (nested too), the app session an
    output only.

    Raises:
        NodeCoercionError: (a ``TypeError``) for anything else, naming ``culprit`` (and ``hint``: what to do).
    """
    if isinstance(value, (list, tuple, set, frozenset, Iterator)):  # an empty one (the default) costs no more
        nodes = [node for item in value for node in check_nodes(item, culprit, kind, hint)] if value else []
    elif isinstance(value, Node):
        nodes = [value]
    else:
        raise NodeCoercionError(f"{culprit} takes nodes such as wt.Project(id=42){hint}, not {type(value).__name__}")
    if kind == INPUT and nodes and any(isinstance(node, App) for node in nodes):
        raise NodeCoercionError(f"{culprit}: the app session (App) is an output only")
    return nodes


def check_params(params: Any, where: str) -> dict[str, Any] | None:
    """Params as a JSON-serialisable dict with secret-looking values masked, or a ``TypeError``."""
    if params is None:
        return None
    if not isinstance(params, Mapping):
        raise TypeError(f"{where}: params must be a mapping of names to JSON values, not {type(params).__name__}")
    out = dict(params)
    for key, value in out.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: param names must be str, not {type(key).__name__} ({key!r})")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{where}: param {key!r} is not JSON-serialisable ({type(value).__name__}: {exc}); pass numbers, "
                "strings, booleans, None, lists or dicts of them"
            ) from None
    return mask_params(out)


class Step(RunRef):
    """A running step (one run). Returned by ``with workflow_step(...) as step``.

    Attributes:
        name: The step's name.
        run_id: A time-ordered UUID of this run.
        parent: The enclosing step, or ``None``.
        task_id: The task (workflow main node) the step records for, or ``None``.
        inputs / outputs: The nodes recorded, in order.
        params: The run's parameters (``params=`` and :meth:`log_params`).
        status: ``None`` while running, then ``"ok"`` or ``"failed"``.
        error: ``(type, message)`` when it failed.
    """

    __slots__ = ("_in", "_out", "active", "config", "error", "params", "parent", "prev", "seen", "status", "task_id")

    def __init__(self, name: str, parent: Step | None, task_id: int | None, *, active: bool = True,
                 config: object = None, params: dict[str, Any] | None = None) -> None:
        self.run_id = new_run_id()
        self.name = name
        self.parent_run_id = None if parent is None else parent.run_id
        self.wire: str | None = None
        self.parent = parent
        self.task_id = task_id
        self.active = active  # False when tracking was off: the step records nothing
        self.config = config
        self.params = params
        self._in: list[NodeKey] = []
        self._out: list[NodeKey] = []
        self.seen: set[Any] = set()
        self.status: Literal["ok", "failed"] | None = None
        self.error: tuple[str, str] | None = None
        self.prev: Step | None = None

    inputs = property(lambda self: [key_node(k) for k in self._in], doc="The input nodes recorded, in order.")
    outputs = property(lambda self: [key_node(k) for k in self._out], doc="The output nodes recorded, in order.")

    @property
    def ref(self) -> StepRef:
        """This run as events name it."""
        return StepRef(run_id=self.run_id, name=self.name, parent_run_id=self.parent_run_id)

    def __repr__(self) -> str:
        return (
            f"Step(name={self.name!r}, run_id={self.run_id!r}, task_id={self.task_id!r}, "
            f"inputs={len(self._in)}, outputs={len(self._out)}, status={self.status!r})"
        )

    # -- public API -------------------------------------------------------------------------------------
    def add_input(self, node_or_value: Any, kind: str | type[Node] | None = None,
                  meta: MetaLike = None) -> list[Node]:
        """Record ``node_or_value`` (a node, or a value coerced with ``kind``) as an input of this step.

        Never raises outside strict mode (a bad value is logged at WARNING). Returns the nodes recorded.
        """
        return self._add(INPUT, node_or_value, kind, meta)

    def add_output(self, node_or_value: Any, kind: str | type[Node] | None = None,
                   meta: MetaLike = None) -> list[Node]:
        """Record ``node_or_value`` (a node, or a value coerced with ``kind``) as an output of this step.

        Never raises outside strict mode (a bad value is logged at WARNING). Returns the nodes recorded.
        """
        return self._add(OUTPUT, node_or_value, kind, meta)

    def log_params(self, **params: Any) -> None:
        """Add parameters to this run (hyperparameters, options); recorded when the run ends.

        Raises (in strict mode only; otherwise logged):
            TypeError: a value that is not JSON-serialisable.
        """
        with contained(f"step {self.name!r}: log_params"):
            checked = check_params(params, f"step {self.name!r}: log_params")
            if checked:
                self.params = {**(self.params or {}), **checked}

    # -- internals --------------------------------------------------------------------------------------
    def _add(self, kind: int, value: Any, node_kind: str | type[Node] | None, meta: MetaLike) -> list[Node]:
        if not self.active or not _runtime.is_enabled() or suppressed.get():
            return []
        culprit = "add_input" if kind == INPUT else "add_output"
        with contained(f"step {self.name!r}: {culprit}"):
            card = to_meta(meta)
            if node_kind is None:
                keys = [node_key(n) for n in check_nodes(value, culprit, kind, " (or name the kind: kind='dataset')")]
            else:
                keys = coerce_keys(node_class(node_kind), value, culprit=culprit)
                if kind == INPUT and any(k[0] == "app" for k in keys):
                    raise NodeCoercionError(f"{culprit}: the app session (App) is an output only")
            records: list[Record] = []
            added: list[NodeKey] = []
            self.collect(records, kind, keys, card, added=added)
            if records:
                _runtime.write(records)
            return [key_node(k) for k in added]
        return []

    def collect(self, records: list[Record], kind: int, nodes: Iterable[Node | NodeKey], meta: Meta | None,
                task_id: int | None = -1, added: list[NodeKey] | None = None, again: bool = False) -> None:
        """Append records for the nodes (or node keys) this run has not recorded yet (same direction and card),
        or for all of them ``again`` (the SDK's calls: each one is sent); the keys new to the run are appended
        to :attr:`inputs` / :attr:`outputs` (and to ``added``).

        Relative local paths carry the working directory, so the store knows what they meant.
        """
        seen = self.seen
        target = self._in if kind == INPUT else self._out
        task = self.task_id if task_id == -1 else task_id
        meta_key = None if meta is None else meta.json
        for node in nodes:
            key = node if type(node) is tuple else node_key(node)  # type: ignore[arg-type]
            mark = (kind, key, meta_key, task)
            if mark not in seen:
                seen.add(mark)
                target.append(key)
                if added is not None:
                    added.append(key)
            elif not again:
                continue
            path = key[4]
            cwd = None if path is None or path[:1] == "/" else os.getcwd()
            records.append((kind, _next_seq(), _now(), task, self, key, meta, cwd))

    def start_record(self) -> Record:
        return (STARTED, _next_seq(), _now(), self.task_id, self, None, None, self.params)

    def finish_records(self, records: list[Record], exc: BaseException | None) -> list[Record]:
        """Set the status and append the ``step_finished`` record (after any outputs in ``records``)."""
        if exc is None:
            self.status = "ok"
        else:
            self.status = "failed"
            self.error = (type(exc).__name__, safe_repr(exc, 2000, str_=True))
        records.append((FINISHED, _next_seq(), _now(), self.task_id, self, None, None,
                        (self.status, self.error, self.params)))
        return records


# -- tasks ------------------------------------------------------------------------------------------------

_implicit_tasks: dict[str, int | None] = {}
_implicit_generation = 0
# Taken only to create an implicit task: threads calling one function for the first time at once (a loader
# mapped over a thread pool) must share one task, not make one each.
_implicit_lock = threading.Lock()


def _task_for(explicit: int | None, parent: Step | None, name: str, implicit: bool) -> int | None:
    """The task of a new run (see the module docstring)."""
    if explicit is not None:
        return explicit
    if parent is not None:
        return parent.task_id
    st = _runtime.state
    if st.env_task is not None:
        return st.env_task
    if not implicit:
        return _new_task(name)
    global _implicit_generation
    if _implicit_generation != st.generation:  # another backend: its own ids
        with _implicit_lock:
            if _implicit_generation != st.generation:
                _implicit_tasks.clear()
                _implicit_generation = st.generation
    try:
        return _implicit_tasks[name]
    except KeyError:
        pass
    with _implicit_lock:
        try:
            return _implicit_tasks[name]
        except KeyError:
            task = _implicit_tasks[name] = _new_task(name)
            return task


def _new_task(name: str) -> int | None:
    token = suppressed.set(True)
    try:
        return _runtime.new_task_id(name)
    finally:
        suppressed.reset(token)


def open_run(name: str, parent: Step | None, *, task_id: int | None = None, implicit: bool = False,
             config: object = None, params: dict[str, Any] | None = None) -> Step:
    """A new run under ``parent`` (its task resolved). The caller records its start and makes it current.

    Raises:
        WorkflowTraceError / OSError: the task could not be resolved (callers contain it).
    """
    if not _threads_patched:
        _patch_threads()
    return Step(name, parent, _task_for(task_id, parent, name, implicit), config=config, params=params)


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
    token = suppressed.set(True)
    try:
        version_id = int(create(project, title or f"Before {step.name}", f"created automatically by {who}"))
        number = getattr(backend, "version_number", None)
        version_num = number(version_id) if number is not None else None
    finally:
        suppressed.reset(token)
    update: dict[str, Any] = {"version_id": version_id}
    if version_num is not None:
        update["version_num"] = int(version_num)
    return project.model_copy(update=update)


def versioned(nodes: list[Node], version: bool | str, step: Step, culprit: str) -> list[Node]:
    """Each project replaced by a fresh version of it (``version`` true or a title); contained per node."""
    if not version:
        return nodes
    title = version if isinstance(version, str) else None
    out: list[Node] = []
    for node in nodes:
        if isinstance(node, Project) and node.version_id is None:
            versioned_node: Node = node
            with contained(f"{culprit}: versioning {node.ref}"):
                versioned_node = version_project(node, title, step)
            node = versioned_node
        out.append(node)
    return out


# -- the process step: where `workflow_trace.workflow.add_*` calls outside any step go ---------------------
_process: dict[int, Step] = {}
_process_lock = threading.Lock()


def process_step() -> Step:
    """One step per process for facade calls made outside any step (like an SDK app: one task per run).

    It is opened on first use and finished (``ok``) at interpreter exit, or by ``reset()``.
    """
    pid = os.getpid()
    step = _process.get(pid)
    if step is not None:
        return step
    with _process_lock:
        step = _process.get(pid)
        if step is None:
            script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
            step = start(script or "python", None)
            _process.clear()
            _process[pid] = step
    return step


def start(name: str, parent: Step | None, *, task_id: int | None = None) -> Step:
    """Open a run and record its start at once (the process step, autolog's script step)."""
    if not _runtime.is_enabled() or suppressed.get():
        return Step(name, parent, task_id, active=False)
    step: Step | None = None
    with contained(f"step {name!r}: start"):
        step = open_run(name, parent, task_id=task_id)
    if step is None:
        step = Step(name, parent, task_id)
    with contained(f"step {name!r}: start"):
        _runtime.write([step.start_record()])
    return step


def finish(step: Step, exc: BaseException | None, records: list[Record] | None = None) -> None:
    """Record the end of ``step`` after ``records`` (its outputs); contained."""
    if not step.active or step.status is not None:
        return
    with contained(f"step {step.name!r}: finish", allow_raise=exc is None):
        _runtime.write(step.finish_records([] if records is None else records, exc))


def finish_process_step() -> None:
    """Finish the process step, if any (at exit, and on ``reset()``)."""
    steps = list(_process.values())
    _process.clear()
    for step in steps:
        finish(step, None)


def _after_fork() -> None:
    global _process_lock, _implicit_lock
    _process.clear()  # the parent's process step is the parent's; the child opens its own
    _process_lock = threading.Lock()
    _implicit_tasks.clear()
    _implicit_lock = threading.Lock()


at_exit(finish_process_step, order=10)
at_fork(_after_fork)
_runtime.on_reset.append(finish_process_step)


# -- threads ----------------------------------------------------------------------------------------------
_threads_patched = False
_original_start = threading.Thread.start
_original_submit = ThreadPoolExecutor.submit


def _run_in(step: Step | None, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    prev = _current.get()
    try:
        _current.set(step)
        return fn(*args, **kwargs)
    finally:
        _current.set(prev)


def _start(self: threading.Thread) -> None:
    step = _current.get()
    if step is not None and _runtime.state.threads:
        run = self.run
        self.run = lambda: _run_in(step, run)  # type: ignore[method-assign]
    _original_start(self)


def _submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    step = _current.get()
    if _runtime.state.threads and (step is not None or getattr(self, "_wt_carried", False)):
        self._wt_carried = True  # type: ignore[attr-defined]  # its workers may have a step: set one each time
        return _original_submit(self, _run_in, step, fn, *args, **kwargs)
    return _original_submit(self, fn, *args, **kwargs)


def _patch_threads() -> None:
    """Carry the current step into threads and thread-pool work (once per process)."""
    global _threads_patched
    _threads_patched = True
    threading.Thread.start = _start  # type: ignore[method-assign]
    ThreadPoolExecutor.submit = _submit  # type: ignore[assignment,method-assign]


# -- generators ---------------------------------------------------------------------------------------------
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
