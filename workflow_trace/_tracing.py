"""Tracing: the thirteen ``consumes_*`` / ``produces_*`` decorators and ``workflow_step``, on one engine.

Everything that can be checked is checked when decorating (parameter names, auto-detection, options,
meta, the decorated object); a call only reads values, builds records and hands them to the backend.
Stacked decorators (and an enclosing ``@workflow_step``) share one ``wrapt`` wrapper, so they record into
one step.

The call path, by cost:

- tracking off, or suppressed: the bare ``wrapt`` pass-through;
- inside a step, a node this run already recorded: a parameter read and a set lookup per decorator —
  values of plain types (``int``, ``str``, nodes) are remembered as they were passed, so a loader called per
  batch inside a step costs about one more ``wrapt`` call;
- a new node: coercion, a record, one journal append (inputs before the call, outputs after it);
- outside any step: an implicit run (named after the function's qualified name; one task per function and
  process) whose start and inputs go out in one append before the call and its outputs and end in one
  after it.

The current step is set and restored around the call with the restore as the first thing in ``finally``:
a ``KeyboardInterrupt`` at any point leaves no step current.
"""

from __future__ import annotations

import functools
import inspect
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar, cast, overload

import wrapt

from . import _runtime
from ._context import contained, report, suppressed
from ._errors import ConfigurationError, DecorationError, ExtractionError, NodeCoercionError
from ._events import INPUT, OUTPUT, Record
from ._meta import Meta, MetaLike, to_meta
from ._nodes import App, Dataset, File, Folder, Job, Node, NodeKey, Project, Replay, Task, coerce_keys, coerce_nodes
from ._step import (
    Step,
    _current,
    aiter_with_step,
    check_nodes,
    check_params,
    finish,
    iter_with_step,
    open_run,
    versioned,
)

__all__ = [
    "consumes_dataset",
    "consumes_file",
    "consumes_folder",
    "consumes_job",
    "consumes_project",
    "consumes_task",
    "produces_app",
    "produces_dataset",
    "produces_file",
    "produces_folder",
    "produces_job",
    "produces_project",
    "produces_task",
    "trace_function",
    "workflow_step",
]

F = TypeVar("F", bound=Callable[..., Any])
_EMPTY = inspect.Parameter.empty
_SKIP = ("self", "cls")
_MISSING: Any = object()
_get_step = _current.get
#: Types whose values are remembered as passed (``(spec, value) in run.seen``): hashable by content.
_PLAIN = frozenset({int, str, Project, Dataset, File, Folder, Task, Job, App})


def _walk(value: Any, path: Sequence[str], where: str) -> Any:
    """Follow ``path`` (attributes, mapping keys, integer indexes) into ``value``."""
    for i, seg in enumerate(path):
        try:
            if isinstance(value, Mapping):
                value = value[seg] if seg in value or not seg.lstrip("-").isdigit() else value[int(seg)]
            elif seg.lstrip("-").isdigit() and isinstance(value, Sequence) and not isinstance(value, str):
                value = value[int(seg)]
            else:
                value = getattr(value, seg)
        except (AttributeError, KeyError, IndexError, TypeError) as exc:
            done = ".".join(path[:i]) or "the value"
            raise ExtractionError(
                f"{where}: cannot read {seg!r} of {done} ({type(value).__name__}): {type(exc).__name__}"
            ) from None
    return value


class _Spec:
    """One decorator on one function: what to read, how to make nodes of it, and with which card.

    ``index``/``name``/``default`` are set for a plain parameter read (the fast path); ``getter`` reads
    anything else (a path into an argument or into the result, a callable source).
    """

    __slots__ = ("cls", "culprit", "default", "direct", "getter", "guard", "index", "keys", "kind", "meta",
                 "model_weight", "name", "plain", "version", "when")

    def __init__(self, kind: int, cls: type[Node], culprit: str) -> None:
        self.kind = kind
        self.cls = cls
        self.culprit = culprit
        self.getter: Callable[[_Tracer, Any, tuple[Any, ...], dict[str, Any], Any], Any] | None = None
        self.index: int | None = None
        self.name: str | None = None
        self.default: Any = _EMPTY
        self.when: Callable[[dict[str, Any]], Any] | None = None
        self.meta: Meta | None = None
        self.model_weight = False
        self.version: bool | str = False
        self.plain = False  # values may be remembered as passed (no predicate, no versioning)
        self.direct = False  # plain, and read from a parameter or the result as it is (set by _Tracer.add)
        self.guard = contained(culprit)
        #: The node keys of plain values coerced before (a value of a type in ``_PLAIN`` always gives the
        #: same keys): a loader called with the same ids run after run coerces them once. Bounded.
        self.keys: dict[Any, list[NodeKey]] = {}

    def __repr__(self) -> str:
        return f"<{self.culprit}>"

    def coerce(self, value: Any) -> list[NodeKey]:
        """The node keys of ``value`` (raises :class:`NodeCoercionError` naming this decorator)."""
        keys = coerce_keys(self.cls, value, model_weight=self.model_weight, culprit=self.culprit)
        if type(value) in _PLAIN:  # remembered (the callers look in ``keys`` first)
            if len(self.keys) >= 1024:  # bounded: values of one decorator
                self.keys.clear()
            self.keys[value] = keys
        return keys


