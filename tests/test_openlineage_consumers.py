"""The OpenLineage backend as its consumers see it: spec-valid events that the official client's models
parse, DataHub's and Marquez's rules (tests/ol_server.py), failures, and configuration as the
OpenLineage client reads it (openlineage.yml, OPENLINEAGE__* variables, OPENLINEAGE_DISABLED)."""

from __future__ import annotations

import gzip
import json
import logging
import os
import pickle
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.httpserver import RecordingServer, Request
from tests.ol_server import OpenLineageServer, datahub_dataset
from tests.test_openlineage import Run
from workflow_trace._context import Secret, redact
from workflow_trace._errors import ConfigurationError
from workflow_trace._nodes import App, Dataset, File, Folder, Job, Project, Task
from workflow_trace._transport import DeliveryError
from workflow_trace.backends import create_backend
from workflow_trace.backends._openlineage_config import env_config, find_config_file, load_settings
from workflow_trace.backends.null import NullBackend
from workflow_trace.backends.openlineage import OpenLineageBackend, OpenLineageTransport

pytest.importorskip("jsonschema", reason="the test server validates events with jsonschema")
pytest.importorskip("openlineage.client", reason="the test server parses events with openlineage-python")

SERVER = "https://app.supervisely.com"
SERVER_NS = "supervisely://app.supervisely.com"
SECRET = "s3cr3t-api-key-never-shown"
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "breaker_cooldown": 0.05, "spool_poll": 0.05}


@pytest.fixture(autouse=True)
def cwd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No OPENLINEAGE_* variable or openlineage.yml of this machine leaks in; the current directory and
    the home directory are empty folders of the test (returned: the current directory)."""
    for name in list(os.environ):
        if name.startswith("OPENLINEAGE"):
            monkeypatch.delenv(name)
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "cwd"


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """The official client writes OPENLINEAGE__TRANSPORT__TRANSPORTS__* into os.environ: undo it."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def serve(consumer: str = "spec") -> OpenLineageServer:
    return OpenLineageServer(consumer)  # type: ignore[arg-type]


def transport_for(server: OpenLineageServer, **kwargs: Any) -> OpenLineageTransport:
    kwargs.setdefault("server_address", SERVER)
    return OpenLineageTransport(server.url, **kwargs)


def send_pipeline(transport: OpenLineageTransport, task_id: int = 5) -> dict[str, Run]:
    """A task's runs: ``pipeline`` > ``Trainer.fit`` (reads a project version and a team Files checkpoint,
    writes local weights ``runs/best.pt``); ``pipeline`` fails. Returns the runs by name."""
    pipeline = Run("pipeline", task_id=task_id)
    fit = Run("Trainer.fit", task_id=task_id, parent=pipeline)
    transport.send(pipeline.started(Project(id=42)))
    transport.send(fit.started(Project(id=42, version_id=901), File(path="/models/init.pt", model_weight=True)))
    transport.send(fit.outputs(File(path="runs/best.pt", model_weight=True)) + fit.finished())
    transport.send(pipeline.outputs(File(path="runs/best.pt", model_weight=True)))
    transport.send(pipeline.finished(RuntimeError("CUDA out of memory")))
    return {"pipeline": pipeline, "fit": fit}


