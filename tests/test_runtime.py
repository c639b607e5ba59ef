"""configure / reset / get_backend / flush, strict mode, the on/off switch, containment, plug-ins."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import workflow_trace as wt
from workflow_trace import Dataset, Project
from workflow_trace.backends import available_schemes, create_backend
from workflow_trace.backends.memory import MemoryBackend
from workflow_trace.backends.null import NullBackend
from workflow_trace.graph import load_graph


class RaisingBackend:
    """A backend whose emit always fails."""

    def __init__(self) -> None:
        self.calls = 0

    def emit(self, events: Sequence[wt.Event]) -> None:
        self.calls += 1
        raise ConnectionError("disk on fire")

    def flush(self, timeout: float | None = None) -> bool:
        raise ConnectionError("still on fire")

    def close(self) -> None:
        pass


@wt.consumes_project
@wt.produces_dataset
def convert(project: int) -> int:
    return project + 1


def test_backend_strings() -> None:
    """memory and null build their backends."""
    wt.configure("memory")
    assert isinstance(wt.get_backend(), MemoryBackend)
    wt.configure("null")
    assert isinstance(wt.get_backend(), NullBackend)


def test_unknown_scheme_names_the_schemes_that_exist() -> None:
    """An unknown scheme is a ValueError at configure() listing the known ones."""
    with pytest.raises(ValueError, match=r"unknown backend 'kafka'.*memory.*null") as info:
        wt.configure("kafka://broker:9092")
    assert isinstance(info.value, wt.ConfigurationError)
    assert {"memory", "null"} <= set(available_schemes())


def test_configure_refuses_a_non_backend() -> None:
    """An object without emit/flush/close is refused, naming its type."""
    with pytest.raises(ValueError, match="int"):
        wt.configure(42)  # type: ignore[arg-type]


def test_configuration_is_read_at_call_time() -> None:
    """A function decorated at import records into the backend configured later."""
    first, second = MemoryBackend(), MemoryBackend()
    wt.configure(first)
    convert(1)
    wt.configure(second)
    convert(2)
    assert ([Project(id=1)], [Project(id=2)]) == (first.inputs, second.inputs)


def test_environment_backend_string(monkeypatch: pytest.MonkeyPatch) -> None:
    """WORKFLOW_TRACE_BACKEND chooses the default backend."""
    monkeypatch.setenv("WORKFLOW_TRACE_BACKEND", "memory")
    convert(1)
    backend = wt.get_backend()
    assert isinstance(backend, MemoryBackend)
    assert [Project(id=1)] == backend.inputs


def test_the_default_backend_follows_its_variables_at_call_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                                                                 ) -> None:
    """Nothing configured: WORKFLOW_TRACE_DB (or WORKFLOW_TRACE_BACKEND) set between two calls sends the
    second call to the new default, with its own task; the first store keeps what it got (it is closed in
    the background). A backend given to configure() stays whatever the variables say."""
    monkeypatch.setenv("WORKFLOW_TRACE_DB", str(tmp_path / "a.db"))
    convert(1)
    monkeypatch.setenv("WORKFLOW_TRACE_DB", str(tmp_path / "b.db"))
    convert(2)
    convert(3)
    monkeypatch.setenv("WORKFLOW_TRACE_BACKEND", "memory")
    convert(4)
    memory = wt.get_backend()
    assert isinstance(memory, MemoryBackend)
    configured = MemoryBackend()
    wt.configure(configured)
    monkeypatch.setenv("WORKFLOW_TRACE_BACKEND", "null")
    convert(5)
    assert ([Project(id=4)], [Project(id=5)]) == (memory.inputs, configured.inputs)
    wt.reset()
    stored = {name: [(e.task_key, e.data_key) for e in load_graph(tmp_path / name).edges] for name in ("a.db", "b.db")}
    assert {"a.db": ["project:1", "dataset:2"], "b.db": ["project:2", "dataset:3", "project:3", "dataset:4"]} == (
        {name: [data for task, data in edges if task == "task:1"] for name, edges in stored.items()})
    assert all(task == "task:1" for edges in stored.values() for task, _ in edges)  # one implicit task in each


def test_enabled_switch(memory: MemoryBackend) -> None:
    """configure(enabled=False) records nothing and still runs the function."""
    wt.configure(enabled=False)
    assert convert(1) == 2
    with wt.workflow_step("s") as step:
        step.add_input(Project(id=1))
    assert memory.events == []
    wt.configure(enabled=True)
    convert(1)
    assert [Project(id=1)] == memory.inputs


def test_disabled_by_environment_at_call_time(memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """WORKFLOW_TRACE_DISABLED is read at call time."""
    monkeypatch.setenv("WORKFLOW_TRACE_DISABLED", "1")
    convert(1)
    monkeypatch.setenv("WORKFLOW_TRACE_DISABLED", "0")
    convert(2)
    assert [Project(id=2)] == memory.inputs


@pytest.mark.internal_errors
def test_raising_backend_is_contained(caplog: pytest.LogCaptureFixture) -> None:
    """Outside strict mode a backend failure never reaches the caller; a WARNING names it."""
    backend = RaisingBackend()
    wt.configure(backend)
    with caplog.at_level(logging.WARNING, logger="workflow_trace"):
        assert convert(1) == 2
        with wt.workflow_step("s"):
            pass
        assert wt.flush() is False
    assert backend.calls >= 3
    warnings = [r for r in caplog.records if r.name == "workflow_trace" and r.levelno == logging.WARNING]
    assert warnings
    assert all("disk on fire" in r.getMessage() or "still on fire" in r.getMessage() for r in warnings)
    assert any("could not record" in r.getMessage() for r in warnings)


def test_raising_backend_raises_in_strict_mode() -> None:
    """In strict mode the failure raises a WorkflowTraceError subclass."""
    wt.configure(RaisingBackend(), strict=True)
    with pytest.raises(wt.BackendError, match="disk on fire"):
        convert(1)


def test_strict_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """WORKFLOW_TRACE_STRICT=1 turns strict mode on."""
    monkeypatch.setenv("WORKFLOW_TRACE_STRICT", "1")
    wt.configure(RaisingBackend())
    assert wt.is_strict()
    with pytest.raises(wt.WorkflowTraceError):
        convert(1)


@pytest.mark.internal_errors
def test_strict_mode_never_masks_the_users_exception() -> None:
    """Even in strict mode, when the user's function raises, that exception is what propagates."""
    wt.configure(RaisingBackend(), strict=True)

    @wt.consumes_dataset
    def f(dataset: int) -> None:
        raise KeyError("mine")

    with pytest.raises(wt.BackendError):  # the inputs are emitted before the call
        f(1)

    backend = MemoryBackend()
    wt.configure(backend)

    @wt.produces_dataset
    def g() -> int:
        wt.configure(RaisingBackend())
        raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        g()