class _Tracer:
    """The ``wrapt`` wrapper of one function: every stacked decorator adds a spec to it."""

    def __init__(self, func: Any) -> None:
        target = func.__func__ if isinstance(func, (classmethod, staticmethod)) else func
        self.func = target
        self.qualname: str = str(getattr(target, "__qualname__", None) or getattr(target, "__name__", "function"))
        try:
            self.sig = inspect.signature(target)
        except (TypeError, ValueError) as exc:
            raise DecorationError(f"cannot read the signature of {self.qualname}: {exc}") from None
        self.params: list[inspect.Parameter] = list(self.sig.parameters.values())
        self.inputs: tuple[_Spec, ...] = ()
        self.outputs: tuple[_Spec, ...] = ()
        self._step: workflow_step | None = None
        self.is_async = inspect.iscoroutinefunction(target)
        self.is_gen = inspect.isgeneratorfunction(target)
        self.is_async_gen = inspect.isasyncgenfunction(target)
        self.sync = not (self.is_async or self.is_gen or self.is_async_gen)
        #: ``(spec, index)`` per input when every decorator reads a plain parameter or the result of a sync
        #: function without its own step (see :meth:`__call__`); else ``None``.
        self.fast: tuple[tuple[_Spec, int], ...] | None = None
        self.arity = 0
        self.readers: tuple[_Spec, ...] = ()  # the inputs read from a parameter as it was passed
        self.reads_result = False  # whether an output is the return value as it is
        self.c_in = contained(f"{self.qualname}: recording inputs")
        self.c_out = contained(f"{self.qualname}: recording outputs")
        self.c_out_failed = contained(f"{self.qualname}: recording outputs", allow_raise=False)

    def add(self, spec: _Spec, *, first: bool = False) -> None:
        spec.direct = spec.plain and spec.getter is None
        if spec.kind == INPUT:
            self.inputs = (spec, *self.inputs) if first else (*self.inputs, spec)
        else:
            self.outputs = (spec, *self.outputs) if first else (*self.outputs, spec)
        self._plan()

    def _plan(self) -> None:
        self.readers = tuple(s for s in self.inputs if s.getter is None and s.name is not None)
        self.reads_result = any(s.getter is None and s.name is None for s in self.outputs)
        plain = all(s.direct and s.index is not None for s in self.inputs) and all(s.direct for s in self.outputs)
        self.fast = None
        if plain and self.sync and self._step is None:
            self.fast = tuple((s, cast(int, s.index)) for s in self.inputs)
            self.arity = max((index + 1 for _s, index in self.fast), default=0)  # positional args it reads

    @property
    def step(self) -> workflow_step | None:
        """The function's own ``@workflow_step`` (each call its own run), or ``None``."""
        return self._step

    @step.setter
    def step(self, step: workflow_step | None) -> None:
        self._step = step
        self._plan()

    @property
    def signature_text(self) -> str:
        names = []
        for p in self.params:
            prefix = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
            names.append(prefix + p.name)
        return f"{self.qualname}({', '.join(names)})"

    def param(self, name: str, decorator: str) -> tuple[str, int | None, Any]:
        """``(name, index, default)`` of parameter ``name``, or a decoration-time error naming it."""
        index = 0
        has_var_kw = False
        for p in self.params:
            if p.kind is p.VAR_KEYWORD:
                has_var_kw = True
                continue
            if p.name == name and p.kind is not p.VAR_POSITIONAL:
                positional = p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                return name, index if positional else None, p.default
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                index += 1
        if has_var_kw:
            return name, None, _EMPTY
        names = ", ".join(p.name for p in self.params) or "none"
        raise DecorationError(
            f"@{decorator}: {self.signature_text} has no parameter {name!r} (its parameters: {names})"
        )

    def detect(self, cls: type[Node], decorator: str) -> tuple[str, int | None, Any]:
        """Auto-detect the parameter holding a ``cls`` value: by name, then by annotation."""
        names = cls._param_names
        pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, cls._annotation_names)) + r")\b")
        found: list[str] = []
        for i, p in enumerate(self.params):
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or (i == 0 and p.name in _SKIP):
                continue
            ann = p.annotation
            # A class by its name; a typing form (Optional[Dataset], list[Dataset]) by its repr, which names its args.
            ann_text = ann if isinstance(ann, str) else f"{getattr(ann, '__name__', '')} {ann!r}"
            if p.name in names or (ann is not _EMPTY and pattern.search(str(ann_text))):
                found.append(p.name)
        kind = cls.__name__.lower()
        params = ", ".join(p.name for p in self.params) or "none"
        if not found:
            raise DecorationError(
                f"@{decorator}: cannot find the {kind} parameter of {self.signature_text}: no parameter is "
                f"named {', '.join(names)} or annotated {' / '.join(cls._annotation_names)} (its parameters: "
                f"{params}). Name it: @{decorator}('param') or @{decorator}('cfg.{kind}_id')"
            )
        if len(found) > 1:
            raise DecorationError(
                f"@{decorator}: ambiguous {kind} parameter in {self.signature_text}: "
                f"{', '.join(found)} all match. Name one: @{decorator}({found[0]!r})"
            )
        return self.param(found[0], decorator)

    # -- reading values --------------------------------------------------------------------------------
    @staticmethod
    def arg(spec: _Spec, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The value of a plain parameter, ``_MISSING`` when it was not passed and has no default."""
        if kwargs:
            value = kwargs.get(spec.name, _MISSING)  # type: ignore[arg-type]
            if value is not _MISSING:
                return value
        index = spec.index
        if index is not None:
            if instance is not None:  # wrapt passes self/cls apart from args on bound calls
                if index == 0:
                    return instance
                index -= 1
            if index < len(args):
                return args[index]
        return _MISSING if spec.default is _EMPTY else spec.default

    def replayed(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments, each one-shot iterator an input reads as its :class:`Replay` (read here, once)."""
        for spec in self.readers:
            value = self.arg(spec, instance, args, kwargs)
            if type(value) in _PLAIN or (replay := Replay.of(value)) is value:
                continue
            if spec.name in kwargs:
                kwargs = {**kwargs, spec.name: replay}
            elif spec.index is not None and 0 <= (i := spec.index - (instance is not None)) < len(args):
                args = (*args[:i], replay, *args[i + 1:])
        return args, kwargs

    def bound(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        full = args if instance is None else (instance, *args)
        try:
            ba = self.sig.bind(*full, **kwargs)
        except TypeError:
            ba = self.sig.bind_partial(*full, **kwargs)
        ba.apply_defaults()
        return dict(ba.arguments)

    def value(self, spec: _Spec, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Any:
        if spec.getter is not None:
            return spec.getter(self, instance, args, kwargs, result)
        if spec.name is None:  # an output read from the return value
            return result
        value = self.arg(spec, instance, args, kwargs)
        if value is _MISSING:
            raise ExtractionError(f"{spec.culprit}: argument {spec.name!r} was not passed")
        return value

    def collect(self, step: Step, records: list[Record], specs: tuple[_Spec, ...], instance: Any,
                args: tuple[Any, ...], kwargs: dict[str, Any], result: Any = None) -> None:
        """Records for what ``specs`` read, skipping values this run already recorded (each spec contained:
        a value that cannot be read or made a node is reported, and the other specs still record)."""
        seen = step.seen
        bound: dict[str, Any] | None = None
        for spec in specs:
            value = _MISSING
            if spec.plain:
                value = result if spec.kind == OUTPUT else self.arg(spec, instance, args, kwargs)
                if type(value) in _PLAIN:  # an id, a path or a node: only its coercion can fail
                    if (spec, value) in seen:
                        continue
                    keys = spec.keys.get(value)
                    if keys is None:
                        try:
                            keys = spec.coerce(value)
                        except NodeCoercionError as exc:  # what spec.guard does, without a with per spec
                            report(exc, spec.culprit)
                            continue
                    step.collect(records, spec.kind, keys, spec.meta)
                    seen.add((spec, value))
                    continue
            with spec.guard:
                if spec.when is not None:
                    if bound is None:
                        bound = self.bound(instance, args, kwargs)
                    if not spec.when(bound):
                        continue
                if value is _MISSING:
                    value = self.value(spec, instance, args, kwargs, result)
                if spec.version:
                    nodes = versioned(coerce_nodes(spec.cls, value, model_weight=spec.model_weight,
                                                   culprit=spec.culprit), spec.version, step, spec.culprit)
                    step.collect(records, spec.kind, nodes, spec.meta)
                else:
                    step.collect(records, spec.kind, spec.coerce(value), spec.meta)

    def record(self, step: Step, specs: tuple[_Spec, ...], instance: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any], result: Any = None) -> None:
        """Record what ``specs`` read that this run has not recorded yet, in one append (contained)."""
        records: list[Record] = []
        with self.c_in if specs is self.inputs else self.c_out:
            self.collect(step, records, specs, instance, args, kwargs, result)
            if records:
                _runtime.write(records)

    # -- the call path ------------------------------------------------------------------------------------
    def __call__(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
        fast = self.fast
        step = _get_step()
        if fast is not None and step is not None and instance is None and not kwargs and len(args) >= self.arity:
            # The fast plan: every value read is a positional argument (or the result) this run recorded
            # already, so nothing is recorded and the switches need no look (they only stop recording).
            seen = step.seen
            for spec, index in fast:
                value = args[index]
                if type(value) not in _PLAIN or (spec, value) not in seen:
                    break
            else:
                result = wrapped(*args)
                for spec in self.outputs:
                    if type(result) not in _PLAIN or (spec, result) not in seen:
                        st = _runtime.state
                        if step.active and (st.enabled if st.ready else st.resolve().enabled) and not suppressed.get():
                            result = Replay.of(result) if self.reads_result else result
                            self.record(step, self.outputs, instance, args, kwargs, result)
                        break
                return result
        st = _runtime.state
        if not (st.enabled if st.ready else st.resolve().enabled) or suppressed.get():
            return wrapped(*args, **kwargs)
        if self.readers:
            args, kwargs = self.replayed(instance, args, kwargs)
        if not self.sync:
            if self.is_async:
                return self._call_async(wrapped, instance, args, kwargs)
            with_step = iter_with_step if self.is_gen else aiter_with_step
            return with_step(wrapped(*args, **kwargs), lambda: self._begin_detached(instance, args, kwargs))
        if step is None or self.step is not None:
            return self._call_in_run(wrapped, instance, args, kwargs, step)
        if not step.active:
            return wrapped(*args, **kwargs)
        # Inside a step: values this run recorded already cost a read and a set lookup each.
        seen = step.seen
        for spec in self.inputs:
            if spec.direct:
                value = self.arg(spec, instance, args, kwargs)
                if type(value) in _PLAIN and (spec, value) in seen:
                    continue
            self.record(step, self.inputs, instance, args, kwargs)
            break
        result = wrapped(*args, **kwargs)
        if self.reads_result:
            result = Replay.of(result)
        for spec in self.outputs:
            if spec.direct and type(result) in _PLAIN and (spec, result) in seen:
                continue
            self.record(step, self.outputs, instance, args, kwargs, result)
            break
        return result

    def _open(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], parent: Step | None) -> Step:
        """A run for this call (the function's own ``@workflow_step``, else an implicit one) with its start
        and inputs recorded (contained: a run whose task cannot be resolved records without one)."""
        step: Step | None = None
        if self.step is not None:
            step, records = self.step.open(self.step.name or self.qualname, parent)
        else:
            with self.c_in:
                step = open_run(self.qualname, parent, implicit=True)
            if step is None:  # the task could not be resolved: record without one rather than not at all
                step = Step(self.qualname, parent, None)
            records = [step.start_record()]
        with self.c_in:
            if step.active:
                self.collect(step, records, self.inputs, instance, args, kwargs)
                if records:
                    _runtime.write(records)
        return step

    def _finish(self, step: Step, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                result: Any, exc: BaseException | None) -> None:
        if not step.active:
            return
        records: list[Record] = []
        if exc is None:
            with self.c_out:
                self.collect(step, records, self.outputs, instance, args, kwargs, result)
                if self.step is not None and self.step.outputs:
                    step.collect(records, OUTPUT, self.step.outputs, self.step.meta)
        with self.c_out if exc is None else self.c_out_failed:
            _runtime.write(step.finish_records(records, exc))

    def _call_in_run(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any], parent: Step | None) -> Any:
        step = self._open(instance, args, kwargs, parent)
        try:
            _current.set(step)
            result = wrapped(*args, **kwargs)
            result = Replay.of(result) if self.reads_result else result
        except BaseException as exc:
            _current.set(parent)
            self._finish(step, instance, args, kwargs, None, exc)
            raise
        _current.set(parent)
        self._finish(step, instance, args, kwargs, result, None)
        return result

    async def _call_async(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                          kwargs: dict[str, Any]) -> Any:
        parent = _current.get()
        if parent is not None and self.step is None:
            if parent.active:
                self.record(parent, self.inputs, instance, args, kwargs)
            result = await wrapped(*args, **kwargs)
            result = Replay.of(result) if self.reads_result else result
            if parent.active:
                self.record(parent, self.outputs, instance, args, kwargs, result)
            return result
        step = self._open(instance, args, kwargs, parent)
        try:
            _current.set(step)
            result = await wrapped(*args, **kwargs)
            result = Replay.of(result) if self.reads_result else result
        except BaseException as exc:
            _current.set(parent)
            self._finish(step, instance, args, kwargs, None, exc)
            raise
        _current.set(parent)
        self._finish(step, instance, args, kwargs, result, None)
        return result

    def _begin_detached(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                        ) -> Callable[[BaseException | None], None]:
        """For generators: a run that is not made current (a generator's frames interleave with its
        consumer's, so a context variable set inside would leak into the consumer)."""
        parent = _current.get()
        owned = parent is None or self.step is not None
        step = self._open(instance, args, kwargs, parent) if owned else parent
        if not owned and parent is not None and parent.active:
            self.record(parent, self.inputs, instance, args, kwargs)

        def end(exc: BaseException | None) -> None:
            if step is None or not step.active:
                return
            if owned:
                self._finish(step, instance, args, kwargs, None, exc)
            elif exc is None:
                self.record(step, self.outputs, instance, args, kwargs)

        return end


def _tracer_of(func: Any) -> _Tracer | None:
    if isinstance(func, wrapt.FunctionWrapper):
        wrapper = getattr(func, "_self_wrapper", None)
        if isinstance(wrapper, _Tracer):
            return wrapper
    return None


def _what(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__qualname__}"
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if name == "<lambda>":
        return "a lambda"
    return f"{type(obj).__name__} {name}" if name else f"a {type(obj).__name__} ({obj!r:.60})"


def _check_target(decorator: str, func: Any) -> None:
    """Refuse, when decorating, what a decorator cannot wrap: classes, lambdas, non-callables."""
    if isinstance(func, (classmethod, staticmethod)):
        return
    if isinstance(func, type):
        raise DecorationError(
            f"{decorator} decorates a function or method, not {_what(func)}: decorate the method that reads "
            f"or writes the data (e.g. {func.__qualname__}.run), or use workflow_step"
        )
    if not callable(func):
        raise DecorationError(
            f"{decorator} decorates a function or method, not {_what(func)}: write @{decorator.lstrip('@')} above "
            "a def, or pass the value as a source: @consumes_project('param')"
        )
    if inspect.isfunction(func) and func.__name__ == "<lambda>":
        raise DecorationError(
            f"{decorator} was applied to a lambda: decorate a named function (def ...), or pass the lambda as "
            "the source of a decorator: @produces_file(lambda result: result.path)"
        )


def trace_function(func: F, *, spec: _Spec | None = None, step: workflow_step | None = None) -> F:
    """Wrap ``func`` once; later decorators on the same function add their spec to the same wrapper."""
    tracer = _tracer_of(func)
    if tracer is not None:
        if spec is not None:
            tracer.add(spec, first=True)  # decorators apply bottom-up: keep the written (top-down) order
        if step is not None:
            if tracer.step is not None:  # a second @workflow_step: a nested step around the first
                outer = _Tracer(func)
                outer.step = step
                return cast(F, wrapt.FunctionWrapper(func, outer))
            tracer.step = step
        return func
    tracer = _Tracer(func)
    if spec is not None:
        tracer.add(spec)
    tracer.step = step
    return cast(F, wrapt.FunctionWrapper(func, tracer))


# -- the factory ---------------------------------------------------------------------------------------
def _is_source_callable(obj: Any) -> bool:
    if isinstance(obj, (functools.partial, operator.itemgetter, operator.attrgetter)):
        return True
    return inspect.isfunction(obj) and obj.__name__ == "<lambda>"


def _is_target(obj: Any) -> bool:
    if isinstance(obj, (classmethod, staticmethod, type)):
        return True
    return callable(obj) and not isinstance(obj, str) and not _is_source_callable(obj)


class _NodeDecorator:
    """One of the thirteen decorators; usable bare (``@consumes_project``) or called (``@...("src")``)."""

    def __init__(self, name: str, kind: int, cls: type[Node], doc: str) -> None:
        self.__name__ = self.__qualname__ = name
        self.__doc__ = doc
        self.__module__ = "workflow_trace"
        self.kind = kind
        self.cls = cls
        applies = {"source": cls is not App, "arg": kind == OUTPUT and cls is not App, "model_weight": cls is File,
                   "version": cls is Project and kind == INPUT}  # besides meta= and when=, which all take
        self.options = frozenset({"meta", "when", *(name for name, yes in applies.items() if yes)})

    def __repr__(self) -> str:
        return f"<workflow_trace decorator {self.__name__}>"

    @overload
    def __call__(self, func: F, /) -> F: ...

    @overload
    def __call__(self, source: str | Callable[..., Any] | None = None, /, **options: Any) -> Callable[[F], F]: ...

    def __call__(self, *args: Any, **options: Any) -> Any:  # type: ignore[misc]
        name = self.__name__
        if len(args) == 1 and not options and _is_target(args[0]):
            _check_target(f"@{name}", args[0])
            return self._decorate(args[0], None, {})
        if len(args) > 1:
            raise DecorationError(f"{name}() takes at most one positional argument (the source)")
        unknown = set(options) - self.options
        if unknown:
            raise DecorationError(
                f"{name}() got unexpected option(s) {', '.join(sorted(unknown))}; "
                f"its options are: {', '.join(sorted(self.options))}"
            )
        source = args[0] if args else options.pop("source", None)
        if args and "source" in options:
            raise DecorationError(f"{name}() got the source twice (positional and source=)")
        self._check_options(source, options)
        lambda_source = inspect.isfunction(source) and source.__name__ == "<lambda>"
        written = f"{name}({'<lambda>' if lambda_source else '...' if args or options else ''})"

        def decorator(*targets: Any) -> Any:
            if len(targets) != 1:
                what = (" A lambda given first is the source (what to read from the call), not the function to "
                        "decorate; to decorate a function, name it with def.") if lambda_source else ""
                raise DecorationError(
                    f"{written} is a decorator: put @{written} above a def (it was called with "
                    f"{len(targets)} arguments instead of the function to decorate).{what}"
                )
            _check_target(f"@{written}", targets[0])
            return self._decorate(targets[0], source, options)

        return decorator

    def _check_options(self, source: Any, options: dict[str, Any]) -> None:
        name = self.__name__
        if source is not None and not isinstance(source, str) and not callable(source):
            raise DecorationError(
                f"{name}({source!r:.40}): the source must be a parameter name or path (str) or a callable, "
                f"not {type(source).__name__}; to record a fixed node use workflow_step(inputs=[...]) or "
                "step.add_input(...)"
            )
        if isinstance(source, str) and not _valid_path(source, into_result=self.kind == OUTPUT):
            raise DecorationError(f"{name}(): {source!r} is not a parameter name or a dotted path")
        when = options.get("when")
        if when is not None and not callable(when):
            raise DecorationError(f"{name}(when=...) must be a callable taking the bound arguments")
        arg = options.get("arg")
        if arg is not None:
            if not isinstance(arg, str) or not _valid_path(arg):
                raise DecorationError(f"{name}(arg=...) must be a parameter name or a dotted path")
            if source is not None:
                raise DecorationError(f"{name}(): give either a source path into the result or arg=, not both")
        version = options.get("version", False)
        if not isinstance(version, (bool, str)):
            raise DecorationError(f"{name}(version=...) must be True, False or a version title")
        if not isinstance(options.get("model_weight", False), bool):
            raise DecorationError(f"{name}(model_weight=...) must be a bool")
        try:
            options["meta"] = to_meta(options.get("meta"))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{name}(meta=...): {exc}") from None

    def _decorate(self, func: Any, source: Any, options: dict[str, Any]) -> Any:
        name = self.__name__
        tracer = _tracer_of(func) or _Tracer(func)
        spec = _Spec(self.kind, self.cls, f"@{name} on {tracer.qualname}")
        spec.when = options.get("when")
        spec.meta = options.get("meta")
        spec.model_weight = bool(options.get("model_weight", False))
        spec.version = options.get("version", False)
        arg = options.get("arg")
        where = spec.culprit
        if self.cls is App:
            spec.getter = lambda t, i, a, k, r: App()
        elif self.kind == INPUT:
            if callable(source):
                fn = source
                spec.getter = lambda t, i, a, k, r: fn(t.bound(i, a, k))
            else:
                if source is None:
                    pname, index, default = tracer.detect(self.cls, name)
                    rest: list[str] = []
                else:
                    first, *rest = source.split(".")
                    pname, index, default = tracer.param(first, name)
                self._param_spec(spec, pname, index, default, rest, where)
        else:
            if (tracer.is_gen or tracer.is_async_gen) and arg is None:
                raise DecorationError(
                    f"@{name} on generator function {tracer.signature_text}: a generator's output must "
                    f"come from an argument: use @{name}(arg='param')"
                )
            if arg is not None:
                first, *rest = arg.split(".")
                pname, index, default = tracer.param(first, name)
                self._param_spec(spec, pname, index, default, rest, where)
                spec.plain = False  # read after the call: the object may have changed
            elif callable(source):
                fn = source
                spec.getter = lambda t, i, a, k, r: fn(r)
            elif isinstance(source, str):
                path = source.split(".")
                spec.getter = lambda t, i, a, k, r: _walk(r, path, f"{where}: the return value")
            else:
                spec.plain = spec.when is None
        if _tracer_of(func) is None:
            wrapped = wrapt.FunctionWrapper(func, tracer)
            tracer.add(spec)
            return wrapped
        return trace_function(func, spec=spec)

    @staticmethod
    def _param_spec(spec: _Spec, pname: str, index: int | None, default: Any, rest: list[str], where: str) -> None:
        spec.name, spec.index, spec.default = pname, index, default
        if rest:
            def getter(t: _Tracer, i: Any, a: tuple[Any, ...], k: dict[str, Any], r: Any) -> Any:
                value = t.arg(spec, i, a, k)
                if value is _MISSING:
                    raise ExtractionError(f"{where}: argument {pname!r} was not passed")
                return _walk(value, rest, f"{where}: argument {pname!r}")

            spec.getter = getter
        else:
            spec.plain = spec.when is None and not spec.version


_SEG = r"(?:[A-Za-z_][A-Za-z0-9_]*|-?[0-9]+)"
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\." + _SEG + r")*$")  # starts with a parameter name
_RESULT_PATH = re.compile(r"^" + _SEG + r"(?:\." + _SEG + r")*$")  # into a return value: "0.id" is fine


