"""The ``workflow-trace`` command (also ``python -m workflow_trace``): look at the local lineage store.

::

    workflow-trace show [--scope S] [--db PATH]            the graph as a text tree
    workflow-trace export --format mermaid|dot|json|html [-o FILE] [--scope S] [--db PATH]
    workflow-trace tasks [--scope S] [--db PATH]           a table of tasks
    workflow-trace lineage NODE [--direction up|down|both] [--db PATH]   e.g. project:42, file:/m/best.pt
    workflow-trace versions list PROJECT [--db PATH]      versions of a local project folder (or project:ID)
    workflow-trace versions restore PROJECT --version N [--skip-missed]   recreate it next to the project
    workflow-trace push BACKEND [--timeout S] [--db PATH]   replay the store to a server, idempotently
    workflow-trace spool [retry | drop --dead] [--dest KEY] [--spool PATH]   events waiting for a server
    workflow-trace run SCRIPT [ARGS...]                    run a script with autolog on, in one step

``--db`` defaults to ``$WORKFLOW_TRACE_DB`` or ``./.workflow_trace/workflow.db``, like the backend. Errors
(no store, a bad scope, an unknown node, an unknown project or version, a missing stored file) are one line
on stderr and exit code 2.

``push`` replays the store's events in the order they were stored through the destination backend (its
background delivery, retries and spool), then waits up to ``--timeout`` seconds for delivery. It is
idempotent: the store records, per destination (the backend's ``transport.key``, e.g.
``openlineage:http://host:5000/api/v1/lineage`` or ``supervisely:https://host``; never a token), the id of
every event it handed over, and the next push sends only the others. Servers that store each event id once
(a local store) would not need this; a Supervisely instance has no such check, so the record is what keeps
an edge from being added twice. An event counts as handed over once it was delivered or is waiting in the
durable spool (``spool.db`` next to the store), from which the next push or any process using that
destination delivers it; a push interrupted by ``kill -9`` between sending and recording may send the last
batch again. Events of tasks the store numbered itself (``origin: local``) are not sent to Supervisely,
whose task ids they would collide with. Exit code 0: everything delivered; 1: some events wait in the
spool or were refused (``workflow-trace spool`` shows them).

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares it and sets ``handler``;
``_cmd_<name>(args) -> int`` runs it. A new subcommand is a new pair and one entry in :data:`_COMMANDS`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import WorkflowTraceError
from ._version import __version__

if TYPE_CHECKING:
    from ._events import Event
    from ._nodes import Project
    from .backends.sqlite import SQLiteBackend
    from .graph import Graph

__all__ = ["CliError", "build_parser", "main"]

PROG = "workflow-trace"


class CliError(Exception):
    """An expected failure: printed as one line on stderr, the process exits with ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# -- shared options ----------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    """Options every subcommand takes."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--db",
        metavar="PATH",
        help="the lineage store (default: $WORKFLOW_TRACE_DB or ./.workflow_trace/workflow.db)",
    )
    return parent


def _add_scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scope",
        default="workspace",
        metavar="S",
        help="workspace (default), project:ID (tasks that touched it and what they touched) or task:ID",
    )


def _load(args: argparse.Namespace, scope: str = "workspace") -> Graph:
    from .graph import load_graph

    return load_graph(args.db, scope)


def _write(text: str, output: str | None) -> None:
    """Write ``text`` to ``output`` (a file, or stdout for ``None`` / ``-``)."""
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(output)
    try:
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None


# -- show --------------------------------------------------------------------------------------


def _add_show(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "show", parents=[common], help="print the lineage graph as a text tree",
        description="Print each task with what it read (<-) and wrote (->).",
    )
    _add_scope(parser)
    parser.set_defaults(handler=_cmd_show)


def _cmd_show(args: argparse.Namespace) -> int:
    graph = _load(args, args.scope)
    if not graph.nodes:
        _write(f"no lineage recorded yet in scope {graph.scope}\n", None)
        return 0
    _write(graph.to_text(), None)
    return 0


# -- export ------------------------------------------------------------------------------------


