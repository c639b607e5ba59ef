"""Events: what backends receive, and the cheap record the call path builds instead.

A step emits ``step_started``, then ``input`` / ``output`` events, then ``step_finished``. :class:`Event` is
the public pydantic model (JSON round-trips: ``Event.model_validate_json(e.model_dump_json())``). The call
path does not build it: it builds a :data:`Record`, a plain tuple, and the built-in backends take records
directly. A third-party backend gets :class:`Event` models made from the records at its door
(:func:`to_event`), so nothing on the hot path builds a pydantic object that no backend reads.

Ids: an event id is this process's random prefix plus the record's sequence number, in the UUID version 4
layout (unique without a system call); a run id is a time-ordered UUID version 7. A forked child draws a
new prefix.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import time as _time
from datetime import datetime, timezone
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

from ._context import at_fork
from ._nodes import Node, NodeKey, NodeModel, key_node, node_class, node_key

if TYPE_CHECKING:
    from ._meta import Meta

__all__ = [
    "FINISHED",
    "INPUT",
    "KINDS",
    "OUTPUT",
    "STARTED",
    "TASK",
    "ErrorInfo",
    "Event",
    "EventKind",
    "Record",
    "RunRef",
    "StepRef",
    "event_id",
    "ids",
    "decode_line",
    "encode_events",
    "encode_records",
    "iso",
    "new_event_id",
    "new_run_id",
    "node_json",
    "to_event",
    "utcnow",
]

EventKind = Literal["step_started", "step_finished", "input", "output"]

#: Record kinds (index into :data:`KINDS`). ``TASK`` is a journal line of the local store only (a task id
#: was allocated), never an event.
STARTED, INPUT, OUTPUT, FINISHED, TASK = 0, 1, 2, 3, 4
KINDS: tuple[EventKind, ...] = ("step_started", "input", "output", "step_finished")


class StepRef(BaseModel):
    """The step (run) an event belongs to."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    run_id: str
    name: str
    parent_run_id: Optional[str] = None


