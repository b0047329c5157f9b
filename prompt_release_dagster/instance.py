"""The persistent Dagster home used by `make demo` and `make ui`.

Both commands export the same `DAGSTER_HOME` (`.prompt_release/dagster_home`),
so runs and materializations from the demo are visible in the UI afterwards.
The instance limits the `warehouse` pool (every step that writes DuckDB) and
the `llm` pool (steps that call the model endpoint) so steps never fight over
DuckDB's single-writer lock or a provider's rate limit.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from prompt_release import config

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


def persistent_instance() -> dg.DagsterInstance:
    ensure_dagster_home()
    return dg.DagsterInstance.get()