class TestEveryEventIsValid:
    """Every RunEvent is OpenLineage 2-0-2 (schema and facet schemas) and parses with the official client."""

    @pytest.mark.parametrize("dataset_version", ["facet", "name", "both"])
    def test_every_node_kind_and_option(self, dataset_version: str) -> None:
        """All node kinds, cards, nesting, a failure, gzip: no problem at the server."""
        meta = {"customRelationSettings": {"title": "<h4>T</h4>"}, "customNodeSettings": {"title": "<h4>N</h4>"}}
        with serve() as server:
            transport = transport_for(server, dataset_version=dataset_version, compression="gzip")
            outer = Run("pipeline")
            inner = Run("step.with.dots", parent=outer, task_id=None)
            nodes = [Project(id=1), Project(id=2, version_num=3), Project(path="/data/p"), Dataset(id=7),
                     File(id=3), File(path="/m.pt", model_weight=True), Folder(path="out"), Task(id=9), Job(id=11)]
            transport.send(outer.started(*nodes, meta=meta))
            transport.send(inner.started() + inner.outputs(App(), *nodes) + inner.finished(ValueError("x")))
            transport.send(outer.finished())
        assert ([], 4) == (server.problems, len(server.events))
        expected = {"processing_engine", "jobType", "parent", "errorMessage", "version", "workflowTrace_task",
                    "workflowTrace_card", "workflowTrace_modelWeight"}
        assert expected == server.validate.checked_facets

    def test_processing_engine_and_job_type(self) -> None:
        """Every event names the engine (with versions) and the job type: TASK outside, STEP nested."""
        from workflow_trace import __version__

        with serve() as server:
            send_pipeline(transport_for(server))
        engines = {json.dumps({k: v for k, v in b["run"]["facets"]["processing_engine"].items()
                               if not k.startswith("_")}, sort_keys=True) for b in server.events}
        expected_engine = {"name": "workflow_trace", "version": __version__, "openlineageAdapterVersion": __version__}
        job_types = {(b["job"]["name"], b["job"]["facets"]["jobType"]["jobType"]) for b in server.events}
        integrations = {(f["processingType"], f["integration"]) for b in server.events
                        for f in [b["job"]["facets"]["jobType"]]}
        assert {json.dumps(expected_engine, sort_keys=True)} == engines
        assert {("task_5.pipeline", "TASK"), ("task_5.Trainer.fit", "STEP")} == job_types
        assert {("BATCH", "WORKFLOW_TRACE")} == integrations


class TestDataHub:
    """What DataHub's OpenLineage converter makes of the events."""

    def test_an_event_without_processing_engine_is_refused(self) -> None:
        """The rule the server plays: no processing_engine, HTTP 500 "Unable to determine orchestrator"."""
        with serve("datahub") as server:
            event = transport_for(server).mapper.plan(Run("a").started())[0].body
            del event["run"]["facets"]["processing_engine"]
            refused = requests.post(f"{server.url}/api/v1/lineage", json=event, timeout=5)
            transport_for(server).send(Run("b").started())
        assert (500, "Unable to determine orchestrator") == (refused.status_code, refused.json()["message"])
        assert [(500, "Unable to determine orchestrator")] == server.refused
        assert 1 == len(server.events)

    def test_pipelines_platforms_and_names(self, cwd: Path) -> None:
        """Orchestrator workflow_trace; one DataFlow per task holding its steps, dotted names intact;
        platforms from the namespaces: supervisely and file (never https)."""
        with serve("datahub") as server:
            runs = send_pipeline(transport_for(server))
        view = server.datahub
        host = socket.gethostname()
        expected_flows = {"urn:li:dataFlow:(workflow_trace,task_5,workflow_trace)"}
        expected_jobs = {("task_5", "pipeline"), ("task_5", "Trainer.fit")}
        expected_datasets = {("supervisely", "project/42"), ("supervisely", "file/models/init.pt"),
                             ("file", f"{host}{cwd.as_posix()}/runs/best.pt")}
        assert expected_flows == set(view.flows)
        assert expected_jobs == {(view.flows[j["flow"]]["name"], j["name"]) for j in view.jobs.values()}
        assert expected_datasets == {(d["platform"], d["name"]) for d in view.datasets.values()}
        assert {"supervisely", "file"} == view.platforms()
        results = {name: view.runs[run.step.run_id]["result"] for name, run in runs.items()}
        assert {"pipeline": "FAILURE", "fit": "SUCCESS"} == results

    def test_the_rules_that_made_the_issue(self) -> None:
        """The rules themselves: an https:// namespace is platform https; a job name is split at its first
        dot (so a step name alone, Trainer.fit, becomes pipeline Trainer and job fit)."""
        with serve("datahub") as server:
            transport_for(server, job_prefix="").send(Run("Trainer.fit").started())
        (job,) = server.datahub.jobs.values()
        assert ("https", "project/42") == datahub_dataset("https://app.supervisely.com", "project/42")
        assert ("supervisely", "project/42") == datahub_dataset(SERVER_NS, "project/42")
        assert ("Trainer", "fit") == (server.datahub.flows[job["flow"]]["name"], job["name"])

    def test_dot_replacement(self) -> None:
        """Without a prefix, dot_replacement keeps DataHub from splitting the step name."""
        with serve("datahub") as server:
            transport_for(server, job_prefix="", dot_replacement="_").send(Run("Trainer.fit").started())
            transport_for(server, job_prefix="yolo.app", dot_replacement="-").send(Run("Trainer.fit").started())
        flows_and_jobs = {(server.datahub.flows[j["flow"]]["name"], j["name"]) for j in server.datahub.jobs.values()}
        assert {("Trainer_fit", "Trainer_fit"), ("yolo-app", "Trainer-fit")} == flows_and_jobs


