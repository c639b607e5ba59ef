"""workflow_trace.workflow (the SDK's add_input_* / add_output_*) and workflow_trace.version."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from _sdk_objects import WorkflowMeta as SdkMeta
from _sdk_objects import WorkflowSettings as SdkSettings

import workflow_trace as wt
from workflow_trace import App, Dataset, File, Folder, Job, Project, Task, workflow
from workflow_trace.backends.memory import MemoryBackend
from workflow_trace.graph import load_graph


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


@pytest.mark.parametrize("in_step", [False, True])
def test_every_call_is_recorded_as_the_sdk_posts_every_call(memory: MemoryBackend, tmp_path: Path, in_step: bool
                                                            ) -> None:
    """The same call twice is two inputs (the SDK posts both); the step lists the node once; the local store
    keeps one edge with a count of 2."""
    with wt.workflow_step("s") if in_step else contextlib.nullcontext() as step:
        workflow.add_input_dataset(456)
        workflow.add_input_dataset(456)
        workflow.add_input_dataset(456, meta={})  # an empty card is no card: the same call again
    assert [Dataset(id=456)] * 3 == memory.inputs
    if step is not None:
        assert [Dataset(id=456)] == step.inputs
    wt.configure(f"sqlite://{tmp_path / 'wf.db'}")
    workflow.add_input_dataset(456)
    workflow.add_input_dataset(456)
    wt.reset()
    edges = load_graph(tmp_path / "wf.db").edges
    assert [("dataset:456", 2)] == [(e.data_key, e.count) for e in edges]


def test_explicit_task_id(memory: MemoryBackend) -> None:
    """task_id= records the edge for that task."""
    with wt.workflow_step("s", task_id=8):
        workflow.add_output_task(44, task_id=6)
    assert next(e.task_id for e in memory.events if e.kind == "output") == 6


@pytest.mark.internal_errors
def test_bad_input_never_raises(memory: MemoryBackend, caplog: pytest.LogCaptureFixture) -> None:
    """No try/except needed: bad input is logged at WARNING; an unsafe card link costs only the link."""
    workflow.add_input_dataset("not an id")
    workflow.add_output_file(1, meta={"customRelationSettings": {"title": "<h4>R</h4>",
                                                                 "mainLink": {"url": "http://x", "title": "t"}}})
    assert [("output", File(id=1), {"customRelationSettings": {"title": "<h4>R</h4>"}})] == [
        (e.kind, e.node, e.meta) for e in memory.events[1:]]
    assert "add_input_dataset" in caplog.text
    assert "add_output_file: meta.customRelationSettings.mainLink.url 'http://x'" in caplog.text


class TestSdkMeta:
    """The SDK's own WorkflowMeta / WorkflowSettings (look-alikes here): sent as the SDK sends them."""

    def test_an_sdk_meta_is_its_as_dict(self, memory: MemoryBackend) -> None:
        """The card is the SDK object's as_dict, key order included."""
        meta = SdkMeta(relation_settings=SdkSettings(title="Checkpoints", icon="folder", icon_color="#FFA500",
                                                     icon_bg_color="#FFE8BE", url="/files/7/true",
                                                     url_title="Open Folder"),
                       node_settings=SdkSettings(title="Train", url="apps/sessions/99", url_title="Show Results"))
        workflow.add_output_folder("/experiments/1/checkpoints", meta=meta)
        [edge] = [e for e in memory.events if e.kind == "output"]
        assert json.dumps(meta.as_dict) == json.dumps(edge.meta)

    def test_an_empty_card_is_sent_as_the_sdk_sends_it(self, memory: MemoryBackend) -> None:
        """WorkflowMeta(relation_settings=WorkflowSettings()): the SDK sends {"customRelationSettings": {}}."""
        workflow.add_input_dataset(456, meta=SdkMeta(relation_settings=SdkSettings()))
        workflow.add_input_dataset(457, meta={"customNodeSettings": {}})
        assert [{"customRelationSettings": {}}, {"customNodeSettings": {}}] == [
            e.meta for e in memory.events if e.kind == "input"]

    def test_a_meta_the_sdk_refuses_costs_the_meta_not_the_edge(
        self, memory: MemoryBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An unknown key: the SDK drops the meta with a warning and sends the edge; so does workflow_trace."""
        with caplog.at_level(logging.WARNING):
            workflow.add_input_dataset(456, meta={"customRelationSettings": {"title": "<h4>x</h4>", "bogus": 1}})
        assert [(Dataset(id=456), None)] == [(e.node, e.meta) for e in memory.events if e.kind == "input"]
        [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert "workflow.add_input_dataset: meta.customRelationSettings has unknown key(s) ['bogus']" in warning

    @pytest.mark.parametrize("url", ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,<b>x</b>",
                                     "https://example.com/report", "//example.com/x", "/\\example.com/x",
                                     "/files/1\n"])
    def test_an_unsafe_link_costs_the_link_only(
        self, url: str, memory: MemoryBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A link that leaves the instance or runs code: left out, one WARNING naming the field; the rest goes."""
        meta = SdkMeta(relation_settings=SdkSettings(title="Report", url=url, url_title="Open"),
                       node_settings=SdkSettings(title="Node"))
        with caplog.at_level(logging.WARNING):
            workflow.add_output_file(791, meta=meta)
            workflow.add_output_file(792, meta=meta)
        assert [{"customRelationSettings": {"title": "<h4>Report</h4>"}, "customNodeSettings": {
            "title": "<h4>Node</h4>"}}] * 2 == [e.meta for e in memory.events if e.kind == "output"]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert 1 == len(warnings)
        assert "meta.customRelationSettings.mainLink.url" in warnings[0]

    @pytest.mark.parametrize("url", ["/files/1/true/?teamId=7", "apps/sessions/99", "/model-benchmark?id=3", ""])
    def test_links_on_the_instance_are_kept(self, url: str, memory: MemoryBackend) -> None:
        """Absolute and relative paths on the instance go out as they are (the SDK's TrainApp sends
        apps/sessions/N)."""
        workflow.add_output_app(meta={"customNodeSettings": {"mainLink": {"url": url, "title": "Open"}}})
        [edge] = [e for e in memory.events if e.kind == "output"]
        assert {"customNodeSettings": {"mainLink": {"url": url, "title": "Open"}}} == edge.meta

    def test_what_the_sdk_sends_unchecked_goes_out_unchanged(self, memory: MemoryBackend) -> None:
        """Named colours and a doubled zmdi- prefix: the SDK sends them; so does the facade."""
        meta = SdkMeta(node_settings=SdkSettings(title="c", icon="zmdi-folder", icon_color="orange",
                                                 icon_bg_color="white"))
        workflow.add_input_dataset(456, meta=meta)
        [edge] = [e for e in memory.events if e.kind == "input"]
        assert {"customNodeSettings": {"title": "<h4>c</h4>", "icon": {
            "icon": "zmdi-zmdi-folder", "color": "orange", "backgroundColor": "white"}}} == edge.meta


class TestVersionAlone:
    """A project version named without its project, and what the SDK refuses."""

    def test_a_version_alone_is_an_input_or_output(self, memory: MemoryBackend) -> None:
        """add_input_project(None, version_id=), add_input_project(version_id=), add_output_project(None, ...)."""
        with wt.workflow_step("a"):
            workflow.add_input_project(None, version_id=77)
        with wt.workflow_step("b"):
            workflow.add_input_project(version_id=77)
            workflow.add_output_project(None, version_id=78)
        assert [Project(version_id=77)] * 2 == memory.inputs
        assert [Project(version_id=78)] == memory.outputs

    def test_add_output_project_needs_the_project_argument_as_in_the_sdk(self) -> None:
        """The SDK's add_output_project has no default for project: neither has the facade."""
        assert inspect.signature(workflow.add_output_project).parameters["project"].default is inspect.Parameter.empty
        assert inspect.signature(workflow.add_input_project).parameters["project"].default is None

    @pytest.mark.internal_errors
    @pytest.mark.parametrize(("kwargs", "says"), [
        ({"project": None, "version_num": 3}, "version_num=...) needs the project"),
        ({"project": 123, "version_id": 77, "version_num": 3}, "version_id or version_num, not both"),
    ])
    def test_what_the_sdk_refuses_is_refused(
        self, kwargs: dict[str, Any], says: str, memory: MemoryBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Nothing recorded, one WARNING saying why, nothing raised."""
        with caplog.at_level(logging.WARNING):
            workflow.add_input_project(**kwargs)
        assert [] == memory.inputs
        [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert says in warning

    def test_a_dataset_needs_an_id(self, memory: MemoryBackend) -> None:
        """add_input_dataset(None) records nothing (the SDK posts an id-less dataset edge)."""
        workflow.add_input_dataset(None)
        assert [] == memory.inputs


def test_bad_input_raises_in_strict_mode(memory: MemoryBackend) -> None:
    """Strict mode raises a WorkflowTraceError subclass."""
    wt.configure(strict=True)
    with pytest.raises(wt.NodeCoercionError):
        workflow.add_input_dataset("not an id")
    with pytest.raises(wt.NodeCoercionError, match="task_id"):  # a TypeError too, not an internal error
        workflow.add_input_dataset(1, task_id="5")  # type: ignore[arg-type]


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
