"""Synthetic JSON v2 lineage graphs for the viewer's tests, screenshots and benchmarks.

``quickstart()`` is a small pipeline like the README's (8 tasks, one failed with a long error, runs with
params, a project written twice, model weights); ``large(n)`` is a store of ``n`` tasks with shared
inputs, paths rewritten many times (several generations), retried tasks with nested runs and a dozen
similar task names. Both follow the contract in notes/v2.md: one edge per (source, target, relation,
generation), a data node's generations in order, an input reading the newest generation before it.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["GraphBuilder", "large", "quickstart"]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

# Text that would break out of a <script> block or inject markup if the page did not escape it.
HOSTILE = "</script><img src=x onerror=alert(1)><b>bold</b>"


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class GraphBuilder:
    """Record tasks, their runs and their inputs/outputs in time order; ``build()`` is the JSON v2 dict."""

    def __init__(self, scope: str = "workspace", server: str | None = None) -> None:
        self.scope = scope
        self.server = server
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: dict[tuple[str, str, str, int], dict[str, Any]] = {}
        self.clock = T0
        self._run_seq = 0

    def tick(self, seconds: float = 1.0) -> str:
        """Advance the clock; the new time, ISO 8601 UTC."""
        self.clock += timedelta(seconds=seconds)
        return _iso(self.clock)

    def data(self, node_id: str, label: str | None = None, **extra: Any) -> dict[str, Any]:
        """The data node ``node_id`` (made on first use)."""
        node = self.nodes.get(node_id)
        if node is None:
            kind, _, rest = node_id.partition(":")
            path = rest if rest.startswith("/") else None
            node = {
                "id": node_id, "kind": kind, "label": label or (path.rsplit("/", 1)[-1] if path else node_id),
                "description": path or "", "card": None,
                "external_id": None if path or not rest.isdigit() else int(rest), "path": path,
                "model_weight": False, "versions": [], "generations": [], "task": None,
            }
            node.update(extra)
            self.nodes[node_id] = node
        return node

    def task(
        self,
        task_id: int,
        name: str,
        *,
        host: str = "gpu-1",
        command: str | None = None,
        started: str | None = None,
    ) -> dict[str, Any]:
        """A new local task (status ``running`` until :meth:`finish`)."""
        started = started or self.tick(5)
        info: dict[str, Any] = {
            "id": task_id, "name": name, "origin": "local", "status": "running", "started_at": started,
            "finished_at": None, "duration_s": None, "error": None, "pid": 4000 + task_id, "host": host,
            "command": command or f"python {name}.py", "git_commit": hashlib.sha1(str(task_id).encode()).hexdigest(),
            "git_dirty": task_id % 5 == 0, "python": "3.11.7", "runs": [],
        }
        node: dict[str, Any] = {
            "id": f"task:{task_id}", "kind": "task", "label": name, "description": "running", "card": None,
            "external_id": task_id, "path": None, "model_weight": False, "versions": [], "generations": [],
            "task": info,
        }
        self.nodes[node["id"]] = node
        return node

    def run(
        self,
        task: dict[str, Any],
        name: str,
        *,
        parent: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        status: str = "ok",
        error: dict[str, str] | None = None,
        seconds: float = 30.0,
    ) -> dict[str, Any]:
        """A run (step) of ``task``; add its inputs and outputs with :meth:`read` / :meth:`write`."""
        self._run_seq += 1
        started = self.tick(1)
        run: dict[str, Any] = {
            "run_id": f"0193{self._run_seq:028x}", "name": name,
            "parent_run_id": parent["run_id"] if parent else None, "status": status, "started_at": started,
            "finished_at": _iso(self.clock + timedelta(seconds=seconds)), "error": error,
            "params": params or {}, "inputs": [], "outputs": [],
        }
        task["task"]["runs"].append(run)
        return run

    def _edge(self, source: str, target: str, relation: str, task_id: int, generation: int, **extra: Any) -> None:
        now = self.tick(0.5)
        key = (source, target, relation, generation)
        edge = self.edges.get(key)
        if edge is None:
            self.edges[key] = {
                "source": source, "target": target, "relation": relation, "task_id": task_id, "count": 1,
                "first_time": now, "last_time": now, "version_id": None, "version_num": None, "card": None,
                "generation": generation, **extra,
            }
        else:
            edge["count"] += 1
            edge["last_time"] = now

    def read(self, task: dict[str, Any], run: dict[str, Any], node_id: str, **extra: Any) -> None:
        """``run`` of ``task`` reads the newest generation of ``node_id`` (a first read finds generation 1);
        ``extra`` are edge keys (``version_id``, ``version_num``)."""
        node = self.data(node_id)
        gens = node["generations"]
        if not gens:
            gens.append({"generation": 1, "task_id": None, "run_id": None, "time": _iso(self.clock)})
        run["inputs"].append(node_id)
        self._edge(node_id, task["id"], "input", task["task"]["id"], gens[-1]["generation"], **extra)

    def write(
        self, task: dict[str, Any], run: dict[str, Any], node_id: str, label: str | None = None,
        model_weight: bool = False, **extra: Any,
    ) -> None:
        """``run`` of ``task`` writes ``node_id``: a new generation of it; ``extra`` are edge keys."""
        node = self.data(node_id, label, model_weight=model_weight)
        gens = node["generations"]
        gens.append({"generation": len(gens) + 1, "task_id": task["task"]["id"], "run_id": run["run_id"],
                     "time": self.tick(0.5)})
        run["outputs"].append(node_id)
        self._edge(task["id"], node_id, "output", task["task"]["id"], gens[-1]["generation"], **extra)

    def finish(self, task: dict[str, Any], status: str = "ok", error: dict[str, str] | None = None) -> None:
        """End ``task``: its status, duration and description."""
        info = task["task"]
        finished = self.tick(30)
        info.update(status=status, error=error, finished_at=finished)
        start = datetime.fromisoformat(info["started_at"].replace("Z", "+00:00"))
        info["duration_s"] = round((self.clock - start).total_seconds(), 3)
        task["description"] = (
            f"failed: {error['type']}: {error['message'].splitlines()[0]}" if error and status == "failed"
            else status
        )

    def build(self) -> dict[str, Any]:
        """The JSON v2 dict: tasks in start order, then data nodes in first-use order."""
        nodes = list(self.nodes.values())
        nodes.sort(key=lambda n: 0 if n["kind"] == "task" else 1)
        return {
            "format": "workflow-trace-graph", "version": 2, "scope": self.scope,
            "store": "/home/ml/pipeline/.workflow_trace/workflow.db", "server": self.server,
            "nodes": nodes, "edges": list(self.edges.values()),
        }


TRACEBACK = """CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total capacity; \
13.10 GiB already allocated; 1.02 GiB free; 13.50 GiB reserved in total by PyTorch)

