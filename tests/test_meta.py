"""WorkflowSettings / WorkflowMeta: validation and the exact wire form."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from _sdk_objects import WorkflowMeta as SdkMeta
from _sdk_objects import WorkflowSettings as SdkSettings
from pydantic import ValidationError

import workflow_trace as wt
from workflow_trace import WorkflowMeta, WorkflowSettings
from workflow_trace._meta import link_problem, meta_to_wire
from workflow_trace.backends.memory import MemoryBackend

GOLDEN = Path(__file__).parent / "data" / "sdk_requests.jsonl"  # recorded from SDK 6.74.51


def _golden_meta() -> list[dict[str, object]]:
    rows = [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["scenario"] == "meta" and "meta" in (r.get("body_json") or {})]


def test_full_settings_wire_form() -> None:
    """All fields give the SDK's nested form, with the <h4>/<small> wrappers and the zmdi- prefix."""
    settings = WorkflowSettings(
        title="T", description="D", icon="archive", icon_color="#ff4c9e", icon_bg_color="#ffe3ed",
        url="/files/1/true/?teamId=7", url_title="Download",
    )
    expected = {
        "customRelationSettings": {
            "title": "<h4>T</h4>", "description": "<small>D</small>",
            "icon": {"icon": "zmdi-archive", "color": "#ff4c9e", "backgroundColor": "#ffe3ed"},
            "mainLink": {"url": "/files/1/true/?teamId=7", "title": "Download"},
        }
    }
    assert expected == WorkflowMeta(relation_settings=settings).to_wire()


def test_golden_meta_bodies_byte_for_byte() -> None:
    """The meta the official SDK sent is reproduced exactly (same JSON text, same key order)."""
    golden = {json.dumps(r["body_json"]["meta"]) for r in _golden_meta()}  # type: ignore[index]
    rel = WorkflowSettings(title="Train", description="epoch 10", icon="folder", icon_color="#333333",
                           icon_bg_color="#FFFFFF", url="/files/789", url_title="Open file")
    ours = {
        json.dumps(WorkflowMeta(relation_settings=rel,
                                node_settings=WorkflowSettings(title="Node only")).to_wire()),
        json.dumps(WorkflowMeta(node_settings=WorkflowSettings(title="raw")).to_wire()),
        json.dumps(WorkflowMeta(node_settings=WorkflowSettings(title="Serve", url="/apps/sessions/5",
                                                               url_title="open")).to_wire()),
    }
    assert golden == ours


def test_golden_dict_meta_is_accepted_and_kept() -> None:
    """A plain dict in the wire shape is validated and kept exactly as given."""
    for row in _golden_meta():
        meta = row["body_json"]["meta"]  # type: ignore[index]
        assert json.dumps(meta) == json.dumps(meta_to_wire(meta))


def test_empty_meta_sends_nothing() -> None:
    """An empty meta (or empty settings) has no wire form, as the SDK sends no meta key."""
    assert meta_to_wire(WorkflowMeta()) is None
    assert meta_to_wire(WorkflowMeta(relation_settings=WorkflowSettings())) is None
    assert meta_to_wire({}) is None


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("url", {"url": "https://evil.example/x"}),
        ("url", {"url": "javascript:alert(1)"}),
        ("url", {"url": "//evil.example/x"}),
        ("icon_color", {"icon_color": "red"}),
        ("icon_bg_color", {"icon_bg_color": "#12345"}),
        ("icon", {"icon": "zmdi-archive"}),
        ("icon", {"icon": "Archive Box"}),
        ("title", {"title": 3}),
    ],
)
def test_settings_validation_names_the_field(field: str, kwargs: dict[str, object]) -> None:
    """An invalid value is refused at construction with an error naming the field."""
    with pytest.raises(ValueError, match=field):
        WorkflowSettings(**kwargs)


