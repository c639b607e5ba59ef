"""``workflow-trace reproduce TASK``: what a task ran and read, and whether that can be had again.

What it ran: the command line, the code version (git commit, dirty flag, Python, host) and every run with its
params. What it read: every input with the version or generation it read and, for local files, folders
and projects, whether they changed since: a local project version is compared file by file with the
folder (sizes and times first, hashes where they differ), other local inputs with the size and
modification time they had when they were read. ``--restore DIR`` restores every local project version
the task read into ``DIR/<folder name>``, hash-checked.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from ._nodes import Project
from .backends.sqlite import EdgeRow, SQLiteBackend, fingerprint
from .graph import Graph, GraphNode, RunInfo, format_params, format_version, terminal_safe, written_by

__all__ = ["Input", "inputs_of", "report", "restore"]


@dataclass(frozen=True)
class Input:
    """One thing a task read, and what became of it."""

    key: str
    generation: int
    produced_by: int | None
    version_id: int | None
    version_num: int | None
    state: str  # "unchanged", "changed: ...", "gone", "not checked: ..."


def _state(row: EdgeRow, store: SQLiteBackend) -> str:
    node = row.node
    path = getattr(node, "path", None)
    if isinstance(node, Project) and node.version_id is not None and path is not None:
        changed = store.local_versions().changes_since(node.version_id, Path(path))
        if changed is None:
            return "not checked: not a version of this store"
        if not changed:
            return "unchanged since the version (hash-checked)"
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        return f"changed since the version: {len(changed)} file(s) differ ({shown})"
    if path is None or not (os.path.isabs(path) or row.cwd):
        return "not checked: not a local path"
    now = fingerprint(path)
    if now is None:
        return "gone (nothing at that path now)" if row.stat is not None else "not checked: not on this machine"
    if row.stat is None:
        return "not checked: its size and time were not kept when it was read"
    if now == row.stat:
        return "unchanged since it was read (size and modification time)"
    parts = [f"{k} {row.stat.get(k)} -> {now.get(k)}" for k in ("files", "size") if row.stat.get(k) != now.get(k)]
    return "changed since it was read" + (f" ({', '.join(parts)})" if parts else " (modified)")


def inputs_of(graph: Graph, store: SQLiteBackend, task_key: str) -> list[Input]:
    """Every input of the task (once per node and generation), oldest first."""
    task_id = int(task_key.split(":", 1)[1])
    # The latest read of each node: "changed since it was read" means since then.
    rows = {row.key: row for row in store.edges() if row.task_id == task_id and row.direction == "input"}
    return [Input(edge.source, edge.generation, written_by(graph.nodes.get(edge.source), edge.generation),
                  edge.version_id, edge.version_num,
                  _state(rows[edge.source], store) if edge.source in rows else "not checked")
            for edge in graph.inputs_of(task_key) if edge.relation == "input"]


def _runs(runs: tuple[RunInfo, ...], limit: int = 20) -> list[str]:
    lines = []
    for run in runs[:limit]:
        depth = "  " if run.parent_run_id is None else "    "
        params = terminal_safe(format_params(run.params))
        lines.append(f"{depth}{terminal_safe(run.name)} [{run.status}]" + (f"  params: {params}" if params else ""))
    if len(runs) > limit:
        lines.append(f"  ... {len(runs) - limit} more run(s) (export --format json lists them all)")
    return lines


def report(graph: Graph, store: SQLiteBackend, task: GraphNode) -> str:
    """The text of ``workflow-trace reproduce`` for one task."""
    info = task.task
    if info is None:
        return f"{task.key}: nothing recorded about this task here (it is only named by another task)\n"
    lines = [f"{task.key} {terminal_safe(task.label)} [{info.status}]"]
    if info.error_type:
        lines.append(f"  failed: {terminal_safe(info.error_type)}: {terminal_safe(info.error_message or '')}")
    lines.append(f"  command: {terminal_safe(info.command or '(unknown)')}")
    if info.cwd:
        lines.append(f"  in: {terminal_safe(info.cwd)}")
    dirty = {True: " (the work tree had uncommitted changes)", False: " (clean)", None: ""}[info.git_dirty]
    lines.append(f"  code: git commit {info.git_commit}{dirty}" if info.git_commit else
                 "  code: no git repository found for the script")
    lines += [f"  python {info.python or '?'} on {info.host or '?'} (pid {info.pid or '?'})", "runs:",
              *(_runs(info.runs) or ["  (none recorded)"]), "inputs (what it read):"]
    inputs = inputs_of(graph, store, task.key)
    for item in inputs:
        what = item.key
        if item.version_id is not None or item.version_num is not None:
            what += f" @{format_version((item.version_id, item.version_num))}"
        node = graph.nodes.get(item.key)
        if node is not None and node.kind != "task" and len(node.generations) > 1:
            what += f" · gen {item.generation}"
        if item.produced_by is not None:
            what += f", by task:{item.produced_by}"
        lines.append(f"  {terminal_safe(what)}: {item.state}")
    if not inputs:
        lines.append("  (none recorded)")
    lines.append("to run it again:")
    if info.cwd:
        lines.append(f"  cd {shlex.quote(info.cwd)}")
    if info.git_commit:
        lines.append(f"  git checkout {info.git_commit}")
    versions = [i for i in inputs if i.version_id is not None and graph.nodes.get(i.key, task).path]
    if versions:
        lines.append(f"  workflow-trace reproduce {task.key} --restore DIR   # the {len(versions)} local project "
                     "version(s) it read")
    if info.command:
        lines.append(f"  {terminal_safe(info.command)}")
    return "\n".join(lines) + "\n"


def restore(graph: Graph, store: SQLiteBackend, task: GraphNode, target: Path) -> list[tuple[str, Path]]:
    """Restore every local project version the task read into ``target/<folder name>`` (hash-checked).

    Raises:
        VersioningError: a version is missing or damaged, or a folder exists already.
    """
    done: list[tuple[str, Path]] = []
    for item in inputs_of(graph, store, task.key):
        node = graph.nodes.get(item.key)
        if item.version_id is None or node is None or node.path is None:
            continue
        dest = target / Path(node.path).name
        store.local_versions().restore(Project(path=node.path), item.version_id, None, target=dest)
        done.append((item.key, dest))
    return done
