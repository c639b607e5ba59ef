"""autolog: the real ``supervisely`` SDK against a fake instance on 127.0.0.1.

The fake answers only what the instrumented calls and the example app need (projects, datasets, one
1x1 image, team Files, tasks, labeling jobs, and the workflow endpoints of the Supervisely backend).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import runpy
import struct
import subprocess
import sys
import types
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Importing the SDK renames logging levels process-wide (WARNING -> WARN, CRITICAL -> FATAL): put the
# standard names back, or the other test modules' `levelname == "WARNING"` checks would see "WARN".
_LEVEL_NAMES = {level: logging.getLevelName(level) for level in (10, 20, 30, 40, 50)}

sly = pytest.importorskip(
    "supervisely", reason="autolog instruments the real Supervisely SDK: pip install supervisely"
)


def _restore_level_names() -> None:
    for level, name in _LEVEL_NAMES.items():
        if logging.getLevelName(level) != name:
            logging.addLevelName(level, name)


_restore_level_names()

import wrapt  # noqa: E402
from httpserver import RecordingServer, Request  # noqa: E402

import workflow_trace as wt  # noqa: E402
from workflow_trace import _runtime  # noqa: E402
from workflow_trace._autolog import INSTRUMENTED, _resolve, autolog, is_active, run_script  # noqa: E402
from workflow_trace.backends.memory import MemoryBackend  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "autolog_app.py"
DECORATED = ROOT / "examples" / "autolog_app_decorated.py"
TOKEN = "t" * 128
T = "2024-01-01T00:00:00.000Z"


# -- a fake Supervisely instance ---------------------------------------------------------------------


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 4))
            + chunk(b"IEND", b""))


PNG = _png()
PNG_HASH = base64.b64encode(hashlib.sha256(PNG).digest()).decode()
META = {"classes": [], "tags": [], "projectType": "images", "projectSettings": {}}


def _project(pid: int, name: str) -> dict[str, Any]:
    return {"id": pid, "name": name, "description": "", "size": "0", "readme": "", "workspaceId": 3,
            "teamId": 7, "imagesCount": 1, "itemsCount": 1, "datasetsCount": 1, "createdAt": T,
            "updatedAt": T, "type": "images", "customData": {}, "settings": {}}


def _dataset(did: int, pid: int, name: str) -> dict[str, Any]:
    return {"id": did, "name": name, "description": "", "size": "0", "projectId": pid, "imagesCount": 1,
            "itemsCount": 1, "createdAt": T, "updatedAt": T, "teamId": 7, "workspaceId": 3, "parentId": None}


def _image(iid: int, did: int, pid: int, name: str = "a.png") -> dict[str, Any]:
    return {"id": iid, "name": name, "link": None, "hash": PNG_HASH, "mime": "image/png", "ext": "png",
            "size": len(PNG), "width": 1, "height": 1, "labelsCount": 0, "datasetId": did, "createdAt": T,
            "updatedAt": T, "meta": {}, "pathOriginal": "/i/a.png", "fullStorageUrl": "http://i/a.png",
            "tags": [], "projectId": pid}


def _file(fid: int, path: str) -> dict[str, Any]:
    return {"teamId": 7, "id": fid, "userId": 1, "name": os.path.basename(path), "hash": "h", "path": path,
            "storagePath": "/s" + path, "mime": "application/gzip", "ext": "gz", "sizeb": 3,
            "createdAt": T, "updatedAt": T, "fullStorageUrl": "http://f" + path}


def _page(items: list[Any]) -> dict[str, Any]:
    return {"total": len(items), "perPage": 500, "pagesCount": 1, "entities": items}


def _multipart(parts: list[tuple[str, bytes]]) -> tuple[bytes, dict[str, str]]:
    boundary = "fakeinstanceboundary"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
        for name, data in parts
    )
    return body + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


class FakeInstance(RecordingServer):
    """A Supervisely instance with project 42 (dataset 456, one image); new projects get id 43.

    ``fail`` maps an API method to the HTTP status it answers with instead.
    """

    SOURCE = 42
    CREATED = 43

    def __init__(self) -> None:
        super().__init__(handler=self.answer)
        self.fail: dict[str, int] = {}
        self.next_file = 903
        self.uploaded: list[dict[str, Any]] = []  # file infos, as team Files lists them

    @staticmethod
    def method(req: Request) -> str:
        return req.path.split("/public/api/v3/", 1)[-1].split("?", 1)[0]

    def calls(self, method: str) -> list[Any]:
        """The JSON bodies of the successful calls of ``method``."""
        with self.lock:
            return [r.json() for r in self.requests if self.method(r) == method]

    def answer(self, req: Request) -> tuple[Any, ...]:
        m = self.method(req)
        if m in self.fail:
            return self.fail[m], {"error": f"{m} failed", "details": {"message": "injected"}}
        body = req.json() if req.body[:1] in (b"{", b"[") else None
        if m == "images.bulk.download":
            data, headers = _multipart([(str(i), PNG) for i in body["imageIds"]])
            return 200, data, headers
        if m in ("file-storage.bulk.upload", "file-storage.upload"):
            paths = re.findall(rb'name="path"\r\n\r\n([^\r]*)\r\n', req.body)
            names = re.findall(rb'name="name"\r\n\r\n([^\r]*)\r\n', req.body)
            infos = []
            for folder, name in zip(paths, names, strict=True):
                infos.append(_file(self.next_file, folder.decode() + name.decode()))
                self.next_file += 1
            self.uploaded += infos
            return 200, infos
        if m.startswith("/net/s77/"):  # a deployed model's session (sly.nn.inference.Session)
            return 200, {"app_name": "Serve a model", "session_id": 77}
        if m == "file-storage.download":
            return 200, b"checkpoint", {"Content-Type": "application/octet-stream"}
        answer = self.answers(m, body)
        if answer is None:
            return 404, {"error": f"the fake instance does not know {m}"}
        return 200, answer

    def answers(self, m: str, b: Any) -> Any:
        source, created = self.SOURCE, self.CREATED
        table: dict[str, Any] = {
            "instance.version": lambda: {"version": "6.18.3"},
            "projects.info": lambda: _project(b["id"], "fruits" if b["id"] == source else "fruits converted")
            if b["id"] in (source, created) else None,
            "projects.meta": lambda: META,
            "projects.list": lambda: _page([]),
            "projects.add": lambda: _project(created, b["name"]),
            "projects.meta.update": lambda: b["meta"],
            "datasets.list": lambda: _page([_dataset(456, source, "ds1")]),
            "datasets.info": lambda: _dataset(b["id"], source, "ds1"),
            "datasets.add": lambda: _dataset(457, b["projectId"], b["name"]),
            "images.list": lambda: _page([_image(1001, b["datasetId"], source)]),
            "images.info": lambda: _image(b["id"], 457, created),
            "images.internal.hashes.list": lambda: list(b),
            "images.bulk.add": lambda: [_image(2001 + i, b["datasetId"], created, it["title"])
                                        for i, it in enumerate(b["images"])],
            "annotations.bulk.info": lambda: [
                {"imageId": i, "imageName": "a.png", "createdAt": T, "updatedAt": T,
                 "annotation": {"description": "", "size": {"height": 1, "width": 1}, "tags": [], "objects": []}}
                for i in b["imageIds"]],
            "annotations.bulk.add": lambda: [{"success": True}],
            "tasks.info": lambda: {"id": b["id"], "workspaceId": 3, "teamId": 7, "type": "app",
                                   "status": "started", "meta": {"sessionToken": "s77"}, "settings": {}},
            "tasks.run.app": lambda: [{"taskId": 77, "userId": 1, "moduleId": 5, "appId": 6}],
            "tasks.request.direct": lambda: {"ok": True},
            "jobs.add": lambda: [{"id": 11}, {"id": 12}],
            "jobs.info": lambda: {"id": b["id"], "name": "label it", "teamId": 7, "workspaceId": 3,
                                  "projectId": created, "datasetId": b.get("datasetId", 457), "createdAt": T,
                                  "status": "pending", "entities": [],
                                  "meta": {"classes": [], "projectTags": [], "imageTags": [],
                                           "range": {"start": None, "end": None}}},
            "file-storage.list": lambda: [f for f in self.uploaded if f["path"].startswith(b["path"])],
            "file-storage.info": lambda: next((f for f in self.uploaded if f["id"] == b["id"]), None),
            "tasks.output.set": lambda: {"success": True},
            "workflow.node.add-input": lambda: {"success": True},
            "workflow.node.add-output": lambda: {"success": True},
        }
        if m in table:
            return table[m]()
        if m.endswith(".update"):
            return {"success": True}
        return None


@pytest.fixture
def instance(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeInstance]:
    """The fake instance, with the SDK's environment pointing at it (and no proxies for 127.0.0.1)."""
    server = FakeInstance().start()
    for name, value in (("SERVER_ADDRESS", server.url), ("API_TOKEN", TOKEN), ("TEAM_ID", "7"),
                        ("PROJECT_ID", "42"), ("NO_PROXY", "127.0.0.1"), ("no_proxy", "127.0.0.1")):
        monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _autolog_off() -> Iterator[None]:
    """No test leaves the SDK instrumented."""
    autolog(disable=True)
    try:
        yield
    finally:
        autolog(disable=True)
        _restore_level_names()


