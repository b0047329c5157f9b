"""Browser-test harness: Dagster webserver process control and page helpers for headless Chromium.

Start the webserver over a Dagster home with `start_webserver` (or
`launch_webserver` now and `wait_for_webserver` later), stop it with
`stop_process_group`; open pages with `open_asset_graph`, `open_asset_page` and
`open_asset_partition` (each returns the page's visible text once it has
rendered), read a markdown metadata entry with `show_markdown`, and refresh
the README pictures with `save_screenshot` (only when asked to). The
fixtures in `conftest.py` wrap these.
Chromium is Debian's, installed by `scripts/install_browser.sh`; never
`playwright install` (no browser downloads).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.conftest import REPO_ROOT, free_port

CHROMIUM = Path(os.environ.get("PROMPT_RELEASE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT_S = 180.0
PAGE_TIMEOUT_MS = 90_000
SCREENSHOTS = REPO_ROOT / "docs" / "img"


def write_dagster_home(home: Path) -> Path:
    """A Dagster home like `make demo`'s: local SQLite storage, pools, no telemetry, no first-visit dialog."""
    from prompt_release_dagster.instance import DAGSTER_YAML

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    return home


def write_workspace(path: Path, python_file: Path, working_directory: Path = REPO_ROOT) -> Path:
    """A workspace.yaml loading one code location from a Python file."""
    path.write_text(
        "load_from:\n"
        "  - python_file:\n"
        f"      relative_path: {python_file}\n"
        f"      working_directory: {working_directory}\n"
    )
    return path


