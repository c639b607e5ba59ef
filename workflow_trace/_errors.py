"""Exceptions raised by workflow_trace.

Everything workflow_trace raises on purpose derives from :class:`WorkflowTraceError`. Outside strict mode
none of these reach the user's code from a decorated call or a step: they are contained and logged.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigurationError",
    "DecorationError",
    "ExtractionError",
    "NodeCoercionError",
    "VersioningError",
    "VersioningNotSupportedError",
    "WorkflowTraceError",
]


class WorkflowTraceError(Exception):
    """Base class of every error workflow_trace raises."""


class ConfigurationError(WorkflowTraceError, ValueError):
    """A bad backend string, option or environment value."""


class DecorationError(WorkflowTraceError, TypeError):
    """A decorator was used wrongly (raised at decoration time, always)."""


class NodeCoercionError(WorkflowTraceError, TypeError):
    """A value could not be turned into a workflow node."""


class ExtractionError(WorkflowTraceError, LookupError):
    """A source path (``"cfg.project_id"``) did not resolve when the function was called."""


class BackendError(WorkflowTraceError):
    """A backend failed to record or deliver events."""


class VersioningError(WorkflowTraceError):
    """Creating, restoring or listing a project version failed."""


class VersioningNotSupportedError(VersioningError):
    """The configured backend cannot version projects."""
