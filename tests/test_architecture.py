"""Architecture rules, checked on the package's source alone (parsed with ``ast``; nothing is imported).

1. **No import cycles**, counting every import the code executes: module-level and function-level ones,
   ``import a.b`` and ``from . import x`` / ``from .pkg import y`` resolved to the modules they load.
   Decisions:

   - ``if TYPE_CHECKING:`` blocks are left out: they never run, and they are how typing-only references
     point up the layers without a runtime edge.
   - An import of an *ancestor package* of the importing module (``from . import _runtime`` in
     ``workflow_trace/_tracing.py`` names ``workflow_trace``; ``from .. import x`` in a backend) is not an
     edge to that package's ``__init__``: an ancestor is always being imported before its submodule runs.
     Its submodules named in the statement (``_runtime``, ``x``) are edges.
   - ``from pkg import name`` is an edge to ``pkg`` and, when ``pkg.name`` is a module of the package,
     to ``pkg.name`` as well.
   - Dynamic imports (``importlib.import_module(spec)``, the backend registry's string tables, entry
     points) are not edges: they are how the registry and lazy attributes reach *down* the layers.

2. **Layering** (``/work/shared/STYLE.md``, last section): each module imports only modules of its own
   layer or of layers before it in :data:`LAYERS`. A module missing from the table fails the test, so a
   new module gets a place.

3. **Broad handlers that swallow**: ``except Exception`` / ``except BaseException`` / bare ``except:``
   (alone or in a tuple) whose body has no ``raise`` (nested functions and classes not counted), and
   ``contextlib.suppress(Exception)`` / ``suppress(BaseException)``, only in :data:`SWALLOW_ALLOWED`
   (the containment primitive, the delivery worker, the journal writer and the CLI).

4. **Library size**: non-blank, non-comment lines of ``workflow_trace/**/*.py``, docstrings *not*
   counted (every bare string statement, as ``cloc`` does by default: documentation is not what we want
   to keep small); other strings (SQL, HTML, CSS inside ``.py`` files) are code. At most
   :data:`MAX_LINES`.

``python tests/test_architecture.py`` prints the whole report: the layer of every module and its depth in
the import graph, every cycle, upward import, swallowing handler, and the line count per file.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "workflow_trace"
SOURCE = ROOT / PACKAGE
#: Issue 15's goal for the library's size, with everything the earlier issues added: a change that adds code
#: past it must take as much out elsewhere.
MAX_LINES = 8_500

#: STYLE's layer order; modules of a layer import only their own layer and the layers before it.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (name, frozenset(f"{PACKAGE}{m}" for m in modules))
    for name, modules in (
        ("errors", ("._errors", "._version")),
        ("context", ("._context",)),
        ("nodes/meta/events", ("._nodes", "._meta", "._events")),
        ("protocols", ("._protocols",)),
        ("sqlite/http/journal helpers", ("._sqlite", "._transport", "._journal", "._codeversion", "._versions")),
        ("delivery", ("._spool", "._delivery")),
        ("concrete backends", (".backends.memory", ".backends.null", ".backends.sqlite", ".backends.supervisely",
                               ".backends.openlineage", ".backends._openlineage_config")),
        ("backend registry", (".backends",)),
        ("runtime", ("._runtime",)),
        ("steps", ("._step",)),
        ("tracing", ("._tracing",)),
        ("facade/testing/autolog", ("", ".workflow", ".version", ".testing", "._autolog")),
        # _viewer: the viewer page (HTML, CSS, JS) around a JSON document. It imports nothing of the package
        # and knows no graph object, so the graph model may fill it (Graph.to_html) without an upward edge.
        ("page template", ("._viewer",)),
        ("graph", (".graph", "._reproduce")),  # _reproduce: lineage queries behind `workflow-trace reproduce`
        ("ui", ("._ui",)),
        ("cli", (".cli", ".__main__")),
    )
)

#: Files where a broad handler may swallow the error (relative to the package).
SWALLOW_ALLOWED = frozenset({"_context.py", "_delivery.py", "_journal.py", "cli.py"})

_BROAD = frozenset({"Exception", "BaseException"})


# -- the import graph ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import statement of a package module, resolved to the package modules it loads."""

    source: str
    target: str
    line: int
    in_function: bool


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__.py``)."""
    out: dict[str, Path] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Import statements that run, with whether they sit inside a function (``if TYPE_CHECKING`` skipped)."""

    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:  # the ``else:`` of ``if TYPE_CHECKING`` does run
                    yield from visit_one(stmt, in_function)
                continue
            yield from visit_one(child, in_function)

    def visit_one(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        yield from visit(node, in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    yield from visit(tree, False)


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def imports_of(module: str, path: Path, modules: set[str]) -> list[Import]:
    """The package modules ``module`` imports (see the module docstring for what counts)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip = _ancestors(module) | {module}
    found: list[Import] = []

    def add(target: str, node: ast.stmt, in_function: bool) -> None:
        if target in modules and target not in skip:
            found.append(Import(module, target, node.lineno, in_function))

    for node, in_function in _walk_imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                for i in range(1, len(parts) + 1):  # ``import a.b.c`` loads a, a.b and a.b.c
                    add(".".join(parts[:i]), node, in_function)
            continue
        if node.level:
            base = _package_of(module, path).split(".")
            if node.level > 1:
                base = base[: len(base) - node.level + 1]
            stem = ".".join(base + ([node.module] if node.module else []))
        else:
            stem = node.module or ""
        parts = stem.split(".")
        for i in range(1, len(parts) + 1):
            add(".".join(parts[:i]), node, in_function)
        for alias in node.names:
            add(f"{stem}.{alias.name}", node, in_function)
    return found


def import_graph() -> dict[str, list[Import]]:
    """Every package module and the imports it executes."""
    files = module_files()
    names = set(files)
    return {module: imports_of(module, path, names) for module, path in files.items()}


def find_cycles(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (or a module importing itself),
    each as a concrete cycle through it (Tarjan's algorithm, then a shortest loop inside the component)."""
    edges = {m: sorted({i.target for i in imps}) for m, imps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, []):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, []):
                components.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            strongconnect(v)

    cycles = []
    for comp in components:
        members = set(comp)
        first = comp[0]
        # Breadth-first from ``first`` until a module that imports ``first``: the shortest loop through it.
        previous: dict[str, str] = {}
        frontier, last = [first], None
        while frontier and last is None:
            following = []
            for v in frontier:
                if first in edges[v]:
                    last = v
                    break
                for w in edges[v]:
                    if w in members and w not in previous and w != first:
                        previous[w] = v
                        following.append(w)
            frontier = following
        loop = [last or first]
        while loop[-1] != first:
            loop.append(previous[loop[-1]])
        cycles.append(loop[::-1])
    return cycles


def cycle_text(cycle: list[str], graph: dict[str, list[Import]]) -> str:
    """``a (line 3) -> b (line 9, in a function) -> a``."""
    steps = []
    for i, module in enumerate(cycle):
        target = cycle[(i + 1) % len(cycle)]
        imp = next(x for x in graph[module] if x.target == target)
        steps.append(f"{module} (line {imp.line}{', in a function' if imp.in_function else ''})")
    return " -> ".join([*steps, cycle[0]])


def layer_of(module: str) -> int | None:
    for i, (_name, modules) in enumerate(LAYERS):
        if module in modules or any(module.startswith(m + ".") for m in modules if m != PACKAGE):
            return i
    return None


def upward_imports(graph: dict[str, list[Import]]) -> list[str]:
    """Imports of a module in a later layer than the importer's: ``file:line: a (layer) imports b (layer)``."""
    out = []
    files = module_files()
    for module, imps in sorted(graph.items()):
        mine = layer_of(module)
        if mine is None:
            continue
        for imp in imps:
            theirs = layer_of(imp.target)
            if theirs is not None and theirs > mine:
                rel = files[module].relative_to(ROOT)
                out.append(
                    f"{rel}:{imp.line}: {module} ({LAYERS[mine][0]}) imports {imp.target} ({LAYERS[theirs][0]})"
                    f"{' inside a function' if imp.in_function else ''}"
                )
    return out


def depths(graph: dict[str, list[Import]]) -> dict[str, int]:
    """The inferred layer: the longest chain of imports below each module (0 for a leaf); a module on a
    cycle gets the depth of its cycle's members."""
    edges = {m: {i.target for i in imps} for m, imps in graph.items()}
    memo: dict[str, int] = {}
    active: set[str] = set()

    def depth(m: str) -> int:
        if m in memo:
            return memo[m]
        if m in active:
            return 0
        active.add(m)
        value = max((depth(t) + 1 for t in edges.get(m, ())), default=0)
        active.discard(m)
        memo[m] = value
        return value

    return {m: depth(m) for m in sorted(edges)}


# -- broad handlers -----------------------------------------------------------------------------------


def _names(expr: ast.expr | None) -> set[str]:
    if expr is None:
        return {"<bare>"}
    items = expr.elts if isinstance(expr, ast.Tuple) else [expr]
    out = set()
    for item in items:
        if isinstance(item, ast.Name):
            out.add(item.id)
        elif isinstance(item, ast.Attribute):
            out.add(item.attr)
    return out


def _raises(body: list[ast.stmt]) -> bool:
    def visit(node: ast.AST) -> bool:
        if isinstance(node, ast.Raise):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return False  # a raise in a nested definition does not run in the handler
        return any(visit(child) for child in ast.iter_child_nodes(node))

    return any(visit(stmt) for stmt in body)


def swallowing_handlers() -> list[tuple[str, int, str]]:
    """``(file relative to the package, line, what)`` of every broad handler or suppress that swallows."""
    out = []
    for path in sorted(SOURCE.rglob("*.py")):
        rel = path.relative_to(SOURCE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler):
                broad = _names(node.type) & (_BROAD | {"<bare>"})
                if broad and not _raises(node.body):
                    what = "except:" if node.type is None else f"except {ast.unparse(node.type)}"
                    out.append((rel, node.lineno, what))
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                if name == "suppress" and any(_names(arg) & _BROAD for arg in node.args):
                    out.append((rel, node.lineno, ast.unparse(node)))
    return out


# -- size ---------------------------------------------------------------------------------------------

_NOT_CODE = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                       tokenize.ENCODING, tokenize.ENDMARKER})


