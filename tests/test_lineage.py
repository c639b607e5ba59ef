"""Issue #13: lineage as a user sees it — real store files, the real CLI in a subprocess, real threads.

Each test runs scripts the way a user does (``python script.py`` in a folder, no configuration but what the
script says) and asserts on what the user can see: the rows of ``workflow_trace.graph.load_graph``, the
JSON export, and the CLI's output and exit code. No timed assertions.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from _support import (
    child_env,
    cli,
    export_json,
    json_tasks,
    make_event,
    run_script,
    snapshot,
    table,
    write_script,
)

import workflow_trace as wt
from workflow_trace._events import ErrorInfo, StepRef, new_run_id
from workflow_trace._nodes import File, Project
from workflow_trace.backends.sqlite import MIGRATIONS, SCHEMA_VERSION
from workflow_trace.graph import Graph, load_graph

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="needs the git binary")


def recorded(script: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run ``script`` and require a clean exit (its stderr in the failure message)."""
    done = run_script(script, *args, cwd=cwd, env=env)
    assert (done.returncode, done.stderr) == (0, ""), done.stdout


def store_of(folder: Path) -> Path:
    """The default store of a project folder."""
    return folder / ".workflow_trace" / "workflow.db"


def task_keys(graph: Graph) -> dict[str, str]:
    """Task name -> node key (``task:3``), for a graph whose task names are unique."""
    return {n.label: n.key for n in graph.tasks}


