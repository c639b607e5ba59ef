"""Project versions, as the SDK's ``api.project.version``: ``create``, ``restore``, ``get_list``.

They go to the configured backend when it can version projects (the local store, the Supervisely
backend); other backends raise :class:`~workflow_trace.VersioningNotSupportedError`. These are explicit
calls whose result the app uses, so unlike the recording calls they raise on failure.
"""

from __future__ import annotations

from typing import Any

from . import _runtime, workflow
from ._context import suppressed
from ._errors import VersioningError, VersioningNotSupportedError
from ._nodes import Project, coerce_nodes
from ._protocols import VersionInfo

__all__ = ["create", "get_list", "restore"]


def _project(value: Any, what: str) -> Project:
    nodes = coerce_nodes(Project, value, culprit=f"version.{what}")
    if len(nodes) != 1:
        raise TypeError(f"version.{what} takes one project (an id, a ProjectInfo, a path or a Project)")
    node = nodes[0]
    assert isinstance(node, Project)
    return node


def _call(name: str, *args: Any, **kwargs: Any) -> Any:
    backend = _runtime.get_backend()
    method = getattr(backend, name, None)
    if method is None:
        raise VersioningNotSupportedError(
            f"this backend does not support versions ({type(backend).__name__}); use the local store "
            f"(sqlite) or the Supervisely backend"
        )
    token = suppressed.set(True)
    try:
        return method(*args, **kwargs)
    except VersioningError:
        raise
    except (OSError, ValueError, LookupError) as exc:
        raise VersioningError(f"{name} failed: {exc}") from exc
    finally:
        suppressed.reset(token)


def create(project_info: Any, version_title: str | None = None, version_description: str | None = None) -> int:
    """Create a version of a project and return its id (the latest version's id when nothing changed).

    Raises:
        VersioningNotSupportedError: the backend cannot version projects.
        VersioningError: the backend failed.
    """
    project = _project(project_info, "create")
    return int(_call("create_version", project, version_title, version_description))


def restore(project_info: Any, version_id: int | None = None, version_num: int | None = None,
            skip_missed_entities: bool = False) -> Project:
    """Recreate a version (by id or number) as a new project and return it. The restored copy is recorded
    as an output of the current step (outside any step, of the process's step, as ``workflow.add_*``).

    Raises:
        ValueError: neither ``version_id`` nor ``version_num`` given.
        VersioningNotSupportedError: the backend cannot version projects.
        VersioningError: the backend failed (e.g. a missing object, unless ``skip_missed_entities``).
    """
    if version_id is None and version_num is None:
        raise ValueError("version.restore needs version_id or version_num")
    project = _project(project_info, "restore")
    result: Project = _call("restore_version", project, version_id, version_num, skip_missed_entities)
    workflow.add_output_project(result)
    return result


def get_list(project_id: Any, filters: list[dict[str, Any]] | None = None) -> list[VersionInfo]:
    """The versions of a project, optionally filtered (``[{"field": "version", "operator": "=",
    "value": 3}]``; operators ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``).

    Raises:
        VersioningNotSupportedError: the backend cannot version projects.
    """
    project = _project(project_id, "get_list")
    result: list[VersionInfo] = _call("list_versions", project, filters)
    return result