def code_lines(path: Path) -> int:
    """Lines holding a token that is not a comment or whitespace, docstring lines not counted."""
    text = path.read_text(encoding="utf-8")
    docstring_lines: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            docstring_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in _NOT_CODE:
            continue
        rows = range(tok.start[0], tok.end[0] + 1)
        if tok.type == tokenize.STRING and all(r in docstring_lines for r in rows):
            continue
        if tok.type == tokenize.OP and tok.start[0] in docstring_lines and tok.string in ("(", ")"):
            continue
        lines.update(rows)
    return len(lines)


def library_size() -> dict[str, int]:
    return {path.relative_to(SOURCE).as_posix(): code_lines(path) for path in sorted(SOURCE.rglob("*.py"))}


# -- the tests ----------------------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    """Every module of the package is placed in STYLE's layer table."""
    unplaced = [m for m in import_graph() if layer_of(m) is None]
    assert [] == unplaced, "place these modules in LAYERS: " + ", ".join(unplaced)


def test_no_import_cycles() -> None:
    """The import graph (function-level imports included, TYPE_CHECKING excluded) has no cycle."""
    graph = import_graph()
    cycles = [cycle_text(c, graph) for c in find_cycles(graph)]
    assert [] == cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_imports_a_later_layer() -> None:
    """Each module imports only its own layer and earlier ones (STYLE's layering)."""
    upward = upward_imports(import_graph())
    assert [] == upward, "imports of a later layer:\n" + "\n".join(upward)


