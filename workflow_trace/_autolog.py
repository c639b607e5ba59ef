"""Lineage from an unmodified Supervisely app: instrument the SDK's data entry and exit points.

::

    import workflow_trace
    workflow_trace.autolog()          # one line at start-up; or run `python -m workflow_trace run app.py`

    import supervisely as sly
    api = sly.Api.from_env()
    project = api.project.get_info_by_id(42)                  # input  project:42
    sly.download_project(api, project.id, "/tmp/p")           # input  project:42 (recorded once per step)
    res_id, _ = sly.upload_project("/tmp/p", api, 3)          # output project:<res_id>
    api.file.upload(7, "/tmp/p.tar.gz", "/exports/p.tar.gz")  # output file:/exports/p.tar.gz

:func:`autolog` registers a ``wrapt`` post-import hook for ``supervisely``: when the SDK is imported (or
at once, if it already is) the functions listed in :data:`INSTRUMENTED` are replaced, on their classes
and modules, by ``wrapt.FunctionWrapper`` proxies. Reading is an input, creating or uploading an output.
``autolog(disable=True)`` puts the original function objects back.

Rules:

- **After success only.** A call that raises records nothing; inputs too are recorded after the SDK
  returns (the id often comes from the result), unlike ``@consumes_*``, which records before the call.
- **Untouched calls.** The SDK's result and exceptions pass through unchanged; everything
  workflow_trace does around the call runs inside its containment primitive.
- **What the app asks for, once.** Only calls the app makes itself are recorded. An instrumented function
  called from inside the SDK (``download_project`` looking up the project's info, ``upload_project``
  creating the project and its datasets) records nothing beyond what the outer call means; so do calls
  made while workflow_trace itself works (a backend, a version being created). A node is recorded once
  per step and direction, and reading back a node the step already produced (``get_info_by_id`` of the
  project just uploaded) is not an input.
- **Where it goes.** Into the current step (``workflow_step`` or a decorated function), else into the
  per-process step, exactly like the :mod:`workflow_trace.workflow` facade.
- **Which ``Api``.** Patching is per class (that is what makes an unmodified app work, whatever ``Api``
  objects it builds); ``autolog(api)`` records only the calls made through that ``Api`` instance
  (several calls widen the set; ``autolog()`` records every instance).
- **Import first.** Names bound before ``autolog()`` ran (``from supervisely import download_project``
  in a module imported earlier) keep the original function; ``sly.download_project`` and method calls on
  ``api.*`` are always seen. ``python -m workflow_trace run`` switches autolog on before the script runs.
- **Checkpoints, as the SDK's own frameworks record them.** A checkpoint (a file whose name ends in one of
  :data:`MODEL_WEIGHT_SUFFIXES`) uploaded to team Files makes its folder an output, with the "Checkpoints"
  folder card of the SDK's ``TrainApp``, and the file a model-weight output; ``upload_directory`` makes
  each uploaded folder that holds checkpoints such a checkpoint folder. A checkpoint downloaded makes its
  folder an input too (the SDK's serving framework records the folder), so a serving run joins the
  training run that wrote the folder.
- **SDK frameworks.** Work that SDK code does on the app's behalf (``sly.nn.training.TrainApp``, which
  records its own workflow) is SDK-internal and not recorded; the ``sly.app.Export`` template's ``run()``
  is the exception: it reads the project and uploads the result for the app (``sly.output.set_download``),
  so what it does counts as the app's.
"""

from __future__ import annotations

import inspect
import os
import posixpath
import runpy
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType, ModuleType
from typing import Any, Literal, NamedTuple

import wrapt

from . import _runtime
from ._context import contained, logger, suppressed
from ._meta import WorkflowMeta, WorkflowSettings
from ._nodes import Dataset, File, Folder, Job, Node, Project, Task, coerce_nodes
from ._step import current_step, process_step
from ._tracing import workflow_step
from .workflow import _record

__all__ = ["INSTRUMENTED", "Instrumented", "autolog", "is_active", "run_script"]

Direction = Literal["input", "output"]

#: File suffixes recorded as model weights (``model_weight=True``) when a file is downloaded or uploaded.
MODEL_WEIGHT_SUFFIXES = (".pt", ".pth", ".onnx", ".engine", ".safetensors", ".ckpt", ".tflite")

# -- what a call means ------------------------------------------------------------------------------------

