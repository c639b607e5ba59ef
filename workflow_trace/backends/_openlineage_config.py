"""OpenLineage configuration read the way the official Python client (``openlineage-python``) reads it.

What is read, and in which order (checked against ``openlineage.client.client.OpenLineageClient``):

1. ``OPENLINEAGE_DISABLED=true`` (any case, surrounding spaces ignored): nothing else is read, nothing
   is sent.
2. The YAML file: the path in ``OPENLINEAGE_CONFIG`` when that file exists, else ``./openlineage.yml``
   (the current directory), else ``~/.openlineage/openlineage.yml``. A path in ``OPENLINEAGE_CONFIG``
   that is not a readable file is skipped (as by the client), with a warning.
3. ``OPENLINEAGE__*`` variables: the name after the prefix is split at ``__`` into nested lower-case keys
   (``OPENLINEAGE__TRANSPORT__AUTH__APIKEY`` is ``transport.auth.apikey``); a value that parses as JSON is
   used as parsed (``5``, ``true``, ``{"type": "api_key", ...}``), any other value as the string.
4. The file and the variables are merged key by key; **the file wins** where both set a key (the
   client's precedence).
5. A ``transport`` with a ``type`` is used; without one, ``OPENLINEAGE_URL`` (with
   ``OPENLINEAGE_ENDPOINT`` and ``OPENLINEAGE_API_KEY``) makes an ``http`` transport. (A ``transport``
   without a ``type`` and no ``OPENLINEAGE_URL`` is an error here; the client would print to the console.)

Only ``type: http`` is supported (``noop`` means disabled); ``kafka``, ``console``, ``file`` and the
others are refused with a :class:`~workflow_trace.ConfigurationError` naming what is supported. The http
keys are the client's: ``url``, ``endpoint``, ``timeout``, ``verify``, ``auth`` (``type: api_key`` with
``apiKey``), ``compression`` (``gzip``) and ``custom_headers``; ``retry`` is ignored (workflow_trace's
delivery layer retries, with a disk spool), other keys are ignored with a warning, as the client ignores
them. Our own options live in a ``workflow_trace:`` section that the official client ignores:
``namespace``, ``server_address``, ``job_prefix``, ``dot_replacement``, ``dataset_version``.

YAML is read with PyYAML when it is importable; otherwise with :func:`parse_yaml`, a reader of the
subset that configuration files use: block mappings and lists (of scalars or of mappings), plain,
single- and double-quoted scalars, ``#`` comments, one-line flow collections (``[a, b]``, ``{k: v}``).
Anchors, tags, block scalars (``|``, ``>``) and multiple documents are refused with the line number.

The API key is held in a :class:`Secret` from the moment it is read: it is in no ``repr``, log line or
error message.
"""

from __future__ import annotations

import hmac
import importlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit, urlunsplit

from .._context import logger
from .._errors import ConfigurationError

__all__ = [
    "CONFIG_FILE_NAME",
    "DEFAULT_ENDPOINT",
    "SUPPORTED_TRANSPORTS",
    "HttpTransportConfig",
    "OpenLineageSettings",
    "Secret",
    "config_file_candidates",
    "env_config",
    "find_config_file",
    "is_disabled",
    "is_sensitive_header",
    "load_settings",
    "parse_yaml",
    "safe_url",
]


CONFIG_FILE_NAME: Final = "openlineage.yml"
DEFAULT_ENDPOINT: Final = "api/v1/lineage"
ENV_PREFIX: Final = "OPENLINEAGE__"
SUPPORTED_TRANSPORTS: Final = ("http",)
#: The transport types of the official client, so that a known-but-unsupported type gets a clear message.
_CLIENT_TRANSPORTS: Final = frozenset({
    "async_http", "composite", "console", "datadog", "datazone", "file", "gcplineage", "http", "kafka",
    "msk-iam", "noop", "transform",
})
_HTTP_KEYS: Final = frozenset({"type", "url", "endpoint", "timeout", "verify", "auth", "compression",
                               "custom_headers"})
_IGNORED_HTTP_KEYS: Final = frozenset({"retry", "session", "adapter"})
#: Keys of the ``workflow_trace:`` section.
OPTION_KEYS: Final = ("namespace", "server_address", "job_prefix", "dot_replacement", "dataset_version")
# Header names whose values are credentials: masked in error messages too.
_SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|cookie|passw", re.IGNORECASE)


