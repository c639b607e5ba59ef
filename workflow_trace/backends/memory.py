"""An in-memory backend, for tests and notebooks."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .._events import Event
from .._nodes import Node

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Keeps every event in a list, in emission order. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self.batches = 0

    @classmethod
    def from_url(cls, spec: str) -> MemoryBackend:
        """Build from the backend string ``"memory"``."""
        if spec.strip().lower() not in {"memory", "memory:", "memory://"}:
            raise ValueError(f"the memory backend takes no arguments (got {spec!r})")
        return cls()

    def __repr__(self) -> str:
        return f"MemoryBackend(events={len(self._events)})"

    def emit(self, events: Sequence[Event]) -> None:
        with self._lock:
            self._events.extend(events)
            self.batches += 1

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass

    def clear(self) -> None:
        """Forget every recorded event."""
        with self._lock:
            self._events.clear()
            self.batches = 0

    @property
    def events(self) -> list[Event]:
        """A copy of the recorded events, oldest first."""
        with self._lock:
            return list(self._events)

    @property
    def inputs(self) -> list[Node]:
        """The input nodes, in order."""
        return [e.node for e in self.events if e.kind == "input" and e.node is not None]

    @property
    def outputs(self) -> list[Node]:
        """The output nodes, in order."""
        return [e.node for e in self.events if e.kind == "output" and e.node is not None]
