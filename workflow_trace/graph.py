"""The lineage graph: load it from the local store, scope it, follow lineage, export it.

Tasks (the workflow's main nodes, with the runs inside each) and data (projects, datasets, files,
folders, labeling jobs, app sessions) are the nodes; every recorded input is an edge ``data -> task`` and
every output an edge ``task -> data``. A task that another task consumes (``consumes_task``) is the same
node as that task.

**Generations.** Each output of a data node starts a new generation of it; an input reads the newest
generation produced before it was recorded (by time, so a journal stored late by a later process is placed
where it happened); a project version read by id or number is that version, whatever was written since.
An edge carries the generation it read or wrote, and one edge is one (source, target, relation,
generation) with a ``count``. Lineage follows generations: the upstream of a task never holds a task that
wrote the node only after the task read it, and a task that reads what it wrote itself is not its own
ancestor (that edge is internal to the task).

Example::

    from workflow_trace.graph import load_graph

    graph = load_graph()                           # the default store
    print(graph.scoped("project:42").to_text())    # the tasks that touched project 42 and what they touched
    graph.upstream("file:/models/best.pt")         # what produced it, transitively (a Graph)
    html = graph.to_html()                         # the interactive viewer, one offline file

Scopes follow the Supervisely workflow: ``workspace`` (everything), ``project:ID`` (the tasks that touched
that project and every node those tasks touched), ``task:ID`` (one task, the nodes it touched, and the
tasks that consumed or produced it as a node). A scope only hides what is unrelated at its level.

Node syntax, in every command: ``KIND:ID`` (``project:42``, ``task:3``) or ``KIND:PATH``
(``project:data/coco``, ``file:/models/best.pt``). A relative path means what it meant where it was
recorded, and is also tried against the current directory. An unknown node is an :class:`UnknownNodeError`
naming the closest known ones.

JSON export (``Graph.to_json()``, ``workflow-trace export --format json``), schema version 2 (version 1's
keys keep their meaning; version 2 adds ``store``, ``server``, node ``generations``, task ``runs``,
``git_commit``, ``git_dirty``, ``python``, and edge ``generation``)::

    {"format": "workflow-trace-graph", "version": 2, "scope": "workspace", "store": "/abs/workflow.db",
     "server": null,
     "nodes": [{"id": "task:3", "kind": "task", "label": "train", "description": "...", "card": null,
                "external_id": 3, "path": null, "model_weight": false, "versions": [], "generations": [],
                "task": {"id": 3, "name": "train", "origin": "local", "status": "failed",
                         "started_at": "...", "finished_at": "...", "duration_s": 1.5,
                         "error": {"type": "RuntimeError", "message": "..."}, "pid": 4242, "host": "gpu-1",
                         "command": "python train.py", "git_commit": "1a2b...", "git_dirty": false,
                         "python": "3.11.7", "runs": [{"run_id": "...", "name": "train",
                         "parent_run_id": null, "status": "failed", "started_at": "...", "finished_at": "...",
                         "error": {...}, "params": {"lr": 0.1}, "inputs": ["project:42"],
                         "outputs": []}]}}],
     "edges": [{"source": "project:42", "target": "task:3", "relation": "input", "task_id": 3, "count": 1,
                "first_time": "...", "last_time": "...", "version_id": 11, "version_num": 2, "card": null,
                "generation": 1}]}

A data node's ``generations`` lists ``{"generation", "task_id", "run_id", "time"}`` (``task_id`` null: the
state it was first read in, produced before anything was recorded). Times are ISO 8601 UTC.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import json
import os
import unicodedata
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal, NamedTuple, Optional, TypeVar

from ._errors import WorkflowTraceError
from ._meta import card_fields
from ._nodes import App, File, Node, Project, parse_node_ref
from ._viewer import render_page
from .backends.sqlite import EdgeRow, RunRow, SQLiteBackend, StoreNotFoundError, TaskRow

__all__ = [
    "EXPORT_FORMATS",
    "Card",
    "Generation",
    "Graph",
    "GraphEdge",
    "GraphNode",
    "RunInfo",
    "Scope",
    "StoreNotFoundError",
    "TaskInfo",
    "UnknownNodeError",
    "load_graph",
    "parse_scope",
    "terminal_safe",
]

#: Formats accepted by :meth:`Graph.export`.
EXPORT_FORMATS = ("text", "mermaid", "dot", "json", "html")

JSON_FORMAT = "workflow-trace-graph"
JSON_VERSION = 2

#: Stock Mermaid's limits (``maxEdges``, ``maxTextSize``): more edges is an error, more text draws nothing.
MERMAID_MAX_EDGES = 500
MERMAID_MAX_TEXT = 50_000

Relation = Literal["input", "output"]


class UnknownNodeError(WorkflowTraceError, LookupError):
    """A node or scope names something the graph does not contain."""


# -- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """A card's customisation as recorded (the wire form's ``<h4>``/``<small>`` wrappers removed)."""

    title: Optional[str] = None
    description: Optional[str] = None
    icon: Optional[str] = None
    icon_color: Optional[str] = None
    icon_bg_color: Optional[str] = None
    url: Optional[str] = None
    url_title: Optional[str] = None

    @classmethod
    def from_wire(cls, data: object) -> Card | None:
        """Read ``customRelationSettings`` / ``customNodeSettings``; ``None`` when nothing usable is set.

        Tolerant: the store may hold meta written by any producer, so odd values are skipped, not raised.
        """
        found = card_fields(data) if isinstance(data, Mapping) else None
        return cls(**found) if found else None

    def to_dict(self) -> dict[str, Optional[str]]:
        """The JSON form (every key present)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Card | None:
        """Inverse of :meth:`to_dict`."""
        return None if data is None else _fill(cls, data)


