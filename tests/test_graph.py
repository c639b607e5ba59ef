"""The lineage graph: loading from a real store, scopes, lineage, and every export format."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from workflow_trace._events import ErrorInfo, Event, StepRef, new_event_id, new_run_id, utcnow
from workflow_trace._nodes import App, Dataset, File, Folder, Job, Node, Project, Task
from workflow_trace.backends.sqlite import SQLiteBackend
from workflow_trace.graph import (
    Card,
    Graph,
    Scope,
    StoreNotFoundError,
    UnknownNodeError,
    load_graph,
    parse_scope,
)

ARCHIVE_META = {
    "customRelationSettings": {
        "title": "<h4><script>alert('archive')</script></h4>",
        "description": "<small>Project & \"export\" <b>zip</b></small>",
        "icon": {"icon": "zmdi-archive", "color": "#ff4c9e", "backgroundColor": "#ffe3ed"},
        "mainLink": {"url": "/files/1/true/?teamId=7", "title": "Download"},
    },
    "customNodeSettings": {"title": "<h4>Export <img src=x onerror=alert(1)></h4>"},
}


def run(
    store: SQLiteBackend,
    name: str,
    inputs: Sequence[Node] = (),
    outputs: Sequence[Node] = (),
    *,
    task_id: int | None = None,
    error: str | None = None,
    meta: dict[str, Any] | None = None,
) -> int:
    """Record one task (one outermost step, ``meta`` on its outputs) and return its id."""
    task_id = store.new_task_id(name) if task_id is None else task_id
    step = StepRef(run_id=new_run_id(), name=name)

    def event(kind: Any, **fields: Any) -> Event:
        return Event(kind=kind, event_id=new_event_id(), time=utcnow(), task_id=task_id, step=step, **fields)

    events = [event("step_started")]
    events += [event("input", node=n) for n in inputs]
    events += [event("output", node=n, meta=meta) for n in outputs]
    events.append(
        event(
            "step_finished",
            status="failed" if error else "ok",
            error=ErrorInfo(type="OSError", message=error) if error else None,
        )
    )
    store.emit(events)
    return task_id


@pytest.fixture
def every_kind(tmp_path: Path) -> Path:
    """A store whose graph holds every node kind, a project version, a failed task and hostile titles."""
    path = tmp_path / "every.db"
    with SQLiteBackend(path) as store:
        run(store, "import <script>", [Folder(path="/data/raw")], [Project(id=42)])
        train = run(
            store, "train",
            [Project(id=42, version_id=11, version_num=2), File(path="/ckpt/start.pt", model_weight=True)],
            [File(path="/models/best.pt", model_weight=True), App()],
        )
        run(store, "export", [File(path="/models/best.pt")], [File(id=77)], error="disk full", meta=ARCHIVE_META)
        run(store, "label", [Project(id=42), Task(id=train)], [Job(id=5), Dataset(id=9)], task_id=9000)
    return path


@pytest.fixture
def shared_project(tmp_path: Path) -> Path:
    """Three tasks sharing project 42, and one unrelated task."""
    path = tmp_path / "shared.db"
    with SQLiteBackend(path) as store:
        run(store, "import", [Folder(path="/raw")], [Project(id=42)])
        run(store, "train", [Project(id=42)], [File(path="/m.pt", model_weight=True)])
        run(store, "stats", [Project(id=42)], [File(path="/stats.json")])
        run(store, "other", [Project(id=7)], [Dataset(id=8)])
    return path


def kinds(graph: Graph) -> set[str]:
    """The node kinds of a graph."""
    return {n.kind for n in graph.nodes.values()}


class TestLoad:
    def test_every_kind(self, every_kind: Path) -> None:
        """Every node kind is in the graph, one edge per distinct connection."""
        graph = load_graph(every_kind)
        assert {"task", "project", "dataset", "file", "folder", "job", "app"} == kinds(graph)
        expected = (12, 12)
        assert expected == (len(graph.nodes), len(graph.edges))

    def test_tasks_carry_status(self, every_kind: Path) -> None:
        """Task nodes know their status and error."""
        tasks = {n.label: (n.task.status if n.task else None) for n in load_graph(every_kind).tasks}
        expected = {"import <script>": "ok", "train": "ok", "Export <img src=x onerror=alert(1)>": "failed",
                    "label": "ok"}
        assert expected == tasks

    def test_cards_from_meta(self, every_kind: Path) -> None:
        """Titles and descriptions come from the recorded cards, wrappers stripped."""
        node = load_graph(every_kind).nodes["file:77"]
        expected = ("<script>alert('archive')</script>", 'Project & "export" <b>zip</b>')
        assert expected == (
            node.label, node.description
        )

    def test_versions_and_weights(self, every_kind: Path) -> None:
        """A project read as a version keeps the version; model weights stay marked."""
        graph = load_graph(every_kind)
        edge = next(e for e in graph.edges if e.source == "project:42" and e.target == "task:2")
        expected = ((11, 2), "v2", True)
        assert expected == (
            graph.nodes["project:42"].versions[0], edge.version_label, graph.nodes["file:/models/best.pt"].model_weight
        )

    def test_consumed_task_is_the_task_node(self, every_kind: Path) -> None:
        """A task consumed by another task is the same node as that task."""
        graph = load_graph(every_kind)
        expected = ["task:2"]
        assert expected == [e.source for e in graph.inputs_of("task:9000") if e.source.startswith("task:")]

    def test_app_session_per_task(self, every_kind: Path) -> None:
        """The app session node belongs to the task that produced it."""
        expected = ["app:2"]
        assert expected == [k for k, n in load_graph(every_kind).nodes.items() if n.kind == "app"]

    def test_repeated_connection_is_one_edge(self, tmp_path: Path) -> None:
        """The same input recorded twice is one edge with a count of two."""
        with SQLiteBackend(tmp_path / "r.db") as store:
            task_id = run(store, "t", [Dataset(id=1)])
            run(store, "t", [Dataset(id=1)], task_id=task_id)
        graph = load_graph(tmp_path / "r.db")
        expected = [2]
        assert expected == [e.count for e in graph.edges]

    def test_missing_store(self, tmp_path: Path) -> None:
        """Loading a store that does not exist fails clearly and creates nothing."""
        with pytest.raises(StoreNotFoundError, match="no lineage store"):
            load_graph(tmp_path / "nope.db")
        expected = []
        assert expected == list(tmp_path.iterdir())


class TestScopes:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("workspace", Scope()),
            ("", Scope()),
            ("project:42", Scope("project", "project:42")),
            ("project:/data/my project", Scope("project", "project:/data/my project")),
            ("task:3", Scope("task", "task:3")),
            (" Task:07 ", Scope("task", "task:7")),
        ],
    )
    def test_parse(self, text: str, expected: Scope) -> None:
        """Scopes parse to a level and a node key."""
        assert expected == parse_scope(text)

    @pytest.mark.parametrize("text", ["project", "task:abc", "dataset:3", "everything", "task:", "project:"])
    def test_parse_errors(self, text: str) -> None:
        """Malformed scopes are ValueErrors that show the accepted forms."""
        with pytest.raises(ValueError, match=r"bad scope .*workspace, project:ID or task:ID"):
            parse_scope(text)

    def test_workspace(self, shared_project: Path) -> None:
        """The workspace shows everything."""
        graph = load_graph(shared_project, "workspace")
        expected = (["task:1", "task:2", "task:3", "task:4"], 10)
        assert expected == ([t.key for t in graph.tasks], len(graph.nodes))

    def test_project(self, shared_project: Path) -> None:
        """A project scope shows the tasks that touched it and everything those tasks touched."""
        graph = load_graph(shared_project, "project:42")
        expected = {"task:1", "task:2", "task:3", "project:42", "folder:/raw", "file:/m.pt", "file:/stats.json"}
        assert (expected, 6) == (set(graph.nodes), len(graph.edges))

    def test_task(self, shared_project: Path) -> None:
        """A task scope shows the task and its neighbours only."""
        graph = load_graph(shared_project, "task:2")
        assert ({"task:2", "project:42", "file:/m.pt"}, 2) == (set(graph.nodes), len(graph.edges))

    def test_unknown_scope_target(self, shared_project: Path) -> None:
        """A scope naming a project or task not in the store is an UnknownNodeError."""
        with pytest.raises(UnknownNodeError, match="project:99"):
            load_graph(shared_project, "project:99")

    def test_bad_scope_before_store(self, tmp_path: Path) -> None:
        """A malformed scope is reported even when the store is missing."""
        with pytest.raises(ValueError, match="bad scope"):
            load_graph(tmp_path / "missing.db", "proj:1")


class TestLineage:
    def test_upstream(self, every_kind: Path) -> None:
        """Upstream of the model: the task that wrote it, its inputs, and their producers."""
        graph = load_graph(every_kind)
        expected = {"file:/models/best.pt", "task:2", "project:42", "file:/ckpt/start.pt", "task:1", "folder:/data/raw"}
        assert expected == set(graph.upstream("file:/models/best.pt").nodes)

    def test_downstream(self, every_kind: Path) -> None:
        """Downstream of the raw folder reaches everything built from it."""
        graph = load_graph(every_kind)
        down = set(graph.downstream(Folder(path="/data/raw")).nodes)
        assert {"folder:/data/raw", "task:1", "project:42", "task:2", "task:9000", "task:3", "file:77"} <= down
        assert "file:/ckpt/start.pt" not in down

    def test_cycle_terminates(self, tmp_path: Path) -> None:
        """A task that rewrites the project it read (a cycle) does not loop forever."""
        with SQLiteBackend(tmp_path / "c.db") as store:
            run(store, "predict", [Project(id=1)], [Project(id=1)])
        graph = load_graph(tmp_path / "c.db")
        assert ({"project:1", "task:1"}, {"project:1", "task:1"}) == (
            set(graph.upstream("project:1").nodes), set(graph.downstream("project:1").nodes)
        )

    def test_lineage_text(self, every_kind: Path) -> None:
        """The lineage text shows both trees."""
        text = load_graph(every_kind).lineage_text("file:/models/best.pt")
        expected = ["file:/models/best.pt [model weights]", "upstream (what it came from):",
                "    <- task:2 train [ok]"]
        assert expected == text.splitlines()[:3]
        assert "    -> task:3 Export <img src=x onerror=alert(1)> [failed]" in text.splitlines()

    def test_unknown_node(self, every_kind: Path) -> None:
        """Asking for a node the graph does not have is an UnknownNodeError."""
        with pytest.raises(UnknownNodeError, match="dataset:12345"):
            load_graph(every_kind).upstream("dataset:12345")


def mermaid_counts(text: str) -> tuple[int, int]:
    """Node definitions and edges of a Mermaid flowchart."""
    nodes = re.findall(r"^\s+n\d+(?:\[|\(|\{)", text, re.MULTILINE)
    edges = re.findall(r"^\s+n\d+ (?:-->|-\.->)(?:\|[^|]*\|)? n\d+$", text, re.MULTILINE)
    return len(nodes), len(edges)


def dot_counts(text: str) -> tuple[int, int]:
    """Node statements and edges of a DOT digraph (quoted ids with escapes)."""
    quoted = r'"(?:[^"\\]|\\.)*"'
    nodes = re.findall(rf"^\s+{quoted} \[label=", text, re.MULTILINE)
    edges = re.findall(rf"^\s+{quoted} -> {quoted}(?: \[.*\])?;$", text, re.MULTILINE)
    return len(nodes), len(edges)


class TestExports:
    def test_mermaid(self, every_kind: Path) -> None:
        """Mermaid parses back to the graph's node and edge counts and holds no raw markup."""
        graph = load_graph(every_kind)
        text = graph.to_mermaid()
        expected = ("flowchart LR", (12, 12), False)
        assert expected == (text.splitlines()[0], mermaid_counts(text), "<script" in text)

    def test_dot(self, every_kind: Path) -> None:
        """DOT parses back to the graph's node and edge counts."""
        text = load_graph(every_kind).to_dot()
        expected = ("digraph workflow {", (12, 12))
        assert expected == (text.splitlines()[0], dot_counts(text))

    def test_dot_escapes_quotes(self, tmp_path: Path) -> None:
        """Quotes and backslashes in paths stay inside their DOT string."""
        with SQLiteBackend(tmp_path / "q.db") as store:
            run(store, 'say "hi"', [File(path='C:\\data\\"x".txt')])
        expected = (2, 1)
        assert expected == dot_counts(load_graph(tmp_path / "q.db").to_dot())

    def test_json_round_trip(self, every_kind: Path) -> None:
        """JSON reads back into the same graph."""
        graph = load_graph(every_kind)
        text = graph.to_json()
        again = Graph.from_json(text)
        assert (graph.to_dict(), list(graph.nodes)) == (again.to_dict(), list(again.nodes))

    def test_json_schema(self, every_kind: Path) -> None:
        """The JSON document has the documented top-level keys and node/edge keys."""
        data = json.loads(load_graph(every_kind).to_json())
        node_keys = {"id", "kind", "label", "description", "card", "external_id", "path", "model_weight",
                     "versions", "generations", "task"}
        edge_keys = {"source", "target", "relation", "task_id", "count", "first_time", "last_time",
                     "version_id", "version_num", "card", "generation"}
        assert (
            ["format", "version", "scope", "store", "server", "nodes", "edges"], ("workflow-trace-graph", 2),
            [node_keys] * 12, [edge_keys] * 12,
        ) == (
            list(data), (data["format"], data["version"]),
            [set(n) for n in data["nodes"]], [set(e) for e in data["edges"]],
        )

    def test_json_rejects_other_documents(self) -> None:
        """Reading something that is not a graph document is a ValueError."""
        with pytest.raises(ValueError, match="workflow-trace-graph"):
            Graph.from_json('{"nodes": []}')

    def test_html_is_the_offline_viewer(self, every_kind: Path) -> None:
        """The HTML export is the viewer with the JSON v2 graph inlined, escaped so user text cannot end its
        script block, and a CSP that allows no other origin and no connection at all."""
        graph = load_graph(every_kind)
        page = graph.to_html()
        match = re.search(r'<script type="application/json" id="wt-data">(.*?)</script>', page, re.DOTALL)
        assert match is not None
        data = json.loads(match.group(1))
        external = re.findall(r"(?:src|href)=\"(?:https?:)?//", page)
        policy = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)[1])
        expected = (graph.to_dict(), [], True, True, False)
        assert expected == (data, external, "default-src 'none'" in policy, "connect-src 'none'" in policy,
                            "<script>alert" in page)

    def test_html_keeps_titles_as_data(self, every_kind: Path) -> None:
        """Every title reaches the page as JSON data (the viewer sets it as text), never as markup."""
        graph = load_graph(every_kind)
        page = graph.to_html()
        labels = [n.label for n in graph.nodes.values()]
        raw = [label for label in labels if "<" in label and label in page]
        assert [] == raw

    def test_text(self, every_kind: Path) -> None:
        """The text tree lists every task with its inputs and outputs."""
        text = load_graph(every_kind).to_text()
        lines = text.splitlines()
        expected = "scope workspace: 4 tasks, 8 data nodes, 12 edges"
        assert expected == lines[0]
        expected = 4
        assert expected == sum(1 for line in lines if line.startswith("task:"))
        assert "    -> file:/models/best.pt [model weights]  (used by task:3)" in lines

    @pytest.mark.parametrize("fmt", ["text", "mermaid", "dot", "json", "html"])
    def test_empty_graph(self, fmt: str) -> None:
        """Every format renders an empty graph."""
        assert Graph().export(fmt)

    def test_unknown_format(self) -> None:
        """An unknown format names the formats that exist."""
        with pytest.raises(ValueError, match="mermaid"):
            Graph().export("svg")


