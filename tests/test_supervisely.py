"""The Supervisely backend against a real HTTP server on 127.0.0.1 that answers like an instance.

The request bodies are compared, byte for byte and key order included, with the requests the official
SDK (6.74.51) sent for the same calls (``tests/data/sdk_requests.jsonl``, recorded by ``tests/sdk_recording``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _supervisely_fake import TOKEN, FakeInstance
from _support import make_event
from httpserver import RecordingServer, Request

import workflow_trace as wt
from workflow_trace._events import Event, StepRef, new_run_id
from workflow_trace._meta import WorkflowMeta, WorkflowSettings, meta_to_wire
from workflow_trace._nodes import App, Dataset, File, Folder, Job, Node, Project, Task
from workflow_trace._transport import DeliveryError, Transport
from workflow_trace.backends.supervisely import SuperviselyBackend, SuperviselyTransport

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "sdk_requests.jsonl"


@pytest.fixture
def instance() -> Iterator[FakeInstance]:
    """A fake instance listening on 127.0.0.1."""
    fake = FakeInstance()
    fake.server.start()
    try:
        yield fake
    finally:
        fake.server.stop()


@pytest.fixture
def transport(instance: FakeInstance) -> Iterator[SuperviselyTransport]:
    """A transport pointed at the fake instance (team id asked per task)."""
    t = SuperviselyTransport(instance.url, TOKEN, timeout=5)
    try:
        yield t
    finally:
        t.close()


def event(kind: str, node: Node | None = None, *, task_id: int | None = 5, meta: Any = None) -> Event:
    """One event of a step called ``test``."""
    return make_event(
        kind,  # type: ignore[arg-type]
        task_id,
        StepRef(run_id=new_run_id(), name="test"),
        node=node,
        meta=meta_to_wire(meta),
    )


# -- the golden requests ---------------------------------------------------------------------------


def load_golden() -> list[dict[str, Any]]:
    return [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]


def golden_by_seq() -> dict[int, dict[str, Any]]:
    return {rec["seq"]: rec for rec in load_golden()}


_META_33 = WorkflowMeta(
    relation_settings=WorkflowSettings(
        title="Train", description="epoch 10", icon="folder", icon_color="#333333",
        icon_bg_color="#FFFFFF", url="/files/789", url_title="Open file",
    ),
    node_settings=WorkflowSettings(title="Node only"),
)

#: seq of the SDK's request -> the event that must produce the same request.
GOLDEN_EDGES: dict[int, tuple[str, Node, int, Any]] = {
    6: ("input", Project(id=123), 5, None),
    7: ("input", Project(id=123, version_id=77), 5, None),
    9: ("input", Project(id=123, version_num=3), 5, None),
    11: ("input", Project(id=124), 5, None),
    12: ("input", Dataset(id=456), 5, None),
    13: ("input", Dataset(id=457), 5, None),
    14: ("input", File(id=789), 5, None),
    15: ("input", File(id=789, model_weight=True), 5, None),
    16: ("input", File(id=790, path="/models/run0/weights.pt"), 5, None),
    17: ("input", Folder(path="experiments/run1"), 5, None),
    18: ("input", Task(id=42), 5, None),
    19: ("input", Job(id=11), 5, None),
    20: ("output", Project(id=125), 5, None),
    21: ("output", Project(id=125, version_id=78), 5, None),
    22: ("output", Dataset(id=458), 5, None),
    23: ("output", File(id=791), 5, None),
    24: ("output", File(id=790, model_weight=True), 5, None),
    25: ("output", Folder(path="/experiments/run1/"), 5, None),
    26: ("output", App(), 5, None),
    27: ("output", Task(id=43), 5, None),
    28: ("output", Job(id=12), 5, None),
    29: ("output", Task(id=44), 6, None),
    33: ("output", File(id=791), 5, _META_33),
    34: ("input", Dataset(id=456), 5, {"customNodeSettings": {"title": "<h4>raw</h4>"}}),
    35: ("input", Dataset(id=456), 5, {}),
    36: ("input", Dataset(id=456), 5, WorkflowMeta()),
    37: ("output", App(), 5, {"customNodeSettings": {
        "title": "<h4>Serve</h4>", "mainLink": {"url": "/apps/sessions/5", "title": "open"},
    }}),
}


def assert_same_request(golden: dict[str, Any], req: Request) -> None:
    """Same path, same JSON with the same key order, same bytes, and the SDK's headers."""
    assert golden["path"] == req.path
    assert golden["body_json"] == json.loads(req.body)
    assert list(_key_paths(golden["body_json"])) == list(_key_paths(json.loads(req.body)))
    assert golden["body_raw"].encode() == req.body
    assert req.headers["x-api-key"] == TOKEN
    assert req.headers["Content-Type"] == "application/json"


