"""The Supervisely backend against a real HTTP server on 127.0.0.1 that answers like an instance.

The request bodies are compared, byte for byte and key order included, with the requests the official
SDK (6.74.51) sent for the same calls (``shared/supervisely/sdk_requests.jsonl``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpserver import RecordingServer, Request

from workflow_trace._events import Event, StepRef, new_run_id
from workflow_trace._meta import WorkflowMeta, WorkflowSettings, meta_to_wire
from workflow_trace._nodes import App, Dataset, File, Folder, Job, Node, Project, Task
from workflow_trace._transport import DeliveryError, Transport
from workflow_trace.backends.supervisely import SuperviselyTransport

TOKEN = "s3cr3t-T0KEN-" + "x" * 115  # as long as a real one, and unmistakable in any text
GOLDEN = Path(__file__).parent.parent.parent / "shared" / "supervisely" / "sdk_requests.jsonl"
API = "/public/api/v3/"


class FakeInstance:
    """A Supervisely instance as far as workflows go: it answers what the SDK and the backend ask."""

    def __init__(self) -> None:
        self.version: str | None = "6.12.44"
        self.teams: dict[int, int] = {5: 7, 6: 7}
        self.files: list[dict[str, Any]] = [
            {"id": 999, "path": "/models/run1/best.pt", "name": "best.pt", "teamId": 7},
            {"id": 998, "path": "/models/run1/best.pt.bak", "name": "best.pt.bak", "teamId": 7},
        ]
        self.versions: dict[int, list[dict[str, Any]]] = {
            123: [{"id": 77, "projectId": 123, "version": 3, "name": "v3", "description": "v3",
                   "createdAt": "2024-06-01T10:00:00.000Z"}],
        }
        self.per_page = 500
        #: method -> (status, body[, headers]) answered instead of the normal answer.
        self.fail: dict[str, tuple[Any, ...]] = {}
        self.server = RecordingServer(self.handle)

    # -- answers ----------------------------------------------------------------------------------

    def handle(self, req: Request) -> tuple[Any, ...]:
        method = req.path[len(API):] if req.path.startswith(API) else req.path
        if method in self.fail:
            return self.fail[method]
        if req.headers.get("x-api-key") != TOKEN:
            return 401, {"error": "Unauthorized", "details": {"message": "invalid token"}}
        body = req.json() or {}
        if method == "instance.version":
            if self.version is None:
                return 404, {"error": "Not found"}
            return 200, {"version": self.version}
        if method == "tasks.info":
            team = self.teams.get(body["id"])
            if team is None:
                return 404, {"error": f"task {body['id']} not found"}
            return 200, {"id": body["id"], "workspaceId": 3, "teamId": team, "type": "app", "meta": {}}
        if method == "file-storage.list":
            prefix = body["path"]
            team = body["teamId"]
            return 200, [f for f in self.files if f["teamId"] == team and f["path"].startswith(prefix)]
        if method == "projects.versions.list":
            items = list(self.versions.get(body["projectId"], []))
            for flt in body.get("filter", []):
                items = [v for v in items if v.get(flt["field"]) == flt["value"]]
            pages = max(1, -(-len(items) // self.per_page))
            page = body.get("page", 1)
            chunk = items[(page - 1) * self.per_page: page * self.per_page]
            page_info = {"total": len(items), "perPage": self.per_page, "pagesCount": pages}
            return 200, {**page_info, "entities": chunk}
        if method in ("workflow.node.add-input", "workflow.node.add-output"):
            return 200, {"success": True}
        return 404, {"error": f"unknown method {method}"}

    # -- what was asked ---------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Request]:
        """Answered requests, in order, optionally only those of one API method."""
        with self.server.lock:
            reqs = list(self.server.requests)
        return [r for r in reqs if method is None or r.path == API + method]

    def edges(self) -> list[Request]:
        """The workflow edge requests, in order."""
        return [r for r in self.calls() if r.path.startswith(API + "workflow.node.add-")]

    @property
    def url(self) -> str:
        return self.server.url


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
    return Event.fast(
        kind,  # type: ignore[arg-type]
        task_id,
        StepRef(run_id=new_run_id(), name="test"),
        node=node,
        meta=meta_to_wire(meta),
    )


# -- the golden requests ---------------------------------------------------------------------------


def load_golden() -> list[dict[str, Any]]:
    if not GOLDEN.exists():
        pytest.skip(f"the SDK's recorded requests are not here: {GOLDEN}")
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
        """On 6.10 the events before a job are sent; the job and what follows are held."""
        instance.version = "6.10.0"
        with pytest.raises(DeliveryError) as info:
            transport.send([event("input", Dataset(id=1)), event("output", Job(id=3)), event("input", App())])
        assert (info.value.hold, info.value.delivered) == (True, 1)
        assert "6.11.11" in str(info.value)
        assert [r.json()["type"] for r in instance.edges()] == ["dataset"]


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
