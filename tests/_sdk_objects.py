"""Look-alikes of the Supervisely SDK's argument objects, for tests and the replay that run without the SDK.

Self-written from the SDK's documented behaviour (6.74.51), not copied: ``WorkflowSettings`` clears an
incomplete link or icon when it is built (the SDK checks truthiness there) and renders with ``as_dict``, a
property; ``WorkflowMeta.as_dict`` has a card for every settings object that is not ``None`` (an empty one
as ``{}``) and is ``None`` when both are ``None``. ``Info`` stands for ``FileInfo`` / ``ProjectInfo`` /
``DatasetInfo``: attributes only. workflow_trace must accept them as it accepts the SDK's own (duck typing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


class Info:
    """A ``FileInfo`` / ``ProjectInfo`` / ``DatasetInfo`` lookalike: attributes only."""

    def __init__(self, kind: str, **fields: Any) -> None:
        self.__dict__.update(fields)
        self._kind = kind

    def __repr__(self) -> str:
        return f"{self._kind}({', '.join(f'{k}={v!r}' for k, v in vars(self).items() if k != '_kind')})"


@dataclass
class WorkflowSettings:
    """Behaves as the SDK's: an incomplete link or icon is cleared at construction; ``as_dict`` is the wire."""

    title: Optional[str] = None
    icon: Optional[str] = None
    icon_color: Optional[str] = None
    icon_bg_color: Optional[str] = None
    url: Optional[str] = None
    url_title: Optional[str] = None
    description: Optional[str] = None

    def __post_init__(self) -> None:
        if bool(self.url) != bool(self.url_title):
            self.url = self.url_title = None
        icon = (self.icon, self.icon_color, self.icon_bg_color)
        if any(icon) and not all(icon):
            self.icon = self.icon_color = self.icon_bg_color = None

    @property
    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.title is not None:
            out["title"] = f"<h4>{self.title}</h4>"
        if self.description is not None:
            out["description"] = f"<small>{self.description}</small>"
        if None not in (self.icon, self.icon_color, self.icon_bg_color):
            out["icon"] = {"icon": f"zmdi-{self.icon}", "color": self.icon_color,
                           "backgroundColor": self.icon_bg_color}
        if self.url is not None and self.url_title is not None:
            out["mainLink"] = {"url": self.url, "title": self.url_title}
        return out


@dataclass
class WorkflowMeta:
    """Behaves as the SDK's: ``as_dict`` (a property) holds a card per settings object that is not ``None``."""

    relation_settings: Optional[WorkflowSettings] = None
    node_settings: Optional[WorkflowSettings] = None

    @property
    def as_dict(self) -> Optional[dict[str, Any]]:
        out: dict[str, Any] = {}
        if self.relation_settings is not None:
            out["customRelationSettings"] = self.relation_settings.as_dict
        if self.node_settings is not None:
            out["customNodeSettings"] = self.node_settings.as_dict
        return out or None


def build(spec: Any) -> Any:
    """The object a recorded scenario argument describes (``tests/sdk_recording/README.md``, the format)."""
    if isinstance(spec, list):
        return [build(item) for item in spec]
    if not isinstance(spec, dict):
        return spec
    kind = spec.get("__type__")
    fields = {k: build(v) for k, v in spec.items() if not k.startswith("__")}
    if kind is None:
        return fields
    if kind in ("FileInfo", "ProjectInfo", "DatasetInfo"):
        return Info(kind, **fields)
    cls = {"WorkflowSettings": WorkflowSettings, "WorkflowMeta": WorkflowMeta}[kind]
    n = spec.get("__positional__", 0)
    names = list(fields)[:n]
    obj = cls(*[fields[k] for k in names], **{k: v for k, v in fields.items() if k not in names})
    for name, value in spec.get("__set_after__", {}).items():
        setattr(obj, name, value)
    return obj


def call_args(call: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of one recorded call, built."""
    args = build(call["args"])
    names = list(args)[: call.get("positional", 0)]
    return [args[k] for k in names], {k: v for k, v in args.items() if k not in names}