def stdout_lines(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    """The lines a CLI process printed."""
    return done.stdout.decode().splitlines()


def error_line(done: subprocess.CompletedProcess[bytes]) -> tuple[int, list[str]]:
    """The exit code and the stderr lines of a CLI process."""
    return done.returncode, done.stderr.decode().splitlines()


# -- 1. reused paths: a node written again starts a new generation -------------------------------------------

REUSED = """
    from pathlib import Path
    import workflow_trace as wt

    wt.configure("sqlite")
    best = wt.File(path="checkpoints/best.pt")
    Path("checkpoints").mkdir(exist_ok=True)
    with wt.workflow_step("A") as step:
        Path("checkpoints/best.pt").write_text("weights of A")
        step.add_output(best)
    with wt.workflow_step("B") as step:
        step.add_input(best)
    with wt.workflow_step("C") as step:
        Path("checkpoints/best.pt").write_text("weights of C")
        step.add_output(best)
    with wt.workflow_step("D") as step:
        step.add_input(best)
"""


@pytest.fixture(scope="module")
def reused(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where A writes checkpoints/best.pt, B reads it, C writes it again and D reads it."""
    folder = tmp_path_factory.mktemp("reused")
    recorded(write_script(folder, "abcd.py", REUSED), cwd=folder)
    return folder


class TestReusedPaths:
    """One path, written twice: each reader's lineage is the writer of the generation it read."""

    def test_upstream_is_the_writer_before_the_read(self, reused: Path) -> None:
        """upstream(B) holds A and not C; upstream(D) holds C and not A."""
        graph = load_graph(store_of(reused))
        keys = task_keys(graph)
        up_b, up_d = graph.upstream(keys["B"]), graph.upstream(keys["D"])
        expected = ((True, False), (True, False))
        assert expected == ((keys["A"] in up_b.nodes, keys["C"] in up_b.nodes),
                            (keys["C"] in up_d.nodes, keys["A"] in up_d.nodes))

    def test_generations_and_edge_generations_in_json(self, reused: Path) -> None:
        """JSON v2: best.pt has generation 1 by A and 2 by C; each edge carries the generation it read or wrote."""
        doc = export_json(cwd=reused)
        ids = {name: f"task:{task['id']}" for name, task in json_tasks(doc).items()}
        best = f"file:{reused.resolve() / 'checkpoints' / 'best.pt'}"
        node = next(n for n in doc["nodes"] if n["id"] == best)
        names = {v: k for k, v in ids.items()}
        gens = [(g["generation"], names[f"task:{g['task_id']}"]) for g in node["generations"]]
        edges = sorted((names[e["target"] if e["relation"] == "input" else e["source"]], e["relation"],
                        e["generation"]) for e in doc["edges"])
        expected = (2, [(1, "A"), (2, "C")],
                    [("A", "output", 1), ("B", "input", 1), ("C", "output", 2), ("D", "input", 2)])
        assert expected == (doc["version"], gens, edges)

    def test_cli_lineage_up_of_b_mentions_only_a(self, reused: Path) -> None:
        """`workflow-trace lineage task:B --direction up` names A and never C (nor D)."""
        keys = task_keys(load_graph(store_of(reused)))
        done = cli("lineage", keys["B"], "--direction", "up", cwd=reused)
        text = done.stdout.decode()
        expected = (0, True, False, False)
        assert expected == (done.returncode, f"{keys['A']} A" in text, keys["C"] in text, keys["D"] in text)

    def test_show_names_the_writer_and_readers_of_each_generation(self, reused: Path) -> None:
        """`show`: A's output was used by B only, C's by D only; B's input is A's generation, D's is C's."""
        keys = task_keys(load_graph(store_of(reused)))
        lines = stdout_lines(cli("show", cwd=reused))
        best = f"file:{reused.resolve() / 'checkpoints' / 'best.pt'}"
        expected = [
            f"    -> {best} · gen 1, by {keys['A']}  (used by {keys['B']})",
            f"    <- {best} · gen 1, by {keys['A']}",
            f"    -> {best} · gen 2, by {keys['C']}  (used by {keys['D']})",
            f"    <- {best} · gen 2, by {keys['C']}",
        ]
        assert expected == [line for line in lines if best in line]


# -- 2. threads: work handed to threads inside a step records into that step ----------------------------------

THREADS = """
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path
    import workflow_trace as wt

    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    if sys.argv[1] == "configure-off":
        wt.configure("sqlite", threads=False)
    else:
        wt.configure("sqlite")
    Path("data").mkdir(exist_ok=True)
    files = []
    for i in range(40):
        Path(f"data/{i:02d}.txt").write_text(str(i))
        files.append(f"data/{i:02d}.txt")

    @wt.consumes_file("path")
    def load(path):
        return Path(path).read_text()

    @wt.workflow_step("pipeline")
    def pipeline():
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(load, files))

    def thread_in_a_step():
        with wt.workflow_step("main"):
            thread = threading.Thread(target=load, args=("data/00.txt",))
            thread.start()
            thread.join()

    assert pipeline() == [str(i) for i in range(40)]
    if len(sys.argv) > 2:
        thread_in_a_step()
"""


def _thread_runs(folder: Path, mode: str, *, plain_thread: bool = False,
                 env: dict[str, str] | None = None) -> list[tuple[str, int, int]]:
    """Run the threads script in ``folder``; per task: (name, runs, distinct inputs)."""
    args = [mode, "thread"] if plain_thread else [mode]
    recorded(write_script(folder, "threads.py", THREADS), *args, cwd=folder, env=env)
    tasks = [n["task"] for n in export_json(cwd=folder)["nodes"] if n["kind"] == "task"]
    return [(t["name"], len(t["runs"]), len({i for r in t["runs"] for i in r["inputs"]})) for t in tasks]


class TestThreads:
    """The step is carried into threads and thread pools, unless switched off."""

    def test_pool_inside_a_step_is_one_task_with_every_input(self, tmp_path: Path) -> None:
        """ThreadPoolExecutor(4).map(load, 40 files) inside @workflow_step("pipeline"): one task, one run, 40 inputs."""
        runs = _thread_runs(tmp_path, "on")
        run_inputs = [r["inputs"] for r in json_tasks(export_json(cwd=tmp_path))["pipeline"]["runs"]]
        data = tmp_path.resolve() / "data"
        expected = ([("pipeline", 1, 40)], [[f"file:{data / f'{i:02d}.txt'}" for i in range(40)]])
        assert expected == (runs, [sorted(r) for r in run_inputs])

    def test_plain_thread_records_into_the_step_that_started_it(self, tmp_path: Path) -> None:
        """A threading.Thread started inside a step: the loader's input is the step's input, no task of its own."""
        _thread_runs(tmp_path, "on", plain_thread=True)
        tasks = json_tasks(export_json(cwd=tmp_path))
        main = tasks["main"]
        expected = (["pipeline", "main"], [[f"file:{tmp_path.resolve() / 'data' / '00.txt'}"]])
        assert expected == (list(tasks), [r["inputs"] for r in main["runs"]])

    @pytest.mark.parametrize("how", ["configure", "environment"])
    def test_switched_off_each_call_is_a_run_of_the_loaders_task(self, how: str, tmp_path: Path) -> None:
        """Threads off: `load` is one task of 40 implicit runs, however many pool threads call it first at once."""
        if how == "configure":
            runs = _thread_runs(tmp_path, "configure-off")
        else:
            runs = _thread_runs(tmp_path, "on", env={"WORKFLOW_TRACE_THREADS": "0"})
        expected = [("pipeline", 1, 0), ("load", 40, 40)]
        assert expected == runs


# -- 3. loops: a decorated function called 10,000 times ----------------------------------------------------

LOOP = """
    from pathlib import Path
    import workflow_trace as wt

    wt.configure("sqlite")
    Path("samples").mkdir(exist_ok=True)
    for i in range(10):
        Path(f"samples/{i}.bin").write_bytes(bytes([i]))

    @wt.consumes_file("path")
    def load_sample(path):
        return Path(path).read_bytes()

    for i in range(10_000):
        load_sample(f"samples/{i % 10}.bin")
"""


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where load_sample was called 10,000 times on 10 files."""
    folder = tmp_path_factory.mktemp("loop")
    recorded(write_script(folder, "loop.py", LOOP), cwd=folder)
    return folder


class TestLoops:
    """10,000 calls of one decorated function: one task, 10,000 runs, one edge per file with its count."""

    def test_one_task_ten_thousand_runs_ten_edges(self, loop: Path) -> None:
        """JSON: one task (load_sample) with 10,000 runs; 10 input edges, count 1,000 each."""
        doc = export_json(cwd=loop)
        tasks = json_tasks(doc)
        samples = loop.resolve() / "samples"
        edges = sorted((e["source"], e["relation"], e["count"]) for e in doc["edges"])
        expected = (["load_sample"], 10_000, [(f"file:{samples / f'{i}.bin'}", "input", 1_000) for i in range(10)])
        assert expected == (list(tasks), len(tasks["load_sample"]["runs"]), edges)

    def test_show_folds_the_runs(self, loop: Path) -> None:
        """`show` prints one folded line for the 10,000 runs, not 10,000 lines."""
        lines = stdout_lines(cli("show", cwd=loop))
        runs = [line.strip() for line in lines if line.strip().startswith("run ")]
        expected = (["run load_sample ×10,000"], True)
        assert expected == (runs, len(lines) < 20)

    def test_tasks_shows_the_runs_column(self, loop: Path) -> None:
        """`tasks`: one row, 10,000 in the RUNS column, 10 inputs."""
        rows = table(cli("tasks", cwd=loop).stdout.decode())
        expected = [("load_sample", "10,000", "10", "0")]
        assert expected == [(r["NAME"], r["RUNS"], r["INPUTS"], r["OUTPUTS"]) for r in rows]


# -- 4. nested steps: child runs with params ---------------------------------------------------------------

NESTED = """
    import workflow_trace as wt

    wt.configure("sqlite")

    @wt.workflow_step(params={"epochs": 3, "api_key": "sk-live-0123456789"})
    def fit():
        pass

    with wt.workflow_step("train", params={"lr": 0.1, "token": "tok-abcdef"}) as train:
        train.log_params(batch=32, password="hunter2-secret")
        with wt.workflow_step("prepare", params={"size": 640}) as prepare:
            prepare.log_params(augment=True)
        fit()
"""

SECRETS = ("sk-live-0123456789", "tok-abcdef", "hunter2-secret")


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where a step with params ran a nested step and a decorated step inside it."""
    folder = tmp_path_factory.mktemp("nested")
    recorded(write_script(folder, "nested.py", NESTED), cwd=folder)
    return folder


class TestNestedSteps:
    """Nested steps are child runs of one task, each with its own params."""

    def test_child_runs_with_parent_and_params_in_json(self, nested: Path) -> None:
        """JSON v2 task.runs: train and its children prepare and fit, each with its params, secrets masked."""
        tasks = json_tasks(export_json(cwd=nested))
        runs = tasks["train"]["runs"]
        names = {r["run_id"]: r["name"] for r in runs}
        shown = [(r["name"], names.get(r["parent_run_id"]), r["params"]) for r in runs]
        expected = (["train"], [
            ("train", None, {"lr": 0.1, "token": "***", "batch": 32, "password": "***"}),
            ("prepare", "train", {"size": 640, "augment": True}),
            ("fit", "train", {"epochs": 3, "api_key": "***"}),
        ])
        assert expected == (list(tasks), shown)

    def test_secrets_are_nowhere_in_the_store_folder(self, nested: Path) -> None:
        """The masked values are in no file of .workflow_trace/ (store, WAL, journals)."""
        found = [(name, secret) for name, (data, _) in snapshot(nested / ".workflow_trace").items()
                 for secret in SECRETS if secret.encode() in data]
        expected: list[tuple[str, str]] = []
        assert expected == found

    def test_show_prints_the_run_tree_with_params(self, nested: Path) -> None:
        """`show` prints the runs as a tree (children indented under train) with their params, secrets masked."""
        lines = stdout_lines(cli("show", cwd=nested))
        runs = [re.sub(r"\] [\d.]+ (?:ms|s|min|h)\b", "]", line)  # durations vary
                for line in lines if line.strip().startswith("run ")]
        expected = [
            "    run train [ok]  params: lr=0.1, token=***, batch=32, password=***",
            "        run prepare [ok]  params: size=640, augment=true",
            "        run fit [ok]  params: epochs=3, api_key=***",
        ]
        assert expected == runs

    @pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), b"bytes"],
                             ids=["object", "set", "nan", "bytes"])
    def test_non_json_params_refused_at_construction(self, value: Any) -> None:
        """workflow_step(params=) and @workflow_step(params=) refuse a non-JSON value: TypeError naming it."""
        messages = []
        for make in (lambda: wt.workflow_step("train", params={"seed": value}),
                     lambda: wt.workflow_step(params={"seed": value})(fit_function)):
            with pytest.raises(TypeError) as caught:
                make()
            messages.append("param 'seed'" in str(caught.value))
        expected = [True, True]
        assert expected == messages