def test_unknown_settings_field_is_refused() -> None:
    """A misspelt field is an error, not silently ignored."""
    with pytest.raises(ValueError, match="icon_colour"):
        WorkflowSettings(icon_colour="#fff")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("meta", "culprit"),
    [
        ({"customRelationSetings": {}}, "customRelationSetings"),
        ({"customNodeSettings": {"mainLink": {"url": "http://x", "title": "t"}}}, "url"),
        ({"customNodeSettings": {"icon": {"icon": "archive", "color": "#fff", "backgroundColor": "#fff"}}},
         "zmdi-"),
        ({"customNodeSettings": {"colour": 1}}, "colour"),
        ({"customNodeSettings": {"icon": {"icon": "zmdi-a", "color": "blue", "backgroundColor": "#fff"}}},
         "icon_color"),
    ],
)
def test_dict_meta_validation_names_the_field(meta: dict[str, object], culprit: str) -> None:
    """A plain dict meta is validated too, naming the culprit."""
    with pytest.raises(ValueError, match=culprit):
        meta_to_wire(meta)


def test_partial_icon_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """An icon without its colours is left out of the wire form, and a WARNING says why."""
    settings = WorkflowSettings(title="x", icon="archive")
    assert settings.to_wire() == {"title": "<h4>x</h4>"}
    assert "icon_color" in caplog.text


def test_invalid_decorator_meta_fails_at_decoration_time() -> None:
    """meta= is validated when the decorator is applied, not at call time."""
    with pytest.raises(ValueError, match="consumes_project"):
        wt.consumes_project(meta={"bad": 1})


class TestSdkObjectsInDecoratorsAndSteps:
    """The SDK's WorkflowMeta (look-alikes here) is a meta in decorators and steps too, validated strictly."""

    def _meta(self, url: str = "/files/7/true") -> SdkMeta:
        return SdkMeta(relation_settings=SdkSettings(title="Checkpoints", icon="folder", icon_color="#FFA500",
                                                     icon_bg_color="#FFE8BE", url=url, url_title="Open Folder"))

    def test_the_same_card_as_workflow_meta(self) -> None:
        """The SDK object and workflow_trace's WorkflowMeta with the same fields give the same wire form."""
        ours = WorkflowMeta(relation_settings=WorkflowSettings(
            title="Checkpoints", icon="folder", icon_color="#FFA500", icon_bg_color="#FFE8BE",
            url="/files/7/true", url_title="Open Folder"))
        assert json.dumps(ours.to_wire()) == json.dumps(meta_to_wire(self._meta()))

    def test_a_decorator_records_it(self, memory: MemoryBackend) -> None:
        """@produces_folder(meta=sly.WorkflowMeta(...)) records the card."""

        @wt.produces_folder(meta=self._meta())
        def train() -> str:
            return "/experiments/1/checkpoints"

        train()
        [edge] = [e for e in memory.events if e.kind == "output"]
        assert self._meta().as_dict == edge.meta

    @pytest.mark.parametrize("url", ["apps/sessions/99", "javascript:alert(1)", "https://example.com"])
    def test_a_decorator_refuses_a_link_at_decoration_time(self, url: str) -> None:
        """Strict: the url must start with '/' (a relative link too), named in the error, before any call."""
        with pytest.raises(wt.ConfigurationError, match=r"produces_file\(meta=...\).*url"):
            wt.produces_file(meta=self._meta(url))

    def test_a_step_refuses_what_the_sdk_schema_refuses(self) -> None:
        """workflow_step(meta=...) with an unknown key: ConfigurationError naming it."""
        with pytest.raises(wt.ConfigurationError, match="bogus"):
            wt.workflow_step("s", meta={"customNodeSettings": {"bogus": 1}})

    def test_settings_without_as_dict_are_read_by_their_fields(self) -> None:
        """A look-alike without as_dict: its seven fields, rendered as the SDK renders them."""
        settings = SimpleNamespace(title="T", description=None, icon="folder", icon_color="#fff",
                                   icon_bg_color=None, url="/files/1", url_title="Open")
        meta = SimpleNamespace(relation_settings=None, node_settings=settings)
        assert {"customNodeSettings": {"title": "<h4>T</h4>", "mainLink": {"url": "/files/1", "title": "Open"}}} == (
            meta_to_wire(meta))

    def test_as_dict_may_be_a_method(self) -> None:
        """An object whose as_dict is a method (not the SDK's property) works too."""

        class Meta:
            def as_dict(self) -> dict[str, object]:
                return {"customNodeSettings": {"title": "<h4>m</h4>"}}

        assert {"customNodeSettings": {"title": "<h4>m</h4>"}} == meta_to_wire(Meta())

    def test_an_sdk_meta_without_settings_is_no_meta(self) -> None:
        """The SDK's WorkflowMeta() renders to None: no meta, in both modes."""
        assert meta_to_wire(SdkMeta()) is None
        assert meta_to_wire(SdkMeta(), lenient=True) is None

    def test_anything_else_is_refused(self) -> None:
        """Not a meta at all: strict raises naming the type; lenient says so and records no meta."""
        with pytest.raises(wt.ConfigurationError, match="WorkflowSettings"):
            meta_to_wire(WorkflowSettings(title="x"))
        assert meta_to_wire(42, lenient=True) is None