def _webserver_command(workspace: Path, port: int) -> list[str]:
    script = Path(sys.executable).parent / "dagster-webserver"
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "dagster_webserver"]
    return [*prefix, "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]


def stop_process_group(proc: subprocess.Popen) -> None:
    """Stop a process started with `start_new_session=True` and its group: SIGTERM, then SIGKILL.

    The webserver spawns a code server (the demo, a simulator); they run in the
    session we created, so signalling that process group reaches them and nothing else.
    """
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def launch_webserver(
    dagster_home: Path, workspace: Path, log_path: Path, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """Start `dagster-webserver` on a free localhost port without waiting; return (process, base URL).

    `env` adds to (or overrides) this process's environment, e.g. the
    PROMPT_RELEASE_* locations the code location's resources read at import.
    Call `wait_for_webserver` before using it.
    """
    port = free_port()
    env = {
        **os.environ,
        **(env or {}),
        "DAGSTER_HOME": str(dagster_home),
        "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    with log_path.open("wb") as log:
        # A new session makes the webserver lead its own process group, so
        # stopping the group also stops the code server it spawns.
        proc = subprocess.Popen(
            _webserver_command(workspace, port),
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, f"http://127.0.0.1:{port}"


def wait_for_webserver(proc: subprocess.Popen, base_url: str, log_path: Path) -> None:
    """Wait until the webserver answers; stop it and fail with its log if it never does."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base_url}/server_info", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop_process_group(proc)
    tail = log_path.read_text(errors="replace")[-3000:]
    pytest.fail(f"dagster-webserver did not answer on {base_url} (exit {proc.poll()}); log:\n{tail}")


def start_webserver(
    dagster_home: Path, workspace: Path, log_path: Path, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """Start `dagster-webserver` on a free localhost port; return (process, base URL) once it answers."""
    proc, base_url = launch_webserver(dagster_home, workspace, log_path, cwd=cwd, env=env)
    wait_for_webserver(proc, base_url, log_path)
    return proc, base_url


def settle(page, timeout_ms: int = 30_000) -> None:
    """Wait until no "Loading..." placeholder is visible (best effort: slow pages still get read)."""
    try:
        page.wait_for_function("() => !/Loading(\\.\\.\\.|…)/.test(document.body.innerText)", timeout=timeout_ms)
    except Exception:  # playwright's TimeoutError; the callers' own waits decide pass/fail
        pass


def asset_url(
    base_url: str, asset_key: str | Sequence[str], view: str | None = None, partition: str | None = None
) -> str:
    """The asset's page; `view="partitions", partition=KEY` shows that partition's latest materialization."""
    parts = asset_key.split("/") if isinstance(asset_key, str) else list(asset_key)
    query = {name: value for name, value in (("view", view), ("partition", partition)) if value is not None}
    return f"{base_url}/assets/{'/'.join(parts)}" + (f"?{urlencode(query)}" if query else "")


def _wait_for_text(page, text: str) -> None:
    """Wait until `text` is on the page; fail with what the page shows instead."""
    try:
        page.get_by_text(text).first.wait_for()
    except Exception as exc:  # playwright's TimeoutError: report what was shown instead
        pytest.fail(f"{text!r} never appeared on {page.url}:\n{page.inner_text('body')[:3000]}\n({exc})")


def open_asset_page(page, base_url: str, asset_key: str | Sequence[str], expect_text: str | None = None) -> str:
    """Open the asset's overview page and return its visible text.

    Waits for the asset's name to render and, when `expect_text` is given
    (say "Verdict:"), until that text appears: metadata loads after the page
    shell, so the text is read only once it is there. Fails with the page
    text when it never appears.
    """
    page.goto(asset_url(base_url, asset_key))
    name = asset_key.split("/")[-1] if isinstance(asset_key, str) else asset_key[-1]
    page.get_by_text(name).first.wait_for()
    page.get_by_text("Definition").first.wait_for()
    if expect_text is not None:
        _wait_for_text(page, expect_text)
    settle(page)
    return page.inner_text("body")


def open_asset_partition(
    page, base_url: str, asset_key: str | Sequence[str], partition: str, expect_text: str | None = None
) -> str:
    """Open one partition of a partitioned asset (its latest materialization's metadata); return the page text.

    The overview page shows the latest materialization of any partition, so a
    given partition's report is read from the Partitions tab with that
    partition selected (`?view=partitions&partition=KEY`).
    """
    page.goto(asset_url(base_url, asset_key, view="partitions", partition=partition))
    _wait_for_text(page, "Latest materialization")
    if expect_text is not None:
        _wait_for_text(page, expect_text)
    settle(page)
    return page.inner_text("body")


def show_markdown(page, expect_text: str, index: int = 0) -> str:
    """Open the `index`-th "[Show Markdown]" metadata entry; return the dialog's text once `expect_text` renders.

    The markdown renderer loads after the dialog opens, so the text is read
    only once `expect_text` is in it; the dialog is closed again.
    """
    page.get_by_text("[Show Markdown]").nth(index).click()
    dialog = page.get_by_role("dialog")
    try:
        dialog.get_by_text(expect_text).first.wait_for()
    except Exception as exc:  # playwright's TimeoutError: report what was shown instead
        pytest.fail(f"{expect_text!r} never appeared in the markdown dialog:\n{dialog.inner_text()[:3000]}\n({exc})")
    text = dialog.inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    return text


def open_asset_graph(page, base_url: str, expect_assets: Sequence[str]) -> str:
    """Open the global asset lineage with every group expanded; return the page text once `expect_assets` render.

    The navigation and the asset sidebar are hidden first so the graph is
    laid out over the whole window (legible in a screenshot); groups start
    collapsed, and the UI's own shortcut (Alt+E, "Expand all groups")
    expands them.
    """
    page.goto(f"{base_url}/asset-groups")
    _wait_for_text(page, "Global asset lineage")
    page.locator("[aria-label='zoom_in']").first.wait_for()
    page.get_by_text("Hide navigation").click()
    try:  # the sidebar toggle beside "Jump to...": cosmetic, a UI change must not fail the test
        page.locator("button:has([aria-label='panel_show_right'])").last.click(timeout=5_000)
    except Exception:
        pass
    graph = page.locator("svg")
    if not graph.get_by_text(expect_assets[0], exact=True).first.is_visible():
        page.keyboard.press("Alt+KeyE")
    for asset in expect_assets:
        _wait_for_text(page, asset)
    settle(page)
    # The graph animates to its fitted zoom after a layout change.
    page.wait_for_timeout(1_500)
    return page.inner_text("body")


def save_screenshot(page, name: str) -> Path | None:
    """Save `docs/img/<name>` only when PROMPT_RELEASE_UPDATE_SCREENSHOTS=1 (a normal test run writes nothing)."""
    if os.environ.get("PROMPT_RELEASE_UPDATE_SCREENSHOTS") != "1":
        return None
    target = SCREENSHOTS / name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    return target
