"""A local OpenLineage server for tests, on 127.0.0.1: it checks every event and plays a consumer.

Every RunEvent it receives is

- decompressed when sent with ``Content-Encoding: gzip``;
- validated against the OpenLineage 2-0-2 JSON schema (``tests/data/OpenLineage.json``), each standard
  facet against its own schema (``tests/data/facets/``, copied from the OpenLineage repository's
  ``spec/facets``) and our facets against ``FACETS_SCHEMA``, each facet by its ``_schemaURL``;
- parsed with the official client's models (``openlineage-python``), which must give back the same JSON;

and a failure of either is answered ``400`` and recorded in :attr:`OpenLineageServer.problems` (tests
assert it stays empty). Then the ``consumer`` mode applies what that consumer does with an event:

``"spec"``
    nothing more: accepted (``201``).
``"datahub"``
    DataHub's OpenLineage converter (``OpenLineageToDataHub``): an event without a ``processing_engine``
    run facet is refused with ``500 Unable to determine orchestrator``; the DataFlow is
    ``(orchestrator = processing_engine.name, flow = the job name up to its first dot, cluster = the
    job namespace)``; the DataJob's name shown is the part after the first dot; a dataset's platform is
    the scheme of its namespace (``https://host`` gives platform ``https``), its name the OpenLineage
    name, except for file systems (``file://host`` + ``/p`` is platform ``file``, name ``host/p``).
    What it made is in :attr:`datahub`.
``"marquez"``
    Marquez's ``OpenLineageDao``: a job is ``(namespace, name)`` and every run of that name is a run of
    one job; an output makes a new version of its dataset; an input reads the dataset's *current*
    version, whatever ``version`` facet it carries. What it made is in :attr:`marquez`.

``fail_with(status, message)`` makes it answer every event with that error instead (a Spring-style JSON
body with a fresh timestamp each time, as DataHub sends), until ``fail_with(None)``.
"""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from tests.httpserver import RecordingServer, Request
from workflow_trace.backends.openlineage import FACETS_SCHEMA, RUN_EVENT_SCHEMA_URL

DATA = Path(__file__).resolve().parent / "data"
SPEC_PATH = DATA / "OpenLineage.json"
FACET_SCHEMAS = DATA / "facets"
_CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"

Consumer = Literal["spec", "datahub", "marquez"]


# -- the spec ----------------------------------------------------------------------------------------------


class SpecValidator:
    """Validates RunEvents against the 2-0-2 schema, and every facet against the schema its ``_schemaURL``
    names (an unknown URL, e.g. a facet version we do not ship, is an error)."""

    def __init__(self) -> None:
        import jsonschema
        import referencing
        from referencing.jsonschema import DRAFT202012

        spec = json.loads(SPEC_PATH.read_text())
        schemas = [spec, FACETS_SCHEMA, *(json.loads(p.read_text()) for p in sorted(FACET_SCHEMAS.glob("*.json")))]
        registry: Any = referencing.Registry().with_resources(
            (schema["$id"], DRAFT202012.create_resource(schema)) for schema in schemas
        )
        self._cls = jsonschema.Draft202012Validator
        self._registry = registry
        self._event = self._cls(spec, registry=registry, format_checker=self._cls.FORMAT_CHECKER)
        self._base = self._validator(f"{_CORE}#/$defs/BaseFacet")
        self._lock = threading.Lock()
        self.checked_facets: set[str] = set()

    def _validator(self, ref: str) -> Any:
        return self._cls({"$ref": ref}, registry=self._registry, format_checker=self._cls.FORMAT_CHECKER)

    def facet(self, name: str, facet: dict[str, Any]) -> None:
        self._base.validate(facet)
        self._validator(facet["_schemaURL"]).validate(facet)
        with self._lock:
            self.checked_facets.add(name)

    def __call__(self, body: dict[str, Any]) -> None:
        self._event.validate(body)
        assert body["schemaURL"] == RUN_EVENT_SCHEMA_URL, body["schemaURL"]
        assert body["eventType"] in {"START", "RUNNING", "COMPLETE", "FAIL"}, body["eventType"]
        uuid.UUID(body["run"]["runId"])
        # jsonschema checks "date-time" only with an optional package: check it here.
        assert datetime.fromisoformat(body["eventTime"]).tzinfo is not None, body["eventTime"]
        for name, facet in body["run"].get("facets", {}).items():
            self.facet(name, facet)
        for name, facet in body["job"].get("facets", {}).items():
            self.facet(name, facet)
        for dataset in [*body.get("inputs", []), *body.get("outputs", [])]:
            for key in ("facets", "inputFacets", "outputFacets"):
                for name, facet in dataset.get(key, {}).items():
                    self.facet(name, facet)


