"""The same calls as the SDK's ``api.app.workflow``, routed to the configured backend.

An app that used ``api.app.workflow.add_input_project(...)`` switches by changing one name::

    from workflow_trace import workflow
    workflow.add_input_project(project_info, version_id=version_id)
    workflow.add_output_file(file_info, model_weight=True, meta=meta)

Unlike the SDK's methods these never raise into the app outside strict mode (no try/except needed) and
never block on the network. A call made inside a step (``workflow_step`` or a decorated function) records
into that step; outside any step it records into one step per process, named after the script and
finished at exit — as an SDK app records into its one task.

A ``meta`` may be a ``WorkflowMeta``, a wire dict or the SDK's own ``supervisely.WorkflowMeta``; it is sent
as the SDK sends it (:func:`workflow_trace._meta.meta_to_wire`, lenient mode): a problem in it costs the
meta, or only an unsafe link, never the edge.
"""

from __future__ import annotations

from typing import Any

from . import _runtime
from ._context import contained, suppressed
from ._errors import NodeCoercionError
from ._events import Record
from ._meta import MetaLike, to_meta
from ._nodes import App, Dataset, File, Folder, Job, Node, Project, Task, coerce_nodes
from ._step import current_step, process_step

__all__ = [
    "add_input_dataset", "add_input_file", "add_input_folder", "add_input_job", "add_input_project", "add_input_task",
    "add_output_app", "add_output_dataset", "add_output_file", "add_output_folder", "add_output_job",
    "add_output_project", "add_output_task", "disable", "enable", "is_enabled",
]

_INPUT, _OUTPUT = 1, 2


def _record(kind: int, cls: type[Node], value: Any, task_id: int | None, meta: MetaLike,
            method: str, again: bool = True, **update: Any) -> None:
    """Record the edges of one call. ``again``: as the SDK does, even those this step recorded already
    (autolog, which sees the SDK's calls inside one another, records each once)."""
    if not _runtime.is_enabled() or suppressed.get():
        return
    with contained(f"workflow.{method}"):
        nodes = coerce_nodes(cls, value, model_weight=bool(update.pop("model_weight", False)), culprit=method)
        if cls is Project:
            nodes = _project_version(nodes, value, method, update.get("version_id"), update.get("version_num"))
        changes = {k: v for k, v in update.items() if v is not None}
        if changes:  # validated again with the changes (a version id must be an int...)
            nodes = [type(n).model_validate({**n.model_dump(), **changes}) for n in nodes]
        if task_id is not None and (isinstance(task_id, bool) or not isinstance(task_id, int)):
            raise NodeCoercionError(f"{method}(task_id=...) must be an int, not {type(task_id).__name__}")
        card = to_meta(meta, lenient=True, culprit=f"workflow.{method}")
        step = current_step() or process_step()
        if not step.active:
            return
        records: list[Record] = []
        # An explicit task id other than the step's: these edges are recorded for that task.
        step.collect(records, kind, nodes, card, task_id if task_id is not None else step.task_id, again=again)
        if records:
            _runtime.write(records)


def _project_version(nodes: list[Node], value: Any, method: str, version_id: Any, version_num: Any) -> list[Node]:
    """The SDK's rules for a project and its version: a version may be named alone (``project=None``, as
    the SDK takes it: the ``project_version`` edge); ``version_num`` needs the project; not both numbers."""
    if version_id is not None and version_num is not None:
        raise NodeCoercionError(f"{method}(): give version_id or version_num, not both (the SDK refuses both too)")
    if value is None and version_num is not None:
        raise NodeCoercionError(
            f"{method}(version_num=...) needs the project: version numbers count per project (give the project, "
            "or the version's id as version_id)"
        )
    if value is None and version_id is not None:
        return [Project.model_validate({"version_id": version_id})]
    return nodes


