"""The OpenLineage backend: workflow lineage for Marquez, DataHub and every OpenLineage (2-0-2) consumer.

A step is an OpenLineage *run* of a *job*; the nodes it reads and writes are *datasets* named after the
OpenLineage naming conventions, so that a lineage server joins the runs of every task into one graph.
The mapping (also in the README):

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
every RunEvent                    ``processing_engine`` run facet (``workflow_trace``, its version) and
                                  ``jobType`` job facet (``BATCH``, ``WORKFLOW_TRACE``, ``TASK`` for an
                                  outermost step, ``STEP`` for a nested one)
``step.run_id`` (UUIDv7)          ``run.runId``
step name, task id                ``job.name`` = ``task_<id>.<step name>`` (``job_prefix``; the step name
                                  alone without a task id); ``job.namespace`` = the configured namespace
``step.parent_run_id``            ``parent`` run facet (parent run id and job name; ``root`` when known)
``task_id``                       ``workflowTrace_task`` run facet (``taskId``)
``Project(id=42)``                dataset ``project/42`` in ``supervisely://<server host>``
``Project(version_id=...)``       the same dataset + the ``version`` facet (``datasetVersion``: the version
                                  id, or ``v<N>`` when only the number is known); with
                                  ``dataset_version="name"`` the dataset ``project/42@<version>`` instead,
                                  with ``"both"`` both datasets
``Project(path=...)``             ``<abs path>`` in ``file://<hostname>``
``Dataset(7)`` / ``Job(11)`` /    ``dataset/7`` / ``job/11`` / ``task/5`` in ``supervisely://<server host>``
``Task(5)``
``File(id=3)`` / ``File(path)``   ``file/3`` / ``file/<path>`` (the path wins when both are known) for team
                                  Files; a local path is ``<abs path>`` in ``file://<hostname>``
``Folder(path)``                  ``folder/<path>``, or a local ``<abs path>``, as for files
``App()``                         ``app/<task id>`` (``app/<run id>`` without a task id)
``File(model_weight=True)``       ``workflowTrace_modelWeight`` dataset facet
``customNodeSettings``            ``workflowTrace_card`` dataset facet (the card, in the SDK's wire form)
``customRelationSettings``        ``workflowTrace_card`` input / output facet
================================  ===========================================================================

Namespaces follow the OpenLineage naming spec: a dataset namespace names the *data source* as
``<kind of store>://<authority>`` (``postgres://host:5432``, ``s3://bucket``, ``file://host``), not the
protocol used to reach it. The Supervisely server ``https://app.supervisely.com`` is therefore
``supervisely://app.supervisely.com`` (its port kept unless it is the scheme's default); without a server
address it is ``supervisely`` (as ``bigquery`` has no authority). Local paths are files on this host:
``file://<hostname>`` and the absolute path as the name, as every OpenLineage integration names files,
so a file written here by Spark or pandas is the same dataset. A relative path, or the path of a
:class:`~workflow_trace.Project`, is always local; an absolute ``File``/``Folder`` path is a team Files
path when a server address is known.

Only :class:`OpenLineageTransport` touches the network, from the delivery layer's background worker;
:class:`OpenLineageBackend` is what users configure. Configuration as the OpenLineage client reads it
(``openlineage.yml``, ``OPENLINEAGE__*``, ``OPENLINEAGE_DISABLED``) is in ``_openlineage_config``.
"""

from __future__ import annotations

import gzip
import json
import os
import posixpath
import socket
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final, Literal, get_args
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests

from .._context import Secret, logger
from .._delivery import DeliveringBackend
from .._errors import ConfigurationError
from .._events import Event
from .._nodes import App, Dataset, File, Folder, Job, Node, Project, Task
from .._transport import Client
from .._version import __version__
from ._openlineage_config import (
    DEFAULT_ENDPOINT,
    HttpTransportConfig,
    OpenLineageSettings,
    config_file_candidates,
    header_value,
    is_disabled,
    load_settings,
    safe_url,
    simple_transport,
)
from .null import NullBackend