@pytest.fixture
def api(instance: FakeInstance) -> Any:
    return sly.Api.from_env()


def edges(memory: MemoryBackend) -> list[tuple[str, str]]:
    """(direction, node ref) of every input/output event, in order."""
    return [(e.kind, e.node.ref) for e in memory.events if e.kind in ("input", "output") and e.node is not None]


# -- the example app, unmodified vs decorated -----------------------------------------------------------


ARCHIVE = "file:/exports/43/fruits converted.tar.gz"
APP_EDGES = {("input", "project:42"), ("output", "project:43"), ("output", ARCHIVE)}


def test_unmodified_app_records_the_same_edges_as_the_decorated_app(
    instance: FakeInstance, memory: MemoryBackend
) -> None:
    """run_script(autolog_app.py) records what the decorated version declares: same nodes, same directions."""
    assert 0 == run_script(str(APP))
    recorded = edges(memory)
    steps = {e.step.name for e in memory.events if e.step is not None}
    autolog(disable=True)

    decorated = MemoryBackend()
    wt.configure(decorated)
    runpy.run_path(str(DECORATED), run_name="__main__")

    assert APP_EDGES == set(recorded)
    assert set(edges(decorated)) == set(recorded)
    assert {"autolog_app.py"} == steps


def test_the_app_records_each_edge_once(instance: FakeInstance, memory: MemoryBackend) -> None:
    """The project read by get_info_by_id and download_project is one input; reading back the uploaded
    project is not an input; what upload_project does inside (a dataset, images) records nothing."""
    run_script(str(APP))
    recorded = edges(memory)
    assert len(recorded) == len(set(recorded))
    assert [("input", "project:42"), ("output", "project:43"), ("output", ARCHIVE)] == recorded
    assert instance.calls("datasets.add")  # the SDK did create a dataset: not an edge of the app's


