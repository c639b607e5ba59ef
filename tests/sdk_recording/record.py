"""Record every HTTP request the real Supervisely SDK sends for the scenarios in ``scenarios.py``.

Run it with an interpreter that has the SDK (``pip install supervisely==6.74.51``)::

    python tests/sdk_recording/record.py            # writes tests/data/sdk_requests.jsonl and sdk_scenarios.json
    python tests/sdk_recording/record.py --check    # records into a temporary folder and diffs with tests/data

A fake instance (stdlib ``http.server``) listens on 127.0.0.1 and answers what the SDK asks
(``instance.version``, ``tasks.info``, ``file-storage.*``, ``projects.*``, ``workflow.node.add-*``...). Each
scenario runs in a child process of its own (the SDK caches the instance version and the task's team per
process and per ``Api`` object), which builds the arguments from the scenario's data and calls the SDK;
the parent records every request the fake instance receives, in order, one JSON line each:

``seq, scenario, http_method, path, api_method, query, headers, body_raw, body_json, status, response``

``headers`` keeps ``x-api-key`` (masked as x's of the same length), ``x-task-id`` and ``Content-Type``, in the
order sent. ``seq`` counts across the whole file and starts at 4 as in the first recording
(``shared/supervisely/sdk_requests.jsonl``), whose 34 requests are the first 34 here.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import difflib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import scenarios as sc  # noqa: E402 - the data module beside this file

DATA = HERE.parent / "data"
API_PREFIX = "/public/api/v3/"
TOKEN = "T" * 64 + "0123456789abcdef" * 4  # 128 characters, as a real token
FIRST_SEQ = 4
KEPT_HEADERS = ("x-api-key", "x-task-id", "content-type")
#: Variables removed from the children's environment (the scenario sets what it needs).
CLEARED_ENV = ("SERVER_ADDRESS", "API_TOKEN", "SUPERVISELY_TASK_ID", "TASK_ID", "TEAM_ID", "ENV",
               "CONTEXT_TEAMID", "context.teamId", "SUPERVISELY_API_SERVER_ADDRESS", "HTTP_PROXY", "HTTPS_PROXY",
               "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "APP_NAME", "WORKFLOW_TRACE_BACKEND")


# -- the fake instance -----------------------------------------------------------------------------------


class FakeInstance:
    """Answers the SDK's requests from ``scenarios.INSTANCE`` and records every request."""

    def __init__(self, data: dict[str, Any] = sc.INSTANCE) -> None:
        self.data = copy.deepcopy(data)
        self.records: list[dict[str, Any]] = []
        self.scenario = ""
        self.instance_version: str | None = sc.CURRENT
        self.seq = FIRST_SEQ - 1
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # HTTP ----------------------------------------------------------------------------------------

    def start(self) -> str:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload = owner.record(self.command, self.path, list(self.headers.items()), body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def record(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, Any]:
        parts = urlsplit(target)
        text = body.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        api_method = parts.path[len(API_PREFIX):] if parts.path.startswith(API_PREFIX) else None
        status, payload = self.answer(api_method, parts.path, parsed if isinstance(parsed, dict) else {})
        kept = {}
        for name, value in headers:
            if name.lower() in KEPT_HEADERS:
                kept[name] = "x" * len(value) if name.lower() == "x-api-key" else value
        with self.lock:
            self.seq += 1
            self.records.append({
                "seq": self.seq, "scenario": self.scenario, "http_method": method, "path": parts.path,
                "api_method": api_method, "query": dict(parse_qsl(parts.query)), "headers": kept,
                "body_raw": text, "body_json": parsed, "status": status, "response": payload,
            })
        return status, payload

    # answers -------------------------------------------------------------------------------------

    def answer(self, api_method: str | None, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        d = self.data
        if api_method is None:
            return 404, {"error": f"not found: {path}"}
        if api_method == "instance.version":
            if self.instance_version is None:
                return 404, {"error": "Not Found", "details": {"message": "unknown method instance.version"}}
            return 200, {"version": self.instance_version}
        if api_method == "tasks.info":
            key = str(body.get("id"))
            if key not in d["tasks"]:
                return 404, {"error": "Not Found", "details": {"message": f"task {key} not found"}}
            return 200, {"id": int(key), "workspaceId": d["workspace_id"], "teamId": d["team_id"], "type": "app",
                         "status": "started", "meta": d["tasks"][key], "settings": {}}
        if api_method == "projects.info":
            project = d["projects"].get(str(body.get("id")))
            return (200, project) if project else (404, {"error": "Not Found"})
        if api_method == "projects.list":
            items = list(d["projects"].values())
            for flt in body.get("filter", []):
                if flt.get("operator") == "in":
                    items = [p for p in items if p.get(flt["field"]) in flt["value"]]
                elif flt.get("operator") == "=":
                    items = [p for p in items if p.get(flt["field"]) == flt["value"]]
            return 200, _page(items)
        if api_method == "projects.versions.list":
            items = list(d["versions"].get(str(body.get("projectId")), []))
            for flt in body.get("filter", []):
                items = [v for v in items if v.get(flt["field"]) == flt["value"]]
            return 200, _page(items)
        if api_method == "projects.versions.reserve":
            pid = str(body.get("projectId"))
            latest = d["versions"].get(pid, [None])[-1]
            if latest is None:
                return 400, {"error": "Bad Request", "details": {"message": "versions are not set up"}}
            return 400, {"error": "Bad Request", "details": {
                "message": "No changes since the latest version", "useExistingVersion": True,
                "version": {"id": latest["id"], "version": latest["version"]}}}
        if api_method == "file-storage.list":
            prefix = body.get("path", "")
            return 200, [f for f in d["files"] if f["teamId"] == body.get("teamId") and f["path"].startswith(prefix)]
        if api_method == "file-storage.info":
            for f in d["files"]:
                if f["id"] == body.get("id"):
                    return 200, f
            return 404, {"error": "Not Found"}
        if api_method == "file-storage.download":
            for f in d["files"]:
                if f["path"] == body.get("path") and str(f["id"]) in d["file_contents"]:
                    return 200, d["file_contents"][str(f["id"])]
            return 404, {"error": "Not Found"}
        if api_method == "jobs.info":
            job = d["labeling_jobs"].get(str(body.get("id")))
            return (200, job) if job else (404, {"error": "Not Found"})
        if api_method in ("workflow.node.add-input", "workflow.node.add-output"):
            return 200, {"success": True}
        return 404, {"error": "Not Found", "details": {"message": f"the fake instance has no {api_method}"}}


def _page(items: list[Any]) -> dict[str, Any]:
    return {"total": len(items), "perPage": 500, "pagesCount": 1, "entities": items}


# -- the child: one scenario with the real SDK -----------------------------------------------------------


def build(spec: Any, sly: Any) -> Any:
    """The SDK object (or plain value) a scenario argument describes."""
    if isinstance(spec, list):
        return [build(item, sly) for item in spec]
    if not isinstance(spec, dict):
        return spec
    kind = spec.get("__type__")
    fields = {k: build(v, sly) for k, v in spec.items() if not k.startswith("__")}
    if kind is None:
        return fields
    if kind in ("FileInfo", "ProjectInfo", "DatasetInfo"):
        cls = {"FileInfo": sly.api.file_api.FileInfo, "ProjectInfo": sly.ProjectInfo,
               "DatasetInfo": sly.DatasetInfo}[kind]
        return cls(**{name: fields.get(name) for name in cls._fields})
    if kind in ("WorkflowSettings", "WorkflowMeta"):
        cls = sly.WorkflowSettings if kind == "WorkflowSettings" else sly.WorkflowMeta
        n = spec.get("__positional__", 0)
        names = list(fields)[:n]
        obj = cls(*[fields[k] for k in names], **{k: v for k, v in fields.items() if k not in names})
        for name, value in spec.get("__set_after__", {}).items():
            setattr(obj, name, value)
        return obj
    raise ValueError(f"unknown __type__ {kind!r}")


def describe(value: Any) -> Any:
    """A JSON-able form of what an SDK call returned."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {"__type__": type(value).__name__, **{k: describe(v) for k, v in value._asdict().items()}}
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    return repr(value)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[list[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.INFO:
            self.lines.append([record.levelname, record.getMessage()])


def run_child(name: str, out: str) -> int:
    """Run one scenario against SERVER_ADDRESS with the real SDK; write what each call returned and logged."""
    import supervisely as sly
    from supervisely.sly_logger import logger as sly_logger

    capture = _Capture()
    sly_logger.addHandler(capture)
    scenario = next(s for s in sc.SCENARIOS if s["name"] == name)
    api = sly.Api.from_env()
    results = []
    for step in scenario["calls"]:
        capture.lines = []  # building the arguments logs too (the SDK's WorkflowSettings checks its fields)
        method, args = step["method"], build(step["args"], sly)
        n = step.get("positional", 0)
        names = list(args)[:n]
        positional = [args[k] for k in names]
        keywords = {k: v for k, v in args.items() if k not in names}
        entry: dict[str, Any] = {"method": method}
        try:
            if method == "version.create":
                target: Any = api.project.version.create
            elif method.startswith("sdk."):
                target = api
                for part in method[len("sdk."):].split("."):
                    target = getattr(target, part)
            else:
                target = getattr(api.app.workflow, method)
            returned = target(*positional, **keywords) if callable(target) else target
            entry["returned"] = describe(returned)
        except Exception as exc:  # recorded: what reached the app
            entry["raised"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc(limit=3)
        entry["log"] = capture.lines
        results.append(entry)
    Path(out).write_text(json.dumps(results, indent=1))
    return 0


# -- the parent ------------------------------------------------------------------------------------------


def scenario_env(url: str, scenario: dict[str, Any], **extra: str) -> dict[str, str]:
    """The environment a scenario's child process runs in: this one without workflow/SDK settings, the
    fake instance, the scenario's own variables."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update({"SERVER_ADDRESS": url, "API_TOKEN": TOKEN, "NO_PROXY": "127.0.0.1,localhost", **extra})
    env.update(scenario["env"])
    return env


def record_all(out_dir: Path, python: str, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every scenario, write ``sdk_requests.jsonl`` and ``sdk_scenarios.json`` into ``out_dir``."""
    fake = FakeInstance()
    url = fake.start()
    described = []
    try:
        for scenario in sc.SCENARIOS:
            if only and scenario["name"] not in only:
                continue
            fake.scenario = scenario["name"]
            fake.instance_version = scenario["instance_version"]
            env = scenario_env(url, scenario, SUPERVISELY_SKIP_HTTPS_USER_HELPER_CHECK="1", PYTHONHASHSEED="0")
            with tempfile.TemporaryDirectory() as tmp:
                result_file = os.path.join(tmp, "result.json")
                proc = subprocess.run(
                    [python, str(Path(__file__).resolve()), "--child", scenario["name"], "--out", result_file],
                    env=env, cwd=tmp, capture_output=True, text=True, timeout=300, check=False,
                )
                if proc.returncode != 0 or not os.path.exists(result_file):
                    raise RuntimeError(f"scenario {scenario['name']} failed:\n{proc.stdout}\n{proc.stderr}")
                results = json.loads(Path(result_file).read_text())
            entry = copy.deepcopy(scenario)
            for call_spec, result in zip(entry["calls"], results, strict=True):
                call_spec["sdk"] = json.loads(json.dumps(
                    {k: v for k, v in result.items() if k in ("returned", "raised", "log")}
                ).replace(url, "http://127.0.0.1:PORT"))  # the fake instance's port changes from run to run
            entry["requests"] = [r["seq"] for r in fake.records if r["scenario"] == scenario["name"]]
            described.append(entry)
    finally:
        fake.stop()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "sdk_requests.jsonl", "w") as fh:
        for rec in fake.records:
            fh.write(json.dumps(rec) + "\n")
    document = {
        "format": 1,
        "sdk": {"package": "supervisely", "version": sc.SDK_VERSION},
        "about": "Scenarios recorded with the real SDK by tests/sdk_recording/record.py; see its README. "
                 "calls[].sdk is what the SDK returned/raised/logged (INFO and up) for that call; requests "
                 "lists the seq numbers of the scenario's requests in sdk_requests.jsonl.",
        "base_env": sc.BASE_ENV,
        "token_length": len(TOKEN),
        "instance": sc.INSTANCE,
        "scenarios": described,
    }
    (out_dir / "sdk_scenarios.json").write_text(json.dumps(document, indent=1) + "\n")
    return fake.records


def _check(python: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        record_all(Path(tmp), python)
        status = 0
        for name in ("sdk_requests.jsonl", "sdk_scenarios.json"):
            new = (Path(tmp) / name).read_text().splitlines()
            old = (DATA / name).read_text().splitlines() if (DATA / name).exists() else []
            diff = list(difflib.unified_diff(old, new, f"tests/data/{name}", "recorded now", lineterm=""))
            if diff:
                status = 1
                print("\n".join(diff[:200]))
        print("the recording matches tests/data" if status == 0 else "the recording differs from tests/data")
        return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=DATA, help="where to write (default: tests/data)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter with the SDK (default: this one)")
    parser.add_argument("--only", nargs="*", help="record only these scenarios")
    parser.add_argument("--check", action="store_true", help="record into a temporary folder and diff with tests/data")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child, args.out)
    if args.check:
        return _check(args.python)
    records = record_all(args.out_dir, args.python, args.only)
    print(f"{len(records)} requests written to {args.out_dir}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
