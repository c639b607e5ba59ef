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

``openlineage.yml`` is read with PyYAML, which the official client depends on (so where there is an
``openlineage.yml`` there is nearly always PyYAML). Without it, a file written as JSON (a subset of YAML)
is read; any other file is refused with a :class:`~workflow_trace.ConfigurationError` naming the file and
the fix (``pip install pyyaml``, or the ``OPENLINEAGE__*`` variables).

The API key is held in a :class:`~workflow_trace._context.Secret` from the moment it is read: it is in no
``repr``, log line or error message.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from .._context import Secret, logger
from .._errors import ConfigurationError

__all__ = [
    "CONFIG_FILE_NAME", "DEFAULT_ENDPOINT", "SUPPORTED_TRANSPORTS", "HttpTransportConfig", "OpenLineageSettings",
    "config_file_candidates", "env_config", "find_config_file", "header_value", "is_disabled", "load_settings",
    "safe_url", "simple_transport",
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
# Header names whose values are credentials: held as Secret (masked wherever they appear).
_SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|cookie|passw", re.IGNORECASE)


def header_value(name: Any, value: Any) -> str | Secret:
    """A header's value as it is kept: a credential's (``Authorization``, ``X-Api-Key``, ``Cookie``...) in a
    :class:`Secret`."""
    if isinstance(value, Secret):
        return value
    return Secret(str(value)) if _SENSITIVE_HEADER.search(str(name)) else str(value)


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
        custom_headers: Extra request headers (a credential's value, see :func:`header_value`, held
            as a :class:`Secret`).
    """

    url: str
    endpoint: str = DEFAULT_ENDPOINT
    api_key: Secret | None = None
    timeout: float | None = None
    verify: bool | str = True
    compression: str | None = None
    custom_headers: Mapping[str, str | Secret] = field(default_factory=dict)

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
    """

    disabled: bool = False
    transport: HttpTransportConfig | None = None
    namespace: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def is_disabled() -> bool:
    """``OPENLINEAGE_DISABLED`` is ``true`` (the client's test: lower-cased and stripped)."""
    return os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true"


# -- finding and reading the file ----------------------------------------------------------------------


def config_file_candidates() -> list[Path]:
    """Where the YAML file is looked for, in order."""
    explicit = os.environ.get("OPENLINEAGE_CONFIG")
    paths = [Path(explicit).expanduser()] if explicit else []
    return [*paths, Path.cwd() / CONFIG_FILE_NAME, Path.home() / ".openlineage" / CONFIG_FILE_NAME]


def find_config_file() -> Path | None:
    """The first readable file of :func:`config_file_candidates`, or ``None``."""
    for i, path in enumerate(config_file_candidates()):
        with contextlib.suppress(OSError):
            if path.is_file() and os.access(path, os.R_OK):
                return path
        if i == 0 and os.environ.get("OPENLINEAGE_CONFIG"):
            logger.warning("OPENLINEAGE_CONFIG=%s is not a readable file; looking further", path)
    return None


def _read_config_file(path: Path) -> dict[str, Any]:
    """The file's mapping: YAML read by PyYAML, else JSON. Messages never quote the file (it holds the key)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the OpenLineage configuration {path}: {exc}") from None
    try:
        # PyYAML, which the official client depends on (imported by name: no stubs needed).
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        try:
            data = json.loads(text) if text.strip() else None
        except ValueError:
            raise ConfigurationError(
                f"{path}: reading an OpenLineage YAML file needs PyYAML (pip install pyyaml); or write the "
                "file as JSON, or configure with the OPENLINEAGE__* variables"
            ) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            # PyYAML's own message quotes the offending line, which may hold the key: give its position only.
            mark = getattr(exc, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ConfigurationError(f"{path}{where}: not valid YAML: {problem}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigurationError(f"{path}: the OpenLineage configuration must be a mapping (transport: ...)")
    return data or {}


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
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[keys[-1]] = value
    return config


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``over``, recursively where both hold mappings (the client's deep_merge_dicts)."""
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, Mapping) and isinstance(merged.get(key), Mapping)
        merged[key] = _deep_merge(dict(merged[key]), value) if both else value
    return merged


# -- interpreting it -----------------------------------------------------------------------------------------


