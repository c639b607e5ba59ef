"""Helpers the tests share (one place, not copies)."""

from __future__ import annotations

from typing import Any

from workflow_trace._events import ErrorInfo, Event, EventKind, StepRef, new_event_id, utcnow
from workflow_trace._nodes import Node


def make_event(
    kind: EventKind,
    task_id: int | None,
    step: StepRef,
    node: Node | None = None,
    meta: dict[str, Any] | None = None,
    status: str | None = None,
    error: ErrorInfo | None = None,
) -> Event:
    """A new event (fresh id, now) as a backend would receive it."""
    return Event(kind=kind, event_id=new_event_id(), time=utcnow(), task_id=task_id, step=step, node=node,
                 meta=meta, status=status, error=error)  # type: ignore[arg-type]