def add_input_project(project: Any = None, version_id: int | None = None, version_num: int | None = None,
                      task_id: int | None = None, meta: MetaLike = None) -> None:
    """Record a project (id, ``ProjectInfo`` or ``Project``), or one of its versions, as an input.

    A version may be named alone, as the SDK allows: ``add_input_project(version_id=77)``.
    """
    _record(_INPUT, Project, project, task_id, meta, "add_input_project",
            version_id=version_id, version_num=version_num)


def add_input_dataset(dataset: Any, task_id: int | None = None, meta: MetaLike = None) -> None:
    """Record a dataset (id or ``DatasetInfo``) as an input."""
    _record(_INPUT, Dataset, dataset, task_id, meta, "add_input_dataset")


def add_input_file(file: Any, model_weight: bool = False, task_id: int | None = None,
                   meta: MetaLike = None) -> None:
    """Record a file (id, ``FileInfo`` or path in team Files) as an input; ``model_weight`` for checkpoints."""
    _record(_INPUT, File, file, task_id, meta, "add_input_file", model_weight=model_weight)


def add_input_folder(path: str, task_id: int | None = None, meta: MetaLike = None) -> None:
    """Record a folder in team Files as an input."""
    _record(_INPUT, Folder, path, task_id, meta, "add_input_folder")


def add_input_task(input_task_id: int, task_id: int | None = None, meta: MetaLike = None) -> None:
    """Record another task (e.g. a serving session) as an input."""
    _record(_INPUT, Task, input_task_id, task_id, meta, "add_input_task")


def add_input_job(id: int, task_id: int | None = None, meta: MetaLike = None) -> None:
    """Record a labeling job as an input."""
    _record(_INPUT, Job, id, task_id, meta, "add_input_job")


def add_output_project(project: Any, version_id: int | None = None, task_id: int | None = None,
                       meta: MetaLike = None) -> None:
    """Record a project (id, ``ProjectInfo`` or ``Project``), or a version of it, as an output.

    ``add_output_project(None, version_id=78)`` records the version alone, as the SDK does (``project`` has
    no default here, as in the SDK).
    """
    _record(_OUTPUT, Project, project, task_id, meta, "add_output_project", version_id=version_id)


def add_output_dataset(dataset: Any, task_id: int | None = None, meta: MetaLike = None) -> None:
    """Record a dataset as an output."""
    _record(_OUTPUT, Dataset, dataset, task_id, meta, "add_output_dataset")


def add_output_file(file: Any, model_weight: bool = False, task_id: int | None = None,
                    meta: MetaLike = None) -> None:
    """Record a file (id, ``FileInfo`` or path) as an output; ``model_weight`` for checkpoints."""
    _record(_OUTPUT, File, file, task_id, meta, "add_output_file", model_weight=model_weight)


def add_output_folder(path: str, task_id: int | None = None, meta: MetaLike = None) -> None:
    """Record a folder in team Files as an output."""
    _record(_OUTPUT, Folder, path, task_id, meta, "add_output_folder")


def add_output_task(output_task_id: int, task_id: int | None = None, meta: MetaLike = None) -> None:
    """Record another task (e.g. one this app launched) as an output."""
    _record(_OUTPUT, Task, output_task_id, task_id, meta, "add_output_task")


def add_output_app(task_id: int | None = None, meta: MetaLike = None) -> None:
    """Record the current task's offline session as an output."""
    _record(_OUTPUT, App, App(), task_id, meta, "add_output_app")


def add_output_job(id: int, task_id: int | None = None, meta: MetaLike = None) -> None:
    """Record a labeling job as an output."""
    _record(_OUTPUT, Job, id, task_id, meta, "add_output_job")


def enable() -> None:
    """Switch tracking on (as ``configure(enabled=True)``)."""
    _runtime.configure(enabled=True)


def disable() -> None:
    """Switch tracking off (as ``configure(enabled=False)``): every decorator and call records nothing."""
    _runtime.configure(enabled=False)


def is_enabled() -> bool:
    """Whether tracking is on."""
    return _runtime.is_enabled()
