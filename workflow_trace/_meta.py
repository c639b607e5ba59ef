"""Card customisation: ``WorkflowSettings`` and ``WorkflowMeta``, validated once and sent in the SDK's form.

Field names and rules follow the Supervisely workflow documentation. The wire form is what the official
SDK sends in the ``meta`` of ``workflow.node.add-input`` / ``add-output``::

    {"customRelationSettings": {"title": "<h4>T</h4>", "description": "<small>D</small>",
      "icon": {"icon": "zmdi-archive", "color": "#ff4c9e", "backgroundColor": "#ffe3ed"},
      "mainLink": {"url": "/files/1/true/?teamId=7", "title": "Download"}},
     "customNodeSettings": {...}}

Only set fields appear. The ``icon`` needs all three icon fields and ``mainLink`` both url fields; a card
with only some of them set is accepted (as the SDK does) but the incomplete part is left out of the wire
form and a WARNING says which field is missing.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ._context import logger
from ._errors import ConfigurationError

__all__ = ["Meta", "MetaLike", "WorkflowMeta", "WorkflowSettings", "meta_to_wire", "to_meta"]


_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_ICON = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TITLE = re.compile(r"^<h4>(.*)</h4>$", re.DOTALL)
_DESCRIPTION = re.compile(r"^<small>(.*)</small>$", re.DOTALL)


def _check_url(url: str) -> str:
    if not url.startswith("/") or url.startswith("//"):
        raise ValueError(
            f"must start with '/' and be relative to the instance (got {url!r}); "
            "absolute and javascript: URLs are refused"
        )
    if any(ch in url for ch in "\r\n\t"):
        raise ValueError("must not contain control characters")
    return url


def _check_color(color: str) -> str:
    if not _COLOR.match(color):
        raise ValueError(f"must be a hex colour '#rgb' or '#rrggbb' (got {color!r})")
    return color


def _check_icon(icon: str) -> str:
    if icon.startswith("zmdi-"):
        raise ValueError(f"give the Material Design icon name without the 'zmdi-' prefix (got {icon!r})")
    if not _ICON.match(icon):
        raise ValueError(f"must be a Material Design icon name such as 'archive' (got {icon!r})")
    return icon


class WorkflowSettings(BaseModel):
    """The look of one card: title, description, icon and main link (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: Optional[str] = None
    description: Optional[str] = None
    icon: Optional[str] = None
    icon_color: Optional[str] = None
    icon_bg_color: Optional[str] = None
    url: Optional[str] = None
    url_title: Optional[str] = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else _check_url(value)

    @field_validator("icon_color", "icon_bg_color")
    @classmethod
    def _color(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else _check_color(value)

    @field_validator("icon")
    @classmethod
    def _icon(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else _check_icon(value)

    @model_validator(mode="after")
    def _complete(self) -> WorkflowSettings:
        icon = {"icon": self.icon, "icon_color": self.icon_color, "icon_bg_color": self.icon_bg_color}
        if any(v is not None for v in icon.values()) and not all(v is not None for v in icon.values()):
            missing = ", ".join(k for k, v in icon.items() if v is None)
            logger.warning("WorkflowSettings: the icon is left out because %s is not set", missing)
        link = {"url": self.url, "url_title": self.url_title}
        if any(v is not None for v in link.values()) and not all(v is not None for v in link.values()):
            missing = ", ".join(k for k, v in link.items() if v is None)
            logger.warning("WorkflowSettings: the main link is left out because %s is not set", missing)
        return self

    def to_wire(self) -> dict[str, Any]:
        """The SDK's JSON form of these settings (only set fields)."""
        out: dict[str, Any] = {}
        if self.title is not None:
            out["title"] = f"<h4>{self.title}</h4>"
        if self.description is not None:
            out["description"] = f"<small>{self.description}</small>"
        if self.icon is not None and self.icon_color is not None and self.icon_bg_color is not None:
            out["icon"] = {
                "icon": f"zmdi-{self.icon}",
                "color": self.icon_color,
                "backgroundColor": self.icon_bg_color,
            }
        if self.url is not None and self.url_title is not None:
            out["mainLink"] = {"url": self.url, "title": self.url_title}
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "settings") -> WorkflowSettings:
        """Validate the SDK's JSON form of one card and return the equivalent settings.

        Raises:
            ValueError: an unknown key or an invalid value, naming it.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be a mapping, not {type(data).__name__}")
        unknown = set(data) - {"title", "description", "icon", "mainLink"}
        if unknown:
            raise ValueError(
                f"{where} has unknown key(s) {sorted(unknown)}; "
                "allowed: title, description, icon, mainLink"
            )
        fields: dict[str, Any] = {}
        if "title" in data:
            title = _str(data["title"], f"{where}.title")
            match = _TITLE.match(title)
            fields["title"] = match.group(1) if match else title
        if "description" in data:
            desc = _str(data["description"], f"{where}.description")
            match = _DESCRIPTION.match(desc)
            fields["description"] = match.group(1) if match else desc
        if "icon" in data:
            icon = data["icon"]
            if not isinstance(icon, Mapping) or set(icon) != {"icon", "color", "backgroundColor"}:
                raise ValueError(f"{where}.icon must have exactly: icon, color, backgroundColor")
            name = _str(icon["icon"], f"{where}.icon.icon")
            if not name.startswith("zmdi-"):
                raise ValueError(f"{where}.icon.icon must start with 'zmdi-' in the wire form (got {name!r})")
            fields["icon"] = name[len("zmdi-"):]
            fields["icon_color"] = _str(icon["color"], f"{where}.icon.color")
            fields["icon_bg_color"] = _str(icon["backgroundColor"], f"{where}.icon.backgroundColor")
        if "mainLink" in data:
            link = data["mainLink"]
            if not isinstance(link, Mapping) or set(link) != {"url", "title"}:
                raise ValueError(f"{where}.mainLink must have exactly: url, title")
            fields["url"] = _str(link["url"], f"{where}.mainLink.url")
            fields["url_title"] = _str(link["title"], f"{where}.mainLink.title")
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise ValueError(f"{where}: {exc}") from None


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a str, not {type(value).__name__}")
    return value


class WorkflowMeta(BaseModel):
    """Settings of the two cards one workflow call touches: the relation (input/output) and the node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    relation_settings: Optional[WorkflowSettings] = None
    node_settings: Optional[WorkflowSettings] = None

    def to_wire(self) -> dict[str, Any]:
        """The SDK's JSON form; cards whose settings are empty are left out."""
        out: dict[str, Any] = {}
        if self.relation_settings is not None and (rel := self.relation_settings.to_wire()):
            out["customRelationSettings"] = rel
        if self.node_settings is not None and (node := self.node_settings.to_wire()):
            out["customNodeSettings"] = node
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> WorkflowMeta:
        """Validate a plain dict in the wire shape.

        Raises:
            ValueError: an unknown key or an invalid value, naming it.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"meta must be a WorkflowMeta or a dict, not {type(data).__name__}")
        unknown = set(data) - {"customRelationSettings", "customNodeSettings"}
        if unknown:
            raise ValueError(
                f"meta has unknown key(s) {sorted(unknown)}; "
                "allowed: customRelationSettings, customNodeSettings"
            )
        rel = data.get("customRelationSettings")
        node = data.get("customNodeSettings")
        return cls(
            relation_settings=None if rel is None
            else WorkflowSettings.from_wire(rel, "meta.customRelationSettings"),
            node_settings=None if node is None
            else WorkflowSettings.from_wire(node, "meta.customNodeSettings"),
        )


MetaLike = WorkflowMeta | Mapping[str, Any] | None


def meta_to_wire(meta: MetaLike) -> dict[str, Any] | None:
    """Validate ``meta`` and return its wire form, or ``None`` when it says nothing.

    A plain dict is validated and then kept exactly as given (so its bytes on the wire are the user's).

    Raises:
        ConfigurationError: (a ``ValueError``) an invalid meta, naming the field.
    """
    if meta is None:
        return None
    if isinstance(meta, WorkflowMeta):
        wire = meta.to_wire()
        return wire or None
    try:
        WorkflowMeta.from_wire(meta)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    wire = {k: copy.deepcopy(v) for k, v in meta.items() if v}
    return wire or None


class Meta:
    """A validated card in the wire form, made once (when decorating, or once per facade call).

    What records carry: ``wire`` is the dict sent and stored, ``json`` its compact JSON (the dedup key of a
    node recorded twice with the same card, and the journal's bytes).
    """

    __slots__ = ("json", "wire")

    def __init__(self, wire: dict[str, Any]) -> None:
        self.wire = wire
        self.json = json.dumps(wire, separators=(",", ":"), ensure_ascii=False)

    def __repr__(self) -> str:
        return f"Meta({self.json})"


def to_meta(meta: MetaLike) -> Meta | None:
    """Validate ``meta`` (a ``WorkflowMeta`` or a wire dict) once; ``None`` when it says nothing.

    Raises:
        ConfigurationError: (a ``ValueError``) an invalid meta, naming the field.
    """
    wire = meta_to_wire(meta)
    return None if wire is None else Meta(wire)
