"""The thirteen ``consumes_*`` / ``produces_*`` decorators, made by one factory on ``wrapt``.

Everything that can be checked is checked at decoration time (parameter names, auto-detection, options,
meta); a call only extracts values, builds events and hands them to the backend, inside the containment
primitive. Stacked decorators (and an enclosing ``@workflow_step``) share one ``wrapt`` wrapper, so they
record into one step.
"""

from __future__ import annotations

import functools
import inspect
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast, overload

import wrapt

from . import _runtime
from ._errors import ConfigurationError, DecorationError, ExtractionError
from ._meta import meta_to_wire
from ._nodes import App, Dataset, File, Folder, Job, Node, Project, Task, coerce_nodes
from ._runtime import contained
from ._step import (
    Step,
    _current,
    aiter_with_step,
    iter_with_step,
    open_step,
    versioned_inputs,
    workflow_step,
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
]

F = TypeVar("F", bound=Callable[..., Any])
Direction = Literal["input", "output"]
Items = list[tuple[Node, "dict[str, Any] | None"]]
_EMPTY = inspect.Parameter.empty
_SKIP = ("self", "cls")


# -- reading values at call time -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Param:
    name: str
    index: int | None  # position in the full signature (self/cls included), None for keyword-only
    default: Any
    via_var_kw: bool = False  # not in the signature: may come through **kwargs


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


