"""The thirteen decorators: every form on every kind of callable, sources, options, decoration errors."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Callable, Optional, Union

import pytest

import workflow_trace as wt
from workflow_trace import App, Dataset, File, Folder, Job, Project, Task
from workflow_trace.backends.memory import MemoryBackend

# decorator name -> (node class, parameter name used for auto-detection, a raw value, the expected node)
CONSUMES: dict[str, tuple[str, Any, wt.Node]] = {
    "consumes_project": ("project_id", 42, Project(id=42)),
    "consumes_dataset": ("dataset", 7, Dataset(id=7)),
    "consumes_file": ("file_path", "/models/best.pt", File(path="/models/best.pt")),
    "consumes_folder": ("folder", "/data/raw", Folder(path="/data/raw")),
    "consumes_task": ("task_id", 5, Task(id=5)),
    "consumes_job": ("job_id", 11, Job(id=11)),
}
PRODUCES: dict[str, tuple[Any, wt.Node]] = {
    "produces_project": (43, Project(id=43)),
    "produces_dataset": (8, Dataset(id=8)),
    "produces_file": ("/out/a.zip", File(path="/out/a.zip")),
    "produces_folder": ("/out", Folder(path="/out")),
    "produces_task": (6, Task(id=6)),
    "produces_job": (12, Job(id=12)),
    "produces_app": (None, App()),
}
SHAPES = ["function", "method", "classmethod", "staticmethod", "async", "generator"]


def _build(shape: str, decorator_src: str, params: str, body: str, ns: dict[str, Any]) -> Callable[..., Any]:
    """Define a callable of the given shape, decorated with ``decorator_src``, and return it ready to call."""
    if shape == "function":
        src = f"@{decorator_src}\ndef f({params}):\n    {body}\ntarget = f"
    elif shape == "async":
        src = f"@{decorator_src}\nasync def f({params}):\n    {body}\ntarget = f"
    elif shape == "generator":
        src = f"@{decorator_src}\ndef f({params}):\n    yield 1\n    yield 2\ntarget = f"
    else:
        first = {"method": "self, ", "classmethod": "cls, ", "staticmethod": ""}[shape]
        inner = "" if shape == "method" else f"    @{shape}\n"
        src = (
            f"class C:\n    @{decorator_src}\n{inner}    def f({first}{params}):\n        {body}\n"
            f"target = C().f if {shape!r} == 'method' else C.f\n"
        )
    exec(src, ns)
    return ns["target"]  # type: ignore[no-any-return]


def _run(shape: str, fn: Callable[..., Any], *args: Any) -> Any:
    if shape == "async":
        return asyncio.run(fn(*args))
    if shape == "generator":
        return list(fn(*args))
    return fn(*args)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("form", ["bare", "called"])
@pytest.mark.parametrize("name", sorted(CONSUMES))
def test_consumes_every_form_and_shape(memory: MemoryBackend, name: str, form: str, shape: str) -> None:
    """Each consumes_* decorator, bare or called, on every kind of callable, records its input."""
    param, value, expected = CONSUMES[name]
    dec = "DEC" if form == "bare" else f"DEC({param!r})"
    fn = _build(shape, dec, f"{param}, other=0", "return 'result'", {"DEC": getattr(wt, name)})
    result = _run(shape, fn, value)
    assert ([1, 2] if shape == "generator" else "result") == result
    assert [expected] == memory.inputs
    assert [e.kind for e in memory.events] == ["step_started", "input", "step_finished"]
    assert memory.events[-1].status == "ok"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("form", ["bare", "called"])
@pytest.mark.parametrize("name", sorted(PRODUCES))
def test_produces_every_form_and_shape(memory: MemoryBackend, name: str, form: str, shape: str) -> None:
    """Each produces_* decorator records the return value (or, for generators, the arg=) as output."""
    value, expected = PRODUCES[name]
    if shape == "generator" and name != "produces_app":
        dec = "DEC(arg='out')"
        if form == "bare":
            with pytest.raises(TypeError, match="generator"):
                _build(shape, "DEC", "out", "", {"DEC": getattr(wt, name)})
            return
    else:
        dec = "DEC" if form == "bare" else "DEC()"
    fn = _build(shape, dec, "out", "return out", {"DEC": getattr(wt, name)})
    result = _run(shape, fn, value)
    assert ([1, 2] if shape == "generator" else value) == result
    assert [expected] == memory.outputs
    assert [e.kind for e in memory.events] == ["step_started", "output", "step_finished"]


def test_implicit_step_is_named_after_the_qualified_name(memory: MemoryBackend) -> None:
    """A bare decorated call outside any step opens a step named after the function's qualname."""

    class Loader:
        @wt.consumes_dataset
        def load(self, dataset_id: int) -> None:
            pass

    Loader().load(3)
    assert {"test_implicit_step_is_named_after_the_qualified_name.<locals>.Loader.load"} == {
        e.step.name for e in memory.events
    }


