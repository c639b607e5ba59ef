"""The contract between remote backends and the delivery layer, and the one way they speak HTTP.

A remote backend (Supervisely, OpenLineage, a third-party one) is a :class:`Transport`: it knows how to
send events to its server, synchronously, from the delivery layer's background worker. The delivery
layer (``_delivery.py``) owns everything else: the durable spool, retries with backoff, holding, flushing
at exit and after ``fork()``. ``DeliveringBackend(transport)`` turns a transport into a backend.

:meth:`Client.post` is the one HTTP call both built-in transports make: redirects are never followed (a 3xx is an
error naming where it pointed, and credentials only ever go to the configured origin), every text that came
from the server or from a URL is redacted before it is logged, raised or spooled, and the answer is
classified for retry. A :class:`Client` holds the one ``requests.Session`` of a destination.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ._context import at_fork, redact
from ._events import Event

if TYPE_CHECKING:
    import requests

__all__ = ["Client", "DeliveryError", "Transport", "check_response", "parse_retry_after"]


class DeliveryError(Exception):
    """Sending failed.

    Args:
        message: Why (the server's message for an HTTP error). Never include a token.
        retryable: ``True`` for connection errors, timeouts, 408, 429 and 5xx; ``False`` for other 4xx
            and redirects (those events are kept in the spool as *dead* and not retried automatically).
        retry_after: Seconds the server asked us to wait (``Retry-After``), if any.
        delivered: How many events at the head of the batch were delivered before the failure.
        hold: The event at index ``delivered`` cannot be taken yet (e.g. the instance is too old for it):
            it waits in the spool without counting attempts, and the events after it go on.
        status: The HTTP status when the server answered (``None``: no answer).
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None, delivered: int = 0,
                 hold: bool = False, status: int | None = None) -> None:
        super().__init__(redact(message))
        self.retryable = retryable
        self.retry_after = retry_after
        self.delivered = delivered
        self.hold = hold
        self.status = status


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
    from urllib3.exceptions import InvalidHeader
    from urllib3.util.retry import Retry

    try:
        return max(0.0, float(Retry().parse_retry_after(value.strip())))
    except (InvalidHeader, ValueError, TypeError, OverflowError):
        return None


def _body_text(response: requests.Response) -> str:
    return (response.text or "").strip().replace("\n", " ")


def check_response(response: requests.Response, *, delivered: int = 0, what: str = "request",
                   reason: Callable[[requests.Response], str] = _body_text) -> None:
    """Raise :class:`DeliveryError` for a non-2xx response, classified for retry.

    408, 429 and 5xx are retryable (honouring ``Retry-After``); redirects and other 4xx are not. The
    message carries the server's own words (``reason``: the body text by default), redacted, then
    truncated, or the HTTP reason phrase; never the request headers.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        target = urlsplit(response.headers.get("Location", "")).netloc or "elsewhere"
        raise DeliveryError(
            f"{what} failed: HTTP {status}: the server redirects to {redact(target)} (not followed: events and "
            "credentials only go to the configured address; fix the URL)",
            retryable=False, delivered=delivered, status=status,
        )
    retryable = status in (408, 429) or status >= 500
    text = redact(reason(response)) or str(response.reason)  # redacted before it is cut: a cut secret is not found
    if len(text) > 300:
        text = text[:300] + "..."
    retry_after = parse_retry_after(response.headers.get("Retry-After")) if retryable else None
    raise DeliveryError(f"{what} failed: HTTP {status}: {text}", retryable=retryable, retry_after=retry_after,
                        delivered=delivered, status=status)


class Client:
    """The ``requests.Session`` of one destination: made on first use, renewed in a forked child (the
    parent's pooled sockets are the parent's).

    Args:
        url: Where requests go; :meth:`post` appends its ``path``.
        timeout: Seconds per request.
        headers: Builds each request's headers, so that a credential is revealed for the request only and
            kept neither in the session nor here.
        verify: TLS verification, as ``requests`` takes it.
        reason: How the text of a failed answer is read (see :func:`check_response`).
    """

    def __init__(self, url: str, timeout: float, headers: Callable[[], dict[str, str]], *,
                 verify: bool | str = True, reason: Callable[[requests.Response], str] = _body_text) -> None:
        self.url = url
        self.timeout = timeout
        self._headers = headers
        self._verify = verify
        self._reason = reason
        self._session: requests.Session | None = None
        self._lock = threading.Lock()  # making and closing the session; never held across I/O
        at_fork(self._after_fork)
        # What a request imports is imported here, on the configuring thread, not by the worker's first send:
        # a fork while a thread is halfway through an import leaves that module's import lock held in the
        # child, whose worker would then wait for it forever (requests imports netrc in every request).
        import netrc  # noqa: F401

        import requests  # noqa: F401

    def _after_fork(self) -> None:
        self._session = None
        self._lock = threading.Lock()

    def _get_session(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                import requests

                self._session = requests.Session()
            return self._session

    def post(self, path: str, data: bytes, *, what: str, delivered: int = 0) -> requests.Response:
        """POST ``data`` to ``url + path`` without following redirects; a failure is a :class:`DeliveryError`.

        Raises:
            DeliveryError: a bad URL (not retryable), a connection error or timeout (retryable), or a non-2xx
                answer (see :func:`check_response`, which gets ``reason``).
        """
        import requests

        try:
            response = self._get_session().post(self.url + path, data=data, timeout=self.timeout,
                                                allow_redirects=False, headers=self._headers(), verify=self._verify)
        except requests.RequestException as exc:  # a bad URL is not retried, a connection error or timeout is
            bad_url = isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                                       requests.exceptions.MissingSchema))
            raise DeliveryError(f"{what} failed: {type(exc).__name__}: {exc}", retryable=not bad_url,
                                delivered=delivered) from None
        try:
            check_response(response, delivered=delivered, what=what, reason=self._reason)
        except DeliveryError:
            response.close()
            raise
        return response

    def close(self) -> None:
        """Close the session (a new one is made on next use)."""
        with self._lock:
            if self._session is not None:
                self._session.close()
            self._session = None
