"""Nodes and the coercion function."""

from __future__ import annotations

import pathlib
from typing import NamedTuple, Optional

import pytest

import workflow_trace as wt
from workflow_trace import App, Dataset, File, Folder, Job, Project, Task, coerce_nodes
from workflow_trace._nodes import parse_node_ref


class ProjectInfo(NamedTuple):
    """Shaped like the SDK's ProjectInfo (a NamedTuple with an id first)."""

    id: int
    name: str
    workspace_id: int
    type: str = "images"


class FileInfo(NamedTuple):
    """Shaped like the SDK's FileInfo."""

    team_id: int
    id: int
    user_id: Optional[int]
    name: str
    path: str


def test_nodes_are_frozen_hashable_and_compared_by_value() -> None:
    """Equal nodes hash equal and cannot be mutated."""
    assert Project(id=1) == Project(id=1)
    assert len({Project(id=1), Project(id=1), Project(id=2)}) == 2
    with pytest.raises(Exception):
        Project(id=1).id = 2  # type: ignore[misc]


def test_project_and_file_need_an_identity() -> None:
    """A project or a file with neither id nor path is refused."""
    with pytest.raises(ValueError, match="an id, a path or a version_id"):
        Project()
    with pytest.raises(ValueError, match="id or a path"):
        File()
    assert 77 == Project(version_id=77).version_id  # the SDK's add_input_project(version_id=77)


@pytest.mark.parametrize(
    ("cls", "value", "expected"),
    [
        (Project, 42, [Project(id=42)]),
        (Dataset, 7, [Dataset(id=7)]),
        (File, 9, [File(id=9)]),
        (Task, 5, [Task(id=5)]),
        (Job, 11, [Job(id=11)]),
        (Project, ProjectInfo(3, "coco", 1), [Project(id=3)]),
        (File, FileInfo(7, 12, None, "best.pt", "/models/best.pt"), [File(id=12, path="/models/best.pt")]),
        (Dataset, {"id": 8, "name": "train"}, [Dataset(id=8)]),
        (File, {"path": "/a/b.txt"}, [File(path="/a/b.txt")]),
        (File, "/models/best.pt", [File(path="/models/best.pt")]),
        (Folder, pathlib.Path("/data/raw"), [Folder(path="/data/raw")]),
        (Project, "data/coco", [Project(path="data/coco")]),
        (Dataset, [1, 2], [Dataset(id=1), Dataset(id=2)]),
        (Dataset, (1,), [Dataset(id=1)]),
        (Dataset, {3}, [Dataset(id=3)]),
        (Dataset, (i for i in [4, 5]), [Dataset(id=4), Dataset(id=5)]),
        (Dataset, None, []),
        (Project, Project(id=1, version_id=9), [Project(id=1, version_id=9)]),
        (App, "anything", [App()]),
    ],
)
def test_coercion(cls: type[wt.Node], value: object, expected: list[wt.Node]) -> None:
    """Every supported value becomes the expected nodes."""
    assert expected == coerce_nodes(cls, value)


def test_model_weight_marks_files() -> None:
    """model_weight=True marks coerced files, including nodes that were not marked."""
    assert [File(id=1, model_weight=True)] == coerce_nodes(File, 1, model_weight=True)
    assert [File(path="/w.pt", model_weight=True)] == coerce_nodes(File, File(path="/w.pt"), model_weight=True)


@pytest.mark.parametrize(
    ("cls", "value", "type_name"),
    [(Dataset, 1.5, "float"), (Dataset, "abc", "str"), (Folder, 3, "int"), (Project, True, "bool"),
     (Dataset, object(), "object")],
)
def test_unsupported_values_raise_type_error_naming_type_and_culprit(
    cls: type[wt.Node], value: object, type_name: str
) -> None:
    """An unsupported value is a TypeError naming the value's type and the decorator."""
    with pytest.raises(TypeError) as info:
        coerce_nodes(cls, value, culprit="@consumes_x on f")
    assert "@consumes_x on f" in str(info.value)
    assert type_name in str(info.value)


def test_refs_and_parsing() -> None:
    """Refs are stable strings and parse back to nodes."""
    assert Project(id=42, version_id=3).ref == "project:42"
    assert File(id=3, path="/m/best.pt").ref == "file:/m/best.pt"
    assert Project(id=42) == parse_node_ref("project:42")
    assert File(path="/models/best.pt") == parse_node_ref("file:/models/best.pt")
    assert App() == parse_node_ref("app")
    with pytest.raises(ValueError, match="unknown node kind"):
        parse_node_ref("thing:1")


def test_fast_events_copy_like_validated_ones() -> None:
    """Events made from the call path's records support model_copy(update=...) like any pydantic model."""
    from workflow_trace._events import INPUT, RunRef, to_event

    event = to_event((INPUT, 1, 1_700_000_000.0, 1, RunRef("r", "n", None), Dataset(id=1), None, None))
    assert 2 == event.model_copy(update={"task_id": 2}).task_id
    assert 1 == event.task_id
    assert event == type(event).model_validate_json(event.model_dump_json())


def test_event_round_trips_through_json() -> None:
    """An event written as JSON reads back equal, node kind included."""
    from workflow_trace._events import Event, StepRef, new_event_id, new_run_id, utcnow

    event = Event(kind="input", event_id=new_event_id(), time=utcnow(), task_id=5,
                  step=StepRef(run_id=new_run_id(), name="s"), node=File(path="/x", model_weight=True))
    assert event == Event.model_validate_json(event.model_dump_json())


def test_run_ids_are_uuid7_and_time_ordered() -> None:
    """Run ids are version-7 UUIDs that sort by creation time."""
    import time
    import uuid

    from workflow_trace._events import new_run_id

    first = new_run_id()
    time.sleep(0.002)
    second = new_run_id()
    assert uuid.UUID(first).version == 7
    assert first < second