def test_source_path_and_callable(memory: MemoryBackend) -> None:
    """A source can be a path into a parameter or a callable receiving the bound arguments."""

    class Cfg:
        project_id = 42
        datasets = ({"id": 1}, {"id": 2})

    @wt.consumes_project("cfg.project_id")
    @wt.consumes_dataset("cfg.datasets.1")
    @wt.consumes_file(lambda args: f"/ckpt/{args['name']}.pt", model_weight=True)
    def train(cfg: Cfg, name: str = "yolo") -> None:
        pass

    train(Cfg())
    assert [Project(id=42), Dataset(id=2), File(path="/ckpt/yolo.pt", model_weight=True)] == memory.inputs


def test_produces_path_into_result_and_arg(memory: MemoryBackend) -> None:
    """produces_* take a path into the return value, or arg= read after the call."""

    @wt.produces_project("project.id")
    @wt.produces_folder(arg="out_dir")
    def export(out_dir: str) -> dict[str, Any]:
        return {"project": type("Info", (), {"id": 9})()}

    export("/exports/run1")
    assert [Project(id=9), Folder(path="/exports/run1")] == memory.outputs


def test_produces_index_path_into_a_tuple(memory: MemoryBackend) -> None:
    """A produces_* path may start with an index into the returned tuple."""

    @wt.produces_project("0")
    @wt.produces_file("1.path")
    def export() -> tuple[int, dict[str, str]]:
        return 5, {"path": "/a.zip"}

    export()
    assert [Project(id=5), File(path="/a.zip")] == memory.outputs


def test_auto_detection_by_annotation(memory: MemoryBackend) -> None:
    """With no matching name, a parameter annotated with the node or SDK info type is found."""

    class ProjectInfo:
        def __init__(self, id: int) -> None:
            self.id = id

    @wt.consumes_project
    def run(src: ProjectInfo, epochs: int = 1) -> None:
        pass

    @wt.consumes_project
    def run2(src: list[ProjectInfo]) -> None:
        pass

    run(ProjectInfo(4))
    run2([ProjectInfo(5), ProjectInfo(6)])
    assert [Project(id=4), Project(id=5), Project(id=6)] == memory.inputs


def test_auto_detection_by_a_typing_form_of_the_annotation(memory: MemoryBackend) -> None:
    """Annotations evaluated at definition (no ``from __future__ import annotations``), in typing forms."""

    def load(x, y=None):  # type: ignore[no-untyped-def]
        pass

    def save(x, y=None):  # type: ignore[no-untyped-def]
        pass

    load.__annotations__ = {"x": Optional[Dataset], "y": int}
    save.__annotations__ = {"x": list[File], "y": Union[int, None]}
    wt.consumes_dataset(load)(7)
    wt.consumes_file(save)(["/a.bin"])
    assert [Dataset(id=7), File(path="/a.bin")] == memory.inputs


def test_plural_parameter_gives_one_node_per_item(memory: MemoryBackend) -> None:
    """A plural parameter (a list of ids) records one input per item."""

    @wt.consumes_dataset
    def merge(dataset_ids: list[int]) -> None:
        pass

    merge([1, 2, 3])
    assert [Dataset(id=1), Dataset(id=2), Dataset(id=3)] == memory.inputs


