"""workflow_step: context manager, async, decorator, nesting, isolation, task ids, status."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

import workflow_trace as wt
from workflow_trace import Dataset, File, Project
from workflow_trace.backends.memory import MemoryBackend


def test_context_manager_records_start_inputs_outputs_and_finish(memory: MemoryBackend) -> None:
    """A step emits step_started with its inputs, then outputs and step_finished (ok)."""
    with wt.workflow_step("train", inputs=[Project(id=42)], outputs=[Dataset(id=2)]) as step:
        step.add_output(File(path="/w/best.pt", model_weight=True))
        step.add_input(7, kind="dataset")
    assert [
        e.kind for e in memory.events
    ] == ["step_started", "input", "output", "input", "output", "step_finished"]
    assert [Project(id=42), Dataset(id=7)] == step.inputs
    assert [File(path="/w/best.pt", model_weight=True), Dataset(id=2)] == step.outputs
    assert (step.status, step.error) == ("ok", None)


def test_failed_step_records_type_and_message_and_reraises(memory: MemoryBackend) -> None:
    """A failing block marks the step failed with the exception's type and message; the same object
    propagates; declared outputs are not recorded."""
    error = RuntimeError("CUDA out of memory")
    with pytest.raises(RuntimeError) as info, wt.workflow_step("train", outputs=[Dataset(id=1)]):
        raise error
    assert info.value is error
    last = memory.events[-1]
    assert (last.kind, last.status) == ("step_finished", "failed")
    assert (last.error.type, last.error.message) == ("RuntimeError", "CUDA out of memory")  # type: ignore[union-attr]
    assert memory.outputs == []


def test_nested_steps_are_child_runs_of_the_same_task(memory: MemoryBackend) -> None:
    """A nested step has its own run id, points to its parent and shares its task."""
    with wt.workflow_step("pipeline", task_id=9) as outer, wt.workflow_step("export") as inner:
        assert wt.current_step() is inner
    assert inner.parent is outer
    assert inner.ref.parent_run_id == outer.run_id
    assert inner.task_id == 9
    assert outer.run_id != inner.run_id
    assert wt.current_step() is None


def test_decorated_calls_inside_a_step_join_it(memory: MemoryBackend) -> None:
    """Decorated functions called inside a step add to that step, opening none of their own."""

    @wt.consumes_dataset
    def load(dataset_id: int) -> None:
        pass

    with wt.workflow_step("train") as step:
        load(1)
        load(2)
        load(1)  # the same input twice in one step is recorded once
    assert {step.run_id} == {e.step.run_id for e in memory.events}
    assert [Dataset(id=1), Dataset(id=2)] == memory.inputs


@pytest.mark.internal_errors
def test_repeated_calls_inside_a_step_record_only_what_is_new(memory: MemoryBackend) -> None:
    """Recorded inputs skip the recording; a new result after them is an output, unless tracking is off."""

    @wt.consumes_dataset
    @wt.produces_file
    def load(dataset_id: int, path: str) -> str:
        return path

    with wt.workflow_step("train"):
        load(1, "/a")
        load(1, "/a")
        load(1, "/b")  # the inputs were recorded, the result is new
        load(True, "/a")  # equal to 1, yet a bool is not an id: refused (a warning), the call goes on
        wt.configure(enabled=False)
        load(1, "/c")
        wt.configure(enabled=True)
    expected = ([Dataset(id=1)], [File(path="/a"), File(path="/b")])
    assert expected == (memory.inputs, memory.outputs)


def test_step_as_decorator_opens_one_step_per_call(memory: MemoryBackend) -> None:
    """@workflow_step runs each call in its own step, named as given or after the function."""

    @wt.workflow_step()
    def job(n: int) -> int:
        wt.current_step().add_input(n, kind=Dataset)  # type: ignore[union-attr]
        return n

    assert [job(1), job(2)] == [1, 2]
    finished = [e for e in memory.events if e.kind == "step_finished"]
    assert len({e.step.run_id for e in finished}) == 2
    assert {"test_step_as_decorator_opens_one_step_per_call.<locals>.job"} == {e.step.name for e in finished}


def test_bare_step_decorator(memory: MemoryBackend) -> None:
    """@workflow_step without parentheses names the step after the function."""

    @wt.workflow_step
    def prepare() -> str:
        return "ready"

    assert "ready" == prepare()
    assert {"test_bare_step_decorator.<locals>.prepare"} == {e.step.name for e in memory.events}


def test_async_context_manager_and_decorator(memory: MemoryBackend) -> None:
    """async with and an async decorated function work like their sync twins."""

    @wt.workflow_step("infer")
    async def infer(x: int) -> int:
        await asyncio.sleep(0)
        return x

    async def main() -> int:
        async with wt.workflow_step("load", inputs=[Project(id=1)]):
            await asyncio.sleep(0)
        return await infer(3)

    assert asyncio.run(main()) == 3
    assert [e.step.name for e in memory.events if e.kind == "step_finished"] == ["load", "infer"]


def test_threads_do_not_cross_talk(memory: MemoryBackend) -> None:
    """8 threads x 200 decorated calls, each thread in its own step: each step holds exactly its nodes."""

    @wt.consumes_dataset
    def load(dataset_id: int) -> None:
        pass

    runs: dict[int, str] = {}

    def worker(t: int) -> None:
        with wt.workflow_step(f"thread-{t}") as step:
            runs[t] = step.run_id
            for i in range(200):
                load(t * 1000 + i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t, run_id in runs.items():
        got = {e.node.id for e in memory.events if e.kind == "input" and e.step.run_id == run_id}  # type: ignore[union-attr]
        assert {t * 1000 + i for i in range(200)} == got
    assert len(memory.inputs) == 8 * 200


def test_asyncio_tasks_do_not_cross_talk(memory: MemoryBackend) -> None:
    """100 concurrent asyncio tasks, each in its own step, interleaving at awaits: no cross-talk."""

    @wt.consumes_dataset
    async def load(dataset_id: int) -> None:
        await asyncio.sleep(0)

    async def one(i: int) -> str:
        async with wt.workflow_step(f"task-{i}") as step:
            for j in range(3):
                await load(i * 10 + j)
                await asyncio.sleep(0)
            return step.run_id

    async def main() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(100)))

    run_ids = asyncio.run(main())
    for i, run_id in enumerate(run_ids):
        got = [e.node.id for e in memory.events if e.kind == "input" and e.step.run_id == run_id]  # type: ignore[union-attr]
        assert [i * 10, i * 10 + 1, i * 10 + 2] == got


@pytest.mark.parametrize(("env", "expected"), [
    ({"SUPERVISELY_TASK_ID": "77", "TASK_ID": "5"}, 77),
    ({"TASK_ID": "5"}, 5),
    ({}, None),
])
def test_task_id_from_the_environment(memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch,
                                      env: dict[str, str], expected: int | None) -> None:
    """SUPERVISELY_TASK_ID wins over TASK_ID; the memory backend owns no ids, so none is made up."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with wt.workflow_step("s") as step:
        pass
    assert expected == step.task_id
    assert {expected} == {e.task_id for e in memory.events}


