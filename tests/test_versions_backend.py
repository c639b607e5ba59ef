"""Versions through SQLiteBackend and the public API, on real folders: decorators, steps, wt.version, graph."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

import workflow_trace as wt
from workflow_trace import _versions
from workflow_trace._events import Event, StepRef, new_event_id, new_run_id, utcnow
from workflow_trace.backends import VersioningBackend
from workflow_trace.backends.sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteBackend
from workflow_trace.graph import load_graph


def make_project(root: Path) -> Path:
    """A small project folder: two images and an annotation file."""
    (root / "img").mkdir(parents=True)
    (root / "img" / "a.jpg").write_bytes(b"\xff\xd8 image a")
    (root / "img" / "b.jpg").write_bytes(b"\xff\xd8 image b")
    (root / "ann.json").write_text('{"a.jpg": "cat"}')
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> SQLiteBackend:
    """The local store (not created yet), configured as the backend in strict mode."""
    backend = SQLiteBackend(tmp_path / "store" / "workflow.db")
    wt.configure(backend, strict=True)
    return backend


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder in tmp_path."""
    return make_project(tmp_path / "data" / "coco")


def project_inputs(store: SQLiteBackend) -> list[wt.Project]:
    """The project nodes recorded as inputs, in order."""
    return [e.node for e in store.edges() if e.direction == "input" and isinstance(e.node, wt.Project)]


class TestSchema:
    def test_fresh_store_has_the_version_tables(self, store: SQLiteBackend) -> None:
        """A new store is created at the latest schema, with the version and push tables."""
        store.local_versions()
        conn = sqlite3.connect(store.path)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.close()
        expected = (4, True)
        assert expected == (version, {"version_projects", "versions", "version_files", "pushed"} <= tables)
        assert SCHEMA_VERSION == version

    def test_store_of_schema_1_is_upgraded_in_place(self, tmp_path: Path, project: Path) -> None:
        """A store written before versions existed keeps its events and gains versions."""
        path = tmp_path / "old.db"
        conn = sqlite3.connect(path)
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        body = Event(kind="step_started", event_id=new_event_id(), time=utcnow(), task_id=None,
                     step=StepRef(run_id=new_run_id(), name="old")).model_dump_json()
        conn.execute("INSERT INTO tasks (id, name, origin) VALUES (1, 'old', 'local')")
        conn.execute("INSERT INTO events (event_id, kind, time, task_id, run_id, body) VALUES ('e1', 'step_started', "
                     "'2026-01-01T00:00:00+00:00', 1, 'r', ?)", (body,))
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
        conn.close()
        backend = SQLiteBackend(path)
        version_id = backend.create_version(wt.Project(path=str(project)), "t", None)
        expected = (1, 1, SCHEMA_VERSION)
        assert expected == (backend.counts()["events"], backend.version_number(version_id),
                            sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0])

    def test_is_a_versioning_backend(self, store: SQLiteBackend) -> None:
        """SQLiteBackend satisfies the VersioningBackend protocol."""
        assert isinstance(store, VersioningBackend)


