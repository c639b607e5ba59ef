"""An in-memory backend, for tests and notebooks."""

from __future__ import annotations

from collections.abc import Sequence

from .._events import Event, Record, ids, to_event
from .._nodes import Node

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Keeps every event in a list, in emission order. Thread-safe.

    The call path hands it records (no pydantic object built); :attr:`events` turns them into
    :class:`~workflow_trace.Event` models when read.
    """

    def __init__(self) -> None:
        self._batches: list[tuple[str, Sequence[Record] | Sequence[Event]]] = []
        self._events: list[Event] = []
        self.batches = 0

    @classmethod
    def from_url(cls, spec: str) -> MemoryBackend:
        """Build from the backend string ``"memory"``."""
        if spec.strip().lower() not in {"memory", "memory:", "memory://"}:
            raise ValueError(f"the memory backend takes no arguments (got {spec!r})")
        return cls()

    def __repr__(self) -> str:
        return f"MemoryBackend(events={len(self.events)})"

    def write_records(self, records: list[Record]) -> None:
        """Keep a batch of records (list.append is atomic: no lock on the call path)."""
        self._batches.append((ids.prefix, records))
        self.batches += 1

    def emit(self, events: Sequence[Event]) -> None:
        """Keep a batch of events."""
        self._batches.append(("", list(events)))
        self.batches += 1

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass

    def clear(self) -> None:
        """Forget every recorded event."""
        self._batches.clear()
        self._events = []
        self.batches = 0

    @property
    def events(self) -> list[Event]:
        """A copy of the recorded events, oldest first."""
        batches = self._batches
        if n := len(batches):  # the batches taken, whatever is appended meanwhile
            taken = batches[:n]
            del batches[:n]
            self._events = [*self._events, *(e if isinstance(e, Event) else to_event(e, prefix)
                                             for prefix, items in taken for e in items)]
        return list(self._events)

    @property
    def inputs(self) -> list[Node]:
        """The input nodes, in order."""
        return [e.node for e in self.events if e.kind == "input" and e.node is not None]

    @property
    def outputs(self) -> list[Node]:
        """The output nodes, in order."""
        return [e.node for e in self.events if e.kind == "output" and e.node is not None]
