"""A small, complete world for end-to-end tests: registry copy, history, warehouse, golden sets.

Built once per test module (it takes a few seconds): the sample registry is
copied so tests may move labels freely, a short production history is
generated, ingested and mined, and golden datasets are built from it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from prompt_release.golden.build import build_golden
from prompt_release.mining.detectors import mine_failures
from prompt_release.registry import Registry
from prompt_release.sample.generator import generate
from prompt_release.traces import ingest_paths

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ("support_router", "order_agent", "summarizer")
# The generated history is keyed by seed and date, so every day's run of the suite sees other data.
# Setting PROMPT_RELEASE_TEST_SEED_SHIFT=N replays that variation on demand (see tests/README.md).
SEED_SHIFT = int(os.environ.get("PROMPT_RELEASE_TEST_SEED_SHIFT", "0"))


@dataclass
class World:
    root: Path
    registry: Path
    warehouse: Path
    landing: Path
    start: date
    days: int


def build_world(base: Path, *, days: int = 4, scale: float = 0.4, seed: int = 5) -> World:
    registry = base / "registry"
    registry.mkdir(parents=True)
    for folder in ("prompts", "schemas", "evals"):
        shutil.copytree(REPO_ROOT / folder, registry / folder)
    if (REPO_ROOT / "datasets" / "labels").exists():
        shutil.copytree(REPO_ROOT / "datasets" / "labels", registry / "datasets" / "labels")
    warehouse, landing = base / "warehouse.duckdb", base / "landing"
    start = date.today() - timedelta(days=days)
    hashes = {p.version_id: p.package_hash for p in Registry(registry).list_versions()}
    generate(landing, days=days, seed=seed + SEED_SHIFT, scale=scale, start_date=start, package_hashes=hashes)
    ingest_paths(sorted(p for p in landing.iterdir() if p.is_dir()), warehouse=warehouse)
    mine_failures(warehouse, registry)
    for workflow in WORKFLOWS:
        build_golden(warehouse, registry, workflow)
    return World(base, registry, warehouse, landing, start, days)