@pytest.mark.internal_errors
def test_a_raising_repr_or_attribute_is_contained(memory: MemoryBackend, caplog: pytest.LogCaptureFixture) -> None:
    """A user value whose __repr__ and id raise is logged, not raised into the caller."""

    class Evil:
        def __repr__(self) -> str:
            raise RuntimeError("repr exploded")

        @property
        def id(self) -> int:
            raise RuntimeError("id exploded")

    @wt.consumes_project
    def f(project: object) -> str:
        return "ran"

    assert f(Evil()) == "ran"
    assert "id exploded" in caplog.text
    with wt.workflow_step("s") as step:
        step.add_input(Evil(), kind=Project)


@pytest.mark.internal_errors
def test_unsupported_value_at_call_time_is_contained(memory: MemoryBackend, caplog: pytest.LogCaptureFixture) -> None:
    """A value of the wrong type at call time: WARNING naming the type and the decorator."""

    @wt.consumes_dataset
    def f(dataset: object) -> None:
        pass

    f(2.5)
    assert "@consumes_dataset on" in caplog.text
    assert "float" in caplog.text


def test_flush_returns_true_when_delivered(memory: MemoryBackend) -> None:
    """flush() asks the backend; with nothing configured it is trivially True."""
    assert wt.flush(1.0) is True
    wt.reset()
    assert wt.flush() is True