def _add_export(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "export", parents=[common], help="export the graph as Mermaid, DOT, JSON or HTML",
        description="Export the lineage graph. HTML is one self-contained file (no JavaScript, no network).",
    )
    parser.add_argument("--format", "-f", required=True, choices=("mermaid", "dot", "json", "html", "text"))
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    _add_scope(parser)
    parser.set_defaults(handler=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    graph = _load(args, args.scope)
    _write(graph.export(args.format), args.output)
    if args.output not in (None, "-"):
        print(
            f"wrote {args.output} ({len(graph.nodes)} nodes, {len(graph.edges)} edges, scope {graph.scope})",
            file=sys.stderr,
        )
    return 0


# -- tasks -------------------------------------------------------------------------------------


def _add_tasks(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "tasks", parents=[common], help="list tasks: id, name, status, start, duration, inputs, outputs",
    )
    _add_scope(parser)
    parser.set_defaults(handler=_cmd_tasks)


def _cmd_tasks(args: argparse.Namespace) -> int:
    from .graph import _duration, _local_time, _one_line

    graph = _load(args, args.scope)
    counts: dict[str, list[int]] = {}
    for edge in graph.edges:
        counts.setdefault(edge.task_key, [0, 0])[0 if edge.relation == "input" else 1] += 1
    header = ("ID", "NAME", "STATUS", "START", "DURATION", "INPUTS", "OUTPUTS")
    rows: list[tuple[str, ...]] = []
    for node in sorted(graph.tasks, key=lambda n: n.external_id or 0):
        info = node.task
        if info is None:
            continue  # a task only seen as someone's input: nothing recorded about it here
        ins, outs = counts.get(node.key, [0, 0])
        rows.append((
            str(info.id), _one_line(node.label, 40), info.status, _local_time(info.started_at),
            "-" if info.duration is None else _duration(info.duration), str(ins), str(outs),
        ))
    if not rows:
        _write(f"no tasks recorded yet in scope {graph.scope}\n", None)
        return 0
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    right = {0, 5, 6}
    lines = [
        "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row))
        .rstrip()
        for row in (header, *rows)
    ]
    _write("\n".join(lines) + "\n", None)
    return 0


# -- lineage -----------------------------------------------------------------------------------


def _add_lineage(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "lineage", parents=[common], help="what a node came from and what came from it",
        description="Follow a node's lineage transitively: upstream (what produced it) and downstream.",
    )
    parser.add_argument("node", metavar="NODE", help="e.g. project:42, file:/models/best.pt, task:3, dataset:7")
    parser.add_argument("--direction", choices=("up", "down", "both"), default="both")
    parser.add_argument(
        "--format", "-f", default="text", choices=("text", "mermaid", "dot", "json", "html"),
        help="text (default): two trees; other formats export the lineage subgraph",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(handler=_cmd_lineage)


def _cmd_lineage(args: argparse.Namespace) -> int:
    from ._nodes import parse_node_ref

    graph = _load(args)
    text = args.node.strip()
    if text not in graph.nodes:
        try:
            parse_node_ref(text)
        except ValueError as exc:
            raise CliError(f"bad node {args.node!r}: {exc}") from None
    if args.format == "text":
        _write(graph.lineage_text(text, args.direction), args.output)
        return 0
    walk = {"up": graph.upstream, "down": graph.downstream, "both": graph.lineage}[args.direction]
    _write(walk(text).export(args.format), args.output)
    return 0


# -- versions ----------------------------------------------------------------------------------


def _add_versions(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "versions", help="versions of a local project: list, restore",
        description="Versions (snapshots) of local project folders kept in the store, as made by "
        "@consumes_project(version=True), workflow_step(version_inputs=True) or workflow_trace.version.create. "
        "PROJECT is the folder, or project:ID with the local id the store gave it.",
    )
    actions = parser.add_subparsers(dest="versions_action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", parents=[common], help="a table of the project's versions",
        description="List the versions of a local project: id, number, title, creation time, files, size.",
    )
    listing.add_argument("project", metavar="PROJECT", help="the project folder, or project:ID")
    listing.set_defaults(handler=_cmd_versions_list)
    restore = actions.add_parser(
        "restore", parents=[common], help="recreate a version as a new folder next to the project",
        description="Recreate a version as a new folder '<name>, from ver. N' next to the project, checking "
        "every file's hash; prints the new folder.",
    )
    restore.add_argument("project", metavar="PROJECT", help="the project folder, or project:ID")
    which = restore.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", type=int, metavar="N", dest="version_num", help="the version number")
    which.add_argument("--id", type=int, metavar="ID", dest="version_id", help="the version id")
    restore.add_argument(
        "--skip-missed", action="store_true",
        help="restore without files whose stored copy is missing or damaged (each one is logged)",
    )
    restore.set_defaults(handler=_cmd_versions_restore)


def _local_project(args: argparse.Namespace) -> tuple[SQLiteBackend, Project, Path]:
    """The store and the local project named by ``args.project`` (it must have been versioned)."""
    from ._nodes import Project
    from .backends.sqlite import SQLiteBackend

    text = args.project.strip()
    ident = text[len("project:"):] if text.lower().startswith("project:") else None
    if ident is not None and ident.strip().isdigit():
        wanted = Project(id=int(ident))
    elif ident is not None and ident.strip():
        wanted = Project(path=ident.strip())
    elif text:
        wanted = Project(path=text)
    else:
        raise CliError("name the project: its folder or project:ID")
    store = SQLiteBackend.open_existing(args.db)
    found = store.local_versions().find(wanted)
    if found is None:
        what = f"project {wanted.id}" if wanted.path is None else os.path.abspath(wanted.path)
        raise CliError(f"unknown project: {what} has no versions in {store.path}")
    project_id, folder = found
    return store, Project(id=project_id), folder


def _size(n: int) -> str:
    """``n`` bytes for people: ``512 B``, ``1.5 KiB``, ``2.0 GiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop returns first


def _cmd_versions_list(args: argparse.Namespace) -> int:
    from .graph import _local_time, _one_line

    store, project, folder = _local_project(args)
    versions = store.list_versions(project)
    sizes = store.local_versions().sizes(project)
    if not versions:
        print(f"no versions of {folder} yet")
        return 0
    header = ("ID", "VERSION", "TITLE", "CREATED", "FILES", "SIZE")
    rows = [
        (
            str(v.id), f"v{v.version}", _one_line(v.title or "-", 50), _local_time(v.created_at),
            str(sizes.get(v.id, (0, 0))[0]), _size(sizes.get(v.id, (0, 0))[1]),
        )
        for v in versions
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    right = {0, 4, 5}
    lines = [f"versions of {folder} (project:{project.id})"]
    lines += [
        "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row))
        .rstrip()
        for row in (header, *rows)
    ]
    _write("\n".join(lines) + "\n", None)
    return 0


def _cmd_versions_restore(args: argparse.Namespace) -> int:
    from ._errors import VersioningError

    store, project, folder = _local_project(args)
    try:
        restored = store.restore_version(project, args.version_id, args.version_num, args.skip_missed)
    except VersioningError as exc:
        raise CliError(str(exc)) from None
    which = f"version {args.version_num}" if args.version_num is not None else f"version id {args.version_id}"
    print(f"restored {which} of {folder} as project:{restored.id}:", file=sys.stderr)
    print(restored.path)
    return 0


# -- push --------------------------------------------------------------------------------------


def _add_push(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "push", parents=[common], help="replay the local store to a remote backend (idempotent)",
        description="Send every event of the local store, in order, to BACKEND (a backend string such as "
        "supervisely, supervisely+https://host or openlineage+http://host:5000), then wait for delivery. "
        "The store remembers what it handed to each destination: pushing again sends only new events. "
        "Events of tasks the store numbered itself are not sent to Supervisely (those ids name nothing there). "
        "Exit code 0 when everything was delivered, 1 when some events wait in the spool or were refused.",
    )
    parser.add_argument("backend", metavar="BACKEND", help="where to push: a backend string")
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS",
        help="how long to wait for delivery in total (default 60); what is not delivered by then stays in "
        "the spool and is sent by the next push or process using that destination",
    )
    parser.set_defaults(handler=_cmd_push)


def _destination_key(backend: object) -> str:
    """What identifies a destination in the store's push record: its transport's key (no secrets), else
    its repr."""
    key = getattr(getattr(backend, "transport", None), "key", None)
    return key if isinstance(key, str) and key else repr(backend)


def _cmd_push(args: argparse.Namespace) -> int:
    import time

    from ._delivery import DeliveringBackend
    from ._spool import default_spool_path
    from .backends import create_backend
    from .backends.sqlite import SQLiteBackend
    from .backends.supervisely import SuperviselyBackend

    if "," in args.backend:
        raise CliError("push to one destination at a time (no comma-separated backend strings)")
    if args.timeout < 0:
        raise CliError("--timeout must not be negative")
    store = SQLiteBackend.open_existing(args.db)
    saved = os.environ.get("WORKFLOW_TRACE_SPOOL")
    # The destination's spool sits next to the store being pushed, as `workflow-trace spool --db` expects.
    os.environ["WORKFLOW_TRACE_SPOOL"] = str(default_spool_path(args.db))
    try:
        dest = create_backend(args.backend)
    finally:
        if saved is None:
            del os.environ["WORKFLOW_TRACE_SPOOL"]
        else:
            os.environ["WORKFLOW_TRACE_SPOOL"] = saved
    if isinstance(dest, SQLiteBackend) and dest.path.resolve() == store.path.resolve():
        dest.close()
        raise CliError(f"cannot push {store.path} into itself")
    delivery = dest if isinstance(dest, DeliveringBackend) else getattr(dest, "delivery", None)
    if not isinstance(delivery, DeliveringBackend):
        delivery = None
    key = _destination_key(dest)
    owns_task_ids = isinstance(dest, SuperviselyBackend)
    deadline = time.monotonic() + args.timeout
    total = before = replayed = local = 0
    stopped = False
    batch: list[Event] = []
    try:
        total = store.counts()["events"]
        before = store.pushed_count(key)

        def push_batch() -> bool:
            dest.emit(batch)
            ok = dest.flush(max(0.0, deadline - time.monotonic()))
            # Refused events (dead) are kept in the spool; a batch still pending means the server is away.
            waiting = delivery is not None and (delivery.stats().queued or delivery.spool.has_pending(key))
            if ok or not waiting:
                store.mark_pushed(key, [e.event_id for e in batch])
                batch.clear()
                return True
            return False

        for event, is_local in store.iter_unpushed(key):
            if is_local and owns_task_ids:
                local += 1
                continue
            batch.append(event)
            replayed += 1
            if len(batch) >= 500 and not push_batch():
                stopped = True
                break
        if batch and not stopped:
            stopped = not push_batch()
        if delivery is not None and not stopped:
            # Events an earlier push or process left in the spool for this destination go out too.
            while delivery.spool.has_pending(key) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        dest.close()  # a delivering backend keeps what is still in memory in its durable spool
    if batch:
        store.mark_pushed(key, [e.event_id for e in batch])  # now in the spool: delivered from there
    stats = delivery.stats() if delivery is not None else None
    pending = delivery.spool.pending_count(key) if delivery is not None else 0
    lines = [
        f"pushed to {key}",
        f"  events in the store:   {total}",
        f"  pushed before:         {before} (not sent again)",
    ]
    if local:
        lines.append(f"  of local tasks:        {local} (not sent: ids this store gave its tasks mean nothing "
                     "on the server)")
    lines.append(f"  replayed now:          {replayed}")
    if stats is not None:
        if stats.emitted < replayed:
            lines.append(f"  no place there:        {replayed - stats.emitted} (step start/finish events)")
        lines += [
            f"  delivered:             {stats.delivered}",
            f"  waiting in the spool:  {pending}",
            f"  refused by the server: {stats.dead}",
        ]
    if stopped:
        lines.append("  stopped: the destination did not take the events in time; push again later")
    print("\n".join(lines))
    if pending or (stats is not None and stats.dead) or stopped:
        print(
            f"{PROG}: not everything was delivered: see `{PROG} spool` (events wait there and are sent by the "
            "next push or process using this destination)",
            file=sys.stderr,
        )
        return 1
    return 0


# -- spool -------------------------------------------------------------------------------------


def _add_spool(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "spool", parents=[common], help="events waiting for a remote server: counts, retry, drop --dead",
        description="The delivery spool: events a remote backend (Supervisely, OpenLineage) has not taken "
        "yet (pending: retried automatically) or refused (dead). 'retry' makes dead events pending "
        "again; 'drop --dead' deletes them.",
    )
    parser.add_argument("action", nargs="?", default="status", choices=("status", "retry", "drop"))
    parser.add_argument("--dead", action="store_true", help="with drop: delete the dead events")
    parser.add_argument("--dest", metavar="KEY", help="only this destination (as listed by 'spool')")
    parser.add_argument(
        "--spool", metavar="PATH",
        help="the spool file (default: $WORKFLOW_TRACE_SPOOL, else spool.db next to the store)",
    )
    parser.set_defaults(handler=_cmd_spool)


def _cmd_spool(args: argparse.Namespace) -> int:
    import time

    from ._spool import Spool, default_spool_path

    spool = Spool(args.spool or default_spool_path(args.db))
    if args.action == "retry":
        print(f"{spool.retry_dead(args.dest)} dead event(s) made pending again in {spool.path}")
        return 0
    if args.action == "drop":
        if not args.dead:
            raise CliError("say what to drop: spool drop --dead")
        print(f"{spool.drop_dead(args.dest)} dead event(s) deleted from {spool.path}")
        return 0
    counts = [c for c in spool.counts() if args.dest in (None, c.dest)]
    if not counts:
        print(f"the spool is empty ({spool.path})")
        return 0
    header = ("DESTINATION", "PENDING", "DEAD", "OLDEST", "LAST ERROR")
    rows = [
        (
            c.dest, str(c.pending), str(c.dead),
            "-" if c.oldest is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.oldest)),
            " ".join((c.last_error or "-").split())[:80],
        )
        for c in counts
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    print(f"spool: {spool.path}")
    for row in (header, *rows):
        cells = (cell.rjust(widths[i]) if i in (1, 2) else cell.ljust(widths[i]) for i, cell in enumerate(row))
        print("  ".join(cells).rstrip())
    return 0


# -- run ---------------------------------------------------------------------------------------


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "run", help="run a Python script with autolog on: its Supervisely SDK calls are its workflow",
        description="Run SCRIPT with ARGS as `python SCRIPT ARGS` would, inside one step named after it, with "
        "the Supervisely SDK instrumented (workflow_trace.autolog). The exit code is the script's.",
    )
    parser.add_argument("script", help="the Python script")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the script")
    parser.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from ._autolog import run_script

    if not os.path.isfile(args.script):
        raise CliError(f"no such script: {args.script}")
    return run_script(args.script, args.args)


# -- main --------------------------------------------------------------------------------------

Registrar = Callable[
    ["argparse._SubParsersAction[argparse.ArgumentParser]", argparse.ArgumentParser], None
]

#: The subcommands, in the order ``--help`` lists them.
_COMMANDS: list[Registrar] = [_add_show, _add_export, _add_tasks, _add_lineage, _add_versions, _add_push,
    _add_spool, _add_run]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Look at the lineage recorded by workflow_trace in the local store.",
        epilog="Run a pipeline that uses workflow_trace, then: workflow-trace show",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common()
    for register in _COMMANDS:
        register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (0 ok, 2 an error explained on stderr)."""
    if hasattr(sys.stdout, "reconfigure"):
        # Node titles are user text: never die on a console that cannot encode them.
        sys.stdout.reconfigure(errors="replace")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.code
    except (WorkflowTraceError, ValueError, LookupError) as exc:
        # No store, a bad scope or node, an unknown node, a file that is not a store: all one line.
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `workflow-trace show | head`: the reader left; exit quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
