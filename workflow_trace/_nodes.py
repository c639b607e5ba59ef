"""Workflow nodes (what a task reads or writes) and the one function that coerces values into them.

The node kinds and their wire types follow the Supervisely workflow documentation: project (or project
version), dataset, file (or model weight), folder, task, labeling job and the app's offline session.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from ._errors import NodeCoercionError

__all__ = [
    "App",
    "Dataset",
    "File",
    "Folder",
    "Job",
    "Node",
    "NodeModel",
    "Project",
    "Task",
    "coerce_nodes",
    "node_class",
    "parse_node_ref",
]


class Node(BaseModel):
    """Base class of every node: frozen, hashable, compared by value."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    #: Names used for auto-detection of a decorated function's parameter (singular, then plural).
    _param_names: ClassVar[tuple[str, ...]] = ()
    #: Type names recognised in a parameter's annotation (the node class and the SDK's info class).
    _annotation_names: ClassVar[tuple[str, ...]] = ()
    #: Whether a ``str`` / ``os.PathLike`` value is this kind's path.
    _has_path: ClassVar[bool] = False
    #: Whether an ``int`` value is this kind's id.
    _has_id: ClassVar[bool] = True
    #: Whether a string of ASCII digits is this kind's id (as the SDK takes it: projects, datasets, tasks
    #: and jobs are named by id; a file's or folder's string is a path, even ``"42"``).
    _digits_are_id: ClassVar[bool] = True

    @property
    def ref(self) -> str:
        """A stable, human-readable identity such as ``project:42`` or ``file:/models/best.pt``.

        The version of a project is not part of the ref: ``project:42`` names the project, whatever
        version of it a task read.
        """
        ident = getattr(self, "id", None)
        if ident is None:
            ident = getattr(self, "path", None)
        kind: str = getattr(self, "kind")  # noqa: B009 - every subclass defines it
        return kind if ident is None else f"{kind}:{ident}"

    def __str__(self) -> str:
        return self.ref


class Project(Node):
    """A project on the instance (``id``) or a local project folder (``path``), optionally a version."""

    kind: Literal["project"] = "project"
    id: StrictInt | None = None
    version_id: StrictInt | None = None
    version_num: StrictInt | None = None
    path: str | None = None

    _param_names = ("project", "project_id", "project_info", "projects", "project_ids", "project_infos")
    _annotation_names = ("Project", "ProjectInfo")
    _has_path = True

    @model_validator(mode="after")
    def _check_identity(self) -> Project:
        if self.id is None and self.path is None and self.version_id is None:
            raise ValueError("Project needs an id, a path or a version_id")
        return self

    @property
    def ref(self) -> str:
        if self.id is None and self.path is None:
            return f"project:version-{self.version_id}"
        return super().ref


class Dataset(Node):
    """A dataset of a project."""

    kind: Literal["dataset"] = "dataset"
    id: StrictInt

    _param_names = ("dataset", "dataset_id", "dataset_info", "datasets", "dataset_ids", "dataset_infos")
    _annotation_names = ("Dataset", "DatasetInfo")


class File(Node):
    """A file in team Files (``id`` or ``path``) or a local file; ``model_weight`` marks checkpoints."""

    kind: Literal["file"] = "file"
    id: StrictInt | None = None
    path: str | None = None
    model_weight: bool = False

    _param_names = (
        "file", "file_id", "file_info", "file_path", "files", "file_ids", "file_infos", "file_paths",
    )
    _annotation_names = ("File", "FileInfo")
    _has_path = True
    _digits_are_id = False

    @model_validator(mode="after")
    def _check_identity(self) -> File:
        if self.id is None and self.path is None:
            raise ValueError("File needs an id or a path")
        return self

    @property
    def ref(self) -> str:
        # A file known by both id and path is identified by its path: that is what users name.
        return f"file:{self.path}" if self.path is not None else f"file:{self.id}"


class Folder(Node):
    """A folder in team Files, or a local folder."""

    kind: Literal["folder"] = "folder"
    path: str

    _param_names = ("folder", "folder_path", "folders", "folder_paths", "dir", "directory")
    _annotation_names = ("Folder",)
    _has_path = True
    _has_id = False
    _digits_are_id = False


class Task(Node):
    """Another task (an app session), for example the serving task an evaluation talks to."""

    kind: Literal["task"] = "task"
    id: StrictInt

    _param_names = (
        "task", "task_id", "task_info", "input_task_id", "tasks", "task_ids", "task_infos",
    )
    _annotation_names = ("Task", "TaskInfo")


class Job(Node):
    """A labeling job."""

    kind: Literal["job"] = "job"
    id: StrictInt

    _param_names = ("job", "job_id", "job_info", "jobs", "job_ids", "job_infos", "labeling_job")
    _annotation_names = ("Job", "LabelingJobInfo")