#: One edge an SDK call produced: direction, node class, the value to coerce, and node field updates.
Edge = tuple[Direction, type[Node], Any, dict[str, Any]]


class _Call(NamedTuple):
    """The arguments of one SDK call, read by parameter name (positional or keyword)."""

    signature: inspect.Signature | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def arg(self, name: str) -> Any:
        """The value passed for ``name`` (its default when it was not passed; ``None`` if it has none)."""
        if name in self.kwargs or self.signature is None:  # a builtin or an odd callable: keywords only
            return self.kwargs.get(name)
        try:
            bound = self.signature.bind_partial(*self.args, **self.kwargs)
        except TypeError:  # arguments the function does not take: the call fails, nothing is recorded
            return None
        bound.apply_defaults()
        return bound.arguments.get(name)


def _signature(func: Callable[..., Any], *, drop_first: bool) -> inspect.Signature | None:
    """The signature an instrumented function is called with (a method's without ``self``)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    return signature.replace(parameters=params[1:]) if drop_first and params else signature


def _is_weight(path: Any) -> bool:
    return isinstance(path, str) and path.lower().endswith(MODEL_WEIGHT_SUFFIXES)


#: The card of a checkpoint folder: the look the SDK's own training framework gives it (``TrainApp``), without
#: its link to one file (several checkpoints share the folder, and one card keeps it one edge).
CHECKPOINTS_CARD = WorkflowMeta(relation_settings=WorkflowSettings(
    title="Checkpoints", icon="folder", icon_color="#FFA500", icon_bg_color="#FFE8BE"))


def _result(direction: Direction, kind: type[Node]) -> Callable[[_Call, Any], Iterable[Edge]]:
    """The call's result (an ``...Info``, a list of them, or ``None``) is the node."""
    return lambda call, result: [(direction, kind, result, {})]


def _arg(direction: Direction, kind: type[Node], name: str) -> Callable[[_Call, Any], Iterable[Edge]]:
    """The argument ``name`` (an id or a path) is the node."""
    return lambda call, result: [(direction, kind, call.arg(name), {})]


def _checkpoint(direction: Direction, path: Any, file: Any) -> list[Edge]:
    """A file in team Files; a checkpoint (:data:`MODEL_WEIGHT_SUFFIXES`) is a model weight, and its folder is
    recorded too, as the SDK's own frameworks record checkpoints: the training's output, the serving's input."""
    if not _is_weight(path):
        return [(direction, File, file, {})]
    folder = posixpath.dirname(path)
    card = {"meta": CHECKPOINTS_CARD} if direction == "output" else {}
    edges: list[Edge] = [(direction, Folder, folder, card)] if folder not in ("", "/") else []
    return [*edges, (direction, File, file, {"model_weight": True})]


def _file_arg(direction: Direction, name: str) -> Callable[[_Call, Any], Iterable[Edge]]:
    """A path in team Files (see :func:`_checkpoint`)."""
    return lambda call, result: _checkpoint(direction, call.arg(name), call.arg(name))


def _file_result(call: _Call, result: Any) -> Iterable[Edge]:
    """Uploaded ``FileInfo`` (one or a list): output files (see :func:`_checkpoint`)."""
    infos = result if isinstance(result, list) else [result]  # a FileInfo is a NamedTuple: not a list
    return [edge for info in infos if info is not None
            for edge in _checkpoint("output", getattr(info, "path", None), info)]


def _uploaded_directory(call: _Call, result: Any) -> Iterable[Edge]:
    """``upload_directory`` returns the folder in team Files; each of its folders that holds checkpoints (seen in
    the local folder just uploaded) is a checkpoint folder too (see :func:`_checkpoint`)."""
    if not isinstance(result, str):
        return []
    local = call.arg("local_dir")
    remote = result.rstrip("/") or "/"
    held: list[str] = []
    if isinstance(local, (str, os.PathLike)):
        for folder, _, names in os.walk(os.fspath(local)):  # nothing when it is not a folder
            if any(_is_weight(name) for name in names):
                relative = os.path.relpath(folder, local).replace(os.sep, "/")
                held.append(remote if relative == "." else posixpath.join(remote, relative))
    edges: list[Edge] = [] if remote in held else [("output", Folder, remote, {})]
    return [*edges, *(("output", Folder, folder, {"meta": CHECKPOINTS_CARD}) for folder in sorted(held))]


