"""A private copy of the sample registry per test, so tests can edit, register and move labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def copy_sample_registry(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in ("prompts", "schemas", "evals"):
        shutil.copytree(REPO_ROOT / name, target / name)
    return target


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMPT_RELEASE_ACTOR", "test-runner")
    return copy_sample_registry(tmp_path / "registry")