class App(Node):
    """The current task's offline session (output only)."""

    kind: Literal["app"] = "app"

    _has_id = False


#: A node of any kind, as a pydantic discriminated union (for events read back from a store or spool).
NodeModel = Annotated[
    Union[Project, Dataset, File, Folder, Task, Job, App], Field(discriminator="kind")
]

_KINDS: dict[str, type[Node]] = {
    "project": Project,
    "dataset": Dataset,
    "file": File,
    "folder": Folder,
    "task": Task,
    "job": Job,
    "app": App,
}


def node_class(kind: str | type[Node]) -> type[Node]:
    """Return the node class for a kind name (``"project"``) or a node class itself."""
    if isinstance(kind, type) and issubclass(kind, Node):
        return kind
    try:
        return _KINDS[str(kind).lower()]
    except KeyError:
        raise ValueError(f"unknown node kind {kind!r}; kinds are: {', '.join(_KINDS)}") from None


def parse_node_ref(text: str) -> Node:
    """Parse ``project:42``, ``dataset:7``, ``file:/models/best.pt``, ``folder:/x``, ``app``.

    Raises:
        ValueError: the text is not ``KIND:ID_OR_PATH`` with a known kind.
    """
    kind, sep, ident = text.partition(":")
    cls = node_class(kind)
    if cls is App:
        return App()
    if not sep or not ident:
        raise ValueError(f"node {text!r} must look like KIND:ID or KIND:PATH, e.g. project:42")
    if ident.isdigit() and cls._has_id:
        return cls.model_validate({"id": int(ident)})
    if cls._has_path:
        return cls.model_validate({"path": ident})
    raise ValueError(f"node {text!r}: a {kind} is named by an integer id")


def _from_object(cls: type[Node], value: Any, ident: Any, path: Any, culprit: str) -> Node:
    fields: dict[str, Any] = {}
    if ident is not None and cls._has_id:
        if isinstance(ident, bool) or not isinstance(ident, int):
            try:
                ident = int(ident)
            except (TypeError, ValueError):
                raise NodeCoercionError(
                    f"{culprit}: the id of {type(value).__name__} is {type(ident).__name__}, "
                    f"not an integer"
                ) from None
        fields["id"] = ident
    if path is not None and cls._has_path and (cls is not Project or ident is None):
        fields["path"] = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if not fields:
        raise NodeCoercionError(
            f"{culprit}: cannot make a {cls.__name__} from {type(value).__name__}: it has no usable "
            f"{'id or path' if cls._has_path else 'id'}"
        )
    return cls(**fields)


#: A node as a plain tuple, ``(kind, id, version_id, version_num, path, model_weight)``: what the call path
#: and the records carry (hashed and compared cheaply); :func:`key_node` makes the model when one is read.
NodeKey = tuple[str, Optional[int], Optional[int], Optional[int], Optional[str], bool]
_KEY_FIELDS = ("id", "version_id", "version_num", "path", "model_weight")
_KIND_OF: dict[type[Node], str] = {cls: kind for kind, cls in _KINDS.items()}


def node_key(node: Node) -> NodeKey:
    """The key of a node (equal nodes, equal keys)."""
    d = node.__dict__
    return (d["kind"], d.get("id"), d.get("version_id"), d.get("version_num"), d.get("path"),
            d.get("model_weight", False))


@functools.lru_cache(maxsize=4096)
def key_node(key: NodeKey) -> Node:
    """The node of a key (cached: the same key gives the same frozen node)."""
    fields = {name: v for name, v in zip(_KEY_FIELDS, key[1:], strict=True) if v is not None and v is not False}
    return _KINDS[key[0]].model_validate(fields)


def _scalar_key(cls: type[Node], value: Any, model_weight: bool, culprit: str) -> NodeKey:
    """An ``int`` id, or a ``str`` / ``os.PathLike`` path, as a ``cls`` node (valid by construction)."""
    if isinstance(value, str) and cls._digits_are_id and value.isascii() and value.isdigit():
        value = int(value)  # "42" from argparse or the environment: the id, as the SDK would take it
    if isinstance(value, int):
        if not cls._has_id:
            raise NodeCoercionError(f"{culprit}: a {cls.__name__} is named by a path, not an int")
        return (_KIND_OF[cls], value, None, None, None, model_weight and cls is File)
    if not cls._has_path:
        raise NodeCoercionError(
            f"{culprit}: cannot make a {cls.__name__} from a {type(value).__name__}: "
            f"a {cls.__name__.lower()} is named by an integer id"
        )
    path = os.fspath(value)
    return (_KIND_OF[cls], None, None, None, path if isinstance(path, str) else path.decode(),
            model_weight and cls is File)


