"""Every recorded SDK scenario, replayed through ``workflow_trace.workflow``: the same edge requests.

``tests/data/sdk_scenarios.json`` holds 29 scenarios (the calls an app makes, its environment, the instance
version) and ``tests/data/sdk_requests.jsonl`` the requests the real SDK (6.74.51) sent for them; both are
recorded by ``tests/sdk_recording/record.py`` and need no SDK here. Each scenario runs in this process
against the fake instance, through a :class:`SuperviselyBackend` configured as the SDK app's environment
would configure it; the SDK's argument objects are the look-alikes of ``tests/_sdk_objects.py``.

Compared: every ``workflow.node.add-input`` / ``add-output`` request, in order — the method, the body byte
for byte (so the JSON and its key order) and the ``x-task-id`` header. Not compared: the lookups around
them (the SDK asks ``tasks.info`` once per process even with ``TEAM_ID``; workflow_trace does not with it,
and asks per task without it; held events ask ``instance.version`` again when they are retried).

:data:`ALLOWED` lists, call by call, where workflow_trace differs on purpose (the README's "Differences, all
on purpose" says why). Everything else must be identical. Each entry is checked to be needed: a call it
names must be one the SDK did (or did not) send as the entry says.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from _sdk_objects import call_args
from _supervisely_fake import TOKEN, FakeInstance

import workflow_trace as wt
from workflow_trace import workflow
from workflow_trace.backends.supervisely import SuperviselyBackend
from workflow_trace.cli import main as cli

DATA = Path(__file__).parent / "data"
DOCUMENT: dict[str, Any] = json.loads((DATA / "sdk_scenarios.json").read_text())
SCENARIOS: dict[str, dict[str, Any]] = {s["name"]: s for s in DOCUMENT["scenarios"]}
GOLDEN: list[dict[str, Any]] = [json.loads(line) for line in (DATA / "sdk_requests.jsonl").read_text().splitlines()]
EDGE = ("workflow.node.add-input", "workflow.node.add-output")

#: One edge request: (API method, body bytes, x-task-id header or None).
Edge = tuple[str, bytes, "str | None"]


@dataclass(frozen=True)
class Allowed:
    """A difference on purpose, for one call of one scenario.

    ``effect``: ``"not sent"`` (the SDK posts it, workflow_trace does not), ``"held"`` (neither posts it now;
    the SDK drops it, workflow_trace keeps it in the spool until the instance can take it), ``"link dropped"``
    (posted without the ``mainLink`` of ``card``), ``"sent"`` (the SDK posts nothing; workflow_trace posts
    ``edge``).
    """

    effect: Literal["not sent", "held", "link dropped", "sent"]
    reason: str
    card: str | None = None
    edge: Edge | None = None


NO_DATASET_ID = "add_input_dataset(None): a Dataset needs an id in workflow_trace; the SDK posts an id-less edge"
UNSAFE_LINK = ("a card link with a scheme (javascript:, https:) or another host (//host) is left out, with one "
               "WARNING naming the field; the SDK sends it")
HELD = ("the instance is too old (or its version unknown) for this edge: workflow_trace keeps it in the spool "
        "and sends it after an upgrade; the SDK drops it")
TASK_ID = ("workflow_trace reads TASK_ID after SUPERVISELY_TASK_ID (DESIGN.md 4); the SDK reads only "
           "SUPERVISELY_TASK_ID and records nothing without it. No x-task-id header: the SDK sends one only for "
           "SUPERVISELY_TASK_ID")
DEVELOPMENT = ("the SDK's workflow is off outside ENV=production until enable(); workflow_trace records "
               "whatever ENV says (switch it off with workflow.disable() or WORKFLOW_TRACE_DISABLED=1)")


def _body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


ALLOWED: dict[tuple[str, int], Allowed] = {
    ("explicit_task_id", 23): Allowed("not sent", NO_DATASET_ID),
    ("sdk_meta_unsafe_url", 0): Allowed("link dropped", UNSAFE_LINK, card="customRelationSettings"),
    ("sdk_meta_unsafe_url", 1): Allowed("link dropped", UNSAFE_LINK, card="customRelationSettings"),
    ("sdk_meta_unsafe_url", 2): Allowed("link dropped", UNSAFE_LINK, card="customRelationSettings"),
    ("sdk_meta_unsafe_url", 3): Allowed("link dropped", UNSAFE_LINK, card="customRelationSettings"),
    **{("old_instance_6_11_10", i): Allowed("held", HELD) for i in (0, 2, 3)},
    **{("old_instance_6_9_30", i): Allowed("held", HELD) for i in range(5)},
    **{("instance_version_unknown", i): Allowed("held", HELD) for i in range(2)},
    ("app_export_activity_as_csv_6_11_10", 1): Allowed("held", HELD),
    ("task_id_env_TASK_ID_only", 0): Allowed("sent", TASK_ID, edge=(
        "workflow.node.add-input", _body(teamId=7, node={"type": "task", "id": 99}, type="project", id=123), None)),
    ("sdk_development_mode", 0): Allowed("sent", DEVELOPMENT, edge=(
        "workflow.node.add-input", _body(teamId=7, node={"type": "task", "id": 5}, type="project", id=123), None)),
}


def _sdk_sent(call: dict[str, Any]) -> bool:
    """Whether the SDK posted an edge for this call (its add_* returned the server's answer)."""
    return bool(call["method"].startswith("add_") and call["sdk"].get("returned") == {"success": True})


def _recorded_edges(name: str) -> list[Edge]:
    return [(r["api_method"], r["body_raw"].encode(), r["headers"].get("x-task-id"))
            for r in GOLDEN if r["scenario"] == name and r["api_method"] in EDGE]


def _recorded_edge_of_call(name: str) -> dict[int, Edge]:
    """Call index -> the edge the SDK posted for it (the SDK posts in call order)."""
    calls = [i for i, call in enumerate(SCENARIOS[name]["calls"]) if _sdk_sent(call)]
    edges = _recorded_edges(name)
    assert len(calls) == len(edges)
    return dict(zip(calls, edges, strict=True))


def _without_link(edge: Edge, card: str) -> Edge:
    body = json.loads(edge[1])
    del body["meta"][card]["mainLink"]
    return edge[0], json.dumps(body).encode(), edge[2]  # json.dumps' default separators, as the SDK's requests


def expected_edges(name: str) -> tuple[list[Edge], int]:
    """What workflow_trace must post for a scenario (the SDK's edges with the allowed differences applied),
    and how many of its events must wait in the spool."""
    recorded = _recorded_edge_of_call(name)
    expected: list[Edge] = []
    held = 0
    for index in range(len(SCENARIOS[name]["calls"])):
        sdk_edge = recorded.get(index)
        allowed = ALLOWED.get((name, index))
        if allowed is None:
            if sdk_edge is not None:
                expected.append(sdk_edge)
        elif allowed.effect == "link dropped":
            assert sdk_edge is not None
            assert allowed.card is not None
            expected.append(_without_link(sdk_edge, allowed.card))
        elif allowed.effect == "sent":
            assert allowed.edge is not None
            expected.append(allowed.edge)
        elif allowed.effect == "held":
            held += 1
    return expected, held


def test_the_allow_list_names_real_calls() -> None:
    """Every allowed difference names a call of its scenario that the SDK did (or did not) post, as it says."""
    for (name, index), allowed in ALLOWED.items():
        call = SCENARIOS[name]["calls"][index]
        assert call["method"].startswith("add_"), (name, index)
        sent_by_the_sdk = allowed.effect in ("not sent", "link dropped")
        assert sent_by_the_sdk == _sdk_sent(call), (name, index, allowed.effect)


def test_the_allow_list_is_small() -> None:
    """25 of the 29 scenarios post exactly what the SDK posts (every call, repeated ones too); the allowed
    differences touch 8 of them."""
    touched = {name for name, _ in ALLOWED}
    on_the_wire = {name for name in SCENARIOS if expected_edges(name)[0] != _recorded_edges(name)}
    assert (29, 8, 4) == (len(SCENARIOS), len(touched), len(on_the_wire))
    assert {"explicit_task_id", "sdk_meta_unsafe_url", "task_id_env_TASK_ID_only", "sdk_development_mode"} == (
        on_the_wire)


@pytest.fixture
def scenario_instance() -> Iterator[FakeInstance]:
    """The fake instance holding what the recorded scenarios' instance holds."""
    fake = FakeInstance().load(DOCUMENT["instance"])
    fake.backends = []  # what replay() configured: closed before the server goes (else they retry until exit)
    fake.server.start()
    try:
        yield fake
    finally:
        for backend in fake.backends:
            backend.close()
        fake.server.stop()


def replay(name: str, fake: FakeInstance, monkeypatch: pytest.MonkeyPatch, spool: Path) -> SuperviselyBackend:
    """Run one scenario's calls through the facade, configured from the scenario's environment."""
    scenario = SCENARIOS[name]
    fake.version = scenario["instance_version"]
    for variable, value in scenario["env"].items():
        monkeypatch.setenv(variable, value)
    backend = SuperviselyBackend(fake.url, TOKEN, spool_path=spool)
    fake.backends.append(backend)
    wt.configure(backend)
    for call in scenario["calls"]:
        method = call["method"]
        if method == "version.create" or method.startswith("sdk."):
            continue  # an SDK call the app makes on the way; the version it returned is literal in later calls
        positional, keywords = call_args(call)
        if "raised" in call["sdk"]:  # the SDK's signature refuses it: Python raises, in both
            with pytest.raises(TypeError):
                getattr(workflow, method)(*positional, **keywords)
        else:
            getattr(workflow, method)(*positional, **keywords)
    wt.flush(timeout=10)  # False when some events are held: it does not wait for them
    return backend


def _posted(fake: FakeInstance) -> list[Edge]:
    return [(r.path.rsplit("/", 1)[1], r.body, r.headers.get("x-task-id")) for r in fake.edges()]


def _spooled(spool: Path, capsys: pytest.CaptureFixture[str]) -> int:
    """The PENDING count `workflow-trace spool` shows (0 when the spool is empty)."""
    capsys.readouterr()
    assert 0 == cli(["spool", "--spool", str(spool)])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[2:]]
    return sum(int(row[1]) for row in rows)


