"""The ``workflow-trace`` command (also ``python -m workflow_trace``): look at the local lineage store.

::

    workflow-trace show [--scope S]                 the graph as a text tree (tasks, their runs, data)
    workflow-trace tasks [--scope S]                a table of tasks (runs, inputs, outputs)
    workflow-trace lineage NODE [--direction up|down|both] [--format text|json|mermaid|dot|html]
    workflow-trace export --format text|json|mermaid|dot|html [-o FILE] [--scope S]
    workflow-trace reproduce TASK [--restore DIR]   what a task ran and read; restore the versions it read
    workflow-trace ui [--host 127.0.0.1] [--port 8765] [--open]   the interactive viewer in the browser
    workflow-trace versions list|restore PROJECT    local project versions
    workflow-trace push BACKEND [--timeout S]       replay the store to a server, idempotently
    workflow-trace spool [retry | drop --dead | drop --destination D] [-v]   events waiting for a server
    workflow-trace run SCRIPT [ARGS...]             run a script with autolog on, in one step

Every command takes ``--db PATH`` (default: ``$WORKFLOW_TRACE_DB``, else the nearest ``.workflow_trace/``
from the current folder upwards, as git finds ``.git``) and the same node syntax: ``KIND:ID`` or
``KIND:PATH`` (a relative path as it was recorded, or against the current folder). Reading commands never
write the store; a file that is not a store is refused unchanged. Errors are one line on stderr and exit
code 2; terminal output shows control characters escaped.

``push`` replays the store's events in the order they were stored through the destination backend (its
delivery, retries and spool), then waits up to ``--timeout`` seconds for delivery. It is idempotent: the
store records, per destination (the backend's ``transport.key``; never a token), the id of every event it
handed over, and the next push sends only the others. Events of tasks the store numbered itself are not
sent to Supervisely, whose task ids they would collide with. Exit 0: everything delivered; 1: some events
wait in the spool or were refused (``workflow-trace spool`` shows them).

Each subcommand is a handler ``_cmd_<name>(args) -> int`` declared with :func:`_command` (its name, help and
arguments), in the order ``--help`` lists them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import _reproduce
from ._autolog import run_script
from ._delivery import DeliveringBackend
from ._errors import VersioningError, WorkflowTraceError
from ._events import Event
from ._nodes import Project
from ._spool import Spool, default_spool_path
from ._ui import serve
from ._version import __version__
from .backends import Backend, create_backend
from .backends.sqlite import SQLiteBackend, fingerprint
from .backends.supervisely import SuperviselyBackend
from .graph import Graph, format_duration, format_time, load_graph, one_line, terminal_safe

__all__ = ["CliError", "build_parser", "main"]

PROG = "workflow-trace"
Subparsers = Any  # argparse._SubParsersAction, private in typeshed


class CliError(Exception):
    """An expected failure: printed as one line on stderr, the process exits with code 2."""


# -- shared options ----------------------------------------------------------------------------


Argument = tuple[tuple[str, ...], dict[str, Any]]
Handler = Callable[[argparse.Namespace], int]
Registrar = Callable[[Subparsers, argparse.ArgumentParser], None]

#: The subcommands, in the order ``--help`` lists them (the order they are defined in).
_COMMANDS: list[Registrar] = []


def _arg(*flags: str, **options: Any) -> Argument:
    """One ``add_argument`` call, declared."""
    return flags, options


def _command(name: str, help: str, description: str | None = None, arguments: Sequence[Argument] = (),
             store: bool = True) -> Callable[[Handler], Handler]:
    """Declare the decorated handler as subcommand ``name`` with ``arguments`` (and ``--db`` if ``store``)."""
    def declare(handler: Handler) -> Handler:
        def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
            parser = sub.add_parser(name, parents=[common] if store else [], help=help, description=description)
            for flags, options in arguments:
                parser.add_argument(*flags, **options)
            parser.set_defaults(handler=handler)

        _COMMANDS.append(register)
        return handler

    return declare


_SCOPE = _arg("--scope", default="workspace", metavar="S",
              help="workspace (default), project:ID or project:PATH (the tasks that touched it), or task:ID")
_OUTPUT = _arg("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
_FORMATS = ("text", "json", "mermaid", "dot", "html")
_WALKS = {"up": Graph.upstream, "down": Graph.downstream, "both": Graph.lineage}  # --direction: the walk


def _write(text: str, output: str | None = None) -> None:
    """Write ``text`` to ``output`` (a file, or stdout for ``None`` / ``-``)."""
    if output is None or output == "-":
        print(text, end="", flush=True)
        return
    path = Path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None


def _write_table(title: str, header: tuple[str, ...], rows: Sequence[tuple[str, ...]], right: set[int],
                 empty: str) -> int:
    """Write ``title`` and the table of ``rows`` (the columns in ``right`` right-aligned), or ``empty`` when
    there are no rows; the exit code (0)."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ("  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row))
             .rstrip() for row in (header, *rows))
    _write(title + "\n".join(lines) + "\n" if rows else empty)
    return 0


