"""The OpenLineage backend: the mapping to RunEvents, the spec schema, the HTTP transport and delivery."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import make_event

import workflow_trace as wt
from tests.httpserver import RecordingServer, Request
from tests.ol_server import SpecValidator
from workflow_trace._events import ErrorInfo, Event, StepRef, new_run_id
from workflow_trace._nodes import App, Dataset, File, Folder, Job, Node, Project, Task
from workflow_trace._transport import DeliveryError, Transport
from workflow_trace.backends.openlineage import (
    OpenLineageBackend,
    OpenLineageMapper,
    OpenLineageTransport,
    _parse_backend_string,
)

SERVER = "https://app.supervisely.com"
SERVER_NS = "supervisely://app.supervisely.com"  # its dataset namespace (the naming spec's scheme://authority)
SECRET = "s3cr3t-api-key-never-shown"
META = {
    "customRelationSettings": {"title": "<h4>Train</h4>", "mainLink": {"url": "/files/1", "title": "Open"}},
    "customNodeSettings": {
        "title": "<h4>Checkpoints</h4>",
        "icon": {"icon": "zmdi-folder", "color": "#ff4c9e", "backgroundColor": "#ffe3ed"},
    },
}

@pytest.fixture(autouse=True)
def _no_openlineage_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No openlineage.yml or OPENLINEAGE_* setting of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.startswith("OPENLINEAGE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def validate() -> SpecValidator:
    """A validator for RunEvents and their facets (tests/data: the 2-0-2 schema and the facet schemas)."""
    pytest.importorskip("jsonschema", reason="jsonschema is needed to check the spec")
    return SpecValidator()


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    """A recording OpenLineage endpoint on 127.0.0.1."""
    with RecordingServer(handler=lambda req: (201, {})) as srv:
        yield srv


def make_transport(server: RecordingServer, **kwargs: Any) -> OpenLineageTransport:
    kwargs.setdefault("server_address", SERVER)
    return OpenLineageTransport(server.url, **kwargs)


class Run:
    """Builds the events of one step, as the runtime emits them."""

    def __init__(self, name: str, *, task_id: int | None = 5, parent: Run | None = None) -> None:
        self.step = StepRef(
            run_id=new_run_id(), name=name, parent_run_id=parent.step.run_id if parent else None
        )
        self.task_id = task_id

    def started(self, *inputs: Node, meta: dict[str, Any] | None = None) -> list[Event]:
        return [make_event("step_started", self.task_id, self.step), *self.inputs(*inputs, meta=meta)]

    def inputs(self, *nodes: Node, meta: dict[str, Any] | None = None) -> list[Event]:
        return [make_event("input", self.task_id, self.step, node, meta) for node in nodes]

    def outputs(self, *nodes: Node, meta: dict[str, Any] | None = None) -> list[Event]:
        return [make_event("output", self.task_id, self.step, node, meta) for node in nodes]

    def finished(self, error: BaseException | None = None) -> list[Event]:
        if error is None:
            return [make_event("step_finished", self.task_id, self.step, status="ok")]
        info = ErrorInfo(type=type(error).__name__, message=str(error))
        return [make_event("step_finished", self.task_id, self.step, status="failed", error=info)]


def names(datasets: list[dict[str, Any]]) -> list[str]:
    return [d["name"] for d in datasets]


ALL_INPUTS: list[Node] = [
    Project(id=42),
    Project(id=43, version_id=901, version_num=3),
    Project(id=44, version_num=2),
    Project(path="/data/local_project"),
    Dataset(id=7),
    File(id=3),
    File(path="/models/best.pt", model_weight=True),
    File(id=4, path="/reports/report.json"),
    Folder(path="/checkpoints/run1"),
    Task(id=12),
    Job(id=11),
]
ALL_OUTPUTS: list[Node] = [*ALL_INPUTS, App()]


class TestSchema:
    """Every RunEvent the backend produces is valid OpenLineage 2-0-2."""

    def test_every_node_kind_start_running_complete(
        self, server: RecordingServer, validate: SpecValidator
    ) -> None:
        """START, RUNNING and COMPLETE with every node kind, facet and card validate."""
        transport = make_transport(server)
        run = Run("train")
        transport.send(run.started(*ALL_INPUTS, meta=META))
        transport.send(run.outputs(*ALL_OUTPUTS, meta=META))
        transport.send(run.finished())
        bodies = server.bodies("/api/v1/lineage")
        assert [b["eventType"] for b in bodies] == ["START", "RUNNING", "COMPLETE"]
        for body in bodies:
            validate(body)
        expected_facets = {
            "processing_engine", "jobType", "version", "workflowTrace_modelWeight", "workflowTrace_card",
            "workflowTrace_task",
        }
        assert expected_facets == validate.checked_facets

    def test_nested_and_failed(self, server: RecordingServer, validate: SpecValidator) -> None:
        """Nested steps (parent and root facets) and a failed step (errorMessage) validate."""
        transport = make_transport(server)
        outer = Run("pipeline")
        middle = Run("prepare", parent=outer)
        inner = Run("convert", parent=middle)
        transport.send(outer.started(Project(id=1)))
        transport.send(middle.started(Dataset(id=2)))
        transport.send(inner.started())
        transport.send(inner.finished(ValueError("bad label")))
        transport.send(middle.finished(ValueError("bad label")))
        transport.send(outer.finished(ValueError("bad label")))
        bodies = server.bodies()
        assert len(bodies) == 6
        for body in bodies:
            validate(body)
        assert {"parent", "errorMessage", "workflowTrace_task"} <= validate.checked_facets

    def test_no_task_id(self, server: RecordingServer, validate: SpecValidator) -> None:
        """Without a task, there is no task facet, the job is the step name and the app node is named after
        the run."""
        transport = make_transport(server)
        run = Run("local", task_id=None)
        transport.send(run.started() + run.outputs(App()) + run.finished())
        bodies = server.bodies()
        for body in bodies:
            validate(body)
            assert {"processing_engine"} == set(body["run"]["facets"])
            assert body["job"]["name"] == "local"
        assert names(bodies[-1]["outputs"]) == [f"app/{run.step.run_id}"]


class TestMapping:
    """How steps become runs and nodes become datasets."""

    def test_dataset_names(self) -> None:
        """Stable names; the server's namespace (supervisely://host) for id-based nodes and team Files paths."""
        mapper = OpenLineageMapper(server_address="https://App.Supervisely.com/", hostname="gpu-box")
        cases: list[tuple[Node, tuple[str, str]]] = [
            (Project(id=42), (SERVER_NS, "project/42")),
            (Project(id=42, version_id=901), (SERVER_NS, "project/42")),
            (Project(path="/data/p"), ("file://gpu-box", "/data/p")),
            (Dataset(id=7), (SERVER_NS, "dataset/7")),
            (File(id=3), (SERVER_NS, "file/3")),
            (File(path="/models/best.pt"), (SERVER_NS, "file/models/best.pt")),
            (File(id=3, path="/models/./best.pt"), (SERVER_NS, "file/models/best.pt")),
            (Folder(path="/checkpoints/"), (SERVER_NS, "folder/checkpoints")),
            (Task(id=5), (SERVER_NS, "task/5")),
            (Job(id=11), (SERVER_NS, "job/11")),
            (App(), (SERVER_NS, "app/5")),
        ]
        actual = [(node, mapper.dataset_identity(node, task_id=5)) for node, _ in cases]
        assert cases == actual

    def test_local_paths(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a server, and for relative paths, paths are local files on this host, named as the
        naming spec names files: ``file://<host>`` and the absolute path."""
        monkeypatch.chdir(tmp_path)
        local = OpenLineageMapper(hostname="gpu-box")
        remote = OpenLineageMapper(server_address=SERVER, hostname="gpu-box")
        base = tmp_path.as_posix()
        expected = [
            ("file://gpu-box", "/models/best.pt"),
            ("file://gpu-box", f"{base}/out/best.pt"),
            ("file://gpu-box", f"{base}/out"),
            ("supervisely", "project/42"),
        ]
        actual = [
            local.dataset_identity(File(path="/models/best.pt")),
            remote.dataset_identity(File(path="out/best.pt")),
            remote.dataset_identity(Folder(path="out")),
            local.dataset_identity(Project(id=42)),
        ]
        assert expected == actual

    def test_dataset_facets(self) -> None:
        """Project versions, model weights and cards become facets."""
        mapper = OpenLineageMapper(server_address=SERVER)
        run = Run("train")
        [versioned] = mapper.datasets(run.inputs(Project(id=43, version_id=901))[0], "input")
        [numbered] = mapper.datasets(run.inputs(Project(id=43, version_num=3))[0], "input")
        [weights] = mapper.datasets(run.outputs(File(path="/m.pt", model_weight=True), meta=META)[0], "output")
        assert versioned is not None
        assert numbered is not None
        assert weights is not None
        assert versioned["facets"]["version"]["datasetVersion"] == "901"
        assert numbered["facets"]["version"]["datasetVersion"] == "v3"
        assert weights["facets"]["workflowTrace_modelWeight"]["modelWeight"] is True
        card = weights["facets"]["workflowTrace_card"]
        assert META["customNodeSettings"] == {k: v for k, v in card.items() if not k.startswith("_")}
        relation = weights["outputFacets"]["workflowTrace_card"]
        assert META["customRelationSettings"] == {k: v for k, v in relation.items() if not k.startswith("_")}

    def test_start_carries_inputs_complete_carries_everything(self, server: RecordingServer) -> None:
        """START has the inputs known at open; COMPLETE every input and output of the run."""
        transport = make_transport(server)
        run = Run("train")
        transport.send(run.started(Project(id=1), File(path="/init.pt")))
        transport.send(run.inputs(Dataset(id=2)))
        transport.send(run.outputs(File(path="/best.pt")))
        transport.send(run.finished())
        start, running_in, running_out, complete = server.bodies()
        assert (
            start["eventType"], names(start["inputs"]), names(start["outputs"])
        ) == ("START", ["project/1", "file/init.pt"], [])
        assert (running_in["eventType"], names(running_in["inputs"])) == ("RUNNING", ["dataset/2"])
        assert (running_out["eventType"], names(running_out["outputs"])) == ("RUNNING", ["file/best.pt"])
        assert (
            complete["eventType"], names(complete["inputs"]), names(complete["outputs"])
        ) == ("COMPLETE", ["project/1", "file/init.pt", "dataset/2"], ["file/best.pt"])
        assert {run.step.run_id} == {b["run"]["runId"] for b in server.bodies()}
        jobs = {(b["job"]["namespace"], b["job"]["name"]) for b in server.bodies()}
        assert jobs == {("workflow_trace", "task_5.train")}

    def test_one_batch_folds(self, server: RecordingServer) -> None:
        """A whole run in one batch (a replayed spool) is a START and a COMPLETE, nothing lost."""
        transport = make_transport(server)
        run = Run("convert")
        batch = run.started(Project(id=1)) + run.inputs(Job(id=3)) + run.outputs(Project(id=2))
        transport.send(batch + run.finished())
        start, complete = server.bodies()
        assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
        expected = (["project/1", "job/3"], ["project/2"])
        assert expected == (names(complete["inputs"]), names(complete["outputs"]))

    def test_duplicates_are_merged(self, server: RecordingServer) -> None:
        """The same input twice (e.g. a retried batch) is listed once in COMPLETE."""
        transport = make_transport(server)
        run = Run("eval")
        transport.send(run.started(Project(id=1)))
        transport.send(run.inputs(Project(id=1)))
        transport.send(run.finished())
        assert names(server.bodies()[-1]["inputs"]) == ["project/1"]

    def test_event_times(self, server: RecordingServer) -> None:
        """eventTime is the time of the workflow_trace event, in ISO 8601 with a timezone."""
        transport = make_transport(server)
        run = Run("t")
        started, finished = run.started()[0], run.finished()[0]
        transport.send([started])
        transport.send([finished])
        times = [b["eventTime"] for b in server.bodies()]
        assert [started.time.isoformat(), finished.time.isoformat()] == times
        assert all(t.endswith("+00:00") for t in times)

    def test_parent_and_root(self, server: RecordingServer) -> None:
        """A nested run names its parent run and job, and the outermost run as root."""
        transport = make_transport(server)
        outer = Run("pipeline")
        middle = Run("prepare", parent=outer)
        inner = Run("convert", parent=middle)
        for run in (outer, middle, inner):
            transport.send(run.started())
        bodies = server.bodies()
        assert "parent" not in bodies[0]["run"].get("facets", {})
        middle_parent = bodies[1]["run"]["facets"]["parent"]
        assert ({"runId": outer.step.run_id}, {"namespace": "workflow_trace", "name": "task_5.pipeline"}) == (
            middle_parent["run"], middle_parent["job"]
        )
        assert "root" not in middle_parent
        inner_parent = bodies[2]["run"]["facets"]["parent"]
        assert (middle.step.run_id, "task_5.prepare") == (inner_parent["run"]["runId"], inner_parent["job"]["name"])
        assert (outer.step.run_id, "task_5.pipeline") == (
            inner_parent["root"]["run"]["runId"], inner_parent["root"]["job"]["name"]
        )

    def test_parent_unknown_to_this_process(self, server: RecordingServer) -> None:
        """A parent seen by another process (a restart) is named after the task, else 'unknown'."""
        transport = make_transport(server)
        ghost = Run("gone")
        transport.send(Run("child", parent=ghost).started())
        transport.send(Run("orphan", parent=ghost, task_id=None).started())
        parents = [b["run"]["facets"]["parent"] for b in server.bodies()]
        assert [("task/5", ghost.step.run_id), ("unknown", ghost.step.run_id)] == [
            (p["job"]["name"], p["run"]["runId"]) for p in parents
        ]

    def test_failed_step(self, server: RecordingServer) -> None:
        """A failed step is a FAIL with the exception type and message, and no stack."""
        transport = make_transport(server)
        run = Run("train")
        transport.send(run.started(Project(id=1)))
        transport.send(run.finished(RuntimeError("CUDA out of memory")))
        fail = server.bodies()[-1]
        assert fail["eventType"] == "FAIL"
        error = fail["run"]["facets"]["errorMessage"]
        assert {
            k: v for k, v in error.items() if not k.startswith("_")
        } == {"message": "RuntimeError: CUDA out of memory", "programmingLanguage": "python"}
        assert names(fail["inputs"]) == ["project/1"]

    def test_same_dataset_names_across_runs(self, server: RecordingServer) -> None:
        """What one run writes is, by namespace and name, what the next run reads: the graph joins."""
        transport = make_transport(server)
        train, serve = Run("train", task_id=5), Run("serve", task_id=6)
        transport.send(train.started(Project(id=42, version_id=901)))
        checkpoint = File(id=77, path="/models/best.pt", model_weight=True)
        transport.send(train.outputs(checkpoint) + train.finished())
        transport.send(serve.started(File(path="/models/best.pt", model_weight=True)) + serve.finished())
        completes = [b for b in server.bodies() if b["eventType"] == "COMPLETE"]
        written = {(d["namespace"], d["name"]) for d in completes[0]["outputs"]}
        read = {(d["namespace"], d["name"]) for d in completes[1]["inputs"]}
        assert {(SERVER_NS, "file/models/best.pt")} == written == read


class TestTransport:
    """The HTTP side: endpoint, headers, errors, secrets."""

    def test_is_a_transport(self, server: RecordingServer) -> None:
        """It implements the delivery layer's Transport protocol; the key names the endpoint."""
        transport = make_transport(server, api_key=SECRET)
        assert isinstance(transport, Transport)
        assert f"openlineage:{server.url}/api/v1/lineage" == transport.key

    def test_start_then_complete_with_bearer(self, server: RecordingServer) -> None:
        """The server receives START then COMPLETE for each run, as JSON, with the Bearer token."""
        transport = make_transport(server, api_key=SECRET, endpoint="/custom/lineage/")
        runs = [Run("a"), Run("b")]
        for run in runs:
            transport.send(run.started(Dataset(id=1)))
            transport.send(run.finished())
        transport.close()
        with server.lock:
            requests_ = list(server.requests)
        assert {("POST", "/custom/lineage")} == {(r.method, r.path) for r in requests_}
        assert {f"Bearer {SECRET}"} == {r.headers.get("Authorization") for r in requests_}
        assert {"application/json"} == {r.headers.get("Content-Type") for r in requests_}
        expected = [(run.step.run_id, kind) for run in runs for kind in ("START", "COMPLETE")]
        assert expected == [(r.json()["run"]["runId"], r.json()["eventType"]) for r in requests_]

    def test_no_token_no_header(self, server: RecordingServer) -> None:
        """Without an api key there is no Authorization header."""
        transport = make_transport(server)
        transport.send(Run("a").started())
        assert [r.headers.get("Authorization") for r in server.requests] == [None]

    def test_server_down_is_retryable_and_secret_stays_secret(self, caplog: pytest.LogCaptureFixture) -> None:
        """A refused connection is a retryable DeliveryError; the key is in no error, repr or log."""
        caplog.set_level("DEBUG", logger="workflow_trace")
        server = RecordingServer().start()
        server.stop()
        transport = OpenLineageTransport(f"http://user:pw@127.0.0.1:{server.port}", api_key=SECRET)
        with pytest.raises(DeliveryError) as info:
            transport.send(Run("a").started())
        assert (info.value.retryable, info.value.delivered) == (True, 0)
        texts = [str(info.value), repr(transport), transport.key, caplog.text]
        assert [t for t in texts if SECRET in t or "pw@" in t] == []
        assert "api_key=***" in repr(transport)

    @pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (400, False)])
    def test_http_errors(self, status: int, retryable: bool) -> None:
        """HTTP errors are classified for retry; ``delivered`` counts the events already accepted."""
        calls: list[Request] = []

        def handler(req: Request) -> tuple[Any, ...]:
            calls.append(req)
            return (200, {}) if len(calls) == 1 else (status, {"error": "nope"}, {"Retry-After": "3"})

        with RecordingServer(handler=handler) as srv:
            transport = OpenLineageTransport(srv.url, api_key=SECRET)
            run = Run("a")
            batch = run.started(Project(id=1)) + run.outputs(Project(id=2)) + run.finished()
            with pytest.raises(DeliveryError) as info:
                transport.send(batch)
        assert (retryable, 2) == (info.value.retryable, info.value.delivered)
        assert (3.0 if retryable else None) == info.value.retry_after
        assert f"HTTP {status}" in str(info.value)
        assert SECRET not in str(info.value)

    def test_retry_of_the_rest_completes_with_everything(self) -> None:
        """After a partial failure, resending the undelivered tail gives a COMPLETE with every dataset."""
        fail_next = [False, True]

        def handler(req: Request) -> tuple[Any, ...]:
            return (503, {}) if fail_next and fail_next.pop(0) else (200, {})

        with RecordingServer(handler=handler) as srv:
            transport = OpenLineageTransport(srv.url)
            run = Run("a")
            batch = run.started(Project(id=1)) + run.outputs(Project(id=2)) + run.finished()
            with pytest.raises(DeliveryError) as info:
                transport.send(batch)
            transport.send(batch[info.value.delivered:])
            bodies = srv.bodies()
        assert [b["eventType"] for b in bodies] == ["START", "COMPLETE"]
        assert (names(bodies[1]["inputs"]), names(bodies[1]["outputs"])) == (["project/1"], ["project/2"])

    def test_bad_url(self) -> None:
        """A URL that is not http(s) is refused at construction."""
        from workflow_trace._errors import ConfigurationError

        with pytest.raises(ConfigurationError, match="http"):
            OpenLineageTransport("ftp://host")