def test_explicit_task_id_wins(memory: MemoryBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """task_id= overrides the environment."""
    monkeypatch.setenv("SUPERVISELY_TASK_ID", "77")
    with wt.workflow_step("s", task_id=3) as step:
        pass
    assert step.task_id == 3


def test_backend_owned_task_ids_for_outermost_steps() -> None:
    """A backend that owns ids gives each outermost step a new task id; nested steps share it."""

    class Owning(MemoryBackend):
        def __init__(self) -> None:
            super().__init__()
            self.next = 100

        def new_task_id(self, name: str) -> int:
            self.next += 1
            return self.next

    backend = Owning()
    wt.configure(backend)
    with wt.workflow_step("a") as a, wt.workflow_step("a.child") as child:
        pass
    with wt.workflow_step("b") as b:
        pass
    assert (a.task_id, child.task_id, b.task_id) == (101, 101, 102)


@pytest.mark.internal_errors
def test_version_inputs_without_a_versioning_backend_records_plain_project(
    memory: MemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """version_inputs on a backend without versions: a WARNING, and the input is recorded unversioned."""
    with wt.workflow_step("train", inputs=[Project(id=1)], version_inputs=True):
        pass
    assert [Project(id=1)] == memory.inputs
    assert "does not support versions" in caplog.text


def test_version_inputs_with_a_versioning_backend() -> None:
    """version_inputs creates a version before the block and records the project version."""

    class Versioning(MemoryBackend):
        calls: ClassVar[list[tuple[object, ...]]] = []

        def create_version(self, project: Project, title: str | None, description: str | None) -> int:
            self.calls.append((project, title, description, len(self.events)))
            return 555

    backend = Versioning()
    wt.configure(backend)
    with wt.workflow_step("train", inputs=[Project(id=1)], version_inputs="Train YOLO", task_id=4):
        pass
    assert [Project(id=1, version_id=555)] == backend.inputs
    assert [(Project(id=1), "Train YOLO", "created automatically by task 4", 0)] == backend.calls


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"inputs": [42]}, "inputs"),
    ({"task_id": "5"}, "task_id"),
    ({"meta": {"nope": 1}}, "meta"),
    ({"version_inputs": 3}, "version_inputs"),
    ({"inputs": [wt.App()]}, "output only"),
])
def test_bad_step_arguments_fail_at_construction(kwargs: dict[str, object], match: str) -> None:
    """Wrong arguments are refused when the step is built, naming the argument."""
    with pytest.raises((TypeError, ValueError), match=match):
        wt.workflow_step("s", **kwargs)  # type: ignore[arg-type]