class TestDecorators:
    def test_version_true_records_the_project_version(self, store: SQLiteBackend, project: Path) -> None:
        """@consumes_project(version=True) versions the folder before the call and records that version."""
        seen: list[list[int]] = []

        @wt.consumes_project(version=True)
        def train(project: str) -> str:
            seen.append([v.version for v in wt.version.get_list(project)])  # created before the call
            return "trained"

        assert "trained" == train(str(project))
        (node,) = project_inputs(store)
        (info,) = wt.version.get_list(str(project))
        task_id = store.tasks()[0].id
        expected = (str(project), info.id, 1, [[1]], f"created automatically by task {task_id}",
                    f"Before {train.__qualname__}")
        assert expected == (node.path, node.version_id, node.version_num, seen, info.description, info.title)

    def test_unchanged_folder_reuses_the_version(self, store: SQLiteBackend, project: Path) -> None:
        """Two calls on an unchanged folder record the same version; a change records version 2."""

        @wt.consumes_project(version="Train YOLO")
        def train(project: str) -> None:
            """Read the project."""

        train(str(project))
        train(str(project))
        (project / "ann.json").write_text('{"a.jpg": "dog"}')
        train(str(project))
        expected = ([1, 1, 2], ["Train YOLO", "Train YOLO"])
        assert expected == ([n.version_num for n in project_inputs(store)],
                            [v.title for v in wt.version.get_list(str(project))])

    def test_failed_call_still_has_its_version(self, store: SQLiteBackend, project: Path) -> None:
        """The version is created before the call, so a failing call shows what it read."""

        @wt.consumes_project(version=True)
        def train(project: str) -> None:
            raise RuntimeError("out of memory")

        with pytest.raises(RuntimeError, match="out of memory"):
            train(str(project))
        expected = ([1], "failed")
        assert expected == ([n.version_num for n in project_inputs(store)], store.tasks()[0].status)

    def test_workflow_step_version_inputs(self, store: SQLiteBackend, project: Path) -> None:
        """workflow_step(version_inputs=True) versions every project input, leaving other inputs alone."""
        weights = project.parent / "w.pt"
        weights.write_bytes(b"w")
        with wt.workflow_step("finetune", inputs=[wt.Project(path=str(project)), wt.File(path=str(weights))],
                              version_inputs=True):
            pass
        kinds = [(type(e.node).__name__, getattr(e.node, "version_num", None)) for e in store.edges()]
        (info,) = store.list_versions(wt.Project(path=str(project)))
        expected = ([("Project", 1), ("File", None)], "Before finetune", "created automatically by task 1")
        assert expected == (kinds, info.title, info.description)

    @pytest.mark.internal_errors
    def test_missing_folder_is_recorded_without_a_version(
        self, tmp_path: Path, swallowed: list[BaseException]
    ) -> None:
        """Outside strict mode, a folder that cannot be versioned is recorded as the plain project."""
        backend = SQLiteBackend(tmp_path / "store" / "workflow.db")
        wt.configure(backend)

        @wt.consumes_project(version=True)
        def train(project: str) -> str:
            return "ran"

        missing = str(tmp_path / "nope")
        expected = ("ran", [(missing, None, None)], ["VersioningError"])
        assert expected == (
            train(missing),
            [(n.path, n.version_id, n.version_num) for n in project_inputs(backend)],
            [type(e).__name__ for e in swallowed],
        )


class TestVersionApi:
    def test_create_restore_get_list_by_path(self, store: SQLiteBackend, project: Path) -> None:
        """wt.version.create / restore / get_list work on a folder path."""
        original = tree(project)
        v1 = wt.version.create(str(project), "first", "before cleaning")
        (project / "img" / "b.jpg").unlink()
        v2 = wt.version.create(str(project), "second")
        restored = wt.version.restore(str(project), version_num=1)
        infos = wt.version.get_list(str(project))
        expected = ([(v1, 1, "first", "before cleaning"), (v2, 2, "second", None)], "coco, from ver. 1", original)
        assert expected == ([(i.id, i.version, i.title, i.description) for i in infos],
                            Path(restored.path or "").name, tree(Path(restored.path or "")))

    def test_by_registered_id(self, store: SQLiteBackend, project: Path) -> None:
        """A folder versioned once has a local id: wt.version.* accept it (an int, or Project(id=...))."""
        v1 = wt.version.create(wt.Project(path=str(project)))
        local_id = wt.version.get_list(str(project))[0].project_id
        assert local_id is not None
        restored = wt.version.restore(local_id, version_id=v1)
        expected = ([1], [1], tree(project))
        assert expected == ([i.version for i in wt.version.get_list(local_id)],
                            [i.version for i in wt.version.get_list(wt.Project(id=local_id))],
                            tree(Path(restored.path or "")))

    def test_restored_project_is_a_new_local_project(self, store: SQLiteBackend, project: Path) -> None:
        """The restored folder gets its own local id and can be versioned itself."""
        wt.version.create(str(project))
        restored = wt.version.restore(str(project), version_num=1)
        assert restored.id is not None
        wt.version.create(restored)
        expected = [1]
        assert expected == [i.version for i in wt.version.get_list(restored.id)]

    def test_restore_is_an_output_of_the_current_step(self, store: SQLiteBackend, project: Path) -> None:
        """wt.version.restore inside a step records the restored copy as that step's output (issue 13.5):
        the graph shows which run brought the old data back."""
        wt.version.create(str(project), "first")
        with wt.workflow_step("rollback") as step:
            restored = wt.version.restore(str(project), version_num=1)
        assert wt.flush(5)
        graph = load_graph(store.path)
        task = graph.find(f"task:{step.task_id}")[0]
        outputs = [graph.nodes[e.target].path for e in graph.outputs_of(task)]
        assert [restored.path] == outputs

    def test_filters(self, store: SQLiteBackend, project: Path) -> None:
        """get_list takes the seed's filters."""
        for i in range(3):
            (project / "ann.json").write_text(str(i))
            wt.version.create(str(project), f"t{i}")
        expected = [2, 3]
        assert expected == [i.version for i in wt.version.get_list(
            str(project), [{"field": "version", "operator": ">=", "value": 2}])]

    def test_errors(self, store: SQLiteBackend, project: Path) -> None:
        """No such version, an unknown id and a missing object are VersioningErrors naming the problem."""
        wt.version.create(str(project))
        with pytest.raises(wt.VersioningError, match="no version with number 7"):
            wt.version.restore(str(project), version_num=7)
        with pytest.raises(wt.VersioningError, match="not a local project"):
            wt.version.get_list(999)
        for obj in (store.path.parent / "objects").rglob("*"):
            if obj.is_file() and obj.read_bytes() == b"\xff\xd8 image a":
                obj.unlink()
        with pytest.raises(wt.VersioningError, match=r"img/a\.jpg"):
            wt.version.restore(str(project), version_num=1)
        restored = wt.version.restore(str(project), version_num=1, skip_missed_entities=True)
        expected = ["ann.json", "img/b.jpg"]
        assert expected == sorted(tree(Path(restored.path or "")))

    def test_store_inside_the_project_is_left_out(self, tmp_path: Path) -> None:
        """A store kept inside the project folder (./.workflow_trace) is not versioned with it."""
        root = make_project(tmp_path / "proj")
        backend = SQLiteBackend(root / ".workflow_trace" / "workflow.db")
        wt.configure(backend, strict=True)
        first = wt.version.create(str(root))
        second = wt.version.create(str(root))  # the store and its objects changed meanwhile: still unchanged
        restored = wt.version.restore(str(root), version_id=first)
        expected = (first, ["ann.json", "img/a.jpg", "img/b.jpg"])
        assert expected == (second, sorted(tree(Path(restored.path or ""))))