__all__ = [
    "DEFAULT_ENDPOINT", "DEFAULT_JOB_PREFIX", "DEFAULT_NAMESPACE", "DEFAULT_PRODUCER", "ENGINE_NAME", "FACETS_SCHEMA",
    "INTEGRATION", "RUN_EVENT_SCHEMA_URL", "DatasetVersionMode", "OpenLineageBackend", "OpenLineageMapper",
    "OpenLineageTransport", "PlannedEvent", "Secret",
]


DEFAULT_NAMESPACE: Final = "workflow_trace"
#: Identifies this library as the producer of the events (``producer`` / facets' ``_producer``).
DEFAULT_PRODUCER: Final = f"https://pypi.org/project/workflow-trace/{__version__}/"
#: The dataset namespace of id-based nodes when no Supervisely server address is known.
UNKNOWN_SERVER_NAMESPACE: Final = "supervisely"
#: The scheme of Supervisely dataset namespaces (``supervisely://host``).
SERVER_SCHEME: Final = "supervisely"
#: ``job.name`` is ``<prefix>.<step name>``; ``{task_id}`` is the event's task (no prefix without one).
DEFAULT_JOB_PREFIX: Final = "task_{task_id}"
#: ``processing_engine.name``: what DataHub takes as the orchestrator.
ENGINE_NAME: Final = "workflow_trace"
#: ``jobType.integration``.
INTEGRATION: Final = "WORKFLOW_TRACE"

DatasetVersionMode = Literal["facet", "name", "both"]

RUN_EVENT_SCHEMA_URL: Final = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def _standard_facet(version: str, name: str) -> str:
    """The schema URL of a standard facet, at the version the official Python client (1.x) emits."""
    return f"https://openlineage.io/spec/facets/{version}/{name}.json#/$defs/{name}"


PARENT_FACET_SCHEMA_URL: Final = _standard_facet("1-2-0", "ParentRunFacet")
ERROR_FACET_SCHEMA_URL: Final = _standard_facet("1-0-1", "ErrorMessageRunFacet")
VERSION_FACET_SCHEMA_URL: Final = _standard_facet("1-0-1", "DatasetVersionDatasetFacet")
ENGINE_FACET_SCHEMA_URL: Final = _standard_facet("1-1-1", "ProcessingEngineRunFacet")
JOB_TYPE_FACET_SCHEMA_URL: Final = _standard_facet("2-0-4", "JobTypeJobFacet")

# Our own facets. There is no hosted copy of their schema (yet), so they are named by a URN rather than a
# URL that would not resolve; the schema itself ships next to this module (FACETS_SCHEMA).
#: The JSON schema of the custom facets (``_schemaURL`` = ``<$id>#/$defs/<Name>``).
FACETS_SCHEMA: Final[dict[str, Any]] = json.loads(
    Path(__file__).with_name("openlineage_facets.json").read_text(encoding="utf-8")
)
_FACETS_ID: Final[str] = FACETS_SCHEMA["$id"]
MODEL_WEIGHT_FACET: Final = "workflowTrace_modelWeight"
CARD_FACET: Final = "workflowTrace_card"
TASK_FACET: Final = "workflowTrace_task"
MODEL_WEIGHT_FACET_SCHEMA_URL: Final = f"{_FACETS_ID}#/$defs/ModelWeightDatasetFacet"
CARD_FACET_SCHEMA_URL: Final = f"{_FACETS_ID}#/$defs/CardFacet"
TASK_FACET_SCHEMA_URL: Final = f"{_FACETS_ID}#/$defs/TaskRunFacet"

#: How many runs the mapper remembers (names for parent facets, datasets for COMPLETE). Older runs are
#: forgotten first; their RUNNING events already carried their datasets.
_MAX_RUNS: Final = 10_000
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Direction = Literal["input", "output"]


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat()


def server_namespace(address: str) -> str:
    """The OpenLineage dataset namespace of a Supervisely server: ``supervisely://host[:port][/path]``.

    The scheme names the kind of data source (as ``postgres://`` does), not the protocol: ``http`` and
    ``https`` addresses of one server are one namespace. Credentials, the default port, a trailing
    slash, query and fragment are dropped; host names are lower-cased.
    """
    text = address.strip()
    parts = urlsplit(text if "://" in text else f"https://{text}")
    host = (parts.hostname or "").lower()
    if not host:
        return UNKNOWN_SERVER_NAMESPACE
    if ":" in host:
        host = f"[{host}]"  # IPv6
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return f"{SERVER_SCHEME}://{host}{parts.path.rstrip('/')}"


