"""examples/quickstart.py runs as a new user would run it and leaves the expected lineage."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from _support import cli

from workflow_trace.graph import Graph, load_graph

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart.py"


def run_quickstart(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the quickstart in ``cwd`` with no workflow_trace or Supervisely configuration."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("WORKFLOW_TRACE_") and k not in ("SERVER_ADDRESS", "API_TOKEN", "TASK_ID",
                                                              "SUPERVISELY_TASK_ID")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(QUICKSTART)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )


def edges(graph: Graph, cwd: Path) -> set[tuple[str, str]]:
    """The graph's edges with the data paths made relative to ``cwd``."""
    prefix = str(cwd.resolve()) + os.sep
    return {(e.source.replace(prefix, ""), e.target.replace(prefix, "")) for e in graph.edges}


@dataclass
class Runs:
    """Two runs of the quickstart in one folder, and the graph after the first."""

    cwd: Path
    results: list[subprocess.CompletedProcess[str]]
    first_graph: Graph


@pytest.fixture(scope="module")
def ran_twice(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """The quickstart run twice in the same fresh folder."""
    cwd = tmp_path_factory.mktemp("quickstart")
    first = run_quickstart(cwd)
    graph = load_graph(cwd / ".workflow_trace" / "workflow.db")
    second = run_quickstart(cwd)
    return Runs(cwd, [first, second], graph)


def test_exits_cleanly(ran_twice: Runs) -> None:
    """Both runs exit 0 with nothing on stderr and point the user at `workflow-trace show`."""
    results = ran_twice.results
    expected = [(0, "", True), (0, "", True)]
    assert expected == [(r.returncode, r.stderr, "workflow-trace show" in r.stdout) for r in results]


def test_tasks(ran_twice: Runs) -> None:
    """One run records import, train and export; export's two calls are two runs of one task (the first
    failed on purpose), since implicit steps of one function share the process's task."""
    graph = ran_twice.first_graph
    tasks = [(t.key, t.label, t.task.status if t.task else None) for t in graph.tasks]
    runs = [r.status for r in graph.nodes["task:3"].task.runs]  # type: ignore[union-attr]
    expected = ([("task:1", "import_images", "ok"), ("task:2", "train", "ok"), ("task:3", "export", "failed")],
                ["failed", "ok"])
    assert expected == (tasks, runs)


def test_edges(ran_twice: Runs) -> None:
    """The lineage connects raw images -> project -> weights -> archive; the failed export read its inputs."""
    cwd = ran_twice.cwd
    graph = ran_twice.first_graph
    expected = {
        ("folder:quickstart_data/raw", "task:1"),
        ("task:1", "project:quickstart_data/project"),
        ("project:quickstart_data/project", "task:2"),
        ("task:2", "file:quickstart_data/model/best.json"),
        ("project:quickstart_data/project", "task:3"),
        ("file:quickstart_data/model/best.json", "task:3"),
        ("task:3", "file:quickstart_data/export/project.zip"),
    }
    assert expected == edges(graph, cwd)


def test_cards_and_weights(ran_twice: Runs) -> None:
    """The weights are marked as model weights and the archive has its card."""
    cwd = ran_twice.cwd
    graph = ran_twice.first_graph
    data = cwd.resolve() / "quickstart_data"
    weights = graph.nodes[f"file:{data / 'model' / 'best.json'}"]
    archive = graph.nodes[f"file:{data / 'export' / 'project.zip'}"]
    expected = (True, "Project archive", True)
    assert expected == (weights.model_weight, archive.label, (data / "export" / "project.zip").is_file())


def test_rerun_adds_tasks_not_nodes(ran_twice: Runs) -> None:
    """A second run records three new tasks on the same data nodes."""
    cwd = ran_twice.cwd
    graph = load_graph(cwd / ".workflow_trace" / "workflow.db")
    statuses = [t.task.status for t in graph.tasks if t.task]
    expected = (["ok", "ok", "failed"] * 2, 4)
    assert expected == (statuses, len(graph.nodes) - len(graph.tasks))


def test_rerun_lineage_follows_generations(ran_twice: Runs) -> None:
    """Run twice, best.json is one node with two generations: each export's upstream is its own run's train,
    never the other run's (a reused path does not go back in time)."""
    cwd = ran_twice.cwd
    graph = load_graph(cwd / ".workflow_trace" / "workflow.db")
    weights = f"file:{cwd.resolve() / 'quickstart_data' / 'model' / 'best.json'}"
    gens = [(g.generation, g.task_id) for g in graph.nodes[weights].generations]
    read = sorted((e.target, e.generation) for e in graph.edges if e.source == weights)
    first, second = graph.upstream("task:3"), graph.upstream("task:6")
    expected = ([(1, 2), (2, 5)], [("task:3", 1), ("task:6", 2)], (True, False), (True, False))
    assert expected == (gens, read, ("task:2" in first.nodes, "task:5" in first.nodes),
                        ("task:5" in second.nodes, "task:2" in second.nodes))
    lineage = cli("lineage", "task:3", "--direction", "up", cwd=cwd)
    text = lineage.stdout.decode()
    assert (0, True, False) == (lineage.returncode, "task:2 train" in text, "task:5" in text)


def test_training_reads_a_version(ran_twice: Runs) -> None:
    """train versions its input project: the graph shows v1, and the unchanged rerun reads v1 again."""
    cwd = ran_twice.cwd
    project = f"project:{cwd.resolve() / 'quickstart_data' / 'project'}"
    graph = load_graph(cwd / ".workflow_trace" / "workflow.db")
    read = [(e.target, e.version_num) for e in graph.edges if e.source == project and e.version_id is not None]
    expected = ([("task:2", 1), ("task:5", 1)], ((1, 1),), True)
    assert expected == (read, graph.nodes[project].versions, "@v1" in graph.to_text())


def test_restore_version_1_from_the_command_line(ran_twice: Runs) -> None:
    """`workflow-trace versions restore quickstart_data/project --version 1` gives the project's files back."""
    cwd = ran_twice.cwd
    listed = cli("versions", "list", "quickstart_data/project", cwd=cwd)
    result = cli("versions", "restore", "quickstart_data/project", "--version", "1", cwd=cwd)
    project = cwd / "quickstart_data" / "project"
    restored = Path(result.stdout.decode().strip())

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    expected = (0, 1, 0, project.parent / "project, from ver. 1", files(project))
    assert expected == (listed.returncode, sum(" v1 " in line for line in listed.stdout.decode().splitlines()),
                        result.returncode, restored, files(restored))


def test_rerun_show_names_each_generations_writer_and_readers(ran_twice: Runs) -> None:
    """After two runs `show` says each export read, and each train's weights fed, its own run's task."""
    cwd = ran_twice.cwd
    shown = cli("show", cwd=cwd)
    weights = f"file:{cwd.resolve() / 'quickstart_data' / 'model' / 'best.json'} [model weights]"
    expected = [
        f"    -> {weights} · gen 1, by task:2  (used by task:3)",
        f"    <- {weights} · gen 1, by task:2",
        f"    -> {weights} · gen 2, by task:5  (used by task:6)",
        f"    <- {weights} · gen 2, by task:5",
    ]
    assert (0, expected) == (shown.returncode, [line for line in shown.stdout.decode().splitlines() if weights in line])
