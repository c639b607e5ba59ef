"""Helpers for testing your own code's lineage (also a pytest plugin, loaded automatically).

::

    from workflow_trace.testing import record

    def test_training_reads_the_project():
        with record() as rec:
            train(project_id=42)
        assert rec.inputs == [wt.Project(id=42)]

or, with pytest, the ``workflow_events`` fixture yields the same recording for the whole test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import _runtime
from ._events import Event
from ._nodes import Node
from .backends.memory import MemoryBackend

__all__ = ["Recording", "record", "workflow_events"]


class Recording:
    """The events captured by :func:`record`, with helpers to assert on them."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend

    def __repr__(self) -> str:
        return f"Recording(events={len(self.events)})"

    def __len__(self) -> int:
        return len(self.events)

    @property
    def events(self) -> list[Event]:
        """Every event, in order."""
        return self.backend.events

    @property
    def inputs(self) -> list[Node]:
        """Input nodes, in order."""
        return self.backend.inputs

    @property
    def outputs(self) -> list[Node]:
        """Output nodes, in order."""
        return self.backend.outputs

    @property
    def steps(self) -> list[Event]:
        """The ``step_finished`` events (name, status, error), in the order steps ended."""
        return [e for e in self.events if e.kind == "step_finished"]

    def of_step(self, name: str) -> list[Event]:
        """The events of every run of the step called ``name``."""
        return [e for e in self.events if e.step.name == name]

    def clear(self) -> None:
        """Forget what was captured so far."""
        self.backend.clear()


@contextmanager
def record() -> Iterator[Recording]:
    """Capture every event emitted inside the block in memory (the configured backend is set aside)."""
    state = _runtime.state
    with state.lock:
        saved = (state.backend, state.owned)
        backend = MemoryBackend()
        state.backend, state.owned = backend, False
        state.invalidate()
    try:
        yield Recording(backend)
    finally:
        with state.lock:
            state.backend, state.owned = saved
            state.invalidate()


try:
    import pytest
except ImportError:  # pragma: no cover - the plugin needs pytest, the module does not

    def workflow_events() -> Any:
        raise RuntimeError("workflow_events is a pytest fixture")
else:

    @pytest.fixture
    def workflow_events() -> Iterator[Recording]:
        """Record the workflow events emitted during the test (in memory)."""
        with record() as rec:
            yield rec