def _task_key(text: str) -> str:
    raw = text.strip()
    ident = raw.split(":", 1)[1] if raw.lower().startswith("task:") else raw
    if not ident.strip().isdigit():
        raise CliError(f"name the task by its id: TASK or task:ID (got {terminal_safe(text)!r})")
    return f"task:{int(ident)}"


# -- show, tasks, export, lineage ----------------------------------------------------------------


@_command("show", "print the lineage graph as a text tree",
          "Print each task with its runs, what it read (<-) and wrote (->).", [_SCOPE])
def _cmd_show(args: argparse.Namespace) -> int:
    graph = load_graph(args.db, args.scope)
    store = f"store: {terminal_safe(graph.store or '?')}\n"
    first, _, rest = graph.to_text().partition("\n")
    _write(f"{first}\n{store}{rest}" if graph.nodes else f"no lineage recorded yet in scope {graph.scope}\n{store}")
    return 0


@_command("tasks", "list tasks: id, name, status, runs, start, duration, inputs, outputs", arguments=[_SCOPE])
def _cmd_tasks(args: argparse.Namespace) -> int:
    graph = load_graph(args.db, args.scope)
    counts = Counter((edge.task_key, edge.relation) for edge in graph.edges)
    # (A task only seen as someone's input has nothing recorded about it here: it is not listed.)
    rows = [
        (str(info.id), one_line(node.label, 40), info.status,
         f"{len(info.runs):,}" + (f" ({info.failed_runs:,} failed)" if info.failed_runs else ""),
         format_time(info.started_at), "-" if info.duration is None else format_duration(info.duration),
         str(counts[node.key, "input"]), str(counts[node.key, "output"]))
        for node in sorted(graph.tasks, key=lambda n: n.external_id or 0) if (info := node.task) is not None
    ]
    return _write_table("", ("ID", "NAME", "STATUS", "RUNS", "START", "DURATION", "INPUTS", "OUTPUTS"), rows,
                        {0, 3, 6, 7}, f"no tasks recorded yet in scope {graph.scope}\n")


@_command("lineage", "what a node came from and what came from it",
          "Follow a node's lineage transitively, generation by generation: upstream (what produced what it read) "
          "and downstream (what read what it wrote).", [
              _arg("node", metavar="NODE", help="KIND:ID or KIND:PATH, e.g. project:42, file:model/best.pt"),
              _arg("--direction", choices=("up", "down", "both"), default="both"),
              _arg("--format", "-f", default="text", choices=_FORMATS,
                   help="text (default): two trees; the others export the lineage subgraph"),
              _OUTPUT])
def _cmd_lineage(args: argparse.Namespace) -> int:
    graph = load_graph(args.db)
    try:
        graph.find(args.node)  # an unknown node is an UnknownNodeError (a LookupError), a malformed one this:
    except ValueError as exc:
        raise CliError(f"bad node {terminal_safe(args.node)!r}: {exc}") from None
    _write(graph.lineage_text(args.node, args.direction) if args.format == "text"
           else _WALKS[args.direction](graph, args.node).export(args.format), args.output)
    return 0