Traceback (most recent call last):
  File "/home/ml/pipeline/train.py", line 88, in <module>
    main()
  File "/home/ml/pipeline/train.py", line 71, in main
    loss = model(batch).loss
  File "/home/ml/venv/lib/python3.11/site-packages/torch/nn/modules/module.py", line 1518, in _call_impl
    return forward_call(*args, **kwargs)
torch.cuda.OutOfMemoryError: CUDA out of memory."""


def quickstart(server: str | None = None, more: int = 0) -> dict[str, Any]:
    """A README-like pipeline of 8 tasks: import, label, split, a failed train, its retry, evaluate, export;
    then ``more`` fine-tuning tasks (``finetune_9``, ...) that read the model (new runs for live tests)."""
    g = GraphBuilder(server=server)
    fetch = g.task(1, "fetch_images", command="python fetch.py --src s3://bucket/raw")
    r = g.run(fetch, "fetch_images", params={"bucket": "raw", "limit": 5000})
    g.write(fetch, r, "folder:/data/raw", label="raw")
    g.finish(fetch)

    imp = g.task(2, "import_project", command="python import.py /data/raw")
    r = g.run(imp, "import_project", params={"format": "coco"})
    g.read(imp, r, "folder:/data/raw")
    g.write(imp, r, "project:42", version_id=11, version_num=1)
    g.data("project:42")["label"] = "coco-cars"
    g.finish(imp)

    lab = g.task(3, "label_cars", command="python label.py --project 42")
    r = g.run(lab, "label_cars", params={"annotators": 3, "note": HOSTILE})
    g.read(lab, r, "project:42", version_id=11, version_num=1)
    g.write(lab, r, "job:5", label="labeling job 5")
    g.write(lab, r, "project:42", version_id=12, version_num=2)
    g.finish(lab)
    g.data("project:42")["versions"] = [{"version_id": 11, "version_num": 1}, {"version_id": 12, "version_num": 2}]

    split = g.task(4, "split", command="python split.py --val 0.2")
    r = g.run(split, "split", params={"val_fraction": 0.2, "seed": 7})
    g.read(split, r, "project:42", version_id=12, version_num=2)
    g.write(split, r, "dataset:7", label="train split")
    g.write(split, r, "dataset:8", label="val split")
    g.finish(split)

    def train(task_id: int, lr: float, fail: bool) -> dict[str, Any]:
        t = g.task(task_id, "train", command=f"python train.py --lr {lr} --epochs 3")
        outer = g.run(t, "train", params={"lr": lr, "epochs": 3, "batch_size": 64, "model": "yolov8n"})
        g.read(t, outer, "dataset:7")
        g.read(t, outer, "dataset:8")
        for epoch in range(1, 4):
            broke = fail and epoch == 3
            err = {"type": "RuntimeError", "message": TRACEBACK} if broke else None
            g.run(t, f"epoch {epoch}", parent=outer, params={"epoch": epoch}, status="failed" if broke else "ok",
                  error=err)
            if broke:
                outer["status"], outer["error"] = "failed", err
                g.finish(t, "failed", err)
                return t
        g.write(t, outer, "file:/models/best.pt", label="best.pt", model_weight=True)
        g.write(t, outer, "file:/models/metrics.json", label="metrics.json")
        g.finish(t)
        return t

    train(5, 0.1, fail=True)
    train(6, 0.01, fail=False)

    ev = g.task(7, "evaluate", command="python evaluate.py /models/best.pt")
    r = g.run(ev, "evaluate", params={"iou": 0.5})
    g.read(ev, r, "file:/models/best.pt")
    g.read(ev, r, "dataset:8")
    g.write(ev, r, "file:/reports/eval.html", label="eval.html")
    g.finish(ev)

    exp = g.task(8, "export_onnx", command="python export.py --format onnx")
    r = g.run(exp, "export_onnx", params={"opset": 17})
    g.read(exp, r, "file:/models/best.pt")
    g.write(exp, r, "file:/models/best.onnx", label="best.onnx", model_weight=True)
    g.write(exp, r, "app:8", label="export session")
    g.finish(exp)
    g.data("file:/models/best.onnx")["card"] = {
        "title": "best.onnx", "description": "ONNX export", "icon": None, "icon_color": None,
        "icon_bg_color": None, "url": "/files/1/models/best.onnx", "url_title": "Download",
    }
    for task_id in range(9, 9 + more):
        t = g.task(task_id, f"finetune_{task_id}", command=f"python finetune.py --round {task_id}")
        r = g.run(t, t["label"], params={"round": task_id})
        g.read(t, r, "file:/models/best.pt")
        g.write(t, r, "file:/models/best.pt", label="best.pt", model_weight=True)
        g.finish(t)
    return g.build()


STAGES = ["import_batch", "clean", "augment", "extract_features", "train", "evaluate", "export_onnx", "report"]


def large(n_tasks: int, seed: int = 1) -> dict[str, Any]:
    """A store of ``n_tasks`` tasks: pipelines (import, clean, ..., train, evaluate, export, report) run
    again and again. Imports share three projects; feature extraction rewrites one of 20 cache files (so
    they have many generations); a train sometimes fine-tunes an earlier pipeline's model; ~7% of the
    tasks fail and are often retried as a new task of the same name; tasks have up to 5 nested runs of one name."""
    rng = random.Random(seed)
    g = GraphBuilder()
    shared = ["project:1", "project:2", "dataset:3"]
    for ref, label in zip(shared, ["coco", "cars-2026", "street-signs"], strict=True):
        g.data(ref, label=label)
    models: list[str] = []
    count = 0

    def attempt(pipeline: int, name: str, inputs: list[str]) -> list[str] | None:
        """One task of stage ``name``: its outputs, or None when it failed."""
        nonlocal count
        count += 1
        task = g.task(count, name, host=f"gpu-{count % 4}", command=f"python {name}.py --pipeline {pipeline}")
        outer = g.run(task, name, params={"pipeline": pipeline, "lr": rng.choice([0.1, 0.01, 0.001])})
        for shard in range(rng.choice([0, 0, 1, 2, 5])):  # repeated runs of one name inside the task
            g.run(task, f"{name}.shard", parent=outer, params={"shard": shard}, seconds=5)
        if name == "train" and models and rng.random() < 0.3:
            inputs = [*inputs, rng.choice(models[-40:])]  # fine-tune an earlier model
        if name == "evaluate":
            inputs = [*inputs, shared[2]]
        for ref in inputs:
            g.read(task, outer, ref)
        if rng.random() < 0.07:
            error = {"type": "ValueError", "message": f"pipeline {pipeline}: bad label id -1 in row {count}"}
            outer["status"], outer["error"] = "failed", error
            g.finish(task, "failed", error)
            return None
        outputs = [f"file:/work/out/p{pipeline}/{name}_{k}.bin" for k in range(rng.randint(1, 2))]
        if name == "extract_features":
            outputs = [f"file:/work/cache/features_{pipeline % 20}.parquet"]  # another generation of it
        for k, ref in enumerate(outputs):
            g.write(task, outer, ref, model_weight=name == "train" and k == 0)
            if name == "train" and k == 0:
                models.append(ref)
        g.finish(task)
        return outputs

    pipeline = 0
    while count < n_tasks:
        pipeline += 1
        previous: list[str] | None = [rng.choice(shared[:2])]
        for name in STAGES[: rng.randint(3, len(STAGES))]:
            inputs = previous or []
            previous = attempt(pipeline, name, inputs)
            while previous is None and count < n_tasks and rng.random() < 0.7:
                previous = attempt(pipeline, name, inputs)  # retried: a new task of the same name
            if previous is None or count >= n_tasks:
                break
    return g.build()
