"""A store written by the released code (schema version 4): read as it is, upgraded in place by a writer.

``tests/data/store_v4.db.gz`` was written by workflow_trace at schema version 4 (three tasks: ``prepare``,
``evaluate`` that failed, an implicit run of ``train``; each read a project and wrote a file), its process's
host and command line replaced by neutral values.
"""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import workflow_trace as wt
from workflow_trace.backends.sqlite import SCHEMA_VERSION, SQLiteBackend

OLD_TASKS = [(1, "prepare", "ok", None, 1), (2, "evaluate", "failed", "RuntimeError", 1), (3, "train", "ok", None, 1)]
OLD_EDGES = [
    ("input", 1, "project:42"), ("output", 1, "file:/models/best.pt"),
    ("input", 2, "project:7"), ("output", 2, "file:/models/eval.pt"),
    ("input", 3, "project:42"), ("output", 3, "file:/models/again.pt"),
]
#: The indexes of schema 4 that no query reads (schema 5 drops them).
UNREAD_INDEXES = {"edges_by_task", "edges_by_node", "steps_by_task"}


@wt.consumes_project
@wt.produces_file
def train(project_id: int, path: str) -> str:
    return path


def old_store(tmp_path: Path) -> Path:
    path = tmp_path / "store_v4.db"
    path.write_bytes(gzip.decompress((Path(__file__).parent / "data" / "store_v4.db.gz").read_bytes()))
    return path


def schema(path: Path) -> tuple[int, set[str]]:
    """``(user_version, index names)`` of a store, read with a plain connection."""
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return version, {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()


def summary(store: SQLiteBackend) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    tasks = [(t.id, t.name, t.status, t.error_type, t.runs) for t in store.tasks()]
    return tasks, [(e.direction, e.task_id, e.key) for e in store.edges()]


def test_reading_a_schema_4_store_shows_it_and_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """A reader migrates a memory copy: everything shows, the file keeps its bytes and its schema."""
    path = old_store(tmp_path)
    before = path.read_bytes()
    store = SQLiteBackend.open_existing(path)
    assert (OLD_TASKS, OLD_EDGES) == summary(store)
    assert before == path.read_bytes()
    assert 4 == schema(path)[0]


def test_a_writer_upgrades_a_schema_4_store_and_keeps_its_rows(tmp_path: Path) -> None:
    """The first write migrates the file to the current schema (the unread indexes gone); old rows stay."""
    path = old_store(tmp_path)
    with SQLiteBackend(path) as store:
        wt.configure(store)
        with wt.workflow_step("export"):
            train(42, "/models/best.pt")
        assert wt.flush(30)
        version, indexes = schema(path)
        assert (SCHEMA_VERSION, set()) == (version, indexes & UNREAD_INDEXES)
        tasks, edges = summary(store)
        new_id = tasks[-1][0]
        expected = (
            [*OLD_TASKS, (new_id, "export", "ok", None, 1)],
            [*OLD_EDGES, ("input", new_id, "project:42"), ("output", new_id, "file:/models/best.pt")],
        )
        assert expected == (tasks, edges)
        assert new_id > 3
        assert {"events": 16, "tasks": 4, "steps": 4, "nodes": 5, "edges": 8} == store.counts()
