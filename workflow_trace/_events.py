"""The event model: what every backend receives.

A step emits ``step_started``, then ``input`` / ``output`` events, then ``step_finished``. Events are
plain pydantic models so that a spool or a store can write them as JSON and read them back
(``Event.model_validate_json(event.model_dump_json())`` round-trips).
"""

from __future__ import annotations

import itertools
import os
import random
import time as _time
from datetime import datetime, timezone
from typing import Any, Literal, Optional, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from ._nodes import Node, NodeModel

_M = TypeVar("_M", bound=BaseModel)

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
        """Build an event from parts that are already valid (the hot path), with a new id and time."""
        return cast(Event, _build(cls, {
            "kind": kind, "event_id": new_event_id(), "time": utcnow(), "task_id": task_id, "step": step,
            "node": node, "meta": meta, "status": status, "error": error,
        }))


_new = object.__new__
_set = object.__setattr__


def _build_unvalidated(cls: type[_M], values: dict[str, Any]) -> _M:
    # What BaseModel.model_construct does, minus its generic bookkeeping: about 2x cheaper than
    # validation. Only for values workflow_trace built itself (checked types); never for user input.
    obj = _new(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", set(_FIELDS[cls]))  # a set of its own: model_copy() updates it
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def _build_validated(cls: type[_M], values: dict[str, Any]) -> _M:
    return cls(**values)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


_getrandbits = random.getrandbits


class _EventIds:
    """Event ids in the UUID version 4 layout: 62 random bits per process plus a 48-bit counter.

    Unique without a system call per event (the hot path); a forked child draws a new prefix.
    """

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        bits = random.SystemRandom().getrandbits(80)
        bits = (bits & ~(0xF << 28) & ~(0xC << 12)) | (0x4 << 28) | (0x8 << 12)  # version 4, RFC variant
        h = f"{bits:020x}"
        self.prefix = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-"
        self.counter = itertools.count(random.SystemRandom().getrandbits(32))

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFF:012x}"


new_event_id = _EventIds()
new_event_id.__doc__ = "A unique event id (UUID version 4 layout)."
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=new_event_id.reseed)


def new_run_id() -> str:
    """A time-ordered (version 7, RFC 9562) UUID string: runs sort by start time."""
    ms = _time.time_ns() // 1_000_000
    rand = _getrandbits(74)
    value = (ms & ((1 << 48) - 1)) << 80 | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_FIELDS: dict[type[BaseModel], frozenset[str]] = {
    Event: frozenset(Event.model_fields), StepRef: frozenset(StepRef.model_fields)
}


def _self_check() -> Any:
    """Use the fast builder only if it yields models equal to validated ones (guards pydantic upgrades)."""
    step = StepRef(run_id="r", name="n")
    values = {"kind": "input", "event_id": "e", "time": datetime(2020, 1, 1, tzinfo=timezone.utc),
              "task_id": 1, "step": step, "node": None, "meta": None, "status": None, "error": None}
    try:
        fast = _build_unvalidated(Event, dict(values))
        if fast == Event(**values) and fast.model_dump_json() == Event(**values).model_dump_json():
            return _build_unvalidated
    except Exception:  # noqa: BLE001 - any surprise means: use the validated path
        pass
    return _build_validated


_build = _self_check()


def step_ref(run_id: str, name: str, parent_run_id: str | None) -> StepRef:
    """A StepRef from values workflow_trace made itself (no validation)."""
    return cast(StepRef, _build(StepRef, {"run_id": run_id, "name": name, "parent_run_id": parent_run_id}))