class TestVersions:
    @pytest.fixture
    def versions(self, tmp_path: Path) -> Graph:
        """Project 42 read as v2 and v3 by two tasks; project 50 read by a version id alone (no number)."""
        path = tmp_path / "versions.db"
        with SQLiteBackend(path) as store:
            run(store, "train", [Project(id=42, version_id=11, version_num=2)], [File(path="/m.pt")])
            run(store, "eval", [Project(id=42, version_id=12, version_num=3), Project(id=50, version_id=70)])
        return load_graph(path)

    def test_every_format_shows_the_versions(self, versions: Graph) -> None:
        """Text, Mermaid, DOT, JSON and HTML show v2/v3 on the edges and the project node."""
        text, mermaid, dot, html = versions.to_text(), versions.to_mermaid(), versions.to_dot(), versions.to_json()
        data = json.loads(versions.to_json())
        node = next(n for n in data["nodes"] if n["id"] == "project:42")
        edges = [(e["target"], e["version_id"], e["version_num"]) for e in data["edges"] if e["source"] == "project:42"]
        expected = {
            "text": (True, True),
            "mermaid": (True, True, True),
            "dot": (True, True, True),
            "json": ([{"version_id": 11, "version_num": 2}, {"version_id": 12, "version_num": 3}],
                     [("task:1", 11, 2), ("task:2", 12, 3)]),
            "html": (True, True, True),
        }
        actual = {
            "text": ("<- project:42 @v2" in text, "<- project:42 @v3" in text),
            "mermaid": ('-.->|"v2"|' in mermaid, '-.->|"v3"|' in mermaid, "project:42 · v2, v3" in mermaid),
            "dot": ('label="v2", style=dashed' in dot, 'label="v3", style=dashed' in dot, "\\nv2, v3 · id 42" in dot),
            "json": (node["versions"], edges),
            "html": ('"version_num": 2' in html, '"version_num": 3' in html, "v2, v3 · id 42" in html),
        }
        assert expected == actual

    def test_a_version_id_without_number(self, versions: Graph) -> None:
        """A version known only by its id (as the Supervisely SDK records it) is shown as 'version ID'."""
        text, mermaid, data = versions.to_text(), versions.to_mermaid(), versions.to_json()
        expected = (True, True, True, "version 70 · id 50")
        assert expected == ("<- project:50 @version 70" in text, "project:50 · version 70" in mermaid,
                            '"version_id": 70, "version_num": null' in data, versions.nodes["project:50"].description)

    def test_lineage_of_a_project_names_its_versions(self, versions: Graph) -> None:
        """The first line of a project's lineage lists the versions read."""
        expected = "project:42 (versions v2, v3)"
        assert expected == versions.lineage_text("project:42").splitlines()[0]


class TestCard:
    def test_from_wire_strips_wrappers(self) -> None:
        """The <h4>/<small> wrappers of the wire form are removed, the icon prefix too."""
        card = Card.from_wire(ARCHIVE_META["customRelationSettings"])
        assert Card(
            title="<script>alert('archive')</script>", description='Project & "export" <b>zip</b>',
            icon="archive", icon_color="#ff4c9e", icon_bg_color="#ffe3ed",
            url="/files/1/true/?teamId=7", url_title="Download",
        ) == card

    @pytest.mark.parametrize("value", [None, {}, {"title": 3}, "text"])
    def test_from_wire_tolerates_junk(self, value: Any) -> None:
        """Odd meta in a store is skipped, never raised."""
        assert Card.from_wire(value) is None