def _valid_path(text: str, *, into_result: bool = False) -> bool:
    return bool((_RESULT_PATH if into_result else _PATH).match(text))


def _doc(verb: str, kind: str, extra: str = "") -> str:
    if verb == "consumes":
        where = (
            f"Records the {kind} a function reads as an input, before the call runs. The value comes from a "
            f"parameter found by name or annotation, or from ``source``: a parameter name, a path into it "
            f"(``'cfg.{kind}_id'``), or a callable receiving the bound arguments as a dict."
        )
    else:
        where = (
            f"Records the {kind} a function writes as an output, after it returns. The value is the return "
            f"value, a path into it (``source``), or an argument read after the call (``arg='name'``)."
        )
    options = "``meta=`` (WorkflowMeta or wire dict), ``when=`` (predicate on the bound arguments)"
    return f"{where}\n\nOptions: {options}{extra}."


consumes_project = _NodeDecorator(
    "consumes_project", INPUT, Project,
    _doc("consumes", "project", ", ``version=`` (True or a title: version the project before the call)"),
)
consumes_dataset = _NodeDecorator("consumes_dataset", INPUT, Dataset, _doc("consumes", "dataset"))
consumes_file = _NodeDecorator(
    "consumes_file", INPUT, File, _doc("consumes", "file", ", ``model_weight=`` (the file is a checkpoint)")
)
consumes_folder = _NodeDecorator("consumes_folder", INPUT, Folder, _doc("consumes", "folder"))
consumes_task = _NodeDecorator("consumes_task", INPUT, Task, _doc("consumes", "task"))
consumes_job = _NodeDecorator("consumes_job", INPUT, Job, _doc("consumes", "labeling job"))
produces_project = _NodeDecorator("produces_project", OUTPUT, Project, _doc("produces", "project"))
produces_dataset = _NodeDecorator("produces_dataset", OUTPUT, Dataset, _doc("produces", "dataset"))
produces_file = _NodeDecorator(
    "produces_file", OUTPUT, File, _doc("produces", "file", ", ``model_weight=`` (the file is a checkpoint)")
)
produces_folder = _NodeDecorator("produces_folder", OUTPUT, Folder, _doc("produces", "folder"))
produces_task = _NodeDecorator("produces_task", OUTPUT, Task, _doc("produces", "task"))
produces_job = _NodeDecorator("produces_job", OUTPUT, Job, _doc("produces", "labeling job"))
produces_app = _NodeDecorator(
    "produces_app", OUTPUT, App,
    "Records the current task's offline session (an ``App`` node) as an output when the function returns."
    "\n\nOptions: ``meta=``, ``when=``.",
)