def test_reset_forgets_settings() -> None:
    """reset() drops backend, strict and enabled settings."""
    wt.configure("memory", strict=True, enabled=False)
    wt.reset()
    assert (wt.is_strict(), wt.is_enabled()) == (False, True)


def test_backend_work_is_not_recorded() -> None:
    """A decorated function called by the backend itself (while emitting) records nothing."""

    class Recursive(MemoryBackend):
        def emit(self, events: Sequence[wt.Event]) -> None:
            super().emit(events)
            convert(99)  # tracking is suppressed here

    backend = Recursive()
    wt.configure(backend)
    convert(1)
    assert [Project(id=1)] == backend.inputs


def test_composite_backend_string(tmp_path: Path) -> None:
    """A comma-separated backend string sends every batch to each backend."""
    backend = create_backend("memory,memory")
    wt.configure(backend)
    convert(1)
    parts = backend.backends  # type: ignore[attr-defined]
    assert [[Project(id=1)], [Project(id=1)]] == [p.inputs for p in parts]


def test_third_party_backend_from_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution declaring the workflow_trace.backends entry point provides a scheme."""
    pkg = tmp_path / "wt_plugin_demo.py"
    pkg.write_text(
        "from workflow_trace.backends.memory import MemoryBackend\n"
        "class DemoBackend(MemoryBackend):\n"
        "    @classmethod\n"
        "    def from_url(cls, spec):\n"
        "        b = cls(); b.spec = spec; return b\n"
    )
    dist = tmp_path / "wt_plugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wt-plugin-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[workflow_trace.backends]\ndemo = wt_plugin_demo:DemoBackend.from_url\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "demo" in available_schemes()
    wt.configure("demo://anything")
    backend = wt.get_backend()
    assert backend.spec == "demo://anything"  # type: ignore[attr-defined]
    convert(5)
    assert [Project(id=5)] == backend.inputs  # type: ignore[attr-defined]
    sys.modules.pop("wt_plugin_demo", None)


def test_an_entry_point_backend_class_without_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry point may name a Backend class that takes no arguments (the Backend protocol has no
    constructor): it is built with none; one that takes the backend string still gets it."""
    (tmp_path / "wt_plugin_plain.py").write_text(
        "class PlainBackend:\n"
        "    events = []\n"
        "    def emit(self, events): PlainBackend.events.extend(events)\n"
        "    def flush(self, timeout=None): return True\n"
        "    def close(self): pass\n"
    )
    dist = tmp_path / "wt_plugin_plain-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wt-plugin-plain\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[workflow_trace.backends]\nplain = wt_plugin_plain:PlainBackend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    wt.configure("plain")
    convert(5)
    backend = wt.get_backend()
    assert type(backend).__name__ == "PlainBackend"
    assert ["project:5"] == [e.node.ref for e in backend.events if e.kind == "input"]  # type: ignore[attr-defined]
    sys.modules.pop("wt_plugin_plain", None)


@pytest.mark.internal_errors
def test_a_broken_distribution_does_not_break_configure(
    monkeypatch: pytest.MonkeyPatch, swallowed: list[BaseException]
) -> None:
    """Entry points that cannot be read: the built-in schemes still work; the error reaches the hooks."""
    from importlib import metadata

    def broken(**kwargs: object) -> object:
        raise RuntimeError("a broken METADATA")

    monkeypatch.setattr(metadata, "entry_points", broken)
    assert {"memory", "sqlite"} <= set(available_schemes())
    wt.configure("memory")
    assert ["RuntimeError: a broken METADATA"] == [f"{type(e).__name__}: {e}" for e in swallowed]


def test_dataset_outputs_recorded(memory: MemoryBackend) -> None:
    """The module-level decorated function records both directions."""
    convert(1)
    assert ([Project(id=1)], [Dataset(id=2)]) == (memory.inputs, memory.outputs)