def fit_function() -> None:
    """A named function to decorate."""


# -- 5. no self-ancestry: what a task reads of its own writing is internal to it ---------------------------

SELF = """
    from pathlib import Path
    import workflow_trace as wt

    wt.configure("sqlite")
    raw, best = wt.File(path="raw.txt"), wt.File(path="best.pt")
    with wt.workflow_step("prep") as step:
        Path("raw.txt").write_text("raw")
        step.add_output(raw)
    with wt.workflow_step("train") as step:
        step.add_input(raw)
        with wt.workflow_step("epoch") as epoch:
            Path("best.pt").write_text("epoch 1")
            epoch.add_output(best)
        with wt.workflow_step("resume") as resume:        # reads its own checkpoint, writes it again
            resume.add_input(best)
            Path("best.pt").write_text("epoch 2")
            resume.add_output(best)
    with wt.workflow_step("eval") as step:
        step.add_input(best)
"""


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prep writes raw.txt; train reads it, writes best.pt, reads it back and writes it again; eval reads it."""
    folder = tmp_path_factory.mktemp("resumed")
    recorded(write_script(folder, "resume.py", SELF), cwd=folder)
    return folder


class TestNoSelfAncestry:
    """A task that reads what it wrote earlier is not its own ancestor."""

    def test_upstream_of_the_task_does_not_go_through_its_own_write(self, resumed: Path) -> None:
        """upstream(train): its inputs and prep; not one of train's own output edges."""
        graph = load_graph(store_of(resumed))
        keys = task_keys(graph)
        up = graph.upstream(keys["train"])
        tasks = sorted(n.label for n in up.tasks)
        own_writes = [e for e in up.edges if e.relation == "output" and e.task_key == keys["train"]]
        expected = (["prep", "train"], [])
        assert expected == (tasks, own_writes)

    def test_lineage_json_of_the_task(self, resumed: Path) -> None:
        """`lineage task:train --direction up --format json` holds train's reads and prep's write, no write of train."""
        keys = task_keys(load_graph(store_of(resumed)))
        done = cli("lineage", keys["train"], "--direction", "up", "--format", "json", cwd=resumed)
        doc = json.loads(done.stdout)
        folder = resumed.resolve()
        edges = sorted((e["source"], e["target"], e["generation"]) for e in doc["edges"])
        expected = sorted([
            (keys["prep"], f"file:{folder / 'raw.txt'}", 1),
            (f"file:{folder / 'raw.txt'}", keys["train"], 1),
            (f"file:{folder / 'best.pt'}", keys["train"], 1),
        ])
        assert (0, expected) == (done.returncode, edges)

    def test_text_lineage_does_not_list_the_task_above_itself(self, resumed: Path) -> None:
        """`lineage task:train --direction up`: prep is an ancestor, train never appears as one."""
        keys = task_keys(load_graph(store_of(resumed)))
        lines = stdout_lines(cli("lineage", keys["train"], "--direction", "up", cwd=resumed))
        ancestors = [line.strip().split(" [")[0] for line in lines[2:] if line.strip().startswith("<- task:")]
        expected = [f"<- {keys['prep']} prep"]
        assert expected == ancestors

    def test_downstream_reader_sees_the_task_once(self, resumed: Path) -> None:
        """upstream(eval): train (which wrote generation 2) and prep, each once in the text tree."""
        keys = task_keys(load_graph(store_of(resumed)))
        lines = stdout_lines(cli("lineage", keys["eval"], "--direction", "up", cwd=resumed))
        ancestors = [line.strip().split(" [")[0] for line in lines[2:] if line.strip().startswith("<- task:")]
        expected = [f"<- {keys['train']} train", f"<- {keys['prep']} prep"]
        assert expected == ancestors