@pytest.mark.internal_errors
def test_add_input_with_a_bad_value_is_contained(memory: MemoryBackend, caplog: pytest.LogCaptureFixture) -> None:
    """step.add_input of a value it cannot coerce logs a WARNING and the block goes on."""
    with wt.workflow_step("s") as step:
        step.add_input(3.5, kind="dataset")
        step.add_input(42)
        step.add_input(wt.App())
    assert [] == memory.inputs
    assert "float" in caplog.text
    assert "kind=" in caplog.text
    assert "output only" in caplog.text


def test_generator_step_does_not_leak_into_the_consumer(memory: MemoryBackend) -> None:
    """A decorated generator records in its own step without becoming the consumer's current step."""

    @wt.consumes_dataset
    def batches(dataset_id: int) -> Iterator[int]:
        yield 1
        yield 2

    for _ in batches(3):
        assert wt.current_step() is None
    assert [Dataset(id=3)] == memory.inputs
    assert memory.events[-1].status == "ok"


def test_the_signatures_are_the_documented_ones(memory: MemoryBackend) -> None:
    """DESIGN.md 4: ``workflow_step(name=None, *, inputs=(), outputs=(), task_id=None, version_inputs=False,
    meta=None, params=None)`` (not the ``**kwargs`` of the ``__new__`` that makes bare ``@workflow_step``
    work) and ``step.add_input(node_or_value, kind=None, meta=None)``."""
    sig = inspect.signature(wt.workflow_step)
    assert ["name", "inputs", "outputs", "task_id", "version_inputs", "meta", "params"] == list(sig.parameters)
    assert [None, (), (), None, False, None, None] == [p.default for p in sig.parameters.values()]
    assert [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY] == list(sig.parameters)[1:]
    with wt.workflow_step("s") as step:
        assert ["node_or_value", "kind", "meta"] == list(inspect.signature(step.add_input).parameters)
        step.add_input(node_or_value=Project(id=1))
        step.add_output(node_or_value=5, kind="dataset")
    assert [Project(id=1)] == memory.inputs
    assert [Dataset(id=5)] == memory.outputs
