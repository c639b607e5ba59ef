"""Card customisation: ``WorkflowSettings`` and ``WorkflowMeta``, and the one conversion to the SDK's form.

Field names and rules follow the Supervisely workflow documentation. The wire form is what the official
SDK sends in the ``meta`` of ``workflow.node.add-input`` / ``add-output``::

    {"customRelationSettings": {"title": "<h4>T</h4>", "description": "<small>D</small>",
      "icon": {"icon": "zmdi-archive", "color": "#ff4c9e", "backgroundColor": "#ffe3ed"},
      "mainLink": {"url": "/files/1/true/?teamId=7", "title": "Download"}},
     "customNodeSettings": {...}}

Only set fields appear. The ``icon`` needs all three icon fields and ``mainLink`` both url fields; a card
with only some of them set is accepted (as the SDK does) but the incomplete part is left out of the wire
form and a WARNING says which field is missing.

A meta is given as a :class:`WorkflowMeta`, a plain dict in the wire form, or the SDK's own
``supervisely.WorkflowMeta`` (duck-typed: an object with ``as_dict``, or with ``relation_settings`` /
``node_settings`` whose settings have ``as_dict`` or the seven fields). :func:`meta_to_wire` is the one
conversion, in two modes:

- **strict** (decorators, steps, ``workflow_step(meta=...)``): everything the SDK's JSON schema refuses
  and everything workflow_trace's own rules refuse (a ``url`` that does not start with ``/``, a colour
  that is not ``#rgb``/``#rrggbb``, an icon name that is not a Material Design name) raises a
  :class:`~workflow_trace.ConfigurationError` naming the field, at decoration time; empty cards are left out.
- **lenient** (the :mod:`workflow_trace.workflow` facade, which sends what the SDK sends): the meta goes out
  as the SDK would send it — an empty card as ``{}``, ``"orange"`` or ``"zmdi-zmdi-folder"`` as given, a
  relative link such as ``apps/sessions/99`` as it is. What the SDK's schema refuses (an unknown key, a
  value that is not a string) drops the whole meta with one WARNING, and the edge is still recorded, as
  the SDK does. One thing is refused for safety: a link that leaves the instance or runs code (a URL with
  a scheme — ``javascript:``, ``data:``, ``https://...`` — or an authority — ``//host``, ``/\\host`` — or
  with control characters). That costs only the link (``mainLink``), with one WARNING naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Optional, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ._context import logger, safe_repr, warn
from ._errors import ConfigurationError

__all__ = [
    "Meta", "MetaLike", "SdkMeta", "WorkflowMeta", "WorkflowSettings", "card_fields", "link_problem", "meta_to_wire",
    "to_meta",
]


_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_ICON = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TITLE = re.compile(r"^\s*<h4>(.*)</h4>\s*$", re.DOTALL)
_DESCRIPTION = re.compile(r"^\s*<small>(.*)</small>\s*$", re.DOTALL)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")

#: Wire card key -> the ``WorkflowMeta`` attribute holding its settings.
_CARDS = {"customRelationSettings": "relation_settings", "customNodeSettings": "node_settings"}
_CARD_KEYS = ("title", "description", "icon", "mainLink")
_ICON_KEYS = ("icon", "color", "backgroundColor")
_LINK_KEYS = ("url", "title")
#: The seven fields of a card's settings, in the SDK's ``WorkflowSettings`` order.
_FIELDS = ("title", "icon", "icon_color", "icon_bg_color", "url", "url_title", "description")


def link_problem(url: str) -> str | None:
    """Why a card's link is unsafe to send (it leaves the instance or runs code), or ``None``.

    Safe: a path on the instance, absolute (``/files/1``) or relative (``apps/sessions/99``, which the SDK's
    own training app sends). Unsafe: a scheme (``javascript:``, ``data:``, ``https://...``), an authority
    (``//host``; browsers read ``/\\host`` the same way) and control characters (browsers drop some of
    them, so ``java\\tscript:`` would run). Leading and trailing spaces are ignored, as browsers ignore them.
    """
    if _CONTROL.search(url):
        return "has control characters or a backslash"
    probe = url.strip(" ")
    if probe.startswith("//"):
        return "points to another host"
    if _SCHEME.match(probe):
        return f"has a scheme ({probe.split(':', 1)[0].lower()}:); only links on the instance are kept"
    return None


def _settings_wire(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The SDK's JSON form of one card's seven fields (only set fields; an incomplete icon or link is out)."""
    out: dict[str, Any] = {}
    if fields.get("title") is not None:
        out["title"] = f"<h4>{fields['title']}</h4>"
    if fields.get("description") is not None:
        out["description"] = f"<small>{fields['description']}</small>"
    if all(fields.get(k) is not None for k in ("icon", "icon_color", "icon_bg_color")):
        out["icon"] = {"icon": f"zmdi-{fields['icon']}", "color": fields["icon_color"],
                       "backgroundColor": fields["icon_bg_color"]}
    if fields.get("url") is not None and fields.get("url_title") is not None:
        out["mainLink"] = {"url": fields["url"], "title": fields["url_title"]}
    return out


class _Positional(BaseModel):
    """A frozen model whose fields may also be given positionally, in their documented order."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    def __init__(self, *args: Any, **fields: Any) -> None:
        names = list(type(self).model_fields)
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} arguments ({', '.join(names)})")
        # zip stops at the last argument: the fields not given keep their defaults
        super().__init__(**dict(zip(names, args, strict=False)), **fields)


class WorkflowSettings(_Positional):
    """The look of one card: title, description, icon and main link (see the module docstring).

    Positional arguments are taken in this order: ``WorkflowSettings(title, description, icon, icon_color,
    icon_bg_color, url, url_title)`` (the SDK's own class puts ``description`` last: pass keywords when
    porting code that gives more than a title positionally).
    """

    title: Optional[str] = None
    description: Optional[str] = None
    icon: Optional[str] = None
    icon_color: Optional[str] = None
    icon_bg_color: Optional[str] = None
    url: Optional[str] = None
    url_title: Optional[str] = None

    @field_validator("url")
    @classmethod
    def _url(cls, url: Optional[str]) -> Optional[str]:
        if url is None:
            return None
        problem = link_problem(url) or (None if url.startswith("/") else "must start with '/'")
        if problem is not None:
            raise ValueError(f"{problem} (got {url!r}): a card link is a path on the instance such as '/files/1'; "
                             "absolute and javascript: URLs are refused")
        return url

    @field_validator("icon_color", "icon_bg_color")
    @classmethod
    def _color(cls, color: Optional[str]) -> Optional[str]:
        if color is not None and not _COLOR.match(color):
            raise ValueError(f"must be a hex colour '#rgb' or '#rrggbb' (got {color!r})")
        return color

    @field_validator("icon")
    @classmethod
    def _icon(cls, icon: Optional[str]) -> Optional[str]:
        if icon is not None and icon.startswith("zmdi-"):
            raise ValueError(f"give the Material Design icon name without the 'zmdi-' prefix (got {icon!r})")
        if icon is not None and not _ICON.match(icon):
            raise ValueError(f"must be a Material Design icon name such as 'archive' (got {icon!r})")
        return icon

    @model_validator(mode="after")
    def _complete(self) -> WorkflowSettings:
        for part, names in (("icon", ("icon", "icon_color", "icon_bg_color")), ("main link", ("url", "url_title"))):
            missing = [name for name in names if getattr(self, name) is None]
            if 0 < len(missing) < len(names):
                logger.warning("WorkflowSettings: the %s is left out because %s is not set", part, ", ".join(missing))
        return self

    def to_wire(self) -> dict[str, Any]:
        """The SDK's JSON form of these settings (only set fields)."""
        return _settings_wire(self.__dict__)


class WorkflowMeta(_Positional):
    """Settings of the two cards one workflow call touches: the relation (input/output) and the node.

    Each may be a :class:`WorkflowSettings`, a dict of its fields or the SDK's own ``WorkflowSettings``.
    """

    relation_settings: Optional[WorkflowSettings] = None
    node_settings: Optional[WorkflowSettings] = None

    @field_validator("relation_settings", "node_settings", mode="before")
    @classmethod
    def _sdk_settings(cls, value: Any) -> Any:  # the SDK's WorkflowSettings (or a look-alike): its seven fields
        plain = value is None or isinstance(value, (WorkflowSettings, Mapping))
        return value if plain else {name: getattr(value, name, None) for name in _FIELDS}

    def to_wire(self) -> dict[str, Any]:
        """The SDK's JSON form; cards whose settings are empty are left out."""
        out: dict[str, Any] = {}
        for key, attribute in _CARDS.items():
            settings: WorkflowSettings | None = getattr(self, attribute)
            if settings is not None and (card := settings.to_wire()):
                out[key] = card
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> WorkflowMeta:
        """Validate a plain dict in the wire shape (strictly, as decorators do).

        Raises:
            ValueError: an unknown key or an invalid value, naming it.
        """
        problem = _schema_problem(data)
        if problem is not None:
            raise ValueError(problem)
        return cls(**{_CARDS[key]: _strict_settings(card, f"meta.{key}") for key, card in data.items()})


class SdkMeta(Protocol):
    """The SDK's ``supervisely.WorkflowMeta``, as workflow_trace reads it (without importing the SDK)."""

    @property
    def relation_settings(self) -> Any: ...

    @property
    def node_settings(self) -> Any: ...


MetaLike = WorkflowMeta | Mapping[str, Any] | SdkMeta | None


# -- the SDK's JSON schema (what it refuses, it sends the edge without meta) --------------------------------


def _type(value: Any) -> str:
    return type(value).__name__


def _exact(value: Any, keys: tuple[str, ...], where: str) -> str | None:
    """A mapping with exactly ``keys``, each a str (the SDK's schema for ``icon`` and ``mainLink``)."""
    if not isinstance(value, Mapping):
        return f"{where} must be a mapping with {', '.join(keys)}, not {_type(value)}"
    if set(value) != set(keys):
        return f"{where} must have exactly: {', '.join(keys)} (got {', '.join(map(str, value)) or 'nothing'})"
    for key in keys:
        if not isinstance(value[key], str):
            return f"{where}.{key} must be a str, not {_type(value[key])}"
    return None


def _card_problem(card: Any, where: str) -> str | None:
    if not isinstance(card, Mapping):
        return f"{where} must be a mapping, not {_type(card)}"
    unknown = [str(k) for k in card if k not in _CARD_KEYS]
    if unknown:
        return f"{where} has unknown key(s) {unknown}; allowed: {', '.join(_CARD_KEYS)}"
    for key in ("title", "description"):
        if key in card and not isinstance(card[key], str):
            return f"{where}.{key} must be a str, not {_type(card[key])}"
    for key, keys in (("icon", _ICON_KEYS), ("mainLink", _LINK_KEYS)):
        if key in card and (problem := _exact(card[key], keys, f"{where}.{key}")):
            return problem
    return None


def _schema_problem(wire: Any) -> str | None:
    """Why the SDK's JSON schema for a meta refuses ``wire``, naming the field; ``None`` when it takes it."""
    if not isinstance(wire, Mapping):
        return f"meta must be a WorkflowMeta or a dict, not {_type(wire)}"
    unknown = [str(k) for k in wire if k not in _CARDS]
    if unknown:
        return f"meta has unknown key(s) {unknown}; allowed: {', '.join(_CARDS)}"
    if not wire:
        return "meta has no card: customRelationSettings or customNodeSettings"
    for key, card in wire.items():
        problem = _card_problem(card, f"meta.{key}")
        if problem is not None:
            return problem
    return None


def card_fields(card: Mapping[str, Any]) -> dict[str, str]:
    """The settings fields a card in the wire form sets, read tolerantly (values that are not strings are
    skipped): the ``<h4>``/``<small>`` wrappers and the icon's ``zmdi-`` prefix removed."""
    fields: dict[str, str] = {}
    for key, wrapper in (("title", _TITLE), ("description", _DESCRIPTION)):
        if isinstance(card.get(key), str):
            match = wrapper.match(card[key])
            fields[key] = match.group(1) if match else card[key]
    for key, names in (("icon", {"icon": "icon", "color": "icon_color", "backgroundColor": "icon_bg_color"}),
                       ("mainLink", {"url": "url", "title": "url_title"})):
        part = card.get(key)
        if isinstance(part, Mapping):
            fields.update((name, part[src]) for src, name in names.items() if isinstance(part.get(src), str))
    if "icon" in fields:
        fields["icon"] = fields["icon"].removeprefix("zmdi-")
    return fields


def _strict_settings(card: Mapping[str, Any], where: str) -> WorkflowSettings:
    """A card that passed the schema, checked against workflow_trace's own rules."""
    if "icon" in card and not card["icon"]["icon"].startswith("zmdi-"):
        raise ValueError(f"{where}.icon.icon must start with 'zmdi-' in the wire form (got {card['icon']['icon']!r})")
    try:
        return WorkflowSettings(**card_fields(card))
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise ValueError(f"{where}: {details}") from None


# -- reading what the user gave -------------------------------------------------------------------------


def _attribute_or_call(value: Any) -> Any:
    """``as_dict`` is a property on the SDK's classes; a method on look-alikes."""
    return value() if callable(value) else value


def _sdk_wire(meta: Any) -> Any:
    """The wire form of the SDK's ``WorkflowMeta`` (or a look-alike): what the SDK would send.

    Its ``as_dict`` when it has one (that is the SDK's own rendering, attributes set after construction
    included); else each settings object's ``as_dict``, or its seven fields rendered as the SDK renders them.
    A settings object that is ``None`` is left out; one that renders to nothing is an empty card ``{}``,
    as the SDK sends it.
    """
    as_dict = getattr(meta, "as_dict", None)
    if as_dict is not None:
        return _attribute_or_call(as_dict)
    out: dict[str, Any] = {}
    for key, attribute in _CARDS.items():
        settings = getattr(meta, attribute, None)
        if settings is None:
            continue
        rendered = getattr(settings, "as_dict", None)
        if rendered is not None:
            out[key] = _attribute_or_call(rendered)
        else:  # a look-alike, or our WorkflowSettings: its seven fields
            out[key] = _settings_wire({name: getattr(settings, name, None) for name in _FIELDS})
    return out or None


def _plain(value: Any) -> Any:
    """A JSON-ready copy: mappings become dicts (key order kept)."""
    return {str(k): _plain(v) for k, v in value.items()} if isinstance(value, Mapping) else value


def meta_to_wire(meta: Any, *, lenient: bool = False, culprit: str = "meta") -> dict[str, Any] | None:
    """The wire form of ``meta`` (see the module docstring for the two modes), or ``None`` for no meta.

    Args:
        meta: A :class:`WorkflowMeta`, a wire dict, the SDK's ``WorkflowMeta`` (duck-typed) or ``None``.
        lenient: The facade's mode: what the SDK would send, minus unsafe links; problems are WARNINGs
            (naming ``culprit`` and the field) and never cost the edge.
        culprit: Who asks (``workflow.add_output_file``), for the WARNINGs.

    Raises:
        ConfigurationError: (a ``ValueError``) strict mode only: an invalid meta, naming the field.
    """
    if meta is None:
        return None
    if isinstance(meta, WorkflowMeta):
        return meta.to_wire() or None  # validated when it was built
    sdk = hasattr(meta, "as_dict") or (hasattr(meta, "relation_settings") and hasattr(meta, "node_settings"))
    wire: Any = _sdk_wire(meta) if sdk and not isinstance(meta, Mapping) else meta
    if wire is None or (isinstance(wire, Mapping) and not wire):
        return None  # {}, or the SDK's WorkflowMeta() with no settings: nothing to say (the SDK sends no meta)
    if not lenient:
        try:
            WorkflowMeta.from_wire(wire)  # the SDK's schema, then workflow_trace's own rules
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        return {key: _plain(card) for key, card in wire.items() if card} or None
    problem = _schema_problem(wire)
    if problem is not None:
        warn(("meta", culprit, problem), "%s: %s; the meta is left out and the edge recorded without it (as "
             "the SDK does)", culprit, problem)
        return None
    sent: dict[str, Any] = _plain(wire)
    for key, card in sent.items():
        link = card.get("mainLink")
        problem = None if link is None else link_problem(link["url"])
        if problem is not None:
            del card["mainLink"]
            warn(("meta link", culprit, key, link["url"]), "%s: meta.%s.mainLink.url %s %s; the link is left out "
                 "of the card, the rest is recorded", culprit, key, safe_repr(link["url"], 80), problem)
    return sent


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


def to_meta(meta: Any, *, lenient: bool = False, culprit: str = "meta") -> Meta | None:
    """:func:`meta_to_wire`, once, as the :class:`Meta` records carry; ``None`` when it says nothing.

    Raises:
        ConfigurationError: (a ``ValueError``) strict mode only: an invalid meta, naming the field.
    """
    wire = meta_to_wire(meta, lenient=lenient, culprit=culprit)
    return None if wire is None else Meta(wire)