def _text(value: Any, what: str, source: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigurationError(f"{source}: {what} must be a string, not {type(value).__name__}")
    return str(value)


def _url(url: Any, source: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"{source}: the http transport needs a url (transport.url: http://host:5000)")
    parts = urlsplit(url.strip())
    try:
        port_ok = parts.port is None or parts.port > 0  # .port: a ValueError when it is no number up to 65535
    except ValueError:
        port_ok = False
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigurationError(f"{source}: the server must be an http(s)://host[:port] URL, not "
                                 f"{safe_url(url.strip())!r}")
    return url.strip()


def simple_transport(url: str, source: str) -> HttpTransportConfig:
    """The client's "simple" variables: ``url`` (checked; ``source`` names it in the error) with
    ``OPENLINEAGE_ENDPOINT`` and ``OPENLINEAGE_API_KEY``."""
    key = os.environ.get("OPENLINEAGE_API_KEY")
    return HttpTransportConfig(_url(url, source), endpoint=os.environ.get("OPENLINEAGE_ENDPOINT") or DEFAULT_ENDPOINT,
                               api_key=Secret(key) if key else None)


def _http_config(transport: Mapping[str, Any], source: str) -> HttpTransportConfig:
    url = _url(transport.get("url"), source)
    endpoint = transport.get("endpoint")
    endpoint = DEFAULT_ENDPOINT if endpoint is None else _text(endpoint, "transport.endpoint", source)
    raw_timeout = transport.get("timeout")
    try:
        timeout = None if raw_timeout is None else float(raw_timeout)
    except (TypeError, ValueError):
        timeout = -1.0
    if timeout is not None and (isinstance(raw_timeout, bool) or not timeout > 0):
        raise ConfigurationError(f"{source}: transport.timeout must be a positive number of seconds")
    verify = True if transport.get("verify") is None else transport["verify"]
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
    headers = {str(name): header_value(name, _text(value, f"custom header {name!r}", source))
               for name, value in headers_raw.items()}
    api_key = _api_key(transport.get("auth"), source)
    for key in sorted(set(transport) - _HTTP_KEYS):
        if key in _IGNORED_HTTP_KEYS:
            logger.debug("%s: transport.%s is ignored (workflow_trace's delivery layer retries)", source, key)
        else:
            logger.warning("%s: transport.%s is not an http transport option; ignored", source, key)
    return HttpTransportConfig(url=url, endpoint=endpoint, api_key=api_key, timeout=timeout, verify=verify,
                               compression=compression, custom_headers=headers)


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
        raise ConfigurationError(f"{source}: transport.auth type {kind!r} is not supported; supported: api_key")
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
        raise ConfigurationError(f"{source}: unknown workflow_trace option(s) {', '.join(map(repr, unknown))}; "
                                 f"options are: {', '.join(OPTION_KEYS)}")
    return {key: _text(value, f"workflow_trace.{key}", source) for key, value in section.items() if value is not None}


def load_settings() -> OpenLineageSettings:
    """Read the OpenLineage configuration: ``OPENLINEAGE_DISABLED``, the YAML file, the variables.

    Raises:
        ConfigurationError: an unreadable or invalid file, an unsupported transport type or auth type,
            a bad value; each message names where it came from.
    """
    if is_disabled():
        return OpenLineageSettings(disabled=True)
    path = find_config_file()
    from_file = _read_config_file(path) if path is not None else {}
    from_env = env_config()
    merged = _deep_merge(from_env, from_file)

    def source_of(key: str) -> str:
        where = [str(path)] if key in from_file else []
        if key in from_env:
            where.append(f"OPENLINEAGE__{key.upper()}__* variables")
        return " + ".join(where) or "the OpenLineage configuration"

    options = _options(merged.get("workflow_trace"), source_of("workflow_trace"))
    namespace = options.pop("namespace", None) or os.environ.get("OPENLINEAGE_NAMESPACE") or None
    transport_raw = merged.get("transport")
    source = source_of("transport")
    if transport_raw is not None and not isinstance(transport_raw, Mapping):
        raise ConfigurationError(f"{source}: transport must be a mapping (type: http, url: ...)")
    kind = transport_raw.get("type") if transport_raw else None
    url = os.environ.get("OPENLINEAGE_URL", "").strip()
    if kind == "noop":
        return OpenLineageSettings(disabled=True, namespace=namespace, options=options)
    if kind is not None and kind != "http":
        known = " (a transport of the official client)" if kind in _CLIENT_TRANSPORTS else ""
        raise ConfigurationError(
            f"{source}: OpenLineage transport type {kind!r}{known} is not supported by workflow_trace; "
            f"supported: {', '.join(SUPPORTED_TRANSPORTS)} (and noop, which disables sending)"
        )
    if transport_raw and kind == "http":
        return OpenLineageSettings(transport=_http_config(transport_raw, source), namespace=namespace, options=options)
    if transport_raw and not url:
        # The client would fall back to printing events on the console; say what is missing instead.
        raise ConfigurationError(f"{source}: transport has no type (write type: http)")
    # The client's fallback when no transport has a type: OPENLINEAGE_URL.
    transport = simple_transport(url, "OPENLINEAGE_URL") if url else None
    return OpenLineageSettings(transport=transport, namespace=namespace, options=options)
