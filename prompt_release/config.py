"""Where things live: warehouse file, registry root, landing folder, Dagster home.

Every location has one resolution order: explicit argument (a CLI flag or a
Dagster resource field), then an environment variable, then a default under
the project-local `.prompt_release/` folder (git-ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR = Path(".prompt_release")

ENV_WAREHOUSE = "PROMPT_RELEASE_WAREHOUSE"
ENV_REGISTRY = "PROMPT_RELEASE_REGISTRY"
ENV_LANDING = "PROMPT_RELEASE_LANDING"
ENV_LOCK_TIMEOUT = "PROMPT_RELEASE_LOCK_TIMEOUT"

DEFAULT_LOCK_TIMEOUT_S = 60.0


def _pick(explicit: str | os.PathLike | None, env: str, default: Path) -> Path:
    if explicit:
        return Path(explicit)
    value = os.environ.get(env)
    return Path(value) if value else default


def warehouse_path(explicit: str | os.PathLike | None = None) -> Path:
    return _pick(explicit, ENV_WAREHOUSE, STATE_DIR / "warehouse.duckdb")


def registry_root(explicit: str | os.PathLike | None = None) -> Path:
    return _pick(explicit, ENV_REGISTRY, Path("."))


def landing_path(explicit: str | os.PathLike | None = None) -> Path:
    return _pick(explicit, ENV_LANDING, STATE_DIR / "landing")


def lock_timeout_s(explicit: float | None = None) -> float:
    if explicit is not None:
        return float(explicit)
    value = os.environ.get(ENV_LOCK_TIMEOUT)
    return float(value) if value else DEFAULT_LOCK_TIMEOUT_S


ENV_ANALYST_SNAPSHOT = "PROMPT_RELEASE_ANALYST_SNAPSHOT"
_OFF = {"0", "false", "no", "off"}


def analyst_snapshot_enabled(explicit: bool | None = None) -> bool:
    """Whether writers publish the read-only analyst snapshot after each commit (default on)."""
    if explicit is not None:
        return bool(explicit)
    return os.environ.get(ENV_ANALYST_SNAPSHOT, "1").strip().lower() not in _OFF


ENV_START_DATE = "PROMPT_RELEASE_START_DATE"
DEFAULT_START_DATE = "2026-10-01"


def partitions_start_date() -> str:
    """First day of the daily partitions (traces, failures, version metrics)."""
    return os.environ.get(ENV_START_DATE) or DEFAULT_START_DATE


ENV_MAX_REJECT_RATE = "PROMPT_RELEASE_MAX_REJECT_RATE"
DEFAULT_MAX_REJECT_RATE = 0.05


def max_reject_rate() -> float:
    """The blocking `traces` check's bound on rejected records / records of a run."""
    value = os.environ.get(ENV_MAX_REJECT_RATE)
    return float(value) if value else DEFAULT_MAX_REJECT_RATE


ENV_OPENAI_BASE_URL = "OPENAI_BASE_URL"
ENV_OPENAI_API_KEY = "OPENAI_API_KEY"


def is_set(name: str) -> bool:
    """Whether an environment variable has a non-empty value (the Dagster resources then bind it
    through `EnvVar`, so the UI shows the variable's name, never a key)."""
    return bool(os.environ.get(name))
