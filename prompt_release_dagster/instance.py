"""The persistent Dagster home used by `make demo` and `make ui`.

Both commands export the same `DAGSTER_HOME` (`.prompt_release/dagster_home`),
so runs and materializations from the demo are visible in the UI afterwards.
The instance limits the pools (`resources.POOL_LIMITS`): `warehouse` (steps that
write the warehouse, one at a time), `warehouse_day` (on a lake, steps writing
only their own days) and `llm` (steps that call the model endpoint), so steps
never fight over DuckDB's single-writer lock or a provider's rate limit.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from prompt_release import config
from prompt_release_dagster.resources import POOL_LIMITS

DAGSTER_YAML = """\
# Written by prompt-release; safe to edit.
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
# No first-visit newsletter dialog over the UI (it covers the page `make ui` opens).
nux:
  enabled: false
"""


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or config.STATE_DIR / "dagster_home").resolve()


def ensure_dagster_home() -> Path:
    """Create the Dagster home with our dagster.yaml if missing; export DAGSTER_HOME."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def ensure_pool_limits(instance: dg.DagsterInstance) -> dict[str, int]:
    """Give each of our pools its limit (`POOL_LIMITS`) unless the instance already holds one for it
    (set by `dagster instance concurrency set POOL N` or an earlier call: kept). The pools' limits."""
    storage = instance.event_log_storage
    known = storage.get_concurrency_keys()
    for pool, limit in POOL_LIMITS.items():
        if pool not in known:
            storage.set_concurrency_slots(pool, limit)
    return {pool: storage.get_concurrency_info(pool).slot_count for pool in POOL_LIMITS}


def persistent_instance() -> dg.DagsterInstance:
    ensure_dagster_home()
    return dg.DagsterInstance.get()
