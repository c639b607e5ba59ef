"""The package surface: exports, version, typing marker, the README's example."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

import workflow_trace as wt

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and every name in it exists."""
    assert sorted(wt.__all__) == list(wt.__all__)
    assert [] == [name for name in wt.__all__ if not hasattr(wt, name)]


def test_design_names_are_exported() -> None:
    """The names DESIGN.md promises are importable from the package."""
    names = {
        "Project", "Dataset", "File", "Folder", "Task", "Job", "App", "WorkflowSettings", "WorkflowMeta",
        "workflow_step", "configure", "reset", "get_backend", "flush", "workflow", "version",
        "WorkflowTraceError", "Event", "Backend", "VersioningBackend",
    }
    names |= {f"consumes_{k}" for k in ("project", "dataset", "file", "folder", "task", "job")}
    names |= {f"produces_{k}" for k in ("project", "dataset", "file", "folder", "task", "job", "app")}
    assert set() == names - set(wt.__all__)
    from workflow_trace.backends import Backend, MemoryBackend, NullBackend, VersioningBackend  # noqa: F401


def test_version_and_typing_marker() -> None:
    """__version__ matches the installed metadata and the package ships py.typed."""
    assert metadata.version("workflow-trace") == wt.__version__
    assert (ROOT / "workflow_trace" / "py.typed").exists()


def _name_and_specifiers(requirement: str) -> tuple[str, str]:
    text = requirement.replace(" ", "")
    name = re.match(r"[A-Za-z0-9_.-]+", text).group()  # type: ignore[union-attr]
    return name, ",".join(sorted(text[len(name):].split(",")))


def test_runtime_dependencies_are_exactly_the_three() -> None:
    """Runtime dependencies are wrapt 1.x (2.x costs ~24 ms of import: see pyproject.toml), requests and
    pydantic>=2 only."""
    requires = [r for r in metadata.requires("workflow-trace") or [] if "extra ==" not in r]
    expected = {("wrapt", "<2,>=1.14"), ("requests", ""), ("pydantic", ">=2")}
    assert expected == {_name_and_specifiers(r) for r in requires}


def test_readme_starts_with_the_two_commands() -> None:
    """README.md opens with the run-the-example command and the run-the-tests command."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.DOTALL)
    assert block is not None
    lines = block.group(1).strip().splitlines()
    assert "examples/quickstart.py" in lines[0]
    assert "pytest" in lines[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert lines[1] in ci, "CI must run the README's test command as written"


def test_readme_example_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The README's ten-line example runs as written (recording into memory)."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## In ten lines\n\n```python\n(.*?)```", text, re.DOTALL)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    wt.configure("memory")
    exec(compile(code.group(1), "README.md", "exec"), {})
    backend = wt.get_backend()
    assert [wt.Task(id=5)] == backend.inputs  # type: ignore[attr-defined]
    assert [wt.File(path="/reports/eval.html")] == backend.outputs  # type: ignore[attr-defined]
