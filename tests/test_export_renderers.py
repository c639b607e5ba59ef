"""Mermaid and DOT exports of real stores, checked by the real renderers when they are installed.

Mermaid: stock Mermaid draws at most 500 edges (more is an error) and 50,000 characters (more draws only
"Maximum text size in diagram exceeded"); past either the export folds, then cuts, and says so. The
render tests run `mmdc` (@mermaid-js/mermaid-cli, found on PATH or as $MMDC) with the system Chromium,
and `dot -Tsvg` (graphviz); each skips when its tool is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _browser import chromium_path
from _stores import ERROR_LINES, failing_store, pipeline_store

import workflow_trace as wt
from workflow_trace.graph import MERMAID_MAX_EDGES, MERMAID_MAX_TEXT, load_graph

EDGE = re.compile(r"^\s+n\d+ (?:-->|-\.->)(?:\|[^|]*\|)? n\d+$", re.M)
BOX = re.compile(r"^\s+n\d+(?:\[|\(|\{)", re.M)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 tasks of a four-task pipeline (some trains failed): about 2,000 edges."""
    return pipeline_store(tmp_path_factory.mktemp("pipeline") / "workflow.db", 1000)


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return failing_store(tmp_path_factory.mktemp("failing"))


@pytest.fixture(scope="module")
def distinct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """700 tasks of 700 names, each writing its own file and reading the one before: nothing folds."""
    db = tmp_path_factory.mktemp("distinct") / "workflow.db"
    wt.configure(f"sqlite:{db}")
    try:
        for i in range(700):
            before = [wt.File(path=f"/work/stage_{i - 1:04d}/out.bin")] if i else []
            with wt.workflow_step(f"stage_{i:04d}", inputs=before,
                                  outputs=[wt.File(path=f"/work/stage_{i:04d}/out.bin")]):
                pass
        wt.flush()
    finally:
        wt.reset()
    return db


# -- Mermaid --------------------------------------------------------------------------------------


def test_mermaid_of_a_small_store_is_the_whole_graph(failing: Path) -> None:
    """Under the limits every node and edge is written; model weights get the `model` class, the failed
    task the `failed` class and its error (its lines joined into one)."""
    graph = load_graph(failing)
    text = graph.to_mermaid()
    assert (len(graph.nodes), len(graph.edges)) == (len(BOX.findall(text)), len(EDGE.findall(text)))
    assert "%%" not in text
    weights = next(line for line in text.splitlines() if "best.pt<br/>" in line)
    assert weights.endswith(":::model")
    failed = next(line for line in text.splitlines() if "task:3 · failed" in line)
    assert failed.endswith(":::failed")
    assert f"RuntimeError: {ERROR_LINES[0]} {ERROR_LINES[1].split(' (')[0]}" in failed
    assert "\\x0a" not in text
    assert "classDef model fill:#ffedd5" in text


def test_mermaid_past_500_edges_folds_and_says_so(pipeline: Path) -> None:
    """~2,000 edges: tasks fold by name, data by their writers; the comment gives the counts."""
    graph = load_graph(pipeline)
    assert len(graph.edges) > MERMAID_MAX_EDGES
    text = graph.to_mermaid()
    assert len(EDGE.findall(text)) <= MERMAID_MAX_EDGES
    assert len(text) <= MERMAID_MAX_TEXT
    note = text.splitlines()[1]
    assert note.startswith("  %% folded for stock Mermaid (at most 500 edges, 50,000 characters): 1,000 tasks into 4 ")
    assert f"{len(graph.edges):,} edges into {len(EDGE.findall(text))}" in note
    lines = text.splitlines()
    train = next(line for line in lines if '["train ×250' in line)
    assert train.endswith(":::failed")
    assert "FloatingPointError: loss is NaN at step 0 loss is NaN at step 40" in train
    weights = next(line for line in lines if "model files" in line)
    assert weights.endswith(":::model")
    assert "/models/exp_…/best.pt" in weights


def test_mermaid_that_cannot_fold_keeps_the_newest_edges(distinct: Path) -> None:
    """700 different tasks in a chain do not fold: the newest edges that fit are kept, and said so."""
    graph = load_graph(distinct)
    text = graph.to_mermaid()
    edges = len(EDGE.findall(text))
    assert edges == MERMAID_MAX_EDGES
    assert len(text) <= MERMAID_MAX_TEXT
    assert f"  %% and of its {len(graph.edges):,} edges only the newest 500: the {len(graph.edges) - 500:,} oldest" \
        in text
    assert "stage_0699" in text
    assert "stage_0010<br/>" not in text


