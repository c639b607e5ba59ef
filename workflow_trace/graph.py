"""The lineage graph: load it from the local store, scope it, follow lineage, export it.

Tasks (the workflow's main nodes) and data (projects, datasets, files, folders, labeling jobs, app
sessions) are the nodes; every recorded input is an edge ``data -> task`` and every output an edge
``task -> data``. Repeated records of the same connection are one edge with a ``count``. A task that
another task consumes (``consumes_task``) is the same node as that task.

Example::

    from workflow_trace.graph import load_graph

    graph = load_graph()                          # ./.workflow_trace/workflow.db or $WORKFLOW_TRACE_DB
    print(graph.scoped("project:42").to_text())   # the tasks that touched project 42 and what they touched
    graph.upstream("file:/models/best.pt")        # what produced it, transitively (a Graph)
    html = graph.to_html()                        # one self-contained page: inline SVG, no JavaScript

Scopes follow the Supervisely workflow: ``workspace`` (everything), ``project:ID`` (the tasks that touched
that project and every node those tasks touched), ``task:ID`` (one task, the nodes it touched, and the
tasks that consumed or produced it as a node). A scope only hides what is unrelated at its level.

JSON export (``Graph.to_json()``, ``workflow-trace export --format json``), schema version 1::

    {
      "format": "workflow-trace-graph", "version": 1, "scope": "workspace",
      "nodes": [
        {"id": "task:3",            # unique key: "KIND:ID", "KIND:PATH", or "app:TASK_ID"
         "kind": "task",            # task | project | dataset | file | folder | job | app
         "label": "train",          # what to display: the card title, else a default from the node
         "description": "...",     # the card description, else a default (status, path, ...)
         "card": null,              # the custom card, or {"title", "description", "icon", "icon_color",
                                    #   "icon_bg_color", "url", "url_title"} (each may be null)
         "external_id": 3,          # the node's id (on the instance, or the local task id), or null
         "path": null,              # the node's path (files, folders, local projects), or null
         "model_weight": false,     # files: marked as model weights
         "versions": [],            # projects: [{"version_id": 11, "version_num": 2}, ...] as read
         "task": {                  # tasks recorded in the store (else null):
           "id": 3, "name": "train", "origin": "local",   # origin: local | external
           "status": "failed",      # running | ok | failed
           "started_at": "2026-01-01T10:00:00+00:00", "finished_at": "...", "duration_s": 1.5,
           "error": {"type": "RuntimeError", "message": "..."},   # or null
           "pid": 4242, "host": "gpu-1", "command": "python train.py"}}
      ],
      "edges": [
        {"source": "project:42", "target": "task:3",   # inputs: data -> task; outputs: task -> data
         "relation": "input",       # input | output
         "task_id": 3,              # the task that recorded it
         "count": 1,                # how many times it was recorded
         "first_time": "...", "last_time": "...",      # ISO 8601, UTC
         "version_id": 11, "version_num": 2,           # the project version read or written, or null
         "card": null}              # the relation card (customRelationSettings), as for nodes
      ]
    }

Nodes are ordered by task start, then by first appearance; edges by first record. New optional keys may
be added in a later version; existing keys keep their meaning.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Optional

from ._errors import WorkflowTraceError
from ._nodes import App, File, Node, Project, parse_node_ref
from .backends.sqlite import EdgeRow, SQLiteBackend, StoreNotFoundError, TaskRow

__all__ = [
    "EXPORT_FORMATS",
    "Card",
    "Graph",
    "GraphEdge",
    "GraphNode",
    "Scope",
    "StoreNotFoundError",
    "TaskInfo",
    "UnknownNodeError",
    "load_graph",
    "parse_scope",
]

#: Formats accepted by :meth:`Graph.export`.
EXPORT_FORMATS = ("text", "mermaid", "dot", "json", "html")

JSON_FORMAT = "workflow-trace-graph"
JSON_VERSION = 1

_TITLE = re.compile(r"^\s*<h4>(.*)</h4>\s*$", re.DOTALL)
_DESCRIPTION = re.compile(r"^\s*<small>(.*)</small>\s*$", re.DOTALL)

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
    def from_wire(cls, data: Mapping[str, Any] | None) -> Card | None:
        """Read ``customRelationSettings`` / ``customNodeSettings``; ``None`` when nothing usable is set.

        Tolerant: the store may hold meta written by any producer, so odd values are skipped, not raised.
        """
        if not isinstance(data, Mapping):
            return None
        fields: dict[str, str] = {}
        title = data.get("title")
        if isinstance(title, str):
            match = _TITLE.match(title)
            fields["title"] = match.group(1) if match else title
        desc = data.get("description")
        if isinstance(desc, str):
            match = _DESCRIPTION.match(desc)
            fields["description"] = match.group(1) if match else desc
        icon = data.get("icon")
        if isinstance(icon, Mapping):
            name = icon.get("icon")
            if isinstance(name, str):
                fields["icon"] = name[len("zmdi-"):] if name.startswith("zmdi-") else name
            for src, dst in (("color", "icon_color"), ("backgroundColor", "icon_bg_color")):
                if isinstance(icon.get(src), str):
                    fields[dst] = icon[src]
        link = data.get("mainLink")
        if isinstance(link, Mapping):
            for src, dst in (("url", "url"), ("title", "url_title")):
                if isinstance(link.get(src), str):
                    fields[dst] = link[src]
        return cls(**fields) if fields else None

    def to_dict(self) -> dict[str, Optional[str]]:
        """The JSON form (every key present)."""
        return {
            "title": self.title,
            "description": self.description,
            "icon": self.icon,
            "icon_color": self.icon_color,
            "icon_bg_color": self.icon_bg_color,
            "url": self.url,
            "url_title": self.url_title,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Card | None:
        """Inverse of :meth:`to_dict`."""
        if data is None:
            return None
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class TaskInfo:
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

    @property
    def duration(self) -> Optional[float]:
        """Seconds from start to finish, or ``None`` while running or unknown."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def failed(self) -> bool:
        """Whether a root step of the task failed."""
        return self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        duration = self.duration
        return {
            "id": self.id,
            "name": self.name,
            "origin": self.origin,
            "status": self.status,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_s": None if duration is None else round(duration, 6),
            "error": None if self.error_type is None and self.error_message is None
            else {"type": self.error_type, "message": self.error_message},
            "pid": self.pid,
            "host": self.host,
            "command": self.command,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskInfo:
        """Inverse of :meth:`to_dict`."""
        error = data.get("error") or {}
        return cls(
            id=int(data["id"]),
            name=data.get("name"),
            origin=data.get("origin", "external"),
            status=data.get("status", "running"),
            started_at=_parse_time(data.get("started_at")),
            finished_at=_parse_time(data.get("finished_at")),
            error_type=error.get("type"),
            error_message=error.get("message"),
            pid=data.get("pid"),
            host=data.get("host"),
            command=data.get("command"),
        )


@dataclass(frozen=True)
class GraphNode:
    """A node of the graph: a task or a piece of data.

    Attributes:
        key: Unique key: ``task:3``, ``project:42``, ``file:/models/best.pt``, ``app:3`` (the session of
            task 3).
        kind: ``task``, ``project``, ``dataset``, ``file``, ``folder``, ``job`` or ``app``.
        card: The custom card (the task's ``customNodeSettings``; for data, the latest relation card).
        external_id: The id (on the instance, or the local task id).
        path: The path of a file, folder or local project.
        model_weight: A file recorded as model weights.
        versions: The project versions recorded, as ``(version_id, version_num)``.
        task: For tasks recorded in the store, what the store knows.
    """

    key: str
    kind: str
    card: Optional[Card] = None
    external_id: Optional[int] = None
    path: Optional[str] = None
    model_weight: bool = False
    versions: tuple[tuple[Optional[int], Optional[int]], ...] = ()
    task: Optional[TaskInfo] = None

    @property
    def label(self) -> str:
        """The card title, else a default made from the node."""
        if self.card is not None and self.card.title:
            return self.card.title
        return self.default_label

    @property
    def default_label(self) -> str:
        """A title made from the node alone (a task's name, a file's name, ``Project 42``)."""
        if self.kind == "task":
            if self.task is not None and self.task.name:
                return self.task.name
            return f"Task {self.external_id}"
        if self.kind == "app":
            return "App session"
        if self.path:
            base = os.path.basename(self.path.rstrip("/\\")) or self.path
            return base + "/" if self.kind == "folder" else base
        names = {"project": "Project", "dataset": "Dataset", "file": "File", "job": "Labeling job"}
        return f"{names.get(self.kind, self.kind.title())} {self.external_id}"

    @property
    def description(self) -> str:
        """The card description, else a default (a task's status, a file's path, ...)."""
        if self.card is not None and self.card.description:
            return self.card.description
        if self.task is not None:
            text = self.task.status
            if self.task.failed and self.task.error_type:
                text += f": {self.task.error_type}"
                if self.task.error_message:
                    text += f": {self.task.error_message}"
            elif self.task.duration is not None:
                text += f" in {_duration(self.task.duration)}"
            return text
        if self.kind == "app":
            return f"offline session of {self.key.replace('app:', 'task ', 1)}"
        parts: list[str] = []
        if self.model_weight:
            parts.append("model weights")
        if self.versions:
            parts.append(", ".join(_version_label(v) for v in self.versions))
        parts.append(self.path if self.path else f"id {self.external_id}")
        return " · ".join(parts)

    @property
    def failed(self) -> bool:
        """Whether this is a failed task."""
        return self.task is not None and self.task.failed

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        return {
            "id": self.key,
            "kind": self.kind,
            "label": self.label,
            "description": self.description,
            "card": None if self.card is None else self.card.to_dict(),
            "external_id": self.external_id,
            "path": self.path,
            "model_weight": self.model_weight,
            "versions": [{"version_id": vid, "version_num": num} for vid, num in self.versions],
            "task": None if self.task is None else self.task.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphNode:
        """Inverse of :meth:`to_dict`."""
        return cls(
            key=data["id"],
            kind=data["kind"],
            card=Card.from_dict(data.get("card")),
            external_id=data.get("external_id"),
            path=data.get("path"),
            model_weight=bool(data.get("model_weight", False)),
            versions=tuple((v.get("version_id"), v.get("version_num")) for v in data.get("versions", ())),
            task=None if data.get("task") is None else TaskInfo.from_dict(data["task"]),
        )


@dataclass(frozen=True)
class GraphEdge:
    """A connection: ``data -> task`` for an input, ``task -> data`` for an output.

    Attributes:
        count: How many times this connection was recorded.
        version_id: The project version of the latest record, if any.
        card: The relation card (``customRelationSettings``) of the latest record that had one.
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
        if self.version_id is None and self.version_num is None:
            return None
        return _version_label((self.version_id, self.version_num))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        return {
            "source": self.source,
            "target": self.target,
            "relation": self.relation,
            "task_id": self.task_id,
            "count": self.count,
            "first_time": _iso(self.first_time),
            "last_time": _iso(self.last_time),
            "version_id": self.version_id,
            "version_num": self.version_num,
            "card": None if self.card is None else self.card.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphEdge:
        """Inverse of :meth:`to_dict`."""
        relation = data["relation"]
        if relation not in ("input", "output"):
            raise ValueError(f"edge relation must be input or output, not {relation!r}")
        return cls(
            source=data["source"],
            target=data["target"],
            relation=relation,
            task_id=data.get("task_id"),
            first_time=_parse_time(data.get("first_time")),
            last_time=_parse_time(data.get("last_time")),
            count=int(data.get("count", 1)),
            version_id=data.get("version_id"),
            version_num=data.get("version_num"),
            card=Card.from_dict(data.get("card")),
        )


@dataclass(frozen=True)
class Scope:
    """A view of the graph: ``workspace``, ``project:ID`` or ``task:ID``."""

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
    raw = text.strip()
    level, sep, ident = raw.partition(":")
    level = level.strip().lower()
    hint = "use workspace, project:ID or task:ID (e.g. project:42)"
    if not sep or not ident.strip() or level not in ("project", "task"):
        raise ValueError(f"bad scope {text!r}: {hint}")
    ident = ident.strip()
    if level == "task":
        if not ident.isdigit():
            raise ValueError(f"bad scope {text!r}: a task is named by an integer id ({hint})")
        return Scope("task", f"task:{int(ident)}")
    node = parse_node_ref(f"project:{ident}")
    return Scope("project", node.ref)


# -- the graph ---------------------------------------------------------------------------------


@dataclass
class Graph:
    """Nodes (by key, in display order) and edges of a lineage graph.

    Build one with :func:`load_graph` (from a store), :meth:`from_rows` or :meth:`from_dict`.
    """

    nodes: dict[str, GraphNode] = field(default_factory=dict)
    edges: list[GraphEdge] = field(default_factory=list)
    scope: Scope = field(default_factory=Scope)

    # -- building -----------------------------------------------------------------------------

    @classmethod
    def from_rows(cls, tasks: Iterable[TaskRow], edges: Iterable[EdgeRow]) -> Graph:
        """Build the workspace graph from the store's task and edge rows."""
        nodes: dict[str, GraphNode] = {}
        for trow in sorted(tasks, key=lambda t: (t.started_at is None, t.started_at or 0, t.id)):
            key = f"task:{trow.id}"
            nodes[key] = GraphNode(
                key=key,
                kind="task",
                card=Card.from_wire(trow.node_meta),
                external_id=trow.id,
                task=TaskInfo(
                    id=trow.id, name=trow.name, origin=trow.origin, status=trow.status,
                    started_at=trow.started_at, finished_at=trow.finished_at, error_type=trow.error_type,
                    error_message=trow.error_message, pid=trow.pid, host=trow.host, command=trow.command,
                ),
            )
        # Data nodes accumulate: model-weight flags, versions, the latest relation card.
        data: dict[str, dict[str, Any]] = {}
        merged: dict[tuple[str, str, str], dict[str, Any]] = {}
        for row in edges:
            node = row.node
            task_key = f"task:{row.task_id}"
            if task_key not in nodes:
                nodes[task_key] = GraphNode(key=task_key, kind="task", external_id=row.task_id)
            key = _data_key(node, row.task_id)
            entry = data.get(key)
            if entry is None:
                entry = data[key] = {
                    "kind": node.kind,  # type: ignore[attr-defined]
                    "external_id": getattr(node, "id", None),
                    "path": getattr(node, "path", None), "model_weight": False, "versions": [],
                    "card": None, "card_time": None,
                }
            if entry["external_id"] is None:
                entry["external_id"] = getattr(node, "id", None)
            if entry["path"] is None:
                entry["path"] = getattr(node, "path", None)
            if isinstance(node, File) and node.model_weight:
                entry["model_weight"] = True
            version: tuple[Optional[int], Optional[int]] | None = None
            if isinstance(node, Project) and (node.version_id is not None or node.version_num is not None):
                version = (node.version_id, node.version_num)
                if version not in entry["versions"]:
                    entry["versions"].append(version)
            card = Card.from_wire((row.meta or {}).get("customRelationSettings"))
            if card is not None and (entry["card_time"] is None or row.time >= entry["card_time"]):
                entry["card"], entry["card_time"] = card, row.time
            ekey = (key, task_key, "input") if row.direction == "input" else (task_key, key, "output")
            agg = merged.get(ekey)
            if agg is None:
                merged[ekey] = {
                    "task_id": row.task_id, "first": row.time, "last": row.time, "count": 1,
                    "version": version, "card": card,
                }
            else:
                agg["count"] += 1
                agg["first"] = min(agg["first"], row.time)
                if row.time >= agg["last"]:
                    agg["last"] = row.time
                    if version is not None:
                        agg["version"] = version
                    if card is not None:
                        agg["card"] = card
        for key, entry in data.items():
            existing = nodes.get(key)
            if existing is not None:  # a task consumed as a node: the task's own node
                continue
            nodes[key] = GraphNode(
                key=key, kind=entry["kind"], card=entry["card"], external_id=entry["external_id"],
                path=entry["path"], model_weight=entry["model_weight"], versions=tuple(entry["versions"]),
            )
        graph_edges = [
            GraphEdge(
                source=s, target=t, relation=r, task_id=a["task_id"], first_time=a["first"],  # type: ignore[arg-type]
                last_time=a["last"], count=a["count"],
                version_id=a["version"][0] if a["version"] else None,
                version_num=a["version"][1] if a["version"] else None, card=a["card"],
            )
            for (s, t, r), a in merged.items()
        ]
        return cls(nodes, graph_edges)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Graph:
        """Read the JSON form written by :meth:`to_dict`.

        Raises:
            ValueError: not a workflow-trace graph, or a newer version of the schema.
        """
        if data.get("format") != JSON_FORMAT:
            raise ValueError(f"not a {JSON_FORMAT} document")
        if int(data.get("version", 0)) > JSON_VERSION:
            raise ValueError(f"graph schema version {data.get('version')} is newer than {JSON_VERSION}")
        nodes = [GraphNode.from_dict(n) for n in data.get("nodes", ())]
        edges = [GraphEdge.from_dict(e) for e in data.get("edges", ())]
        return cls({n.key: n for n in nodes}, edges, parse_scope(data.get("scope")))

    @classmethod
    def from_json(cls, text: str) -> Graph:
        """Read the JSON text written by :meth:`to_json`."""
        loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError(f"not a {JSON_FORMAT} document")
        return cls.from_dict(loaded)

    def subgraph(self, keys: Iterable[str], edges: Iterable[GraphEdge] | None = None) -> Graph:
        """The nodes in ``keys`` (kept in this graph's order) and the given edges (default: every edge
        between them)."""
        wanted = set(keys)
        if edges is None:
            kept = [e for e in self.edges if e.source in wanted and e.target in wanted]
        else:
            kept = list(edges)
            for edge in kept:
                wanted.update((edge.source, edge.target))
        return Graph({k: n for k, n in self.nodes.items() if k in wanted}, kept, self.scope)

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
        """The keys of the graph's nodes that ``node`` names.

        Args:
            node: A node, a key (``task:3``, ``app:3``) or a node ref as the CLI takes it
                (``project:42``, ``file:/models/best.pt``). ``app`` names every app session.

        Raises:
            UnknownNodeError: the graph has no such node.
            ValueError: the text is not a node ref.
        """
        if isinstance(node, str):
            if node in self.nodes:
                return [node]
            node = parse_node_ref(node.strip())
        if isinstance(node, App):
            keys = [k for k, n in self.nodes.items() if n.kind == "app"]
        else:
            keys = [node.ref] if node.ref in self.nodes else []
        if not keys:
            where = "the store" if self.scope.level == "workspace" else f"scope {self.scope}"
            raise UnknownNodeError(f"no node {node.ref} in {where}")
        return keys

    def scoped(self, scope: str | Scope | None) -> Graph:
        """The graph as seen from ``scope`` (see the module docstring).

        Raises:
            ValueError: a malformed scope.
            UnknownNodeError: the scope's project or task is not in the graph.
        """
        parsed = parse_scope(scope)
        if parsed.level == "workspace" or parsed.key is None:
            return Graph(dict(self.nodes), list(self.edges), parsed)
        if parsed.key not in self.nodes:
            raise UnknownNodeError(f"no {parsed.key} in the store")
        if parsed.level == "project":
            tasks = {e.task_key for e in self.edges if e.data_key == parsed.key}
            kept = [e for e in self.edges if e.task_key in tasks]
        else:
            kept = [e for e in self.edges if parsed.key in (e.task_key, e.data_key)]
        keys = {parsed.key} | {e.source for e in kept} | {e.target for e in kept}
        sub = self.subgraph(keys, kept)
        sub.scope = parsed
        return sub

    def upstream(self, node: Node | str) -> Graph:
        """What ``node`` came from: its producers, their inputs, and so on (``node`` included)."""
        return self._walk(self.find(node), forward=False)

    def downstream(self, node: Node | str) -> Graph:
        """What came from ``node``: its consumers, their outputs, and so on (``node`` included)."""
        return self._walk(self.find(node), forward=True)

    def lineage(self, node: Node | str) -> Graph:
        """Upstream and downstream of ``node`` together."""
        up = self.upstream(node)
        down = self.downstream(node)
        edges = list({(e.source, e.target, e.relation): e for e in [*up.edges, *down.edges]}.values())
        return self.subgraph(set(up.nodes) | set(down.nodes), edges)

    def _walk(self, start: Sequence[str], forward: bool) -> Graph:
        index: dict[str, list[GraphEdge]] = defaultdict(list)
        for edge in self.edges:
            index[edge.source if forward else edge.target].append(edge)
        seen = set(start)
        kept: list[GraphEdge] = []
        queue = deque(start)
        while queue:
            key = queue.popleft()
            for edge in index.get(key, ()):
                kept.append(edge)
                nxt = edge.target if forward else edge.source
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        order = {id(e): i for i, e in enumerate(self.edges)}
        kept.sort(key=lambda e: order[id(e)])
        return self.subgraph(seen, kept)

    # -- exports ------------------------------------------------------------------------------

    def export(self, fmt: str) -> str:
        """Render in one of :data:`EXPORT_FORMATS`.

        Raises:
            ValueError: an unknown format.
        """
        renderers = {
            "text": self.to_text,
            "mermaid": self.to_mermaid,
            "dot": self.to_dot,
            "json": self.to_json,
            "html": self.to_html,
        }
        if fmt not in renderers:
            raise ValueError(f"unknown format {fmt!r}; formats are: {', '.join(EXPORT_FORMATS)}")
        return renderers[fmt]()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (schema in the module docstring)."""
        return {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "scope": str(self.scope),
            "nodes": [n.to_dict() for n in self.nodes.values()],
            "edges": [e.to_dict() for e in self.edges],
        }

    def to_json(self, pretty: bool = False) -> str:
        """The JSON text (schema in the module docstring).

        Args:
            pretty: Indent every level. By default each node and each edge is one compact line: as
                readable in a diff, and several times faster to write for large graphs.
        """
        data = self.to_dict()
        if pretty:
            return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

        def items(values: list[dict[str, Any]]) -> str:
            if not values:
                return "[]"
            return "[\n" + ",\n".join("    " + json.dumps(v, ensure_ascii=False) for v in values) + "\n  ]"

        head = ",\n".join(
            f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in data.items()
            if k not in ("nodes", "edges")
        )
        return f'{{\n{head},\n  "nodes": {items(data["nodes"])},\n  "edges": {items(data["edges"])}\n}}\n'

    def to_text(self) -> str:
        """A readable tree: each task, what it read (``<-``) and wrote (``->``), who else used it."""
        tasks = self.tasks
        data = len(self.nodes) - len(tasks)
        lines = [
            f"scope {self.scope}: {_plural(len(tasks), 'task')}, {_plural(data, 'data node')}, "
            f"{_plural(len(self.edges), 'edge')}"
        ]
        producers: dict[str, list[str]] = defaultdict(list)
        consumers: dict[str, list[str]] = defaultdict(list)
        for edge in self.edges:
            (consumers if edge.relation == "input" else producers)[edge.data_key].append(edge.task_key)
        by_task: dict[str, list[GraphEdge]] = defaultdict(list)
        for edge in self.edges:
            by_task[edge.task_key].append(edge)
        for task in tasks:
            lines.append(_task_line(task))
            for edge in sorted(by_task.get(task.key, ()), key=lambda e: e.relation):
                other = self.nodes.get(edge.data_key)
                if edge.relation == "input":
                    line = f"    <- {_node_text(other, edge.data_key, edge)}"
                    related = [t for t in producers.get(edge.data_key, ()) if t != task.key]
                    if related:
                        line += f"  (from {', '.join(dict.fromkeys(related))})"
                else:
                    line = f"    -> {_node_text(other, edge.data_key, edge)}"
                    related = [t for t in consumers.get(edge.data_key, ()) if t != task.key]
                    if related:
                        line += f"  (used by {', '.join(dict.fromkeys(related))})"
                lines.append(line)
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
            for heading, forward in (
                ("upstream (what it came from):", False),
                ("downstream (what came from it):", True),
            ):
                if direction != "both" and forward != (direction == "down"):
                    continue
                lines.append(heading)
                body = list(self._tree(key, forward))
                lines.extend(body if body else ["    (nothing)"])
        return "\n".join(lines) + "\n"

    def _tree(self, root: str, forward: bool) -> Iterator[str]:
        index: dict[str, list[GraphEdge]] = defaultdict(list)
        for edge in self.edges:
            index[edge.source if forward else edge.target].append(edge)
        arrow = "->" if forward else "<-"
        seen = {root}
        stack: list[tuple[str, int, GraphEdge]] = [(root, 0, e) for e in reversed(index.get(root, []))]
        # Depth-first with an explicit stack: lineage chains can be longer than the recursion limit.
        while stack:
            _, depth, edge = stack.pop()
            nxt = edge.target if forward else edge.source
            text = _node_text(self.nodes.get(nxt), nxt, edge)
            if nxt in seen:
                yield f"{'    ' * (depth + 1)}{arrow} {text}  (see above)"
                continue
            seen.add(nxt)
            yield f"{'    ' * (depth + 1)}{arrow} {text}"
            stack.extend((nxt, depth + 1, e) for e in reversed(index.get(nxt, [])))

    def to_mermaid(self) -> str:
        """A Mermaid ``flowchart LR`` (every label escaped with Mermaid's entity codes)."""
        ids = {key: f"n{i}" for i, key in enumerate(self.nodes)}
        shapes = {
            "task": ('["', '"]'), "project": ('[("', '")]'), "dataset": ('[("', '")]'),
            "file": ('[/"', '"/]'), "folder": ('[["', '"]]'), "job": ('{{"', '"}}'), "app": ('(["', '"])'),
        }
        lines = ["flowchart LR"]
        for key, node in self.nodes.items():
            left, right = shapes.get(node.kind, ('["', '"]'))
            detail = key if node.kind != "task" else f"{key} · {node.task.status if node.task else '?'}"
            if node.versions:
                detail += " · " + ", ".join(_version_label(v) for v in node.versions)
            label = f"{_mermaid(node.label)}<br/><small>{_mermaid(detail)}</small>"
            css = f":::{'failed' if node.failed else node.kind}"
            lines.append(f"  {ids[key]}{left}{label}{right}{css}")
        for edge in self.edges:
            arrow = "-.->" if edge.relation == "input" and edge.version_label else "-->"
            version = edge.version_label
            text = f"|\"{_mermaid(version)}\"| " if version else " "
            lines.append(f"  {ids[edge.source]} {arrow}{text}{ids[edge.target]}")
        for kind, (color, bg) in _KIND_COLORS.items():
            lines.append(f"  classDef {kind} fill:{bg},stroke:{color},color:#1f2937")
        lines.append("  classDef failed fill:#fee2e2,stroke:#dc2626,stroke-width:3px,color:#7f1d1d")
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        """A Graphviz ``digraph`` laid out left to right (every string escaped)."""
        shapes = {
            "task": "box", "project": "cylinder", "dataset": "cylinder", "file": "note",
            "folder": "folder", "job": "hexagon", "app": "component",
        }
        lines = [
            "digraph workflow {",
            "  rankdir=LR;",
            '  node [style="rounded,filled", fontname="Helvetica", fontsize=11];',
            '  edge [color="#64748b"];',
        ]
        for key, node in self.nodes.items():
            color, bg = _KIND_COLORS.get("model" if node.model_weight else node.kind, ("#475569", "#f1f5f9"))
            if node.failed:
                color, bg = "#dc2626", "#fee2e2"
            label = f"{node.label}\n{node.description}\n{key}"
            lines.append(
                f"  {_dot(key)} [label={_dot(label)}, shape={shapes.get(node.kind, 'box')}, "
                f'color="{color}", fillcolor="{bg}"{", penwidth=3" if node.failed else ""}];'
            )
        for edge in self.edges:
            # A project version that was read is drawn dashed and labelled (v2).
            attrs = [f"label={_dot(edge.version_label)}", "style=dashed"] if edge.version_label else []
            suffix = f" [{', '.join(attrs)}]" if attrs else ""
            lines.append(f"  {_dot(edge.source)} -> {_dot(edge.target)}{suffix};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_html(self, title: str = "Workflow lineage") -> str:
        """One self-contained HTML page: cards in an inline SVG laid out left to right, no JavaScript."""
        from ._graph_html import render_html

        return render_html(self, title)


# -- loading -----------------------------------------------------------------------------------


def load_graph(db: str | os.PathLike[str] | None = None, scope: str | Scope | None = "workspace") -> Graph:
    """Load the lineage graph from a local store.

    Args:
        db: The store file; ``None``: ``$WORKFLOW_TRACE_DB`` or ``./.workflow_trace/workflow.db``.
        scope: ``workspace``, ``project:ID`` or ``task:ID``.

    Raises:
        ValueError: a malformed scope (checked before the store is opened).
        StoreNotFoundError: no store at ``db``.
        UnknownNodeError: the scope's project or task is not in the store.
        BackendError: the file is not a readable workflow_trace store.
    """
    parsed = parse_scope(scope)
    store = SQLiteBackend.open_existing(db)
    try:
        tasks = store.tasks()
        edges = store.edges()
    finally:
        store.close()
    return Graph.from_rows(tasks, edges).scoped(parsed)


# -- helpers -----------------------------------------------------------------------------------

#: (stroke/icon colour, background) per kind; ``model`` is a file marked as model weights.
_KIND_COLORS: dict[str, tuple[str, str]] = {
    "task": ("#2563eb", "#dbeafe"),
    "project": ("#7c3aed", "#ede9fe"),
    "dataset": ("#4f46e5", "#e0e7ff"),
    "file": ("#475569", "#e2e8f0"),
    "model": ("#ea580c", "#ffedd5"),
    "folder": ("#b45309", "#fef3c7"),
    "job": ("#0d9488", "#ccfbf1"),
    "app": ("#db2777", "#fce7f3"),
}


def _data_key(node: Node, task_id: int | None) -> str:
    # The app node is "the offline session of the current task": one per task.
    if isinstance(node, App):
        return f"app:{task_id}"
    return node.ref


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def _version_label(version: tuple[Optional[int], Optional[int]]) -> str:
    vid, num = version
    return f"v{num}" if num is not None else f"version {vid}"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _local_time(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _task_line(task: GraphNode) -> str:
    info = task.task
    if info is None:
        return f"{task.key} (not recorded here)"
    status = info.status
    if info.failed:
        status = "FAILED"
        if info.error_type:
            status += f" {info.error_type}"
            if info.error_message:
                status += f": {_one_line(info.error_message, 120)}"
    parts = [f"{task.key} {_one_line(task.label, 80)} [{status}]", f"started {_local_time(info.started_at)}"]
    if info.duration is not None:
        parts.append(_duration(info.duration))
    return ", ".join(parts)


def _node_text(node: GraphNode | None, key: str, edge: GraphEdge | None = None) -> str:
    if node is None:
        return key
    if node.kind == "task":
        status = node.task.status if node.task else "not recorded here"
        text = f"{key} {_one_line(node.label, 80)} [{status}]"
    else:
        text = key
        if node.card is not None and node.card.title:
            text += f' "{_one_line(node.card.title, 80)}"'
        if node.model_weight:
            text += " [model weights]"
    if edge is not None and edge.version_label:
        text += f" @{edge.version_label}"
    elif edge is None and node.versions:
        text += f" (versions {', '.join(_version_label(v) for v in node.versions)})"
    return text


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_MERMAID_CODES = {
    "&": "#amp;", "#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;", "`": "#96;",
}


def _mermaid(text: str) -> str:
    # Mermaid reads labels as markdown/HTML: every character that could be markup becomes an entity code.
    return "".join(_MERMAID_CODES.get(char, char) for char in _one_line(text, 200))


def _dot(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")
    return f'"{escaped}"'