def test_stacked_decorators_share_one_step(memory: MemoryBackend) -> None:
    """Several decorators on one function give one step with all its inputs and outputs, in order."""

    @wt.consumes_project
    @wt.consumes_dataset
    @wt.produces_file(model_weight=True)
    @wt.produces_app
    def train(project: int, dataset: int) -> str:
        return "/w/best.pt"

    train(1, 2)
    assert len({e.step.run_id for e in memory.events}) == 1
    assert [
        e.kind for e in memory.events
    ] == ["step_started", "input", "input", "output", "output", "step_finished"]
    assert [Project(id=1), Dataset(id=2)] == memory.inputs
    assert [File(path="/w/best.pt", model_weight=True), App()] == memory.outputs


def test_decorator_under_workflow_step_decorator_shares_its_step(memory: MemoryBackend) -> None:
    """@workflow_step on top of node decorators makes one step with the given name."""

    @wt.workflow_step("training")
    @wt.consumes_project
    def train(project: int) -> None:
        pass

    @wt.consumes_project
    @wt.workflow_step("training2")
    def train2(project: int) -> None:
        pass

    train(1)
    train2(2)
    assert [e.step.name for e in memory.events if e.kind == "input"] == ["training", "training2"]
    assert len({e.step.run_id for e in memory.events}) == 2


def test_inputs_before_the_call_outputs_only_on_return(memory: MemoryBackend) -> None:
    """A failing call still records what it read, records no output, and the step is failed."""
    seen: list[int] = []

    @wt.consumes_project
    @wt.produces_dataset
    def convert(project: int) -> int:
        seen.append(len(memory.inputs))
        raise ValueError("bad labels")

    with pytest.raises(ValueError, match="bad labels"):
        convert(1)
    assert seen == [1]
    assert memory.outputs == []
    assert (
        memory.events[-1].status, memory.events[-1].error.type, memory.events[-1].error.message  # type: ignore[union-attr]
    ) == ("failed", "ValueError", "bad labels")


def test_exception_passes_through_unchanged(memory: MemoryBackend) -> None:
    """The user's exception object is re-raised as is."""
    error = KeyError("x")

    @wt.consumes_project
    def f(project: int) -> None:
        raise error

    with pytest.raises(KeyError) as info:
        f(1)
    assert info.value is error


def test_return_value_passes_through_unchanged(memory: MemoryBackend) -> None:
    """The user's return value is the very same object."""
    sentinel = object()

    @wt.produces_dataset(lambda r: 1)
    def f() -> object:
        return sentinel

    assert f() is sentinel


def test_when_predicate_skips_emission(memory: MemoryBackend) -> None:
    """when= receives the bound arguments (defaults applied) and skips the node when false."""

    @wt.consumes_project(when=lambda a: a["track"])
    def f(project: int, track: bool = True) -> None:
        pass

    f(1)
    f(2, track=False)
    assert [Project(id=1)] == memory.inputs


def test_meta_is_attached(memory: MemoryBackend) -> None:
    """meta= reaches the event in the wire form."""
    meta = wt.WorkflowMeta(relation_settings=wt.WorkflowSettings(title="Checkpoints"))

    @wt.produces_folder(meta=meta)
    def save() -> str:
        return "/ckpt"

    save()
    assert memory.events[1].meta == {"customRelationSettings": {"title": "<h4>Checkpoints</h4>"}}


def test_signature_and_metadata_are_preserved() -> None:
    """Decorated functions keep their name, docstring and signature."""
    import inspect

    @wt.consumes_project
    def train(project: int, epochs: int = 3) -> str:
        """Train."""
        return ""

    assert (train.__name__, train.__doc__) == ("train", "Train.")
    assert list(inspect.signature(train).parameters) == ["project", "epochs"]
    assert inspect.iscoroutinefunction(wt.consumes_project(_async_sample))


async def _async_sample(project: int) -> None:
    pass


def test_named_callable_source_by_keyword(memory: MemoryBackend) -> None:
    """A named function as source is given with source= (a positional one would be decorated)."""

    def pick(args: dict[str, Any]) -> int:
        return int(args["cfg"]["pid"])

    @wt.consumes_project(source=pick)
    def f(cfg: dict[str, Any]) -> None:
        pass

    f({"pid": 5})
    assert [Project(id=5)] == memory.inputs


