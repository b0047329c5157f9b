"""Shared fixtures: an isolated warehouse path and a clean environment per test."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No test may touch the developer's own .prompt_release/ state.
    monkeypatch.setenv("PROMPT_RELEASE_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("PROMPT_RELEASE_LANDING", str(tmp_path / "landing"))
    # Nor the state file `make demo` writes into the checkout (.prompt_release/config).
    monkeypatch.setenv("PROMPT_RELEASE_CONFIG", str(tmp_path / "no-state-file"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 600,
):
    """Run `python -m prompt_release ARGS` in a subprocess against this checkout.

    PYTHONPATH points at the checkout so the code under test is what runs,
    whatever is installed in the environment.
    """
    import os
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "prompt_release", *args],
        cwd=cwd or REPO_ROOT,
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory):
    """The demo warehouse (tests/demo_world.py), built once per session: read it, never write it.

    Modules using it mark themselves `pytest.mark.xdist_group("demo_world")`, so
    under `--dist loadgroup` one worker builds it once for all of them.
    """
    from tests.demo_world import build_demo_world

    return build_demo_world(tmp_path_factory.mktemp("demo_world"))


@pytest.fixture(scope="session")
def dagster_demo(tmp_path_factory: pytest.TempPathFactory):
    """The Dagster demo (tests/dagster_demo.py), run once per session in a fresh Dagster home: read it.

    Modules using it mark themselves `pytest.mark.xdist_group("demo")`, so under
    `--dist loadgroup` one worker runs it once for all of them.
    """
    from tests.dagster_demo import run_demo_process

    return run_demo_process(tmp_path_factory.mktemp("dagster_demo"))


MOTO_BUCKET = "prompt-release-tests"


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory):
    """A real S3 protocol server (moto) on a free 127.0.0.1 port, for the session; stopped by PID.

    Yields the environment a lake client needs. AWS_CONDITIONAL_PUT=etag makes
    delta-rs commit with put-if-absent, so concurrent commits never overwrite
    one another's log entry.
    """
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        request = urllib.request.Request(f"{endpoint}/{MOTO_BUCKET}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()
        yield {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
            "AWS_CONDITIONAL_PUT": "etag",
        }
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def _backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if kind == "file":
        return str(tmp_path / "warehouse.duckdb")
    if kind == "lake":
        location = str(tmp_path / "warehouse.lake")
    else:
        for name, value in request.getfixturevalue("moto_s3").items():
            monkeypatch.setenv(name, value)
        location = f"s3://{MOTO_BUCKET}/{tmp_path.name}"
    monkeypatch.setenv("PROMPT_RELEASE_WAREHOUSE", location)
    return location


@pytest.fixture(params=["file", "lake", "s3"])
def any_warehouse(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The same test on each backend: a DuckDB file, a local-folder lake, a lake on (moto) S3.

    The warehouse setting in the environment names it too, for child processes.
    """
    return _backend(request.param, request, tmp_path, monkeypatch)


@pytest.fixture(params=["lake", "s3"])
def lake_warehouse(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A lake on a local folder, then on (moto) S3."""
    return _backend(request.param, request, tmp_path, monkeypatch)
