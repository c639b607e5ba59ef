"""Replay the recorded scenarios through ``workflow_trace.workflow`` (no SDK) and diff with what the SDK sent.

::

    python tests/sdk_recording/replay.py                 # every scenario; a report on stdout
    python tests/sdk_recording/replay.py --only meta     # some of them
    python tests/sdk_recording/replay.py --json out.json # the comparison as data too
    python tests/sdk_recording/replay.py --meta-as-dict  # SDK WorkflowMeta objects passed as their as_dict

Each scenario runs in a child process against the same fake instance as ``record.py``, with the scenario's
environment and a ``SuperviselyBackend`` whose spool lives in a temporary folder. The SDK's objects are
rebuilt with the small stand-ins of ``tests/_sdk_objects.py`` (duck-typed, as an app's ``sly.FileInfo`` /
``sly.WorkflowMeta`` would reach workflow_trace); ``version.create`` and ``sdk.*`` calls are skipped (the
versions they returned are already literal in the later calls). The comparison is of the
``workflow.node.add-*`` requests: their bodies, byte for byte, and their headers; the other requests
(``tasks.info``, ``file-storage.list``...) are listed. ``tests/test_sdk_scenarios.py`` makes the same
comparison in the test suite, with its allow-list of the differences that are on purpose.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import record  # noqa: E402 - the fake instance
import scenarios as sc  # noqa: E402
from _sdk_objects import WorkflowMeta, call_args  # noqa: E402 - the SDK's objects, duck-typed

EDGE = ("workflow.node.add-input", "workflow.node.add-output")


# -- the child: one scenario through workflow_trace ------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[list[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append([record.levelname, record.getMessage()])


def _as_dicts(value: Any) -> Any:
    """``--meta-as-dict``: every WorkflowMeta stand-in replaced by its ``as_dict`` (what the SDK would send)."""
    if isinstance(value, WorkflowMeta):
        return value.as_dict
    if isinstance(value, dict):
        return {k: _as_dicts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_dicts(v) for v in value]
    return value


def run_child(name: str, out: str, spool: str) -> int:
    import workflow_trace as wt
    from workflow_trace import workflow
    from workflow_trace.backends.supervisely import SuperviselyBackend

    capture = _Capture()
    logging.getLogger("workflow_trace").addHandler(capture)
    logging.getLogger("workflow_trace").setLevel(logging.INFO)
    scenario = next(s for s in sc.SCENARIOS if s["name"] == name)
    backend = SuperviselyBackend(os.environ["SERVER_ADDRESS"], os.environ["API_TOKEN"], spool_path=spool)
    wt.configure(backend)
    results = []
    for step in scenario["calls"]:
        capture.lines = []
        entry: dict[str, Any] = {"method": step["method"]}
        if step["method"] == "version.create" or step["method"].startswith("sdk."):
            entry["skipped"] = True
            results.append(entry)
            continue
        positional, keywords = call_args(step)
        if os.environ.get("REPLAY_META_AS_DICT"):
            positional, keywords = _as_dicts(positional), _as_dicts(keywords)
        try:
            returned = getattr(workflow, step["method"])(*positional, **keywords)
            entry["returned"] = repr(returned)
        except Exception as exc:
            entry["raised"] = f"{type(exc).__name__}: {exc}"
        entry["log"] = capture.lines
        results.append(entry)
    capture.lines = []
    delivered = wt.flush(timeout=3)
    results.append({"method": "<flush>", "returned": delivered, "log": capture.lines})
    Path(out).write_text(json.dumps(results, indent=1))
    os._exit(0)  # skip the exit-time drain: held events would wait for the deadline


# -- the parent ------------------------------------------------------------------------------------------


def _edges(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["api_method"] in EDGE]


def compare(only: list[str] | None, python: str, meta_as_dict: bool = False) -> list[dict[str, Any]]:
    golden = [json.loads(line) for line in (record.DATA / "sdk_requests.jsonl").read_text().splitlines()]
    fake = record.FakeInstance()
    url = fake.start()
    report = []
    try:
        for scenario in sc.SCENARIOS:
            if only and scenario["name"] not in only:
                continue
            fake.scenario = scenario["name"]
            fake.instance_version = scenario["instance_version"]
            env = record.scenario_env(url, scenario)
            if meta_as_dict:
                env["REPLAY_META_AS_DICT"] = "1"
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "result.json")
                proc = subprocess.run(
                    [python, str(Path(__file__).resolve()), "--child", scenario["name"], "--out", out,
                     "--spool", os.path.join(tmp, "spool.db")],
                    env=env, cwd=os.getcwd(), capture_output=True, text=True, timeout=120, check=False,
                )
                if not os.path.exists(out):
                    raise RuntimeError(f"{scenario['name']}: {proc.stdout}\n{proc.stderr}")
                results = json.loads(Path(out).read_text())
            sdk = [r for r in golden if r["scenario"] == scenario["name"]]
            ours = [r for r in fake.records if r["scenario"] == scenario["name"]]
            report.append({"scenario": scenario["name"], "calls": results, "sdk": sdk, "workflow_trace": ours})
    finally:
        fake.stop()
    return report


def _line(rec: dict[str, Any]) -> str:
    headers = sorted((k.lower(), v) for k, v in rec["headers"].items() if k.lower() != "x-api-key")
    return f"{rec['api_method']} {rec['body_raw']} {dict(headers)}"


def _int_task_ids(line: str) -> str:
    """The same line with the task ids as JSON numbers (the SDK sends the environment's task id as a str)."""
    method, _, rest = line.partition(" ")
    body_text, _, headers = rest.partition("} {")
    body = json.loads(body_text + "}")
    if isinstance(body.get("node", {}).get("id"), str) and body["node"]["id"].isdigit():
        body["node"]["id"] = int(body["node"]["id"])
    if body.get("type") == "app_session" and isinstance(body.get("id"), str) and body["id"].isdigit():
        body["id"] = int(body["id"])
    return f"{method} {json.dumps(body)} {{{headers}"


def summarise(report: list[dict[str, Any]]) -> tuple[str, int]:
    lines = []
    differing = 0
    for item in report:
        sdk_edges = [_line(r) for r in _edges(item["sdk"])]
        our_edges = [_line(r) for r in _edges(item["workflow_trace"])]
        same = sdk_edges == our_edges
        differing += not same
        verdict = "same edges"
        if not same:
            verdict = "DIFFERENT"
            if [_int_task_ids(x) for x in sdk_edges] == [_int_task_ids(x) for x in our_edges]:
                verdict += " (only in the task id's JSON type: the SDK sends the str it read)"
        lines.append(f"== {item['scenario']}: {verdict}")
        if not same:  # a diff without context: "-" what the SDK sent, "+" what workflow_trace sent
            diff = difflib.unified_diff(sdk_edges, our_edges, "sdk", "workflow_trace", n=0, lineterm="")
            lines.extend(f"   {entry}" for entry in list(diff)[2:] if not entry.startswith("@@"))
        other_sdk = [r["api_method"] or r["path"] for r in item["sdk"] if r["api_method"] not in EDGE]
        other_wt = [r["api_method"] or r["path"] for r in item["workflow_trace"] if r["api_method"] not in EDGE]
        lines.append(f"   other requests: sdk {other_sdk}; workflow_trace {other_wt}")
        for call in item["calls"]:
            for level, message in call.get("log", []):
                lines.append(f"   log [{call['method']}] {level}: {message}")
            if "raised" in call:
                lines.append(f"   raised [{call['method']}] {call['raised']}")
    lines.append(f"{differing} of {len(report)} scenarios differ")
    return "\n".join(lines), differing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--json", type=Path, help="also write the full comparison here")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--meta-as-dict", action="store_true",
                        help="pass each SDK WorkflowMeta as its as_dict (to see the differences behind item 1)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--spool", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child, args.out, args.spool)
    report = compare(args.only, args.python, args.meta_as_dict)
    text, differing = summarise(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
