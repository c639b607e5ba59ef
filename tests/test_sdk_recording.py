"""The recorded SDK requests in tests/data agree with the scenarios that produced them.

The recording itself needs the SDK (``tests/sdk_recording/record.py``); these checks do not, except the
last one, which re-records and diffs when ``supervisely==6.74.51`` is importable.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import SHARED

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RECORDING = HERE / "sdk_recording"


def _scenarios_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sdk_recording_scenarios", RECORDING / "scenarios.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _requests() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / "sdk_requests.jsonl").read_text().splitlines()]


def _document() -> dict[str, Any]:
    return json.loads((DATA / "sdk_scenarios.json").read_text())


def test_the_first_recording_is_kept_byte_for_byte() -> None:
    first = SHARED / "supervisely" / "sdk_requests.jsonl"
    if not first.exists():
        pytest.skip(f"the first recording is not here: {first}")
    old = first.read_text().splitlines()
    assert (DATA / "sdk_requests.jsonl").read_text().splitlines()[: len(old)] == old


def test_the_scenarios_file_is_the_scenarios_module() -> None:
    """sdk_scenarios.json = scenarios.py plus what the SDK returned and the request numbers."""
    module = _scenarios_module()
    document = _document()
    assert document["instance"] == json.loads(json.dumps(module.INSTANCE))
    recorded = []
    for scenario in document["scenarios"]:
        scenario = {k: v for k, v in scenario.items() if k != "requests"}
        scenario["calls"] = [{k: v for k, v in c.items() if k != "sdk"} for c in scenario["calls"]]
        recorded.append(scenario)
    assert recorded == json.loads(json.dumps(module.SCENARIOS))


def test_every_request_belongs_to_its_scenario() -> None:
    requests = _requests()
    seqs = [r["seq"] for r in requests]
    assert seqs == list(range(4, 4 + len(requests)))
    listed = {seq: s["name"] for s in _document()["scenarios"] for seq in s["requests"]}
    assert {r["seq"]: r["scenario"] for r in requests} == listed
    for r in requests:
        assert set(r["headers"]) <= {"x-api-key", "x-task-id", "Content-Type"}
        assert set(r["headers"]["x-api-key"]) == {"x"}  # masked


def _sdk_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("supervisely")
    except Exception:
        return None


@pytest.mark.skipif(_sdk_version() != "6.74.51", reason="needs supervisely==6.74.51 (the recorded SDK)")
def test_a_new_recording_matches_tests_data() -> None:
    done = subprocess.run(
        [sys.executable, str(RECORDING / "record.py"), "--check"], capture_output=True, text=True, timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
