"""Where things live: warehouse file, registry root, landing folder, Dagster home.

Every location has one resolution order: explicit argument (a CLI flag or a
Dagster resource field), then an environment variable, then the project's
state file `.prompt_release/config` (written by `make demo`, so the CLI and
`make ui` run in the project folder use the demo's warehouse and registry),
then a default under the project-local `.prompt_release/` folder (git-ignored).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

STATE_DIR = Path(".prompt_release")

ENV_CONFIG = "PROMPT_RELEASE_CONFIG"
# The keys the state file may set, each the location a flag or variable would otherwise give.
CONFIG_KEYS = ("warehouse", "registry", "landing")


class ConfigFileError(ValueError):
    """The state file cannot be read; the message names the file and the setting.

    Not a `UserError` (config sits below errors in the layers); the CLI prints it the same way.
    """

ENV_WAREHOUSE = "PROMPT_RELEASE_WAREHOUSE"
ENV_REGISTRY = "PROMPT_RELEASE_REGISTRY"
ENV_LANDING = "PROMPT_RELEASE_LANDING"
ENV_LOCK_TIMEOUT = "PROMPT_RELEASE_LOCK_TIMEOUT"

DEFAULT_LOCK_TIMEOUT_S = 60.0


def config_file() -> Path:
    """The project's state file (env PROMPT_RELEASE_CONFIG, default `.prompt_release/config`)."""
    return Path(os.environ.get(ENV_CONFIG) or STATE_DIR / "config")


def read_config_file(path: Path | None = None) -> dict[str, str]:
    """The locations the state file sets (none when it is absent); a bad file is a `ConfigFileError`."""
    path = path or config_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path}: not TOML: {exc}") from None
    for key, value in values.items():
        if key not in CONFIG_KEYS:
            raise ConfigFileError(f"{path}: unknown setting {key!r} (known: {', '.join(CONFIG_KEYS)})")
        if not isinstance(value, str) or not value:
            raise ConfigFileError(f"{path}: setting {key!r} must be a non-empty path string")
    return values


def write_config_file(path: Path, **locations: str | os.PathLike) -> Path:
    """Write the state file: absolute paths, so a run from any process resolves the same files."""
    unknown = set(locations) - set(CONFIG_KEYS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    lines = ["# Written by `make demo`. Order: --flag, then PROMPT_RELEASE_* variable, then this file, "
             "then the default.", "# Delete this file to go back to the defaults."]
    # TOML basic strings escape backslashes and quotes as JSON does.
    lines += [f"{key} = {json.dumps(str(Path(value).resolve()))}" for key, value in locations.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _pick(explicit: str | os.PathLike | None, env: str, key: str, default: Path) -> Path:
    if explicit:
        return Path(explicit)
    value = os.environ.get(env) or read_config_file().get(key)
    return Path(value) if value else default


def warehouse_path(explicit: str | os.PathLike | None = None) -> Path:
    return _pick(explicit, ENV_WAREHOUSE, "warehouse", STATE_DIR / "warehouse.duckdb")


def registry_root(explicit: str | os.PathLike | None = None) -> Path:
    return _pick(explicit, ENV_REGISTRY, "registry", Path("."))


def landing_path(explicit: str | os.PathLike | None = None) -> Path:
    return _pick(explicit, ENV_LANDING, "landing", STATE_DIR / "landing")


def warehouse_source(explicit: str | os.PathLike | None = None) -> str:
    """Where the warehouse location came from, as the user can change it (for error messages)."""
    if explicit:
        return "--warehouse"
    if os.environ.get(ENV_WAREHOUSE):
        return ENV_WAREHOUSE
    if read_config_file().get("warehouse"):
        return f"'warehouse' in {config_file()}"
    return "the default (set --warehouse)"


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
