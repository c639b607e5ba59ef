"""The event model: what every backend receives.

A step emits ``step_started``, then ``input`` / ``output`` events, then ``step_finished``. Events are
plain pydantic models so that a spool or a store can write them as JSON and read them back
(``Event.model_validate_json(event.model_dump_json())`` round-trips).
"""

from __future__ import annotations

import os
import random
import time as _time
import uuid
from datetime import datetime, timezone
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

from ._nodes import Node, NodeModel

__all__ = ["ErrorInfo", "Event", "EventKind", "StepRef", "new_event_id", "new_run_id", "utcnow"]

EventKind = Literal["step_started", "step_finished", "input", "output"]


class StepRef(BaseModel):
    """The step (run) an event belongs to."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    name: str
    parent_run_id: Optional[str] = None


class ErrorInfo(BaseModel):
    """Why a step failed: the exception's type and message (no stack: it may hold user data)."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str


class Event(BaseModel):
    """One thing that happened in a workflow.

    Attributes:
        kind: ``step_started``, ``step_finished``, ``input`` or ``output``.
        event_id: A UUID, unique per event: stores and servers use it to store a replayed event once.
        time: When it happened (UTC).
        task_id: The task (the workflow's main node), or ``None`` when no task id is known.
        step: The run this event belongs to.
        node: The input or output node (``None`` for step events).
        meta: The card customisation in the wire form (``customRelationSettings`` / ``customNodeSettings``).
        status: ``ok`` or ``failed`` on ``step_finished``.
        error: The exception type and message of a failed step.
    """

    model_config = ConfigDict(frozen=True)

    kind: EventKind
    event_id: str
    time: datetime
    task_id: Optional[int] = None
    step: StepRef
    node: Optional[NodeModel] = None
    meta: Optional[dict[str, Any]] = None
    status: Optional[Literal["ok", "failed"]] = None
    error: Optional[ErrorInfo] = None

    @classmethod
    def fast(
        cls,
        kind: EventKind,
        task_id: int | None,
        step: StepRef,
        node: Node | None = None,
        meta: dict[str, Any] | None = None,
        status: Literal["ok", "failed"] | None = None,
        error: ErrorInfo | None = None,
    ) -> Event:
        """Build an event from already-validated parts without re-validating them (the hot path)."""
        # Validating already-built nodes and refs is cheaper in pydantic v2 than model_construct().
        return cls(
            kind=kind,
            event_id=new_event_id(),
            time=utcnow(),
            task_id=task_id,
            step=step,
            node=node,
            meta=meta,
            status=status,
            error=error,
        )


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


_getrandbits = random.getrandbits
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_event_id() -> str:
    """A random (version 4) UUID string.

    Uses ``random`` rather than ``os.urandom``: event ids need uniqueness, not secrecy, and this is the
    hot path. ``random`` is reseeded in a forked child by the interpreter itself.
    """
    h = "%032x" % ((_getrandbits(128) & _V4_CLEAR) | _V4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_run_id() -> str:
    """A time-ordered (version 7, RFC 9562) UUID string: runs sort by start time."""
    ms = _time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))