def test_broad_handlers_swallow_only_where_allowed() -> None:
    """except Exception / BaseException / bare except without a re-raise only in the four allowed modules."""
    found = [f"workflow_trace/{f}:{line}: {what}" for f, line, what in swallowing_handlers()
             if f not in SWALLOW_ALLOWED]
    assert [] == found, "broad handlers that swallow the error outside the allowed modules:\n" + "\n".join(found)


def test_library_size() -> None:
    """At most MAX_LINES lines of code in the package (docstrings, comments and blank lines not counted)."""
    total = sum(library_size().values())
    print(f"workflow_trace: {total} lines of code (limit {MAX_LINES})")
    assert total <= MAX_LINES, f"{total} lines of code, over the limit of {MAX_LINES}"


def test_analysis_sees_relative_and_function_level_imports(tmp_path: Path) -> None:
    """The resolver handles ``from . import x``, ``from .pkg import y``, ``from .. import z``, function-level
    imports and TYPE_CHECKING blocks."""
    names = {"p", "p.a", "p.b", "p.sub", "p.sub.c", "p.sub.d"}
    code = (
        "from typing import TYPE_CHECKING\n"
        "from . import a\n"
        "from .sub import c\n"
        "from .sub.d import thing\n"
        "if TYPE_CHECKING:\n"
        "    from . import b\n"
        "def f():\n"
        "    from .b import g\n"
    )
    (tmp_path / "m.py").write_text(code)
    found = {(i.target, i.in_function) for i in imports_of("p.m", tmp_path / "m.py", names | {"p.m"})}
    assert {("p.a", False), ("p.sub", False), ("p.sub.c", False), ("p.sub.d", False), ("p.b", True)} == found
    (tmp_path / "c.py").write_text("from .. import a\nfrom ..b import x\nfrom . import d\n")
    found = {i.target for i in imports_of("p.sub.c", tmp_path / "c.py", names)}
    assert {"p.a", "p.b", "p.sub.d"} == found


