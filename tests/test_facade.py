"""workflow_trace.workflow (the SDK's add_input_* / add_output_*) and workflow_trace.version."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import NamedTuple

import pytest

import workflow_trace as wt
from workflow_trace import App, Dataset, File, Folder, Job, Project, Task, workflow
from workflow_trace.backends.memory import MemoryBackend


class FileInfo(NamedTuple):
    """Shaped like the SDK's FileInfo."""

    team_id: int
    id: int
    name: str
    path: str


SEED_SIGNATURES = {
    "add_input_project": ["project", "version_id", "version_num", "task_id", "meta"],
    "add_input_dataset": ["dataset", "task_id", "meta"],
    "add_input_file": ["file", "model_weight", "task_id", "meta"],
    "add_input_folder": ["path", "task_id", "meta"],
    "add_input_task": ["input_task_id", "task_id", "meta"],
    "add_input_job": ["id", "task_id", "meta"],
    "add_output_project": ["project", "version_id", "task_id", "meta"],
    "add_output_dataset": ["dataset", "task_id", "meta"],
    "add_output_file": ["file", "model_weight", "task_id", "meta"],
    "add_output_folder": ["path", "task_id", "meta"],
    "add_output_task": ["output_task_id", "task_id", "meta"],
    "add_output_app": ["task_id", "meta"],
    "add_output_job": ["id", "task_id", "meta"],
}


def test_the_thirteen_methods_have_the_seed_parameter_names() -> None:
    """Each facade method has the seed's parameter names, in order."""
    actual = {name: list(inspect.signature(getattr(workflow, name)).parameters) for name in SEED_SIGNATURES}
    assert actual == SEED_SIGNATURES


def test_every_method_records_its_node(memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls outside a step go to one process step under the environment's task id."""
    monkeypatch.setenv("TASK_ID", "5")
    meta = {"customRelationSettings": {"title": "<h4>Archive</h4>"}}
    workflow.add_input_project(123)
    workflow.add_input_project(123, version_id=77)
    workflow.add_input_project(123, version_num=3)
    workflow.add_input_dataset(456)
    workflow.add_input_file(FileInfo(7, 789, "best.pt", "/m/best.pt"), model_weight=True)
    workflow.add_input_folder("/experiments/run1")
    workflow.add_input_task(42)
    workflow.add_input_job(11)
    workflow.add_output_project(125)
    workflow.add_output_dataset(458)
    workflow.add_output_file(791, meta=meta)
    workflow.add_output_folder("/experiments/run1/")
    workflow.add_output_task(43)
    workflow.add_output_app()
    workflow.add_output_job(12)
    assert [
        Project(id=123), Project(id=123, version_id=77), Project(id=123, version_num=3), Dataset(id=456),
        File(id=789, path="/m/best.pt", model_weight=True), Folder(path="/experiments/run1"), Task(id=42),
        Job(id=11),
    ] == memory.inputs
    assert [Project(id=125), Dataset(id=458), File(id=791), Folder(path="/experiments/run1/"), Task(id=43),
            App(), Job(id=12)] == memory.outputs
    edges = [e for e in memory.events if e.kind in ("input", "output")]
    assert {5} == {e.task_id for e in edges}
    assert len({e.step.run_id for e in edges}) == 1
    assert meta == next(e.meta for e in edges if e.node == File(id=791))


def test_reset_finishes_the_process_step_in_its_own_backend(memory: MemoryBackend, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """reset() ends the process step in the backend it recorded to, creating no default store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKFLOW_TRACE_DB")
    workflow.add_input_project(1)
    wt.reset()
    assert ["step_started", "input", "step_finished"] == [e.kind for e in memory.events]
    assert not (tmp_path / ".workflow_trace").exists()


def test_calls_inside_a_step_join_it(memory: MemoryBackend) -> None:
    """Inside a step the facade records into that step."""
    with wt.workflow_step("train", task_id=8) as step:
        workflow.add_input_project(1)
    assert [Project(id=1)] == step.inputs
    assert {8} == {e.task_id for e in memory.events}


def test_explicit_task_id(memory: MemoryBackend) -> None:
    """task_id= records the edge for that task."""
    with wt.workflow_step("s", task_id=8):
        workflow.add_output_task(44, task_id=6)
    assert next(e.task_id for e in memory.events if e.kind == "output") == 6


@pytest.mark.internal_errors
def test_bad_input_never_raises(memory: MemoryBackend, caplog: pytest.LogCaptureFixture) -> None:
    """No try/except needed: bad input is logged at WARNING."""
    workflow.add_input_dataset("not an id")
    workflow.add_output_file(1, meta={"customRelationSettings": {"mainLink": {"url": "http://x", "title": "t"}}})
    assert memory.events[1:] == []
    assert "add_input_dataset" in caplog.text
    assert "add_output_file" in caplog.text


def test_bad_input_raises_in_strict_mode(memory: MemoryBackend) -> None:
    """Strict mode raises a WorkflowTraceError subclass."""
    wt.configure(strict=True)
    with pytest.raises(wt.NodeCoercionError):
        workflow.add_input_dataset("not an id")


def test_enable_disable(memory: MemoryBackend) -> None:
    """disable()/enable()/is_enabled() switch tracking as on the SDK's object."""
    workflow.disable()
    assert workflow.is_enabled() is False
    workflow.add_input_project(1)
    workflow.enable()
    workflow.add_input_project(2)
    assert [Project(id=2)] == memory.inputs


def test_versions_need_a_versioning_backend(memory: MemoryBackend) -> None:
    """version.* on a backend without versions raises a clear error."""
    with pytest.raises(wt.VersioningNotSupportedError, match="does not support versions"):
        wt.version.create(1)
    with pytest.raises(wt.VersioningNotSupportedError):
        wt.version.get_list(1)
    with pytest.raises(ValueError, match="version_id or version_num"):
        wt.version.restore(1)


def test_versions_route_to_the_backend() -> None:
    """version.create/restore/get_list call the backend's versioning methods."""

    class Versioning(MemoryBackend):
        def create_version(self, project: Project, title: str | None, description: str | None) -> int:
            return 10 + (project.id or 0)

        def restore_version(self, project: Project, version_id: int | None, version_num: int | None,
                            skip_missed_entities: bool = False) -> Project:
            return Project(id=900)

        def list_versions(
            self, project: Project, filters: list[dict[str, object]] | None = None
        ) -> list[wt.VersionInfo]:
            return [wt.VersionInfo(id=1, version=1, project_id=project.id)]

    wt.configure(Versioning())
    assert wt.version.create(5, "t", "d") == 15
    assert Project(id=900) == wt.version.restore(5, version_num=1)
    assert [wt.VersionInfo(id=1, version=1, project_id=5)] == wt.version.get_list(5)
