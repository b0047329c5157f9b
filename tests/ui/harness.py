"""Browser-test harness: Dagster webserver process control and page helpers for headless Chromium.

Start the webserver over a Dagster home with `start_webserver`, stop it with
`stop_webserver`; open pages with `open_asset_graph` / `open_asset_page`
(each returns the page's visible text once it has rendered) and save README
pictures with `save_screenshot`. The fixtures in `conftest.py` wrap these.
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
    """A minimal Dagster home: local SQLite storage, no telemetry, no first-visit popups."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
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


def stop_webserver(proc: subprocess.Popen) -> None:
    """Stop the webserver and its code server: SIGTERM to its process group, then SIGKILL."""
    # The webserver spawns a code server; it runs in the session we created,
    # so signalling that process group reaches both and nothing else.
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


def start_webserver(dagster_home: Path, workspace: Path, log_path: Path, cwd: Path = REPO_ROOT) -> tuple[subprocess.Popen, str]:
    """Start `dagster-webserver` on a free localhost port; return (process, base URL) once it answers."""
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    with log_path.open("wb") as log:
        # A new session makes the webserver lead its own process group, so
        # stopping the group also stops the code server it spawns.
        proc = subprocess.Popen(
            _webserver_command(workspace, port),
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base_url}/server_info", timeout=5).status_code == 200:
                return proc, base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop_webserver(proc)
    tail = log_path.read_text(errors="replace")[-3000:]
    pytest.fail(f"dagster-webserver did not answer on {base_url} (exit {proc.poll()}); log:\n{tail}")


def settle(page, timeout_ms: int = 30_000) -> None:
    """Wait until no "Loading..." placeholder is visible (best effort: slow pages still get read)."""
    try:
        page.wait_for_function(
            "() => !/Loading(\\.\\.\\.|…)/.test(document.body.innerText)", timeout=timeout_ms
        )
    except Exception:  # playwright's TimeoutError; the callers' own waits decide pass/fail
        pass


def asset_url(base_url: str, asset_key: str | Sequence[str]) -> str:
    parts = asset_key.split("/") if isinstance(asset_key, str) else list(asset_key)
    return f"{base_url}/assets/{'/'.join(parts)}"


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
        try:
            page.get_by_text(expect_text).first.wait_for()
        except Exception as exc:  # playwright's TimeoutError: report what was shown instead
            pytest.fail(f"{expect_text!r} never appeared on {page.url}:\n{page.inner_text('body')[:3000]}\n({exc})")
    settle(page)
    return page.inner_text("body")


def open_asset_graph(page, base_url: str, asset_key: str) -> str:
    """Open the global asset lineage graph, wait for `asset_key` to render, return the page text."""
    page.goto(f"{base_url}/asset-groups")
    page.get_by_text(asset_key).first.wait_for()
    settle(page)
    return page.inner_text("body")


def save_screenshot(page, name: str) -> Path | None:
    """Save `docs/img/<name>` when it is missing or PROMPT_RELEASE_UPDATE_SCREENSHOTS=1."""
    target = SCREENSHOTS / name
    if target.exists() and os.environ.get("PROMPT_RELEASE_UPDATE_SCREENSHOTS") != "1":
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    return target