# -- the official client's models ------------------------------------------------------------------------------


def _facet_object(module: Any, cls_name: str, facet: dict[str, Any], **nested: Any) -> Any:
    fields = {k: v for k, v in facet.items() if not k.startswith("_")}
    fields.update(nested)
    return getattr(module, cls_name)(**fields, producer=facet["_producer"])


def _custom_facet(base: Any, facet: dict[str, Any]) -> Any:
    fields = {k: v for k, v in facet.items() if not k.startswith("_")}
    return base(producer=facet["_producer"]).with_additional_properties(**fields)


def client_event(body: dict[str, Any]) -> Any:
    """``body`` as the official client's ``event_v2.RunEvent``, each known facet as its generated class.

    Raises:
        TypeError, ValueError: the client's models refuse a field (unknown, missing or invalid).
    """
    from openlineage.client import event_v2
    from openlineage.client.generated import (
        base,
        dataset_version_dataset,
        error_message_run,
        job_type_job,
        parent_run,
        processing_engine_run,
    )

    def run_facet(name: str, facet: dict[str, Any]) -> Any:
        if name == "processing_engine":
            return _facet_object(processing_engine_run, "ProcessingEngineRunFacet", facet)
        if name == "errorMessage":
            return _facet_object(error_message_run, "ErrorMessageRunFacet", facet)
        if name == "parent":
            root = facet.get("root")
            return _facet_object(
                parent_run, "ParentRunFacet", facet,
                run=parent_run.Run(**facet["run"]),
                job=parent_run.Job(**facet["job"]),
                root=parent_run.Root(run=parent_run.RootRun(**root["run"]), job=parent_run.RootJob(**root["job"]))
                if root else None,
            )
        return _custom_facet(base.RunFacet, facet)

    def dataset_facet(name: str, facet: dict[str, Any]) -> Any:
        if name == "version":
            return _facet_object(dataset_version_dataset, "DatasetVersionDatasetFacet", facet)
        return _custom_facet(base.DatasetFacet, facet)

    def job_facet(name: str, facet: dict[str, Any]) -> Any:
        if name == "jobType":
            return _facet_object(job_type_job, "JobTypeJobFacet", facet)
        return _custom_facet(base.JobFacet, facet)

    def datasets(items: list[dict[str, Any]], cls: Any, extra: str, extra_base: Any) -> list[Any]:
        return [
            cls(
                namespace=d["namespace"], name=d["name"],
                facets={n: dataset_facet(n, f) for n, f in d.get("facets", {}).items()},
                **{extra: {n: _custom_facet(extra_base, f) for n, f in d.get(extra, {}).items()}},
            )
            for d in items
        ]

    return event_v2.RunEvent(
        eventType=event_v2.RunState(body["eventType"]),
        eventTime=body["eventTime"],
        producer=body["producer"],
        run=event_v2.Run(
            runId=body["run"]["runId"],
            facets={n: run_facet(n, f) for n, f in body["run"].get("facets", {}).items()},
        ),
        job=event_v2.Job(
            namespace=body["job"]["namespace"], name=body["job"]["name"],
            facets={n: job_facet(n, f) for n, f in body["job"].get("facets", {}).items()},
        ),
        inputs=datasets(body.get("inputs", []), event_v2.InputDataset, "inputFacets", base.InputDatasetFacet),
        outputs=datasets(body.get("outputs", []), event_v2.OutputDataset, "outputFacets", base.OutputDatasetFacet),
    )


_STANDARD = {"processing_engine", "errorMessage", "parent", "version", "jobType"}


def _without_custom_schema_urls(body: Any, facet_name: str | None = None) -> Any:
    """``body`` with the ``_schemaURL`` of non-standard facets dropped (the client's generic facet class
    writes its own base URL there)."""
    if isinstance(body, dict):
        out = {}
        for key, value in body.items():
            if key == "_schemaURL" and facet_name is not None and facet_name not in _STANDARD:
                continue
            inner = key if isinstance(value, dict) and "_producer" in value else facet_name
            out[key] = _without_custom_schema_urls(value, inner)
        return out
    if isinstance(body, list):
        return [_without_custom_schema_urls(v, facet_name) for v in body]
    return body


