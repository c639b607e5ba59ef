"""Quickstart: a small, real pipeline whose lineage workflow_trace records in the local store.

Run it, then look at what it recorded (from the same folder)::

    python examples/quickstart.py
    workflow-trace show                                  # or: python -m workflow_trace show
    workflow-trace ui                                    # the viewer on http://127.0.0.1:8765/
    workflow-trace reproduce 2                           # what train ran and read
    workflow-trace export --format html -o lineage.html  # the viewer in one offline file
    workflow-trace versions list quickstart_data/project
    workflow-trace versions restore quickstart_data/project --version 1

Three steps, no server, no downloads. *import* turns a folder of generated images into a project,
*train* versions the project (a snapshot in the local store, so the data it trained on can be restored
later), fits a tiny classifier on it (a loop inside a step) and writes model weights, *export* zips
project and weights into an archive. The first export attempt fails on purpose (its quota is too small)
to show a failed run; the script catches the error and tries again (both attempts are runs of one
*export* task). The data goes to
``./quickstart_data``, the lineage and the versions to ``./.workflow_trace/``. Run it again: it records
new tasks, and since the project did not change, training reads version 1 again; the weights and the
archive get a second generation, and each export's lineage names the train of its own run.
"""

from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import workflow_trace as wt

DATA = Path("quickstart_data").resolve()

ARCHIVE_CARD = wt.WorkflowMeta(
    relation_settings=wt.WorkflowSettings(
        title="Project archive", description="project + weights, zip",
        icon="archive", icon_color="#ff4c9e", icon_bg_color="#ffe3ed",
    )
)


def make_raw_images(folder: Path, count: int = 12) -> None:
    """Write ``count`` tiny 8x8 greyscale images (PGM), half dark and half bright."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for i in range(count):
        base = 60 if i % 2 else 190
        pixels = " ".join(str(min(255, max(0, base + rng.randint(-40, 40)))) for _ in range(64))
        (folder / f"img_{i:02d}.pgm").write_text(f"P2\n8 8\n255\n{pixels}\n")


@wt.consumes_folder                       # input: the `folder` argument
@wt.produces_project                      # output: the returned project folder
def import_images(folder: str) -> str:
    """Copy the images into a project with one annotation (the class) per image."""
    project = DATA / "project"
    (project / "img").mkdir(parents=True, exist_ok=True)
    annotations = {}
    for image in sorted(Path(folder).glob("*.pgm")):
        pixels = [int(v) for v in image.read_text().split()[4:]]
        annotations[image.name] = "bright" if sum(pixels) / len(pixels) > 128 else "dark"
        (project / "img" / image.name).write_bytes(image.read_bytes())
    (project / "annotations.json").write_text(json.dumps(annotations, indent=2))
    return str(project)


def train(project: str, epochs: int = 20, lr: float = 0.5) -> str:
    """Version the project, fit a one-feature logistic regression (mean brightness -> bright?) on it and
    save the weights."""
    # version_inputs: the project is snapshotted before training; the graph shows the version it read.
    # params: recorded with the run (`workflow-trace reproduce` shows them).
    with wt.workflow_step("train", inputs=[wt.Project(path=project)], version_inputs=True,
                          params={"epochs": epochs, "lr": lr}) as step:
        labels = json.loads((Path(project) / "annotations.json").read_text())
        samples = []
        for name, label in labels.items():
            pixels = [int(v) for v in (Path(project) / "img" / name).read_text().split()[4:]]
            samples.append((sum(pixels) / len(pixels) / 255 - 0.5, 1.0 if label == "bright" else 0.0))
        w = b = 0.0
        for _epoch in range(epochs):
            for x, y in samples:
                p = 1 / (1 + 2.718281828 ** -(w * x + b))
                w, b = w - lr * (p - y) * x, b - lr * (p - y)
        weights = DATA / "model" / "best.json"
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_text(json.dumps({"w": w, "b": b, "epochs": epochs}))
        step.add_output(wt.File(path=str(weights), model_weight=True))
    return str(weights)


@wt.consumes_project                                  # input: the `project` argument
@wt.consumes_file("weights", model_weight=True)       # input: the weights file
@wt.produces_file(meta=ARCHIVE_CARD)                  # output: the returned archive, with its card
def export(project: str, weights: str, quota_bytes: int | None = None) -> str:
    """Zip the project and the weights; fail if the archive would not fit ``quota_bytes``."""
    archive = DATA / "export" / "project.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    files = [*Path(project).rglob("*.*"), Path(weights)]
    size = sum(f.stat().st_size for f in files)
    if quota_bytes is not None and size > quota_bytes:
        raise OSError(f"archive needs {size} bytes, quota is {quota_bytes}")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f.relative_to(DATA))
    return str(archive)


def main() -> None:
    """Run the pipeline and say where its lineage is."""
    wt.configure("sqlite")   # the local store: ./.workflow_trace/workflow.db, or $WORKFLOW_TRACE_DB
    make_raw_images(DATA / "raw")
    project = import_images(str(DATA / "raw"))
    weights = train(project)
    try:
        export(project, weights, quota_bytes=1_000)   # fails on purpose: recorded as a failed run
    except OSError as exc:
        print(f"export failed as planned ({exc}); retrying without a quota")
    archive = export(project, weights)
    wt.flush()
    print(f"wrote {archive}")
    print(f"lineage recorded in {getattr(wt.get_backend(), 'path', 'the configured backend')}")
    print("now run: workflow-trace show   (or: python -m workflow_trace show)")
    print(f"restore the data train read: workflow-trace versions restore {project} --version 1")


if __name__ == "__main__":
    main()
