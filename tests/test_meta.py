"""WorkflowSettings / WorkflowMeta: validation and the exact wire form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import workflow_trace as wt
from workflow_trace import WorkflowMeta, WorkflowSettings
from workflow_trace._meta import meta_to_wire

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
