"""Real lineage stores for the viewer's end-to-end tests, screenshots and benchmark.

Every store here is written the way a user writes one: by running Python code that uses the public API
(``examples/quickstart.py`` itself, small scripts in a subprocess, or decorated calls in a loop), never by
building the JSON by hand. ``tests/_viewer_data.py`` keeps the synthetic graphs of the viewer's own unit
tests; these are the proof that the viewer works on what the store really holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

__all__ = [
    "ERROR_LAST_LINE",
    "ERROR_LINES",
    "FIT_PARAMS",
    "QUICKSTART",
    "add_run",
    "failing_store",
    "pipeline_store",
    "quickstart_store",
    "run_script",
    "script_env",
    "WEIGHTS_URL",
]

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart.py"

#: The long, multi-line error of the failed task of :func:`failing_store` (markup in it on purpose).
ERROR_LINES = [
    "evaluation stopped: CUDA out of memory at batch 17 of 40",
    "Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total capacity; 13.10 GiB already allocated)",
    *(f"  layer {i:02d}: activations {64 * (i + 1)} MiB, weights {3 * i + 1} MiB" for i in range(24)),
    "  the batch: images=(64, 3, 640, 640) targets=(1184, 6) </script><img src=x onerror=alert(1)>",
    "Hint: lower --batch-size, or set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True",
]
ERROR_LAST_LINE = "the end of the error: nothing was cut"
ERROR_LINES.append(ERROR_LAST_LINE)

#: The instance link on the card of the weights of :func:`failing_store` (relative to the instance).
WEIGHTS_URL = "/files/1/models/best.pt"

#: Params of the run ``fit`` in :func:`failing_store`.
FIT_PARAMS = {"lr": 0.01, "epochs": 3, "model": "yolov8n", "augment": {"flip": True, "mosaic": 0.5}}

_FAILING = '''
import sys
from pathlib import Path

import workflow_trace as wt

ROOT = Path(sys.argv[1]).resolve()
ERROR = {error!r}
FIT_PARAMS = {params!r}
# The weights were also uploaded to the instance: their card links there (a link relative to it).
UPLOADED = wt.WorkflowMeta(relation_settings=wt.WorkflowSettings(url={url!r}, url_title="Download"))


@wt.consumes_folder
@wt.produces_project
def prepare(folder: str) -> str:
    project = ROOT / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "ann.json").write_text("{{}}")
    return str(project)


def train(project: str) -> str:
    weights = ROOT / "models" / "best.pt"
    with wt.workflow_step("train", inputs=[wt.Project(path=project)], version_inputs=True) as step:
        with wt.workflow_step("fit", params=FIT_PARAMS):
            for epoch in range(3):
                with wt.workflow_step("epoch", params={{"epoch": epoch}}):
                    pass
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_text("weights")
        step.add_output(wt.File(path=str(weights), model_weight=True), meta=UPLOADED)
    return str(weights)


@wt.consumes_file("weights", model_weight=True)
def evaluate(weights: str, batch_size: int) -> None:
    with wt.workflow_step("evaluate.batches", params={{"batch_size": batch_size, "split": "val"}}):
        raise RuntimeError("\\n".join(ERROR))


wt.configure("sqlite")
raw = ROOT / "raw"
raw.mkdir(parents=True, exist_ok=True)
weights = train(prepare(str(raw)))
try:
    evaluate(weights, batch_size=64)
except RuntimeError:
    pass
wt.flush()
'''

_ADD_RUN = '''
import sys
from pathlib import Path

import workflow_trace as wt


@wt.consumes_file("weights", model_weight=True)
@wt.produces_file(model_weight=True)
def finetune(weights: str, out: str) -> str:
    Path(out).write_text("tuned")
    return out


wt.configure("sqlite")
with wt.workflow_step(sys.argv[3], params={"source": "a live test"}):
    finetune(sys.argv[1], sys.argv[2])
wt.flush()
'''

_PIPELINE = '''
import sys

import workflow_trace as wt

wt.configure("sqlite:" + sys.argv[1])
tasks, failed_every = int(sys.argv[2]), int(sys.argv[3])
ERROR = "\\n".join([f"loss is NaN at step {s}" for s in range(0, 400, 40)] + ["giving up"])

# One pipeline run is four tasks: prepare, train (a few epochs), evaluate and export. Runs share raw data
# and datasets; the weights of an experiment are rewritten by every run of it (generations).
for i in range(tasks // 4):
    exp = i % 60
    with wt.workflow_step("prepare", inputs=[wt.Folder(path=f"/data/raw/shard_{i % 12}")],
                          outputs=[wt.Project(path=f"/data/datasets/ds_{i % 25}")]):
        pass
    weights = wt.File(path=f"/models/exp_{exp:02d}/best.pt", model_weight=True)
    try:
        with wt.workflow_step("train", inputs=[wt.Project(path=f"/data/datasets/ds_{i % 25}")],
                              params={"lr": 0.001 * (1 + i % 7), "epochs": 3, "exp": exp}) as step:
            for epoch in range(3):
                with wt.workflow_step("epoch", params={"epoch": epoch}):
                    if failed_every and i % failed_every == failed_every - 1 and epoch == 2:
                        raise FloatingPointError(ERROR)
            step.add_output(weights)
    except FloatingPointError:
        pass
    with wt.workflow_step("evaluate", inputs=[weights],
                          outputs=[wt.File(path=f"/reports/exp_{exp:02d}/metrics.json")]):
        pass
    with wt.workflow_step("export", inputs=[weights], outputs=[wt.File(path=f"/exports/model_{i}.onnx")]):
        pass
wt.flush()
'''


def script_env(db: Path | None) -> dict[str, str]:
    """The environment of a script or command run on a store: this checkout's package first, no
    workflow_trace or Supervisely settings from the test run (the store from ``db``, if given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKFLOW_TRACE_", "SUPERVISELY_"))}
    env.pop("TASK_ID", None)
    env.pop("SERVER_ADDRESS", None)
    if db is not None:
        env["WORKFLOW_TRACE_DB"] = str(db)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def run_script(source: str, *args: str, cwd: Path, db: Path | None, name: str = "script.py",
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a Python script in a fresh interpreter (the store from ``$WORKFLOW_TRACE_DB``).

    Raises:
        AssertionError: the script failed (its output in the message).
    """
    cwd.mkdir(parents=True, exist_ok=True)
    script = cwd / name
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=script_env(db), capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def quickstart_store(folder: Path) -> Path:
    """Run ``examples/quickstart.py`` in ``folder`` as its docstring says; its store."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, str(QUICKSTART)], cwd=folder, env=script_env(None), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, f"quickstart failed:\n{done.stdout}\n{done.stderr}"
    db = folder / ".workflow_trace" / "workflow.db"
    assert db.is_file(), done.stdout
    return db


def failing_store(folder: Path) -> Path:
    """A store with a pipeline whose last task failed with :data:`ERROR_LINES`; ``train`` has nested runs
    with params (``fit``: :data:`FIT_PARAMS`, three ``epoch`` runs), a project version and model weights
    whose card links to :data:`WEIGHTS_URL` on the instance.

    Tasks: 1 prepare, 2 train, 3 evaluate (failed).
    """
    db = folder / "store" / "workflow.db"
    source = _FAILING.format(error=ERROR_LINES, params=FIT_PARAMS, url=WEIGHTS_URL)
    run_script(source, str(folder / "data"), cwd=folder, db=db, name="failing.py")
    return db


def add_run(db: Path, folder: Path, name: str) -> None:
    """One more task in the store, from another process: step ``name`` fine-tunes the store's weights."""
    weights = folder / "data" / "models" / "best.pt"
    out = folder / "data" / "models" / f"{name}.pt"
    run_script(_ADD_RUN, str(weights), str(out), name, cwd=folder, db=db, name="add_run.py")


def pipeline_store(db: Path, tasks: int, failed_every: int = 9) -> Path:
    """A store of ``tasks`` tasks: runs of a four-task pipeline (every ``failed_every``-th train failing
    in its last epoch), written through the public API in one process."""
    run_script(_PIPELINE, str(db), str(tasks), str(failed_every), cwd=db.parent, db=None, name="pipeline.py",
               timeout=1200)
    return db
