"""The interactive lineage viewer: one HTML page with its CSS and JavaScript inlined.

The same page serves two modes. Offline (``export --format html``) it carries the JSON v2 graph inlined
and makes no request at all. Live (``workflow-trace ui``) it fetches ``/api/graph?scope=S`` from its own
origin and polls ``/api/version`` to pick up new runs. In both, a Content-Security-Policy allows only the
page's own inline script and style (by their sha256 hash) and, live, connections to its own origin.

The viewer itself (layout, folding, search, details) is plain ES2020 in ``viewer.js``: no build step, no
third-party code, user text only ever set through ``textContent`` and SVG attributes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import re
from importlib import resources
from typing import Any

__all__ = ["content_security_policy", "render_page"]

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@functools.cache
def _asset(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(*, live: bool) -> str:
    """The policy of the page: nothing but its own inline script and style, and live, its own origin."""
    connect = "'self'" if live else "'none'"
    return (
        f"default-src 'none'; script-src {_sha256(_asset('viewer.js'))}; "
        f"style-src {_sha256(_asset('viewer.css'))}; img-src data:; connect-src {connect}; "
        "base-uri 'none'; form-action 'none'"
    )


def _json_for_script(value: object) -> str:
    """JSON that cannot end its ``<script>`` block: ``<``, ``>`` and ``&`` are written as \\u escapes."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


def render_page(data: dict[str, Any] | None, *, live: bool, title: str = "Workflow lineage") -> str:
    """The viewer page.

    Args:
        data: The JSON v2 graph to show. Required offline; live, an optional first graph (the page then
            fetches and polls the server for newer ones).
        live: Fetch ``/api/graph`` and poll ``/api/version`` from the page's own origin (``workflow-trace
            ui``); otherwise the page is self-contained and makes no request.
        title: The page's title and heading.

    Raises:
        ValueError: an offline page without data.
    """
    if data is None and not live:
        raise ValueError("an offline viewer page needs the graph data")
    values = {
        "csp": html.escape(content_security_policy(live=live), quote=True),
        "title": html.escape(title, quote=True),
        "css": _asset("viewer.css"),
        "js": _asset("viewer.js"),
        "config": _json_for_script({"live": live, "title": title}),
        "data": _json_for_script(data),
    }
    for name, closing in (("css", "</style"), ("js", "</script")):
        if closing in values[name].lower():  # would end the inline block early (and change its hash)
            raise ValueError(f"viewer.{name} contains {closing!r}")
    # One pass, so that nothing inserted (user text in the data) is ever read as a placeholder.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], _asset("viewer.html"))