@_command("export", "export the graph as text, JSON, Mermaid, DOT or HTML",
          "Export the lineage graph. HTML is the interactive viewer in one file that works offline.",
          [_arg("--format", "-f", required=True, choices=_FORMATS), _OUTPUT, _SCOPE])
def _cmd_export(args: argparse.Namespace) -> int:
    graph = load_graph(args.db, args.scope)
    _write(graph.export(args.format), args.output)
    if args.output not in (None, "-"):
        print(f"wrote {args.output} ({len(graph.nodes)} nodes, {len(graph.edges)} edges, scope {graph.scope})",
              file=sys.stderr)
    return 0


# -- reproduce, ui ------------------------------------------------------------------------------


@_command("reproduce", "what a task ran and read; restore the local versions it read",
          "Show the command, code version and params of a task and every input with the version or generation it "
          "read (and whether a local one changed since). --restore DIR restores every local project version it "
          "read into DIR.", [
              _arg("task", metavar="TASK", help="the task: its id or task:ID"),
              _arg("--restore", metavar="DIR", help="restore the local project versions it read into DIR")])
def _cmd_reproduce(args: argparse.Namespace) -> int:
    key = _task_key(args.task)
    graph = load_graph(args.db)
    task = graph.nodes[graph.find(key)[0]]  # an unknown task: the error names the closest ones
    store = SQLiteBackend.open_existing(args.db)
    _write(_reproduce.report(graph, store, task))
    if args.restore:
        try:
            done = _reproduce.restore(graph, store, task, Path(args.restore).absolute())
        except VersioningError as exc:
            raise CliError(str(exc)) from None
        if not done:
            print(f"{key} read no local project version: nothing to restore", file=sys.stderr)
        for node_key, folder in done:
            print(f"restored {terminal_safe(node_key)} into {terminal_safe(str(folder))}")
    return 0


class _StoreProvider:
    """What ``workflow-trace ui`` serves: the store's graph, read afresh when the store changed."""

    def __init__(self, db: str | None) -> None:
        self.db = db
        self.path = SQLiteBackend.open_existing(db).path
        self._cache: tuple[str, Graph] | None = None

    def version(self) -> str:
        prints = [fingerprint(f"{self.path}{suffix}") for suffix in ("", "-wal")]  # size and mtime, or None
        return "-".join(f"{p['size']}.{p['mtime']}" if p else "-" for p in prints)

    def _graph(self) -> Graph:
        version = self.version()
        if self._cache is None or self._cache[0] != version:
            self._cache = (version, load_graph(self.db))
        return self._cache[1]

    def graph(self, scope: str) -> dict[str, Any]:
        return self._graph().scoped(scope).to_dict()

    def lineage(self, node: str, direction: str, depth: int | None) -> dict[str, Any]:
        return _WALKS[direction](self._graph(), node).to_dict()


@_command("ui", "the interactive lineage viewer in the browser (read-only)",
          "Serve the viewer of the store on http://127.0.0.1:8765/ (read-only; new runs appear without reloading). "
          "Its address is printed alone on stdout once it listens (with --port 0, the port picked). It opens no "
          "browser unless --open.", [
              _arg("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)"),
              _arg("--port", type=int, default=8765, help="the port (default 8765; 0: any free one)"),
              _arg("--open", action="store_true", help="open the viewer in the default browser")])
def _cmd_ui(args: argparse.Namespace) -> int:
    provider = _StoreProvider(args.db)
    try:
        serve(provider, args.host, args.port, open_browser=args.open)
    except OSError as exc:
        raise CliError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


# -- versions ----------------------------------------------------------------------------------