def _key_paths(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{prefix}/{key}"
            yield from _key_paths(item, f"{prefix}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _key_paths(item, f"{prefix}/{index}")


class TestGoldenBodies:
    """Every node kind and option gives the SDK's request."""

    @pytest.mark.parametrize("seq", sorted(GOLDEN_EDGES))
    def test_each_edge_is_the_sdks_request(
        self, seq: int, instance: FakeInstance, transport: SuperviselyTransport
    ) -> None:
        """One event -> one request identical to the SDK's."""
        golden = golden_by_seq()[seq]
        kind, node, task_id, meta = GOLDEN_EDGES[seq]
        transport.send([event(kind, node, task_id=task_id, meta=meta)])
        edges = instance.edges()
        assert len(edges) == 1
        assert_same_request(golden, edges[0])

    def test_a_whole_session_matches_in_order(
        self, instance: FakeInstance, transport: SuperviselyTransport
    ) -> None:
        """All the plain scenario's edges in one batch: the same requests in the same order."""
        records = golden_by_seq()
        seqs = [s for s in sorted(GOLDEN_EDGES) if s < 31]
        plain = [GOLDEN_EDGES[s] for s in seqs]
        transport.send([event(kind, node, task_id=task) for kind, node, task, _ in plain])
        edges = instance.edges()
        assert len(seqs) == len(edges)
        for seq, req in zip(seqs, edges, strict=True):
            assert_same_request(records[seq], req)

    def test_lookups_are_the_sdks_requests(
        self, instance: FakeInstance, transport: SuperviselyTransport
    ) -> None:
        """instance.version, tasks.info and projects.versions.list bodies are the SDK's."""
        records = golden_by_seq()
        transport.send([event("input", Project(id=123, version_num=3))])
        assert_same_request(records[4], instance.calls("instance.version")[0])
        assert_same_request(records[5], instance.calls("tasks.info")[0])
        assert_same_request(records[8], instance.calls("projects.versions.list")[0])
        assert_same_request(records[9], instance.edges()[0])

    def test_no_task_header_without_a_task_in_the_environment(
        self, instance: FakeInstance, transport: SuperviselyTransport
    ) -> None:
        """Like the SDK in the explicit-task scenario: no x-task-id header."""
        transport.send([event("input", Dataset(id=1))])
        assert all("x-task-id" not in r.headers for r in instance.calls())

    def test_task_header_from_the_environment(self, instance: FakeInstance) -> None:
        """The environment's task id is sent as x-task-id on every request, as the SDK does."""
        t = SuperviselyTransport(instance.url, TOKEN, task_header=5)
        t.send([event("input", Dataset(id=1))])
        t.close()
        assert [r.headers.get("x-task-id") for r in instance.calls()] == ["5", "5", "5"]


# -- behaviour --------------------------------------------------------------------------------------


def test_the_transport_follows_the_contract(transport: SuperviselyTransport, instance: FakeInstance) -> None:
    """A Transport whose key names the server and nothing secret."""
    assert isinstance(transport, Transport)
    assert f"supervisely:{instance.url}" == transport.key


def test_team_id_is_asked_once_per_task(instance: FakeInstance, transport: SuperviselyTransport) -> None:
    """tasks.info once for task 5 and once for task 6, however many events and batches."""
    transport.send([event("input", Dataset(id=1)), event("output", Dataset(id=2))])
    transport.send([event("input", Dataset(id=3)), event("input", Dataset(id=4), task_id=6)])
    transport.send([event("output", Dataset(id=5), task_id=6)])
    assert [r.json() for r in instance.calls("tasks.info")] == [{"id": 5}, {"id": 6}]
    assert len(instance.edges()) == 5


def test_a_given_team_id_spares_the_request(instance: FakeInstance) -> None:
    """With team_id (TEAM_ID) no tasks.info at all."""
    t = SuperviselyTransport(instance.url, TOKEN, team_id=9)
    t.send([event("input", Dataset(id=1))])
    assert instance.calls("tasks.info") == []
    assert instance.edges()[0].json()["teamId"] == 9


def test_the_instance_version_is_asked_once(instance: FakeInstance, transport: SuperviselyTransport) -> None:
    """A good version is remembered."""
    for i in range(3):
        transport.send([event("input", Dataset(id=i))])
    assert len(instance.calls("instance.version")) == 1


def test_step_events_are_not_sent(instance: FakeInstance, transport: SuperviselyTransport) -> None:
    """step_started / step_finished have no place on the server: nothing is asked for them."""
    transport.send([event("step_started"), event("step_finished")])
    assert instance.calls() == []


def test_events_without_a_task_are_skipped_with_a_warning(
    instance: FakeInstance, transport: SuperviselyTransport, caplog: pytest.LogCaptureFixture
) -> None:
    """An edge needs a task: the event is skipped, a WARNING says how many and why; the rest is sent."""
    with caplog.at_level(logging.WARNING):
        transport.send([event("input", Dataset(id=1), task_id=None), event("input", Dataset(id=2))])
    assert [r.json()["id"] for r in instance.edges()] == [2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "1 event(s)" in warnings[0]
    assert "task id" in warnings[0]


class TestFileByPath:
    """A file known only by its path in team Files."""

    def test_hit(self, instance: FakeInstance, transport: SuperviselyTransport) -> None:
        """file-storage.list with the path; the exact match (not the .bak beside it) gives the id."""
        transport.send([event("output", File(path="/models/run1/best.pt", model_weight=True))])
        assert [
            r.json() for r in instance.calls("file-storage.list")
        ] == [{"teamId": 7, "path": "/models/run1/best.pt", "recursive": True}]
        body = instance.edges()[0].json()
        assert (body["type"], body["id"]) == ("model_weight", 999)

    def test_miss_is_skipped_with_a_warning(
        self, instance: FakeInstance, transport: SuperviselyTransport, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No file at the path: WARNING naming it, that event is not sent, the next one is."""
        with caplog.at_level(logging.WARNING):
            transport.send([event("input", File(path="/models/nope.pt")), event("input", Dataset(id=1))])
        assert [r.json()["type"] for r in instance.edges()] == ["dataset"]
        messages = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
        assert "/models/nope.pt" in messages
        assert "not sent" in messages

    def test_a_file_with_an_id_needs_no_lookup(
        self, instance: FakeInstance, transport: SuperviselyTransport
    ) -> None:
        """FileInfo-like nodes (id and path) use the id."""
        transport.send([event("input", File(id=5, path="/models/run1/best.pt"))])
        assert instance.calls("file-storage.list") == []
        assert instance.edges()[0].json()["id"] == 5


class TestVersionNumber:
    """Project(id, version_num=N) is resolved to the version's id."""

    def test_hit_is_cached(self, instance: FakeInstance, transport: SuperviselyTransport) -> None:
        """One projects.versions.list for two uses of the same version."""
        transport.send([event("input", Project(id=123, version_num=3))])
        transport.send([event("input", Project(id=123, version_num=3))])
        assert len(instance.calls("projects.versions.list")) == 1
        assert [(r.json()["type"], r.json()["id"]) for r in instance.edges()] == [("project_version", 77)] * 2

    def test_miss_sends_the_project_with_a_warning(
        self, instance: FakeInstance, transport: SuperviselyTransport, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No such version: WARNING, and the plain project is recorded (as the SDK falls back)."""
        with caplog.at_level(logging.WARNING):
            transport.send([event("input", Project(id=123, version_num=9))])
        assert [(r.json()["type"], r.json()["id"]) for r in instance.edges()] == [("project", 123)]
        assert any("no version 9" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

    def test_a_version_id_wins(self, instance: FakeInstance, transport: SuperviselyTransport) -> None:
        """version_id needs no lookup."""
        transport.send([event("input", Project(id=123, version_id=70, version_num=3))])
        assert instance.calls("projects.versions.list") == []
        assert instance.edges()[0].json()["id"] == 70


class TestOldInstance:
    """Instances without workflows (or jobs) keep the events held, not lost."""

    @pytest.mark.parametrize("version", ["6.9.30", "5.60.0", "unknown", None])
    def test_events_are_held_and_nothing_is_sent(
        self, version: str | None, instance: FakeInstance, transport: SuperviselyTransport,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A hold DeliveryError (retryable), no edge sent, one WARNING for several attempts."""
        instance.version = version
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                with pytest.raises(DeliveryError) as info:
                    transport.send([event("input", Dataset(id=1)), event("output", Dataset(id=2))])
                assert (info.value.hold, info.value.retryable, info.value.delivered) == (True, True, 0)
        assert instance.edges() == []
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "6.9.31" in warnings[0].getMessage()

    def test_sent_once_upgraded(self, instance: FakeInstance, transport: SuperviselyTransport) -> None:
        """The version is asked again on the next attempt: after an upgrade the events go through."""
        instance.version = "6.9.0"
        with pytest.raises(DeliveryError):
            transport.send([event("input", Dataset(id=1))])
        instance.version = "6.10.2"
        transport.send([event("input", Dataset(id=1))])
        assert len(instance.edges()) == 1

    def test_jobs_need_a_newer_instance(
        self, instance: FakeInstance, transport: SuperviselyTransport
    ) -> None:
        """On 6.10 the events before a job are sent and the transport stops at the job with a hold for it (the
        delivery layer then holds that event only and sends the ones after it: test_sdk_scenarios.py)."""
        instance.version = "6.10.0"
        with pytest.raises(DeliveryError) as info:
            transport.send([event("input", Dataset(id=1)), event("output", Job(id=3)), event("input", App())])
        assert (info.value.hold, info.value.delivered) == (True, 1)
        assert "6.11.11" in str(info.value)
        assert [r.json()["type"] for r in instance.edges()] == ["dataset"]
        assert len(instance.calls("instance.version")) == 1  # asked once in the batch, not once per check


class TestErrors:
    """HTTP failures are classified for the delivery layer."""

    def test_401_is_not_retryable(self, instance: FakeInstance) -> None:
        """A wrong token: not retryable, and the message is the server's, without the token."""
        t = SuperviselyTransport(instance.url, "wrong-" + TOKEN[:10])
        with pytest.raises(DeliveryError) as info:
            t.send([event("input", Dataset(id=1))])
        assert info.value.retryable is False
        assert "401" in str(info.value)

    def test_403_is_not_retryable(self, instance: FakeInstance, transport: SuperviselyTransport) -> None:
        """Forbidden on the edge itself: not retryable; the events before it count as delivered."""
        instance.fail["workflow.node.add-output"] = (403, {"error": "forbidden"})
        with pytest.raises(DeliveryError) as info:
            transport.send([event("input", Dataset(id=1)), event("output", Dataset(id=2))])
        assert (info.value.retryable, info.value.delivered) == (False, 1)

    def test_500_is_retryable(self, instance: FakeInstance, transport: SuperviselyTransport) -> None:
        """A server error: retryable, delivered counts the head that went through."""
        instance.fail["workflow.node.add-output"] = (500, {"error": "boom"}, {"Retry-After": "7"})
        with pytest.raises(DeliveryError) as info:
            transport.send([event("input", Dataset(id=1)), event("input", Job(id=2)), event("output", App())])
        assert (info.value.retryable, info.value.delivered, info.value.retry_after) == (True, 2, 7.0)
        assert "HTTP 500" in str(info.value)

    def test_500_on_a_lookup_is_retryable(
        self, instance: FakeInstance, transport: SuperviselyTransport
    ) -> None:
        """A failing tasks.info holds nothing back for good."""
        instance.fail["tasks.info"] = (502, {"error": "bad gateway"})
        with pytest.raises(DeliveryError) as info:
            transport.send([event("input", Dataset(id=1))])
        assert (info.value.retryable, info.value.delivered) == (True, 0)

    def test_unknown_task_is_not_retryable(
        self, instance: FakeInstance, transport: SuperviselyTransport
    ) -> None:
        """tasks.info 404: the events of that task cannot be sent, ever."""
        with pytest.raises(DeliveryError) as info:
            transport.send([event("input", Dataset(id=1), task_id=404)])
        assert info.value.retryable is False

    def test_connection_refused_is_retryable(self) -> None:
        """Nobody listening: retryable."""
        probe = RecordingServer().start()
        probe.stop()
        t = SuperviselyTransport(probe.url, TOKEN, timeout=2)
        with pytest.raises(DeliveryError) as info:
            t.send([event("input", Dataset(id=1))])
        assert info.value.retryable is True
        assert TOKEN not in str(info.value)


def test_the_token_never_shows(instance: FakeInstance, caplog: pytest.LogCaptureFixture) -> None:
    """Not in a repr, a log record (any logger, any level) or an error, even when the server echoes it."""
    instance.fail["workflow.node.add-input"] = (400, {"error": f"bad request from key {TOKEN}"})
    t = SuperviselyTransport(instance.url, TOKEN, task_header=5)
    texts: list[str] = [repr(t), t.key, str(vars(t))]
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(DeliveryError) as info:
            t.send([event("input", Dataset(id=1))])
        texts += [str(info.value), repr(info.value)]
        instance.version = "6.0.0"
        t2 = SuperviselyTransport(instance.url, TOKEN)
        with pytest.raises(DeliveryError) as info2:
            t2.send([event("input", Dataset(id=1))])
        texts.append(str(info2.value))
    texts += [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    assert caplog.records, "expected some log records to check"
    assert all(TOKEN not in text for text in texts)
    assert "***" in str(info.value)


def test_send_from_several_threads_is_not_needed_but_safe(
    instance: FakeInstance, transport: SuperviselyTransport
) -> None:
    """The worker is one thread, but a second sender (a flush at exit) does not corrupt the session."""
    threads = [
        threading.Thread(target=transport.send, args=([event("input", Dataset(id=i))],)) for i in range(4)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(range(4)) == sorted(r.json()["id"] for r in instance.edges())


# -- the backend: delivery, configuration, versions ----------------------------------------------------


@pytest.fixture
def backend(instance: FakeInstance, tmp_path: Path) -> Iterator[SuperviselyBackend]:
    """A SuperviselyBackend pointed at the fake instance, spooling under tmp_path."""
    b = SuperviselyBackend(instance.url, TOKEN, spool_path=tmp_path / "spool.db", timeout=5)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def configured(backend: SuperviselyBackend) -> SuperviselyBackend:
    """The backend, configured as workflow_trace's backend."""
    wt.configure(backend)
    return backend


def test_emit_queues_and_flush_delivers(instance: FakeInstance, backend: SuperviselyBackend) -> None:
    """emit() returns at once; flush() waits until the edges are on the server."""
    backend.emit([event("step_started"), event("input", Dataset(id=1)), event("step_finished")])
    assert backend.flush(timeout=10) is True
    assert [r.json()["id"] for r in instance.edges()] == [1]


def test_events_get_the_backends_task_id_when_emitted(instance: FakeInstance, tmp_path: Path) -> None:
    """An event without a task takes the backend's task_id (stamped at emit, so the spool keeps it)."""
    b = SuperviselyBackend(instance.url, TOKEN, task_id=6, spool_path=tmp_path / "s.db")
    try:
        b.emit([event("input", Dataset(id=1), task_id=None), event("input", Dataset(id=2), task_id=5)])
        assert b.flush(timeout=10)
    finally:
        b.close()
    assert [(r.json()["node"]["id"], r.json()["id"]) for r in instance.edges()] == [(6, 1), (5, 2)]


def test_events_without_any_task_are_dropped_with_a_warning(
    instance: FakeInstance, backend: SuperviselyBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """No task id anywhere: not queued; one WARNING with the count."""
    with caplog.at_level(logging.WARNING):
        backend.emit([event("input", Dataset(id=1), task_id=None), event("output", App(), task_id=None)])
    assert backend.flush(timeout=10)
    assert instance.edges() == []
    assert any("2 event(s)" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


class TestTaskIdFromTheEnvironment:
    """SUPERVISELY_TASK_ID is sent as the SDK sends it (the str it read); TASK_ID is read after it, headerless."""

    def test_supervisely_task_id_is_sent_as_the_sdk_sends_it(
        self, instance: FakeInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Without TEAM_ID: tasks.info {"id": "99"}, the task node and the app session as "99", an explicit other
        task as the int it is, and x-task-id: 99 on every request — the recorded requests of task_id_from_env."""
        from workflow_trace import workflow as w

        golden = golden_by_seq()
        instance.teams[99] = 7
        monkeypatch.setenv("SUPERVISELY_TASK_ID", "99")
        wt.configure(SuperviselyBackend(instance.url, TOKEN, spool_path=tmp_path / "s.db"))
        w.add_input_project(123)
        w.add_output_app()
        w.add_output_file(791, model_weight=True)
        w.add_input_project(124, task_id=5)
        assert wt.flush(timeout=10)
        assert golden[81]["body_raw"].encode() == instance.calls("tasks.info")[0].body
        for seq, req in zip((82, 83, 84, 85), instance.edges(), strict=True):
            assert_same_request(golden[seq], req)
        assert {"99"} == {r.headers.get("x-task-id") for r in instance.calls()}

    @pytest.mark.parametrize("variable", ["TASK_ID", "SUPERVISELY_TASK_ID"])
    def test_a_task_id_that_is_not_a_number_is_one_warning(
        self, variable: str, instance: FakeInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """TASK_ID=abc: one WARNING naming it however many calls, never an error per call; the edges, without a
        task, are not sent (one WARNING with their count)."""
        from workflow_trace import workflow as w

        monkeypatch.setenv(variable, "abc")
        with caplog.at_level(logging.WARNING):
            wt.configure(SuperviselyBackend(instance.url, TOKEN, spool_path=tmp_path / "s.db"))
            for project in (1, 2, 3):
                w.add_input_project(project)
            assert wt.flush(timeout=10)
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert [f"ignoring {variable}='abc': not an integer task id"] == [
            m.removeprefix("workflow_trace: ") for m in warnings if variable in m and "abc" in m]
        assert instance.edges() == []
        assert all("Error" not in m for m in warnings)

    def test_task_id_after_an_invalid_supervisely_task_id(
        self, instance: FakeInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """SUPERVISELY_TASK_ID=abc, TASK_ID=5: task 5, as an int, with no x-task-id header."""
        from workflow_trace import workflow as w

        monkeypatch.setenv("SUPERVISELY_TASK_ID", "abc")
        monkeypatch.setenv("TASK_ID", "5")
        wt.configure(SuperviselyBackend(instance.url, TOKEN, spool_path=tmp_path / "s.db"))
        w.add_input_project(123)
        assert wt.flush(timeout=10)
        assert_same_request(golden_by_seq()[6], instance.edges()[0])
        assert {None} == {r.headers.get("x-task-id") for r in instance.calls()}


class TestConfiguration:
    """from_env, from_api, the backend string and the environment's task header."""

    def test_from_env(self, instance: FakeInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """SERVER_ADDRESS, API_TOKEN, TEAM_ID and SUPERVISELY_TASK_ID, as the SDK reads them."""
        for name, value in (("SERVER_ADDRESS", instance.url + "/"), ("API_TOKEN", TOKEN), ("TEAM_ID", "7"),
                            ("SUPERVISELY_TASK_ID", "5"), ("WORKFLOW_TRACE_SPOOL", str(tmp_path / "s.db"))):
            monkeypatch.setenv(name, value)
        b = SuperviselyBackend.from_env()
        try:
            assert (instance.url, 7, 5) == (b.server_address, b.team_id, b.task_id)
            b.emit([event("input", Dataset(id=1), task_id=None)])
            assert b.flush(timeout=10)
        finally:
            b.close()
        assert instance.calls("tasks.info") == []
        assert {r.headers.get("x-task-id") for r in instance.calls()} == {"5"}

    def test_supervisely_task_id_wins_over_task_id(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """SUPERVISELY_TASK_ID first, then TASK_ID (as the step resolves it)."""
        monkeypatch.setenv("SUPERVISELY_TASK_ID", "8")
        monkeypatch.setenv("TASK_ID", "9")
        b = SuperviselyBackend("http://127.0.0.1:9", TOKEN)
        b.close()
        assert b.task_id == 8

    @pytest.mark.parametrize("missing", ["SERVER_ADDRESS", "API_TOKEN"])
    def test_from_env_names_what_is_missing(self, missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """A clear ConfigurationError naming the variable."""
        monkeypatch.setenv("SERVER_ADDRESS", "http://127.0.0.1:9")
        monkeypatch.setenv("API_TOKEN", TOKEN)
        monkeypatch.delenv(missing)
        with pytest.raises(wt.ConfigurationError, match=missing):
            SuperviselyBackend.from_env()

    def test_backend_string(self, instance: FakeInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """configure("supervisely") builds it from the environment; so does the default with the SDK's vars."""
        monkeypatch.setenv("SERVER_ADDRESS", instance.url)
        monkeypatch.setenv("API_TOKEN", TOKEN)
        monkeypatch.setenv("WORKFLOW_TRACE_SPOOL", str(tmp_path / "s.db"))
        wt.configure("supervisely")
        assert isinstance(wt.get_backend(), SuperviselyBackend)
        wt.reset()
        assert isinstance(wt.get_backend(), SuperviselyBackend)
        wt.reset()
        wt.configure(f"supervisely+{instance.url}")
        assert instance.url == wt.get_backend().server_address  # type: ignore[attr-defined]

    def test_a_token_in_the_backend_string_is_refused_unseen(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Credentials in the string: refused, and the message does not repeat them."""
        with pytest.raises(wt.ConfigurationError) as info:
            wt.configure(f"supervisely+https://user:{TOKEN}@example.invalid")
        assert TOKEN not in str(info.value)

    def test_from_api(self, instance: FakeInstance, tmp_path: Path) -> None:
        """Server, token and task id from an SDK Api object; the api is kept for versions."""
        api = FakeSdkApi(instance.url, TOKEN, task_id="5")
        b = SuperviselyBackend.from_api(api, spool_path=tmp_path / "s.db")
        try:
            assert (instance.url, 5) == (b.server_address, b.task_id)
            assert b.create_version(Project(id=1), "t", "d") == 41
        finally:
            b.close()
        assert api.project.version.created == [(1, "t", "d")]

    def test_from_api_refuses_other_objects(self) -> None:
        """Not an Api: a ConfigurationError naming the type."""
        with pytest.raises(wt.ConfigurationError, match="int"):
            SuperviselyBackend.from_api(3)


class FakeVersionApi:
    """``api.project.version`` of the SDK, recording the calls."""

    def __init__(self) -> None:
        self.created: list[tuple[Any, ...]] = []
        self.restored: list[tuple[Any, ...]] = []

    def create(self, project_info: Any, version_title: Any = None, version_description: Any = None) -> int:
        self.created.append((project_info, version_title, version_description))
        return 41

    def restore(self, project_info: Any, version_id: Any = None, version_num: Any = None,
                skip_missed_entities: bool = False) -> Any:
        self.restored.append((project_info, version_id, version_num, skip_missed_entities))
        return SimpleNamespace(id=900, name="restored")


class FakeSdkApi:
    """The parts of ``supervisely.Api`` the backend uses."""

    def __init__(self, server_address: str, token: str, task_id: str | None = None) -> None:
        self.server_address = server_address
        self.token = token
        self.task_id = task_id
        self.project = SimpleNamespace(version=FakeVersionApi())


class TestVersions:
    """list_versions over HTTP; create and restore through the SDK."""

    def test_list_versions_reads_every_page(self, instance: FakeInstance, backend: SuperviselyBackend) -> None:
        """projects.versions.list page after page, as VersionInfo."""
        instance.per_page = 2
        instance.versions[10] = [
            {"id": 100 + n, "projectId": 10, "version": n, "name": f"v{n}", "description": None,
             "createdAt": "2024-06-01T10:00:00.000Z"} for n in range(1, 6)
        ]
        versions = backend.list_versions(Project(id=10))
        assert [(100 + n, n) for n in range(1, 6)] == [(v.id, v.version) for v in versions]
        assert (versions[0].project_id, versions[0].title) == (10, "v1")
        bodies = [r.json() for r in instance.calls("projects.versions.list")]
        assert [b.get("page") for b in bodies] == [None, 2, 3]
        assert bodies[0] == {"projectId": 10, "sort": "id", "sort_order": "asc"}

    def test_list_versions_filters(self, instance: FakeInstance, backend: SuperviselyBackend) -> None:
        """Filters are passed as the SDK passes them."""
        flt = [{"field": "version", "operator": "=", "value": 3}]
        assert [v.id for v in backend.list_versions(Project(id=123), flt)] == [77]
        assert flt == instance.calls("projects.versions.list")[0].json()["filter"]

    def test_list_versions_failure_is_a_versioning_error(
        self, instance: FakeInstance, backend: SuperviselyBackend
    ) -> None:
        """HTTP 500: VersioningError with the server's message."""
        instance.fail["projects.versions.list"] = (500, {"error": "db down"})
        with pytest.raises(wt.VersioningError, match="db down"):
            backend.list_versions(Project(id=1))

    def test_create_without_the_sdk_says_so(
        self, backend: SuperviselyBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No supervisely package: a VersioningError naming it."""
        monkeypatch.setitem(sys.modules, "supervisely", None)
        with pytest.raises(wt.VersioningError, match="`supervisely` package"):
            backend.create_version(Project(id=1), None, None)
        with pytest.raises(wt.VersioningError, match="`supervisely` package"):
            backend.restore_version(Project(id=1), 3, None)

    def test_create_and_restore_with_the_sdk(
        self, instance: FakeInstance, backend: SuperviselyBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An installed SDK is built from the same settings and does the work."""
        built: list[FakeSdkApi] = []

        def make_api(server_address: str, token: str) -> FakeSdkApi:
            built.append(FakeSdkApi(server_address, token))
            return built[-1]

        monkeypatch.setitem(sys.modules, "supervisely", SimpleNamespace(Api=make_api))
        assert backend.create_version(Project(id=1), "title", None) == 41
        assert Project(id=900) == backend.restore_version(Project(id=1), None, 2, skip_missed_entities=True)
        assert [(instance.url, TOKEN)] == [(a.server_address, a.token) for a in built]
        assert built[0].project.version.restored == [(1, None, 2, True)]

    def test_a_local_project_cannot_be_versioned(self, backend: SuperviselyBackend) -> None:
        """A project known by its local path only: VersioningError."""
        with pytest.raises(wt.VersioningError, match="local"):
            backend.list_versions(Project(path="/data/project"))

    def test_it_is_a_versioning_backend(self, backend: SuperviselyBackend) -> None:
        """The VersioningBackend protocol."""
        assert isinstance(backend, wt.VersioningBackend)


def test_the_token_is_never_in_reprs_logs_or_the_spool(
    instance: FakeInstance, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Held events sit in the spool: its bytes, every log record and every repr are free of the token."""
    instance.version = "6.1.0"
    spool = tmp_path / "spool.db"
    with caplog.at_level(logging.DEBUG):
        b = SuperviselyBackend(instance.url, TOKEN, task_id=5, spool_path=spool)
        b.emit([event("input", Dataset(id=1)), event("output", File(path="/x.pt"))])
        assert b.flush(timeout=1) is False
        texts = [repr(b), repr(b.transport), str(b), str(vars(b)), str(vars(b.transport)), repr(b.delivery)]
        b.close()
    texts += [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    assert instance.edges() == []
    assert any("6.9.31" in t for t in texts)
    assert all(TOKEN not in t for t in texts)
    data = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert TOKEN.encode() not in data
    assert b"dataset" in data  # the held event is there, waiting for an upgrade


# -- through decorators, steps and the SDK-style facade ------------------------------------------------


def _golden_edges(seqs: list[int]) -> list[dict[str, Any]]:
    records = golden_by_seq()
    return [records[s] for s in seqs]


class TestThroughTheApi:
    """The public API, configured with a SuperviselyBackend, sends the SDK's requests."""

    def test_the_facade_is_the_sdk(self, instance: FakeInstance, configured: SuperviselyBackend) -> None:
        """workflow.add_input_* / add_output_*, called as an SDK app calls api.app.workflow.*."""
        from workflow_trace import workflow as w

        meta_33 = _META_33
        with wt.workflow_step("facade", task_id=5):
            w.add_input_project(123)
            w.add_input_project(123, version_id=77)
            w.add_input_project(123, version_num=3)
            w.add_input_project(SimpleNamespace(id=124, name="p"))
            w.add_input_dataset(456)
            w.add_input_dataset({"id": 457})
            w.add_input_file(789)
            w.add_input_file(789, model_weight=True)
            w.add_input_file(SimpleNamespace(id=790, path="/models/run0/weights.pt", name="weights.pt"))
            w.add_input_folder("experiments/run1")
            w.add_input_task(42)
            w.add_input_job(11)
            w.add_output_project(125)
            w.add_output_project(125, version_id=78)
            w.add_output_dataset(458)
            w.add_output_file(791)
            w.add_output_file(790, model_weight=True)
            w.add_output_folder("/experiments/run1/")
            w.add_output_app()
            w.add_output_task(43)
            w.add_output_job(12)
            w.add_output_task(44, task_id=6)
        # A step records a node once per direction and meta (the SDK would send duplicates): one step each.
        with wt.workflow_step("meta", task_id=5):
            w.add_output_file(791, meta=meta_33)
            w.add_input_dataset(456, meta={"customNodeSettings": {"title": "<h4>raw</h4>"}})
            w.add_input_dataset(456, meta={})
        with wt.workflow_step("empty meta", task_id=5):
            w.add_input_dataset(456, meta=WorkflowMeta())
            w.add_output_app(meta={"customNodeSettings": {
                "title": "<h4>Serve</h4>", "mainLink": {"url": "/apps/sessions/5", "title": "open"},
            }})
        assert configured.flush(timeout=10)
        expected = _golden_edges(sorted(GOLDEN_EDGES))
        edges = instance.edges()
        assert len(expected) == len(edges)
        for golden, req in zip(expected, edges, strict=True):
            assert_same_request(golden, req)

    def test_decorators(self, instance: FakeInstance, configured: SuperviselyBackend) -> None:
        """Every consumes_* / produces_* kind and option; inputs before the call, outputs after it."""

        @wt.consumes_project("project_id")
        @wt.consumes_dataset("dataset_id")
        @wt.consumes_file("weights", model_weight=True)
        @wt.consumes_folder("folder")
        @wt.consumes_task("serving")
        @wt.consumes_job("job_id")
        @wt.produces_project("project")
        @wt.produces_dataset("dataset")
        @wt.produces_file("checkpoint", meta=_META_33)
        @wt.produces_folder(arg="out_dir")
        @wt.produces_task("task")
        @wt.produces_job("job")
        @wt.produces_app
        def run(project_id: int, dataset_id: int, weights: int, folder: str, serving: int, job_id: int,
                out_dir: str) -> dict[str, int]:
            return {"project": 125, "dataset": 458, "checkpoint": 791, "task": 43, "job": 12}

        with wt.workflow_step("decorated", task_id=5):
            run(123, 456, 789, "experiments/run1", 42, 11, out_dir="/experiments/run1/")
        assert configured.flush(timeout=10)
        expected = _golden_edges([6, 12, 15, 17, 18, 19, 20, 22, 33, 25, 27, 28, 26])
        edges = instance.edges()
        assert sorted(g["body_raw"].encode() for g in expected) == sorted(r.body for r in edges)
        kinds = [r.path.rsplit("-", 1)[1] for r in edges]
        assert kinds == ["input"] * 6 + ["output"] * 7

    def test_a_step_with_the_task_from_the_environment(
        self, instance: FakeInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """TASK_ID (which workflow_trace reads after SUPERVISELY_TASK_ID; the SDK does not): the step's edges
        hang off it; no x-task-id header, which the SDK sends only for SUPERVISELY_TASK_ID."""
        monkeypatch.setenv("TASK_ID", "5")
        b = SuperviselyBackend(instance.url, TOKEN, spool_path=tmp_path / "s.db")
        wt.configure(b)
        with wt.workflow_step("train", inputs=[Project(id=123, version_num=3)]) as step:
            step.add_output(791, kind="file", meta=_META_33)
        assert wt.flush(timeout=10)
        b.close()
        edges = instance.edges()
        assert_same_request(golden_by_seq()[9], edges[0])
        assert_same_request(golden_by_seq()[33], edges[1])
        assert {r.headers.get("x-task-id") for r in instance.calls()} == {None}

    def test_version_true_creates_the_version_first(
        self, instance: FakeInstance, configured: SuperviselyBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """consumes_project(version=True): the SDK makes the version; the input is that version."""
        sdk = FakeSdkApi(instance.url, TOKEN)
        sdk.project.version.create = lambda *a: 77  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "supervisely", SimpleNamespace(Api=lambda *a: sdk))

        @wt.consumes_project("project_id", version=True)
        def train(project_id: int) -> None:
            pass

        with wt.workflow_step("train", task_id=5):
            train(123)
        assert configured.flush(timeout=10)
        assert_same_request(golden_by_seq()[7], instance.edges()[0])

    @pytest.mark.internal_errors
    def test_version_true_without_the_sdk_records_the_plain_project(
        self, instance: FakeInstance, configured: SuperviselyBackend, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """No supervisely package: a WARNING saying so, and the project is recorded without a version."""
        monkeypatch.setitem(sys.modules, "supervisely", None)

        @wt.consumes_project("project_id", version=True)
        def train(project_id: int) -> None:
            pass

        with caplog.at_level(logging.WARNING), wt.workflow_step("train", task_id=5):
            train(123)
        assert configured.flush(timeout=10)
        assert_same_request(golden_by_seq()[6], instance.edges()[0])
        assert any("supervisely" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

    def test_step_events_stay_in_a_local_store_alongside(
        self, instance: FakeInstance, backend: SuperviselyBackend
    ) -> None:
        """With a composite, the memory/local side keeps the step lifecycle; the server gets edges only."""
        from workflow_trace.backends import CompositeBackend
        from workflow_trace.backends.memory import MemoryBackend

        local = MemoryBackend()
        wt.configure(CompositeBackend(local, backend))
        with wt.workflow_step("both", task_id=5) as step:
            step.add_input(Dataset(id=1))
        assert wt.flush(timeout=10)
        assert [e.kind for e in local.events] == ["step_started", "input", "step_finished"]
        assert [(r.json()["type"], r.json()["id"]) for r in instance.edges()] == [("dataset", 1)]


# -- the seed app, both forms ----------------------------------------------------------------------------

EXAMPLES = Path(__file__).parent.parent / "examples"


def _archive_body(task: int, team: int, file_id: int, name: str) -> bytes:
    """What the SDK sends for the seed's add_output_file(file_info, meta=<archive card>)."""
    return json.dumps({
        "teamId": team, "node": {"type": "task", "id": task}, "type": "file", "id": file_id,
        "meta": {"customRelationSettings": {
            "title": f"<h4>Project Archive: {name}</h4>",
            "icon": {"icon": "zmdi-archive", "color": "#ff4c9e", "backgroundColor": "#ffe3ed"},
            "mainLink": {"url": f"/files/{file_id}/true/?teamId={team}", "title": "Download"},
        }},
    }).encode()


def test_the_decorated_seed_app_records_the_seed_workflow(instance: FakeInstance, tmp_path: Path) -> None:
    """examples/seed_app_decorated.py, run as a script against the instance: the guide's three edges."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKFLOW_TRACE_", "SUPERVISELY_"))}
    env.update(
        SERVER_ADDRESS=instance.url, API_TOKEN=TOKEN, TASK_ID="5", TEAM_ID="7", PROJECT_ID="123",
        RESULT_PROJECT_ID="125", ARCHIVE_FILE_ID="791", WORKFLOW_TRACE_SPOOL=str(tmp_path / "spool.db"),
        WORKFLOW_TRACE_DB=str(tmp_path / "workflow.db"),
        PYTHONPATH=os.pathsep.join([str(EXAMPLES.parent), env.get("PYTHONPATH", "")]),
    )
    env["SEED_APP_DEMO"] = "1"  # even with the SDK installed: the fake instance stores no data
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "seed_app_decorated.py")], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    expected = [
        json.dumps({"teamId": 7, "node": {"type": "task", "id": 5}, "type": "project", "id": 123}).encode(),
        json.dumps({"teamId": 7, "node": {"type": "task", "id": 5}, "type": "project", "id": 125}).encode(),
        _archive_body(5, 7, 791, "project-123 (converted).tar.gz"),
    ]
    edges = instance.edges()
    assert expected == [r.body for r in edges]
    assert [r.path.rsplit(".", 1)[1] for r in edges] == ["add-input", "add-output", "add-output"]


def _sdk_available() -> bool:
    try:
        import supervisely  # noqa: F401
    except ImportError:
        return False
    return True


def test_the_hand_written_seed_workflow_sends_the_same(
    instance: FakeInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guide's workflow.py, run with the real SDK against the same server: the same three bodies."""
    if not _sdk_available():
        pytest.skip("the supervisely package is not installed (pip install supervisely to run this check)")
    import importlib.util

    import supervisely as sly
    from supervisely.api.file_api import FileInfo

    spec = importlib.util.spec_from_file_location("seed_app_workflow_py", EXAMPLES / "seed_app_workflow_py.py")
    assert spec is not None
    assert spec.loader is not None
    seed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed)
    monkeypatch.setenv("SUPERVISELY_TASK_ID", "5")  # what the SDK's Api reads
    api = sly.Api(instance.url, TOKEN)
    api.app.workflow.enable()  # the SDK switches workflows off in development mode (outside a task)
    project = SimpleNamespace(id=123)
    result = SimpleNamespace(id=125)
    fields = dict.fromkeys(FileInfo._fields)
    fields.update(id=791, name="project-123 (converted).tar.gz", team_id=7, path="/exports/125/x.tar.gz")
    seed.workflow_input(api, project)
    seed.workflow_output(api, result, FileInfo(**fields))
    expected = [
        json.dumps({"teamId": 7, "node": {"type": "task", "id": 5}, "type": "project", "id": 123}).encode(),
        json.dumps({"teamId": 7, "node": {"type": "task", "id": 5}, "type": "project", "id": 125}).encode(),
        _archive_body(5, 7, 791, "project-123 (converted).tar.gz"),
    ]
    edges = instance.edges()
    # The SDK sends the task id it read from the environment as a str ("5"): the only difference.
    assert [_with_int_task(json.loads(body)) for body in expected] == [_with_int_task(r.json()) for r in edges]
    assert {"5"} == {r.headers.get("x-task-id") for r in edges}


def _with_int_task(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The body with the task node's id as an int, and its key paths in order."""
    body["node"]["id"] = int(body["node"]["id"])
    return body, list(_key_paths(body))


def test_an_app_session_is_an_output_only(
    instance: FakeInstance, transport: SuperviselyTransport, caplog: pytest.LogCaptureFixture
) -> None:
    """An input App event (not produced by the API, but possible from a hand-built event) is skipped."""
    with caplog.at_level(logging.WARNING):
        transport.send([event("input", App()), event("output", App())])
    assert [r.path.rsplit(".", 1)[1] for r in instance.edges()] == ["add-output"]
    assert any("output only" in r.getMessage() for r in caplog.records)


def test_one_session_is_reused_and_renewed_after_fork(
    instance: FakeInstance, transport: SuperviselyTransport
) -> None:
    """The same requests.Session across batches; a new one in a forked child (a real fork)."""
    client = transport._client
    transport.send([event("input", Dataset(id=1))])
    first = client._get_session()
    transport.send([event("input", Dataset(id=2))])
    assert client._get_session() is first
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first request opens its own session
        os.write(write, b"new" if client._get_session() is not first else b"same")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert b"new" == os.read(read, 10)
    assert client._get_session() is first


class TestDeliveryEndToEnd:
    """Failures seen through the delivery layer: retried, held, or kept dead — never lost silently."""

    def test_a_500_is_retried_until_it_goes_through(self, instance: FakeInstance, tmp_path: Path) -> None:
        """Two 500s, then the edge is delivered, once."""
        answers = [(500, {"error": "busy"}), (500, {"error": "busy"})]
        normal = instance.handle

        def flaky(req: Request) -> tuple[Any, ...]:
            if req.path.endswith("add-input") and answers:
                return answers.pop(0)
            return normal(req)

        instance.server.handler = flaky
        b = SuperviselyBackend(instance.url, TOKEN, task_id=5, spool_path=tmp_path / "s.db",
                               backoff_base=0.01, backoff_max=0.05)
        try:
            b.emit([event("input", Dataset(id=1))])
            assert b.flush(timeout=10)
        finally:
            b.close()
        assert [r.json()["id"] for r in instance.edges()] == [1]
        assert answers == []

    def test_a_401_keeps_the_events_dead_in_the_spool(
        self, instance: FakeInstance, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A refused token: not retried, flush() says so, a WARNING names the server's answer; no token."""
        wrong = "wrong-" + TOKEN
        with caplog.at_level(logging.WARNING):
            b = SuperviselyBackend(instance.url, wrong, task_id=5, spool_path=tmp_path / "s.db")
            try:
                b.emit([event("input", Dataset(id=1))])
                assert b.flush(timeout=10) is False
            finally:
                b.close()
        assert instance.edges() == []
        messages = [r.getMessage() for r in caplog.records]
        assert any("401" in m for m in messages)
        assert all(wrong not in m for m in messages)
        assert wrong.encode() not in (tmp_path / "s.db").read_bytes()

    def test_held_events_go_out_after_an_upgrade(self, instance: FakeInstance, tmp_path: Path) -> None:
        """An old instance holds the events; once it answers a newer version they are delivered."""
        instance.version = "6.8.0"
        b = SuperviselyBackend(instance.url, TOKEN, task_id=5, spool_path=tmp_path / "s.db", hold_interval=0.1)
        try:
            b.emit([event("input", Dataset(id=1)), event("output", Job(id=2))])
            assert b.flush(timeout=0.5) is False
            assert instance.edges() == []
            instance.version = "6.12.0"
            assert b.flush(timeout=10)
        finally:
            b.close()
        assert [r.json()["type"] for r in instance.edges()] == ["dataset", "job"]
