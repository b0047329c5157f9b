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
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
