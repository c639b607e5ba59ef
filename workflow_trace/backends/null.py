"""A backend that discards everything (tracking switched on, recording switched off)."""

from __future__ import annotations

from collections.abc import Sequence

from .._events import Event, Record

__all__ = ["NullBackend"]


class NullBackend:
    """Accepts every batch and keeps nothing."""

    @classmethod
    def from_url(cls, spec: str) -> NullBackend:
        """Build from the backend string ``"null"``."""
        if spec.strip().lower() not in {"null", "null:", "null://"}:
            raise ValueError(f"the null backend takes no arguments (got {spec!r})")
        return cls()

    def __repr__(self) -> str:
        return "NullBackend()"

    def write_records(self, records: list[Record]) -> None:
        pass

    def emit(self, events: Sequence[Event]) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass
