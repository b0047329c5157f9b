"""Fixtures for the release tests: a private registry copy, a recorded production day, the simulator."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from prompt_release.llm import LLMSettings
from prompt_release.llm.simulator import start_simulator
from prompt_release.sample.generator import generate
from prompt_release.traces import ingest_paths
from tests.conftest import REPO_ROOT, free_port

# Inside the DAILY partitions (which start 2026-10-01).
HISTORY_DAY = date(2026, 10, 2)


@pytest.fixture(scope="module")
def simulator():
    handle = start_simulator(port=free_port())
    yield handle
    handle.stop()


@pytest.fixture
def llm_settings(simulator) -> LLMSettings:
    return LLMSettings(base_url=simulator.base_url)


@pytest.fixture
def registry_root(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    for name in ("prompts", "schemas"):
        shutil.copytree(REPO_ROOT / name, root / name)
    return root


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def recorded(tmp_path: Path, warehouse: Path) -> Path:
    """One day of sample production history ingested: the recorded inputs staging replays."""
    out = tmp_path / "history"
    generate(out, days=1, scale=1.0, start_date=HISTORY_DAY)
    ingest_paths([out], warehouse=warehouse)
    return warehouse
