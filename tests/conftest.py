"""Shared fixtures: a clean configuration per test, and no silently swallowed internal errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _browser
import pytest

import workflow_trace as wt
from workflow_trace import _context
from workflow_trace.backends.memory import MemoryBackend

SHARED = Path(__file__).resolve().parents[2] / "shared"

_ENV = (
    "SUPERVISELY_TASK_ID", "TASK_ID", "SERVER_ADDRESS", "API_TOKEN", "TEAM_ID",
    "WORKFLOW_TRACE_BACKEND", "WORKFLOW_TRACE_DB", "WORKFLOW_TRACE_STRICT", "WORKFLOW_TRACE_DISABLED",
    "WORKFLOW_TRACE_SPOOL", "WORKFLOW_TRACE_THREADS", "WORKFLOW_TRACE_EXIT_TIMEOUT", "WORKFLOW_TRACE_VERSION_LINKS",
    "OPENLINEAGE_URL", "OPENLINEAGE_API_KEY", "OPENLINEAGE_NAMESPACE", "OPENLINEAGE_ENDPOINT", "OPENLINEAGE_CONFIG",
    "OPENLINEAGE_DISABLED",
)


@pytest.fixture(autouse=True)
def _clean_config(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[list[BaseException]]:
    """Reset workflow_trace around each test; fail a test in which an internal error was swallowed
    unless it is marked ``internal_errors`` (it expects them)."""
    for name in [*_ENV, *(n for n in os.environ if n.startswith("OPENLINEAGE__"))]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKFLOW_TRACE_DB", str(tmp_path / "default-store" / "workflow.db"))
    wt.reset()
    swallowed: list[BaseException] = []
    _context.internal_error_hooks.append(swallowed.append)
    try:
        yield swallowed
    finally:
        _context.internal_error_hooks.remove(swallowed.append)
        wt.reset()
    if swallowed and request.node.get_closest_marker("internal_errors") is None:
        pytest.fail(
            "workflow_trace swallowed internal error(s) this test did not expect: "
            + "; ".join(f"{type(e).__name__}: {e}" for e in swallowed)
        )


@pytest.fixture
def swallowed(_clean_config: list[BaseException]) -> list[BaseException]:
    """The internal errors workflow_trace contained during the test (use with @pytest.mark.internal_errors)."""
    return _clean_config


@pytest.fixture
def memory() -> MemoryBackend:
    """A MemoryBackend configured as the backend."""
    backend = MemoryBackend()
    wt.configure(backend)
    return backend


# -- a real browser (the viewer's tests) -------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the run; the test skips when Playwright or Chromium is missing."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if _browser.chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with _browser.launch() as chromium:
        yield chromium


@pytest.fixture
def open_tab(browser: Any) -> Iterator[Callable[..., _browser.Tab]]:
    """``open_tab(url, width=, height=, timeout=)``: a fresh, recorded browser context on ``url``, waited
    until the viewer is ready; closed after the test."""
    tabs: list[_browser.Tab] = []

    def open_(url: str, **options: Any) -> _browser.Tab:
        tab = _browser.open_tab(browser, url, **options)
        tabs.append(tab)
        return tab

    yield open_
    for tab in tabs:
        tab.page.context.close()
