"""The contract between remote backends and the delivery layer.

A remote backend (Supervisely, OpenLineage, a third-party one) is a :class:`Transport`: it knows how to
send events to its server, synchronously, from the delivery layer's background worker. The delivery
layer (``_delivery.py``) owns everything else: the queue, batching, retries with backoff, the durable
spool, the circuit breaker, flushing at exit and after ``fork()``. ``DeliveringBackend(transport)`` turns a
transport into a :class:`~workflow_trace.backends.Backend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ._events import Event

if TYPE_CHECKING:
    import requests

__all__ = ["DeliveryError", "Transport", "check_response", "parse_retry_after"]


class DeliveryError(Exception):
    """Sending failed.

    Args:
        message: Why (the server's message for an HTTP error). Never include a token.
        retryable: ``True`` for connection errors, timeouts, 408, 429 and 5xx; ``False`` for other 4xx
            (those events are kept in the spool as *dead* and not retried automatically).
        retry_after: Seconds the server asked us to wait (``Retry-After``), if any.
        delivered: How many events at the head of the batch were delivered before the failure.
        hold: Keep the events pending without counting attempts against them, and retry later (e.g. the
            instance is too old for workflows: the events must survive until it is upgraded).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        delivered: int = 0,
        hold: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.delivered = delivered
        self.hold = hold


@runtime_checkable
class Transport(Protocol):
    """Sends events to one destination. Called from the delivery worker only, never on the user's path."""

    @property
    def key(self) -> str:
        """A stable name of the destination (e.g. ``supervisely:https://host``), used to partition the
        spool so that the next process with the same configuration picks the events up. No secrets."""

    def send(self, events: Sequence[Event]) -> None:
        """Deliver ``events`` in order, or raise :class:`DeliveryError` (``delivered`` = how many of the
        head were delivered). Events this destination has no place for are skipped (not an error)."""

    def close(self) -> None:
        """Release connections."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import datetime, timezone

        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def check_response(response: requests.Response, *, delivered: int = 0, what: str = "request") -> None:
    """Raise :class:`DeliveryError` for a non-2xx response, classified for retry.

    408, 429 and 5xx are retryable (honouring ``Retry-After``); other 4xx are not. The message carries
    the server's own text (truncated), never the request headers.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    text = (response.text or "").strip().replace("\n", " ")
    if len(text) > 300:
        text = text[:300] + "..."
    retryable = status in (408, 429) or status >= 500
    raise DeliveryError(
        f"{what} failed: HTTP {status}: {text or response.reason}",
        retryable=retryable,
        retry_after=parse_retry_after(response.headers.get("Retry-After")) if retryable else None,
        delivered=delivered,
    )