class TestMarquez:
    """What Marquez makes of the events."""

    def test_two_tasks_are_two_jobs(self) -> None:
        """By default (job_prefix task_{task_id}) the same step in two tasks is two jobs, one run each."""
        with serve("marquez") as server:
            transport = transport_for(server)
            first, second = Run("train", task_id=5), Run("train", task_id=6)
            for run in (first, second):
                transport.send(run.started(Project(id=1)) + run.finished())
        view = server.marquez
        expected = {("workflow_trace", "task_5.train"): [first.step.run_id],
                    ("workflow_trace", "task_6.train"): [second.step.run_id]}
        assert expected == view.jobs

    def test_step_level_jobs_merge_runs_but_runs_tell_tasks_apart(self) -> None:
        """With job_prefix "" the step is one job across tasks (its history); each run still names its task."""
        with serve("marquez") as server:
            transport = transport_for(server, job_prefix="")
            first, second = Run("train", task_id=5), Run("train", task_id=6)
            for run in (first, second):
                transport.send(run.started() + run.finished())
        view = server.marquez
        tasks = [view.runs[r]["facets"]["workflowTrace_task"]["taskId"] for r in view.jobs[("workflow_trace", "train")]]
        assert ([("workflow_trace", "train")], [5, 6]) == (list(view.jobs), tasks)

    @pytest.mark.parametrize(
        ("dataset_version", "read", "upstream"),
        [
            ("facet", {"project/42"}, True),  # the version is only in the facet: Marquez does not see it
            ("name", {"project/42@901"}, False),  # one dataset per version: nobody wrote that one
            ("both", {"project/42", "project/42@901"}, True),  # the version shows, and the lineage joins
        ],
    )
    def test_project_versions(self, dataset_version: str, read: set[str], upstream: bool) -> None:
        """A read of project 42 version 901: which datasets Marquez shows, and whether the run that wrote
        project 42 is upstream of the reader."""
        with serve("marquez") as server:
            transport = transport_for(server, dataset_version=dataset_version)
            prepare, train = Run("prepare", task_id=4), Run("train", task_id=5)
            transport.send(prepare.started() + prepare.outputs(Project(id=42)) + prepare.finished())
            transport.send(train.started(Project(id=42, version_id=901)) + train.finished())
        view = server.marquez
        actual_read = {name for _, name, _ in view.runs[train.step.run_id]["inputs"]}
        assert (read, upstream) == (actual_read, prepare.step.run_id in view.upstream_runs(train.step.run_id))