class TestLinkProblem:
    """Which card links are unsafe to send (the facade leaves them out)."""

    @pytest.mark.parametrize("url", ["javascript:alert(1)", "JAVASCRIPT:alert(1)", " javascript:x", "data:,x",
                                     "vbscript:x", "https://example.com", "http:/x", "//example.com",
                                     " //example.com", "/\\example.com", "java\tscript:x", "/a\nb", "/a\x00"])
    def test_unsafe(self, url: str) -> None:
        """A scheme, another host, a backslash or a control character."""
        assert link_problem(url) is not None

    @pytest.mark.parametrize("url", ["/files/1/true/?teamId=7", "apps/sessions/99", "/apps/1/sessions/2",
                                     "/model-benchmark?id=3#x", "projects/1:2", ""])
    def test_safe(self, url: str) -> None:
        """Paths on the instance, absolute or relative."""
        assert link_problem(url) is None


def test_the_fields_may_be_given_positionally_in_the_documented_order() -> None:
    """DESIGN.md 2: ``WorkflowSettings(title, description, icon, icon_color, icon_bg_color, url, url_title)``
    and ``WorkflowMeta(relation_settings=None, node_settings=None)``."""
    settings = WorkflowSettings("T", "D", "archive", "#fff", "#000", "/files/1", "Open")
    assert WorkflowSettings(title="T", description="D", icon="archive", icon_color="#fff", icon_bg_color="#000",
                            url="/files/1", url_title="Open") == settings
    assert {"customRelationSettings": {"title": "<h4>a</h4>"}, "customNodeSettings": {"title": "<h4>b</h4>"}} == (
        WorkflowMeta(WorkflowSettings("a"), WorkflowSettings("b")).to_wire())
    with pytest.raises(TypeError, match="at most 2 arguments"):
        WorkflowMeta(None, None, None)
    with pytest.raises(ValidationError, match="url"):  # validated as with keywords
        WorkflowSettings("T", None, None, None, None, "javascript:alert(1)", "x")


def test_a_workflow_meta_takes_the_sdks_workflow_settings() -> None:
    """DESIGN.md 6: wherever a meta is accepted the SDK's WorkflowSettings are too, inside our WorkflowMeta."""
    sdk = SdkSettings(title="Train", icon="archive", icon_color="#333", icon_bg_color="#fff", url="/files/7",
                      url_title="Open")
    meta = WorkflowMeta(relation_settings=sdk, node_settings=SdkSettings(title="node"))
    assert {"customRelationSettings": sdk.as_dict, "customNodeSettings": {"title": "<h4>node</h4>"}} == (
        meta.to_wire())