def _uploaded_project(call: _Call, result: Any) -> Iterable[Edge]:
    """``upload_project`` and friends return ``(project_id, project_name)``."""
    project = result[0] if isinstance(result, tuple) and result and not hasattr(result, "id") else result
    return [("output", Project, project, {})]


def _created_version(call: _Call, result: Any) -> Iterable[Edge]:
    """``api.project.version.create`` returns the version id: the app pins what it reads to it."""
    project = call.arg("project_info")  # an id or a ProjectInfo
    project_id = project if isinstance(project, int) else getattr(project, "id", None)
    if isinstance(result, bool) or not isinstance(result, int) or not isinstance(project_id, int):
        return []
    return [("input", Project, Project(id=project_id, version_id=result), {})]


# -- the instrumented calls ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instrumented:
    """One instrumented SDK function.

    Attributes:
        label: How apps call it (``api.project.get_info_by_id``), for log messages.
        module: The module that defines it.
        qualname: ``Class.method`` or ``function`` inside ``module``.
        edges: What a successful call records, from its arguments and result; ``None`` for a
            pass-through: a convenience wrapper whose own instrumented calls count as the app's
            (``sly.upload`` calls ``Project.upload``).
    """

    label: str
    module: str
    qualname: str
    edges: Callable[[_Call, Any], Iterable[Edge]] | None = None


def _specs() -> tuple[Instrumented, ...]:
    api, prj = "supervisely.api", "supervisely.project"
    read_project_id = _arg("input", Project, "project_id")
    read_task_id = _arg("input", Task, "task_id")
    # api.<attribute>.<method> is the method of the class <Attribute>Api in supervisely.api.<attribute>_api.
    api_methods: list[tuple[str, tuple[str, ...], Callable[[_Call, Any], Iterable[Edge]] | None]] = [
        # Reads: the project, dataset, labeling job or team file is an input.
        ("project", ("get_info_by_id", "get_info_by_name"), _result("input", Project)),
        ("dataset", ("get_info_by_id", "get_info_by_name"), _result("input", Dataset)),
        ("labeling_job", ("get_info_by_id",), _result("input", Job)),
        ("file", ("download",), _file_arg("input", "remote_path")),
        ("file", ("download_directory",), _arg("input", Folder, "remote_path")),
        ("file", ("download_input",), None),
        ("task", ("send_request",), read_task_id),
        # Writes: the created project, dataset, job or task, the uploaded file or folder is an output.
        ("project", ("create", "get_or_create"), _result("output", Project)),
        ("dataset", ("create", "get_or_create"), _result("output", Dataset)),
        ("file", ("upload", "upload_bulk"), _file_result),
        ("file", ("upload_directory",), _uploaded_directory),
        ("labeling_job", ("create",), _result("output", Job)),
        ("task", ("start",), _result("output", Task)),
        # api.app.start returns a SessionInfo whose task is task_id.
        ("app", ("start",), lambda call, result: [("output", Task, getattr(result, "task_id", None), {})]),
        ("image", ("upload_path", "upload_paths", "upload_np", "upload_nps", "upload_link", "upload_links",
                   "upload_hash", "upload_hashes", "upload_id", "upload_ids"), _arg("output", Dataset, "dataset_id")),
    ]
    specs = [
        Instrumented(f"api.{attribute}.{method}", f"{api}.{attribute}_api",
                     f"{attribute.title().replace('_', '')}Api.{method}", edges)
        for attribute, methods, edges in api_methods for method in methods
    ]
    specs += [
        Instrumented("api.project.version.create", f"{prj}.data_version", "DataVersion.create", _created_version),
        Instrumented("api.project.version.restore", f"{prj}.data_version", "DataVersion.restore",
                     _result("output", Project)),
        # Inference through a deployed model: the serving task is an input.
        *(Instrumented(f"sly.nn.inference.{cls}(api, task_id)", "supervisely.nn.inference.session",
                       f"{cls}.__init__", read_task_id) for cls in ("Session", "SessionJSON")),
        # Downloads of a whole project, any modality.
        *(Instrumented(f"sly.{name}", f"{prj}.download", name, read_project_id)
          for name in ("download", "download_fast", "download_async")),
        Instrumented("supervisely.project.video_project.download_video_project_async", f"{prj}.video_project",
                     "download_video_project_async", read_project_id),
        # An export app's result (sly.app.Export.run calls it for the app): the uploaded file.
        Instrumented("sly.output.set_download", "supervisely.output", "set_download", _file_result),
        Instrumented("sly.app.Export.run", "supervisely.app.export_template", "Export.run"),
        Instrumented("sly.upload", f"{prj}.upload", "upload"),
    ]
    # One module per modality (supervisely.project.video_project: class VideoProject, sly.download_video_project);
    # the first ones' classes have their own download_async / download_bin / upload_bin.
    binary = ("project", "video_project", "volume_project")
    for module in (*binary, "pointcloud_project", "pointcloud_episode_project", "mesh_project", "audio_project"):
        where = f"{prj}.{module}"
        cls = module.title().replace("_", "")
        prefix = module.removesuffix("project")
        specs += [
            Instrumented(f"sly.download_{prefix}project", where, f"download_{prefix}project", read_project_id),
            Instrumented(f"sly.{cls}.download", where, f"{cls}.download", read_project_id),
            Instrumented(f"sly.upload_{prefix}project", where, f"upload_{prefix}project", _uploaded_project),
            Instrumented(f"sly.{cls}.upload", where, f"{cls}.upload", _uploaded_project),
        ]
        if module in binary:  # elsewhere these raise NotImplementedError (or are the image Project's, inherited)
            specs += [
                Instrumented(f"sly.{cls}.download_async", where, f"{cls}.download_async", read_project_id),
                Instrumented(f"sly.{cls}.download_bin", where, f"{cls}.download_bin", read_project_id),
                Instrumented(f"sly.{cls}.upload_bin", where, f"{cls}.upload_bin", _result("output", Project)),
            ]
    return tuple(specs)