class TestLocking:
    def test_hashing_does_not_hold_the_emit_lock(
        self, store: SQLiteBackend, project: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """While a version is being hashed, another thread's events are stored (no waiting on the lock)."""
        hashing = threading.Event()
        emitted = threading.Event()
        saw_emit: list[bool] = []
        real_hash = _versions._hash_file

        def slow_hash(path: Path) -> str:
            hashing.set()
            saw_emit.append(emitted.wait(30))  # the emit below must finish while this hash is running
            return real_hash(path)

        monkeypatch.setattr(_versions, "_hash_file", slow_hash)
        worker = threading.Thread(target=store.create_version, args=(wt.Project(path=str(project)), None, None))
        worker.start()
        assert hashing.wait(30)
        store.emit([Event(kind="step_started", event_id=new_event_id(), time=utcnow(), task_id=7,
                          step=StepRef(run_id=new_run_id(), name="other"))])
        emitted.set()
        worker.join(60)
        expected = (1, True)
        assert expected == (store.counts()["events"], bool(saw_emit) and all(saw_emit))


class TestGraph:
    @pytest.fixture
    def versioned(self, store: SQLiteBackend, project: Path) -> Path:
        """A store where `train` read version 2 of the project."""

        @wt.consumes_project(version=True)
        def train(project: str) -> None:
            """Read the project."""

        wt.version.create(str(project), "manual")
        (project / "ann.json").write_text("{}")
        train(str(project))
        return store.path

    def test_every_export_shows_the_version(self, versioned: Path, project: Path) -> None:
        """Text, Mermaid, DOT, JSON and HTML all show v2 on the project read by the task."""
        graph = load_graph(versioned)
        key = f"project:{project}"
        data = json.loads(graph.to_json())
        node = next(n for n in data["nodes"] if n["id"] == key)
        edge = next(e for e in data["edges"] if e["source"] == key)
        expected = {
            "text": True, "mermaid": True, "dot": True, "html": True,
            "json": ([{"version_id": 2, "version_num": 2}], 2, 2),
        }
        actual = {
            "text": f"<- {key} @v2" in graph.to_text(),
            "mermaid": '-.->|"v2"|' in graph.to_mermaid() and f"{key} · v2" in graph.to_mermaid(),
            "dot": 'label="v2", style=dashed' in graph.to_dot() and "v2 · " in graph.to_dot(),
            "html": '"version_id":2,"version_num":2' in graph.to_html(),
            "json": (node["versions"], edge["version_id"], edge["version_num"]),
        }
        assert expected == actual

    def test_lineage_text_names_the_versions(self, versioned: Path, project: Path) -> None:
        """The lineage of a project starts with the versions tasks read."""
        text = load_graph(versioned).lineage_text(f"project:{project}")
        assert f"project:{project} (versions v2)" == text.splitlines()[0]