class ErrorInfo(BaseModel):
    """Why a step failed: the exception's type and message (no stack: it may hold user data)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

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
        params: The run's parameters (on ``step_started`` as given, on ``step_finished`` all of them).
        cwd: The working directory, when ``node`` has a relative local path (what the path meant).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: EventKind
    event_id: str
    time: datetime
    task_id: Optional[int] = None
    step: StepRef
    node: Optional[NodeModel] = None
    meta: Optional[dict[str, Any]] = None
    status: Optional[Literal["ok", "failed"]] = None
    error: Optional[ErrorInfo] = None
    params: Optional[dict[str, Any]] = None
    cwd: Optional[str] = None


class RunRef:
    """What a record needs of its run; the step object itself plays this part (``Step`` subclasses it)."""

    __slots__ = ("name", "parent_run_id", "run_id", "wire")

    def __init__(self, run_id: str, name: str, parent_run_id: str | None) -> None:
        self.run_id = run_id
        self.name = name
        self.parent_run_id = parent_run_id
        self.wire: str | None = None  # its part of a journal line, made by the first one



def complete_models() -> None:
    """Build the deferred schemas of the models a worker thread reads (events, steps, errors, nodes) now,
    on the calling thread. A worker then never takes pydantic's process-wide schema-build lock, which a
    fork while it builds would leave held in the child (whose worker would wait for it forever)."""
    models: tuple[type[BaseModel], ...] = (StepRef, ErrorInfo, Event, *Node.__subclasses__())
    for model in models:
        model.model_rebuild()

#: ``(kind, seq, time, task_id, run, node, meta, extra)``: ``kind`` one of STARTED/INPUT/OUTPUT/FINISHED,
#: ``seq`` this process's event counter, ``time`` ``time.time_ns()``, ``node`` a node key (``_nodes.NodeKey``),
#: ``meta`` a validated card or ``None``,
#: ``extra``: STARTED ``params | None``; INPUT/OUTPUT ``cwd | None``; FINISHED ``(status, error, params)``.
Record = tuple[int, int, int, Optional[int], RunRef, Optional[NodeKey], Optional["Meta"], Any]


class _Ids:
    """Event ids: 80 random bits per process (UUID version 4 layout) and a 48-bit counter; run ids: 12 random
    bits per process and a 62-bit counter from a random start (UUID version 7's monotonic random method)."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        rng = random.SystemRandom()
        bits = rng.getrandbits(80)
        bits = (bits & ~(0xF << 28) & ~(0xC << 12)) | (0x4 << 28) | (0x8 << 12)  # version 4, RFC variant
        h = f"{bits:020x}"
        self.prefix = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-"
        self.next_seq = itertools.count(rng.getrandbits(40)).__next__
        self.run_rand = f"{rng.getrandbits(12):03x}"
        self.run_head = (-1, "")  # the millisecond of the last run id, and the id's text up to the counter
        self.next_run = itertools.count(rng.getrandbits(60)).__next__


#: The process's id source: ``ids.next_seq()`` numbers records; ``ids.prefix`` makes them event ids.
ids = _Ids()
at_fork(ids.reseed)


def new_event_id() -> str:
    """A new unique event id (for events built by hand: tests, replays)."""
    return event_id(ids.prefix, ids.next_seq())


def event_id(prefix: str, seq: int) -> str:
    """The event id of record ``seq`` of the process whose id prefix is ``prefix``."""
    return f"{prefix}{seq & 0xFFFFFFFFFFFF:012x}"


_time_ns = _time.time_ns


def new_run_id() -> str:
    """A time-ordered (version 7, RFC 9562) UUID string: runs sort by start time (and by creation within
    a millisecond of one process)."""
    ms = _time_ns() // 1_000_000
    last, head = ids.run_head
    if ms != last:
        t = f"{ms & 0xFFFFFFFFFFFF:012x}"
        head = f"{t[:8]}-{t[8:]}-7{ids.run_rand}-"
        ids.run_head = (ms, head)
    b = f"{0x8000000000000000 | (ids.next_run() & 0x3FFFFFFFFFFFFFFF):016x}"  # RFC variant, then the counter
    return f"{head}{b[:4]}-{b[4:]}"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


_second: tuple[int, str] = (-1, "")  # the last whole second iso() wrote, and its text


def iso(timestamp: float | str) -> str:
    """``time.time()`` (or an ISO string, kept as it is) as ISO 8601 UTC (``2026-01-01T10:00:00.123456+00:00``),
    as ``datetime.isoformat`` writes it (the text of the second is reused: the store writes one per event)."""
    global _second
    if isinstance(timestamp, str):
        return timestamp
    whole = int(timestamp)
    micros = round((timestamp - whole) * 1e6)  # what datetime.fromtimestamp does: round half to even
    if whole < 0 or micros >= 1_000_000:
        return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()
    second, text = _second
    if second != whole:
        text = datetime.fromtimestamp(whole, timezone.utc).isoformat()[:-6]
        _second = (whole, text)
    return f"{text}.{micros:06d}+00:00" if micros else f"{text}+00:00"


def to_event(record: Record, prefix: str | None = None) -> Event:
    """The public :class:`Event` of a record (for backends that read events, and for tests)."""
    kind, seq, timestamp, task_id, run, node, meta, extra = record
    status = error = params = cwd = None
    if kind == STARTED:
        params = extra
    elif kind == FINISHED:
        status, err, params = extra
        if err is not None:
            error = ErrorInfo.model_construct(type=err[0], message=err[1])
    else:
        cwd = extra
    step = StepRef.model_construct(run_id=run.run_id, name=run.name, parent_run_id=run.parent_run_id)
    return Event.model_construct(
        kind=KINDS[kind],
        event_id=event_id(ids.prefix if prefix is None else prefix, seq),
        time=datetime.fromtimestamp(timestamp / 1e9 if type(timestamp) is int else timestamp, timezone.utc),
        task_id=task_id,
        step=step,
        node=node if node is None or isinstance(node, Node) else key_node(node),  # type: ignore[arg-type]
        meta=None if meta is None else meta.wire,
        status=status,
        error=error,
        params=params,
        cwd=cwd,
    )


# -- journal lines ------------------------------------------------------------------------------------
#
# One JSON array per line: ``[kind, seq | "event-id", time, task_id, "run-id", name, parent_run_id, ...]``
# then, by kind: STARTED ``params``; INPUT / OUTPUT ``node, meta, cwd``; FINISHED
# ``status, error type, error message, params``. Built with f-strings from cached fragments (the call
# path pays 0.7 to 1 microsecond per record), read back with ``json.loads``.

#: A JSON string literal, non-ASCII kept: the C function ``JSONEncoder(ensure_ascii=False).encode`` calls.
_string = encode_basestring
_name = functools.lru_cache(maxsize=8192)(_string)


@functools.lru_cache(maxsize=8192)
def node_json(key: NodeKey) -> str:
    """The compact JSON of a node key (its set fields), cached."""
    kind, ident, version_id, version_num, path, model_weight = key
    text = f'{{"kind":"{kind}"' + ("" if ident is None else f',"id":{ident}')
    if version_id is not None:
        text += f',"version_id":{version_id}'
    if version_num is not None:
        text += f',"version_num":{version_num}'
    if path is not None:
        text += f',"path":{_string(path)}'
    return text + (',"model_weight":true}' if model_weight else "}")


def _opt(value: str | None) -> str:
    return "null" if value is None else _string(value)


def _params(params: dict[str, Any] | None) -> str:
    return "null" if params is None else json.dumps(params, separators=(",", ":"), ensure_ascii=False)


def encode_records(records: list[Record]) -> bytes:
    """Journal lines for records (see above)."""
    out = []
    for kind, seq, timestamp, task_id, run, node, meta, extra in records:
        wire = run.wire
        if wire is None:
            wire = run.wire = f'"{run.run_id}",{_name(run.name)},{_opt(run.parent_run_id)}'
        t = str(timestamp)  # nanoseconds, written as seconds (what json reads back as a float)
        task = "null" if task_id is None else task_id
        if kind != STARTED and kind != FINISHED:  # an input or an output
            out.append(f'[{kind},{seq},{t[:-9]}.{t[-9:]},{task},{wire},{node_json(node)},'
                       f'{"null" if meta is None else meta.json},{"null" if extra is None else _string(extra)}]\n')
        elif kind == STARTED:
            out.append(f"[{kind},{seq},{t[:-9]}.{t[-9:]},{task},{wire},{_params(extra)}]\n")
        else:
            status, err, params = extra
            error = "null,null" if err is None else f"{_opt(err[0])},{_opt(err[1])}"
            out.append(f'[{kind},{seq},{t[:-9]}.{t[-9:]},{task},{wire},"{status}",{error},{_params(params)}]\n')
    return "".join(out).encode()


def encode_events(events: list[Event]) -> bytes:
    """Journal lines for public events (their own ids kept)."""
    out = []
    for e in events:
        head = [KINDS.index(e.kind), e.event_id, e.time.isoformat(), e.task_id, e.step.run_id, e.step.name,
                e.step.parent_run_id]
        if e.kind == "step_started":
            row = [*head, e.params]
        elif e.kind == "step_finished":
            row = [*head, e.status or "ok", e.error.type if e.error else None, e.error.message if e.error else None,
                   e.params]
        else:
            node = None if e.node is None else json.loads(node_json(node_key(e.node)))
            row = [*head, node, e.meta, e.cwd]
        out.append(json.dumps(row, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(out) + "\n").encode() if out else b""


def decode_line(row: list[Any], prefix: str) -> Event:
    """The :class:`Event` of a decoded journal line (``json.loads`` of it), validated.

    Raises:
        ValueError: a line that does not describe an event.
    """
    try:
        kind, ident, timestamp, task_id, run_id, name, parent = row[:7]
        event: dict[str, Any] = {
            "kind": KINDS[kind],
            "event_id": ident if isinstance(ident, str) else event_id(prefix, ident),
            "time": datetime.fromisoformat(timestamp) if isinstance(timestamp, str)
            else datetime.fromtimestamp(timestamp, timezone.utc),
            "task_id": task_id,
            "step": {"run_id": run_id, "name": name, "parent_run_id": parent},
        }
        if kind == STARTED:
            event["params"] = row[7]
        elif kind == FINISHED:
            event["status"], err_type, err_message, event["params"] = row[7:11]
            if err_type is not None:
                event["error"] = {"type": err_type, "message": err_message or ""}
        else:
            if row[7] is not None:
                fields = dict(row[7])
                event["node"] = node_class(fields.pop("kind")).model_validate(fields)
            event["meta"], event["cwd"] = row[8], row[9]
        return Event.model_validate(event)
    except (TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"not an event line: {type(exc).__name__}: {exc}") from None