class TestDecorationErrors:
    """Wrong use is refused at decoration time with a TypeError naming the function and parameter."""

    def test_unknown_parameter_name(self) -> None:
        """A named parameter missing from the signature."""
        with pytest.raises(TypeError, match=r"train\(cfg, epochs\).*'src'.*parameters: cfg, epochs"):
            @wt.consumes_project("src")
            def train(cfg: Any, epochs: int) -> None:
                pass

    def test_nothing_found_by_auto_detection(self) -> None:
        """No parameter matches the kind's names or annotations."""
        with pytest.raises(TypeError, match=r"cannot find the project parameter of .*train\(cfg, epochs\)"):
            @wt.consumes_project
            def train(cfg: Any, epochs: int) -> None:
                pass

    def test_ambiguous_auto_detection(self) -> None:
        """Two parameters match."""
        with pytest.raises(TypeError, match=r"ambiguous project parameter .*project, project_id"):
            @wt.consumes_project
            def merge(project: int, project_id: int) -> None:
                pass

    def test_arg_on_consumes(self) -> None:
        """arg= belongs to produces_* only."""
        with pytest.raises(TypeError, match=r"consumes_project\(\) got unexpected option\(s\) arg"):
            wt.consumes_project(arg="x")

    def test_unknown_keyword(self) -> None:
        """A misspelt option names the decorator and its valid options."""
        with pytest.raises(TypeError, match=r"consumes_dataset\(\).*model_weight.*options are: meta, source, when"):
            wt.consumes_dataset(model_weight=True)

    def test_arg_naming_a_missing_parameter(self) -> None:
        """produces_*(arg=) must name a parameter."""
        with pytest.raises(TypeError, match="'out_dir'"):
            @wt.produces_folder(arg="out_dir")
            def save(path: str) -> None:
                pass

    def test_version_only_on_consumes_project(self) -> None:
        """version= is an option of consumes_project alone."""
        with pytest.raises(TypeError, match="version"):
            wt.consumes_dataset(version=True)

    def test_bad_source_type(self) -> None:
        """A source that is neither a str nor a callable."""
        with pytest.raises(TypeError, match="source"):
            wt.consumes_project(3)  # type: ignore[call-overload]

    def test_errors_are_decoration_errors(self) -> None:
        """They are WorkflowTraceError subclasses too."""
        with pytest.raises(wt.DecorationError):
            wt.consumes_project(arg="x")


@pytest.mark.internal_errors
def test_unresolvable_path_is_contained(memory: MemoryBackend, caplog: pytest.LogCaptureFixture,
                                        swallowed: list[BaseException]) -> None:
    """A path that does not resolve at call time is logged at WARNING; the call goes on."""

    @wt.consumes_project("cfg.project.id")
    def train(cfg: dict[str, Any]) -> str:
        return "done"

    assert train({"other": 1}) == "done"
    assert memory.inputs == []
    assert "cfg.project.id" not in caplog.text or "project" in caplog.text
    assert any(r.levelname == "WARNING" and "cannot read 'project'" in r.getMessage() for r in caplog.records)
    assert len(swallowed) == 1


@pytest.mark.internal_errors
def test_a_value_that_is_no_node_skips_only_its_own_decorator(memory: MemoryBackend, caplog: pytest.LogCaptureFixture,
                                                                swallowed: list[BaseException]) -> None:
    """An int where a folder (named by a path) is read: that decorator logs a WARNING naming itself, the other
    decorators of the call still record, in a step and outside one; in strict mode the call raises."""

    @wt.consumes_project
    @wt.consumes_folder
    @wt.produces_file
    def export(project_id: int, folder: Any) -> str:
        return "/out/a.tar"

    assert export(3, 42) == "/out/a.tar"
    with wt.workflow_step("loop"):
        assert export(4, 42) == "/out/a.tar"
    assert [(n.kind, n.id) for n in memory.inputs] == [("project", 3), ("project", 4)]
    assert [n.path for n in memory.outputs] == ["/out/a.tar", "/out/a.tar"]
    assert [type(e) for e in swallowed] == [wt.NodeCoercionError, wt.NodeCoercionError]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("@consumes_folder" in m and "named by a path" in m for m in warnings)
    wt.configure(strict=True)
    with pytest.raises(wt.NodeCoercionError, match="named by a path"):
        export(5, 42)


