"""Headless Chromium through Playwright for the viewer's tests, screenshot and benchmark.

Debian's ``chromium`` package is the browser (Playwright cannot download its own here); ``launch()``
raises RuntimeError when Playwright or Chromium is missing, so that callers can skip. ``Tab`` is a page
with everything it did recorded (console messages, page errors, every request, dialogs).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ARGS", "Tab", "chromium_path", "launch", "open_tab"]

ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def chromium_path() -> str | None:
    """The system Chromium, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def launch() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``), closed on exit.

    Raises:
        RuntimeError: Playwright or Chromium is not installed.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise RuntimeError("playwright is not installed (pip install playwright)") from exc
    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A page and everything it did: console errors and warnings, page errors, requests, dialogs."""

    page: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        """No console error or warning, no page error, no dialog (an injected ``alert``) so far."""
        assert ([], [], []) == (self.console, self.errors, self.dialogs)

    def cards(self) -> set[str]:
        """The ids of the cards drawn (``data-card``)."""
        return set(self.page.eval_on_selector_all("[data-card]", "els => els.map(e => e.dataset.card)"))


def open_tab(browser: Any, url: str, width: int = 1400, height: int = 850, timeout: float = 30_000) -> Tab:
    """A fresh browser context on ``url``, recorded from its first request, waited until the viewer is
    ready (close it with ``tab.page.context.close()``)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    tab = Tab(page)

    def on_console(message: Any) -> None:
        if message.type in ("error", "warning"):
            tab.console.append(f"{message.type}: {message.text}")

    def on_dialog(dialog: Any) -> None:
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda e: tab.errors.append(str(e)))
    page.on("request", lambda r: tab.requests.append(r.url))
    page.on("dialog", on_dialog)
    page.goto(url)
    page.wait_for_selector("html[data-ready]", timeout=timeout)
    return tab