class TestBackendString:
    """Parsing ``openlineage+http://...`` and ``openlineage`` with OPENLINEAGE_URL."""

    def test_forms(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The URL comes from the string, or (``None``) from the OpenLineage configuration; options from the
        query."""
        expected = [
            ("http://localhost:5000", {}),
            ("https://lineage.example.com/prefix", {"namespace": "ml", "endpoint": "api/v2/lineage"}),
            (None, {}),
            (None, {"namespace": "x"}),
        ]
        actual = [
            _parse_backend_string("openlineage+http://localhost:5000"),
            _parse_backend_string(
                "OpenLineage+HTTPS://lineage.example.com/prefix?namespace=ml&endpoint=api/v2/lineage"
            ),
            _parse_backend_string("openlineage"),
            _parse_backend_string("openlineage://?namespace=x"),
        ]
        assert expected == actual

    @pytest.mark.parametrize(
        ("spec", "match"),
        [
            ("openlineage+ftp://host", "openlineage\\+http"),
            ("openlineage:host:5000", "openlineage\\+http"),
            ("openlineage+http://host?api_key=x", "OPENLINEAGE_API_KEY"),
            ("openlineage+http://host?colour=red", "unknown option"),
        ],
    )
    def test_refused(self, spec: str, match: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """Bad backend strings are refused with a message that says what to write."""
        from workflow_trace._errors import ConfigurationError

        monkeypatch.delenv("OPENLINEAGE_URL", raising=False)
        with pytest.raises(ConfigurationError, match=match):
            _parse_backend_string(spec)

    @pytest.mark.parametrize("spec", ["openlineage+http://127.0.0.1:notaport", "openlineage+http://127.0.0.1:99999",
                                      "openlineage+http://:5000"])
    def test_a_bad_host_or_port_is_refused_at_configure(self, spec: str) -> None:
        """DESIGN.md 7: a bad backend string is refused at configure(), naming it (it was accepted, and every
        delivery failed later)."""
        with pytest.raises(wt.ConfigurationError, match=r"backend .*http\(s\)://host\[:port\]"):
            wt.configure(spec)

    def test_nothing_configured(self) -> None:
        """``openlineage`` with no OPENLINEAGE_URL and no openlineage.yml says what to set."""
        from workflow_trace._errors import ConfigurationError

        with pytest.raises(ConfigurationError, match=r"OPENLINEAGE_URL.*openlineage\.yml"):
            OpenLineageBackend.from_url("openlineage")


FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "breaker_cooldown": 0.05, "spool_poll": 0.05}


def run_events(bodies: list[dict[str, Any]]) -> dict[str, str]:
    """The event types each run received, in order, with RUNNING events (which depend on how the
    delivery layer batched the events) left out: ``{run id: "START COMPLETE"}``."""
    out: dict[str, list[str]] = {}
    for body in bodies:
        if body["eventType"] != "RUNNING":
            out.setdefault(body["run"]["runId"], []).append(body["eventType"])
    return {run_id: " ".join(types) for run_id, types in out.items()}


def final(bodies: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    """The COMPLETE or FAIL event of a run."""
    (body,) = [b for b in bodies if b["run"]["runId"] == run.step.run_id and b["eventType"] in ("COMPLETE", "FAIL")]
    return body


class TestBackend:
    """OpenLineageBackend: the transport behind the delivery layer (queue, spool, retries, order)."""

    def test_delivers_in_the_background(self, server: RecordingServer, tmp_path: Path) -> None:
        """emit() only queues; flush() waits until the server has START then COMPLETE of every run."""

        backend = OpenLineageBackend(server.url, api_key=SECRET, spool_path=tmp_path / "spool.db", **FAST)
        runs = [Run(f"step{i}") for i in range(3)]
        try:
            for run in runs:
                backend.emit(run.started(Project(id=1)))
                backend.emit(run.outputs(File(path="/out.pt")))
                backend.emit(run.finished())
            assert backend.flush(10)
        finally:
            backend.close()
        bodies = server.bodies()
        assert {run.step.run_id: "START COMPLETE" for run in runs} == run_events(bodies)
        assert [names(final(bodies, run)["outputs"]) for run in runs] == [["/out.pt"]] * 3
        assert {f"Bearer {SECRET}"} == {r.headers.get("Authorization") for r in server.requests}

    def test_server_down_spooled_then_delivered_once_in_order(self, tmp_path: Path) -> None:
        """While the server is down events wait in the spool (without the key); then each is sent once."""

        server = RecordingServer().start()
        server.stop()
        spool = tmp_path / "spool.db"
        backend = OpenLineageBackend(server.url, api_key=SECRET, spool_path=spool, **FAST)
        runs = [Run(f"step{i}") for i in range(4)]
        try:
            for run in runs:
                backend.emit(run.started(Project(id=1)))
                backend.emit(run.outputs(Project(id=2)) + run.finished())
            assert not backend.flush(0.5)
            assert spool.exists()
            assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.rglob("spool.db*") if p.is_file())
            server.start()
            assert backend.flush(15)
        finally:
            backend.close()
            server.stop()
        bodies = server.bodies()
        assert {run.step.run_id: "START COMPLETE" for run in runs} == run_events(bodies)
        assert len(bodies) == len({json.dumps(b, sort_keys=True) for b in bodies}), "an event was sent twice"
        assert [run.step.run_id for run in runs] == list(dict.fromkeys(b["run"]["runId"] for b in bodies))

    def test_next_process_delivers_what_was_left(self, tmp_path: Path, validate: SpecValidator) -> None:
        """Events spooled by a backend closed while the server was down are delivered by the next one."""

        server = RecordingServer().start()
        server.stop()
        spool = tmp_path / "spool.db"
        first = OpenLineageBackend(server.url, spool_path=spool, **FAST)
        run = Run("train")
        first.emit(run.started(Project(id=1)))
        first.emit(run.outputs(File(path="/best.pt", model_weight=True)))
        first.emit(run.finished())
        first.flush(0.2)
        first.close()
        server.start()
        second = OpenLineageBackend(server.url, spool_path=spool, **FAST)
        try:
            # flush() waits for this process's own events only: wait for the left-over ones to arrive.
            deadline = time.monotonic() + 15
            while len(server.bodies()) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert second.flush(15)
        finally:
            second.close()
            server.stop()
        bodies = server.bodies()
        for body in bodies:
            validate(body)
        assert {run.step.run_id: "START COMPLETE"} == run_events(bodies)
        assert names(final(bodies, run)["outputs"]) == ["/best.pt"]

    def test_backend_strings(
        self, server: RecordingServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """``openlineage+http://...`` and ``openlineage`` + OPENLINEAGE_URL; the key from the environment."""
        from workflow_trace.backends import create_backend

        monkeypatch.setenv("WORKFLOW_TRACE_SPOOL", str(tmp_path / "spool.db"))
        monkeypatch.setenv("OPENLINEAGE_API_KEY", SECRET)
        monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "ml-team")
        monkeypatch.setenv("OPENLINEAGE_URL", server.url)
        port = server.url.rsplit(":", 1)[1]
        backends = [
            create_backend(f"openlineage+http://127.0.0.1:{port}"),
            create_backend("openlineage"),
            create_backend(f"openlineage+http://127.0.0.1:{port}?namespace=other"),
        ]
        try:
            assert all(isinstance(b, OpenLineageBackend) for b in backends)
            for backend in backends:
                assert SECRET not in repr(backend)
                backend.emit(Run("a").started())
                assert backend.flush(10)
        finally:
            for backend in backends:
                backend.close()
        assert [b["job"]["namespace"] for b in server.bodies()] == ["ml-team", "ml-team", "other"]
        assert {f"Bearer {SECRET}"} == {r.headers.get("Authorization") for r in server.requests}


