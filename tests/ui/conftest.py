"""Fixtures for the browser tests: a Dagster webserver on a free port, a headless Chromium page.

`dagster_webserver(dagster_home, workspace, env=...)` starts the webserver
over the given Dagster home and returns its base URL; it is stopped (with its code
server) when the test ends. `browser_page` is a fresh page in Debian's
Chromium; tests using it skip, naming the reason, where it is not installed.
Page helpers live in `tests/ui/harness.py`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.ui.harness import CHROMIUM, CHROMIUM_ARGS, PAGE_TIMEOUT_MS, start_webserver, stop_process_group


@pytest.fixture
def dagster_webserver(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Factory: start(dagster_home, workspace, cwd=REPO_ROOT, env=None) -> base URL; stopped at teardown."""
    started: list[subprocess.Popen] = []

    def start(dagster_home: Path, workspace: Path, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None) -> str:
        proc, base_url = start_webserver(
            dagster_home, workspace, tmp_path / f"webserver-{len(started)}.log", cwd=cwd, env=env
        )
        started.append(proc)
        return base_url

    yield start
    for proc in started:
        stop_process_group(proc)


@pytest.fixture(scope="session")
def chromium_browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: run scripts/install_browser.sh as root "
            "(apt-get install chromium) or set PROMPT_RELEASE_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium_browser):
    # Wide enough for the whole asset lineage to stay legible in the README screenshot.
    context = chromium_browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()