class _Timed:
    """What a task and a run share: when it started and finished, and how it failed."""

    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    error_type: Optional[str]
    error_message: Optional[str]

    @property
    def duration(self) -> Optional[float]:
        """Seconds from start to finish, or ``None`` while running or unknown."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def _error_json(self) -> dict[str, Optional[str]] | None:
        """The JSON ``error``: null, or its type and message."""
        if self.error_type is None and self.error_message is None:
            return None
        return {"type": self.error_type, "message": self.error_message}


def _times_and_error(data: Mapping[str, Any]) -> dict[str, Any]:
    """The start, finish and error fields of a task or run from its JSON form."""
    error = data.get("error") or {}
    return {"started_at": _parse_time(data.get("started_at")), "finished_at": _parse_time(data.get("finished_at")),
            "error_type": error.get("type"), "error_message": error.get("message")}


@dataclass(frozen=True)
class RunInfo(_Timed):
    """One run (step) of a task: explicit, nested or implicit."""

    run_id: str
    name: str
    parent_run_id: Optional[str] = None
    status: str = "running"
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    params: Optional[dict[str, Any]] = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "run_id": self.run_id, "name": self.name, "parent_run_id": self.parent_run_id,
            "status": self.status, "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
            "error": self._error_json(), "params": self.params or {}, "inputs": list(self.inputs),
            "outputs": list(self.outputs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunInfo:
        """Inverse of :meth:`to_dict`."""
        return _fill(cls, data, name=data.get("name") or "step", params=data.get("params") or None,
                     inputs=tuple(data.get("inputs") or ()), outputs=tuple(data.get("outputs") or ()),
                     **_times_and_error(data))


@dataclass(frozen=True)
class TaskInfo(_Timed):
    """What the store knows about a task."""

    id: int
    name: Optional[str] = None
    origin: str = "external"
    status: str = "running"
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    error_type: Optional[str] = None
    error_message: Optional[str] = None
    pid: Optional[int] = None
    host: Optional[str] = None
    command: Optional[str] = None
    git_commit: Optional[str] = None
    git_dirty: Optional[bool] = None
    python: Optional[str] = None
    runs: tuple[RunInfo, ...] = ()
    cwd: Optional[str] = None

    @property
    def failed(self) -> bool:
        """Whether a root run of the task failed."""
        return self.status == "failed"

    @property
    def failed_runs(self) -> int:
        """How many of its runs failed."""
        return sum(1 for r in self.runs if r.status == "failed")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        duration = self.duration
        return {
            "id": self.id, "name": self.name, "origin": self.origin, "status": self.status,
            "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
            "duration_s": None if duration is None else round(duration, 6), "error": self._error_json(),
            "pid": self.pid, "host": self.host, "command": self.command,
            "git_commit": self.git_commit, "git_dirty": self.git_dirty, "python": self.python,
            "runs": [r.to_dict() for r in self.runs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskInfo:
        """Inverse of :meth:`to_dict` (version 1 documents have no runs)."""
        return _fill(cls, data, id=int(data["id"]), runs=tuple(RunInfo.from_dict(r) for r in data.get("runs") or ()),
                     **_times_and_error(data))


@dataclass(frozen=True)
class Generation:
    """One generation of a data node: who wrote it (``None``: found as it was, never written here)."""

    generation: int
    task_id: Optional[int]
    run_id: Optional[str]
    time: Optional[datetime]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"generation": self.generation, "task_id": self.task_id, "run_id": self.run_id,
                "time": _iso(self.time)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Generation:
        """Inverse of :meth:`to_dict`."""
        return cls(int(data["generation"]), data.get("task_id"), data.get("run_id"), _parse_time(data.get("time")))


@dataclass(frozen=True)
class GraphNode:
    """A node of the graph: a task or a piece of data.

    Attributes:
        key: Unique key: ``task:3``, ``project:42``, ``file:/models/best.pt``, ``app:3`` (the session of
            task 3). Local relative paths are resolved against where they were recorded.
        kind: ``task``, ``project``, ``dataset``, ``file``, ``folder``, ``job`` or ``app``.
        card: The custom card (the task's ``customNodeSettings``; for data, the latest relation card).
        external_id: The id (on the instance, the local task id, or a local project's id in the store).
        path: The path of a file, folder or local project.
        model_weight: A file recorded as model weights.
        versions: The project versions recorded, as ``(version_id, version_num)``.
        task: For tasks recorded in the store, what the store knows.
        generations: For data, its generations in order.
        recorded_paths: The paths as they were written, when they were relative.
    """

    key: str
    kind: str
    card: Optional[Card] = None
    external_id: Optional[int] = None
    path: Optional[str] = None
    model_weight: bool = False
    versions: tuple[tuple[Optional[int], Optional[int]], ...] = ()
    task: Optional[TaskInfo] = None
    generations: tuple[Generation, ...] = ()
    recorded_paths: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The card title, else a default made from the node."""
        return self.card.title if self.card is not None and self.card.title else self.default_label

    @property
    def default_label(self) -> str:
        """A title made from the node alone (a task's name, a file's name, ``Project 42``)."""
        if self.kind == "task":
            return self.task.name if self.task is not None and self.task.name else f"Task {self.external_id}"
        if self.kind == "app":
            return "App session"
        if self.path:
            base = os.path.basename(self.path.rstrip("/\\")) or self.path
            return base + "/" if self.kind == "folder" else base
        return f"{'Labeling job' if self.kind == 'job' else self.kind.title()} {self.external_id}"

    @property
    def description(self) -> str:
        """The card description, else a default (a task's status and runs, a file's path, ...)."""
        if self.card is not None and self.card.description:
            return self.card.description
        task = self.task
        if task is not None:
            text = task.status
            if task.failed and task.error_type:
                text += f": {task.error_type}" + (f": {task.error_message}" if task.error_message else "")
            elif task.duration is not None:
                text += f" in {format_duration(task.duration)}"
            if len(task.runs) > 1:
                text += f" · {len(task.runs):,} runs" + (f", {task.failed_runs} failed" if task.failed_runs else "")
            return text
        if self.kind == "app":
            return f"offline session of {self.key.replace('app:', 'task ', 1)}"
        parts = ["model weights"] if self.model_weight else []
        if self.versions:
            parts.append(", ".join(format_version(v) for v in self.versions))
        parts.append(self.path if self.path else f"id {self.external_id}")
        return " · ".join(parts)

    @property
    def failed(self) -> bool:
        """Whether this is a failed task."""
        return self.task is not None and self.task.failed

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        return {
            "id": self.key, "kind": self.kind, "label": self.label, "description": self.description,
            "card": None if self.card is None else self.card.to_dict(), "external_id": self.external_id,
            "path": self.path, "model_weight": self.model_weight,
            "versions": [{"version_id": vid, "version_num": num} for vid, num in self.versions],
            "generations": [g.to_dict() for g in self.generations],
            "task": None if self.task is None else self.task.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphNode:
        """Inverse of :meth:`to_dict`."""
        return _fill(cls, data, key=data["id"], card=Card.from_dict(data.get("card")),
                     model_weight=bool(data.get("model_weight", False)),
                     versions=tuple((v.get("version_id"), v.get("version_num")) for v in data.get("versions", ())),
                     task=None if data.get("task") is None else TaskInfo.from_dict(data["task"]),
                     generations=tuple(Generation.from_dict(g) for g in data.get("generations") or ()))


@dataclass(frozen=True)
class GraphEdge:
    """A connection: ``data -> task`` for an input, ``task -> data`` for an output.

    Attributes:
        count: How many times this connection was recorded.
        version_id: The project version of the latest record, if any.
        card: The relation card (``customRelationSettings``) of the latest record that had one.
        generation: The generation of the data node read or written (1-based).
    """

    source: str
    target: str
    relation: Relation
    task_id: Optional[int]
    first_time: Optional[datetime] = None
    last_time: Optional[datetime] = None
    count: int = 1
    version_id: Optional[int] = None
    version_num: Optional[int] = None
    card: Optional[Card] = None
    generation: int = 1

    @property
    def task_key(self) -> str:
        """The key of the task end of this edge."""
        return self.target if self.relation == "input" else self.source

    @property
    def data_key(self) -> str:
        """The key of the data end of this edge."""
        return self.source if self.relation == "input" else self.target

    @property
    def version_label(self) -> Optional[str]:
        """``v2`` / ``version 11`` for a project version, else ``None``."""
        versioned = self.version_id is not None or self.version_num is not None
        return format_version((self.version_id, self.version_num)) if versioned else None

    @property
    def tags(self) -> list[str]:
        """What a drawing writes on the edge: its project version (``v2``), its generation after the first."""
        tags = [self.version_label] if self.version_label else []
        return [*tags, f"gen {self.generation}"] if self.generation > 1 else tags

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        return {
            "source": self.source, "target": self.target, "relation": self.relation, "task_id": self.task_id,
            "count": self.count, "first_time": _iso(self.first_time), "last_time": _iso(self.last_time),
            "version_id": self.version_id, "version_num": self.version_num,
            "card": None if self.card is None else self.card.to_dict(), "generation": self.generation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphEdge:
        """Inverse of :meth:`to_dict`."""
        relation = data["relation"]
        if relation not in ("input", "output"):
            raise ValueError(f"edge relation must be input or output, not {relation!r}")
        return _fill(cls, data, relation=relation, task_id=data.get("task_id"),
                     first_time=_parse_time(data.get("first_time")), last_time=_parse_time(data.get("last_time")),
                     count=int(data.get("count", 1)), card=Card.from_dict(data.get("card")),
                     generation=int(data.get("generation") or 1))


@dataclass(frozen=True)
class Scope:
    """A view of the graph: ``workspace``, ``project:ID`` / ``project:PATH`` or ``task:ID``."""

    level: Literal["workspace", "project", "task"] = "workspace"
    key: Optional[str] = None

    def __str__(self) -> str:
        return self.key if self.key is not None else self.level


def parse_scope(text: str | Scope | None) -> Scope:
    """Parse ``workspace``, ``project:ID`` (an id or a local project path) or ``task:ID``.

    Raises:
        ValueError: anything else, with the forms that are accepted.
    """
    if isinstance(text, Scope):
        return text
    if text is None or text.strip().lower() in ("", "workspace"):
        return Scope()
    level, sep, ident = text.strip().partition(":")
    level, ident = level.strip().lower(), ident.strip()
    hint = "use workspace, project:ID or task:ID (e.g. project:42)"
    if not sep or not ident or level not in ("project", "task"):
        raise ValueError(f"bad scope {text!r}: {hint}")
    if level == "task":
        if not ident.isdigit():
            raise ValueError(f"bad scope {text!r}: a task is named by an integer id ({hint})")
        return Scope("task", f"task:{int(ident)}")
    return Scope("project", f"project:{ident}")


# -- building ------------------------------------------------------------------------------------


@dataclass
class _EdgeSum:
    """An edge while the rows are read: its count, first and last time, and what its latest record set."""

    task_id: Optional[int]
    first: datetime
    last: datetime
    version: Optional[tuple[Optional[int], Optional[int]]]
    card: Optional[Card]
    count: int = 1


def _generations(rows: Sequence[EdgeRow], versions: Sequence[_Version | None]
                 ) -> tuple[list[int], dict[str, list[Generation]]]:
    """The generation each record read or wrote, and each data node's generations (module docstring)."""
    of_row = [1] * len(rows)
    made: dict[str, list[Generation]] = defaultdict(list)
    named: dict[tuple[str, str, Optional[int]], int] = {}  # (node, project version) -> its generation
    for i in sorted(range(len(rows)), key=lambda i: rows[i].time):  # stable: the store's order breaks ties
        row = rows[i]
        gens = made[row.key]
        if row.direction == "output":
            gens.append(Generation(len(gens) + 1, row.task_id, row.run_id, row.time))
        elif not gens:  # read before anything wrote it: the state it was found in
            gens.append(Generation(1, None, None, row.time))
        of_row[i] = len(gens)
        version = versions[i]
        if version is not None:  # a version is named by its id, else by its number
            name = (row.key, "id", version[0]) if version[0] is not None else (row.key, "num", version[1])
            of_row[i] = named[name] = len(gens) if row.direction == "output" else named.get(name, len(gens))
    return of_row, made


def _build(tasks: Iterable[TaskRow], runs: Iterable[RunRow], rows: Sequence[EdgeRow],
           local_projects: Mapping[str, int]) -> Graph:
    """The workspace graph of the store's rows (see the module docstring for generations)."""
    run_io: dict[str, tuple[dict[str, None], dict[str, None]]] = defaultdict(lambda: ({}, {}))
    for row in rows:
        run_io[row.run_id][row.direction == "output"][row.key] = None
    by_task: dict[Optional[int], list[RunInfo]] = defaultdict(list)
    for run in runs:
        inputs, outputs = run_io.get(run.run_id, ((), ()))
        by_task[run.task_id].append(_fill(RunInfo, vars(run), inputs=tuple(inputs), outputs=tuple(outputs)))
    nodes = {
        f"task:{t.id}": GraphNode(key=f"task:{t.id}", kind="task", card=Card.from_wire(t.node_meta), external_id=t.id,
                                  task=_fill(TaskInfo, vars(t), runs=tuple(by_task.get(t.id, ()))))
        for t in sorted(tasks, key=lambda t: (t.started_at is None, t.started_at or 0, t.id))
    }
    versions = [_version_of(row.node) for row in rows]
    generation_of, generations = _generations(rows, versions)
    by_key: dict[str, list[tuple[EdgeRow, _Version | None, Card | None]]] = defaultdict(list)
    merged: dict[tuple[str, str, str, int], _EdgeSum] = {}  # one edge per (source, target, relation, generation)
    for row, gen, version in zip(rows, generation_of, versions, strict=True):
        key, time = row.key, row.time
        card = Card.from_wire(row.meta.get("customRelationSettings")) if row.meta else None
        task_key = f"task:{row.task_id}"
        if task_key not in nodes:
            nodes[task_key] = GraphNode(key=task_key, kind="task", external_id=row.task_id)
        by_key[key].append((row, version, card))
        ekey = (key, task_key, "input", gen) if row.direction == "input" else (task_key, key, "output", gen)
        edge = merged.get(ekey)
        if edge is None:
            merged[ekey] = _EdgeSum(row.task_id, time, time, version, card)
            continue
        edge.count += 1
        edge.first = min(edge.first, time)
        if time >= edge.last:
            edge.last = time
            edge.version = version or edge.version
            edge.card = card or edge.card
    for key, group in by_key.items():
        if key not in nodes:  # (a task consumed as a node is the task's own node)
            nodes[key] = _data_node(key, group, generations[key], local_projects)
    edges = [
        GraphEdge(source=s, target=t, relation=r, task_id=a.task_id, first_time=a.first,  # type: ignore[arg-type]
                  last_time=a.last, count=a.count, version_id=a.version[0] if a.version else None,
                  version_num=a.version[1] if a.version else None, card=a.card, generation=g)
        for (s, t, r, g), a in merged.items()
    ]
    return Graph(nodes, edges)


_T = TypeVar("_T")
_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in (Card, RunInfo, TaskInfo, GraphNode, GraphEdge)
}


def _fill(cls: type[_T], data: Mapping[str, Any], **values: Any) -> _T:
    """A ``cls`` of ``values`` and, for its other fields, the items of ``data`` of the same name (a store
    row's fields, a JSON form's keys; a field ``data`` does not have keeps its default)."""
    return cls(**{name: data[name] for name in _FIELDS[cls] if name in data and name not in values}, **values)


def _data_node(key: str, records: list[tuple[EdgeRow, _Version | None, Card | None]], generations: list[Generation],
               local_projects: Mapping[str, int]) -> GraphNode:
    """A data node from its records in the store's order: every version, flag and path; the latest card."""
    node = records[0][0].node
    kind: str = node.kind  # type: ignore[attr-defined]
    path = getattr(node, "path", None)
    external = next((i for row, _, _ in records if (i := getattr(row.node, "id", None)) is not None), None)
    if external is None and kind == "project" and path is not None:
        external = local_projects.get(path)  # a local project: the id the store gave its folder
    cards = [(row.time, card) for row, _, card in records if card is not None]
    return GraphNode(
        key=key, kind=kind, card=max(reversed(cards), key=lambda c: c[0])[1] if cards else None,  # ties: the last
        external_id=external, path=path,
        model_weight=any(isinstance(row.node, File) and row.node.model_weight for row, _, _ in records),
        versions=tuple(dict.fromkeys(version for _, version, _ in records if version is not None)),
        generations=tuple(generations),
        recorded_paths=tuple(dict.fromkeys(p for row, _, _ in records if (p := row.recorded_path) and p != path)),
    )


_Version = tuple[Optional[int], Optional[int]]  # (version_id, version_num)


def _version_of(node: Node) -> _Version | None:
    """``(version_id, version_num)`` of a project version, else ``None``."""
    if isinstance(node, Project) and (node.version_id is not None or node.version_num is not None):
        return (node.version_id, node.version_num)
    return None


# -- the graph ---------------------------------------------------------------------------------


@dataclass
class Graph:
    """Nodes (by key, in display order) and edges of a lineage graph.

    Build one with :func:`load_graph` (from a store) or :meth:`from_dict`.
    """

    nodes: dict[str, GraphNode] = field(default_factory=dict)
    edges: list[GraphEdge] = field(default_factory=list)
    scope: Scope = field(default_factory=Scope)
    store: Optional[str] = None
    server: Optional[str] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Graph:
        """Read the JSON form written by :meth:`to_dict` (version 1 or 2).

        Raises:
            ValueError: not a workflow-trace graph, or a newer version of the schema.
        """
        if not isinstance(data, Mapping) or data.get("format") != JSON_FORMAT:
            raise ValueError(f"not a {JSON_FORMAT} document")
        if int(data.get("version", 0)) > JSON_VERSION:
            raise ValueError(f"graph schema version {data.get('version')} is newer than {JSON_VERSION}")
        nodes = {n.key: n for n in map(GraphNode.from_dict, data.get("nodes", ()))}
        return cls(nodes, [GraphEdge.from_dict(e) for e in data.get("edges", ())], parse_scope(data.get("scope")),
                   data.get("store"), data.get("server"))

    @classmethod
    def from_json(cls, text: str) -> Graph:
        """Read the JSON text written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def subgraph(self, keys: Iterable[str], edges: Iterable[GraphEdge]) -> Graph:
        """The nodes in ``keys`` and at either end of ``edges`` (kept in this graph's order), and ``edges``."""
        kept = list(edges)
        wanted = set(keys) | {e.source for e in kept} | {e.target for e in kept}
        return Graph({k: n for k, n in self.nodes.items() if k in wanted}, kept, self.scope, self.store, self.server)

    # -- queries ------------------------------------------------------------------------------

    @property
    def tasks(self) -> list[GraphNode]:
        """The task nodes, in display order (by start time)."""
        return [n for n in self.nodes.values() if n.kind == "task"]

    def inputs_of(self, key: str) -> list[GraphEdge]:
        """The edges into node ``key``."""
        return [e for e in self.edges if e.target == key]

    def outputs_of(self, key: str) -> list[GraphEdge]:
        """The edges out of node ``key``."""
        return [e for e in self.edges if e.source == key]

    def find(self, node: Node | str) -> list[str]:
        """The keys of the graph's nodes that ``node`` names (the node syntax of the module docstring).

        Args:
            node: A node, a key (``task:3``, ``app:3``) or ``KIND:ID`` / ``KIND:PATH``. ``app`` names every
                app session; a relative path is matched as it was recorded and against the current folder.

        Raises:
            UnknownNodeError: the graph has no such node (the message names the closest ones).
            ValueError: the text is not ``KIND:ID`` or ``KIND:PATH``.
        """
        text = node.strip() if isinstance(node, str) else node.ref
        if isinstance(node, str):
            keys = self._match_text(text)
            if keys:
                return keys
            node = parse_node_ref(text)
        keys = ([k for k, n in self.nodes.items() if n.kind == "app"] if isinstance(node, App)
                else self._match_text(node.ref))
        if not keys:
            where = "the store" if self.scope.level == "workspace" else f"scope {self.scope}"
            kind = text.partition(":")[0].lower()
            same = [k for k, n in self.nodes.items() if n.kind == kind]
            close = difflib.get_close_matches(text, same, n=3, cutoff=0.0)
            hint = f"; closest: {', '.join(terminal_safe(c) for c in close)}" if close else ""
            raise UnknownNodeError(f"no node {terminal_safe(text)} in {where}{hint}")
        return keys

    def _match_text(self, text: str) -> list[str]:
        """The keys ``text`` names: itself, if a key, else the nodes recorded by that id or path."""
        if text in self.nodes:
            return [text]
        kind, sep, ident = text.partition(":")
        if not sep or not ident:
            return []
        kind = kind.lower()
        if ident.isdigit():  # a local project by the id the store gave its folder
            found = [k for k, n in self.nodes.items() if n.kind == kind and n.external_id == int(ident)]
            if found:
                return found
        absolute = os.path.normpath(os.path.join(os.getcwd(), ident)) if not ident.startswith("/") else None
        return [key for key, n in self.nodes.items() if n.kind == kind and n.path is not None and (
            ident in n.recorded_paths or n.path == absolute or n.path.rstrip("/") == ident.rstrip("/"))]

    def scoped(self, scope: str | Scope | None) -> Graph:
        """The graph as seen from ``scope`` (see the module docstring).

        Raises:
            ValueError: a malformed scope.
            UnknownNodeError: the scope's project or task is not in the graph.
        """
        parsed = parse_scope(scope)
        if parsed.level == "workspace" or parsed.key is None:
            return Graph(dict(self.nodes), list(self.edges), parsed, self.store, self.server)
        key = self.find(parsed.key)[0]  # an unknown one: the error names the closest known ones
        if parsed.level == "project":
            tasks = {e.task_key for e in self.edges if e.data_key == key}
            kept = [e for e in self.edges if e.task_key in tasks]
        else:
            kept = [e for e in self.edges if key in (e.task_key, e.data_key)]
        return replace(self.subgraph({key}, kept), scope=Scope(parsed.level, key))

    def upstream(self, node: Node | str) -> Graph:
        """What ``node`` came from: the tasks that wrote the generations it read, their inputs, and so on
        (``node`` included; a task is never its own ancestor)."""
        return self._walk(self.find(node), forward=False)

    def downstream(self, node: Node | str) -> Graph:
        """What came from ``node``: the tasks that read the generations it wrote, their outputs, and so on."""
        return self._walk(self.find(node), forward=True)

    def lineage(self, node: Node | str) -> Graph:
        """Upstream and downstream of ``node`` together."""
        up = self.upstream(node)
        down = self.downstream(node)
        edges = list({(e.source, e.target, e.relation, e.generation): e for e in [*up.edges, *down.edges]}.values())
        return self.subgraph(set(up.nodes) | set(down.nodes), edges)

    def _indexes(self) -> dict[str, dict[Any, list[GraphEdge]]]:
        """Edges by task (inputs, outputs) and by data node and generation (readers, writers; generation
        ``None``: of every generation)."""
        cache = self.__dict__.get("_walk_index")
        if cache is not None and cache[0] == len(self.edges):
            return cache[1]  # type: ignore[no-any-return]
        index: dict[str, dict[Any, list[GraphEdge]]] = {
            name: defaultdict(list) for name in ("inputs", "outputs", "readers", "writers")
        }
        for edge in self.edges:
            by_task, by_data = ("inputs", "readers") if edge.relation == "input" else ("outputs", "writers")
            index[by_task][edge.task_key].append(edge)
            index[by_data][(edge.data_key, edge.generation)].append(edge)
            index[by_data][(edge.data_key, None)].append(edge)
        self.__dict__["_walk_index"] = (len(self.edges), index)
        return index

    def _next(self, key: str, forward: bool, generation: int | None,
              came_from: str | None) -> list[tuple[GraphEdge, str, int | None, str | None]]:
        """One step of lineage from ``key``: ``(edge, next key, next generation, came_from for the next step)``.

        From a task: its inputs (upstream) or outputs (downstream), each at the generation read or written.
        From a data node at a generation: the tasks that wrote it (upstream) or read it (downstream) — not
        the task the walk came from (what a task reads of its own writing is internal to it). A data node
        the walk starts from stands for all its generations.
        """
        index = self._indexes()
        node = self.nodes.get(key)
        if node is not None and node.kind == "task" and generation is None:
            edges = index["outputs" if forward else "inputs"].get(key, [])
            return [(e, e.data_key, e.generation, key) for e in edges]
        edges = index["readers" if forward else "writers"].get((key, generation), [])
        return [(e, e.task_key, None, None) for e in edges if e.task_key != came_from]

    def _walk(self, start: Sequence[str], forward: bool) -> Graph:
        kept: set[int] = set()  # ids of the edges walked
        seen: set[tuple[str, int | None]] = set()
        queue: deque[tuple[str, int | None, str | None]] = deque((k, None, None) for k in start)
        while queue:
            key, generation, came_from = queue.popleft()
            if (key, generation) in seen:
                continue
            seen.add((key, generation))
            for edge, nxt, next_generation, next_came_from in self._next(key, forward, generation, came_from):
                kept.add(id(edge))
                queue.append((nxt, next_generation, next_came_from))
        return self.subgraph(start, [e for e in self.edges if id(e) in kept])  # (with the nodes they join)

    # -- exports ------------------------------------------------------------------------------

    def export(self, fmt: str) -> str:
        """Render in one of :data:`EXPORT_FORMATS`.

        Raises:
            ValueError: an unknown format.
        """
        renderers = {"text": self.to_text, "mermaid": self.to_mermaid, "dot": self.to_dot, "json": self.to_json,
                     "html": self.to_html}
        if fmt not in renderers:
            raise ValueError(f"unknown format {fmt!r}; formats are: {', '.join(EXPORT_FORMATS)}")
        return renderers[fmt]()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (schema in the module docstring)."""
        with _gc_paused():
            return {
                "format": JSON_FORMAT, "version": JSON_VERSION, "scope": str(self.scope), "store": self.store,
                "server": self.server, "nodes": [n.to_dict() for n in self.nodes.values()],
                "edges": [e.to_dict() for e in self.edges],
            }

    def to_json(self) -> str:
        """The JSON text (schema in the module docstring): each node and each edge on one compact line (as
        readable in a diff as indented JSON, and several times faster to write for large graphs)."""
        def render(key: str, value: Any) -> str:
            if key not in ("nodes", "edges") or not value:
                return json.dumps(value, ensure_ascii=False)
            lines = ",\n".join("    " + json.dumps(v, ensure_ascii=False) for v in value)
            return f"[\n{lines}\n  ]"

        body = ",\n".join(f"  {json.dumps(k)}: {render(k, v)}" for k, v in self.to_dict().items())
        return f"{{\n{body}\n}}\n"

    def to_html(self, title: str = "Workflow lineage") -> str:
        """The interactive viewer as one offline file (the data inlined; no request to any host)."""
        with _gc_paused():
            return render_page(self.to_dict(), live=False, title=title)

    def to_text(self) -> str:
        """A readable tree: each task, its runs (repeats folded), what it read (``<-``) and wrote (``->``)."""
        tasks = self.tasks
        lines = [f"scope {self.scope}: {_plural(len(tasks), 'task')}, "
                 f"{_plural(len(self.nodes) - len(tasks), 'data node')}, {_plural(len(self.edges), 'edge')}"]
        index = self._indexes()
        for task in tasks:
            lines.append(_task_line(task))
            if task.task is not None and _shows_runs(task.task):
                lines.extend(_run_lines(task.task))
            edges = [*index["inputs"].get(task.key, ()), *index["outputs"].get(task.key, ())]
            for edge in sorted(edges, key=lambda e: (e.relation, e.data_key, e.generation)):
                other = self.nodes.get(edge.data_key)
                # An input came from the writers of the generation it read, an output was used by the readers
                # of the generation it wrote (not by those of other generations).
                read = edge.relation == "input"
                others = index["writers" if read else "readers"].get((edge.data_key, edge.generation), ())
                related = ", ".join(dict.fromkeys(e.task_key for e in others if e.task_key != task.key))
                line = f"    {'<-' if read else '->'} {_node_text(other, edge.data_key, edge)}"
                named = read and other is not None and len(other.generations) > 1  # the text says "by task:N"
                lines.append(f"{line}  ({'from' if read else 'used by'} {related})" if related and not named else line)
        return "\n".join(lines) + "\n"

    def lineage_text(self, node: Node | str, direction: Literal["up", "down", "both"] = "both") -> str:
        """``node``, then the tree of what it came from (``up``) and of what came from it (``down``).

        Raises:
            UnknownNodeError: the graph has no such node.
        """
        lines: list[str] = []
        for key in self.find(node):
            if lines:
                lines.append("")
            lines.append(_node_text(self.nodes[key], key))
            for heading, forward in (("upstream (what it came from):", False),
                                     ("downstream (what came from it):", True)):
                if direction != "both" and forward != (direction == "down"):
                    continue
                lines.append(heading)
                lines.extend(list(self._tree(key, forward)) or ["    (nothing)"])
        return "\n".join(lines) + "\n"

    def _tree(self, root: str, forward: bool) -> Iterator[str]:
        arrow = "->" if forward else "<-"
        seen: set[tuple[str, int | None]] = {(root, None)}
        # Depth-first with an explicit stack (of (depth, step)): lineage chains can be longer than the recursion
        # limit. A node's steps are pushed in reverse, so that they come off the stack in order.
        stack = [(0, *step) for step in reversed(self._next(root, forward, None, None))]
        while stack:
            depth, edge, nxt, generation, came_from = stack.pop()
            text = f"{'    ' * (depth + 1)}{arrow} {_node_text(self.nodes.get(nxt), nxt, edge)}"
            if (nxt, generation) in seen:
                yield f"{text}  (see above)"
                continue
            seen.add((nxt, generation))
            yield text
            stack.extend((depth + 1, *step) for step in reversed(self._next(nxt, forward, generation, came_from)))

    def to_mermaid(self, max_edges: int = MERMAID_MAX_EDGES, max_text: int = MERMAID_MAX_TEXT) -> str:
        """A Mermaid ``flowchart LR`` (labels escaped with Mermaid's entity codes).

        Stock Mermaid draws at most 500 edges (more is an error) and 50,000 characters (more draws only
        "Maximum text size in diagram exceeded"). A graph past either limit is folded as the viewer folds
        it: tasks of one name into one node (``train ×120``, with its failures and the newest error),
        data of one kind with the same writers (or readers) into one (``118 model files``), their edges
        into one per pair. If that is still too much, the newest edges that fit are kept. A ``%%`` comment
        at the top says what was folded or left out; ``--format json`` or ``html`` have everything.

        Args:
            max_edges: Most edges to write (Mermaid's ``maxEdges``).
            max_text: Most characters to write (Mermaid's ``maxTextSize``).
        """
        boxes = {key: _mermaid_box(node) for key, node in self.nodes.items()}
        links = [_mermaid_link(e.source, e.target, [e]) for e in self.edges]
        text = _mermaid_text(boxes, links, [])
        if len(links) <= max_edges and len(text) <= max_text:
            return text
        boxes, links, note = self._mermaid_folded()
        text = _mermaid_text(boxes, links, [note])
        if len(links) <= max_edges and len(text) <= max_text:
            return text
        # Still too much: the newest edges that fit (the end of the flow, as the viewer opens on it).
        links.sort(key=lambda link: link.time)
        keep = min(max_edges, len(links))
        while True:
            kept = links[len(links) - keep:]
            shown = {k for link in kept for k in (link.source, link.target)}
            cut = (f"%% and of its {len(links):,} edges only the newest {keep:,}: the {len(links) - keep:,} "
                   f"oldest are left out")
            text = _mermaid_text({k: b for k, b in boxes.items() if k in shown}, kept, [note, cut])
            if len(text) <= max_text or keep <= 1:
                return text
            keep = max(1, min(keep - 1, int(keep * max_text / len(text) * 0.95)))

    def _mermaid_folded(self) -> tuple[dict[str, _MermaidBox], list[_MermaidLink], str]:
        """The graph folded for Mermaid (see :meth:`to_mermaid`): its boxes, links and a comment."""
        rep: dict[str, str] = {}  # node key -> the key of its box
        made: dict[str, _MermaidBox] = {}  # the key of a box -> the box

        def assign(groups: Iterable[tuple[str, list[GraphNode]]]) -> None:
            for name, nodes in groups:
                box = name if len(nodes) > 1 else nodes[0].key
                rep.update((node.key, box) for node in nodes)
                made[box] = _mermaid_box(nodes[0]) if len(nodes) == 1 else _mermaid_fold_box(nodes)

        by_name: dict[str, list[GraphNode]] = defaultdict(list)
        for node in self.tasks:
            by_name[node.label].append(node)
        assign((f"fold:task:{name}", nodes) for name, nodes in by_name.items())
        ends: dict[str, dict[str, set[str]]] = {"input": defaultdict(set), "output": defaultdict(set)}
        for edge in self.edges:
            if edge.data_key not in rep:  # (a task read or written as a node is folded with its name)
                ends[edge.relation][edge.data_key].add(rep.get(edge.task_key, edge.task_key))
        by_sig: dict[tuple[str, bool, frozenset[str], frozenset[str]], list[GraphNode]] = defaultdict(list)
        for node in self.nodes.values():
            if node.key not in rep:
                written = frozenset(ends["output"].get(node.key, ()))
                read = frozenset() if written else frozenset(ends["input"].get(node.key, ()))
                by_sig[(node.kind, node.model_weight, written, read)].append(node)
        assign((f"fold:data:{i}", nodes) for i, nodes in enumerate(by_sig.values()))
        boxes = {rep[key]: made[rep[key]] for key in self.nodes}  # in the graph's order: a fold at its first member
        merged: dict[tuple[str, str], list[GraphEdge]] = defaultdict(list)
        for edge in self.edges:
            source, target = rep[edge.source], rep[edge.target]
            if source != target:
                merged[(source, target)].append(edge)
        links = [_mermaid_link(source, target, edges) for (source, target), edges in merged.items()]
        tasks = len(self.tasks)
        data = len(self.nodes) - tasks
        task_boxes = sum(1 for box in boxes.values() if box.kind == "task")
        note = (f"%% folded for stock Mermaid (at most {MERMAID_MAX_EDGES} edges, {MERMAID_MAX_TEXT:,} characters): "
                f"{tasks:,} tasks into {task_boxes:,} by name, {data:,} data nodes into {len(boxes) - task_boxes:,}, "
                f"{len(self.edges):,} edges into {len(links):,}; every node: export --format json or html")
        return boxes, links, note

    def to_dot(self) -> str:
        """A Graphviz ``digraph`` laid out left to right (every string escaped; control characters too)."""
        shapes = {"task": "box", "project": "cylinder", "dataset": "cylinder", "file": "note", "folder": "folder",
                  "job": "hexagon", "app": "component"}
        lines = ["digraph workflow {", "  rankdir=LR;",
                 '  node [style="rounded,filled", fontname="Helvetica", fontsize=11];', '  edge [color="#64748b"];']
        for key, node in self.nodes.items():
            color, bg = ("#dc2626", "#fee2e2") if node.failed else _KIND_COLORS.get(
                "model" if node.model_weight else node.kind, ("#475569", "#f1f5f9"))
            label = f"{node.label}\n{node.description}\n{key}"
            lines.append(
                f"  {_dot(key)} [label={_dot(label)}, shape={shapes.get(node.kind, 'box')}, "
                f'color="{color}", fillcolor="{bg}"{", penwidth=3" if node.failed else ""}];'
            )
        for edge in self.edges:
            # A project version that was read is drawn dashed and labelled (v2); later generations too.
            tags = edge.tags
            attrs = [f"label={_dot(' · '.join(tags))}"] if tags else []
            attrs += ["style=dashed"] if edge.version_label else []
            suffix = f" [{', '.join(attrs)}]" if attrs else ""
            lines.append(f"  {_dot(edge.source)} -> {_dot(edge.target)}{suffix};")
        lines.append("}")
        return "\n".join(lines) + "\n"


# -- loading -----------------------------------------------------------------------------------


def load_graph(db: str | os.PathLike[str] | None = None, scope: str | Scope | None = "workspace") -> Graph:
    """Load the lineage graph from a local store (never writing it).

    Args:
        db: The store file; ``None``: the default store (``$WORKFLOW_TRACE_DB``, else the nearest
            ``.workflow_trace/`` from the current folder upwards).
        scope: ``workspace``, ``project:ID``, ``project:PATH`` or ``task:ID``.

    Raises:
        ValueError: a malformed scope (checked before the store is opened).
        StoreNotFoundError: no store at ``db``.
        UnknownNodeError: the scope's project or task is not in the store.
        BackendError: the file is not a readable workflow_trace store.
    """
    parsed = parse_scope(scope)
    with SQLiteBackend.open_existing(db) as store, _gc_paused():
        graph = _build(store.tasks(), store.runs(), store.edges(), store.local_project_ids())
    graph.store = str(store.path)
    graph.server = os.environ.get("SERVER_ADDRESS") or None
    return graph.scoped(parsed)


# -- helpers (format_*, one_line, terminal_safe and written_by are shared with the CLI and reproduce) ----


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile (for loading and exporting, which make no cycles).

    A 10,000-task graph is a million new objects; the collector would walk all of them again and again
    while they are made (a third of the time of a load).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

#: (stroke/icon colour, background) per kind; ``model`` is a file marked as model weights.
_KIND_COLORS: dict[str, tuple[str, str]] = {
    "task": ("#2563eb", "#dbeafe"), "project": ("#7c3aed", "#ede9fe"), "dataset": ("#4f46e5", "#e0e7ff"),
    "file": ("#475569", "#e2e8f0"), "model": ("#ea580c", "#ffedd5"), "folder": ("#b45309", "#fef3c7"),
    "job": ("#0d9488", "#ccfbf1"), "app": ("#db2777", "#fce7f3"),
}


def terminal_safe(text: str) -> str:
    """``text`` with control characters (ESC, NUL, ...) shown escaped, so it cannot drive a terminal."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or ch == " " else (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        for ch in text
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def format_version(version: tuple[Optional[int], Optional[int]]) -> str:
    """``v2`` for a version by number, else ``version 11`` (its id)."""
    vid, num = version
    return f"v{num}" if num is not None else f"version {vid}"


def format_duration(seconds: float) -> str:
    """``250 ms``, ``1.5 s``, ``3.0 min``, ``2.5 h``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def format_time(value: datetime | None) -> str:
    """Local time to the second, ``-`` for none."""
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _task_line(task: GraphNode) -> str:
    info = task.task
    if info is None:
        return f"{task.key} (not recorded here)"
    status = info.status
    if info.failed:
        status = "FAILED"
        if info.error_type:
            status += f" {info.error_type}" + (f": {one_line(info.error_message, 120)}" if info.error_message else "")
    parts = [f"{task.key} {one_line(task.label, 80)} [{status}]"]
    if len(info.runs) > 1:
        parts.append(f"{len(info.runs):,} runs" + (f" ({info.failed_runs:,} failed)" if info.failed_runs else ""))
    parts.append(f"started {format_time(info.started_at)}")
    if info.duration is not None:
        parts.append(format_duration(info.duration))
    return ", ".join(parts)


def _shows_runs(info: TaskInfo) -> bool:
    """Whether the runs say more than the task line: several, nested, or with params."""
    return len(info.runs) > 1 or any(r.params or r.parent_run_id for r in info.runs)


def _run_lines(info: TaskInfo, limit: int = 40) -> list[str]:
    """The runs of a task as a tree; siblings with the same name folded (``load ×1,000, 1 failed``)."""
    # The runs under each parent, by name (a run whose parent is not among them is a root).
    children: dict[str | None, dict[str, list[RunInfo]]] = {}
    ids = {r.run_id for r in info.runs}
    for run in info.runs:
        siblings = children.setdefault(run.parent_run_id if run.parent_run_id in ids else None, {})
        siblings.setdefault(run.name, []).append(run)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for name, runs in children.get(parent, {}).items():
            if len(lines) >= limit:
                return
            text = f"{'    ' * (depth + 1)}run {one_line(name, 60)}"
            if len(runs) == 1:
                run = runs[0]
                status = run.status if run.status != "failed" else f"FAILED {run.error_type or ''}".rstrip()
                text += f" [{status}]"
                if run.duration is not None:
                    text += f" {format_duration(run.duration)}"
                if run.params:
                    text += "  params: " + one_line(format_params(run.params), 100)
            else:
                statuses = [r.status for r in runs]
                counts = "".join(f", {statuses.count(s):,} {s}" for s in ("failed", "running") if s in statuses)
                text += f" ×{len(runs):,}{counts}"
            lines.append(text)
            walk(runs[0].run_id, depth + 1)  # of a folded group, the first one's children stand for all

    walk(None, 0)
    if len(lines) >= limit:
        lines.append(f"    ... ({len(info.runs):,} runs in all; export --format json for every one)")
    return lines


def format_params(params: Mapping[str, Any] | None) -> str:
    """A run's params as shown: ``lr=0.1, model=yolo`` (strings as they are, anything else as JSON)."""
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}" for k, v in
                     (params or {}).items())


def _node_text(node: GraphNode | None, key: str, edge: GraphEdge | None = None) -> str:
    if node is None:
        return terminal_safe(key)
    if node.kind == "task":
        text = f"{key} {one_line(node.label, 80)} [{node.task.status if node.task else 'not recorded here'}]"
    else:
        text = key
        if node.card is not None and node.card.title:
            text += f' "{one_line(node.card.title, 80)}"'
        if node.model_weight:
            text += " [model weights]"
    if edge is not None:
        if edge.version_label:
            text += f" @{edge.version_label}"
        if node.kind != "task" and len(node.generations) > 1:
            writer = written_by(node, edge.generation)
            text += f" · gen {edge.generation}" + (f", by task:{writer}" if writer is not None else "")
    elif node.versions:
        text += f" (versions {', '.join(format_version(v) for v in node.versions)})"
    elif len(node.generations) > 1:
        text += f" ({len(node.generations)} generations)"
    return terminal_safe(text)


def written_by(node: GraphNode | None, generation: int) -> Optional[int]:
    """The id of the task that wrote that generation of ``node`` (``None``: unknown, or found as it was)."""
    found = next((g for g in node.generations if g.generation == generation), None) if node else None
    return None if found is None else found.task_id


def one_line(text: str, limit: int) -> str:
    """``text`` on one line, terminal-safe, cut to ``limit`` characters with an ellipsis."""
    # Lines joined first: a multi-line error reads as one line, not as "\x0a" escapes.
    flat = terminal_safe(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_MERMAID_CODES = {
    "&": "#amp;", "#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;", "`": "#96;",
}


def _mermaid(text: str) -> str:
    # Mermaid reads labels as markdown/HTML: every character that could be markup becomes an entity code;
    # control characters (NUL, ESC) are dropped.
    return "".join(_MERMAID_CODES.get(ch, ch) for ch in one_line(text, 200) if unicodedata.category(ch)[0] != "C")


# -- Mermaid -------------------------------------------------------------------------------------

_MERMAID_SHAPES = {
    "task": ('["', '"]'), "project": ('[("', '")]'), "dataset": ('[("', '")]'),
    "file": ('[/"', '"/]'), "folder": ('[["', '"]]'), "job": ('{{"', '"}}'), "app": ('(["', '"])'),
}
_PLURALS = {"task": "tasks", "project": "projects", "dataset": "datasets", "file": "files", "folder": "folders",
            "job": "labeling jobs", "app": "app sessions"}


class _MermaidBox(NamedTuple):
    kind: str
    label: str
    detail: str
    css: str


class _MermaidLink(NamedTuple):
    source: str
    target: str
    dashed: bool
    tags: tuple[str, ...]
    time: str  # sortable: the ISO time of the newest edge, "" (before any other) when unknown


def _error_text(info: TaskInfo | None) -> str:
    if info is None or not info.failed or not info.error_type:
        return ""
    return f"{info.error_type}: {info.error_message or ''}"


def _mermaid_box(node: GraphNode) -> _MermaidBox:
    detail = node.key if node.kind != "task" else f"{node.key} · {node.task.status if node.task else '?'}"
    if node.versions:
        detail += " · " + ", ".join(format_version(v) for v in node.versions)
    if error := _error_text(node.task):
        detail += f" · {error}"
    css = "failed" if node.failed else "model" if node.model_weight else node.kind
    return _MermaidBox(node.kind, node.label, detail, css)


def _mermaid_fold_box(nodes: list[GraphNode]) -> _MermaidBox:
    first = nodes[0]
    if first.kind == "task":
        failed = [n for n in nodes if n.failed]
        running = sum(1 for n in nodes if n.task is not None and n.task.status == "running")
        counts = {"tasks": len(nodes), "failed": len(failed), "running": running}
        parts = [f"{n:,} {word}" for word, n in counts.items() if n]
        if failed:  # the newest failure's error: what to look at first
            parts.append(f"{failed[-1].key}: {one_line(_error_text(failed[-1].task), 90)}")
        return _MermaidBox("task", f"{first.label} ×{len(nodes):,}", " · ".join(parts), "failed" if failed else "task")
    paths = [n.path for n in nodes if n.path]
    if len(paths) == len(nodes):  # what the paths share: /models/exp_…/best.pt
        # Character by character on purpose: exp_01 and exp_02 share "exp_0".
        head = min(paths, key=len)
        start = len(os.path.commonprefix(paths))  # noqa: RUF071
        end = min(len(os.path.commonprefix([p[::-1] for p in paths])), len(head) - start)  # noqa: RUF071
        detail = f"{head[:start]}…{head[len(head) - end:] if end else ''}"
    else:
        detail = ", ".join(n.key for n in nodes[:3]) + (" …" if len(nodes) > 3 else "")
    kind = "model files" if first.model_weight else _PLURALS.get(first.kind, "nodes")
    return _MermaidBox(first.kind, f"{len(nodes):,} {kind}", detail, "model" if first.model_weight else first.kind)


def _mermaid_link(source: str, target: str, edges: Sequence[GraphEdge]) -> _MermaidLink:
    """The link from ``source`` to ``target`` drawn for one edge, or for several folded into one."""
    dashed = all(e.relation == "input" and e.version_label is not None for e in edges)
    newest = max(_iso(e.last_time) or "" for e in edges)
    labels = {e.version_label for e in edges}
    # Folded: how many, and the version they share.
    tags = edges[0].tags if len(edges) == 1 else [f"×{len(edges):,}", *(labels - {None} if len(labels) == 1 else ())]
    return _MermaidLink(source, target, dashed, tuple(tags), newest)


def _mermaid_text(boxes: Mapping[str, _MermaidBox], links: Sequence[_MermaidLink], notes: Sequence[str]) -> str:
    ids = {key: f"n{i}" for i, key in enumerate(boxes)}
    lines = ["flowchart LR", *(f"  {note}" for note in notes)]
    for key, box in boxes.items():
        left, right = _MERMAID_SHAPES.get(box.kind, ('["', '"]'))
        label = f"{_mermaid(box.label)}<br/><small>{_mermaid(box.detail)}</small>"
        lines.append(f"  {ids[key]}{left}{label}{right}:::{box.css}")
    for link in links:
        text = f'|"{_mermaid(" · ".join(link.tags))}"| ' if link.tags else " "
        lines.append(f"  {ids[link.source]} {'-.->' if link.dashed else '-->'}{text}{ids[link.target]}")
    lines += [f"  classDef {kind} fill:{bg},stroke:{color},color:#1f2937" for kind, (color, bg) in _KIND_COLORS.items()]
    lines.append("  classDef failed fill:#fee2e2,stroke:#dc2626,stroke-width:3px,color:#7f1d1d")
    return "\n".join(lines) + "\n"


def _dot(text: str) -> str:
    # DOT strings: backslash and quote escaped, newlines as \n, other control characters (NUL breaks dot)
    # dropped.
    clean = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch)[0] != "C")
    escaped = clean.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