def _refused_by_both(name: str) -> list[int]:
    """Calls the SDK refused (it logs an ERROR and posts nothing) that are not allowed differences: workflow_trace
    refuses them too, contained, with one WARNING each."""
    return [i for i, call in enumerate(SCENARIOS[name]["calls"])
            if call["sdk"].get("returned") == {} and (name, i) not in ALLOWED]


def _params() -> list[Any]:
    return [pytest.param(name, marks=pytest.mark.internal_errors) if _refused_by_both(name) else name
            for name in SCENARIOS]


@pytest.mark.parametrize("name", _params())
def test_the_facade_posts_what_the_sdk_posts(
    name: str, scenario_instance: FakeInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], swallowed: list[BaseException],
) -> None:
    """The scenario's edge requests are the SDK's, byte for byte and in order, but for the allowed differences."""
    spool = tmp_path / "spool.db"
    expected, held = expected_edges(name)
    with caplog.at_level(logging.WARNING, logger="workflow_trace"):
        replay(name, scenario_instance, monkeypatch, spool)
        assert expected == _posted(scenario_instance)
        assert held == _spooled(spool, capsys)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    for (scenario, index), allowed in ALLOWED.items():
        if scenario == name and allowed.effect == "link dropped":
            url = json.loads(_recorded_edge_of_call(name)[index][1])["meta"][allowed.card]["mainLink"]["url"]
            assert any("mainLink.url" in m and repr(url) in m for m in warnings), url
    if held:
        assert 1 == sum("cannot take some workflow events yet" in m for m in warnings)  # one per cause
    refused = [SCENARIOS[name]["calls"][i]["method"] for i in _refused_by_both(name)]
    assert refused == [str(e).split("(", 1)[0] for e in swallowed]
    assert len(refused) == sum(
        bool(re.match(rf"(workflow_trace: )?workflow\.{r}: ", m)) for r in set(refused) for m in warnings
    )


def test_a_held_job_does_not_hold_back_the_project_edges(
    scenario_instance: FakeInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    """Instance 6.11.10, a job and then project edges: the projects arrive as the SDK sent them, the three job
    edges wait in the spool, one WARNING names the cause (the delivery layer and the transport share it) and
    one says how many wait."""
    spool = tmp_path / "spool.db"
    with caplog.at_level(logging.WARNING, logger="workflow_trace"):
        replay("old_instance_6_11_10", scenario_instance, monkeypatch, spool)
        posted = _posted(scenario_instance)
        held = _spooled(spool, capsys)
    assert _recorded_edges("old_instance_6_11_10") == posted
    assert ["project", "project"] == [json.loads(body)["type"] for _, body, _ in posted]
    assert 3 == held
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    counts = [w for w in warnings if re.match(r"\d+ event\(s\) for \S+ wait in the spool", w)]
    assert ["3 event(s)"] == [w.split(" for ")[0] for w in counts]  # flush() was False: how many wait
    warnings = [w for w in warnings if w not in counts]
    assert 1 == len(warnings)
    assert "version 6.11.10" in warnings[0]
    assert "labeling jobs" in warnings[0]
    assert "6.11.11 or newer" in warnings[0]
