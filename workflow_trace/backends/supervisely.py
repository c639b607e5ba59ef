"""The Supervisely backend: the requests the official SDK sends for ``api.app.workflow.*``, from a worker.

Every call is ``POST {server}/public/api/v3/{method}`` with the headers ``x-api-key``,
``Content-Type: application/json`` and, when the task id comes from the environment, ``x-task-id``.
An input or output event becomes one ``workflow.node.add-input`` / ``workflow.node.add-output`` call
whose body is byte-for-byte what the SDK sends::

    {"teamId": 7, "node": {"type": "task", "id": 5}, "type": "project", "id": 123, "meta": {...}}

(``meta`` only when it says something). Node kinds map to wire types as the SDK maps them: ``project``
or ``project_version``, ``dataset``, ``file`` or ``model_weight``, ``folder`` (the path, with a leading
``/``), ``task``, ``job`` and ``app_session`` (whose id is the task's own id).

:class:`SuperviselyTransport` does the HTTP work and runs only in the delivery layer's background
worker; :class:`SuperviselyBackend` is what users configure: it queues events through the delivery
layer (retries, durable spool) and offers the project version API.

Decisions (where the SDK raises, falls back silently or has nothing to say):

- An event needs a task: a Supervisely workflow edge always hangs off a task node. The task id is the
  event's own (the step's explicit ``task_id``, else ``SUPERVISELY_TASK_ID`` / ``TASK_ID``), else the
  backend's ``task_id``; it is stamped on the event when it is emitted, so that a spooled event is never
  attached to another process's task. Events still without a task are not sent and a WARNING with their
  count says why.
- Step lifecycle events (``step_started`` / ``step_finished``) have no place on the server: skipped.
- A file known only by its path is looked up in team Files (``file-storage.list``, exact path match);
  not found: WARNING, the event is skipped (the SDK would raise, the caller swallowing it silently).
- ``Project(id, version_num=N)`` is resolved with ``projects.versions.list``; not found: WARNING and the
  plain project is sent (as the SDK does, but it says nothing).
- Instances older than 6.9.31 (workflows) or 6.11.11 (labeling jobs), or whose version is unknown: one
  WARNING, and the events are *held* in the spool (not lost) until the instance is upgraded.
- The API token is never in a ``repr``, a log record, an exception message or the spool.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from contextlib import closing, suppress
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .._context import Secret, env_task_id, redact, warn
from .._delivery import DeliveringBackend, warn_hold
from .._errors import ConfigurationError, VersioningError
from .._events import INPUT, OUTPUT, Event, Record
from .._nodes import App, Dataset, File, Folder, Job, Node, Project, Task
from .._protocols import VersionInfo
from .._transport import Client, DeliveryError

__all__ = ["JOBS_MIN_VERSION", "WORKFLOW_MIN_VERSION", "SuperviselyBackend", "SuperviselyTransport"]


#: The first instance version with workflows.
WORKFLOW_MIN_VERSION = (6, 9, 31)
#: The first instance version with labeling jobs in workflows.
JOBS_MIN_VERSION = (6, 11, 11)

_API_PREFIX = "/public/api/v3/"
_DEFAULT_TIMEOUT = 30.0
_VERSION_RE = re.compile(r"^\s*v?(\d+)\.(\d+)\.(\d+)")


def _optional_int(value: Any, problem: str) -> int | None:
    """``None`` for no value (``None`` or blank), else the value as an int; not an integer: ``problem``."""
    if value is None or not str(value).strip():
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(problem) from None


def _warn_no_task(count: int) -> None:
    if count:
        warn(("supervisely", "no task"), "%d event(s) not sent to Supervisely: they have no task id and a "
             "workflow edge needs a task (run inside a task, or set SUPERVISELY_TASK_ID or pass task_id= to "
             "the step or to SuperviselyBackend)", count)


class _Client(Client):
    """The session of one server; every call is ``POST /public/api/v3/<method>`` with the SDK's headers (the
    token revealed per request, never kept in the session)."""

    def __init__(self, server: str, token: Secret, timeout: float, task_header: str | None) -> None:
        headers = {"Content-Type": "application/json"}
        if task_header is not None:
            headers["x-task-id"] = task_header
        super().__init__(server + _API_PREFIX, timeout, lambda: {"x-api-key": token.reveal(), **headers})

    def call(self, method: str, payload: Mapping[str, Any], *, delivered: int = 0) -> Any:
        """POST ``payload`` to ``method`` and return the decoded JSON answer (``None`` for a 2xx without one).

        Raises:
            DeliveryError: a connection error or timeout (retryable), a redirect or a non-2xx answer
                (classified by :func:`~workflow_trace._transport.check_response`).
        """
        body = json.dumps(payload, allow_nan=False).encode()
        # A 2xx without valid JSON: delivered anyway.
        with closing(self.post(method, body, what=method, delivered=delivered)) as response, suppress(ValueError):
            return response.json() if response.content else None
        return None


class SuperviselyTransport:
    """Sends workflow events to a Supervisely instance exactly as the SDK's ``api.app.workflow`` does.

    A :class:`~workflow_trace._transport.Transport`: ``send`` is called from the delivery worker only.
    It caches the instance version check, the team of each task and resolved version numbers.

    Args:
        server_address: The instance, e.g. ``https://app.supervisely.com``.
        token: The API token (kept private: never in a repr, log record or error).
        team_id: The team of every task (``TEAM_ID``); ``None``: asked per task with ``tasks.info``.
        task_header: ``SUPERVISELY_TASK_ID`` as the SDK read it: sent as ``x-task-id``, and as the task's id
            in bodies (a JSON string, as the SDK sends it) for the task it names.
        timeout: Seconds for each HTTP request.
    """

    def __init__(
        self,
        server_address: str,
        token: str | Secret,
        *,
        team_id: int | None = None,
        task_header: str | int | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
    ) -> None:
        secret = token if isinstance(token, Secret) else Secret(token.strip()) if isinstance(token, str) else None
        if secret is None or not secret.reveal().strip():
            raise ConfigurationError("the Supervisely API token must be a non-empty str (API_TOKEN)")
        if not isinstance(server_address, str) or not server_address.strip():
            raise ConfigurationError("the Supervisely server address must be a non-empty str (SERVER_ADDRESS)")
        server = server_address.strip().rstrip("/")
        self.token = secret
        # The SDK accepts a bare host and talks HTTP to it; so do we, rather than guess HTTPS.
        self.server_address = server if server.startswith(("http://", "https://")) else "http://" + server
        self.team_id = team_id
        self._task_text = None if task_header is None else str(task_header).strip()
        self._client = _Client(self.server_address, secret, float(timeout), self._task_text)
        self._instance_version: tuple[int, int, int] | None = None
        self._teams: dict[int, int] = {}
        self._version_ids: dict[tuple[int, int], int] = {}

    def __repr__(self) -> str:
        return f"SuperviselyTransport(server_address={self.server_address!r}, team_id={self.team_id!r})"

    @property
    def key(self) -> str:
        """``supervisely:<server>``: the spool partition (no secrets)."""
        return f"supervisely:{self.server_address}"

    # -- the instance ---------------------------------------------------------------------------------

    def _fetch_version(self, delivered: int) -> tuple[int, int, int] | None:
        """``instance.version``, parsed; ``None`` when unknown (unparsable, or the method is missing)."""
        try:
            answer = self._client.call("instance.version", {}, delivered=delivered)
        except DeliveryError as exc:
            if exc.retryable or exc.status is None or exc.status in (401, 403) or 300 <= exc.status < 400:
                raise
            # Another 4xx: an instance too old to know the method. Its version is unknown.
            return None
        text = answer.get("version") if isinstance(answer, Mapping) else None
        match = _VERSION_RE.match(text) if isinstance(text, str) else None  # "6.12.44"; anything else: unknown
        return None if match is None else (int(match[1]), int(match[2]), int(match[3]))

    def _check_instance(self, needed: tuple[int, int, int], what: str, delivered: int, asked: list[bool]) -> None:
        """Raise a *hold* :class:`DeliveryError` unless the instance is at least ``needed``.

        A version known to be good enough is not asked again; one that was too old (or unknown) is asked
        again on the next attempt (at most once per batch: ``asked``), since the instance may have been
        upgraded meanwhile (held attempts are spaced by the delivery layer).
        """
        version = self._instance_version
        if (version is None or version < needed) and not asked[0]:
            asked[0] = True
            version = self._instance_version = self._fetch_version(delivered)
        if version is not None and version >= needed:
            return
        shown = "unknown" if version is None else ".".join(map(str, version))
        message = (f"the Supervisely instance at {self.server_address} (version {shown}) does not support "
                   f"{what}: version {'.'.join(map(str, needed))} or newer is needed; these events are kept in the "
                   f"spool and sent once the instance is upgraded")
        warn_hold(self.key, message)
        raise DeliveryError(message, retryable=True, hold=True, delivered=delivered)

    # -- lookups --------------------------------------------------------------------------------------

    def _team_of(self, task_id: int, delivered: int) -> int:
        if self.team_id is not None:
            return self.team_id
        team = self._teams.get(task_id)
        if team is None:
            answer = self._client.call("tasks.info", {"id": self._task_wire(task_id)}, delivered=delivered)
            value = answer.get("teamId") if isinstance(answer, Mapping) else None
            if isinstance(value, bool) or not isinstance(value, int):
                raise DeliveryError(f"tasks.info for task {task_id} gave no team id; set TEAM_ID or pass team_id=",
                                    retryable=False, delivered=delivered)
            team = self._teams[task_id] = value
        return team

    def _version_id(self, project_id: int, version_num: int, delivered: int) -> int | None:
        cached = self._version_ids.get((project_id, version_num))
        if cached is not None:
            return cached
        answer = self._client.call("projects.versions.list", _versions_query(project_id, [
            {"field": "version", "operator": "=", "value": version_num}
        ]), delivered=delivered)
        for entity in _entities(answer):
            if entity.get("version") == version_num and isinstance(entity.get("id"), int):
                self._version_ids[(project_id, version_num)] = entity["id"]
                return int(entity["id"])
        return None

    # -- mapping --------------------------------------------------------------------------------------

    def _wire_node(self, node: Node, task_id: int, team_id: int, delivered: int) -> tuple[str, int | str] | str:
        """``(type, id)`` for the request body, or a reason why the event cannot be sent."""
        if isinstance(node, Project):
            if node.version_id is not None:  # a version, also when named alone (as the SDK takes it)
                return "project_version", node.version_id
            if node.id is None:
                return f"the project {node.path!r} is a local folder, not a project on the instance"
            if node.version_num is not None:
                version_id = self._version_id(node.id, node.version_num, delivered)
                if version_id is not None:
                    return "project_version", version_id
                warn(("supervisely", "no version", node.id, node.version_num),
                     "project %s has no version %s on %s; the project itself is recorded for task %s instead",
                     node.id, node.version_num, self.server_address, task_id)
            return "project", node.id
        if isinstance(node, (Dataset, Task, Job)):
            return node.kind, node.id
        if isinstance(node, File):
            wire_type = "model_weight" if node.model_weight else "file"
            if node.id is not None:
                return wire_type, node.id
            # Its id, from team Files; not cached: a file overwritten at the same path (a "best.pt" saved each
            # epoch) gets a new id.
            answer = self._client.call("file-storage.list", {"teamId": team_id, "path": node.path, "recursive": True},
                                       delivered=delivered)
            for entry in _entities(answer):
                if entry.get("path") == node.path and isinstance(entry.get("id"), int):
                    return wire_type, int(entry["id"])
            return (f"no file at {node.path!r} in the Files of team {team_id}: a workflow file node needs "
                    f"the file's id (upload it first, or give the id or FileInfo)")
        if isinstance(node, Folder):
            return "folder", node.path if node.path.startswith("/") else "/" + node.path
        if isinstance(node, App):
            return "app_session", self._task_wire(task_id)
        return f"a {type(node).__name__} has no place in a Supervisely workflow"

    def _task_wire(self, task_id: int) -> int | str:
        """A task id as the SDK sends it: the ``SUPERVISELY_TASK_ID`` text for that task, else the number."""
        text = self._task_text
        return text if text is not None and text == str(task_id) else task_id

    # -- Transport ------------------------------------------------------------------------------------

    def send(self, events: Sequence[Event]) -> None:
        """Send the input and output events in order; skip what has no place on the server.

        Raises:
            DeliveryError: ``delivered`` = how many events at the head were handled (sent or skipped).
        """
        asked = [False]  # the instance's version, once per batch at most
        no_task = 0
        for index, event in enumerate(events):
            if event.kind not in ("input", "output") or event.node is None:
                continue
            if event.task_id is None:
                no_task += 1
                continue
            if isinstance(event.node, App) and event.kind == "input":
                warn(("supervisely", "app input"), "an app session is an output only; the input of task %s is "
                     "not sent", event.task_id)
                continue
            # Returns at once once the version is known to be good enough; raises (holding the batch) if not.
            self._check_instance(WORKFLOW_MIN_VERSION, "workflows", index, asked)
            if isinstance(event.node, Job):  # only this event waits; the ones behind it go on
                self._check_instance(JOBS_MIN_VERSION, "labeling jobs in workflows", index, asked)
            team_id = self._team_of(event.task_id, index)
            wire = self._wire_node(event.node, event.task_id, team_id, index)
            if isinstance(wire, str):
                warn(("supervisely", "skipped", wire), "the %s %s of task %s is not sent to Supervisely: %s",
                     event.kind, event.node.ref, event.task_id, wire)
                continue
            # The body of the edge, keys in the SDK's order.
            body: dict[str, Any] = {"teamId": team_id, "node": {"type": "task", "id": self._task_wire(event.task_id)},
                                    "type": wire[0], "id": wire[1]}
            if event.meta:
                body["meta"] = event.meta
            self._client.call(f"workflow.node.add-{event.kind}", body, delivered=index)
        _warn_no_task(no_task)

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()


def _versions_query(project_id: int, filters: list[dict[str, Any]] | None, page: int | None = None,
                    per_page: int | None = None) -> dict[str, Any]:
    """The SDK's ``projects.versions.list`` body (its paginated reader adds the sort)."""
    data: dict[str, Any] = {"projectId": project_id}
    if filters:
        data["filter"] = filters
    data.update(sort="id", sort_order="asc")
    if page is not None:
        data.update(page=page, per_page=per_page)
    return data