def check_with_client(body: dict[str, Any]) -> None:
    """Parse ``body`` with the official client's models and check it serialises back to the same JSON
    (the standard facets to the letter, ``_schemaURL`` included: we use the client's facet versions)."""
    from openlineage.client.serde import Serde

    expected = _prune(_without_custom_schema_urls(body))
    actual = _prune(_without_custom_schema_urls(Serde.to_dict(client_event(body))))
    assert expected == actual, (expected, actual)


def _prune(value: Any) -> Any:
    """``value`` without ``None`` and empty collections (the client writes ``"facets": {}``, we omit it)."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


# -- the consumers -------------------------------------------------------------------------------------------------

_DATAHUB_PLATFORM_MAP = {"awsathena": "athena", "sqlserver": "mssql"}
_DATAHUB_FS = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "abs", "abfss": "abs",
               "wasb": "abs", "wasbs": "abs", "dbfs": "dbfs", "file": "file"}


def datahub_dataset(namespace: str, name: str) -> tuple[str, str]:
    """``(platform, name)`` of a dataset as DataHub's converter derives them."""
    if "://" not in namespace:
        return namespace, name
    uri = namespace + name if namespace.endswith("/") or name.startswith("/") else f"{namespace}/{name}"
    scheme, rest = uri.split("://", 1)
    platform = _DATAHUB_PLATFORM_MAP.get(scheme, scheme)
    if platform in _DATAHUB_FS:
        rest = rest.rstrip("/")
        return _DATAHUB_FS[platform], rest if platform == "file" else rest.lstrip("/")
    return platform, name


@dataclass
class DataHubView:
    """What DataHub made of the events: DataFlows, DataJobs, datasets and DataProcessInstances (runs)."""

    flows: dict[str, dict[str, str]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[str, dict[str, str]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, body: dict[str, Any]) -> None:
        engine = body["run"]["facets"]["processing_engine"]
        orchestrator = engine["name"].lower()
        job_name, cluster = body["job"]["name"], body["job"]["namespace"]
        flow = job_name.split(".", 1)[0]
        flow_urn = f"urn:li:dataFlow:({orchestrator},{flow},{cluster})"
        job_urn = f"urn:li:dataJob:({flow_urn},{job_name})"
        self.flows[flow_urn] = {"orchestrator": orchestrator, "name": flow, "cluster": cluster}
        job = self.jobs.setdefault(job_urn, {"flow": flow_urn, "name": job_name.split(".", 1)[-1],
                                             "inputs": set(), "outputs": set()})
        run = self.runs.setdefault(body["run"]["runId"], {"job": job_urn, "inputs": set(), "outputs": set()})
        run["status"] = {"START": "STARTED", "RUNNING": "STARTED"}.get(body["eventType"], "COMPLETE")
        if body["eventType"] in ("COMPLETE", "FAIL"):
            run["result"] = "SUCCESS" if body["eventType"] == "COMPLETE" else "FAILURE"
        for direction in ("inputs", "outputs"):
            for dataset in body.get(direction, []):
                platform, name = datahub_dataset(dataset["namespace"], dataset["name"])
                urn = f"urn:li:dataset:(urn:li:dataPlatform:{platform},{name},PROD)"
                self.datasets[urn] = {"platform": platform, "name": name}
                run[direction].add(urn)
                job[direction].add(urn)

    def platforms(self) -> set[str]:
        return {d["platform"] for d in self.datasets.values()}

    def job_of(self, run_id: str) -> dict[str, Any]:
        return self.jobs[self.runs[run_id]["job"]]


@dataclass
class MarquezView:
    """What Marquez made of the events: jobs (with their runs), dataset versions, runs' inputs/outputs."""

    jobs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: dataset -> versions, each the run that wrote it (``None``: created by a read of an unknown dataset)
    versions: dict[tuple[str, str], list[str | None]] = field(default_factory=dict)
    current: dict[tuple[str, str], int] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, body: dict[str, Any]) -> None:
        key = (body["job"]["namespace"], body["job"]["name"])
        run_id = body["run"]["runId"]
        runs = self.jobs.setdefault(key, [])
        if run_id not in runs:
            runs.append(run_id)
        run = self.runs.setdefault(run_id, {"job": key, "inputs": set(), "outputs": set(), "facets": {}})
        run["state"] = body["eventType"]
        run["facets"].update(body["run"].get("facets", {}))
        for dataset in body.get("inputs", []):
            ds = (dataset["namespace"], dataset["name"])  # the version facet plays no part
            if ds not in self.current:
                self.versions.setdefault(ds, []).append(None)
                self.current[ds] = len(self.versions[ds]) - 1
            run["inputs"].add((*ds, self.current[ds]))
        for dataset in body.get("outputs", []):
            ds = (dataset["namespace"], dataset["name"])
            versions = self.versions.setdefault(ds, [])
            if run_id not in versions:  # one version per (dataset, run), as Marquez derives its uuid
                versions.append(run_id)
            self.current[ds] = versions.index(run_id)
            run["outputs"].add((*ds, self.current[ds]))

    def upstream_runs(self, run_id: str) -> set[str]:
        """The runs that wrote the dataset versions ``run_id`` read."""
        return {w for ns, name, v in self.runs[run_id]["inputs"] if (w := self.versions[(ns, name)][v]) is not None}

    def job_of(self, run_id: str) -> tuple[str, str]:
        key: tuple[str, str] = self.runs[run_id]["job"]
        return key