class Secret:
    """A credential: ``repr`` and ``str`` give ``***``; only :meth:`reveal` gives the value.

    It has no ``__dict__`` (``vars()`` shows nothing), cannot be pickled and compares in constant time.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The value (for the one place that sends it)."""
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


def is_sensitive_header(name: str) -> bool:
    """Whether a header's value is a credential (``Authorization``, ``X-Api-Key``, ``Cookie``...)."""
    return _SENSITIVE_HEADER.search(name) is not None


def safe_url(url: str) -> str:
    """``url`` without ``user:password@``, query or fragment (for keys, reprs and messages)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class HttpTransportConfig:
    """The ``http`` transport of an OpenLineage configuration (the client's ``HttpConfig`` keys).

    Attributes:
        url: The server's base URL.
        endpoint: The lineage endpoint under ``url``.
        api_key: Sent as ``Authorization: Bearer <key>``.
        timeout: Seconds per request (``None``: the backend's default).
        verify: TLS verification: ``True``, ``False`` or a CA bundle path.
        compression: ``"gzip"`` or ``None``.
        custom_headers: Extra request headers (values held as :class:`Secret`: they may be credentials).
        source: Where it was configured (a file path, the variables), for messages.
    """

    url: str
    endpoint: str = DEFAULT_ENDPOINT
    api_key: Secret | None = None
    timeout: float | None = None
    verify: bool | str = True
    compression: str | None = None
    custom_headers: Mapping[str, Secret] = field(default_factory=dict)
    source: str = ""

    def __repr__(self) -> str:
        auth = ", api_key=***" if self.api_key else ""
        headers = f", custom_headers={sorted(self.custom_headers)}" if self.custom_headers else ""
        return f"HttpTransportConfig({safe_url(self.url)!r}, endpoint={self.endpoint!r}{auth}{headers})"


@dataclass(frozen=True)
class OpenLineageSettings:
    """What the OpenLineage configuration says.

    Attributes:
        disabled: ``OPENLINEAGE_DISABLED=true`` or ``transport: {type: noop}``.
        transport: The http transport, or ``None`` when nothing configures one.
        namespace: The job namespace (``workflow_trace.namespace``, else ``OPENLINEAGE_NAMESPACE``).
        options: The other keys of the ``workflow_trace:`` section.
        config_file: The YAML file that was read, if any.
    """

    disabled: bool = False
    transport: HttpTransportConfig | None = None
    namespace: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    config_file: Path | None = None


def is_disabled(environ: Mapping[str, str] | None = None) -> bool:
    """``OPENLINEAGE_DISABLED`` is ``true`` (the client's test: lower-cased and stripped)."""
    env = os.environ if environ is None else environ
    return env.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true"


# -- finding and reading the file ----------------------------------------------------------------------


def config_file_candidates(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None, home: Path | None = None
) -> list[Path]:
    """Where the YAML file is looked for, in order."""
    env = os.environ if environ is None else environ
    paths: list[Path] = []
    explicit = env.get("OPENLINEAGE_CONFIG")
    if explicit:
        paths.append(Path(explicit).expanduser())
    paths.append((cwd if cwd is not None else Path.cwd()) / CONFIG_FILE_NAME)
    paths.append((home if home is not None else Path.home()) / ".openlineage" / CONFIG_FILE_NAME)
    return paths


def find_config_file(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None, home: Path | None = None
) -> Path | None:
    """The first readable file of :func:`config_file_candidates`, or ``None``."""
    env = os.environ if environ is None else environ
    for i, path in enumerate(config_file_candidates(env, cwd, home)):
        try:
            if path.is_file() and os.access(path, os.R_OK):
                return path
        except OSError:
            pass
        if i == 0 and env.get("OPENLINEAGE_CONFIG"):
            logger.warning("OPENLINEAGE_CONFIG=%s is not a readable file; looking further", path)
    return None


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the OpenLineage configuration {path}: {exc}") from None
    data = _load_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: the OpenLineage configuration must be a mapping (transport: ...)")
    return data


def _load_yaml(text: str, source: str) -> Any:
    try:
        # PyYAML, when the environment has it: the full language (imported by name: no stubs needed).
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        return parse_yaml(text, source)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # PyYAML's own message quotes the offending line, which may hold the key: give its position only.
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigurationError(f"{source}{where}: not valid YAML: {problem}") from None


# -- the YAML subset -------------------------------------------------------------------------------------

_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+\.[0-9]*)([eE][-+]?[0-9]+)?")
_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})
_NULL = frozenset({"", "~", "null"})