def test_mermaid_keeps_under_the_text_limit_with_long_labels(tmp_path: Path) -> None:
    """Few edges but long paths: the character limit alone makes it fold/cut, never overflow."""
    db = tmp_path / "long.db"
    wt.configure(f"sqlite:{db}")
    try:
        for i in range(300):
            with wt.workflow_step(f"job_{i}_" + "x" * 120, outputs=[wt.File(path=f"/{'deep/' * 30}{i}.bin")]):
                pass
        wt.flush()
    finally:
        wt.reset()
    text = load_graph(db).to_mermaid()
    assert len(text) <= MERMAID_MAX_TEXT
    assert "  %% " in text


def _mmdc() -> str:
    found = os.environ.get("MMDC") or shutil.which("mmdc")
    if not found:
        pytest.skip("mmdc is not installed (npm install @mermaid-js/mermaid-cli; or set $MMDC)")
    if chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def _render_mermaid(text: str, folder: Path, name: str) -> tuple[int, str]:
    """mmdc's exit code and the SVG (or its error output)."""
    config = folder / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": chromium_path(), "args": ["--no-sandbox", "--disable-gpu"]}))
    source, svg = folder / f"{name}.mmd", folder / f"{name}.svg"
    source.write_text(text, encoding="utf-8")
    done = subprocess.run([_mmdc(), "-q", "-p", str(config), "-i", str(source), "-o", str(svg)],
                          capture_output=True, text=True, timeout=180, check=False)
    return done.returncode, svg.read_text(encoding="utf-8") if done.returncode == 0 else done.stderr + done.stdout


@pytest.mark.parametrize("store", ["failing", "pipeline", "distinct"])
def test_stock_mermaid_renders_the_export(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Stock Mermaid (mmdc) draws every export: as many edges and nodes as it writes, no size error."""
    _mmdc()
    text = load_graph(request.getfixturevalue(store)).to_mermaid()
    code, svg = _render_mermaid(text, tmp_path, store)
    assert 0 == code, svg
    assert "Maximum text size" not in svg
    assert len(EDGE.findall(text)) == len(re.findall(r'class="[^"]*flowchart-link', svg))
    assert len(BOX.findall(text)) == len(re.findall(r'<g class="node default', svg))


def test_stock_mermaid_refuses_the_unfolded_graph(pipeline: Path, tmp_path: Path) -> None:
    """The limit is real: the same graph written whole is refused by stock Mermaid."""
    _mmdc()
    code, output = _render_mermaid(load_graph(pipeline).to_mermaid(10**9, 10**9), tmp_path, "whole")
    assert code != 0 or "Maximum text size" in output
    assert "Edge limit exceeded" in output or "Maximum text size" in output


# -- DOT ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["failing", "pipeline"])
def test_dot_parses_with_graphviz(store: str, request: pytest.FixtureRequest) -> None:
    """`dot -Tsvg` reads the export without a warning and draws every node and edge."""
    if shutil.which("dot") is None:
        pytest.skip("graphviz is not installed (apt-get install graphviz)")
    graph = load_graph(request.getfixturevalue(store))
    done = subprocess.run(["dot", "-Tsvg"], input=graph.to_dot(), capture_output=True, text=True, timeout=300,
                          check=False)
    assert (0, "") == (done.returncode, done.stderr)
    assert len(graph.nodes) == done.stdout.count('class="node"')
    assert len(graph.edges) == done.stdout.count('class="edge"')


def test_folded_mermaid_keeps_an_edge_alone_between_a_fold_and_a_node(tmp_path: Path) -> None:
    """Two `train` runs fold into one task node; the project only one of them read stays a node of its own:
    the single edge between them is drawn to the fold (it named the unfolded task and the export crashed)."""
    wt.configure(f"sqlite:///{tmp_path / 'store.db'}")
    with wt.workflow_step("train", inputs=[wt.Project(id=1)], outputs=[wt.File(path="/m/a.pt")]):
        pass
    with wt.workflow_step("train", outputs=[wt.File(path="/m/b.pt")]):
        pass
    assert wt.flush(10)
    text = load_graph(tmp_path / "store.db").to_mermaid(max_edges=2)
    labels = dict(re.findall(r'^  (n\d+)[\[(/{>]+"([^<]*)<br/>', text, re.M))
    links = [(labels.get(a), labels.get(b)) for a, b in re.findall(r"^  (n\d+) -\.?->.*?(n\d+)$", text, re.M)]
    print(text)
    assert {("Project 1", "train ×2"), ("train ×2", "2 files")} == set(links)
