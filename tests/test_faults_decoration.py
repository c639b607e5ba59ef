"""Issue #11, faults of decoration and coercion: bad targets, digit strings, and a flood of warnings."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from _support import run_py

import workflow_trace as wt
from workflow_trace.testing import record

# -- 13. one WARNING per cause, then a count -----------------------------------------------------------

FLOOD = """
import logging
import workflow_trace as wt

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

class Broken:
    def emit(self, events):
        raise RuntimeError("disk on fire")
    def flush(self, timeout=None):
        return True
    def close(self):
        pass

wt.configure(Broken())

@wt.consumes_dataset
def load(dataset_id):
    return dataset_id

assert all(load(i) == i for i in range(3000))
print("calls done", flush=True)
"""


@pytest.fixture(scope="module")
def flood() -> subprocess.CompletedProcess[str]:
    """A process whose 3,000 decorated calls all fail to record (the backend raises), run to its exit."""
    return run_py(FLOOD, timeout=60)


def test_a_flood_of_failures_gives_one_warning_and_a_count(flood: subprocess.CompletedProcess[str]) -> None:
    """3,000 failing calls: at most 3 WARNING lines, and by exit a count line accounts for the repeats."""
    warnings = [line for line in flood.stderr.splitlines() if line.startswith("WARNING")]
    counts = [int(m.group(1).replace(",", "")) for line in warnings if (m := re.search(r"(\d[\d,]*) more", line))]
    print(f"exit {flood.returncode}; {len(warnings)} WARNING lines; counts: {counts}; first: {warnings[:2]}")
    assert ("calls done", True, True) == (
        flood.stdout.strip(), len(warnings) <= 3, bool(counts) and max(counts) >= 2_999
    )


def test_the_message_prefix_is_not_doubled(flood: subprocess.CompletedProcess[str]) -> None:
    """With a '%(name)s: %(message)s' format, no line reads 'workflow_trace: workflow_trace: ...'."""
    doubled = [line for line in flood.stderr.splitlines() if "workflow_trace: workflow_trace:" in line]
    print(f"{len(doubled)} doubled lines; first: {doubled[:1]}")
    assert [] == doubled[:3]


# -- 14. bad decoration targets are refused when decorating --------------------------------------------

HINT = re.compile(r"\b(instead|use|decorate (a|its|the)|apply|pass|give|wrap|must be|expects?|takes)\b", re.I)


def _refused(make: Callable[[], Any]) -> str:
    """The DecorationError message ``make()`` raises (fails the test when it raises nothing or another error)."""
    try:
        make()
    except wt.DecorationError as exc:
        return str(exc)
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__} instead of DecorationError: {exc}")
    pytest.fail("no error at decoration time")


def test_a_bare_decorator_on_a_class_is_refused() -> None:
    """@consumes_project on a class: DecorationError naming the class, the decorator and the fix."""

    def make() -> Any:
        @wt.consumes_project
        class Loader:
            def load(self, project: int) -> None: ...

        return Loader

    message = _refused(make)
    print(message)
    assert (True, True, True) == ("Loader" in message, "consumes_project" in message, bool(HINT.search(message)))


def test_a_decorator_applied_to_a_lambda_is_refused() -> None:
    """consumes_project()(lambda ...): DecorationError naming the lambda and the fix."""
    message = _refused(lambda: wt.consumes_project()(lambda project: project))
    print(message)
    assert (True, True) == ("lambda" in message, bool(HINT.search(message)))


def test_produces_file_of_a_lambda_called_is_refused() -> None:
    """wt.produces_file(lambda: ...)(): DecorationError (not a bare TypeError later) naming the lambda."""
    message = _refused(lambda: wt.produces_file(lambda: "/models/best.pt")())
    print(message)
    assert (True, True) == ("lambda" in message, bool(HINT.search(message)))


def test_a_decorator_given_a_number_is_refused() -> None:
    """wt.consumes_project(42): DecorationError naming what it was given and the fix."""
    message = _refused(lambda: wt.consumes_project(42))
    print(message)
    assert (True, True) == (bool(re.search(r"\b42\b|\bint\b", message)), bool(HINT.search(message)))


# -- 15. a digit string is an id ------------------------------------------------------------------------

# Files are not here on purpose: a file's string is a path, as the SDK takes add_input_file("42") (a team
# Files path); see test_a_digit_string_stays_a_file_path. Projects, datasets, tasks and jobs are named by id.
ID_KINDS = {"project": wt.Project, "dataset": wt.Dataset, "task": wt.Task, "job": wt.Job}


def test_a_digit_string_stays_a_file_path() -> None:
    """A file's string is a path, as the SDK takes it: "42" is File(path="42")."""

    @wt.consumes_file
    def read(file: str) -> str:
        return file

    with record() as rec:
        read("42")
    assert [wt.File(path="42")] == rec.inputs


def test_consumes_project_records_a_digit_string_as_the_id() -> None:
    """@consumes_project def load(project); load("42") records Project(id=42)."""

    @wt.consumes_project
    def load(project: Any) -> Any:
        return project

    with record() as rec:
        assert "42" == load("42")
    assert [wt.Project(id=42)] == rec.inputs


@pytest.mark.parametrize("kind", list(ID_KINDS))
def test_a_digit_string_is_an_id_for_every_kind_with_ids(kind: str) -> None:
    """consumes_KIND / produces_KIND given "42" record KIND(id=42)."""
    consumes = getattr(wt, f"consumes_{kind}")("value")
    produces = getattr(wt, f"produces_{kind}")

    @consumes
    def read(value: str) -> str:
        return value

    @produces
    def write() -> str:
        return "42"

    with record() as rec:
        read("42")
        write()
    expected = ID_KINDS[kind](id=42)
    assert ([expected], [expected]) == (rec.inputs, rec.outputs)


def test_an_explicit_path_node_and_folders_keep_paths() -> None:
    """Project(path="42") given explicitly stays a path; a folder "42" stays Folder(path="42")."""

    @wt.consumes_project
    def load(project: Any) -> Any:
        return project

    @wt.consumes_folder
    def scan(folder: str) -> str:
        return folder

    with record() as rec:
        load(wt.Project(path="42"))
        scan("42")
    assert [wt.Project(path="42"), wt.Folder(path="42")] == rec.inputs