def test_the_app_shows_its_workflow_in_the_local_store(
    instance: FakeInstance, tmp_path: Path
) -> None:
    """The done-when of the issue, locally: the store's graph has the app's task with its three edges."""
    from workflow_trace.backends.sqlite import SQLiteBackend
    from workflow_trace.graph import load_graph

    db = tmp_path / "wf.db"
    wt.configure(SQLiteBackend(str(db)))
    assert 0 == run_script(str(APP))
    wt.reset()
    graph = load_graph(db)
    found = {(e.relation, e.data_key) for e in graph.edges}
    assert {("input", "project:42"), ("output", "project:43"), ("output", ARCHIVE)} == found


def test_the_app_sends_its_workflow_to_the_instance(
    instance: FakeInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The done-when, remotely: with nothing configured, SERVER_ADDRESS/API_TOKEN/TASK_ID make the
    workflow go to the instance as the SDK's own add-input/add-output requests."""
    monkeypatch.setenv("TASK_ID", "5")
    monkeypatch.setenv("WORKFLOW_TRACE_SPOOL", str(tmp_path / "spool.db"))
    assert 0 == run_script(str(APP))
    assert wt.flush(timeout=10)
    node = {"type": "task", "id": 5}
    assert [{"teamId": 7, "node": node, "type": "project", "id": 42}] == instance.calls("workflow.node.add-input")
    assert [
        {"teamId": 7, "node": node, "type": "project", "id": 43},
        {"teamId": 7, "node": node, "type": "file", "id": 903},
    ] == instance.calls("workflow.node.add-output")


# -- the rules ------------------------------------------------------------------------------------------


def _originals() -> dict[str, Any]:
    found = {}
    for spec in INSTRUMENTED:
        resolved = _resolve(spec)
        if resolved is not None:
            found[spec.label] = resolved[2]
    return found


def test_disable_restores_the_original_functions() -> None:
    """After autolog(disable=True) every patched attribute is the very object it was before."""
    from supervisely.api.project_api import ProjectApi
    from supervisely.project import project as project_module

    before = _originals()
    sly_download = sly.download_project
    get_info = ProjectApi.__dict__["get_info_by_id"]
    assert len(before) > 30  # the installed SDK has (nearly) everything in INSTRUMENTED

    autolog()
    assert isinstance(ProjectApi.__dict__["get_info_by_id"], wrapt.FunctionWrapper)
    assert isinstance(sly.download_project, wrapt.FunctionWrapper)
    assert sly.download_project is project_module.download_project  # re-exports share the one wrapper
    assert isinstance(sly.Project.__dict__["download"], wrapt.FunctionWrapper)

    autolog(disable=True)
    assert not is_active()
    assert ProjectApi.__dict__["get_info_by_id"] is get_info
    assert sly.download_project is sly_download
    assert project_module.download_project is sly_download
    assert isinstance(sly.Project.__dict__["download"], staticmethod)
    restored = {}
    for spec in INSTRUMENTED:
        module = sys.modules[spec.module]
        owner, _, attr = spec.qualname.rpartition(".")
        holder = getattr(module, owner) if owner else module
        if spec.label in before:
            restored[spec.label] = vars(holder)[attr]
    assert all(before[label] is restored[label] for label in before)


def test_a_bound_method_is_the_original_again(api: Any) -> None:
    """api.project.get_info_by_id's function is the original function object after disable."""
    original = api.project.get_info_by_id.__func__
    autolog()
    assert isinstance(api.project.get_info_by_id, wrapt.BoundFunctionWrapper)
    autolog(disable=True)
    assert isinstance(api.project.get_info_by_id, types.MethodType)
    assert api.project.get_info_by_id.__func__ is original


def test_autolog_twice_is_idempotent(api: Any, memory: MemoryBackend) -> None:
    """A second autolog() wraps nothing twice and records nothing twice; one disable undoes it."""
    from supervisely.api.project_api import ProjectApi

    autolog()
    wrapper = ProjectApi.__dict__["get_info_by_id"]
    autolog()
    assert ProjectApi.__dict__["get_info_by_id"] is wrapper
    assert not isinstance(wrapper.__wrapped__, wrapt.FunctionWrapper)
    with wt.workflow_step("s"):
        api.project.get_info_by_id(42)
    assert [("input", "project:42")] == edges(memory)
    autolog(disable=True)
    assert not isinstance(ProjectApi.__dict__["get_info_by_id"], wrapt.FunctionWrapper)


def test_results_pass_through_unchanged(api: Any, memory: MemoryBackend) -> None:
    """The SDK's result is the same with and without autolog."""
    plain = api.project.get_info_by_id(42)
    autolog()
    assert plain == api.project.get_info_by_id(42)


def test_a_failing_call_records_nothing_and_raises_the_same(
    api: Any, instance: FakeInstance, memory: MemoryBackend, tmp_path: Path
) -> None:
    """An SDK call that raises records nothing; its exception is the one the SDK raises without autolog."""

    def failures() -> list[tuple[type[BaseException], str]]:
        seen = []
        for call in (
            lambda: api.file.upload(7, str(tmp_path / "missing.tar.gz"), "/exports/x.tar.gz"),
            lambda: api.project.create(3, "new"),
            lambda: sly.download_project(api, 42, str(tmp_path / "d"), log_progress=False),
        ):
            with pytest.raises(Exception) as info:
                call()
            seen.append((info.type, str(info.value)))
        return seen

    instance.fail = {"projects.add": 400, "projects.meta": 403}
    plain = failures()
    autolog()
    with wt.workflow_step("s"):
        assert plain == failures()
    assert [] == edges(memory)


def test_sdk_internal_calls_record_nothing_beyond_the_outer_call(
    api: Any, memory: MemoryBackend, tmp_path: Path
) -> None:
    """download_project and upload_project record one project each, not the infos, datasets and images
    the SDK reads and creates inside them."""
    autolog()
    with wt.workflow_step("s"):
        sly.download_project(api, 42, str(tmp_path / "p"), log_progress=False)
        sly.upload_project(str(tmp_path / "p"), api, 3, project_name="copy", log_progress=False)
    assert [("input", "project:42"), ("output", "project:43")] == edges(memory)


def test_calls_made_while_workflow_trace_works_are_not_recorded(api: Any, memory: MemoryBackend) -> None:
    """While workflow_trace itself works (suppressed), SDK calls record nothing."""
    autolog()
    with wt.workflow_step("s"):
        token = _runtime.suppressed.set(True)
        try:
            api.project.get_info_by_id(42)
        finally:
            _runtime.suppressed.reset(token)
    assert [] == edges(memory)


def test_disabled_tracking_records_nothing(api: Any, memory: MemoryBackend) -> None:
    """configure(enabled=False) silences autolog too."""
    autolog()
    wt.configure(enabled=False)
    api.project.get_info_by_id(42)
    assert [] == edges(memory)


def test_outside_any_step_calls_go_to_the_process_step(api: Any, memory: MemoryBackend) -> None:
    """Like the facade: no current step means the per-process step."""
    from workflow_trace._step import process_step

    autolog()
    api.project.get_info_by_id(42)
    [event] = [e for e in memory.events if e.kind == "input"]
    assert process_step().run_id == event.step.run_id


def test_autolog_with_an_api_records_only_that_api(instance: FakeInstance, memory: MemoryBackend) -> None:
    """autolog(api) patches the classes but records only the calls made through that Api object."""
    mine, other = sly.Api.from_env(), sly.Api.from_env()
    autolog(mine)
    with wt.workflow_step("s"):
        other.project.get_info_by_id(43)
        mine.project.get_info_by_id(42)
    assert [("input", "project:42")] == edges(memory)
    autolog()  # every Api from now on
    with wt.workflow_step("t"):
        other.project.get_info_by_id(43)
    assert ("input", "project:43") in edges(memory)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda api, tmp: api.dataset.get_info_by_id(456), [("input", "dataset:456")]),
        (lambda api, tmp: api.project.create(3, "p"), [("output", "project:43")]),
        (lambda api, tmp: api.dataset.create(43, "d"), [("output", "dataset:457")]),
        (lambda api, tmp: api.task.start(agent_id=1, module_id=5, app_version="v1"), [("output", "task:77")]),
        (lambda api, tmp: api.task.send_request(77, "predict", {}), [("input", "task:77")]),
        (lambda api, tmp: api.app.start(agent_id=1, module_id=5, app_version="v1"), [("output", "task:77")]),
        (lambda api, tmp: sly.nn.inference.Session(api, task_id=77), [("input", "task:77")]),
        (lambda api, tmp: api.labeling_job.create("label it", 457, [1, 2]),
         [("output", "job:11"), ("output", "job:12")]),
        (lambda api, tmp: api.labeling_job.get_info_by_id(11), [("input", "job:11")]),
        (lambda api, tmp: api.file.upload_bulk(7, [_write_png(tmp)] * 2, ["/a/1.png", "/a/2.png"]),
         [("output", "file:/a/1.png"), ("output", "file:/a/2.png")]),
        (lambda api, tmp: api.file.download(7, "/models/best.pt", str(tmp / "best.pt")),
         [("input", "folder:/models"), ("input", "file:/models/best.pt")]),
        (lambda api, tmp: api.file.download(7, "/data/labels.json", str(tmp / "labels.json")),
         [("input", "file:/data/labels.json")]),
        (lambda api, tmp: api.image.upload_path(457, "b.png", _write_png(tmp)), [("output", "dataset:457")]),
    ],
    ids=["dataset-info", "project-create", "dataset-create", "task-start", "send-request", "app-start", "session",
         "job-create", "job-info", "file-upload-bulk", "checkpoint-download", "file-download", "image-upload"],
)
def test_each_call_means_its_edge(api: Any, memory: MemoryBackend, tmp_path: Path, call: Any,
                                  expected: list[tuple[str, str]]) -> None:
    """The instrumented calls, one by one: the node kind and direction of the table."""
    autolog()
    with wt.workflow_step("s"):
        call(api, tmp_path)
    assert expected == edges(memory)