@dataclass
class _Line:
    number: int
    indent: int
    text: str


def _fail(source: str, number: int, message: str) -> NoReturn:
    # Messages name the line, never quote its value: the file holds the API key.
    raise ConfigurationError(f"{source}, line {number}: {message}")


def _strip_comment(text: str) -> str:
    """``text`` without a ``#`` comment (one that starts the line or follows a space, outside quotes)."""
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if quote == '"' and char == "\\":
            i += 2  # an escaped character, maybe a quote
            continue
        if quote and char == quote:
            if quote == "'" and text[i + 1 : i + 2] == "'":
                i += 2  # '' is a quote inside a single-quoted string
                continue
            quote = ""
        elif not quote and char in "'\"" and (i == 0 or text[i - 1] in " \t:[{,-"):
            quote = char
        elif not quote and char == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
        i += 1
    return text.rstrip()


def parse_yaml(text: str, source: str = "<yaml>") -> Any:
    """Parse the YAML subset of configuration files (see the module docstring) into Python values.

    Scalars resolve as YAML 1.1 (PyYAML) does for the common cases: ``true``/``yes``/``on`` and
    ``false``/``no``/``off`` (any case) are booleans, ``null``, ``~`` and nothing are ``None``, numbers
    are ``int`` or ``float``, everything else (and anything quoted) is a string.

    Raises:
        ConfigurationError: syntax outside the subset, naming ``source`` and the line.
    """
    lines: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), 1):
        body = raw.lstrip(" ")
        if body.startswith("\t") or (body and "\t" in raw[: len(raw) - len(body)]):
            _fail(source, number, "tabs cannot indent YAML; use spaces")
        content = _strip_comment(body)
        if not content:
            continue
        if content in ("---", "...") and raw.startswith(content):
            if lines:
                _fail(source, number, "only one YAML document is supported")
            continue
        lines.append(_Line(number, len(raw) - len(body), content))
    if not lines:
        return None
    value, end = _parse_block(lines, 0, lines[0].indent, source)
    if end < len(lines):
        _fail(source, lines[end].number, "unexpected indentation")
    return value


def _is_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _parse_block(lines: list[_Line], i: int, indent: int, source: str) -> tuple[Any, int]:
    if _is_item(lines[i].text):
        return _parse_list(lines, i, indent, source)
    return _parse_mapping(lines, i, indent, source)


def _split_key(line: _Line, source: str) -> tuple[str, str] | None:
    """``(key, rest)`` of a ``key: value`` line, or ``None`` when the line is not one."""
    text = line.text
    if text[0] in "'\"":
        quote = text[0]
        end = text.find(quote, 1)
        while quote == "'" and end != -1 and text[end + 1 : end + 2] == "'":
            end = text.find(quote, end + 2)
        if end == -1:
            _fail(source, line.number, "unterminated quoted key")
        after = text[end + 1 :]
        if not (after == ":" or after.startswith(": ")):
            return None
        return str(_scalar(text[: end + 1], line, source)), after[1:].strip()
    match = re.search(r":( |$)", text)
    if match is None:
        return None
    key = text[: match.start()].strip()
    if not key or key[0] in "[{?&*!|>%@`":
        _fail(source, line.number, f"unsupported mapping key {key!r}")
    return key, text[match.end() :].strip()


def _parse_mapping(lines: list[_Line], i: int, indent: int, source: str) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while i < len(lines) and lines[i].indent == indent and not _is_item(lines[i].text):
        line = lines[i]
        split = _split_key(line, source)
        if split is None:
            _fail(source, line.number, "expected 'key: value'")  # the line is not quoted: it may hold a secret
        key, rest = split
        if key in out:
            _fail(source, line.number, f"duplicate key {key!r}")
        i += 1
        if rest:
            out[key] = _inline(rest, line, source)
        elif i < len(lines) and lines[i].indent > indent:
            out[key], i = _parse_block(lines, i, lines[i].indent, source)
        elif i < len(lines) and lines[i].indent == indent and _is_item(lines[i].text):
            out[key], i = _parse_list(lines, i, indent, source)  # a list may sit at its key's indent
        else:
            out[key] = None
    if i < len(lines) and lines[i].indent > indent:
        _fail(source, lines[i].number, "unexpected indentation")
    return out, i


