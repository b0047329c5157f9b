"""The Dagster definitions load, and the graph matches its snapshot.

An accidental change to asset keys, checks, jobs, schedules, sensors or pools fails
here; an intended one updates `tests/definitions_snapshot.json` with
`PROMPT_RELEASE_UPDATE_SNAPSHOT=1 pytest tests/test_definitions.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from prompt_release_dagster.definitions import defs
from tests.pools import step_pools

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _graph() -> dict:
    definitions = defs()
    repo = definitions.get_repository_def()
    assets = sorted(key.to_user_string() for key in repo.asset_graph.get_all_asset_keys())
    checks = sorted(f"{key.asset_key.to_user_string()}:{key.name}" for key in repo.asset_graph.asset_check_keys)
    deps = {
        key.to_user_string(): sorted(p.to_user_string() for p in repo.asset_graph.get(key).parent_keys)
        for key in repo.asset_graph.get_all_asset_keys()
    }
    return {
        "assets": assets,
        "asset_deps": dict(sorted(deps.items())),
        "asset_checks": checks,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": sorted(s.name for s in repo.schedule_defs),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        # which steps may run side by side (the file backend's pools; a lake's: tests/dagster/test_pools.py)
        "pools": step_pools(definitions),
    }


def test_definitions_are_loadable() -> None:
    dg.Definitions.validate_loadable(defs())


def test_definitions_match_snapshot() -> None:
    graph = _graph()
    if os.environ.get("PROMPT_RELEASE_UPDATE_SNAPSHOT") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(graph, indent=2) + "\n")
    assert graph == json.loads(SNAPSHOT.read_text())


def test_dg_check_defs_passes() -> None:
    dg_bin = Path(sys.executable).with_name("dg")
    result = subprocess.run([str(dg_bin), "check", "defs"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr
