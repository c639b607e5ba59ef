"""The ``workflow-trace`` command (also ``python -m workflow_trace``): look at the local lineage store.

::

    workflow-trace show [--scope S] [--db PATH]            the graph as a text tree
    workflow-trace export --format mermaid|dot|json|html [-o FILE] [--scope S] [--db PATH]
    workflow-trace tasks [--scope S] [--db PATH]           a table of tasks
    workflow-trace lineage NODE [--direction up|down|both] [--db PATH]   e.g. project:42, file:/m/best.pt
    workflow-trace spool [retry | drop --dead] [--dest KEY] [--spool PATH]   events waiting for a server

``--db`` defaults to ``$WORKFLOW_TRACE_DB`` or ``./.workflow_trace/workflow.db``, like the backend. Errors
(no store, a bad scope, an unknown node) are one line on stderr and exit code 2.

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


# -- main --------------------------------------------------------------------------------------

Registrar = Callable[
    ["argparse._SubParsersAction[argparse.ArgumentParser]", argparse.ArgumentParser], None
]

#: The subcommands, in the order ``--help`` lists them.
_COMMANDS: list[Registrar] = [_add_show, _add_export, _add_tasks, _add_lineage, _add_spool]


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
