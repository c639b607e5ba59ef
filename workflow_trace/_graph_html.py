"""The HTML export of a lineage graph: a layered left-to-right layout and SVG cards, computed in Python.

The page is one file with no JavaScript and no network access (a Content-Security-Policy forbids both):
it can be attached to a ticket or opened from disk. Every piece of user text is escaped.

Layout (a small Sugiyama): weakly connected components are laid out one under another; in each, cycles
(a task that rewrites the project it read) are broken by reversing DFS back edges, nodes get layers by
longest path (inputs are pulled right, next to their first consumer), and a few barycentre sweeps order
each layer to reduce crossings.
"""

from __future__ import annotations

import html
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import Graph, GraphNode

__all__ = ["Layout", "layout", "render_html"]

CARD_W = 260
CARD_H = 80
H_GAP = 90
V_GAP = 24
COMPONENT_GAP = 48
MARGIN = 24
SWEEPS = 4
PLACEHOLDER_H = 12
MAX_PLACEHOLDERS = 20_000

# 24x24 glyphs (filled, even-odd), drawn for this page: no icon font, no network.
_ICONS: dict[str, str] = {
    "task": "M8 5v14l11-7z",
    "project": "M4 4h7v7H4zM13 4h7v7h-7zM4 13h7v7H4zM13 13h7v7h-7z",
    "dataset": "M8 3h13v13H8zM10 5v9h9V5zM3 8h3v10h10v3H3z",
    "file": "M6 2h8l6 6v14H6zM13 3.5V9h5.5z",
    "model": "M12 2l9 5v10l-9 5-9-5V7zM12 4.3L5.2 8 12 11.7 18.8 8zM5 9.7v6.1l6 3.3v-6.1zM13 13v6.1l6-3.3V9.7z",
    "folder": "M2 5h7l2 2h11v13H2z",
    "job": "M8 2h8v3H8zM5 4h2v3h10V4h2v18H5zM8 12l1.5-1.5 2 2 4-4L17 10l-5.5 5.5z",
    "app": "M3 4h18v16H3zM5 8v10h14V8z",
}

_KIND_NAMES = {
    "task": "Task", "project": "Project", "dataset": "Dataset", "file": "File", "model": "Model weights",
    "folder": "Folder", "job": "Labeling job", "app": "App session",
}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _clip_left(text: str, limit: int) -> str:
    """Keep the end of a long path: its last folders and the file name say the most."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def _card_description(node: GraphNode, limit: int) -> str:
    """The card's second line: its own description, a task's status, else the node's path."""
    if (node.card is None or not node.card.description) and node.task is None and node.path:
        return _clip_left(node.path, limit)
    return _clip(node.description, limit)


def _style_kind(node: GraphNode) -> str:
    return "model" if node.kind == "file" and node.model_weight else node.kind


# -- layout ------------------------------------------------------------------------------------


@dataclass
class Layout:
    """Card positions (top-left corners), the canvas size, and the edges drawn against the flow."""

    positions: dict[str, tuple[float, float]]
    width: float
    height: float
    back_edges: set[tuple[str, str]]
    #: Waypoints (left end of each lane, centre height) of edges that span several layers.
    routes: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)