def _parse_list(lines: list[_Line], i: int, indent: int, source: str) -> tuple[list[Any], int]:
    out: list[Any] = []
    while i < len(lines) and lines[i].indent == indent and _is_item(lines[i].text):
        line = lines[i]
        rest = line.text[1:].lstrip(" ")
        if not rest:
            i += 1
            if i < len(lines) and lines[i].indent > indent:
                value, i = _parse_block(lines, i, lines[i].indent, source)
                out.append(value)
            else:
                out.append(None)
            continue
        inner = _Line(line.number, indent + len(line.text) - len(rest), rest)
        if _is_item(rest) or (rest[0] not in "[{" and _split_key(inner, source) is not None):
            # "- key: value" (then more keys below, aligned with the first) or "- - nested item"
            lines[i] = inner
            value, i = _parse_block(lines, i, inner.indent, source)
            out.append(value)
        else:
            out.append(_inline(rest, line, source))
            i += 1
    return out, i


def _inline(text: str, line: _Line, source: str) -> Any:
    if text[0] in "[{":
        value, end = _flow(text, 0, line, source)
        if text[end:].strip():
            _fail(source, line.number, "unexpected text after a flow collection")
        return value
    return _scalar(text, line, source)


def _scalar(text: str, line: _Line, source: str) -> Any:
    text = text.strip()
    if text[:1] == '"':
        if len(text) < 2 or not text.endswith('"'):
            _fail(source, line.number, "unterminated double-quoted string")
        try:
            return json.loads(text)
        except ValueError:
            _fail(source, line.number, "bad escape in a double-quoted string")
    if text[:1] == "'":
        if len(text) < 2 or not text.endswith("'"):
            _fail(source, line.number, "unterminated single-quoted string")
        return text[1:-1].replace("''", "'")
    if text[:1] in ("|", ">"):
        _fail(source, line.number, "block scalars (| and >) are not supported without PyYAML; quote the value")
    if text[:1] in ("&", "*", "!", "%", "@", "`"):
        _fail(source, line.number, f"{text[0]!r} (anchors, aliases, tags) is not supported without PyYAML")
    lowered = text.lower()
    if lowered in _NULL:
        return None
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _flow_token(text: str, i: int, stops: str) -> int:
    """The index where the scalar starting at ``text[i]`` ends (at one of ``stops``, outside quotes)."""
    quote = text[i] if text[i] in "'\"" else ""
    j = i + 1 if quote else i
    while j < len(text):
        char = text[j]
        if quote:
            if quote == '"' and char == "\\":
                j += 2
                continue
            if char == quote:
                if quote == "'" and text[j + 1 : j + 2] == "'":
                    j += 2
                    continue
                quote = ""
        elif char in stops and (char != ":" or text[j + 1 : j + 2] in (" ", "", ",", "}")):
            return j
        j += 1
    return j


def _flow(text: str, i: int, line: _Line, source: str) -> tuple[Any, int]:
    """Parse a flow collection starting at ``text[i]`` (``[`` or ``{``); return it and the end index."""
    closing = "]" if text[i] == "[" else "}"
    items: list[Any] = []
    mapping: dict[str, Any] = {}

    def skip_spaces(k: int) -> int:
        while k < len(text) and text[k] == " ":
            k += 1
        return k

    def value_at(k: int, stops: str) -> tuple[Any, int]:
        if text[k] in "[{":
            return _flow(text, k, line, source)
        end = _flow_token(text, k, stops)
        return _scalar(text[k:end], line, source), end

    i = skip_spaces(i + 1)
    while True:
        if i >= len(text):
            _fail(source, line.number, f"unterminated flow collection (missing {closing!r})")
        if text[i] == closing:
            return (items if closing == "]" else mapping), i + 1
        if closing == "]":
            value, i = value_at(i, ",]")
            items.append(value)
        else:
            if text[i] in "[{":
                _fail(source, line.number, "a flow mapping key must be a scalar")
            end = _flow_token(text, i, ",}:")
            key = str(_scalar(text[i:end], line, source))
            i = skip_spaces(end)
            value = None
            if i < len(text) and text[i] == ":":
                i = skip_spaces(i + 1)
                if i < len(text) and text[i] not in ",}":
                    value, i = value_at(i, ",}")
            mapping[key] = value
        i = skip_spaces(i)
        if i < len(text) and text[i] == ",":
            i = skip_spaces(i + 1)
        elif i < len(text) and text[i] != closing:
            _fail(source, line.number, f"expected ',' or {closing!r} in a flow collection")