def _add_versions(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "versions", help="versions of a local project: list, restore",
        description="Versions (snapshots) of local project folders kept in the store, as made by "
        "@consumes_project(version=True), workflow_step(version_inputs=True) or workflow_trace.version.create. "
        "PROJECT is the folder, project:PATH, or project:ID with the local id the store gave it.",
    )
    actions = parser.add_subparsers(dest="versions_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common], help="a table of the project's versions")
    restore = actions.add_parser(
        "restore", parents=[common], help="recreate a version as a new folder next to the project",
        description="Recreate a version as a new folder '<name>, from ver. N' next to the project, checking "
        "every file's hash; prints the new folder.",
    )
    which = restore.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", type=int, metavar="N", dest="version_num", help="the version number")
    which.add_argument("--id", type=int, metavar="ID", dest="version_id", help="the version id")
    restore.add_argument("--skip-missed", action="store_true",
                         help="restore without files whose stored copy is missing or damaged (each one is logged)")
    for action, handler in ((listing, _cmd_versions_list), (restore, _cmd_versions_restore)):
        action.add_argument("project", metavar="PROJECT", help="the project folder, project:PATH or project:ID")
        action.set_defaults(handler=handler)


_COMMANDS.append(_add_versions)


def _local_project(args: argparse.Namespace) -> tuple[SQLiteBackend, Project, Path]:
    """The store and the local project named by ``args.project`` (it must have been versioned)."""
    text = args.project.strip()
    ident = text[len("project:"):].strip() if text.lower().startswith("project:") else text
    if not ident:
        raise CliError("name the project: its folder, project:PATH or project:ID")
    kind = ident.split(":", 1)[0].lower()
    if kind in {"task", "dataset", "file", "folder", "job", "app"}:
        raise CliError(f"versions are kept for projects, not a {kind}: name the project (its folder, "
                       f"project:PATH or project:ID)")
    store = SQLiteBackend.open_existing(args.db)
    lookup = store.local_versions()
    found = (lookup.find(Project(id=int(ident))) if ident.isdigit() else None) or lookup.find(Project(path=ident))
    if found is None:
        # The node syntax of every other command: a relative path as it was recorded (from any folder); a
        # project the graph does not know is an UnknownNodeError naming the closest ones.
        graph = load_graph(args.db)
        folders = [graph.nodes[key].path for key in graph.find(f"project:{ident}")]
        found = next(filter(None, (lookup.find(Project(path=p)) for p in folders if p)), None)
    if found is None:
        what = f"project {ident}" if ident.isdigit() else os.path.abspath(ident)
        raise CliError(f"unknown project: {terminal_safe(what)} has no versions in {store.path}")
    project_id, folder = found
    return store, Project(id=project_id), folder


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    power = min(3, (n.bit_length() - 1) // 10)  # the largest with 1024 ** power <= n, at most GiB
    return f"{n / 1024 ** power:.1f} {('KiB', 'MiB', 'GiB')[power - 1]}"


def _cmd_versions_list(args: argparse.Namespace) -> int:
    store, project, folder = _local_project(args)
    versions = store.list_versions(project)
    sizes = store.local_versions().sizes(project)
    rows = [
        (str(v.id), f"v{v.version}", one_line(v.title or "-", 50), format_time(v.created_at),
         str(sizes.get(v.id, (0, 0))[0]), _size(sizes.get(v.id, (0, 0))[1]))
        for v in versions
    ]
    return _write_table(f"versions of {terminal_safe(str(folder))} (project:{project.id})\n",
                        ("ID", "VERSION", "TITLE", "CREATED", "FILES", "SIZE"), rows, {0, 4, 5},
                        f"no versions of {folder} yet\n")


def _cmd_versions_restore(args: argparse.Namespace) -> int:
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


@_command("push", "replay the local store to a remote backend (idempotent)",
          "Send every event of the local store, in order, to BACKEND (a backend string such as supervisely, "
          "supervisely+https://host or openlineage+http://host:5000), then wait for delivery. The store remembers "
          "what it handed to each destination: pushing again sends only new events. Exit code 0 when everything "
          "was delivered, 1 when some events wait in the spool or were refused.", [
              _arg("backend", metavar="BACKEND", help="where to push: a backend string"),
              _arg("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for delivery in total (default 60); what is not delivered by then stays "
                   "in the spool and is sent by the next push or process using that destination")])
def _cmd_push(args: argparse.Namespace) -> int:
    if "," in args.backend:
        raise CliError("push to one destination at a time (no comma-separated backend strings)")
    if args.timeout < 0:
        raise CliError("--timeout must not be negative")
    store = SQLiteBackend.open_existing(args.db)
    dest = _push_destination(args.backend, store)
    delivery = dest if isinstance(dest, DeliveringBackend) else getattr(dest, "delivery", None)
    spool = delivery.spool if isinstance(delivery, DeliveringBackend) else None
    key = getattr(getattr(dest, "transport", None), "key", None)  # the transport's key, never a token
    key = key if isinstance(key, str) and key else repr(dest)
    deadline = time.monotonic() + args.timeout
    replayed = local = 0
    stopped = False
    batch: list[Event] = []

    def send() -> bool:
        """Hand ``batch`` over; false when it still waits (the server is away; refused events are dead)."""
        dest.emit(batch)
        if not dest.flush(max(0.0, deadline - time.monotonic())) and spool is not None and spool.has_pending(key):
            return False
        store.mark_pushed(key, [e.event_id for e in batch])
        batch.clear()
        return True

    try:
        total, before = store.counts()["events"], store.pushed_count(key)
        for event, is_local in store.iter_unpushed(key):
            if is_local and isinstance(dest, SuperviselyBackend):
                local += 1
                continue
            batch.append(event)
            replayed += 1
            if len(batch) >= 500 and (stopped := not send()):
                break
        stopped = stopped or (bool(batch) and not send())
        # Events an earlier push or process left in the spool for this destination go out too.
        while spool is not None and not stopped and spool.has_pending(key) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        dest.close()  # a delivering backend keeps what is left in its durable spool
    if batch:
        store.mark_pushed(key, [e.event_id for e in batch])  # now in the spool: delivered from there
    report: dict[str, object] = {"events in the store": total, "pushed before": f"{before} (not sent again)"}
    if local:
        report["of local tasks"] = f"{local} (not sent: ids this store gave its tasks mean nothing on the server)"
    report["replayed now"] = replayed
    stats = delivery.stats() if isinstance(delivery, DeliveringBackend) else None
    pending = spool.pending_count(key) if spool is not None else 0
    if stats is not None:
        if stats.emitted < replayed:
            report["no place there"] = f"{replayed - stats.emitted} (step start/finish events)"
        report |= {"delivered": stats.delivered, "waiting in the spool": pending, "refused by the server": stats.dead}
    lines = [f"pushed to {key}", *(f"  {name + ':':<22} {value}" for name, value in report.items())]
    if stopped:
        lines.append("  stopped: the destination did not take the events in time; push again later")
    print("\n".join(lines))
    if pending or (stats is not None and stats.dead) or stopped:
        print(f"{PROG}: not everything was delivered: see `{PROG} spool` (events wait there and are sent by the "
              "next push or process using this destination)", file=sys.stderr)
        return 1
    return 0


def _push_destination(spec: str, store: SQLiteBackend) -> Backend:
    """The backend to push ``store`` to; its spool sits next to the store (where ``spool --db`` looks)."""
    saved = os.environ.get("WORKFLOW_TRACE_SPOOL")
    os.environ["WORKFLOW_TRACE_SPOOL"] = str(default_spool_path(store.path))
    try:
        dest = create_backend(spec)
    finally:
        if saved is None:
            del os.environ["WORKFLOW_TRACE_SPOOL"]
        else:
            os.environ["WORKFLOW_TRACE_SPOOL"] = saved
    if isinstance(dest, SQLiteBackend) and dest.path.resolve() == store.path.resolve():
        dest.close()
        raise CliError(f"cannot push {store.path} into itself")
    return dest


# -- spool -------------------------------------------------------------------------------------


def _clip_words(text: str, limit: int | None) -> str:
    """``text`` on one line, cut at a word boundary with an ellipsis if longer than ``limit``."""
    flat = " ".join(text.split())
    return flat if limit is None or len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


@_command("spool", "events waiting for a remote server: counts, retry, drop",
          "The delivery spool: events a remote backend (Supervisely, OpenLineage) has not taken yet (pending: "
          "retried automatically; held: waiting for the server to support them) or refused (dead). 'retry' makes "
          "dead events pending again; 'drop --dead' deletes the dead ones; 'drop --destination D' deletes every "
          "event of a destination that will not come back (asks first, unless --yes).", [
              _arg("action", nargs="?", default="status", choices=("status", "retry", "drop")),
              _arg("--dead", action="store_true", help="with drop: delete the dead events"),
              _arg("--destination", "--dest", dest="dest", metavar="D",
                   help="only this destination (as listed by 'spool')"),
              _arg("--yes", "-y", action="store_true", help="with drop --destination: do not ask"),
              _arg("-v", "--verbose", action="store_true", help="show whole errors"),
              _arg("--spool", metavar="PATH",
                   help="the spool file (default: $WORKFLOW_TRACE_SPOOL, else spool.db next to the store)")])
def _cmd_spool(args: argparse.Namespace) -> int:
    spool = Spool(args.spool or default_spool_path(Path(args.db) if args.db else None))
    if args.action == "retry":
        print(f"{spool.retry_dead(args.dest)} dead event(s) made pending again in {spool.path}")
        return 0
    if args.action == "drop":
        if args.dead:
            print(f"{spool.drop_dead(args.dest)} dead event(s) deleted from {spool.path}")
            return 0
        if not args.dest:
            raise CliError("say what to drop: spool drop --dead, or spool drop --destination D")
        counts = [c for c in spool.counts() if c.dest == args.dest]
        if not counts:
            raise CliError(f"the spool {spool.path} has no events for {terminal_safe(args.dest)}")
        n = counts[0].pending + counts[0].dead
        if not args.yes:
            print(f"delete all {n} event(s) waiting for {terminal_safe(args.dest)}? They will never be delivered. "
                  "[y/N] ", end="", flush=True)
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 1
        print(f"{spool.drop(args.dest, dead_only=False)} event(s) of {terminal_safe(args.dest)} deleted from "
              f"{spool.path}")
        return 0
    counts = [c for c in spool.counts() if args.dest in (None, c.dest)]
    rows = [(terminal_safe(c.dest), str(c.pending), str(c.dead), str(c.held),
             "-" if c.oldest is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.oldest)),
             _clip_words(terminal_safe(c.last_error or "-"), None if args.verbose else 80)) for c in counts]
    return _write_table(f"spool: {spool.path}\n", ("DESTINATION", "PENDING", "DEAD", "HELD", "OLDEST", "LAST ERROR"),
                        rows, {1, 2, 3}, f"the spool is empty ({spool.path})\n")


