"""workflow_trace: zero-boilerplate MLOps workflow lineage for ML apps.

Decorators (``@consumes_project``, ``@produces_file``, ...) and ``workflow_step`` record which run read
which data and produced what; a pluggable backend (the local store by default, Supervisely, OpenLineage,
in-memory for tests) receives the events. Tracking never breaks or blocks the host application.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    BackendError,
    ConfigurationError,
    DecorationError,
    ExtractionError,
    NodeCoercionError,
    VersioningError,
    VersioningNotSupportedError,
    WorkflowTraceError,
)
from ._events import ErrorInfo, Event, StepRef
from ._meta import WorkflowMeta, WorkflowSettings
from ._nodes import App, Dataset, File, Folder, Job, Node, Project, Task, coerce_nodes
from ._protocols import Backend, VersionInfo, VersioningBackend
from ._runtime import configure, flush, get_backend, is_enabled, is_strict, reset
from ._step import Step, current_step
from ._tracing import (
    consumes_dataset,
    consumes_file,
    consumes_folder,
    consumes_job,
    consumes_project,
    consumes_task,
    produces_app,
    produces_dataset,
    produces_file,
    produces_folder,
    produces_job,
    produces_project,
    produces_task,
    workflow_step,
)
from ._version import __version__

if TYPE_CHECKING:
    from . import version, workflow
    from ._autolog import autolog

__all__ = [
    "App",
    "Backend",
    "BackendError",
    "ConfigurationError",
    "Dataset",
    "DecorationError",
    "ErrorInfo",
    "Event",
    "ExtractionError",
    "File",
    "Folder",
    "Job",
    "Node",
    "NodeCoercionError",
    "Project",
    "Step",
    "StepRef",
    "Task",
    "VersionInfo",
    "VersioningBackend",
    "VersioningError",
    "VersioningNotSupportedError",
    "WorkflowMeta",
    "WorkflowSettings",
    "WorkflowTraceError",
    "__version__",
    "autolog",
    "coerce_nodes",
    "configure",
    "consumes_dataset",
    "consumes_file",
    "consumes_folder",
    "consumes_job",
    "consumes_project",
    "consumes_task",
    "current_step",
    "flush",
    "get_backend",
    "is_enabled",
    "is_strict",
    "produces_app",
    "produces_dataset",
    "produces_file",
    "produces_folder",
    "produces_job",
    "produces_project",
    "produces_task",
    "reset",
    "version",
    "workflow",
    "workflow_step",
]


def __getattr__(name: str) -> Any:
    # The SDK facades and autolog load on first use: ``import workflow_trace`` stays cheap.
    if name not in ("autolog", "version", "workflow"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{'_autolog' if name == 'autolog' else name}")
    return module.autolog if name == "autolog" else module