# -- the variables -----------------------------------------------------------------------------------------


def env_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The configuration given by ``OPENLINEAGE__*`` variables, nested as the official client nests them.

    Variables are applied in reverse lexical order, so a shorter name (``OPENLINEAGE__TRANSPORT__AUTH``
    holding JSON) wins over longer ones below it (``OPENLINEAGE__TRANSPORT__AUTH__TYPE``), as in the client.
    """
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for name, raw in sorted(((k, v) for k, v in env.items() if k.startswith(ENV_PREFIX)), reverse=True):
        keys = [key.lower() for key in name[len(ENV_PREFIX) :].split("__")]
        if not all(keys):
            raise ConfigurationError(f"{name}: empty key between '__' separators")
        value: Any
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        node = config
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1]] = value
    return config


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``over``, recursively where both hold mappings (the client's deep_merge_dicts)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


# -- interpreting it -----------------------------------------------------------------------------------------


def _text(value: Any, what: str, source: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigurationError(f"{source}: {what} must be a string, not {type(value).__name__}")
    return str(value)


def _http_config(transport: Mapping[str, Any], source: str) -> HttpTransportConfig:
    url = transport.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"{source}: the http transport needs a url (transport.url: http://host:5000)")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"{source}: transport.url must be an http(s):// URL, not {safe_url(url)!r}")
    endpoint = transport.get("endpoint")
    endpoint = DEFAULT_ENDPOINT if endpoint is None else _text(endpoint, "transport.endpoint", source)
    timeout: float | None = None
    raw_timeout = transport.get("timeout")
    if raw_timeout is not None:
        try:
            timeout = float(raw_timeout)
        except (TypeError, ValueError):
            timeout = -1.0
        if isinstance(raw_timeout, bool) or not timeout > 0:
            raise ConfigurationError(f"{source}: transport.timeout must be a positive number of seconds")
    verify = transport.get("verify", True)
    if verify is None:
        verify = True
    if not isinstance(verify, (bool, str)):
        raise ConfigurationError(f"{source}: transport.verify must be true, false or a CA bundle path")
    compression = transport.get("compression")
    if compression is not None:
        compression = _text(compression, "transport.compression", source).lower()
        if compression != "gzip":
            raise ConfigurationError(f"{source}: transport.compression must be gzip (or absent), not {compression!r}")
    headers_raw = transport.get("custom_headers") or {}
    if not isinstance(headers_raw, Mapping):
        raise ConfigurationError(f"{source}: transport.custom_headers must be a mapping of header: value")
    headers = {
        str(name): Secret(_text(value, f"custom header {name!r}", source)) for name, value in headers_raw.items()
    }
    api_key = _api_key(transport.get("auth"), source)
    for key in sorted(set(transport) - _HTTP_KEYS):
        if key in _IGNORED_HTTP_KEYS:
            logger.debug("%s: transport.%s is ignored (workflow_trace's delivery layer retries)", source, key)
        else:
            logger.warning("%s: transport.%s is not an http transport option; ignored", source, key)
    return HttpTransportConfig(
        url=url, endpoint=endpoint, api_key=api_key, timeout=timeout, verify=verify,
        compression=compression, custom_headers=headers, source=source,
    )


def _api_key(auth: Any, source: str) -> Secret | None:
    if auth is None:
        return None
    if not isinstance(auth, Mapping):
        raise ConfigurationError(f"{source}: transport.auth must be a mapping (type: api_key, apiKey: ...)")
    kind = auth.get("type")
    if kind is None:
        # The client then sends no Authorization header either; say so rather than drop a key silently.
        if any(k in auth for k in ("apiKey", "apikey", "api_key")):
            logger.warning("%s: transport.auth has no type, so no API key is sent (write type: api_key)", source)
        return None
    if kind != "api_key":
        raise ConfigurationError(
            f"{source}: transport.auth type {kind!r} is not supported; supported: api_key"
        )
    for name in ("apiKey", "apikey", "api_key"):  # as the client looks for it (env variables lower-case it)
        value = auth.get(name)
        if value not in (None, ""):
            return Secret(_text(value, "transport.auth.apiKey", source))
    raise ConfigurationError(f"{source}: transport.auth type api_key needs apiKey")


def _options(section: Any, source: str) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigurationError(f"{source}: workflow_trace must be a mapping of options")
    unknown = sorted(set(section) - set(OPTION_KEYS))
    if unknown:
        raise ConfigurationError(
            f"{source}: unknown workflow_trace option(s) {', '.join(map(repr, unknown))}; "
            f"options are: {', '.join(OPTION_KEYS)}"
        )
    out: dict[str, Any] = {}
    for key, value in section.items():
        if value is None:
            continue
        out[key] = _text(value, f"workflow_trace.{key}", source)
    return out


def load_settings(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None, home: Path | None = None
) -> OpenLineageSettings:
    """Read the OpenLineage configuration: ``OPENLINEAGE_DISABLED``, the YAML file, the variables.

    Args:
        environ: The environment (default ``os.environ``).
        cwd: Where ``./openlineage.yml`` is looked for (default: the current directory).
        home: The home directory (default: ``Path.home()``).

    Raises:
        ConfigurationError: an unreadable or invalid file, an unsupported transport type or auth type,
            a bad value; each message names where it came from.
    """
    env = os.environ if environ is None else environ
    if is_disabled(env):
        return OpenLineageSettings(disabled=True)
    path = find_config_file(env, cwd, home)
    from_file = _read_config_file(path) if path is not None else {}
    from_env = env_config(env)
    merged = _deep_merge(from_env, from_file)

    def source_of(key: str) -> str:
        where = [str(path)] if key in from_file else []
        if key in from_env:
            where.append(f"OPENLINEAGE__{key.upper()}__* variables")
        return " + ".join(where) or "the OpenLineage configuration"

    options = _options(merged.get("workflow_trace"), source_of("workflow_trace"))
    namespace = options.pop("namespace", None) or env.get("OPENLINEAGE_NAMESPACE") or None
    transport_raw = merged.get("transport")
    transport: HttpTransportConfig | None = None
    if transport_raw is not None and not isinstance(transport_raw, Mapping):
        raise ConfigurationError(f"{source_of('transport')}: transport must be a mapping (type: http, url: ...)")
    kind = transport_raw.get("type") if transport_raw else None
    if kind is not None:
        source = source_of("transport")
        if kind == "noop":
            return OpenLineageSettings(disabled=True, namespace=namespace, options=options, config_file=path)
        if kind != "http":
            known = " (a transport of the official client)" if kind in _CLIENT_TRANSPORTS else ""
            raise ConfigurationError(
                f"{source}: OpenLineage transport type {kind!r}{known} is not supported by workflow_trace; "
                f"supported: {', '.join(SUPPORTED_TRANSPORTS)} (and noop, which disables sending)"
            )
        assert transport_raw is not None
        transport = _http_config(transport_raw, source)
    elif transport_raw and not env.get("OPENLINEAGE_URL", "").strip():
        # The client would fall back to printing events on the console; say what is missing instead.
        raise ConfigurationError(f"{source_of('transport')}: transport has no type (write type: http)")
    elif env.get("OPENLINEAGE_URL", "").strip():
        # The client's fallback when no transport has a type (the "simple" variables).
        transport = _http_config(
            {
                "url": env["OPENLINEAGE_URL"],
                "endpoint": env.get("OPENLINEAGE_ENDPOINT") or DEFAULT_ENDPOINT,
                "auth": {"type": "api_key", "apiKey": env["OPENLINEAGE_API_KEY"]}
                if env.get("OPENLINEAGE_API_KEY") else None,
            },
            "OPENLINEAGE_URL",
        )
    return OpenLineageSettings(
        disabled=False, transport=transport, namespace=namespace, options=options, config_file=path
    )