def _entities(answer: Any) -> list[Mapping[str, Any]]:
    """The items of a list answer: a bare JSON list or a page's ``entities``."""
    items = answer.get("entities") if isinstance(answer, Mapping) else answer
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, Mapping)]


def _version_info(entity: Mapping[str, Any]) -> VersionInfo:
    created = entity.get("createdAt")
    try:
        created_at = datetime.fromisoformat(created.replace("Z", "+00:00")) if isinstance(created, str) else None
    except ValueError:
        created_at = None
    return VersionInfo(id=int(entity["id"]), version=int(entity["version"]), project_id=entity.get("projectId"),
                       title=entity.get("name"), description=entity.get("description"), created_at=created_at)


class SuperviselyBackend:
    """Records the workflow on a Supervisely instance, as ``api.app.workflow.add_*`` would.

    Events are queued and sent by the delivery layer's background worker (retries with backoff, a
    durable spool for what cannot be sent yet): a decorated call never waits for the network. Project
    versions (``create_version`` / ``restore_version`` / ``list_versions``) are explicit user calls and
    run synchronously.

    Args:
        server_address: The instance, e.g. ``https://app.supervisely.com`` (``SERVER_ADDRESS``).
        token: The API token (``API_TOKEN``); never shown in a repr, log record, error or the spool.
        team_id: The team of the tasks; ``None``: ``TEAM_ID`` from the environment, else asked once per
            task with ``tasks.info``.
        task_id: The task for events that carry none; ``None``: ``SUPERVISELY_TASK_ID`` / ``TASK_ID`` (a value
            that is not an integer is ignored with one WARNING, as everywhere in workflow_trace).
        timeout: Seconds for each HTTP request.
        spool_path: Where undeliverable events wait (the delivery layer's default when ``None``).
        **delivery_options: Passed to :class:`~workflow_trace._delivery.DeliveringBackend` (``batch_size``,
            ``hold_interval``, ``backoff_max``, ...).

    Raises:
        ConfigurationError: an empty server address or token, or a malformed ``TEAM_ID``.
    """

    def __init__(
        self,
        server_address: str,
        token: str,
        *,
        team_id: int | None = None,
        task_id: int | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        spool_path: str | os.PathLike[str] | None = None,
        **delivery_options: Any,
    ) -> None:
        raw_task: str | None = os.environ.get("SUPERVISELY_TASK_ID", "").strip()  # the SDK's header, as it reads it
        raw_task = raw_task if raw_task and raw_task.isdigit() else None
        if team_id is None:
            raw_team = os.environ.get("TEAM_ID", "").strip()
            team_id = _optional_int(raw_team, f"TEAM_ID must be an integer (got {raw_team!r})")
        self.task_id: int | None = task_id if task_id is not None else env_task_id()
        self.transport = SuperviselyTransport(server_address, token, team_id=team_id, task_header=raw_task,
                                              timeout=timeout)
        self._token = self.transport.token
        self.server_address = self.transport.server_address
        self.team_id = team_id
        self._sly_api: Any = None
        self._versions_client = _Client(self.server_address, self._token, float(timeout), raw_task)
        self.delivery = DeliveringBackend(self.transport, spool_path=spool_path, **delivery_options)

    def __repr__(self) -> str:
        return (f"SuperviselyBackend(server_address={self.server_address!r}, team_id={self.team_id!r}, "
                f"task_id={self.task_id!r})")

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_env(
        cls, *, timeout: float = _DEFAULT_TIMEOUT, spool_path: str | os.PathLike[str] | None = None
    ) -> SuperviselyBackend:
        """Build from the SDK's variables: ``SERVER_ADDRESS``, ``API_TOKEN``, ``TEAM_ID`` and
        ``SUPERVISELY_TASK_ID`` / ``TASK_ID``.

        Raises:
            ConfigurationError: ``SERVER_ADDRESS`` or ``API_TOKEN`` is not set.
        """
        server = os.environ.get("SERVER_ADDRESS", "").strip()
        token = os.environ.get("API_TOKEN", "").strip()
        missing = [name for name, value in (("SERVER_ADDRESS", server), ("API_TOKEN", token)) if not value]
        if missing:
            raise ConfigurationError(f"the Supervisely backend needs {' and '.join(missing)} in the environment "
                                     "(the variables the Supervisely SDK reads)")
        return cls(server, token, timeout=timeout, spool_path=spool_path)

    @classmethod
    def from_api(
        cls,
        sly_api: Any,
        *,
        team_id: int | None = None,
        timeout: float = _DEFAULT_TIMEOUT,
        spool_path: str | os.PathLike[str] | None = None,
    ) -> SuperviselyBackend:
        """Build from the SDK's ``supervisely.Api`` (its server, token and task id); the api is kept
        for ``create_version`` / ``restore_version``.

        Raises:
            ConfigurationError: the object has no ``server_address`` and ``token``.
        """
        server = getattr(sly_api, "server_address", None)
        token = getattr(sly_api, "token", None)
        if not isinstance(server, str) or not isinstance(token, str):
            raise ConfigurationError(f"from_api() needs a supervisely.Api (with server_address and token), "
                                     f"not {type(sly_api).__name__}")
        raw_task = getattr(sly_api, "task_id", None)
        task_id = _optional_int(raw_task, f"the api's task_id is not an integer ({raw_task!r})")
        backend = cls(server, token, team_id=team_id, task_id=task_id, timeout=timeout, spool_path=spool_path)
        backend._sly_api = sly_api
        return backend

    @classmethod
    def from_url(cls, spec: str) -> SuperviselyBackend:
        """Build from the backend string ``"supervisely"`` (server and token from the environment) or
        ``"supervisely+https://host"`` (token from ``API_TOKEN``; never put it in the string).

        Raises:
            ConfigurationError: another form, a token in the string, or missing variables.
        """
        text = spec.strip()
        scheme, _, rest = text.partition("+")
        if text.lower() in {"supervisely", "supervisely:", "supervisely://"}:
            return cls.from_env()
        if scheme.lower() != "supervisely" or not rest:
            raise ConfigurationError(
                "the Supervisely backend string is 'supervisely' (SERVER_ADDRESS and API_TOKEN from "
                "the environment) or 'supervisely+https://host'"
            )
        parts = urlsplit(rest)
        if parts.username or parts.password or parts.query or parts.fragment:
            # Do not echo the string: it may hold a secret (user:password@, ?token=...).
            raise ConfigurationError("the Supervisely backend string takes no credentials, query or fragment "
                                     "('supervisely+https://host'); set API_TOKEN for the token")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(
                f"the Supervisely backend string must be 'supervisely+http(s)://host' (got {redact(text)!r})"
            )
        token = os.environ.get("API_TOKEN", "").strip()
        if not token:
            raise ConfigurationError("the Supervisely backend needs API_TOKEN in the environment")
        return cls(rest, token)

    # -- Backend --------------------------------------------------------------------------------------

    def write_records(self, records: list[Record]) -> None:
        """Journal the batch's input and output records, each with its task id (never the network).

        Step starts and ends have no place on the server and are not kept; a record without any task id
        is counted in one WARNING (a workflow edge needs a task).
        """
        edges = [r for r in records if r[0] == INPUT or r[0] == OUTPUT]
        if self.task_id is not None:  # stamped now, not at send time: a spooled edge never joins another task
            edges = [r if r[3] is not None else (r[0], r[1], r[2], self.task_id, *r[4:]) for r in edges]
        out = [r for r in edges if r[3] is not None]
        _warn_no_task(len(edges) - len(out))
        if out:
            self.delivery.write_records(out)

    def emit(self, events: Sequence[Event]) -> None:
        """Journal the input and output events (a replay); step events have no place on the server."""
        edges = [e for e in events if e.kind in ("input", "output") and e.node is not None]
        if self.task_id is not None:
            edges = [e if e.task_id is not None else e.model_copy(update={"task_id": self.task_id}) for e in edges]
        out = [e for e in edges if e.task_id is not None]
        _warn_no_task(len(edges) - len(out))
        if out:
            self.delivery.emit(out)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued is sent (or ``timeout``); ``True`` when it is."""
        return bool(self.delivery.flush(timeout))

    def close(self) -> None:
        """Drain what can be drained, then release the worker and the connections."""
        try:
            self.delivery.close()
        finally:
            self._versions_client.close()

    # -- VersioningBackend ----------------------------------------------------------------------------

    @staticmethod
    def _project_id(project: Project, what: str) -> int:
        if project.id is None:
            raise VersioningError(f"{what}: {project.ref} is a local folder; versions exist for projects on the "
                                  "instance")
        return project.id

    def list_versions(self, project: Project, filters: list[dict[str, Any]] | None = None) -> list[VersionInfo]:
        """The project's versions (``projects.versions.list``, every page), oldest first.

        Raises:
            VersioningError: the request failed (the message never holds the token).
        """
        project_id = self._project_id(project, "list_versions")
        try:
            query = _versions_query(project_id, filters)
            answer = self._versions_client.call("projects.versions.list", query)
            entities = list(_entities(answer))
            pages = answer.get("pagesCount", 1) if isinstance(answer, Mapping) else 1
            per_page = answer.get("perPage") if isinstance(answer, Mapping) else None
            for page in range(2, pages + 1 if isinstance(pages, int) else 2):
                query = _versions_query(project_id, filters, page, per_page)
                entities.extend(_entities(self._versions_client.call("projects.versions.list", query)))
            return [_version_info(entity) for entity in entities]
        except DeliveryError as exc:
            raise VersioningError(f"listing the versions of project {project_id} failed: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise VersioningError(f"listing the versions of project {project_id}: unexpected answer "
                                  f"({type(exc).__name__})") from None

    def _sdk_api(self, what: str) -> Any:
        """The SDK's ``Api``: the one given to :meth:`from_api`, or one built from the same settings."""
        if self._sly_api is None:
            try:
                # Imported by name: an optional dependency that mypy need not know.
                supervisely = importlib.import_module("supervisely")
            except ImportError:
                raise VersioningError(
                    f"{what} needs the `supervisely` package (pip install supervisely): a version is the "
                    "project's data archived in the SDK's own format"
                ) from None
            self._sly_api = supervisely.Api(self.server_address, self._token.reveal())
        return self._sly_api

    def _sdk_version(self, project: Project, action: str, doing: str, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        """``(project id, api.project.version.<action>(project id, ...))`` with the SDK; a failure, whatever
        the SDK raised, is a :class:`VersioningError` naming the project (never the token)."""
        project_id = self._project_id(project, f"{action}_version")
        api = self._sdk_api(f"{action}_version")
        try:
            return project_id, getattr(api.project.version, action)(project_id, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the SDK raises anything; reported as VersioningError
            raise VersioningError(redact(f"{doing} a version of project {project_id} failed: {exc!r}")) from None

    def create_version(self, project: Project, title: str | None, description: str | None) -> int:
        """Create a version with the SDK (``api.project.version.create``); when nothing changed since the
        latest version, its id is returned, as the SDK does.

        Raises:
            VersioningError: no ``supervisely`` package, a local project, or the SDK failed.
        """
        project_id, version_id = self._sdk_version(project, "create", "creating", title, description)
        if isinstance(version_id, bool) or not isinstance(version_id, int):
            raise VersioningError(f"creating a version of project {project_id} gave no version id")
        return version_id

    def restore_version(self, project: Project, version_id: int | None, version_num: int | None,
                        skip_missed_entities: bool = False) -> Project:
        """Recreate a version as a new project with the SDK (``api.project.version.restore``).

        Raises:
            VersioningError: no ``supervisely`` package, a local project, or the SDK failed.
        """
        self._project_id(project, "restore_version")  # a local project is refused first
        if version_id is None and version_num is None:
            raise VersioningError("restore_version needs a version_id or a version_num")
        project_id, info = self._sdk_version(project, "restore", "restoring", version_id=version_id,
                                             version_num=version_num, skip_missed_entities=skip_missed_entities)
        new_id = getattr(info, "id", None)
        if isinstance(new_id, bool) or not isinstance(new_id, int):
            raise VersioningError(f"restoring a version of project {project_id} gave no project")
        return Project(id=new_id)