def _write_png(tmp: Path) -> str:
    path = tmp / "b.png"
    path.write_bytes(PNG)
    return str(path)


def test_checkpoints_are_model_weights(api: Any, memory: MemoryBackend, tmp_path: Path) -> None:
    """A downloaded .pt file is recorded as a model weight."""
    autolog()
    with wt.workflow_step("s"):
        api.file.download(7, "/models/best.pt", str(tmp_path / "best.pt"))
        api.file.download(7, "/data/labels.json", str(tmp_path / "labels.json"))
    files = [e.node for e in memory.events if e.kind == "input" and isinstance(e.node, wt.File)]
    assert [True, False] == [f.model_weight for f in files]


def test_autolog_before_the_sdk_is_imported(instance: FakeInstance, tmp_path: Path) -> None:
    """In a fresh interpreter, autolog() first and `import supervisely` later still instruments it."""
    code = (
        "from workflow_trace import autolog\n"
        "autolog()\n"
        "import sys; assert 'supervisely' not in sys.modules\n"
        "import supervisely, wrapt\n"
        "print(isinstance(supervisely.download_project, wrapt.FunctionWrapper))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "WORKFLOW_TRACE_BACKEND": "null"})
    assert "True" == out.stdout.strip().splitlines()[-1], out.stderr[-2000:]


# -- ecosystem apps' data paths, reduced (self-written): autolog against what each app's workflow.py declares --


def _io(memory: MemoryBackend) -> list[tuple[str, str, Any]]:
    """(direction, node ref, card) of every input/output event, in order."""
    return [(e.kind, e.node.ref, e.meta) for e in memory.events
            if e.kind in ("input", "output") and e.node is not None]


CHECKPOINTS = {"customRelationSettings": {
    "title": "<h4>Checkpoints</h4>", "icon": {"icon": "zmdi-folder", "color": "#FFA500", "backgroundColor": "#FFE8BE"}}}
RUN = "/yolov8_train/object detection/fruits/5"


def test_an_export_app_records_the_project_and_the_archive(
    instance: FakeInstance, memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """export-to-yolov8's data path: a ``sly.app.Export`` app reads the project, downloads it, and ``run()``
    archives the result and uploads it (``sly.output.set_download``). Autolog records what the app's
    src/workflow.py (@3e010b5, scenario app_export_to_yolov8) declares — add_input_project(project_id) and
    add_output_file(file_info, meta=<archive card>) — except the card, which is the app's own wording."""
    for name, value in (("ENV", "production"), ("WORKSPACE_ID", "3"), ("TASK_ID", "5"),
                        ("APP_NAME", "Export to YOLO format")):
        monkeypatch.setenv(name, value)
    api = sly.Api.from_env()

    class ExportToYolo(sly.app.Export):
        def process(self, context: Any) -> str:
            project = api.project.get_info_by_id(id=context.project_id)
            result = tmp_path / f"{project.id}_{project.name}"
            sly.download_project(api, project.id, str(result / "images"), log_progress=False)
            (result / "data.yaml").write_text("names: []\n")
            return str(result)

    autolog()
    app = ExportToYolo()
    with wt.workflow_step("export"):
        app.run()
    archive = app.output_file
    declared = [("input", "project:42"), ("output", f"file:{archive.path}")]
    assert archive.path.endswith("/5/42_fruits.tar")
    assert declared == [(d, ref) for d, ref, _ in _io(memory)]
    assert [None, None] == [card for _, _, card in _io(memory)]  # the archive card is the app's, not made up


def _train(api: Any, tmp_path: Path) -> str:
    """yolov8 train's data path, reduced: read and download the project, train, upload the artifacts folder."""
    project = api.project.get_info_by_id(42)
    sly.download_project(api, project.id, str(tmp_path / "project"), log_progress=False)
    artifacts = tmp_path / "artifacts"
    (artifacts / "weights").mkdir(parents=True)
    for name in ("best.pt", "last.pt"):
        (artifacts / "weights" / name).write_bytes(b"weights")
    (artifacts / "results.csv").write_text("epoch,map\n1,0.5\n")
    return str(api.file.upload_directory(7, str(artifacts), RUN))


def test_a_training_app_records_the_checkpoint_folder(
    instance: FakeInstance, api: Any, memory: MemoryBackend, tmp_path: Path
) -> None:
    """yolov8 train: the project read and downloaded is the input; ``api.file.upload_directory`` of the artifacts
    gives the run folder and, as the SDK's own TrainApp records it, the checkpoint folder with its Checkpoints card.
    Its train/src/workflow.py (@07b22e8b, scenario app_yolov8_train) declares a version of the project
    (version.create) and ``add_output_file(best.pt, model_weight=True, meta=<Checkpoints + session link>)``:
    autolog has no version (the app creates it in workflow.py only) and names the folder, not best.pt (the app
    uploaded a folder; it never named the file)."""
    autolog()
    with wt.workflow_step("train"):
        assert RUN == _train(api, tmp_path)
    assert [
        ("input", "project:42", None),
        ("output", f"folder:{RUN}", None),
        ("output", f"folder:{RUN}/weights", CHECKPOINTS),
    ] == _io(memory)
    declared = [("input", "project:42"), ("output", f"file:{RUN}/weights/best.pt")]
    assert declared[0] == _io(memory)[0][:2]


def test_a_serving_app_reads_the_checkpoint_folder(
    instance: FakeInstance, api: Any, memory: MemoryBackend, tmp_path: Path
) -> None:
    """yolov8 serve downloads the checkpoint it was given: the file is a model-weight input, and its folder is an
    input too (as the SDK's own serving framework records it), so the lineage joins the training that wrote the
    folder. Its serve/src/workflow.py (@43b67a6, scenario app_yolov8_serve) declares add_input_file(checkpoint,
    model_weight=True, meta=<node title>): the same file, plus the folder, without the title."""
    autolog()
    with wt.workflow_step("train"):
        _train(api, tmp_path)
    with wt.workflow_step("serve"):
        api.file.download(7, f"{RUN}/weights/best.pt", str(tmp_path / "best.pt"))
    served = [e for e in memory.events if e.kind == "input" and e.step.name == "serve"]
    assert [(f"folder:{RUN}/weights", False), (f"file:{RUN}/weights/best.pt", True)] == [
        (e.node.ref, getattr(e.node, "model_weight", False)) for e in served]
    trained = {e.node.ref for e in memory.events if e.kind == "output" and e.step.name == "train"}
    assert f"folder:{RUN}/weights" in trained  # the checkpoint folder joins the two runs


def test_an_uploaded_checkpoint_is_a_model_weight_in_its_folder(
    api: Any, memory: MemoryBackend, tmp_path: Path
) -> None:
    """api.file.upload of a checkpoint: its folder (Checkpoints card) and the file, marked as a model weight."""
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    autolog()
    with wt.workflow_step("s"):
        api.file.upload(7, str(weights), "/experiments/1/checkpoints/best.pt")
    assert [("output", "folder:/experiments/1/checkpoints", CHECKPOINTS),
            ("output", "file:/experiments/1/checkpoints/best.pt", None)] == _io(memory)
    assert [e.node.model_weight for e in memory.events if isinstance(e.node, wt.File)] == [True]


def test_mesh_audio_and_binary_project_functions_are_instrumented() -> None:
    """The mesh and audio modalities, and download_bin / upload_bin where the SDK implements them."""
    from supervisely.project.audio_project import AudioProject
    from supervisely.project.mesh_project import MeshProject

    autolog()
    for function in (sly.download_mesh_project, sly.upload_mesh_project, sly.download_audio_project,
                     sly.upload_audio_project):
        assert isinstance(function, wrapt.FunctionWrapper), function
    for cls, names in ((MeshProject, ("download", "upload")), (AudioProject, ("download", "upload")),
                       (sly.Project, ("download_bin", "upload_bin")), (sly.VideoProject, ("download_bin",
                                                                                         "upload_bin"))):
        for name in names:
            assert isinstance(vars(cls)[name], wrapt.FunctionWrapper), (cls, name)
    assert not isinstance(vars(MeshProject)["download_bin"], wrapt.FunctionWrapper)  # it only raises


# -- run_script ------------------------------------------------------------------------------------------


def test_run_script_passes_argv_and_returns_the_exit_code(tmp_path: Path, memory: MemoryBackend) -> None:
    """The script sees sys.argv = [path, *args] and runs as __main__; sys.exit(3) gives 3."""
    script = tmp_path / "job.py"
    script.write_text(
        "import sys\n"
        "assert __name__ == '__main__'\n"
        "print('args', sys.argv[1:])\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    saved = sys.argv[:]
    assert 3 == run_script(str(script), ["3"])
    assert 0 == run_script(str(script), ["0"])
    assert saved == sys.argv
    finished = [e for e in memory.events if e.kind == "step_finished"]
    assert [("job.py", "failed"), ("job.py", "ok")] == [(e.step.name, e.status) for e in finished]


def test_run_script_reports_an_uncaught_exception_like_python(
    tmp_path: Path, memory: MemoryBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    """An uncaught exception: traceback on stderr from the script's frame on, exit code 1, failed step."""
    script = tmp_path / "boom.py"
    script.write_text("def f():\n    raise ValueError('boom')\nf()\n")
    assert 1 == run_script(str(script))
    err = capsys.readouterr().err
    assert "ValueError: boom" in err
    assert "runpy" not in err
    [finished] = [e for e in memory.events if e.kind == "step_finished"]
    assert ("failed", "ValueError") == (finished.status, finished.error.type)


def test_run_script_needs_a_file(tmp_path: Path) -> None:
    """A missing script is a FileNotFoundError before anything runs."""
    with pytest.raises(FileNotFoundError, match="no such script"):
        run_script(str(tmp_path / "nope.py"))


# -- python -m workflow_trace run ------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workflow_trace", "run", *args], capture_output=True, text=True,
                          timeout=180, env={**os.environ, **(env or {})}, cwd=cwd)


def test_the_command_runs_the_unmodified_app_into_the_local_store(instance: FakeInstance, tmp_path: Path) -> None:
    """`python -m workflow_trace run examples/autolog_app.py`: exit 0, the app's edges in the store."""
    from workflow_trace.graph import load_graph

    db = tmp_path / "wf.db"
    out = _cli(str(APP), env={"WORKFLOW_TRACE_BACKEND": f"sqlite:///{db}"})
    assert 0 == out.returncode, out.stderr[-3000:]
    graph = load_graph(db)
    assert APP_EDGES == {(e.relation, e.data_key) for e in graph.edges}
    assert ["autolog_app.py"] == [t.label for t in graph.tasks]


def test_the_command_keeps_the_scripts_arguments_exit_code_and_traceback(tmp_path: Path) -> None:
    """Arguments (options too) reach the script; its exit code and uncaught traceback are Python's."""
    script = tmp_path / "s.py"
    script.write_text(
        "import sys\n"
        "print(sys.argv[1:])\n"
        "if sys.argv[1] == '--boom':\n"
        "    raise ValueError('boom')\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    env = {"WORKFLOW_TRACE_BACKEND": "memory"}
    assert (4, "['4']") == ((r := _cli(str(script), "4", env=env)).returncode, r.stdout.strip())
    failed = _cli(str(script), "--boom", env=env)
    assert (1, "['--boom']") == (failed.returncode, failed.stdout.strip())
    assert failed.stderr.startswith("Traceback (most recent call last):")
    assert failed.stderr.rstrip().endswith("ValueError: boom")
    missing = _cli(str(tmp_path / "nope.py"), env=env)
    assert 2 == missing.returncode
    assert "no such script" in missing.stderr