class _Call:
    """One call of a traced function: reads arguments lazily (binding only when a predicate needs it)."""

    __slots__ = ("_bound", "args", "instance", "kwargs", "tracer")

    def __init__(self, tracer: _Tracer, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.tracer = tracer
        self.instance = instance
        self.args = args
        self.kwargs = kwargs
        self._bound: dict[str, Any] | None = None

    def arg(self, param: _Param) -> Any:
        kwargs = self.kwargs
        if param.name in kwargs:
            return kwargs[param.name]
        index = param.index
        if index is not None:
            if self.instance is not None:  # wrapt passes self/cls apart from args on bound calls
                if index == 0:
                    return self.instance
                index -= 1
            if index < len(self.args):
                return self.args[index]
        if param.default is not _EMPTY:
            return param.default
        raise ExtractionError(f"{self.tracer.where}: argument {param.name!r} was not passed")

    def bound(self) -> dict[str, Any]:
        if self._bound is None:
            full = self.args if self.instance is None else (self.instance, *self.args)
            try:
                ba = self.tracer.sig.bind(*full, **self.kwargs)
            except TypeError:
                ba = self.tracer.sig.bind_partial(*full, **self.kwargs)
            ba.apply_defaults()
            self._bound = dict(ba.arguments)
        return self._bound


Getter = Callable[[_Call, Any], Any]


@dataclass(frozen=True)
class _Spec:
    decorator: str
    direction: Direction
    cls: type[Node]
    getter: Getter
    when: Callable[[dict[str, Any]], Any] | None
    meta: dict[str, Any] | None
    model_weight: bool
    version: bool | str
    culprit: str  # "@consumes_project on train", for messages (built once, at decoration time)


# -- the shared wrapper ------------------------------------------------------------------------------------
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
        self.specs: list[_Spec] = []
        self.step: workflow_step | None = None
        self.is_async = inspect.iscoroutinefunction(target)
        self.is_gen = inspect.isgeneratorfunction(target)
        self.is_async_gen = inspect.isasyncgenfunction(target)
        self.where = f"{self.qualname}"

    @property
    def signature_text(self) -> str:
        names = []
        for p in self.params:
            prefix = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
            names.append(prefix + p.name)
        return f"{self.qualname}({', '.join(names)})"

    def param(self, name: str, decorator: str) -> _Param:
        """Find parameter ``name`` or raise a decoration-time error naming the function and parameters."""
        index = 0
        has_var_kw = False
        for p in self.params:
            if p.kind is p.VAR_KEYWORD:
                has_var_kw = True
                continue
            if p.name == name and p.kind is not p.VAR_POSITIONAL:
                positional = p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                return _Param(name, index if positional else None, p.default)
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                index += 1
        if has_var_kw:
            return _Param(name, None, _EMPTY, via_var_kw=True)
        names = ", ".join(p.name for p in self.params) or "none"
        raise DecorationError(
            f"@{decorator}: {self.signature_text} has no parameter {name!r} (its parameters: {names})"
        )

    def detect(self, cls: type[Node], decorator: str) -> _Param:
        """Auto-detect the parameter holding a ``cls`` value: by name, then by annotation."""
        names = cls._param_names
        pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, cls._annotation_names)) + r")\b")
        found: list[str] = []
        for i, p in enumerate(self.params):
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or (i == 0 and p.name in _SKIP):
                continue
            ann = p.annotation
            ann_text = ann if isinstance(ann, str) else getattr(ann, "__name__", None) or repr(ann)
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

    # -- the call path ------------------------------------------------------------------------------------
    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if _runtime.suppressed.get() or not _runtime.is_enabled():
            return wrapped(*args, **kwargs)
        if self.is_async:
            return self._call_async(wrapped, instance, args, kwargs)
        if self.is_gen:
            call = _Call(self, instance, args, kwargs)
            return iter_with_step(wrapped(*args, **kwargs), lambda: self._begin_detached(call))
        if self.is_async_gen:
            call = _Call(self, instance, args, kwargs)
            return aiter_with_step(wrapped(*args, **kwargs), lambda: self._begin_detached(call))
        call = _Call(self, instance, args, kwargs)
        scope = self._before(call)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            self._after(scope, call, None, exc)
            raise
        self._after(scope, call, result, None)
        return result

    async def _call_async(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _Call(self, instance, args, kwargs)
        scope = self._before(call)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            self._after(scope, call, None, exc)
            raise
        self._after(scope, call, result, None)
        return result

    def _before(self, call: _Call) -> tuple[Step | None, Any, Any]:
        """Open the step if there is none (or this function's own ``@workflow_step``); record inputs.

        Returns (step, what to close: a workflow_step / a context token / None, kind of scope).
        """
        step: Step | None = None
        closer: Any = None
        token: Any = None
        try:
            with contained(f"{self.where}: recording inputs"):
                if self.step is not None:
                    cfg = self.step.copy()
                    step = cfg._enter(cfg.name or self.qualname)
                    closer = cfg
                else:
                    step = _current.get()
                    if step is None:
                        step = open_step(self.qualname, emit_now=False, check_enabled=False)
                        token = _current.set(step)
                if step.active:
                    items = self._collect("input", call, None, step)
                    if items or step._pending:
                        step.record("input", items)
        except BaseException as exc:  # strict mode: leave no step behind as the current one
            if closer is not None:
                closer._exit(exc)
            elif token is not None:
                _current.reset(token)
            raise
        return step, closer, token

    def _after(self, scope: tuple[Step | None, Any, Any], call: _Call, result: Any, exc: BaseException | None) -> None:
        step, closer, token = scope
        if step is None:
            return
        with contained(f"{self.where}: recording outputs", allow_raise=exc is None):
            outputs: Items = []
            if exc is None and step.active:
                outputs = self._collect("output", call, result, step)
            if closer is not None:
                if outputs:
                    step.record("output", outputs)
                closer._exit(exc)
            elif token is not None:
                try:
                    _current.reset(token)
                except ValueError:
                    _current.set(step.parent)
                step.finish(exc, outputs)
            elif outputs:
                step.record("output", outputs)

    def _begin_detached(self, call: _Call) -> Callable[[BaseException | None], None]:
        """For generators: a step that is not made current (a generator's frames interleave with its
        consumer's, so a context variable set inside would leak into the consumer)."""
        owned = False
        step: Step | None = None
        with contained(f"{self.where}: recording inputs"):
            step = _current.get()
            if step is None:
                step = open_step(self.step.name if self.step and self.step.name else self.qualname, emit_now=False)
                owned = True
            if step.active:
                step.record("input", self._collect("input", call, None, step))

        def end(exc: BaseException | None) -> None:
            if step is None:
                return
            with contained(f"{self.where}: recording outputs", allow_raise=exc is None):
                outputs = self._collect("output", call, None, step) if exc is None and step.active else []
                if owned:
                    step.finish(exc, outputs)
                elif outputs:
                    step.record("output", outputs)

        return end

    def _collect(self, direction: Direction, call: _Call, result: Any, step: Step) -> Items:
        items: Items = []
        for spec in self.specs:
            if spec.direction != direction:
                continue
            with contained(spec.culprit):
                if spec.when is not None and not spec.when(call.bound()):
                    continue
                nodes = coerce_nodes(
                    spec.cls, spec.getter(call, result), model_weight=spec.model_weight, culprit=spec.culprit
                )
                meta = spec.meta
                if spec.version:
                    items.extend(versioned_inputs([(n, meta) for n in nodes], spec.version, step, spec.culprit))
                else:
                    for node in nodes:
                        items.append((node, meta))
        return items


def _tracer_of(func: Any) -> _Tracer | None:
    if isinstance(func, wrapt.FunctionWrapper):
        wrapper = getattr(func, "_self_wrapper", None)
        if isinstance(wrapper, _Tracer):
            return wrapper
    return None


def trace_function(func: F, *, spec: _Spec | None = None, step: workflow_step | None = None) -> F:
    """Wrap ``func`` once; later decorators on the same function add their spec to the same wrapper."""
    tracer = _tracer_of(func)
    if tracer is not None:
        if spec is not None:
            tracer.specs.insert(0, spec)  # decorators apply bottom-up: keep the written (top-down) order
        if step is not None:
            if tracer.step is not None:  # a second @workflow_step: a nested step around the first
                outer = _Tracer(func)
                outer.step = step
                return cast(F, wrapt.FunctionWrapper(func, outer))
            tracer.step = step
        return func
    tracer = _Tracer(func)
    if spec is not None:
        tracer.specs.append(spec)
    tracer.step = step
    return cast(F, wrapt.FunctionWrapper(func, tracer))


# -- the factory ---------------------------------------------------------------------------------------
def _is_source_callable(obj: Any) -> bool:
    if isinstance(obj, (functools.partial, operator.itemgetter, operator.attrgetter)):
        return True
    return inspect.isfunction(obj) and obj.__name__ == "<lambda>"


def _is_target(obj: Any) -> bool:
    if isinstance(obj, (classmethod, staticmethod)):
        return True
    return callable(obj) and not isinstance(obj, (str, type)) and not _is_source_callable(obj)


class _NodeDecorator:
    """One of the thirteen decorators; usable bare (``@consumes_project``) or called (``@...("src")``)."""

    def __init__(self, name: str, direction: Direction, cls: type[Node], doc: str) -> None:
        self.__name__ = self.__qualname__ = name
        self.__doc__ = doc
        self.__module__ = "workflow_trace"
        self.direction = direction
        self.cls = cls
        options = {"meta", "when"}
        if cls is not App:
            options.add("source")
        if direction == "output" and cls is not App:
            options.add("arg")
        if cls is File:
            options.add("model_weight")
        if cls is Project and direction == "input":
            options.add("version")
        self.options = frozenset(options)

    def __repr__(self) -> str:
        return f"<workflow_trace decorator {self.__name__}>"

    @overload
    def __call__(self, func: F, /) -> F: ...

    @overload
    def __call__(self, source: str | Callable[..., Any] | None = None, /, **options: Any) -> Callable[[F], F]: ...

    def __call__(self, *args: Any, **options: Any) -> Any:  # type: ignore[misc]
        if len(args) == 1 and not options and _is_target(args[0]):
            return self._decorate(args[0], None, {})
        if len(args) > 1:
            raise DecorationError(f"{self.__name__}() takes at most one positional argument (the source)")
        unknown = set(options) - self.options
        if unknown:
            raise DecorationError(
                f"{self.__name__}() got unexpected option(s) {', '.join(sorted(unknown))}; "
                f"its options are: {', '.join(sorted(self.options))}"
            )
        source = args[0] if args else options.pop("source", None)
        if args and "source" in options:
            raise DecorationError(f"{self.__name__}() got the source twice (positional and source=)")
        self._check_options(source, options)

        def decorator(func: F) -> F:
            if not _is_target(func):
                raise DecorationError(f"{self.__name__}(...) decorates a function, not {type(func).__name__}")
            return self._decorate(func, source, options)  # type: ignore[no-any-return]

        return decorator

    def _check_options(self, source: Any, options: dict[str, Any]) -> None:
        name = self.__name__
        if source is not None and not isinstance(source, str) and not callable(source):
            raise DecorationError(
                f"{name}(): the source must be a parameter name or path (str) or a callable, "
                f"not {type(source).__name__}"
            )
        if isinstance(source, str) and not _valid_path(source, into_result=self.direction == "output"):
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
            options["meta"] = meta_to_wire(options.get("meta"))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{name}(meta=...): {exc}") from None

    def _decorate(self, func: Any, source: Any, options: dict[str, Any]) -> Any:
        name = self.__name__
        tracer = _tracer_of(func) or _Tracer(func)
        where = f"@{name} on {tracer.qualname}"
        getter: Getter
        arg = options.get("arg")
        if self.cls is App:
            def getter(call: _Call, result: Any) -> Any:
                return App()
        elif self.direction == "input":
            if callable(source):
                fn = source

                def getter(call: _Call, result: Any) -> Any:
                    return fn(call.bound())
            else:
                if source is None:
                    param = tracer.detect(self.cls, name)
                    rest: list[str] = []
                else:
                    first, *rest = source.split(".")
                    param = tracer.param(first, name)
                getter = _arg_getter(param, rest, where)
        else:
            if (tracer.is_gen or tracer.is_async_gen) and arg is None:
                raise DecorationError(
                    f"@{name} on generator function {tracer.signature_text}: a generator's output must "
                    f"come from an argument: use @{name}(arg='param')"
                )
            if arg is not None:
                first, *rest = arg.split(".")
                getter = _arg_getter(tracer.param(first, name), rest, where)
            elif callable(source):
                fn = source

                def getter(call: _Call, result: Any) -> Any:
                    return fn(result)
            elif isinstance(source, str):
                path = source.split(".")

                def getter(call: _Call, result: Any) -> Any:
                    return _walk(result, path, f"{where}: the return value")
            else:
                def getter(call: _Call, result: Any) -> Any:
                    return result
        spec = _Spec(
            decorator=name,
            direction=self.direction,
            cls=self.cls,
            getter=getter,
            when=options.get("when"),
            meta=options.get("meta"),
            model_weight=bool(options.get("model_weight", False)),
            version=options.get("version", False),
            culprit=where,
        )
        if _tracer_of(func) is None:
            wrapped = wrapt.FunctionWrapper(func, tracer)
            tracer.specs.append(spec)
            return wrapped
        return trace_function(func, spec=spec)


def _arg_getter(param: _Param, rest: list[str], where: str) -> Getter:
    if not rest:
        def getter(call: _Call, result: Any) -> Any:
            return call.arg(param)
    else:
        def getter(call: _Call, result: Any) -> Any:
            return _walk(call.arg(param), rest, f"{where}: argument {param.name!r}")
    return getter


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
    "consumes_project", "input", Project,
    _doc("consumes", "project", ", ``version=`` (True or a title: version the project before the call)"),
)
consumes_dataset = _NodeDecorator("consumes_dataset", "input", Dataset, _doc("consumes", "dataset"))
consumes_file = _NodeDecorator(
    "consumes_file", "input", File, _doc("consumes", "file", ", ``model_weight=`` (the file is a checkpoint)")
)
consumes_folder = _NodeDecorator("consumes_folder", "input", Folder, _doc("consumes", "folder"))
consumes_task = _NodeDecorator("consumes_task", "input", Task, _doc("consumes", "task"))
consumes_job = _NodeDecorator("consumes_job", "input", Job, _doc("consumes", "labeling job"))
produces_project = _NodeDecorator("produces_project", "output", Project, _doc("produces", "project"))
produces_dataset = _NodeDecorator("produces_dataset", "output", Dataset, _doc("produces", "dataset"))
produces_file = _NodeDecorator(
    "produces_file", "output", File, _doc("produces", "file", ", ``model_weight=`` (the file is a checkpoint)")
)
produces_folder = _NodeDecorator("produces_folder", "output", Folder, _doc("produces", "folder"))
produces_task = _NodeDecorator("produces_task", "output", Task, _doc("produces", "task"))
produces_job = _NodeDecorator("produces_job", "output", Job, _doc("produces", "labeling job"))
produces_app = _NodeDecorator(
    "produces_app", "output", App,
    "Records the current task's offline session (an ``App`` node) as an output when the function returns."
    "\n\nOptions: ``meta=``, ``when=``.",
)