_NOT_ONE_SHOT = (str, int, bytes, list, tuple, set, frozenset, dict)  # the common values: no Iterator test


class Replay(Iterator[Any]):
    """A one-shot iterator that a decorator read, as the decorated code gets it: an iterator over the same items.

    A generator (or ``map()``, ``iter(...)``) passed to a parameter that a decorator reads, or returned to a
    ``produces_*``, is read once into :attr:`items` (the nodes come from them) and handed on as a ``Replay``,
    so the function, or its caller, still iterates over every item. It is an iterator, not the generator:
    ``send()`` and ``throw()`` are not there. An open file is its path (see :func:`coerce_keys`); other
    iterators (a database cursor) are read item by item, as they are.
    """

    __slots__ = ("_next", "items")

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = tuple(items)
        self._next = iter(self.items).__next__

    def __next__(self) -> Any:
        return self._next()

    @staticmethod
    def of(value: Any) -> Any:
        """``value``, or its ``Replay`` when it is a one-shot iterator of the standard library."""
        if isinstance(value, _NOT_ONE_SHOT) or not isinstance(value, Iterator):  # the cheap test first
            return value
        return Replay(value) if type(value).__module__ in ("builtins", "itertools") else value


def coerce_keys(
    cls: type[Node], value: Any, *, model_weight: bool = False, culprit: str = "workflow_trace"
) -> list[NodeKey]:
    """:func:`coerce_nodes`, as node keys (what the call path records; no model built for ids and paths)."""
    if cls is App:  # the app session has no identity of its own: any non-None value means "the session"
        return [] if value is None else [("app", None, None, None, None, False)]
    kind = type(value)
    if kind is int or kind is str:  # the hot path
        return [_scalar_key(cls, value, model_weight, culprit)]
    if kind is list or kind is tuple:  # the common containers, before the type checks below (several are ABCs)
        return [key for item in value for key in coerce_keys(cls, item, model_weight=model_weight, culprit=culprit)]
    if value is None:
        return []
    node: Node
    if isinstance(value, Node):
        node = value
    elif isinstance(value, bool):
        raise NodeCoercionError(f"{culprit}: cannot make a {cls.__name__} from a bool")
    elif isinstance(value, (int, str, os.PathLike)):
        return [_scalar_key(cls, value, model_weight, culprit)]
    elif isinstance(value, io.IOBase) and isinstance(name := getattr(value, "name", None), (str, bytes)):
        return [_scalar_key(cls, os.fsdecode(name), model_weight, culprit)]  # an open file: its path
    elif isinstance(value, Mapping):
        if "id" not in value and "path" not in value:
            raise NodeCoercionError(
                f"{culprit}: cannot make a {cls.__name__} from a mapping without an 'id' key"
            )
        node = _from_object(cls, value, value.get("id"), value.get("path"), culprit)
    elif hasattr(value, "id") and not isinstance(value, type):
        node = _from_object(cls, value, value.id, getattr(value, "path", None), culprit)
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray)):
        keys: list[NodeKey] = []
        for item in value.items if type(value) is Replay else value:
            keys.extend(coerce_keys(cls, item, model_weight=model_weight, culprit=culprit))
        return keys
    else:
        raise NodeCoercionError(
            f"{culprit}: cannot make a {cls.__name__} from a value of type {type(value).__name__}"
        )
    key = node_key(node)
    return [(*key[:5], True) if model_weight and key[0] == "file" else key]


def coerce_nodes(
    cls: type[Node], value: Any, *, model_weight: bool = False, culprit: str = "workflow_trace"
) -> list[Node]:
    """Turn ``value`` into a list of ``cls`` nodes.

    A node stays as it is; an ``int`` is the kind's id; an object with an ``id`` attribute (the SDK's
    ``ProjectInfo``, ``FileInfo``, ...) or a mapping with ``"id"`` gives its id (and its ``path`` for
    files); a ``str`` or ``os.PathLike`` is a path for files, folders and projects (an open file: its path);
    a list, tuple, set or generator gives one node per item; ``None`` gives nothing. A string of ASCII
    digits is the id of a project, dataset, task or job (``"42"`` from argparse or the environment, as the
    SDK takes it); ``Project(path="42")`` stays possible explicitly, and files and folders keep strings as
    paths.

    Args:
        cls: The node class to build.
        value: What the user passed or returned.
        model_weight: Mark files as model weights.
        culprit: Who asks (a decorator's name), for the error message.

    Raises:
        NodeCoercionError: (a ``TypeError``) for any other value, naming its type and the culprit.
    """
    return [key_node(k) for k in coerce_keys(cls, value, model_weight=model_weight, culprit=culprit)]