#: Every SDK function :func:`autolog` instruments (those missing from the installed SDK are skipped).
INSTRUMENTED: tuple[Instrumented, ...] = _specs()


# -- whether a call is the app's -------------------------------------------------------------------------

_APP, _THROUGH, _INSIDE = 0, 1, 2
#: ``_INSIDE`` while an instrumented call runs (the SDK calls it makes are its own business);
#: ``_THROUGH`` inside a pass-through wrapper (its instrumented calls count as the app's).
_mode: ContextVar[int] = ContextVar("workflow_trace_autolog", default=_APP)

_SKIP_FRAMES = ("wrapt", __name__)


def _sdk_module(name: str) -> bool:
    return name == "supervisely" or name.startswith("supervisely.")


def _called_from_sdk() -> bool:
    """Whether the nearest caller outside wrapt and this module is SDK code."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__") or ""
        if not name.startswith(_SKIP_FRAMES):
            return _sdk_module(name)
        frame = frame.f_back
    return False


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.active = False
        #: Modules with a post-import hook (registered once per process; inert while autolog is off).
        self.hooks: set[str] = set()
        #: ``None``: every ``Api``; else weak references to the ``Api`` objects whose calls are recorded.
        self.apis: list[weakref.ref[Any]] | None = None
        #: (holder, attribute, original, wrapper) for every replacement made, to undo them.
        self.patches: list[tuple[Any, str, Any, Any]] = []


_state = _State()


def _tracks(api: Any) -> bool:
    return _state.apis is None or any(ref() is api for ref in _state.apis)


class _Wrapper:
    """The ``wrapt`` wrapper of one instrumented function."""

    __slots__ = ("is_async", "on_instance", "signature", "spec")

    def __init__(self, spec: Instrumented, func: Callable[..., Any], *, method: bool) -> None:
        self.spec = spec
        self.signature = _signature(func, drop_first=method)
        self.on_instance = method
        self.is_async = inspect.iscoroutinefunction(func)

    def _decide(self, instance: Any, call: _Call) -> bool:
        if suppressed.get() or not _runtime.is_enabled():
            return False
        mode = _mode.get()
        if mode == _INSIDE or (mode == _APP and _called_from_sdk()):
            return False
        api = getattr(instance, "_api", None) if self.on_instance else None
        return _tracks(call.arg("api") if api is None else api)

    def _emit(self, call: _Call, result: Any) -> None:
        edges = self.spec.edges
        if edges is None:
            return
        with contained(f"autolog: {self.spec.label}"):
            for direction, kind, value, update in edges(call, result):
                _record_edge(direction, kind, value, self.spec.label, update)

    def __call__(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
        call = _Call(self.signature, args, kwargs)
        record = False
        with contained(f"autolog: {self.spec.label}"):
            record = self._decide(instance, call)
        if not record:
            return wrapped(*args, **kwargs)
        mode = _THROUGH if self.spec.edges is None else _INSIDE
        if self.is_async:
            return self._acall(wrapped, call, mode)
        token = _mode.set(mode)
        try:
            result = wrapped(*args, **kwargs)
        finally:
            _mode.reset(token)
        self._emit(call, result)
        return result

    async def _acall(self, wrapped: Callable[..., Any], call: _Call, mode: int) -> Any:
        token = _mode.set(mode)
        try:
            result = await wrapped(*call.args, **call.kwargs)
        finally:
            _mode.reset(token)
        self._emit(call, result)
        return result


def _record_edge(direction: Direction, kind: type[Node], value: Any, label: str, update: dict[str, Any]) -> None:
    """Record through the facade's path (current step, else the process step; enabled, suppressed)."""
    if value is None:
        return
    model_weight = bool(update.pop("model_weight", False))
    meta = update.pop("meta", None)
    if direction == "input":
        # Reading back what this step wrote (the info of the project just uploaded) is not an input.
        step = current_step() or process_step()
        produced = {node.ref for node in step.outputs}
        nodes = [n for n in coerce_nodes(kind, value, model_weight=model_weight, culprit=label)
                 if n.ref not in produced]
        if not nodes:
            return
        value = nodes
    _record(1 if direction == "input" else 2, kind, value, None, meta, f"autolog: {label}", again=False,
            model_weight=model_weight, **update)