def _components(keys: list[str], pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
    parent = {k: k for k in keys}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
    groups: dict[str, list[str]] = defaultdict(list)
    for k in keys:
        groups[find(k)].append(k)
    return list(groups.values())  # in order of each component's first node


def _back_edges(nodes: list[str], succ: dict[str, list[str]]) -> set[tuple[str, str]]:
    """Edges that close a cycle in an iterative DFS (deterministic: nodes and successors in order)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[tuple[str, str]] = set()
    for root in nodes:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(succ.get(root, ())))]
        while stack:
            node, children = stack[-1]
            for child in children:
                seen = state.get(child)
                if seen is None:
                    state[child] = 1
                    stack.append((child, iter(succ.get(child, ()))))
                    break
                if seen == 1:
                    back.add((node, child))
            else:
                state[node] = 2
                stack.pop()
    return back


def _layers(nodes: list[str], succ: dict[str, list[str]], pred: dict[str, list[str]]) -> dict[str, int]:
    """Longest-path layers of a DAG, sources then pulled right next to their first consumer."""
    indegree = {n: len(pred.get(n, ())) for n in nodes}
    queue = [n for n in nodes if indegree[n] == 0]
    layer = dict.fromkeys(nodes, 0)
    i = 0
    while i < len(queue):
        node = queue[i]
        i += 1
        for child in succ.get(node, ()):
            layer[child] = max(layer[child], layer[node] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    for node in nodes:
        if not pred.get(node) and succ.get(node):
            layer[node] = max(layer[node], min(layer[c] for c in succ[node]) - 1)
    low = min(layer.values(), default=0)
    return {n: v - low for n, v in layer.items()}


def _order(layers: list[list[str]], succ: dict[str, list[str]], pred: dict[str, list[str]]) -> None:
    """Barycentre sweeps (down, then up, ...) that reorder each layer in place.

    Positions are centred (rows are drawn centred), and every sweep looks at both neighbouring sides, with
    the side the sweep comes from counted twice: this keeps a task's outputs next to it even when they
    also feed later tasks.
    """
    pos: dict[str, float] = {}

    def place(row: list[str]) -> None:
        middle = (len(row) - 1) / 2
        for i, key in enumerate(row):
            pos[key] = i - middle

    for row in layers:
        place(row)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        sequence = layers[1:] if downward else layers[-2::-1]
        main, other = (pred, succ) if downward else (succ, pred)
        for row in sequence:
            bary: dict[str, float] = {}
            for key in row:
                near = [pos[n] for n in main.get(key, ())] * 2 + [pos[n] for n in other.get(key, ())]
                bary[key] = sum(near) / len(near) if near else pos[key]
            row.sort(key=lambda k: (bary[k], pos[k]))
            place(row)


def layout(graph: Graph) -> Layout:
    """Compute card positions for ``graph`` (left to right, components stacked top to bottom).

    An edge that spans several layers gets a thin placeholder in every layer it crosses, so that ordering
    keeps a lane free for it and it is drawn around the cards, not through them (up to
    :data:`MAX_PLACEHOLDERS` in all; beyond that, long edges are drawn straight).
    """
    keys = list(graph.nodes)
    pairs = list(dict.fromkeys((e.source, e.target) for e in graph.edges if e.source != e.target))
    succ: dict[str, list[str]] = defaultdict(list)
    for a, b in pairs:
        succ[a].append(b)
    positions: dict[str, tuple[float, float]] = {}
    routes: dict[tuple[str, str], list[tuple[float, float]]] = {}
    back_all: set[tuple[str, str]] = set()
    top = float(MARGIN)
    width = 0.0
    budget = MAX_PLACEHOLDERS
    for component in _components(keys, pairs):
        back = _back_edges(component, succ)
        back_all |= back
        dag_succ: dict[str, list[str]] = defaultdict(list)
        dag_pred: dict[str, list[str]] = defaultdict(list)
        for node in component:
            for child in succ.get(node, ()):
                a, b = (child, node) if (node, child) in back else (node, child)
                dag_succ[a].append(b)
                dag_pred[b].append(a)
        layer = _layers(component, dag_succ, dag_pred)
        rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
        for node in component:
            rows[layer[node]].append(node)
        # Placeholders ("\0" keys cannot be node keys) along every long forward edge.
        chains: dict[tuple[str, str], list[str]] = {}
        long_edges = [
            (a, b) for a in component for b in succ.get(a, ())
            if (a, b) not in back and layer[b] - layer[a] > 1
        ]
        needed = sum(layer[b] - layer[a] - 1 for a, b in long_edges)
        if long_edges and needed <= budget:
            budget -= needed
            ord_succ: dict[str, list[str]] = defaultdict(list)
            ord_pred: dict[str, list[str]] = defaultdict(list)
            long_set = set(long_edges)
            for a, children in dag_succ.items():
                for b in children:
                    if (a, b) not in long_set:
                        ord_succ[a].append(b)
                        ord_pred[b].append(a)
            for a, b in long_edges:
                chain = [f"\0{a}\0{b}\0{i}" for i in range(layer[a] + 1, layer[b])]
                chains[(a, b)] = chain
                for i, dummy in enumerate(chain):
                    rows[layer[a] + 1 + i].append(dummy)
                for u, v in zip([a, *chain], [*chain, b], strict=True):
                    ord_succ[u].append(v)
                    ord_pred[v].append(u)
        else:
            ord_succ, ord_pred = dag_succ, dag_pred
        _order(rows, ord_succ, ord_pred)

        def size(key: str) -> float:
            return PLACEHOLDER_H if key.startswith("\0") else CARD_H

        heights = [sum(size(k) for k in row) + V_GAP * (len(row) - 1) for row in rows]
        tallest = max(heights)
        spots: dict[str, tuple[float, float]] = {}
        for col, row in enumerate(rows):
            y = top + (tallest - heights[col]) / 2
            for node in row:
                spots[node] = (MARGIN + col * (CARD_W + H_GAP), y)
                y += size(node) + V_GAP
        for node in component:
            positions[node] = spots[node]
        for edge, chain in chains.items():
            routes[edge] = [(spots[d][0], spots[d][1] + PLACEHOLDER_H / 2) for d in chain]
        width = max(width, MARGIN * 2 + len(rows) * (CARD_W + H_GAP) - H_GAP)
        top += tallest + COMPONENT_GAP
    height = top - COMPONENT_GAP + MARGIN if keys else MARGIN * 2
    return Layout(positions, max(width, MARGIN * 2.0), height, back_all, routes)


# -- rendering ---------------------------------------------------------------------------------


def _safe_url(url: str | None) -> str | None:
    """Instance-relative links only (``/files/...``); anything else (``javascript:``, ``//x``) is dropped."""
    if not url or not url.startswith("/") or url.startswith("//") or any(c in url for c in "\r\n\t\\"):
        return None
    return url


def _local_link(path: str | None) -> str | None:
    if not path:
        return None
    if PurePosixPath(path).is_absolute() and os.sep == "/":
        return PurePosixPath(path).as_uri()
    if PureWindowsPath(path).is_absolute():
        return PureWindowsPath(path).as_uri()
    return None


def _footer(node: GraphNode) -> str:
    kind = _KIND_NAMES.get(_style_kind(node), node.kind.title())
    if node.task is not None:
        return f"{kind} {node.task.id}"
    if node.kind == "project" and node.versions:
        from .graph import _version_label

        return f"{kind} · {', '.join(_version_label(v) for v in node.versions)}"
    if node.external_id is not None and node.kind != "task":
        return f"{kind} {node.external_id}"
    return kind


def _card(node: GraphNode, x: float, y: float, colors: dict[str, tuple[str, str]]) -> str:
    style = _style_kind(node)
    color, bg = colors.get(style, ("#475569", "#e2e8f0"))
    icon_color, icon_bg = color, bg
    card = node.card
    if card is not None and card.icon_color and card.icon_bg_color:
        icon_color, icon_bg = card.icon_color, card.icon_bg_color
    classes = f"card k-{style}" + (" failed" if node.failed else "")
    stroke = "#dc2626" if node.failed else color
    title = node.label
    description = node.description
    tooltip = f"{title}\n{description}\n{node.key}"
    if node.task is not None and node.task.command:
        tooltip += f"\n{node.task.command}"
    parts = [
        f'<g class="{classes}" transform="translate({x:.0f},{y:.0f})">',
        f"<title>{_e(tooltip)}</title>",
        f'<rect class="bg" width="{CARD_W}" height="{CARD_H}" rx="10" stroke="{_e(stroke)}"/>',
        f'<path d="M10 0h-4a6 6 0 0 0-6 6v{CARD_H - 12}a6 6 0 0 0 6 6h4z" fill="{_e(stroke)}"/>',
        f'<circle cx="38" cy="{CARD_H / 2:.0f}" r="19" fill="{_e(icon_bg)}"/>',
        f'<path transform="translate(26,{CARD_H / 2 - 12:.0f})" fill="{_e(icon_color)}" '
        f'fill-rule="evenodd" d="{_ICONS.get(style, _ICONS["file"])}"/>',
        f'<text class="t" x="68" y="25">{_e(_clip(title, 22))}</text>',
        f'<text class="d" x="68" y="44">{_e(_card_description(node, 30))}</text>',
        f'<text class="k" x="68" y="66">{_e(_clip(_footer(node), 22))}</text>',
    ]
    link = _safe_url(card.url) if card is not None else None
    link_title = (card.url_title if card is not None else None) or "open"
    if link is None:
        link, link_title = _local_link(node.path), "open"
    if link is not None:
        parts.append(
            f'<a href="{_e(link)}"><text class="l" x="{CARD_W - 12}" y="66" text-anchor="end">'
            f"{_e(_clip(link_title, 14))} ↗</text></a>"
        )
    if node.task is not None and node.task.status in ("failed", "running"):
        badge, fill = ("FAILED", "#dc2626") if node.failed else ("RUNNING", "#d97706")
        parts.append(
            f'<rect x="{CARD_W - 74}" y="-9" width="66" height="18" rx="9" fill="{fill}"/>'
            f'<text class="b" x="{CARD_W - 41}" y="4" text-anchor="middle">{badge}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _edge(graph: Graph, source: str, target: str, lay: Layout, label: str | None, relation: str) -> str:
    sx, sy = lay.positions[source]
    tx, ty = lay.positions[target]
    if (source, target) in lay.back_edges or tx <= sx:
        # Against the flow: leave from the bottom, come back into the bottom.
        x1, y1 = sx + CARD_W / 2, sy + CARD_H
        x2, y2 = tx + CARD_W / 2, ty + CARD_H
        drop = max(y1, y2) + 40
        d = f"M{x1:.0f} {y1:.0f} C{x1:.0f} {drop:.0f} {x2:.0f} {drop:.0f} {x2:.0f} {y2 + 4:.0f}"
        mx, my = (x1 + x2) / 2, drop - 10
    else:
        # Through the lanes kept free for it: curves between layers, straight across each lane.
        points = [(sx + CARD_W, sy + CARD_H / 2)]
        for lx, ly in lay.routes.get((source, target), ()):
            points += [(lx, ly), (lx + CARD_W, ly)]
        points.append((tx - 4, ty + CARD_H / 2))
        d = f"M{points[0][0]:.0f} {points[0][1]:.0f}"
        for i in range(1, len(points)):
            (x1, y1), (x2, y2) = points[i - 1], points[i]
            if i % 2 == 0:
                d += f" L{x2:.0f} {y2:.0f}"
            else:
                bend = max(30.0, (x2 - x1) / 2)
                d += f" C{x1 + bend:.0f} {y1:.0f} {x2 - bend:.0f} {y2:.0f} {x2:.0f} {y2:.0f}"
        (x1, y1), (x2, y2) = points[0], points[1]
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2 - 6
    out = f'<path class="e {relation}" d="{d}" marker-end="url(#arrow)"/>'
    if label:
        out += f'<text class="v" x="{mx:.0f}" y="{my:.0f}" text-anchor="middle">{_e(label)}</text>'
    return out


def _svg(graph: Graph, colors: dict[str, tuple[str, str]]) -> str:
    lay = layout(graph)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width:.0f}" height="{lay.height + 20:.0f}" '
        f'viewBox="0 -10 {lay.width:.0f} {lay.height + 20:.0f}" role="img" aria-label="lineage graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="#94a3b8"/></marker></defs>',
        '<g class="edges">',
    ]
    for edge in graph.edges:
        if edge.source in lay.positions and edge.target in lay.positions and edge.source != edge.target:
            parts.append(_edge(graph, edge.source, edge.target, lay, edge.version_label, edge.relation))
    parts.append("</g><g class=\"cards\">")
    for key, node in graph.nodes.items():
        x, y = lay.positions[key]
        parts.append(_card(node, x, y, colors))
    parts.append("</g></svg>")
    return "\n".join(parts)


_CSS = """
:root { color-scheme: light; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #1f2937; background: #f8fafc; }
header { padding: 18px 24px 8px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 24px 8px; }
.summary { color: #475569; margin: 0; }
.legend { display: flex; flex-wrap: wrap; gap: 8px 16px; padding: 8px 24px 12px; margin: 0; list-style: none; }
.legend li { display: flex; align-items: center; gap: 6px; color: #334155; font-size: 13px; }
.legend svg { width: 22px; height: 22px; }
.canvas { overflow: auto; margin: 0 16px; background: #fff; border: 1px solid #e2e8f0; border-radius: 12px; }
.canvas svg { display: block; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
.card .bg { fill: #fff; stroke-width: 1.5; }
.card.failed .bg { fill: #fff5f5; stroke-width: 2.5; }
.card .t { font-size: 14px; font-weight: 600; fill: #0f172a; }
.card .d { font-size: 12px; fill: #475569; }
.card .k { font-size: 11px; fill: #64748b; text-transform: uppercase; letter-spacing: .04em; }
.card .l { font-size: 12px; fill: #2563eb; }
.card a:hover .l { text-decoration: underline; }
.card .b { font-size: 10px; font-weight: 700; fill: #fff; letter-spacing: .06em; }
.e { fill: none; stroke: #94a3b8; stroke-width: 1.6; }
.e.input { stroke: #94a3b8; }
.e.output { stroke: #64748b; }
.v { font-size: 11px; fill: #475569; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
table { border-collapse: collapse; margin: 0 24px 32px; font-size: 13px; background: #fff; }
th, td { text-align: left; padding: 6px 12px; border-bottom: 1px solid #e2e8f0; vertical-align: top; }
th { color: #475569; font-weight: 600; }
td.failed { color: #b91c1c; font-weight: 600; }
td.running { color: #b45309; }
.empty { padding: 24px; color: #64748b; }
"""


def _legend(colors: dict[str, tuple[str, str]]) -> str:
    items = []
    for style, name in _KIND_NAMES.items():
        color, bg = colors[style]
        items.append(
            f'<li><svg viewBox="0 0 32 32" aria-hidden="true"><circle cx="16" cy="16" r="16" fill="{bg}"/>'
            f'<path transform="translate(4,4)" fill="{color}" fill-rule="evenodd" d="{_ICONS[style]}"/>'
            f"</svg>{_e(name)}</li>"
        )
    items.append(
        '<li><svg viewBox="0 0 32 32" aria-hidden="true"><rect x="2" y="6" width="28" height="20" rx="5" '
        'fill="#fff5f5" stroke="#dc2626" stroke-width="3"/></svg>failed task</li>'
    )
    return '<ul class="legend">' + "".join(items) + "</ul>"


def _tasks_table(graph: Graph) -> str:
    from .graph import _duration, _local_time

    rows = []
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for edge in graph.edges:
        counts[edge.task_key][0 if edge.relation == "input" else 1] += 1
    for node in graph.tasks:
        info = node.task
        if info is None:
            continue
        error = ""
        if info.failed:
            error = f"{info.error_type or ''}: {info.error_message or ''}".strip(": ")
        rows.append(
            "<tr>"
            f"<td>{info.id}</td><td>{_e(node.label)}</td><td class=\"{_e(info.status)}\">{_e(info.status)}</td>"
            f"<td>{_e(_local_time(info.started_at))}</td>"
            f"<td>{_e(_duration(info.duration) if info.duration is not None else '-')}</td>"
            f"<td>{counts[node.key][0]}</td><td>{counts[node.key][1]}</td><td>{_e(_clip(error, 200))}</td>"
            "</tr>"
        )
    if not rows:
        return ""
    return (
        "<h2>Tasks</h2><table><thead><tr><th>id</th><th>name</th><th>status</th><th>started</th>"
        "<th>duration</th><th>inputs</th><th>outputs</th><th>error</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def render_html(graph: Graph, title: str = "Workflow lineage") -> str:
    """The whole page for ``graph`` (see the module docstring)."""
    from .graph import _KIND_COLORS, _plural

    tasks = graph.tasks
    failed = sum(1 for t in tasks if t.failed)
    generated = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    summary = (
        f"scope {graph.scope} · {_plural(len(tasks), 'task')}"
        + (f" ({failed} failed)" if failed else "")
        + f" · {_plural(len(graph.nodes) - len(tasks), 'data node')} · {_plural(len(graph.edges), 'edge')}"
        + f" · generated {generated}"
    )
    body = _svg(graph, _KIND_COLORS) if graph.nodes else '<p class="empty">Nothing recorded in this scope.</p>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)} · {_e(graph.scope)}</title>\n"
        f"<style>{_CSS}</style></head>\n<body>\n"
        f"<header><h1>{_e(title)}</h1><p class=\"summary\">{_e(summary)}</p></header>\n"
        f"{_legend(_KIND_COLORS)}\n"
        f'<div class="canvas">\n{body}\n</div>\n'
        f"{_tasks_table(graph)}\n"
        "</body></html>\n"
    )