@dataclass
class _RunState:
    """What this process has seen of one run."""

    job: str | None = None
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

    Pure: no I/O (the host name is read once, at construction, when not given). Not thread-safe, and
    needs not be: its transport's ``send``, called by one delivery worker at a time, is its one user.

    Args:
        namespace: The job namespace.
        producer: The ``producer`` URI of events and facets.
        server_address: The Supervisely server address (the dataset namespace of id-based nodes).
        hostname: The host local paths live on (``file://<hostname>``); the machine's name by default.
        job_prefix: ``job.name`` is ``<prefix>.<step name>``. ``{task_id}`` in it is the event's task id,
            and without a task id there is no prefix. ``""``: the step name alone (one job per step name
            across tasks). DataHub makes the part before the first dot the pipeline (DataFlow).
        dot_replacement: Replaces every ``.`` in the step name and the prefix (e.g. ``"_"``), so that
            DataHub, which splits job names at the first dot, does not split ``Trainer.fit``; ``None``
            keeps dots.
        dataset_version: How a project version is sent: ``"facet"`` (the ``version`` dataset facet on
            the project's dataset), ``"name"`` (the dataset ``project/42@<version>``: one dataset per
            version, for consumers that ignore the facet on inputs, like Marquez) or ``"both"`` (both
            datasets: the version is visible and the lineage still joins the project's writers).

    Raises:
        ConfigurationError: an option out of range.
    """

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        producer: str = DEFAULT_PRODUCER,
        server_address: str | None = None,
        hostname: str | None = None,
        job_prefix: str = DEFAULT_JOB_PREFIX,
        dot_replacement: str | None = None,
        dataset_version: DatasetVersionMode = "facet",
    ) -> None:
        if dataset_version not in get_args(DatasetVersionMode):
            raise ConfigurationError(
                f"dataset_version must be one of {', '.join(get_args(DatasetVersionMode))}, not {dataset_version!r}"
            )
        if dot_replacement is not None and "." in dot_replacement:
            raise ConfigurationError(f"dot_replacement must not contain a dot, not {dot_replacement!r}")
        job_prefix = job_prefix or ""
        try:
            job_prefix.format(task_id=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigurationError(
                f"job_prefix {job_prefix!r}: only the placeholder {{task_id}} is known ({type(exc).__name__}: {exc})"
            ) from None
        self.namespace = namespace
        self.producer = producer
        self.server_namespace = server_namespace(server_address) if server_address else None
        self.local_namespace = f"file://{hostname or socket.gethostname()}"
        self.job_prefix = job_prefix
        self.dot_replacement = dot_replacement
        self.dataset_version: DatasetVersionMode = dataset_version
        self._runs: OrderedDict[str, _RunState] = OrderedDict()

    # -- names ---------------------------------------------------------------------------------------

    def job_name(self, step_name: str | None, task_id: int | None) -> str:
        """The ``job.name`` of a step: ``<prefix>.<step name>`` (see ``job_prefix``, ``dot_replacement``)."""
        step = step_name or "step"
        prefix = ""
        if self.job_prefix and (task_id is not None or "{task_id}" not in self.job_prefix):
            prefix = self.job_prefix.format(task_id=task_id)
        if self.dot_replacement is not None:
            step = step.replace(".", self.dot_replacement)
            prefix = prefix.replace(".", self.dot_replacement)
        return f"{prefix}.{step}" if prefix else step

    # -- datasets -------------------------------------------------------------------------------------

    def _path_dataset(self, kind: str, path: str, local: bool) -> tuple[str, str]:
        if local or self.server_namespace is None or not path.startswith("/"):
            # A file on this host: named as the naming spec names files (the absolute path).
            return self.local_namespace, os.path.abspath(path).replace(os.sep, "/")
        return self.server_namespace, f"{kind}/{posixpath.normpath(path).lstrip('/')}"

    def dataset_identity(self, node: Node, task_id: int | None = None, run_id: str = "") -> tuple[str, str]:
        """The ``(namespace, name)`` of the dataset a node is (a project version: the project's).

        Args:
            node: The node.
            task_id: The task of the event (names the ``App`` node).
            run_id: The run of the event (names the ``App`` node when there is no task id).
        """
        server = self.server_namespace or UNKNOWN_SERVER_NAMESPACE
        if isinstance(node, Project) and node.id is None:
            return self._path_dataset("project", node.path or "", local=True)
        if isinstance(node, (File, Folder)) and node.path is not None:  # a file's path wins over its id
            return self._path_dataset(node.kind, node.path, local=False)
        if isinstance(node, App):
            return server, f"app/{task_id}" if task_id is not None else f"app/{run_id}"
        if isinstance(node, (Project, File, Dataset, Task, Job)):
            return server, f"{node.kind}/{node.id}"
        raise TypeError(f"unknown node kind {type(node).__name__}")

    def _facet(self, schema_url: str, **fields: Any) -> dict[str, Any]:
        return {"_producer": self.producer, "_schemaURL": schema_url, **fields}

    def datasets(self, event: Event, direction: Direction) -> list[dict[str, Any]]:
        """The OpenLineage input or output datasets of an ``input`` / ``output`` event (one, or two for a
        project version with ``dataset_version="both"``; none for a step event)."""
        node = event.node
        if node is None:
            return []
        namespace, name = self.dataset_identity(node, event.task_id, event.step.run_id)
        facets: dict[str, Any] = {}
        version: str | None = None
        if isinstance(node, Project) and (node.version_id is not None or node.version_num is not None):
            version = str(node.version_id) if node.version_id is not None else f"v{node.version_num}"
            facets["version"] = self._facet(VERSION_FACET_SCHEMA_URL, datasetVersion=version)
        if isinstance(node, File) and node.model_weight:
            facets[MODEL_WEIGHT_FACET] = self._facet(MODEL_WEIGHT_FACET_SCHEMA_URL, modelWeight=True)
        meta: Mapping[str, Any] = event.meta or {}
        card = meta.get("customNodeSettings")
        if isinstance(card, Mapping) and card:
            facets[CARD_FACET] = self._facet(CARD_FACET_SCHEMA_URL, **card)
        dataset: dict[str, Any] = {"namespace": namespace, "name": name}
        if facets:
            dataset["facets"] = facets
        relation = meta.get("customRelationSettings")
        if isinstance(relation, Mapping) and relation:
            dataset[f"{direction}Facets"] = {CARD_FACET: self._facet(CARD_FACET_SCHEMA_URL, **relation)}
        if version is None or self.dataset_version == "facet":
            return [dataset]
        versioned = {**dataset, "name": f"{name}@{version}"}  # one dataset per version
        return [versioned] if self.dataset_version == "name" else [dataset, versioned]

    # -- runs -----------------------------------------------------------------------------------------

    def _state(self, run_id: str) -> _RunState:
        state = self._runs.setdefault(run_id, _RunState())
        self._runs.move_to_end(run_id)
        if len(self._runs) > _MAX_RUNS:  # forget the run seen least recently
            self._runs.popitem(last=False)
        return state

    def _parent_facet(self, parent_run_id: str, task_id: int | None) -> dict[str, Any]:
        parent = self._runs.get(parent_run_id)
        # The parent's job name is known unless its START was delivered by another process; the task
        # is then the best name there is for what started this run.
        parent_name = parent.job if parent is not None and parent.job is not None else (
            f"task/{task_id}" if task_id is not None else "unknown")
        facet = self._facet(PARENT_FACET_SCHEMA_URL, run={"runId": parent_run_id},
                            job={"namespace": self.namespace, "name": parent_name})
        # The root: the outermost ancestor, when the whole chain is known.
        root_id, root = parent_run_id, parent
        seen = {parent_run_id}
        while root is not None and root.parent_run_id is not None and root.parent_run_id not in seen:
            seen.add(root.parent_run_id)
            root_id, root = root.parent_run_id, self._runs.get(root.parent_run_id)
        if root is not None and root.job is not None and root_id != parent_run_id:
            facet["root"] = {"run": {"runId": root_id}, "job": {"namespace": self.namespace, "name": root.job}}
        return facet

    def _run_event(self, event_type: str, event: Event, inputs: list[dict[str, Any]],
                   outputs: list[dict[str, Any]]) -> dict[str, Any]:
        step = event.step
        # processing_engine on every event: DataHub takes the orchestrator from it and refuses an event
        # without one ("Unable to determine orchestrator").
        run_facets: dict[str, Any] = {"processing_engine": self._facet(
            ENGINE_FACET_SCHEMA_URL, version=__version__, name=ENGINE_NAME, openlineageAdapterVersion=__version__)}
        if step.parent_run_id:
            run_facets["parent"] = self._parent_facet(step.parent_run_id, event.task_id)
        if event.task_id is not None:
            run_facets[TASK_FACET] = self._facet(TASK_FACET_SCHEMA_URL, taskId=event.task_id)
        if event_type == "FAIL":
            error = event.error
            message = f"{error.type}: {error.message}" if error is not None else "the step failed"
            run_facets["errorMessage"] = self._facet(ERROR_FACET_SCHEMA_URL, message=message,
                                                     programmingLanguage="python")
        job_facets = {"jobType": self._facet(JOB_TYPE_FACET_SCHEMA_URL, processingType="BATCH",
                                             integration=INTEGRATION, jobType="STEP" if step.parent_run_id else "TASK")}
        return {
            "eventType": event_type,
            "eventTime": _iso(event.time),
            "producer": self.producer,
            "schemaURL": RUN_EVENT_SCHEMA_URL,
            "run": {"runId": step.run_id, "facets": run_facets},
            "job": {"namespace": self.namespace, "name": self.job_name(step.name, event.task_id),
                    "facets": job_facets},
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
        planned: list[PlannedEvent] = []
        state = _RunState()
        building: Event | None = None  # the START (its step_started) or RUNNING (its latest event) not sent yet
        found: dict[Direction, list[dict[str, Any]]] = {"input": [], "output": []}
        for i, event in enumerate(events):
            step = event.step
            new_run = i == 0 or step.run_id != events[i - 1].step.run_id
            if building is not None and (new_run or event.kind == "step_started"
                                         or (building.kind == "step_started" and event.kind != "input")):
                planned.append(self._unfinished(building, found, i))
                building, found = None, {"input": [], "output": []}
            if new_run:
                state = self._state(step.run_id)
                state.job = self.job_name(step.name, event.task_id)
                state.parent_run_id = step.parent_run_id
            if event.kind == "step_finished":  # every input and output of the run, the ones not sent yet included
                body = self._run_event("FAIL" if event.status == "failed" else "COMPLETE", event, state.of("input"),
                                       state.of("output"))
                planned.append(PlannedEvent(body, i + 1, step.run_id, finished=True))
                building, found = None, {"input": [], "output": []}
                continue
            if event.kind != "step_started":
                direction: Direction = "input" if event.kind == "input" else "output"
                for dataset in self.datasets(event, direction):
                    state.add(direction, dataset)
                    found[direction].append(dataset)
            if building is None or building.kind != "step_started":
                building = event
        if building is not None:
            planned.append(self._unfinished(building, found, len(events)))
        return planned

    def _unfinished(self, event: Event, found: dict[Direction, list[dict[str, Any]]], end: int) -> PlannedEvent:
        """The START (``event`` is the run's ``step_started``) or RUNNING event of datasets not sent yet."""
        event_type = "START" if event.kind == "step_started" else "RUNNING"
        return PlannedEvent(self._run_event(event_type, event, found["input"], found["output"]), end,
                            event.step.run_id)

    def finished(self, run_id: str) -> None:
        """Forget a run's datasets once its COMPLETE / FAIL is delivered (its name stays, for children)."""
        state = self._runs.get(run_id)
        if state is not None:
            state.datasets.clear()


_REASON_KEYS: Final = ("message", "error", "errors", "detail", "title", "errorMessage", "reason")


def _server_reason(response: requests.Response) -> str:
    """The server's own words for a failure: the ``message`` (``error``, ``detail``...) of a JSON body,
    else the body text, on one line.

    Picking the message out of a JSON body keeps volatile fields (timestamps, request ids) out of it, so
    a failure that repeats gives the same text each time."""
    text = (response.text or "").strip()
    try:
        body = json.loads(text) if text[:1] in "{[" and text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in _REASON_KEYS:
            value = body.get(key)
            if isinstance(value, list):
                value = "; ".join(str(v) for v in value)
            if isinstance(value, (str, int, float)) and str(value).strip():
                text = str(value)
                break
    return " ".join(text.split())


class OpenLineageTransport:
    """Sends workflow_trace events to an OpenLineage HTTP endpoint as RunEvents (one POST per RunEvent).

    Runs in the delivery layer's background worker only. The API key is held in a :class:`Secret` and
    travels in the ``Authorization`` header of each request and nowhere else: not in :attr:`key`,
    ``repr``, ``vars()``, log lines or errors (a server that echoes it gets ``***`` in our messages).
    Requests go through :class:`workflow_trace._transport.Client`: redirects are never followed (the key
    goes only to the configured server).

    Args:
        url: The server's base URL (``http://marquez:5000``).
        namespace: The job namespace.
        endpoint: The path of the lineage endpoint under ``url`` (appended to ``url``'s path).
        api_key: Sent as ``Authorization: Bearer <api_key>`` when set.
        timeout: Seconds to wait for the server, per request.
        custom_headers: Extra headers of every request (they may override the defaults, as in the client);
            the value of a credential's header (see ``header_value``) is held as a :class:`Secret`.
        compression: ``"gzip"``: bodies are gzipped and sent with ``Content-Encoding: gzip``.
        verify: TLS verification: ``True``, ``False`` or the path of a CA bundle.
        **naming: The :class:`OpenLineageMapper`'s options (``server_address``, by default
            ``SERVER_ADDRESS`` from the environment; ``job_prefix``, ``dot_replacement``, ``dataset_version``).

    Raises:
        ConfigurationError: ``url`` is not an ``http(s)://`` URL, or an option is out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        endpoint: str = DEFAULT_ENDPOINT,
        api_key: str | Secret | None = None,
        timeout: float = 10.0,
        custom_headers: Mapping[str, str | Secret] | None = None,
        compression: str | None = None,
        verify: bool | str = True,
        **naming: Any,
    ) -> None:
        url = (url or "").strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"the OpenLineage url must look like http(s)://host[:port], not {safe_url(url)!r}")
        if not namespace:
            raise ConfigurationError("the OpenLineage namespace must not be empty")
        if compression is not None and compression.lower() != "gzip":
            raise ConfigurationError(f"compression must be 'gzip' or None, not {compression!r}")
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.url = url.rstrip("/")
        self.endpoint = endpoint.strip("/")
        self.namespace = namespace
        self.compression = compression.lower() if compression else None
        self._api_key = Secret(api_key) if isinstance(api_key, str) else api_key
        self._custom_headers = {str(name): header_value(name, value) for name, value in (custom_headers or {}).items()}
        self._endpoint_url = f"{self.url}/{self.endpoint}" if self.endpoint else self.url
        self._safe_endpoint_url = safe_url(self._endpoint_url)
        if naming.get("server_address") is None:
            naming["server_address"] = os.environ.get("SERVER_ADDRESS")
        self.mapper = OpenLineageMapper(namespace, **naming)
        self._client = Client(self._endpoint_url, timeout, self._headers, verify=verify, reason=_server_reason)

    @property
    def key(self) -> str:
        """``openlineage:<endpoint URL>`` (no credentials): the spool partition of this destination."""
        return f"openlineage:{self._safe_endpoint_url}"

    def __repr__(self) -> str:
        extra = ", api_key=***" if self._api_key else ""
        if self._custom_headers:
            extra += f", custom_headers={sorted(self._custom_headers)}"  # names only: values may be secrets
        if self.compression:
            extra += f", compression={self.compression!r}"
        return f"OpenLineageTransport({self._safe_endpoint_url!r}, namespace={self.namespace!r}{extra})"

    def _headers(self) -> dict[str, str]:
        # Built per request, so the key lives in the Secret and not in the session's headers.
        headers = {"User-Agent": f"workflow-trace/{__version__}", "Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        if self.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        headers.update({k: v.reveal() if isinstance(v, Secret) else v for k, v in self._custom_headers.items()})
        return headers

    def send(self, events: Sequence[Event]) -> None:
        """POST the RunEvents of ``events``, in order.

        Raises:
            DeliveryError: as :meth:`workflow_trace._transport.Client.post` raises it, with the server's reason;
                ``delivered`` counts the workflow_trace events whose RunEvents were all accepted.
        """
        planned = self.mapper.plan(events)
        delivered = 0
        for item in planned:
            data = json.dumps(item.body, ensure_ascii=False, separators=(",", ":")).encode()
            if self.compression == "gzip":
                data = gzip.compress(data, compresslevel=3)  # higher levels cost more than they save here
            self._client.post("", data, what=f"POST {self._safe_endpoint_url}", delivered=delivered).close()
            delivered = item.end
            if item.finished:
                self.mapper.finished(item.run_id)
        logger.debug("openlineage: sent %d run event(s) for %d event(s)", len(planned), len(events))

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()


#: Options a backend string may carry in its query (``?namespace=ml&job_prefix=``).
_STRING_OPTIONS: Final = ("namespace", "endpoint", "compression", "job_prefix", "dot_replacement", "dataset_version")


def _parse_backend_string(spec: str) -> tuple[str | None, dict[str, str]]:
    """``(url, options)`` from ``openlineage+http(s)://host[:port][/path][?option=..]``; ``url`` is ``None``
    for ``openlineage`` (``openlineage://?option=..``): the OpenLineage configuration gives it."""
    text = spec.strip()
    scheme, _, rest = text.partition(":")
    scheme = scheme.lower()
    url: str | None = None
    if scheme == "openlineage" and rest.lstrip("/")[:1] in ("", "?"):
        query = rest.lstrip("/")[1:]
    elif scheme in ("openlineage+http", "openlineage+https") and rest.startswith("//"):
        parts = urlsplit(f"{scheme.split('+', 1)[1]}:{rest}")
        query = parts.query
        url = urlunsplit(parts._replace(query="", fragment=""))
    else:
        raise ConfigurationError(
            f"backend {safe_url(text)!r}: write openlineage+http://host:port or openlineage+https://host, "
            "or just 'openlineage' with OPENLINEAGE_URL or an openlineage.yml"
        )
    options = dict(parse_qsl(query, keep_blank_values=True))
    for name in options:
        if name not in _STRING_OPTIONS:
            hint = " (set OPENLINEAGE_API_KEY, or auth in openlineage.yml, instead)" if "key" in name.lower() else ""
            raise ConfigurationError(
                f"backend {scheme!r}: unknown option {name!r}{hint}; options are: {', '.join(_STRING_OPTIONS)}"
            )
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
        spool_path: The spool file (default: the delivery layer's, see ``WORKFLOW_TRACE_SPOOL``).
        server_address: The Supervisely server address, the namespace of id-based datasets
            (default: ``SERVER_ADDRESS``).
        timeout: Seconds to wait for the server, per request.
        custom_headers, compression, verify: HTTP options of :class:`OpenLineageTransport`.
        job_prefix, dot_replacement, dataset_version: Naming options of :class:`OpenLineageMapper`.
        **delivery: Tuning of the delivery layer (``batch_size``, ``backoff_base``, ...).

    Raises:
        ConfigurationError: a bad URL, namespace, naming or delivery option.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        endpoint: str = DEFAULT_ENDPOINT,
        api_key: str | Secret | None = None,
        spool_path: str | os.PathLike[str] | None = None,
        server_address: str | None = None,
        timeout: float = 10.0,
        custom_headers: Mapping[str, str | Secret] | None = None,
        compression: str | None = None,
        verify: bool | str = True,
        job_prefix: str = DEFAULT_JOB_PREFIX,
        dot_replacement: str | None = None,
        dataset_version: DatasetVersionMode = "facet",
        **delivery: Any,
    ) -> None:
        transport = OpenLineageTransport(
            url, namespace=namespace, endpoint=endpoint, api_key=api_key, server_address=server_address,
            timeout=timeout, custom_headers=custom_headers, compression=compression, verify=verify,
            job_prefix=job_prefix, dot_replacement=dot_replacement, dataset_version=dataset_version,
        )
        super().__init__(transport, spool_path=spool_path, **delivery)
        self.openlineage: OpenLineageTransport = transport

    @classmethod
    def from_url(cls, spec: str) -> OpenLineageBackend | NullBackend:
        """Build from a backend string.

        - ``openlineage+http(s)://host[:port][/path][?namespace=..&endpoint=..]``: the server in the
          string; ``OPENLINEAGE_API_KEY``, ``OPENLINEAGE_NAMESPACE`` and ``OPENLINEAGE_ENDPOINT`` give
          the key, and the namespace and endpoint the string does not set.
        - ``openlineage`` (or ``openlineage://?namespace=..``): configured as the OpenLineage client is:
          ``openlineage.yml`` (``OPENLINEAGE_CONFIG``, ``./openlineage.yml``,
          ``~/.openlineage/openlineage.yml``), ``OPENLINEAGE__TRANSPORT__*`` variables, else
          ``OPENLINEAGE_URL``; our options from its ``workflow_trace:`` section.

        Options in the query: ``namespace``, ``endpoint``, ``compression``, ``job_prefix``,
        ``dot_replacement``, ``dataset_version``. With ``OPENLINEAGE_DISABLED=true`` (or a ``noop``
        transport) this is a :class:`~workflow_trace.backends.NullBackend`: nothing is sent.

        Raises:
            ConfigurationError: a string or configuration this backend cannot use, saying what to write.
        """
        url, options = _parse_backend_string(spec)
        if url is None:
            settings = load_settings()
        else:  # the server in the string; the key, namespace and endpoint from the client's simple variables
            settings = OpenLineageSettings(disabled=is_disabled(), namespace=os.environ.get("OPENLINEAGE_NAMESPACE"),
                                           transport=simple_transport(url, f"backend {safe_url(spec)!r}"))
        if settings.disabled:
            logger.info("OpenLineage is disabled (OPENLINEAGE_DISABLED=true or a noop transport): no events are sent")
            return NullBackend()
        transport: HttpTransportConfig | None = settings.transport
        if transport is None:
            looked = ", ".join(str(p) for p in config_file_candidates())
            raise ConfigurationError(
                "the 'openlineage' backend needs a server: set OPENLINEAGE_URL (e.g. http://localhost:5000), "
                f"or write an openlineage.yml with transport: {{type: http, url: ...}} (looked for: {looked}), "
                "or write the URL in the backend string: openlineage+http://host:port"
            )
        naming = {**settings.options, **options}
        return cls(
            transport.url, namespace=options.get("namespace") or settings.namespace or DEFAULT_NAMESPACE,
            endpoint=options.get("endpoint") or transport.endpoint, api_key=transport.api_key,
            timeout=transport.timeout if transport.timeout is not None else 10.0, verify=transport.verify,
            custom_headers=transport.custom_headers, compression=options.get("compression") or transport.compression,
            server_address=naming.get("server_address") or None, dataset_version=naming.get("dataset_version", "facet"),
            job_prefix=naming.get("job_prefix", DEFAULT_JOB_PREFIX),
            dot_replacement=naming.get("dot_replacement") or None,  # empty: no replacement (not "drop dots")
        )

    @classmethod
    def from_env(cls) -> OpenLineageBackend | NullBackend:
        """Build from the OpenLineage configuration (``from_url("openlineage")``).

        Raises:
            ConfigurationError: nothing configures a server, or the configuration is invalid.
        """
        return cls.from_url("openlineage")

    def __repr__(self) -> str:
        return repr(self.openlineage).replace("OpenLineageTransport(", "OpenLineageBackend(", 1)