# -- patching --------------------------------------------------------------------------------------------


def _resolve(spec: Instrumented) -> tuple[Any, str, Any] | None:
    """``(holder, attribute, original)`` for a spec, or ``None`` when the installed SDK lacks it (or its
    module is not imported yet)."""
    module = sys.modules.get(spec.module)
    if module is None:
        return None
    owner_name, _, attribute = spec.qualname.rpartition(".")
    holder: Any = module
    if owner_name:
        holder = getattr(module, owner_name, None)
        if not isinstance(holder, type):
            return None
    # The raw attribute (a function, or a staticmethod object), from where it is defined.
    original = vars(holder).get(attribute)
    if original is None or isinstance(original, wrapt.FunctionWrapper):
        return None
    return holder, attribute, original


def _patch(spec: Instrumented, exported: dict[int, tuple[Any, Any]]) -> None:
    """Replace one function by its wrapper; a module function also goes into ``exported`` (by id)."""
    resolved = _resolve(spec)
    if resolved is None:  # our wrapper is in place already, or the installed SDK lacks it
        logger.debug("workflow_trace autolog: %s is instrumented already or not in the installed SDK", spec.label)
        return
    holder, attribute, original = resolved
    func = original.__func__ if isinstance(original, (staticmethod, classmethod)) else original
    if not callable(func):
        return
    method = isinstance(holder, type) and not isinstance(original, staticmethod)
    wrapper = wrapt.FunctionWrapper(original, _Wrapper(spec, func, method=method))
    setattr(holder, attribute, wrapper)
    _state.patches.append((holder, attribute, original, wrapper))
    if not isinstance(holder, type):
        exported[id(original)] = (original, wrapper)


def _replace_exports(exported: dict[int, tuple[Any, Any]]) -> None:
    """A module function is re-exported (``sly.download_project``): replace it wherever the SDK holds it."""
    if not exported:
        return
    for name, module in list(sys.modules.items()):
        if not _sdk_module(name) or not isinstance(module, ModuleType):
            continue
        for alias, value in list(vars(module).items()):
            found = exported.get(id(value))
            if found is not None and found[0] is value:
                setattr(module, alias, found[1])
                _state.patches.append((module, alias, value, found[1]))


def _instrument() -> None:
    """Patch every function not patched yet (the SDK is imported)."""
    with _state.lock:
        if not _state.active:
            return
        exported: dict[int, tuple[Any, Any]] = {}
        for spec in INSTRUMENTED:
            if spec.module not in sys.modules:
                # Not imported by `import supervisely` in this SDK version: patch it when it is imported.
                if spec.module not in _state.hooks:
                    _state.hooks.add(spec.module)
                    wrapt.register_post_import_hook(_on_import, spec.module)
                continue
            with contained(f"autolog: instrumenting {spec.label}"):
                _patch(spec, exported)
        with contained("autolog: instrumenting re-exported functions"):
            _replace_exports(exported)


