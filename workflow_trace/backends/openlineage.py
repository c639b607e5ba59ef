"""The OpenLineage backend: workflow lineage for Marquez, DataHub and every OpenLineage (2-0-2) consumer.

A step is an OpenLineage *run* of a *job* named after the step; the nodes it reads and writes are
*datasets* with stable names (``project/42``, ``file/models/best.pt``...), so that a lineage server joins
the runs of every task into one graph. The mapping (also in the README):

================================  ===========================================================================
workflow_trace                    OpenLineage
================================  ===========================================================================
``step_started`` (+ the inputs    ``START`` RunEvent with those inputs
emitted with it)
``input`` / ``output`` later      ``RUNNING`` RunEvent with them (so nothing is lost if the in-memory state
                                  is gone, e.g. after a restart: consumers merge a run's events)
``step_finished``, ``ok``         ``COMPLETE`` with every input and output of the run seen by this process
``step_finished``, ``failed``     ``FAIL``, the same, plus the ``errorMessage`` run facet
                                  (``"Type: message"``, ``programmingLanguage`` ``python``, no stack)
``step.run_id`` (UUIDv7)          ``run.runId``
step name                         ``job.name``; ``job.namespace`` = the configured namespace
``step.parent_run_id``            ``parent`` run facet (parent run id and job name; ``root`` when known)
``task_id``                       ``workflowTrace_task`` run facet (``taskId``)
``Project(id=42)``                dataset ``project/42`` in the Supervisely server's namespace
``Project(version_id=...)``       the same dataset + the ``version`` facet (``datasetVersion``: the version
                                  id, or ``v<N>`` when only the number is known)
``Project(path=...)``             ``project/<abs path>`` in ``file://<hostname>``
``Dataset(7)`` / ``Job(11)`` /    ``dataset/7`` / ``job/11`` / ``task/5`` in the server's namespace
``Task(5)``
``File(id=3)`` / ``File(path)``   ``file/3`` / ``file/<path>`` (the path wins when both are known); team
                                  Files paths in the server's namespace, local paths in ``file://<host>``
``Folder(path)``                  ``folder/<path>``, namespace as for files
``App()``                         ``app/<task id>`` (``app/<run id>`` without a task id)
``File(model_weight=True)``       ``workflowTrace_modelWeight`` dataset facet
``customNodeSettings``            ``workflowTrace_card`` dataset facet (the card, in the SDK's wire form)
``customRelationSettings``        ``workflowTrace_card`` input / output facet
================================  ===========================================================================

The server's namespace is the Supervisely server address (``server_address=`` or ``SERVER_ADDRESS``);
without one it is ``supervisely`` and paths of files and folders are local paths. A relative path, or the
path of a :class:`~workflow_trace.Project`, is always local.

Only :class:`OpenLineageTransport` touches the network, from the delivery layer's background worker;
:class:`OpenLineageBackend` is what users configure.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests

from .._delivery import DeliveringBackend
from .._errors import ConfigurationError
from .._events import Event
from .._nodes import App, Dataset, File, Folder, Job, Node, Project, Task
from .._transport import DeliveryError, check_response
from .._version import __version__

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_NAMESPACE",
    "DEFAULT_PRODUCER",
    "FACETS_SCHEMA",
    "RUN_EVENT_SCHEMA_URL",
    "OpenLineageBackend",
    "OpenLineageMapper",
    "OpenLineageTransport",
    "PlannedEvent",
]

logger = logging.getLogger("workflow_trace")

DEFAULT_NAMESPACE: Final = "workflow_trace"
DEFAULT_ENDPOINT: Final = "api/v1/lineage"
#: Identifies this library as the producer of the events (``producer`` / facets' ``_producer``).
DEFAULT_PRODUCER: Final = f"https://pypi.org/project/workflow-trace/{__version__}/"
#: The dataset namespace of id-based nodes when no Supervisely server address is known.
UNKNOWN_SERVER_NAMESPACE: Final = "supervisely"

RUN_EVENT_SCHEMA_URL: Final = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PARENT_FACET_SCHEMA_URL: Final = "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet"
ERROR_FACET_SCHEMA_URL: Final = (
    "https://openlineage.io/spec/facets/1-0-0/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
VERSION_FACET_SCHEMA_URL: Final = (
    "https://openlineage.io/spec/facets/1-0-0/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
)

# Our own facets. There is no hosted copy of their schema (yet), so they are named by a URN rather than a
# URL that would not resolve; the schema itself ships here as FACETS_SCHEMA.
_FACETS_ID: Final = "urn:workflow-trace:openlineage:facets:1-0-0"
MODEL_WEIGHT_FACET: Final = "workflowTrace_modelWeight"
CARD_FACET: Final = "workflowTrace_card"
TASK_FACET: Final = "workflowTrace_task"

_SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "description": "The card's title (HTML, e.g. <h4>T</h4>)."},
        "description": {"type": "string", "description": "The card's description (HTML)."},
        "icon": {
            "type": "object",
            "properties": {
                "icon": {"type": "string"},
                "color": {"type": "string"},
                "backgroundColor": {"type": "string"},
            },
            "required": ["icon", "color", "backgroundColor"],
        },
        "mainLink": {
            "type": "object",
            "properties": {"url": {"type": "string"}, "title": {"type": "string"}},
            "required": ["url", "title"],
        },
    },
}

#: The JSON schema of the custom facets (``_schemaURL`` = ``<$id>#/$defs/<Name>``).
FACETS_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": _FACETS_ID,
    "$defs": {
        "ModelWeightDatasetFacet": {
            "description": "The dataset (a file) holds model weights (a checkpoint).",
            "type": "object",
            "properties": {"modelWeight": {"type": "boolean"}},
            "required": ["modelWeight"],
        },
        "CardFacet": {
            "description": (
                "How the Supervisely workflow shows this node (as a dataset facet) or this relation (as an "
                "input or output facet): the SDK's customNodeSettings / customRelationSettings."
            ),
            **_SETTINGS_SCHEMA,
        },
        "TaskRunFacet": {
            "description": "The Supervisely task (the workflow's main node) this run belongs to.",
            "type": "object",
            "properties": {"taskId": {"type": "integer"}},
            "required": ["taskId"],
        },
    },
}
MODEL_WEIGHT_FACET_SCHEMA_URL: Final = f"{_FACETS_ID}#/$defs/ModelWeightDatasetFacet"
CARD_FACET_SCHEMA_URL: Final = f"{_FACETS_ID}#/$defs/CardFacet"
TASK_FACET_SCHEMA_URL: Final = f"{_FACETS_ID}#/$defs/TaskRunFacet"

#: How many runs the mapper remembers (names for parent facets, datasets for COMPLETE). Older runs are
#: forgotten first; their RUNNING events already carried their datasets.
_MAX_RUNS: Final = 10_000

Direction = Literal["input", "output"]


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat()


def _strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (for keys, reprs and messages)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _normalise_server(address: str) -> str:
    address = _strip_userinfo(address.strip()).rstrip("/")
    parts = urlsplit(address)
    if parts.scheme and parts.netloc:
        return urlunsplit(parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()))
    return address


@dataclass
class _RunState:
    """What this process has seen of one run."""

    name: str | None = None
    parent_run_id: str | None = None
    datasets: dict[tuple[str, str, str, str | None], dict[str, Any]] = field(default_factory=dict)

    def add(self, direction: Direction, dataset: dict[str, Any]) -> None:
        version = dataset.get("facets", {}).get("version", {}).get("datasetVersion")
        self.datasets[(direction, dataset["namespace"], dataset["name"], version)] = dataset

    def of(self, direction: Direction) -> list[dict[str, Any]]:
        return [d for key, d in self.datasets.items() if key[0] == direction]


@dataclass
class PlannedEvent:
    """One OpenLineage RunEvent to send, and what sending it delivers.

    Attributes:
        body: The RunEvent (JSON-ready).
        end: Index just past the last workflow_trace event it covers (``delivered`` once it is sent).
        run_id: The run.
        finished: It is the run's COMPLETE or FAIL (the run's state can be forgotten once it is sent).
    """

    body: dict[str, Any]
    end: int
    run_id: str
    finished: bool = False


class OpenLineageMapper:
    """Turns workflow_trace events into OpenLineage RunEvents, remembering what each run has seen.

    Args:
        namespace: The job namespace.
        producer: The ``producer`` URI of events and facets.
        server_address: The Supervisely server address (the dataset namespace of id-based nodes).
        hostname: The host local paths live on (``file://<hostname>``); the machine's name by default.
    """

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        producer: str = DEFAULT_PRODUCER,
        server_address: str | None = None,
        hostname: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.producer = producer
        self.server_namespace = _normalise_server(server_address) if server_address else None
        self.local_namespace = f"file://{hostname or socket.gethostname()}"
        self._runs: OrderedDict[str, _RunState] = OrderedDict()
        self._lock = threading.Lock()

    # -- datasets -------------------------------------------------------------------------------------

    def _path_dataset(self, kind: str, path: str, local: bool) -> tuple[str, str]:
        if local or self.server_namespace is None or not path.startswith("/"):
            path = os.path.abspath(path).replace(os.sep, "/")
            namespace = self.local_namespace
        else:
            path = posixpath.normpath(path)
            namespace = self.server_namespace
        return namespace, f"{kind}/{path.lstrip('/')}"

    def dataset_identity(self, node: Node, task_id: int | None = None, run_id: str = "") -> tuple[str, str]:
        """The ``(namespace, name)`` of the dataset a node is.

        Args:
            node: The node.
            task_id: The task of the event (names the ``App`` node).
            run_id: The run of the event (names the ``App`` node when there is no task id).
        """
        server = self.server_namespace or UNKNOWN_SERVER_NAMESPACE
        if isinstance(node, Project):
            if node.id is not None:
                return server, f"project/{node.id}"
            return self._path_dataset("project", node.path or "", local=True)
        if isinstance(node, File):
            if node.path is not None:
                return self._path_dataset("file", node.path, local=False)
            return server, f"file/{node.id}"
        if isinstance(node, Folder):
            return self._path_dataset("folder", node.path, local=False)
        if isinstance(node, (Dataset, Task, Job)):
            return server, f"{node.kind}/{node.id}"
        if isinstance(node, App):
            return server, f"app/{task_id}" if task_id is not None else f"app/{run_id}"
        raise TypeError(f"unknown node kind {type(node).__name__}")

    def _facet(self, schema_url: str, **fields: Any) -> dict[str, Any]:
        return {"_producer": self.producer, "_schemaURL": schema_url, **fields}

    def dataset(self, event: Event, direction: Direction) -> dict[str, Any] | None:
        """The OpenLineage input or output dataset of an ``input`` / ``output`` event."""
        node = event.node
        if node is None:
            return None
        namespace, name = self.dataset_identity(node, event.task_id, event.step.run_id)
        out: dict[str, Any] = {"namespace": namespace, "name": name}
        facets: dict[str, Any] = {}
        if isinstance(node, Project) and (node.version_id is not None or node.version_num is not None):
            version = str(node.version_id) if node.version_id is not None else f"v{node.version_num}"
            facets["version"] = self._facet(VERSION_FACET_SCHEMA_URL, datasetVersion=version)
        if isinstance(node, File) and node.model_weight:
            facets[MODEL_WEIGHT_FACET] = self._facet(MODEL_WEIGHT_FACET_SCHEMA_URL, modelWeight=True)
        meta: Mapping[str, Any] = event.meta or {}
        card = meta.get("customNodeSettings")
        if isinstance(card, Mapping) and card:
            facets[CARD_FACET] = self._facet(CARD_FACET_SCHEMA_URL, **card)
        if facets:
            out["facets"] = facets
        relation = meta.get("customRelationSettings")
        if isinstance(relation, Mapping) and relation:
            out[f"{direction}Facets"] = {CARD_FACET: self._facet(CARD_FACET_SCHEMA_URL, **relation)}
        return out

    # -- runs -----------------------------------------------------------------------------------------

    def _state(self, run_id: str) -> _RunState:
        state = self._runs.get(run_id)
        if state is None:
            state = self._runs[run_id] = _RunState()
            while len(self._runs) > _MAX_RUNS:
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(run_id)
        return state

    def _parent_facet(self, parent_run_id: str, task_id: int | None) -> dict[str, Any]:
        parent = self._runs.get(parent_run_id)
        # The parent's name is known unless its START was delivered by another process; the task is
        # then the best name there is for what started this run.
        if parent is not None and parent.name is not None:
            parent_name = parent.name
        elif task_id is not None:
            parent_name = f"task/{task_id}"
        else:
            parent_name = "unknown"
        facet = self._facet(
            PARENT_FACET_SCHEMA_URL,
            run={"runId": parent_run_id},
            job={"namespace": self.namespace, "name": parent_name},
        )
        # The root: the outermost ancestor, when the whole chain is known.
        root_id, root = parent_run_id, parent
        seen = {parent_run_id}
        while root is not None and root.parent_run_id is not None and root.parent_run_id not in seen:
            seen.add(root.parent_run_id)
            root_id, root = root.parent_run_id, self._runs.get(root.parent_run_id)
        if root is not None and root.name is not None and root_id != parent_run_id:
            facet["root"] = {
                "run": {"runId": root_id},
                "job": {"namespace": self.namespace, "name": root.name},
            }
        return facet

    def _run_event(
        self,
        event_type: str,
        event: Event,
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
    ) -> dict[str, Any]:
        step = event.step
        run_facets: dict[str, Any] = {}
        if step.parent_run_id:
            run_facets["parent"] = self._parent_facet(step.parent_run_id, event.task_id)
        if event.task_id is not None:
            run_facets[TASK_FACET] = self._facet(TASK_FACET_SCHEMA_URL, taskId=event.task_id)
        if event_type == "FAIL":
            error = event.error
            message = f"{error.type}: {error.message}" if error is not None else "the step failed"
            run_facets["errorMessage"] = self._facet(
                ERROR_FACET_SCHEMA_URL, message=message, programmingLanguage="python"
            )
        run: dict[str, Any] = {"runId": step.run_id}
        if run_facets:
            run["facets"] = run_facets
        return {
            "eventType": event_type,
            "eventTime": _iso(event.time),
            "producer": self.producer,
            "schemaURL": RUN_EVENT_SCHEMA_URL,
            "run": run,
            "job": {"namespace": self.namespace, "name": step.name or "step"},
            "inputs": inputs,
            "outputs": outputs,
        }

    def plan(self, events: Sequence[Event]) -> list[PlannedEvent]:
        """Map a batch to RunEvents, in order, and remember the runs' names and datasets.

        Consecutive events of one run form a group: ``step_started`` and the ``input`` events right after
        it make a START; ``input`` / ``output`` events followed, in the same group, by the run's
        ``step_finished`` are folded into its COMPLETE / FAIL; others make a RUNNING event. Planning the
        same events again (a retry) adds no dataset twice.
        """
        with self._lock:
            return list(self._plan(events))

    def _plan(self, events: Sequence[Event]) -> Iterator[PlannedEvent]:
        i, n = 0, len(events)
        while i < n:
            run_id = events[i].step.run_id
            j = i
            while j < n and events[j].step.run_id == run_id:
                j += 1
            yield from self._plan_group(events, i, j)
            i = j

    def _plan_group(self, events: Sequence[Event], start: int, stop: int) -> Iterator[PlannedEvent]:
        first = events[start]
        state = self._state(first.step.run_id)
        state.name = first.step.name
        state.parent_run_id = first.step.parent_run_id
        i = start
        pending: list[tuple[Direction, dict[str, Any]]] = []
        pending_event: Event | None = None
        while i < stop:
            event = events[i]
            if event.kind == "step_started":
                if pending_event is not None:
                    yield self._running(pending_event, pending, i)
                    pending, pending_event = [], None
                i += 1
                inputs: list[dict[str, Any]] = []
                while i < stop and events[i].kind == "input":
                    dataset = self.dataset(events[i], "input")
                    if dataset is not None:
                        state.add("input", dataset)
                        inputs.append(dataset)
                    i += 1
                yield PlannedEvent(self._run_event("START", event, inputs, []), i, event.step.run_id)
                continue
            if event.kind in ("input", "output"):
                direction: Direction = "input" if event.kind == "input" else "output"
                dataset = self.dataset(event, direction)
                if dataset is not None:
                    state.add(direction, dataset)
                    pending.append((direction, dataset))
                pending_event = event
                i += 1
                continue
            # step_finished: every input and output of the run, the pending ones included.
            event_type = "FAIL" if event.status == "failed" else "COMPLETE"
            body = self._run_event(event_type, event, state.of("input"), state.of("output"))
            pending, pending_event = [], None
            i += 1
            yield PlannedEvent(body, i, event.step.run_id, finished=True)
        if pending_event is not None:
            yield self._running(pending_event, pending, stop)

    def _running(
        self, event: Event, pending: list[tuple[Direction, dict[str, Any]]], end: int
    ) -> PlannedEvent:
        inputs = [d for direction, d in pending if direction == "input"]
        outputs = [d for direction, d in pending if direction == "output"]
        return PlannedEvent(self._run_event("RUNNING", event, inputs, outputs), end, event.step.run_id)

    def finished(self, run_id: str) -> None:
        """Forget a run's datasets once its COMPLETE / FAIL is delivered (its name stays, for children)."""
        with self._lock:
            state = self._runs.get(run_id)
            if state is not None:
                state.datasets.clear()


class OpenLineageTransport:
    """Sends workflow_trace events to an OpenLineage HTTP endpoint as RunEvents (one POST per RunEvent).

    Runs in the delivery layer's background worker only. The API key travels in the ``Authorization``
    header and nowhere else: not in :attr:`key`, ``repr``, log lines or errors.

    Args:
        url: The server's base URL (``http://marquez:5000``).
        namespace: The job namespace.
        endpoint: The path of the lineage endpoint under ``url``.
        api_key: Sent as ``Authorization: Bearer <api_key>`` when set.
        producer: The ``producer`` URI of events and facets.
        server_address: The Supervisely server address, the namespace of id-based datasets
            (default: ``SERVER_ADDRESS`` from the environment).
        timeout: Seconds to wait for the server, per request.
        session: A ``requests.Session`` to use (one is made on first use otherwise).

    Raises:
        ConfigurationError: ``url`` is not an ``http(s)://`` URL.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        endpoint: str = DEFAULT_ENDPOINT,
        api_key: str | None = None,
        producer: str = DEFAULT_PRODUCER,
        server_address: str | None = None,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        url = (url or "").strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(
                f"the OpenLineage url must look like http(s)://host[:port], not {_strip_userinfo(url)!r}"
            )
        if not namespace:
            raise ConfigurationError("the OpenLineage namespace must not be empty")
        self.url = url.rstrip("/")
        self.endpoint = endpoint.strip("/")
        self.namespace = namespace
        self.timeout = timeout
        self._api_key = api_key or None
        self._endpoint_url = f"{self.url}/{self.endpoint}" if self.endpoint else self.url
        self._safe_endpoint_url = _strip_userinfo(self._endpoint_url)
        if server_address is None:
            server_address = os.environ.get("SERVER_ADDRESS") or None
        self.mapper = OpenLineageMapper(namespace, producer=producer, server_address=server_address)
        self._session = session
        self._session_pid = os.getpid() if session is not None else 0
        self._lock = threading.Lock()

    @property
    def key(self) -> str:
        """``openlineage:<endpoint URL>`` (no credentials): the spool partition of this destination."""
        return f"openlineage:{self._safe_endpoint_url}"

    def __repr__(self) -> str:
        auth = ", api_key=***" if self._api_key else ""
        return f"OpenLineageTransport({self._safe_endpoint_url!r}, namespace={self.namespace!r}{auth})"

    def _get_session(self) -> requests.Session:
        # A session (its pooled sockets) must not be shared with a forked parent.
        if self._session is None or self._session_pid != os.getpid():
            session = requests.Session()
            session.headers["Content-Type"] = "application/json"
            session.headers["User-Agent"] = f"workflow-trace/{__version__}"
            if self._api_key:
                session.headers["Authorization"] = f"Bearer {self._api_key}"
            self._session, self._session_pid = session, os.getpid()
        return self._session

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def send(self, events: Sequence[Event]) -> None:
        """POST the RunEvents of ``events``, in order.

        Raises:
            DeliveryError: a connection error or timeout (retryable), or an HTTP error (classified by
                :func:`~workflow_trace._transport.check_response`); ``delivered`` counts the
                workflow_trace events whose RunEvents were all accepted.
        """
        with self._lock:
            planned = self.mapper.plan(events)
            session = self._get_session()
            delivered = 0
            for item in planned:
                data = json.dumps(item.body, ensure_ascii=False, separators=(",", ":")).encode()
                try:
                    response = session.post(self._endpoint_url, data=data, timeout=self.timeout)
                except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                        requests.exceptions.MissingSchema) as exc:
                    raise DeliveryError(
                        self._redact(f"POST {self._safe_endpoint_url} failed: {type(exc).__name__}"),
                        retryable=False,
                        delivered=delivered,
                    ) from None
                except requests.RequestException as exc:
                    raise DeliveryError(
                        self._redact(f"POST {self._safe_endpoint_url} failed: {type(exc).__name__}: {exc}"),
                        retryable=True,
                        delivered=delivered,
                    ) from None
                try:
                    check_response(response, delivered=delivered, what=f"POST {self._safe_endpoint_url}")
                finally:
                    response.close()
                delivered = item.end
                if item.finished:
                    self.mapper.finished(item.run_id)
            logger.debug("openlineage: sent %d run event(s) for %d event(s)", len(planned), len(events))

    def close(self) -> None:
        """Close the HTTP session."""
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None


def _parse_backend_string(spec: str) -> tuple[str, dict[str, str]]:
    """``(url, options)`` from ``openlineage+http(s)://host[:port][/path][?namespace=..&endpoint=..]``
    or ``openlineage`` (the url from ``OPENLINEAGE_URL``)."""
    text = spec.strip()
    scheme, _, rest = text.partition(":")
    scheme = scheme.lower()
    query = ""
    if scheme == "openlineage":
        rest = rest.lstrip("/")
        if rest.startswith("?"):
            query, rest = rest[1:], ""
        if rest:
            raise ConfigurationError(
                f"backend {text!r}: write openlineage+http://host:port (or openlineage+https://...), "
                "or just 'openlineage' with OPENLINEAGE_URL set"
            )
        url = os.environ.get("OPENLINEAGE_URL", "").strip()
        if not url:
            raise ConfigurationError(
                "the 'openlineage' backend needs OPENLINEAGE_URL (e.g. http://localhost:5000), "
                "or write the URL in the backend string: openlineage+http://host:port"
            )
    elif scheme in ("openlineage+http", "openlineage+https") and rest.startswith("//"):
        parts = urlsplit(f"{scheme.split('+', 1)[1]}:{rest}")
        query = parts.query
        url = urlunsplit(parts._replace(query="", fragment=""))
    else:
        raise ConfigurationError(
            f"backend {_strip_userinfo(text)!r}: write openlineage+http://host:port or "
            "openlineage+https://host, or 'openlineage' with OPENLINEAGE_URL set"
        )
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in ("namespace", "endpoint"):
            hint = " (set OPENLINEAGE_API_KEY instead)" if "key" in name.lower() else ""
            raise ConfigurationError(
                f"backend {scheme!r}: unknown option {name!r}{hint}; options are: namespace, endpoint"
            )
        options[name] = value
    return url, options


class OpenLineageBackend(DeliveringBackend):
    """Sends the lineage to an OpenLineage server (Marquez, DataHub, ...), in the background.

    A :class:`~workflow_trace._delivery.DeliveringBackend` over an :class:`OpenLineageTransport`: ``emit``
    only queues; a worker POSTs the RunEvents, retries with backoff and spools to disk while the server
    is unreachable (the next process delivers what is left), in order.

    Args:
        url: The server's base URL (``http://localhost:5000``).
        namespace: The job namespace (one per team or pipeline family).
        endpoint: The lineage endpoint under ``url``.
        api_key: Sent as ``Authorization: Bearer <api_key>``; never logged, shown or spooled.
        producer: The ``producer`` URI of the events.
        spool_path: The spool file (default: the delivery layer's, see ``WORKFLOW_TRACE_SPOOL``).
        server_address: The Supervisely server address, the namespace of id-based datasets
            (default: ``SERVER_ADDRESS``).
        timeout: Seconds to wait for the server, per request.
        **delivery: Tuning of the delivery layer (``batch_size``, ``backoff_base``, ...).

    Raises:
        ConfigurationError: a bad URL, namespace or delivery option.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        endpoint: str = DEFAULT_ENDPOINT,
        api_key: str | None = None,
        producer: str = DEFAULT_PRODUCER,
        spool_path: str | os.PathLike[str] | None = None,
        server_address: str | None = None,
        timeout: float = 10.0,
        **delivery: Any,
    ) -> None:
        transport = OpenLineageTransport(
            url,
            namespace=namespace,
            endpoint=endpoint,
            api_key=api_key,
            producer=producer,
            server_address=server_address,
            timeout=timeout,
        )
        super().__init__(transport, spool_path=spool_path, **delivery)
        self.openlineage: OpenLineageTransport = transport

    @classmethod
    def from_url(cls, spec: str) -> OpenLineageBackend:
        """Build from ``openlineage+http(s)://host[:port][/path][?namespace=..&endpoint=..]``, or from
        ``openlineage`` and ``OPENLINEAGE_URL``.

        ``OPENLINEAGE_API_KEY``, ``OPENLINEAGE_NAMESPACE`` and ``OPENLINEAGE_ENDPOINT`` (the official
        client's variables) give the API key, and the namespace and endpoint the string does not set.

        Raises:
            ConfigurationError: a string this backend cannot use, saying what to write.
        """
        url, options = _parse_backend_string(spec)
        return cls(
            url,
            namespace=options.get("namespace") or os.environ.get("OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE,
            endpoint=options.get("endpoint") or os.environ.get("OPENLINEAGE_ENDPOINT") or DEFAULT_ENDPOINT,
            api_key=os.environ.get("OPENLINEAGE_API_KEY") or None,
        )

    @classmethod
    def from_env(cls) -> OpenLineageBackend:
        """Build from ``OPENLINEAGE_URL`` (and the other ``OPENLINEAGE_*`` variables).

        Raises:
            ConfigurationError: ``OPENLINEAGE_URL`` is not set or not an http(s) URL.
        """
        return cls.from_url("openlineage")

    def __repr__(self) -> str:
        return repr(self.openlineage).replace("OpenLineageTransport(", "OpenLineageBackend(", 1)