# -- 6. reproduce: what a task ran and read, and whether it can be had again ----------------------------------

TRAIN = """
    import workflow_trace as wt

    wt.configure("sqlite")
    with wt.workflow_step("train", inputs=[wt.Project(path="proj")], version_inputs=True,
                          params={"lr": 0.1}) as step:
        step.add_input(wt.File(path="config.yaml"))
"""

PROJECT_FILES = {"img/a.txt": b"image a\n", "img/b.txt": b"image b\n", "ann.json": b'{"a": "cat"}\n'}


def files_of(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    """A folder where `python train.py --lr 0.1` versioned the project folder proj and read config.yaml."""
    for name, data in PROJECT_FILES.items():
        (tmp_path / "proj" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "proj" / name).write_bytes(data)
    (tmp_path / "config.yaml").write_text("lr: 0.1\n")
    recorded(write_script(tmp_path, "train.py", TRAIN), "--lr", "0.1", cwd=tmp_path)
    return tmp_path


def reproduce(folder: Path, *args: str) -> tuple[int, list[str]]:
    """`workflow-trace reproduce ARGS` in ``folder``: exit code and stdout lines (the varying python/host/pid
    line shown as ``python ...``)."""
    done = cli("reproduce", *args, cwd=folder)
    lines = [re.sub(r"^  python \S+ on .* \(pid \d+\)$", "  python ...", line) for line in stdout_lines(done)]
    return done.returncode, lines


class TestReproduce:
    """`workflow-trace reproduce TASK [--restore DIR]` on a task that read a local project version."""

    def test_report_of_an_unchanged_task(self, trained: Path) -> None:
        """Command, code version, params, and each input with its version and state: all unchanged."""
        folder = trained.resolve()
        command = shlex.join([sys.executable, "train.py", "--lr", "0.1"])  # as typed: it runs again
        expected = (0, [
            "task:1 train [ok]",
            f"  command: {command}",
            f"  in: {folder}",
            "  code: no git repository found for the script",
            "  python ...",
            "runs:",
            "  train [ok]  params: lr=0.1",
            "inputs (what it read):",
            f"  project:{folder / 'proj'} @v1: unchanged since the version (hash-checked)",
            f"  file:{folder / 'config.yaml'}: unchanged since it was read (size and modification time)",
            "to run it again:",
            f"  cd {folder}",
            "  workflow-trace reproduce task:1 --restore DIR   # the 1 local project version(s) it read",
            f"  {command}",
        ])
        assert expected == reproduce(trained, "task:1")

    def test_a_changed_project_file_and_a_changed_local_input(self, trained: Path) -> None:
        """An edited project file: changed since the version; an edited config: changed since it was read."""
        (trained / "proj" / "img" / "a.txt").write_bytes(b"image a, edited\n")
        (trained / "config.yaml").write_text("lr: 0.2 # edited\n")
        folder = trained.resolve()
        code, lines = reproduce(trained, "1")
        inputs = lines[lines.index("inputs (what it read):") + 1 : lines.index("to run it again:")]
        expected = (0, [
            f"  project:{folder / 'proj'} @v1: changed since the version: 1 file(s) differ (img/a.txt)",
            f"  file:{folder / 'config.yaml'}: changed since it was read (size 8 -> 17)",
        ])
        assert expected == (code, inputs)

    def test_restore_gives_back_the_versioned_bytes(self, trained: Path, tmp_path_factory: pytest.TempPathFactory
                                                    ) -> None:
        """After the project changed, `--restore DIR` writes DIR/proj byte-identical to what was versioned; exit 0."""
        (trained / "proj" / "img" / "a.txt").write_bytes(b"image a, edited\n")
        (trained / "proj" / "new.txt").write_bytes(b"added later\n")
        (trained / "proj" / "ann.json").unlink()
        target = tmp_path_factory.mktemp("restored")
        code, lines = reproduce(trained, "task:1", "--restore", str(target))
        expected = (0, f"restored project:{trained.resolve() / 'proj'} into {target / 'proj'}", PROJECT_FILES)
        assert expected == (code, lines[-1], files_of(target / "proj"))

    @pytest.mark.parametrize(("task", "message"), [
        ("task:99", "workflow-trace: error: no node task:99 in the store; closest: task:1"),
        ("99", "workflow-trace: error: no node task:99 in the store; closest: task:1"),
        ("train", "workflow-trace: error: name the task by its id: TASK or task:ID (got 'train')"),
    ])
    def test_unknown_task_is_one_line_and_exit_2(self, trained: Path, task: str, message: str) -> None:
        """A task id that does not exist (or is not an id): exit 2, one line on stderr, nothing on stdout."""
        done = cli("reproduce", task, cwd=trained)
        expected = (2, [message], b"")
        assert expected == (*error_line(done), done.stdout)


# -- 7. code version: the git commit and dirty flag of the script's repository ------------------------------

RUN = """
    import workflow_trace as wt

    wt.configure("sqlite")
    with wt.workflow_step("job"):
        pass
"""


def git(repo: Path, *args: str) -> str:
    """Run the git binary in ``repo`` with no user or system configuration; its stdout."""
    env = {**child_env(), "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo)}
    done = subprocess.run([GIT or "git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit holding run.py and README."""
    folder = tmp_path / "repo"
    write_script(folder, "run.py", RUN)
    (folder / "README").write_text("a project\n")
    git(folder, "init", "-q")
    git(folder, "add", "run.py", "README")
    git(folder, "commit", "-q", "-m", "first")
    return folder


@needs_git
class TestCodeVersion:
    """A local task records the commit of its script's repository and whether the work tree was dirty."""

    def test_clean_then_dirty(self, repo: Path) -> None:
        """git_commit is `git rev-parse HEAD`; git_dirty false, then true after editing a tracked file."""
        head = git(repo, "rev-parse", "HEAD")
        recorded(repo / "run.py", cwd=repo)
        (repo / "README").write_text("a project, edited\n")
        recorded(repo / "run.py", cwd=repo)
        tasks = [n["task"] for n in export_json(cwd=repo)["nodes"] if n["kind"] == "task"]
        expected = [(head, False), (head, True)]
        assert expected == [(t["git_commit"], t["git_dirty"]) for t in tasks]

    def test_reproduce_names_the_commit_and_the_dirty_tree(self, repo: Path) -> None:
        """`reproduce` says the commit, clean or with uncommitted changes, and how to check it out."""
        head = git(repo, "rev-parse", "HEAD")
        recorded(repo / "run.py", cwd=repo)
        (repo / "README").write_text("a project, edited\n")
        recorded(repo / "run.py", cwd=repo)
        reports = [reproduce(repo, f"task:{i}")[1] for i in (1, 2)]
        expected = [
            [f"  code: git commit {head} (clean)", f"  git checkout {head}"],
            [f"  code: git commit {head} (the work tree had uncommitted changes)", f"  git checkout {head}"],
        ]
        assert expected == [[line for line in r if "git" in line] for r in reports]

    def test_a_new_commit_is_recorded(self, repo: Path) -> None:
        """Commit the edit and run again: the new task has the new HEAD and a clean tree."""
        recorded(repo / "run.py", cwd=repo)
        (repo / "README").write_text("a project, edited\n")
        git(repo, "commit", "-q", "-am", "second")
        recorded(repo / "run.py", cwd=repo)
        tasks = [n["task"] for n in export_json(cwd=repo)["nodes"] if n["kind"] == "task"]
        expected = [(git(repo, "rev-parse", "HEAD~1"), False), (git(repo, "rev-parse", "HEAD"), False)]
        assert expected == [(t["git_commit"], t["git_dirty"]) for t in tasks]


def test_no_repository_gives_null(tmp_path: Path) -> None:
    """A script outside any git repository: git_commit and git_dirty are null, and `reproduce` says so."""
    recorded(write_script(tmp_path, "run.py", RUN), cwd=tmp_path)
    task = json_tasks(export_json(cwd=tmp_path))["job"]
    code, lines = reproduce(tmp_path, "1")
    expected = (None, None, 0, True)
    assert expected == (task["git_commit"], task["git_dirty"], code,
                        "  code: no git repository found for the script" in lines)


# -- 8. one node syntax in every command -----------------------------------------------------------------------

PIPELINE = """
    from pathlib import Path
    import workflow_trace as wt

    wt.configure("sqlite")
    with wt.workflow_step("train", inputs=[wt.Project(path="data/proj")], version_inputs=True) as step:
        Path("model.bin").write_bytes(b"weights")
        step.add_output(wt.File(path="model.bin", model_weight=True))
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where train read the project data/proj (recorded relative, versioned) and wrote model.bin; a
    subfolder sub/ to run the CLI from."""
    folder = tmp_path_factory.mktemp("workspace")
    (folder / "data" / "proj").mkdir(parents=True)
    (folder / "data" / "proj" / "a.txt").write_text("a\n")
    (folder / "sub").mkdir()
    recorded(write_script(folder, "pipeline.py", PIPELINE), cwd=folder)
    return folder


def in_workspace(workspace: Path, where: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The CLI run from ``where`` (``.``, ``sub`` or ``elsewhere``: a folder outside the workspace), on the
    workspace's store."""
    cwd = workspace / where if where != "elsewhere" else workspace.parent
    return cli(*args, cwd=cwd, env={"WORKFLOW_TRACE_DB": str(store_of(workspace))})


@pytest.fixture(scope="module")
def project_id(workspace: Path) -> str:
    """The local project id `versions list` prints for data/proj (``project:N`` in its first line)."""
    first = stdout_lines(in_workspace(workspace, ".", "versions", "list", "data/proj"))[0]
    found = re.search(r"\(project:(\d+)\)$", first)
    assert found is not None, first
    return found.group(1)


# The forms a user may type for the project from each folder: as recorded, against the current folder, the
# absolute path, the local id.
FORMS = {
    ".": ["project:data/proj", "project:./data/proj", "project:{abs}", "project:{id}"],
    "sub": ["project:data/proj", "project:../data/proj", "project:{abs}", "project:{id}"],
    "elsewhere": ["project:data/proj", "project:{abs}", "project:{id}"],
}
COMMANDS = {
    "show": ["show", "--scope", "{node}"],
    "tasks": ["tasks", "--scope", "{node}"],
    "lineage": ["lineage", "{node}"],
    "lineage-json": ["lineage", "{node}", "--direction", "down", "--format", "json"],
    "export": ["export", "--format", "json", "--scope", "{node}"],
    "versions": ["versions", "list", "{node}"],
}


class TestNodeSyntax:
    """Every command takes KIND:ID and KIND:PATH the same way, from any folder."""

    @pytest.mark.parametrize("command", list(COMMANDS))
    @pytest.mark.parametrize("where", list(FORMS))
    def test_every_form_names_the_same_project(self, workspace: Path, project_id: str, command: str,
                                               where: str) -> None:
        """Each form of the project: exit 0 and the output of its absolute path typed in the workspace."""
        values = {"abs": str(workspace.resolve() / "data" / "proj"), "id": project_id}

        def run(where_and_node: tuple[str, str]) -> tuple[int, bytes]:
            where, node = where_and_node
            done = in_workspace(workspace, where, *(a.format(node=node) for a in COMMANDS[command]))
            return done.returncode, done.stdout

        forms = [form.format(**values) for form in FORMS[where]]
        with ThreadPoolExecutor(4) as pool:  # independent processes: run them side by side
            reference, *outputs = pool.map(run, [(".", f"project:{values['abs']}"), *((where, f) for f in forms)])
        expected = dict.fromkeys(forms, reference)
        assert (0, expected) == (reference[0], dict(zip(forms, outputs, strict=True)))

    @pytest.mark.parametrize("where", list(FORMS))
    def test_versions_list_takes_a_bare_path(self, workspace: Path, where: str) -> None:
        """`versions list PATH` (no kind): the path as recorded, from any folder, lists the same versions."""
        reference = in_workspace(workspace, ".", "versions", "list", "data/proj")
        again = in_workspace(workspace, where, "versions", "list", "data/proj")
        expected = (0, reference.stdout)
        assert expected == (again.returncode, again.stdout)

    @pytest.mark.parametrize("form", ["task:1", "1"])
    def test_reproduce_takes_task_id_and_id(self, workspace: Path, form: str) -> None:
        """`reproduce task:ID` and `reproduce ID` print the same report."""
        reference = in_workspace(workspace, ".", "reproduce", "task:1")
        again = in_workspace(workspace, "sub", "reproduce", form)
        expected = (0, reference.stdout)
        assert expected == (again.returncode, again.stdout)

    @pytest.mark.parametrize("command", list(COMMANDS))
    def test_unknown_node_is_one_line_naming_the_closest(self, workspace: Path, command: str) -> None:
        """A project that is not recorded: exit 2 and one line on stderr naming the closest known project."""
        done = in_workspace(workspace, "sub", *(a.format(node="project:data/prj") for a in COMMANDS[command]))
        closest = f"project:{workspace.resolve() / 'data' / 'proj'}"
        expected = (2, [f"workflow-trace: error: no node project:data/prj in the store; closest: {closest}"])
        assert expected == error_line(done)

    def test_unknown_file_names_the_closest_file(self, workspace: Path) -> None:
        """`lineage file:model.pt` (a typo): the closest recorded file is named."""
        done = in_workspace(workspace, ".", "lineage", "file:model.pt")
        closest = f"file:{workspace.resolve() / 'model.bin'}"
        expected = (2, [f"workflow-trace: error: no node file:model.pt in the store; closest: {closest}"])
        assert expected == error_line(done)


# -- 9. store discovery: the nearest .workflow_trace/ upwards, within the work tree and the home folder ----

WHERE = """
    import sys
    import workflow_trace as wt

    with wt.workflow_step(sys.argv[1]):
        pass
    wt.flush()
    print(wt.get_backend().path)
"""


def discover(script: Path, name: str, cwd: Path, home: Path) -> str:
    """Run the discovery script (nothing configured, HOME=home) in ``cwd``; the store it used."""
    done = run_script(script, name, cwd=cwd, env={"HOME": str(home)})
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    return done.stdout.strip()


@needs_git
class TestStoreDiscovery:
    """With no WORKFLOW_TRACE_DB, scripts and the CLI find the project's store as git finds .git."""

    def test_subfolder_finds_the_store_of_the_project_root(self, tmp_path: Path) -> None:
        """The root's script creates the store; a subfolder's script and CLI use it; `show` names it."""
        home = tmp_path / "home"
        root = home / "proj"
        (root / "src" / "deep").mkdir(parents=True)
        git(root, "init", "-q")
        script = write_script(root, "where.py", WHERE)
        store = str(store_of(root))
        used = [discover(script, "from-root", root, home), discover(script, "from-sub", root / "src" / "deep", home)]
        shown = stdout_lines(cli("show", cwd=root / "src" / "deep", env={"HOME": str(home)}))
        names = [r["NAME"] for r in table(cli("tasks", cwd=root / "src", env={"HOME": str(home)}).stdout.decode())]
        expected = ([store, store], f"store: {store}", ["from-root", "from-sub"], [".git", ".workflow_trace",
                                                                                    "src", "where.py"])
        assert expected == (used, shown[1], names, sorted(p.name for p in root.iterdir()))

    def test_never_above_the_git_work_tree(self, tmp_path: Path) -> None:
        """A store in $HOME above a repository is not used from inside the repository."""
        home = tmp_path / "home"
        script = write_script(tmp_path / "scripts", "where.py", WHERE)
        home.mkdir()
        decoy = discover(script, "in-home", home, home)
        inner = home / "repo" / "sub"
        inner.mkdir(parents=True)
        git(home / "repo", "init", "-q")
        missing = cli("show", cwd=inner, env={"HOME": str(home)})
        used = discover(script, "in-repo", inner, home)
        expected = (
            (2, [f"workflow-trace: error: no lineage store at {store_of(inner)} (run a pipeline first, or pass "
                 "--db / set WORKFLOW_TRACE_DB)"]),
            str(store_of(home)), str(store_of(inner)), ["in-home"],
        )
        assert expected == (error_line(missing), decoy, used,
                            [t.label for t in load_graph(store_of(home)).tasks])

    def test_never_above_the_home_folder(self, tmp_path: Path) -> None:
        """A store above $HOME is not used from a folder inside it (not a repository)."""
        home = tmp_path / "home"
        work = home / "work" / "sub"
        work.mkdir(parents=True)
        script = write_script(tmp_path / "scripts", "where.py", WHERE)
        decoy = discover(script, "above-home", tmp_path, tmp_path)  # its own HOME: tmp_path
        missing = cli("show", cwd=work, env={"HOME": str(home)})
        used = discover(script, "in-home", work, home)
        expected = (str(store_of(tmp_path)), 2, str(store_of(work)), ["above-home"])
        assert expected == (decoy, missing.returncode, used, [t.label for t in load_graph(store_of(tmp_path)).tasks])


# -- 10. migration: a store written by 0.1.0 (schema version 1) ---------------------------------------------

V1_CARD = {"customRelationSettings": {"title": "<h4>Best weights</h4>"}}


def build_version_1_store(path: Path, weights: str) -> None:
    """A store as workflow_trace 0.1.0 wrote it, by hand: the tables of MIGRATIONS[0] only, WAL mode,
    user_version 1, events with the Event JSON bodies of 0.1.0 (no params, no cwd) and the rows it derived.

    Task 1 "prep" (a root run and a nested one) read project 42 and wrote the weights with a card; task 2
    "train" read them and version 7 (v2) of project 42, and failed.
    """
    prep = StepRef(run_id=new_run_id(), name="prep")
    inner = StepRef(run_id=new_run_id(), name="inner", parent_run_id=prep.run_id)
    train = StepRef(run_id=new_run_id(), name="train")
    weights_out, weights_in = File(path=weights, model_weight=True), File(path=weights)
    events = [
        make_event("step_started", 1, prep),
        make_event("input", 1, prep, Project(id=42)),
        make_event("output", 1, prep, weights_out, meta=V1_CARD),
        make_event("step_started", 1, inner),
        make_event("step_finished", 1, inner, status="ok"),
        make_event("step_finished", 1, prep, status="ok"),
        make_event("step_started", 2, train),
        make_event("input", 2, train, weights_in),
        make_event("input", 2, train, Project(id=42, version_id=7, version_num=2)),
        make_event("step_finished", 2, train, status="failed", error=ErrorInfo(type="RuntimeError", message="boom")),
    ]
    when = [e.time.isoformat() for e in events]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO events (seq, event_id, kind, time, task_id, run_id, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(i + 1, e.event_id, e.kind, when[i], e.task_id, e.step.run_id,
          e.model_dump_json(exclude={"params", "cwd"})) for i, e in enumerate(events)],
    )
    conn.executemany(
        "INSERT INTO tasks (id, name, origin, started_at, finished_at, status, error_type, error_message, pid, "
        "host, command, node_meta, node_meta_time) VALUES (?, ?, 'local', ?, ?, ?, ?, ?, 4242, 'gpu-1', ?, NULL, "
        "NULL)",
        [(1, "prep", when[0], when[5], "ok", None, None, "prep.py"),
         (2, "train", when[6], when[9], "failed", "RuntimeError", "boom", "train.py --lr 0.1")],
    )
    conn.executemany(
        "INSERT INTO steps (run_id, task_id, name, parent_run_id, root, started_at, finished_at, status, "
        "error_type, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(prep.run_id, 1, "prep", None, 1, when[0], when[5], "ok", None, None),
         (inner.run_id, 1, "inner", prep.run_id, 0, when[3], when[4], "ok", None, None),
         (train.run_id, 2, "train", None, 1, when[6], when[9], "failed", "RuntimeError", "boom")],
    )
    conn.executemany(
        "INSERT INTO nodes (id, identity, kind, ref, ext_id, path, version_id, version_num, model_weight)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(1, '["project",42,null,null,null]', "project", "project:42", 42, None, None, None, 0),
         (2, json.dumps(["file", None, weights, None, None], separators=(",", ":")), "file", f"file:{weights}",
          None, weights, None, None, 1),
         (3, '["project",42,null,7,2]', "project", "project:42", 42, None, 7, 2, 0)],
    )
    conn.executemany(
        "INSERT INTO edges (id, event_seq, direction, task_id, run_id, node_id, meta, time)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(1, 2, "input", 1, prep.run_id, 1, None, when[1]),
         (2, 3, "output", 1, prep.run_id, 2, json.dumps(V1_CARD), when[2]),
         (3, 8, "input", 2, train.run_id, 2, None, when[7]),
         (4, 9, "input", 2, train.run_id, 3, None, when[8])],
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA user_version = 1")
    conn.close()


def schema_of(path: Path) -> tuple[int, int]:
    """``(user_version, number of events)`` of a store, read without writing it."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return version, conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


EVAL = """
    import workflow_trace as wt

    with wt.workflow_step("eval") as step:
        step.add_input(wt.File(path=WEIGHTS))
"""


@pytest.fixture
def version_1(tmp_path: Path) -> tuple[Path, str]:
    """A version-1 store file and the path of the weights it recorded."""
    path = tmp_path / "old" / "workflow.db"
    path.parent.mkdir()
    weights = str(tmp_path / "models" / "best.pt")
    build_version_1_store(path, weights)
    return path, weights


class TestMigration:
    """A store written by 0.1.0 (schema version 1) is read as it is and migrated in place by a writer."""

    def test_reading_leaves_the_file_as_it_was_and_shows_everything(self, version_1: tuple[Path, str]) -> None:
        """Every reading command shows the version-1 store in full and leaves its bytes, mtime, schema."""
        path, weights = version_1
        before = (path.read_bytes(), path.stat().st_mtime_ns)
        runs = [cli(*args, "--db", str(path)) for args in (
            ["show"], ["tasks"], ["export", "--format", "json"], ["lineage", f"file:{weights}"], ["reproduce", "2"])]
        doc = json.loads(runs[2].stdout)
        tasks = [(t["id"], t["name"], t["status"], t["error"], [(r["name"], r["parent_run_id"] is not None)
                                                                for r in t["runs"]])
                 for t in (n["task"] for n in doc["nodes"] if n["kind"] == "task")]
        edges = [(e["source"], e["target"], e["generation"], e["version_num"], (e["card"] or {}).get("title"))
                 for e in doc["edges"]]
        failed = [line.split(", started")[0] for line in stdout_lines(runs[0]) if line.startswith("task:2 ")]
        expected = (
            [0] * 5,
            [(1, "prep", "ok", None, [("prep", False), ("inner", True)]),
             (2, "train", "failed", {"type": "RuntimeError", "message": "boom"}, [("train", False)])],
            [("project:42", "task:1", 1, None, None), ("task:1", f"file:{weights}", 1, None, "Best weights"),
             (f"file:{weights}", "task:2", 1, None, None), ("project:42", "task:2", 1, 2, None)],
            ["task:2 train [FAILED RuntimeError: boom]"],
            before, (1, 10),
        )
        assert expected == ([r.returncode for r in runs], tasks, edges, failed,
                            (path.read_bytes(), path.stat().st_mtime_ns), schema_of(path))

    def test_a_writer_migrates_in_place_without_loss(self, version_1: tuple[Path, str], tmp_path: Path) -> None:
        """A writer migrates the version-1 file in place: same tasks, edges, events; new ones appended."""
        path, weights = version_1
        old = export_json("--db", str(path))
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        old_events = conn.execute("SELECT seq, event_id, body FROM events ORDER BY seq").fetchall()
        conn.close()
        script = write_script(tmp_path, "eval.py", EVAL.replace("WEIGHTS", repr(weights)))
        recorded(script, cwd=tmp_path, env={"WORKFLOW_TRACE_DB": str(path)})
        new = export_json("--db", str(path))
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        events = conn.execute("SELECT seq, event_id, body FROM events ORDER BY seq").fetchall()
        conn.close()
        old_tasks = [n for n in old["nodes"] if n["kind"] == "task"]
        kept_tasks = [n for n in new["nodes"] if n["kind"] == "task" and n["id"] in ("task:1", "task:2")]
        added = [(n["id"], n["task"]["name"], n["task"]["status"]) for n in new["nodes"]
                 if n["kind"] == "task" and n["id"] not in ("task:1", "task:2")]
        expected = (
            (SCHEMA_VERSION, 13), old_tasks, old["edges"], [("task:3", "eval", "ok")],
            [(f"file:{weights}", "task:3", 1)], old_events, True,
        )
        assert expected == (
            schema_of(path), kept_tasks, [e for e in new["edges"] if e["task_id"] in (1, 2)], added,
            [(e["source"], e["target"], e["generation"]) for e in new["edges"] if e["task_id"] == 3],
            events[:10], all(seq > 10 for seq, _, _ in events[10:]),
        )


def test_reproduce_writes_params_as_show_does() -> None:
    """`reproduce` and `show` write a run's params alike: JSON values, strings bare (`aug=true`, not `True`)."""
    from workflow_trace._reproduce import _runs
    from workflow_trace.graph import RunInfo

    run = RunInfo(run_id="r1", name="train", status="ok", params={"aug": True, "opt": "adam", "lr": 0.1, "x": None})
    assert ["  train [ok]  params: aug=true, opt=adam, lr=0.1, x=null"] == _runs((run,))