def test_cycle_finder_reports_a_loop() -> None:
    """A two-module loop is found and printed in import order."""
    graph = {
        "x": [Import("x", "y", 1, False)],
        "y": [Import("y", "x", 5, True)],
        "z": [Import("z", "x", 2, False)],
    }
    assert [["x", "y"]] == find_cycles(graph)
    assert "x (line 1) -> y (line 5, in a function) -> x" == cycle_text(["x", "y"], graph)


def test_handler_and_size_rules_on_samples(tmp_path: Path) -> None:
    """A swallowing handler is told from a re-raising one; docstrings and comments are not counted."""
    tree = ast.parse("try:\n    pass\nexcept Exception:\n    def f():\n        raise\n")
    handler = next(n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler))
    assert not _raises(handler.body)
    tree = ast.parse("try:\n    pass\nexcept (ValueError, BaseException) as e:\n    raise X from e\n")
    handler = next(n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler))
    assert _raises(handler.body)
    assert {"ValueError", "BaseException"} == _names(handler.type)
    sample = tmp_path / "s.py"
    sample.write_text(
        '"""Doc\n\nmore."""\n\n# comment\nx = 1  # c\n\ndef f():\n    """One."""\n    return """a\nb"""\n'
    )
    assert 4 == code_lines(sample)  # x = 1, def, return + the string's second line


def report() -> None:
    """Print the whole report (layers, depths, cycles, upward imports, handlers, size)."""
    graph = import_graph()
    depth = depths(graph)
    print("modules by STYLE layer (inferred depth = longest import chain below the module):")
    for module in sorted(graph, key=lambda m: (layer_of(m) if layer_of(m) is not None else 99, depth[m], m)):
        index = layer_of(module)
        layer = LAYERS[index][0] if index is not None else "NOT PLACED"
        print(f"  {index if index is not None else '?':>2} {layer:<28} depth {depth[module]:>2}  {module}")
    cycles = find_cycles(graph)
    print(f"\nimport cycles: {len(cycles)}")
    for c in cycles:
        print("  " + cycle_text(c, graph))
    ups = upward_imports(graph)
    print(f"\nimports of a later layer: {len(ups)}")
    for line in ups:
        print("  " + line)
    handlers = swallowing_handlers()
    bad = [h for h in handlers if h[0] not in SWALLOW_ALLOWED]
    print(f"\nbroad handlers that swallow: {len(handlers)} ({len(bad)} outside the allowed modules)")
    for f, line, what in handlers:
        print(f"  {'  ' if f in SWALLOW_ALLOWED else '!!'} workflow_trace/{f}:{line}: {what}")
    size = library_size()
    print(f"\nlines of code (docstrings, comments, blank lines not counted): {sum(size.values())} "
          f"(limit {MAX_LINES})")
    for f, n in sorted(size.items(), key=lambda kv: -kv[1]):
        print(f"  {n:>6}  {f}")


if __name__ == "__main__":
    report()