# -- the server ------------------------------------------------------------------------------------------------------


class OpenLineageServer:
    """An OpenLineage endpoint (``POST /api/v1/lineage``, or any path) on 127.0.0.1; see the module doc.

    Args:
        consumer: ``"spec"``, ``"datahub"`` or ``"marquez"``.
        client_models: Also parse every event with ``openlineage-python`` (skipped when it is missing
            only if ``False``: by default a missing client is a problem).
    """

    def __init__(self, consumer: Consumer = "spec", *, client_models: bool = True) -> None:
        self.consumer: Consumer = consumer
        self.client_models = client_models
        self.validate = SpecValidator()
        self.events: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.refused: list[tuple[int, str]] = []
        self.datahub = DataHubView()
        self.marquez = MarquezView()
        self._failure: tuple[int, str] | None = None
        self._lock = threading.Lock()
        self._recorder = RecordingServer(handler=self._handle)

    # -- life cycle -------------------------------------------------------------------------------------

    def start(self) -> OpenLineageServer:
        self._recorder.start()
        return self

    def stop(self) -> None:
        self._recorder.stop()

    def __enter__(self) -> OpenLineageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._recorder.url

    @property
    def requests(self) -> list[Request]:
        """Every request received (accepted or not)."""
        with self._recorder.lock:
            return sorted([*self._recorder.requests, *self._recorder.rejected], key=lambda r: r.time)

    def fail_with(self, status: int | None, message: str = "") -> None:
        """Answer every event with ``status`` and ``message`` (``None``: accept again)."""
        with self._lock:
            self._failure = None if status is None else (status, message)

    # -- handling ------------------------------------------------------------------------------------------

    def _refuse(self, status: int, message: str, path: str) -> tuple[Any, ...]:
        with self._lock:
            self.refused.append((status, message))
        # Spring Boot's error body, as DataHub's endpoint answers: the timestamp changes every time.
        body = {"timestamp": datetime.now(timezone.utc).isoformat(), "status": status,
                "error": "Internal Server Error" if status >= 500 else "Bad Request", "message": message,
                "path": path}
        return status, body

    def _problem(self, message: str, path: str) -> tuple[Any, ...]:
        with self._lock:
            self.problems.append(message)
        return self._refuse(400, message, path)

    def _handle(self, req: Request) -> tuple[Any, ...]:
        raw = req.body
        if req.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                raw = gzip.decompress(raw)
            except OSError as exc:
                return self._problem(f"Content-Encoding gzip, but the body is not gzip: {exc}", req.path)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return self._problem(f"not JSON: {exc}", req.path)
        try:
            self.validate(body)
        except Exception as exc:
            return self._problem(f"not a valid OpenLineage 2-0-2 RunEvent: {exc}", req.path)
        if self.client_models:
            try:
                check_with_client(body)
            except Exception as exc:
                return self._problem(f"the official client's models refuse it: {type(exc).__name__}: {exc}", req.path)
        with self._lock:
            failure = self._failure
        if failure is not None:
            return self._refuse(failure[0], failure[1], req.path)
        if self.consumer == "datahub" and "processing_engine" not in body["run"].get("facets", {}):
            return self._refuse(500, "Unable to determine orchestrator", req.path)
        with self._lock:
            self.events.append(body)
            if self.consumer == "datahub":
                self.datahub.add(body)
            elif self.consumer == "marquez":
                self.marquez.add(body)
        return 201, {}

    # -- reading -------------------------------------------------------------------------------------------------

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def runs(self) -> Iterator[tuple[str, list[str]]]:
        """``(run id, event types)`` per run, in order of arrival."""
        out: dict[str, list[str]] = {}
        for body in self.bodies():
            out.setdefault(body["run"]["runId"], []).append(body["eventType"])
        yield from out.items()