def _uninstrument() -> None:
    """Put every original back (only where our wrapper is still in place)."""
    with _state.lock:
        patches, _state.patches = _state.patches, []
        for holder, attribute, original, wrapper in reversed(patches):
            if vars(holder).get(attribute) is wrapper:
                setattr(holder, attribute, original)
            else:
                logger.warning("workflow_trace autolog: %s.%s was replaced by someone else; leaving it as it is",
                               getattr(holder, "__name__", holder), attribute)


def _on_import(module: ModuleType) -> None:
    """The post-import hook for ``supervisely`` and for SDK modules it did not import (registered once
    per module; inert while autolog is off)."""
    with contained("autolog: instrumenting the supervisely SDK"):
        _instrument()


def autolog(api: Any = None, *, disable: bool = False) -> None:
    """Record the workflow of a Supervisely app without changing it: instrument the SDK's entry and exit points.

    Safe to call before or after ``import supervisely``, and more than once (idempotent). Without the
    ``supervisely`` package it only waits for it to be imported.

    Args:
        api: ``None`` to record the calls of every ``supervisely.Api`` object; an ``Api`` to record only
            the calls made through it (several calls add to the set; ``autolog()`` widens it to all).
        disable: Remove the instrumentation: the original SDK functions are put back.

    Never raises outside strict mode (a failure is logged at WARNING on the ``workflow_trace`` logger).
    """
    with _state.lock:
        if disable:
            _state.active = False
            _state.apis = None
            _uninstrument()
            return
        with contained("autolog"):
            if api is None:
                _state.apis = None
            elif not _state.active:
                _state.apis = [_weak(api)]
            elif _state.apis is not None and not _tracks(api):
                _state.apis.append(_weak(api))
            _state.active = True
            if "supervisely" not in _state.hooks:
                _state.hooks.add("supervisely")
                # Calls the hook at once if supervisely is already imported, else when it is.
                wrapt.register_post_import_hook(_on_import, "supervisely")
            elif "supervisely" in sys.modules:
                _instrument()


def _weak(api: Any) -> weakref.ref[Any]:
    try:
        return weakref.ref(api)
    except TypeError:  # an object without weak reference support: keep it alive instead
        return lambda: api  # type: ignore[return-value]


def is_active() -> bool:
    """Whether :func:`autolog` is on."""
    return _state.active


# -- python -m workflow_trace run script.py --------------------------------------------------------------


def _run_in_step(full: str, name: str) -> None:
    """Run the script as ``__main__`` inside one step. Its uncaught exception (the step records it) is
    printed by ``sys.excepthook`` as Python prints it and becomes ``SystemExit(1)``, Python's exit code."""
    try:
        with workflow_step(name):
            try:
                runpy.run_path(full, run_name="__main__")
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    raise  # the step failed; sys.exit(0) is a normal end
    except Exception as exc:  # noqa: BLE001 - the script's own error, printed as Python prints it
        trimmed = exc.__traceback__  # from the script's first frame on (without runpy and this module)
        while trimmed is not None and os.path.abspath(trimmed.tb_frame.f_code.co_filename) != full:
            trimmed = trimmed.tb_next
        trimmed = trimmed or exc.__traceback__
        sys.excepthook(type(exc), exc.with_traceback(trimmed), trimmed)
        raise SystemExit(1) from None


def run_script(path: str, argv: Sequence[str] = ()) -> int:
    """Run a Python script with :func:`autolog` on, inside one step named after it; flush at the end.

    The script runs as ``__main__`` with ``sys.argv[1:] == argv`` and its folder first on ``sys.path``,
    as ``python path argv...`` would run it (``sys.argv[0]`` and ``__file__`` are its absolute path).
    Its workflow goes to the configured backend (by default the instance given by ``SERVER_ADDRESS`` /
    ``API_TOKEN``, else the local store).

    Returns:
        The exit code Python would have given: 0, the script's ``sys.exit()`` code, or 1 after an
        uncaught exception, which is printed by ``sys.excepthook``. The step is recorded as failed for
        an exception or a non-zero exit. ``KeyboardInterrupt`` propagates.

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise FileNotFoundError(f"no such script: {path}")
    autolog()
    saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
    sys.argv = [path, *argv]
    sys.path[:1] = [os.path.dirname(full)]  # the script's folder first, as python puts it
    try:
        _run_in_step(full, os.path.basename(path))
    except SystemExit as exc:  # the exit code Python gives for it
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    finally:
        sys.argv = saved_argv
        if saved_path0 is not None and sys.path:
            sys.path[0] = saved_path0
        _runtime.flush()
    return 0
