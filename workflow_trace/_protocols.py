"""The contracts between the recording core and the places events go: backend protocols and
``VersionInfo``. Concrete backends implement them; nothing here does any work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Optional, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from ._events import Event, Record
from ._nodes import Project

__all__ = ["Backend", "RecordBackend", "TaskIdBackend", "VersionInfo", "VersioningBackend"]


@runtime_checkable
class Backend(Protocol):
    """Receives batches of events. ``emit`` may raise: the caller contains the failure."""

    def emit(self, events: Sequence[Event]) -> None:
        """Record or send one batch of events (one step boundary's worth)."""

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything emitted so far is delivered; ``True`` when it is."""

    def close(self) -> None:
        """Release resources (flushing what can be flushed)."""


@runtime_checkable
class RecordBackend(Protocol):
    """The built-in backends' fast path: they take the call path's records, not pydantic events."""

    def write_records(self, records: list[Record]) -> None:
        """Take one batch of records (never blocking on I/O beyond an append to a local journal)."""


class VersionInfo(BaseModel):
    """One version (snapshot) of a project, as ``list_versions`` returns it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: int
    version: int
    project_id: Optional[int] = None
    project_path: Optional[str] = None
    title: Optional[str] = None
    description: Optional[str] = None
    created_at: Optional[datetime] = None


@runtime_checkable
class VersioningBackend(Backend, Protocol):
    """A backend that can snapshot projects (the seed's ``api.project.version`` API)."""

    def create_version(self, project: Project, title: str | None, description: str | None) -> int:
        """Create a version (or return the latest one's id when nothing changed)."""

    def restore_version(
        self,
        project: Project,
        version_id: int | None,
        version_num: int | None,
        skip_missed_entities: bool = False,
    ) -> Project:
        """Recreate a version as a new project and return it."""

    def list_versions(self, project: Project, filters: list[dict[str, Any]] | None = None) -> list[VersionInfo]:
        """The project's versions, filtered as the seed describes."""


@runtime_checkable
class TaskIdBackend(Protocol):
    """A backend that owns task ids (the local store): each outermost step without a task id gets one."""

    def new_task_id(self, name: str) -> int:
        """Allocate a new task id for a step called ``name``."""