# -- run ---------------------------------------------------------------------------------------


@_command("run", "run a Python script with autolog on: its Supervisely SDK calls are its workflow",
          "Run SCRIPT with ARGS as `python SCRIPT ARGS` would, inside one step named after it, with the Supervisely "
          "SDK instrumented (workflow_trace.autolog). The exit code is the script's.", [
              _arg("script", help="the Python script"),
              _arg("args", nargs=argparse.REMAINDER, help="passed to the script")], store=False)
def _cmd_run(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.script):
        raise CliError(f"no such script: {args.script}")
    return run_script(args.script, args.args)


# -- main --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Look at the lineage recorded by workflow_trace in the local store.",
        epilog="Run a pipeline that uses workflow_trace, then: workflow-trace show",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH", help="the lineage store (default: $WORKFLOW_TRACE_DB, else the "
                        "nearest .workflow_trace/ upwards)")
    for register in _COMMANDS:
        register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (0 ok, 2 an error explained on stderr)."""
    if hasattr(sys.stdout, "reconfigure"):
        # Node titles are user text: never die on a console that cannot encode them.
        sys.stdout.reconfigure(errors="replace")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["versions"] and argv[1:2] and argv[1] not in ("list", "restore", "-h", "--help"):
        argv.insert(1, "list")  # `versions PROJECT` lists them
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except BrokenPipeError:
        # `workflow-trace show | head`: the reader left; exit quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CliError as exc:
        print(f"{PROG}: error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    except (WorkflowTraceError, ValueError, LookupError, OSError) as exc:
        # No store, a bad scope or node, an unknown node, a file that is not a store: all one line.
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{PROG}: error: {terminal_safe(message)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