def test_unresolvable_path_raises_in_strict_mode(memory: MemoryBackend) -> None:
    """In strict mode the same failure raises a WorkflowTraceError."""
    wt.configure(strict=True)

    @wt.consumes_project("cfg.project")
    def train(cfg: dict[str, Any]) -> None:
        pass

    with pytest.raises(wt.ExtractionError, match="project"):
        train({})


# -- one-shot iterators: read for the nodes, and still every item for the user's code -------------------


@pytest.mark.parametrize("in_step", [False, True])
def test_a_generator_argument_is_recorded_and_still_reaches_the_function_whole(
    memory: MemoryBackend, in_step: bool
) -> None:
    """A generator (or map()) passed to a parameter a decorator reads gives one node per item, and the
    function still gets every item (it used to get it used up: an empty list, or StopIteration)."""

    @wt.consumes_dataset
    def merge(dataset_ids: Any, tag: str = "") -> list[int]:
        return list(dataset_ids)

    @wt.consumes_dataset
    def first(dataset_ids: Any) -> int:
        return int(next(dataset_ids))

    with wt.workflow_step("s") if in_step else contextlib.nullcontext():
        assert merge(i for i in [1, 2, 3]) == [1, 2, 3]
        assert merge(dataset_ids=map(int, ["4", "5"]), tag="kw") == [4, 5]
        assert first(iter([6, 7])) == 6
        assert merge(i for i in [1, 2, 3]) == [1, 2, 3]  # in a step, recorded already: still whole
    again = [] if in_step else [1, 2, 3]  # outside a step each call is its own run
    assert [Dataset(id=i) for i in [*range(1, 8), *again]] == memory.inputs


@pytest.mark.parametrize("in_step", [False, True])
def test_a_returned_generator_is_recorded_and_reaches_the_caller_whole(memory: MemoryBackend, in_step: bool) -> None:
    """A produces_* reading a returned generator records one node per item; the caller gets every item."""

    @wt.produces_dataset
    def create(n: int) -> Any:
        return (10 + i for i in range(n))

    with wt.workflow_step("s") if in_step else contextlib.nullcontext():
        assert list(create(2)) == [10, 11]
        assert list(create(2)) == [10, 11]  # the same nodes again (nothing new to record): still whole
        assert next(create(3)) == 10
    ids = [10, 11, 12] if in_step else [10, 11, 10, 11, 10, 11, 12]  # outside a step each call is its own run
    assert [Dataset(id=i) for i in ids] == memory.outputs


def test_a_generator_argument_of_an_async_function_reaches_it_whole(memory: MemoryBackend) -> None:
    @wt.consumes_dataset
    @wt.produces_dataset
    async def copy(dataset_ids: Any) -> Any:
        return (i + 100 for i in dataset_ids)

    assert list(asyncio.run(copy(i for i in [1, 2]))) == [101, 102]
    assert [Dataset(id=1), Dataset(id=2)] == memory.inputs
    assert [Dataset(id=101), Dataset(id=102)] == memory.outputs


def test_an_error_raised_while_a_returned_generator_is_read_is_the_calls_own(memory: MemoryBackend) -> None:
    """The generator is read when the function returns: what it raises then is raised from the call, unchanged,
    and the run is recorded as failed (as if the function had raised it)."""
    boom = ValueError("boom")

    def items() -> Any:
        yield 1
        raise boom

    @wt.consumes_dataset
    def merge(dataset_ids: Any) -> list[int]:
        return list(dataset_ids)

    @wt.produces_dataset
    def create() -> Any:
        return items()

    with pytest.raises(ValueError) as raised:
        create()
    assert raised.value is boom
    with pytest.raises(ValueError) as raised:
        merge(items())
    assert raised.value is boom
    assert [e.status for e in memory.events if e.kind == "step_finished"] == ["failed"]
    assert memory.outputs == []


def test_an_open_file_is_its_path_and_is_not_read(memory: MemoryBackend, tmp_path: Any) -> None:
    """An open file passed to a file parameter is the file at its path (it used to be iterated: one node per
    line, and the function found it read to its end)."""
    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog\n")

    @wt.consumes_file
    def read(file: Any) -> str:
        return str(file.read())

    with open(path) as handle:
        assert read(handle) == "cat\ndog\n"
    assert [File(path=str(path))] == memory.inputs