def test_pipeline_through_the_public_api(server: RecordingServer, tmp_path: Path, validate: SpecValidator) -> None:
    """Decorators and steps, configured with OpenLineageBackend, give valid runs a lineage server joins."""
    import workflow_trace as wt

    backend = OpenLineageBackend(
        server.url, api_key=SECRET, spool_path=tmp_path / "spool.db", server_address=SERVER, **FAST
    )
    wt.configure(backend=backend, strict=True)

    @wt.consumes_project
    @wt.produces_file(model_weight=True)
    def train(project_id: int) -> str:
        return "/models/best.pt"

    @wt.consumes_file
    def serve(file_path: str) -> None:
        raise RuntimeError("no GPU")

    with wt.workflow_step("pipeline", task_id=5):
        with wt.workflow_step("prepare") as prepare:
            prepare.add_input(wt.Dataset(id=7))
            prepare.add_output(wt.Project(id=43))
        train(43)
    with pytest.raises(RuntimeError, match="no GPU"):
        serve("/models/best.pt")
    assert wt.flush(10)
    bodies = server.bodies()
    for body in bodies:
        validate(body)
    by_job: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        by_job.setdefault(body["job"]["name"].rsplit(".", 1)[-1], []).append(body)
    assert {"pipeline", "prepare", "serve"} == set(by_job)
    assert [b["eventType"] for b in by_job["pipeline"] if b["eventType"] != "RUNNING"] == ["START", "COMPLETE"]
    pipeline, prepare_done, serve_done = (by_job[n][-1] for n in ("pipeline", "prepare", "serve"))
    assert (names(pipeline["inputs"]), names(pipeline["outputs"])) == (["project/43"], ["file/models/best.pt"])
    parent = prepare_done["run"]["facets"]["parent"]
    assert (pipeline["run"]["runId"], "task_5.pipeline") == (parent["run"]["runId"], parent["job"]["name"])
    assert (names(prepare_done["inputs"]), names(prepare_done["outputs"])) == (["dataset/7"], ["project/43"])
    assert serve_done["eventType"] == "FAIL"
    assert serve_done["run"]["facets"]["errorMessage"]["message"] == "RuntimeError: no GPU"
    # What training wrote is what serving read: one dataset, so the lineage server joins the two runs.
    assert pipeline["outputs"][0]["namespace"] == serve_done["inputs"][0]["namespace"] == SERVER_NS
    assert pipeline["outputs"][0]["name"] == serve_done["inputs"][0]["name"]
    assert {f"Bearer {SECRET}"} == {r.headers.get("Authorization") for r in server.requests}


