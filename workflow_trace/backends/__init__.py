"""Backends: where events go.

A backend is any object with ``emit(events)``, ``flush(timeout)`` and ``close()`` (the :class:`Backend`
protocol). Built-in backends are looked up by the scheme of a backend string (``"memory"``,
``"sqlite:///abs/path.db"``, ...); third-party ones register a factory under the entry-point group
``workflow_trace.backends``: the entry point's name is the scheme, its object a callable that takes the
whole backend string and returns a backend::

    [project.entry-points."workflow_trace.backends"]
    kafka = "my_package.lineage:KafkaBackend.from_url"
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._context import contained
from .._errors import ConfigurationError
from .._events import Event, Record, to_event
from .._protocols import Backend, RecordBackend, TaskIdBackend, VersionInfo, VersioningBackend

if TYPE_CHECKING:
    from importlib import metadata

    from .._delivery import DeliveringBackend
    from .._transport import DeliveryError, Transport
    from .memory import MemoryBackend
    from .null import NullBackend
    from .openlineage import OpenLineageBackend
    from .sqlite import SQLiteBackend
    from .supervisely import SuperviselyBackend

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "BackendFactory",
    "CompositeBackend",
    "DeliveringBackend",
    "DeliveryError",
    "Event",
    "MemoryBackend",
    "NullBackend",
    "OpenLineageBackend",
    "RecordBackend",
    "SQLiteBackend",
    "SuperviselyBackend",
    "TaskIdBackend",
    "Transport",
    "VersionInfo",
    "VersioningBackend",
    "available_schemes",
    "create_backend",
    "register_backend",
]

ENTRY_POINT_GROUP = "workflow_trace.backends"


class CompositeBackend:
    """Sends every batch to several backends (e.g. the local store and a Supervisely instance).

    One failing backend does not keep the batch from the others; the first failure is re-raised after
    all were tried, so the caller logs it. Task ids come from the first backend that owns them.
    """

    def __init__(self, *backends: Backend) -> None:
        if not backends:
            raise ConfigurationError("CompositeBackend needs at least one backend")
        self.backends: tuple[Backend, ...] = backends

    def __repr__(self) -> str:
        return f"CompositeBackend({', '.join(repr(b) for b in self.backends)})"

    def write_records(self, records: list[Record]) -> None:
        """Records to each backend (built-in ones take them as they are, others get events)."""
        events: list[Event] | None = None
        for backend in self.backends:
            with contained(f"{type(backend).__name__} in a composite backend", allow_raise=False):
                write = getattr(backend, "write_records", None)
                if callable(write):
                    write(records)
                    continue
                if events is None:
                    events = [to_event(r) for r in records]
                backend.emit(events)

    def emit(self, events: Sequence[Event]) -> None:
        for backend in self.backends:
            with contained(f"{type(backend).__name__} in a composite backend", allow_raise=False):
                backend.emit(events)

    def flush(self, timeout: float | None = None) -> bool:
        results = [backend.flush(timeout) for backend in self.backends]  # flush every one, no short-circuit
        return all(results)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()

    def __getattr__(self, name: str) -> Any:
        # Task ids, versioning: each capability comes from the first backend that has it.
        if name in {"new_task_id", "create_version", "restore_version", "list_versions", "version_number"}:
            for backend in self.backends:
                if hasattr(backend, name):
                    return getattr(backend, name)
        raise AttributeError(name)


BackendFactory = Callable[[str], Backend]

# scheme -> the class in workflow_trace.backends.<scheme> whose from_url builds it (imported on first use).
_BUILTIN: dict[str, str] = {
    "memory": "MemoryBackend",
    "null": "NullBackend",
    "openlineage": "OpenLineageBackend",
    "sqlite": "SQLiteBackend",
    "supervisely": "SuperviselyBackend",
}
# Names imported on first use, so that `import workflow_trace` stays cheap.
_LAZY: dict[str, str] = {
    "DeliveringBackend": "workflow_trace._delivery",
    "DeliveryError": "workflow_trace._transport",
    "Transport": "workflow_trace._transport",
    **{cls: f"{__name__}.{scheme}" for scheme, cls in _BUILTIN.items()},
}
_REGISTERED: dict[str, BackendFactory] = {}


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Register ``factory`` for backend strings starting with ``scheme`` (in-process plug-ins, tests)."""
    _REGISTERED[scheme.lower()] = factory


def _entry_points() -> dict[str, metadata.EntryPoint]:
    from importlib import metadata  # ~10 ms: only when a scheme is not built in

    with contained(f"reading the {ENTRY_POINT_GROUP} entry points", allow_raise=False):  # a broken distribution
        return {ep.name.lower(): ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return {}


def available_schemes() -> list[str]:
    """Every scheme a backend string may start with: built-in, registered and from entry points."""
    return sorted(set(_BUILTIN) | set(_REGISTERED) | set(_entry_points()))


def create_backend(spec: str) -> Backend:
    """Build a backend from a backend string.

    ``a,b`` (comma-separated) builds a :class:`CompositeBackend` of both.

    Raises:
        ConfigurationError: (a ``ValueError``) an unknown scheme, naming the schemes that exist, or a
            backend string its factory refuses.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigurationError(f"a backend string must be a non-empty str, not {spec!r}")
    if "," in spec:
        return CompositeBackend(*(create_backend(part) for part in spec.split(",") if part.strip()))
    scheme = spec.split(":", 1)[0].strip().lower().split("+", 1)[0]
    factory: BackendFactory | None = _REGISTERED.get(scheme)
    if factory is None and scheme in _BUILTIN:
        factory = __getattr__(_BUILTIN[scheme]).from_url
    if factory is None and (ep := _entry_points().get(scheme)) is not None:
        plugin = factory = ep.load()
        try:  # a class (or function) that takes no backend string is called with none
            inspect.signature(plugin).bind(spec)
        except TypeError:
            factory = lambda _spec: plugin()  # noqa: E731 - as short as it is
        except ValueError:  # no signature to read: called with the string, as documented
            pass
    if factory is None:
        raise ConfigurationError(
            f"unknown backend {spec.split(':', 1)[0]!r}; backends are: {', '.join(available_schemes())}"
        )
    try:
        return factory(spec.strip())
    except ConfigurationError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"backend {spec.split(':', 1)[0]!r}: {exc}") from None


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