class workflow_step:
    """A step: a context manager, an async context manager and a decorator.

    ``with workflow_step("train", inputs=[wt.Project(id=42)], params={"lr": 0.1}) as step: ...``

    Args:
        name: The step's name (a decorated function's qualified name by default, else ``"step"``).
        inputs: Nodes recorded as inputs when the step opens.
        outputs: Nodes recorded as outputs when the step ends without an exception.
        task_id: The task to record for; else the parent step's, ``SUPERVISELY_TASK_ID``, ``TASK_ID``, or a
            new local task id from backends that own ids (the local store).
        version_inputs: Version every project input before the block runs (``True`` or a title).
        meta: Card settings applied to ``inputs`` and ``outputs`` (a ``WorkflowMeta`` or wire dict).
        params: The run's parameters (a JSON-serialisable mapping; secret-looking values are masked).

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
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"workflow_step(name=...) must be a str, not {type(name).__name__}")
        if task_id is not None and (isinstance(task_id, bool) or not isinstance(task_id, int)):
            raise TypeError(f"workflow_step(task_id=...) must be an int, not {type(task_id).__name__}")
        if not isinstance(version_inputs, (bool, str)):
            raise TypeError("workflow_step(version_inputs=...) must be True, False or a version title")
        self.name = name
        self.inputs = tuple(check_nodes(inputs, "workflow_step(inputs=...)", INPUT))
        self.outputs = tuple(check_nodes(outputs, "workflow_step(outputs=...)", OUTPUT))
        self.task_id = task_id
        self.version_inputs = version_inputs
        self.params = check_params(params, "workflow_step(params=...)")
        try:
            self.meta = to_meta(meta)
        except ConfigurationError as exc:
            raise ConfigurationError(f"workflow_step(meta=...): {exc}") from None

    def __repr__(self) -> str:
        return f"workflow_step(name={self.name!r}, task_id={self.task_id!r})"

    # -- entering and leaving (shared by the context managers and the decorator) ------------------------
    def open(self, name: str | None = None, parent: Step | None = None) -> tuple[Step, list[Record]]:
        """A new run of this step and the records of its start and inputs (not written yet).

        Never raises outside strict mode: a run whose task cannot be resolved records without a task.
        """
        run_name = name or self.name or "step"
        params = None if self.params is None else dict(self.params)
        if not _runtime.is_enabled() or suppressed.get():
            return Step(run_name, parent, self.task_id, active=False, config=self), []
        step: Step | None = None
        with contained(f"step {run_name!r}: start"):
            step = open_run(run_name, parent, task_id=self.task_id, config=self, params=params)
        if step is None:
            step = Step(run_name, parent, self.task_id, config=self, params=params)
        records = [step.start_record()]
        if self.inputs:
            with contained(f"step {run_name!r}: inputs"):
                nodes = versioned(list(self.inputs), self.version_inputs, step, f"step {run_name!r}")
                step.collect(records, INPUT, nodes, self.meta)
        return step, records

    def __enter__(self) -> Step:
        parent = _current.get()
        step, records = self.open(None, parent)
        if records:
            with contained(f"step {step.name!r}: start"):
                _runtime.write(records)
        step.prev = parent
        try:
            _current.set(step)
        except BaseException:  # a KeyboardInterrupt right after the set: leave no step behind
            _current.set(parent)
            raise
        return step

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        step = _current.get()
        if step is None or step.config is not self:
            return False  # entered in another context (another asyncio task), or left out of order
        _current.set(step.prev)
        records: list[Record] = []
        if exc is None and self.outputs and step.active:
            with contained(f"step {step.name!r}: outputs"):
                step.collect(records, OUTPUT, self.outputs, self.meta)
        finish(step, exc, records)
        return False

    async def __aenter__(self) -> Step:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    # -- decorator ----------------------------------------------------------------------------------------
    def __call__(self, func: F) -> F:
        """Run every call of ``func`` in its own step (named ``name`` or the function's qualified name)."""
        _check_target("@workflow_step(...)", func)
        return trace_function(func, step=self)




# inspect.signature(workflow_step) would show __new__'s (name=None, **kwargs): it shows __init__'s parameters.
_init = inspect.signature(workflow_step.__init__)
workflow_step.__signature__ = inspect.Signature(list(_init.parameters.values())[1:])  # type: ignore[attr-defined]