class TestFailures:
    """Server errors come back as DeliveryError with the server's status and reason, never the key."""

    def test_a_repeated_500_is_retryable_with_the_same_message(self) -> None:
        """The same 500 twice (its body's timestamp differs): retryable, identical messages that carry
        the server's reason, with an echoed key masked."""
        with serve("datahub") as server:
            server.fail_with(500, f"Unable to determine orchestrator (request had Bearer {SECRET})")
            transport = transport_for(server, api_key=SECRET)
            errors = []
            for _ in range(2):
                with pytest.raises(DeliveryError) as info:
                    transport.send(Run("a").started())
                errors.append(info.value)
        reason = "Unable to determine orchestrator (request had Bearer ***)"
        expected = f"POST {server.url}/api/v1/lineage failed: HTTP 500: {reason}"
        assert [(True, expected)] * 2 == [(e.retryable, str(e)) for e in errors]

    def test_the_backend_gives_up_after_max_attempts(self, tmp_path: Path) -> None:
        """With max_attempts, a 500 that repeats turns the events dead, with the server's reason, and
        the key is nowhere in the spool."""
        spool = tmp_path / "spool.db"
        with serve("datahub") as server:
            server.fail_with(500, "Unable to determine orchestrator")
            backend = OpenLineageBackend(server.url, api_key=SECRET, spool_path=spool, max_attempts=3, **FAST)
            try:
                run = Run("train")
                backend.emit(run.started() + run.finished())
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and not any(c.dead for c in backend.spool.counts()):
                    time.sleep(0.05)
                (counts,) = backend.spool.counts()
            finally:
                backend.close()
        assert (0, 2) == (counts.pending, counts.dead)
        assert "HTTP 500: Unable to determine orchestrator" in (counts.last_error or "")
        assert 3 == len(server.refused)
        assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("spool.db*"))

    def test_the_same_answer_repeated_makes_the_event_dead(self, tmp_path: Path) -> None:
        """The error carries the HTTP status, so max_server_errors identical 500s (their bodies' timestamps
        differ) make the event dead, as for every HTTP backend."""
        with serve("datahub") as server:
            server.fail_with(500, "Unable to determine orchestrator")
            backend = OpenLineageBackend(server.url, spool_path=tmp_path / "spool.db", max_server_errors=2, **FAST)
            try:
                backend.emit(Run("train").started())
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and not any(c.dead for c in backend.spool.counts()):
                    time.sleep(0.05)
                (counts,) = backend.spool.counts()
            finally:
                backend.close()
        assert (0, 1, 2) == (counts.pending, counts.dead, len(server.refused))
        assert "gave up after 2 identical answers" in (counts.last_error or "")

    def test_a_refusal_is_not_retryable(self) -> None:
        """A 4xx (Marquez's 422 with its list of errors) is not retried and says why."""
        refuse = RecordingServer(handler=lambda req: (422, {"code": 422, "errors": ["job.name is blank"]}))
        with refuse as srv, pytest.raises(DeliveryError) as info:
            OpenLineageTransport(srv.url).send(Run("a").started())
        assert (False, f"POST {srv.url}/api/v1/lineage failed: HTTP 422: job.name is blank") == (
            info.value.retryable, str(info.value)
        )

    def test_redirects_are_not_followed(self) -> None:
        """A 307 is a non-retryable error naming the Location's host; the key never reaches it."""
        with RecordingServer() as elsewhere:
            location = f"http://localhost:{elsewhere.port}/api/v1/lineage"
            redirect = RecordingServer(handler=lambda req: (307, b"", {"Location": location}))
            with redirect as srv, pytest.raises(DeliveryError) as info:
                OpenLineageTransport(srv.url, api_key=SECRET).send(Run("a").started())
            followed = list(elsewhere.requests)
        message = str(info.value)
        assert (False, True, True, []) == (info.value.retryable, "HTTP 307" in message, "localhost" in message,
                                           followed)


class TestTransportOptions:
    """gzip, custom headers, and the key held as a Secret."""

    def test_gzip_and_custom_headers(self) -> None:
        """compression=gzip sends gzipped bodies with Content-Encoding: gzip; custom headers are sent."""
        with serve() as server:
            transport = transport_for(server, compression="gzip", custom_headers={"X-Team": "ml"}, api_key=SECRET)
            transport.send(Run("a").started() + Run("b").started())
        (first, second) = server.requests
        assert [] == server.problems
        assert ("gzip", "ml", f"Bearer {SECRET}") == (
            first.headers.get("Content-Encoding"), first.headers.get("X-Team"), first.headers.get("Authorization")
        )
        assert json.loads(gzip.decompress(second.body))["eventType"] == "START"

    def test_the_key_is_in_no_repr_vars_or_session(self) -> None:
        """The key is a Secret: not in repr, vars(), the session's headers; custom header values hidden."""
        transport = OpenLineageTransport("http://127.0.0.1:9", api_key=SECRET, custom_headers={"X-Api-Key": SECRET})
        session = transport._client._get_session()
        texts = [repr(transport), str(vars(transport)), repr(vars(transport)), str(dict(session.headers)),
                 transport.key]
        assert [] == [t for t in texts if SECRET in t]
        assert "custom_headers=['X-Api-Key']" in repr(transport)

    def test_secret(self) -> None:
        """The key is the package's one Secret: repr and str mask it, reveal() gives it; no __dict__, no
        pickling; a text that echoes it (a server's answer) is redacted."""
        secret = Secret(SECRET)
        with pytest.raises(TypeError):
            vars(secret)
        with pytest.raises(TypeError):
            pickle.dumps(secret)
        assert ("Secret('***')", "Secret('***')", "Secret('***')", SECRET, True, "had ***") == (
            repr(secret), str(secret), f"{secret}", secret.reveal(), secret == Secret(SECRET),
            redact(f"had {SECRET}"),
        )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