def test_a_script_pointed_at_an_endpoint_by_environment(server: RecordingServer, tmp_path: Path) -> None:
    """WORKFLOW_TRACE_BACKEND=openlineage + OPENLINEAGE_URL, nothing in the code: delivered by exit."""
    import subprocess
    import sys

    script = (
        "import workflow_trace as wt\n"
        "@wt.consumes_project\n"
        "@wt.produces_file\n"
        "def train(project_id): return '/models/best.pt'\n"
        "train(42)\n"
    )
    env = {
        **os.environ,
        "WORKFLOW_TRACE_BACKEND": "openlineage",
        "OPENLINEAGE_URL": server.url,
        "OPENLINEAGE_API_KEY": SECRET,
        "OPENLINEAGE_NAMESPACE": "quickstart",
        "WORKFLOW_TRACE_SPOOL": str(tmp_path / "spool.db"),
        "TASK_ID": "12",
        "SERVER_ADDRESS": SERVER,
        # the package under test (this checkout), not whichever copy is installed
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                    os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stderr
    bodies = server.bodies()
    assert [b["eventType"] for b in bodies if b["eventType"] != "RUNNING"] == ["START", "COMPLETE"]
    assert {"quickstart"} == {b["job"]["namespace"] for b in bodies}
    complete = bodies[-1]
    assert (names(complete["inputs"]), names(complete["outputs"])) == (["project/42"], ["file/models/best.pt"])
    assert complete["run"]["facets"]["workflowTrace_task"]["taskId"] == 12