YML = """\
transport:
  type: http
  url: {url}
  endpoint: api/v1/lineage
  timeout: 3.5
  compression: gzip
  auth:
    type: api_key
    apiKey: {key}
  custom_headers:
    X-Team: ml
"""


class TestConfiguration:
    """openlineage.yml, OPENLINEAGE__* variables, OPENLINEAGE_URL and OPENLINEAGE_DISABLED."""

    def test_where_the_file_is_looked_for(self, cwd: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
        """OPENLINEAGE_CONFIG, else ./openlineage.yml, else ~/.openlineage/openlineage.yml; a missing
        OPENLINEAGE_CONFIG file is skipped with a warning."""
        home = Path(os.environ["HOME"])
        explicit = write(cwd.parent / "elsewhere.yml", "transport: {type: http, url: 'http://explicit'}\n")
        local = write(cwd / "openlineage.yml", "transport: {type: http, url: 'http://local'}\n")
        user = write(home / ".openlineage" / "openlineage.yml", "transport: {type: http, url: 'http://user'}\n")
        found = []
        monkeypatch.setenv("OPENLINEAGE_CONFIG", str(explicit))
        found.append(find_config_file())
        monkeypatch.setenv("OPENLINEAGE_CONFIG", str(cwd / "missing.yml"))
        found.append(find_config_file())
        local.unlink()
        found.append(find_config_file())
        user.unlink()
        found.append(find_config_file())
        assert [explicit, local, user, None] == found
        assert "OPENLINEAGE_CONFIG" in caplog.text

    @pytest.mark.parametrize(
        ("files", "env"),
        [
            ({"openlineage.yml": YML}, {}),
            ({}, {"OPENLINEAGE__TRANSPORT__TYPE": "http", "OPENLINEAGE__TRANSPORT__URL": "{url}",
                  "OPENLINEAGE__TRANSPORT__TIMEOUT": "2", "OPENLINEAGE__TRANSPORT__COMPRESSION": "gzip",
                  "OPENLINEAGE__TRANSPORT__AUTH": '{{"type": "api_key", "apiKey": "{key}"}}',
                  "OPENLINEAGE__TRANSPORT__CUSTOM_HEADERS__X_TEAM": "ml"}),
            ({}, {"OPENLINEAGE__TRANSPORT__TYPE": "http", "OPENLINEAGE__TRANSPORT__URL": "{url}",
                  "OPENLINEAGE__TRANSPORT__AUTH__TYPE": "api_key", "OPENLINEAGE__TRANSPORT__AUTH__APIKEY": "{key}"}),
            ({"openlineage.yml": YML}, {"OPENLINEAGE__TRANSPORT__URL": "http://loses:1",
                                        "OPENLINEAGE__TRANSPORT__ENDPOINT": "from/env"}),
            ({}, {"OPENLINEAGE_URL": "{url}", "OPENLINEAGE_API_KEY": "{key}", "OPENLINEAGE_ENDPOINT": "custom/x"}),
            ({"openlineage.yml": YML}, {"OPENLINEAGE_URL": "http://loses:2"}),
            ({"home": YML}, {}),
            ({"explicit": YML, "openlineage.yml": YML.replace("{url}", "http://loses:3")}, {}),
        ],
        ids=["yml", "env-json-auth", "env-nested-auth", "file-beats-env", "simple-vars", "file-beats-url",
             "home", "explicit"],
    )
    def test_the_same_as_the_official_client(
        self, files: dict[str, str], env: dict[str, str], cwd: Path, monkeypatch: pytest.MonkeyPatch,
        restore_environ: None,
    ) -> None:
        """For each way of configuring, we send where, how and with what the official client would."""
        from openlineage.client import OpenLineageClient

        url = "http://lineage.example:5000"
        places = {"openlineage.yml": cwd / "openlineage.yml",
                  "home": Path(os.environ["HOME"]) / ".openlineage" / "openlineage.yml",
                  "explicit": cwd.parent / "conf" / "ol.yml"}
        for name, text in files.items():
            write(places[name], text.format(url=url, key=SECRET))
            if name == "explicit":
                monkeypatch.setenv("OPENLINEAGE_CONFIG", str(places[name]))
        for name, value in env.items():
            monkeypatch.setenv(name, value.format(url=url, key=SECRET))
        ours = load_settings().transport
        assert ours is not None
        theirs: Any = OpenLineageClient().transport
        expected = (theirs.url, theirs.endpoint, theirs.compression and str(theirs.compression),
                    theirs.config.auth.get_bearer(), dict(theirs.config.custom_headers))
        bearer = f"Bearer {ours.api_key.reveal()}" if ours.api_key else None
        actual = (ours.url, ours.endpoint, ours.compression, bearer,
                  {k: v.reveal() if isinstance(v, Secret) else v for k, v in ours.custom_headers.items()})
        assert expected == actual
        if ours.timeout is not None:
            assert theirs.timeout == ours.timeout

    def test_a_configured_backend_end_to_end(
        self, cwd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """configure("openlineage") with ./openlineage.yml: delivered with the key, gzip, the custom
        header and our options from the workflow_trace section; the key in no repr or spool."""
        import workflow_trace as wt

        with serve() as server:
            write(cwd / "openlineage.yml", YML.format(url=server.url, key=SECRET) + (
                "workflow_trace:\n  namespace: ml-team\n  job_prefix: ''\n  dataset_version: both\n"
                f"  server_address: {SERVER}\n"
            ))
            monkeypatch.setenv("WORKFLOW_TRACE_SPOOL", str(tmp_path / "spool.db"))
            wt.configure("openlineage", strict=True)
            backend = wt.get_backend()
            with wt.workflow_step("train", task_id=5) as step:
                step.add_input(wt.Project(id=42, version_id=901))
            assert wt.flush(10)
            wt.reset()
        bodies = server.events
        assert [] == server.problems
        assert {("ml-team", "train")} == {(b["job"]["namespace"], b["job"]["name"]) for b in bodies}
        assert [(SERVER_NS, "project/42"), (SERVER_NS, "project/42@901")] == [
            (d["namespace"], d["name"]) for d in bodies[-1]["inputs"]
        ]
        assert {(f"Bearer {SECRET}", "gzip", "ml")} == {
            (r.headers.get("Authorization"), r.headers.get("Content-Encoding"), r.headers.get("X-Team"))
            for r in server.requests
        }
        assert SECRET not in repr(backend)
        assert SECRET.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("spool.db*"))

    @pytest.mark.parametrize("value", ["true", " TRUE ", "True"])
    def test_disabled(self, value: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """OPENLINEAGE_DISABLED=true: a NullBackend for every form, even with a broken openlineage.yml."""
        write(cwd / "openlineage.yml", "transport: {type: kafka\n")
        monkeypatch.setenv("OPENLINEAGE_DISABLED", value)
        backends = [create_backend("openlineage"), create_backend("openlineage+http://127.0.0.1:9"),
                    OpenLineageBackend.from_env()]
        assert [NullBackend] * 3 == [type(b) for b in backends]

    @pytest.mark.parametrize("value", ["false", "1", "yes"])
    def test_not_disabled(self, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """Only "true" disables, as in the client."""
        monkeypatch.setenv("OPENLINEAGE_DISABLED", value)
        monkeypatch.setenv("OPENLINEAGE_URL", "http://127.0.0.1:9")
        assert isinstance(OpenLineageBackend.from_env(), OpenLineageBackend)

    def test_noop_transport_disables(self, cwd: Path) -> None:
        """transport: {type: noop} sends nothing."""
        write(cwd / "openlineage.yml", "transport:\n  type: noop\n")
        assert isinstance(create_backend("openlineage"), NullBackend)

    @pytest.mark.parametrize(
        ("yml", "match"),
        [
            ("transport: {type: kafka}\n", r"'kafka' \(a transport of the official client\).*supported: http"),
            ("transport: {type: console}\n", "'console'.*supported: http"),
            ("transport: {type: file, log_file_path: x}\n", "'file'.*supported: http"),
            ("transport: {type: my.Transport}\n", "'my.Transport' is not supported.*supported: http"),
            ("transport: {type: http}\n", "needs a url"),
            ("transport: {url: 'http://x'}\n", "transport has no type"),
            ("transport: {type: http, url: 'ftp://x'}\n", "http\\(s\\)://"),
            ("transport: {type: http, url: 'http://x', auth: {type: jwt, apiKey: KEY}}\n", "'jwt'.*supported: api_key"),
            ("transport: {type: http, url: 'http://x', auth: {type: api_key}}\n", "needs apiKey"),
            ("transport: {type: http, url: 'http://x', compression: zstd}\n", "gzip"),
            ("transport: {type: http, url: 'http://x', timeout: soon}\n", "timeout"),
            ("transport: [http]\n", "transport must be a mapping"),
            ("workflow_trace: {colour: red}\n", "unknown workflow_trace option.*'colour'"),
            ("transport: {type: http, url: 'http://x'}\nworkflow_trace: {dataset_version: all}\n", "dataset_version"),
            ("- just\n- a list\n", "must be a mapping"),
            # PyYAML's own message would quote the line, the key in it
            ("transport:\n  auth:\n    apiKey: \"KEY\n", r"openlineage\.yml, line \d+"),
        ],
    )
    def test_refused(self, yml: str, match: str, cwd: Path) -> None:
        """What cannot be used is refused at configure time, naming the file and what is supported; an
        API key is never in the message."""
        path = write(cwd / "openlineage.yml", yml.replace("KEY", SECRET))
        with pytest.raises(ConfigurationError, match=match) as info:
            create_backend("openlineage")
        assert SECRET not in str(info.value)
        if "dataset_version" not in match:  # that one is the mapper's: it does not know the file
            assert str(path) in str(info.value)

    def test_variables_nest_as_in_the_client(self) -> None:
        """OPENLINEAGE__A__B nests lower-cased; values parse as JSON when they can; a shorter name wins."""
        env = {
            "OPENLINEAGE__TRANSPORT__TYPE": "http",
            "OPENLINEAGE__TRANSPORT__TIMEOUT": "5",
            "OPENLINEAGE__TRANSPORT__VERIFY": "false",
            "OPENLINEAGE__TRANSPORT__URL": "http://h:5000",
            "OPENLINEAGE__TRANSPORT__AUTH__TYPE": "ignored",
            "OPENLINEAGE__TRANSPORT__AUTH": '{"type": "api_key", "apiKey": "k"}',
            "OPENLINEAGE__WORKFLOW_TRACE__JOB_PREFIX": "app",
            "NOT_OPENLINEAGE__X": "1",
        }
        expected = {
            "transport": {"type": "http", "timeout": 5, "verify": False, "url": "http://h:5000",
                          "auth": {"type": "api_key", "apiKey": "k"}},
            "workflow_trace": {"job_prefix": "app"},
        }
        assert expected == env_config(env)

    def test_options_from_the_workflow_trace_section(self, cwd: Path) -> None:
        """namespace, job_prefix, dot_replacement, dataset_version, server_address from the file."""
        write(cwd / "openlineage.yml", (
            "transport: {type: http, url: 'http://127.0.0.1:9'}\n"
            "workflow_trace:\n  namespace: ml\n  job_prefix: app\n  dot_replacement: _\n"
            "  dataset_version: name\n  server_address: http://sly.local:8080/\n"
        ))
        backend = create_backend("openlineage")
        assert isinstance(backend, OpenLineageBackend)
        mapper = backend.openlineage.mapper
        try:
            assert ("ml", "app.Trainer_fit", "name", "supervisely://sly.local:8080") == (
                mapper.namespace, mapper.job_name("Trainer.fit", 5), mapper.dataset_version, mapper.server_namespace
            )
        finally:
            backend.close()

    def test_backend_string_options(self) -> None:
        """openlineage+http://...?job_prefix=&dataset_version=both&dot_replacement=_&compression=gzip."""
        backend = create_backend(
            "openlineage+http://127.0.0.1:9?job_prefix=&dataset_version=both&dot_replacement=_&compression=gzip"
        )
        assert isinstance(backend, OpenLineageBackend)
        try:
            mapper, transport = backend.openlineage.mapper, backend.openlineage
            assert ("Trainer_fit", "both", "gzip") == (
                mapper.job_name("Trainer.fit", 5), mapper.dataset_version, transport.compression
            )
        finally:
            backend.close()
        with pytest.raises(ConfigurationError, match="dataset_version"):
            create_backend("openlineage+http://127.0.0.1:9?dataset_version=latest")


class TestWithoutPyYAML:
    """openlineage.yml is read with PyYAML (which the official client depends on); without it, a JSON file
    is read and any other file is refused, saying what to do."""

    @pytest.fixture(autouse=True)
    def no_pyyaml(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError

    def test_a_json_file_is_read(self, cwd: Path) -> None:
        """JSON is YAML too: such a file is read without PyYAML."""
        config = {"transport": {"type": "http", "url": "http://127.0.0.1:9", "timeout": 3.5, "compression": "gzip",
                                "auth": {"type": "api_key", "apiKey": SECRET}}}
        write(cwd / "openlineage.yml", json.dumps(config, indent=2))
        settings = load_settings()
        assert settings.transport is not None
        assert ("http://127.0.0.1:9", 3.5, "gzip", SECRET) == (
            settings.transport.url, settings.transport.timeout, settings.transport.compression,
            settings.transport.api_key.reveal() if settings.transport.api_key else None,
        )
        assert SECRET not in repr(settings)

    def test_a_yaml_file_is_refused_with_the_fix(self, cwd: Path) -> None:
        """A YAML file: a ConfigurationError naming the file, pip install pyyaml and the variables; the file's
        content (the key) is not quoted."""
        path = write(cwd / "openlineage.yml", YML.format(url="http://127.0.0.1:9", key=SECRET))
        with pytest.raises(ConfigurationError) as info:
            create_backend("openlineage")
        message = str(info.value)
        assert (True, True, True, False) == (
            str(path) in message, "pip install pyyaml" in message, "OPENLINEAGE__" in message, SECRET in message
        )

    def test_the_variables_need_no_file_reader(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OPENLINEAGE__* variables configure the backend without PyYAML."""
        monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
        monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", "http://127.0.0.1:9")
        settings = load_settings()
        assert "http://127.0.0.1:9" == (settings.transport.url if settings.transport else None)


def test_pyyaml_reads_the_file() -> None:
    """PyYAML is what reads openlineage.yml: block and flow mappings, quoting, comments, scalar types."""
    pytest.importorskip("yaml")
    text = (
        "# comment\ntransport:\n  type: http  # trailing\n  url: \"http://marquez:5000\"\n  timeout: 5\n"
        "  verify: false\n  auth:\n    type: api_key\n    apiKey: a#b 'c'\n  custom_headers: {X-Team: ml}\n"
    )
    Path("openlineage.yml").write_text(text)
    settings = load_settings()
    assert settings.transport is not None
    assert ("http://marquez:5000", 5.0, False, "a#b 'c'", {"X-Team": "ml"}) == (
        settings.transport.url, settings.transport.timeout, settings.transport.verify,
        settings.transport.api_key.reveal() if settings.transport.api_key else None,
        dict(settings.transport.custom_headers),
    )


def test_a_warning_for_an_auth_without_type(cwd: Path, caplog: pytest.LogCaptureFixture) -> None:
    """auth with an apiKey but no type sends no key (as the client); we say so, without the key."""
    caplog.set_level(logging.WARNING, logger="workflow_trace")
    write(cwd / "openlineage.yml", f"transport: {{type: http, url: 'http://x', auth: {{apiKey: {SECRET}}}}}\n")
    settings = load_settings()
    assert (None, True, False) == (
        settings.transport.api_key if settings.transport else "?", "no API key is sent" in caplog.text,
        SECRET in caplog.text,
    )


def test_requests_seen_by_the_server_are_recorded() -> None:
    """The test server keeps every request, accepted or refused (a self-check of tests/ol_server.py)."""
    with serve("datahub") as server:
        server.fail_with(503, "busy")
        with pytest.raises(DeliveryError):
            transport_for(server).send(Run("a").started())
        server.fail_with(None)
        transport_for(server).send(Run("b").started())
    statuses: list[Request] = server.requests
    assert (2, [(503, "busy")], 1) == (len(statuses), server.refused, len(server.events))
