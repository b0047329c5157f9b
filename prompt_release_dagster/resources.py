"""Dagster resources: thin, configurable handles over the core library's locations, and the pools.

`default_resources()` is what the code location binds; the demo and the tests
pass their own instances of the same classes to `execute_in_process(resources=...)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import dagster as dg
import duckdb

from prompt_release import config
from prompt_release.llm.endpoint import model_endpoint
from prompt_release.llm.settings import LLMSettings
from prompt_release.warehouse import read_connection, write_transaction

# Every step that writes the warehouse runs in one of two pools, whose limits the Dagster instance
# holds (`POOL_LIMITS`, set by `prompt_release_dagster.instance` and `deploy`):
# - `warehouse` (limit 1): a DuckDB file has one writer at a time, so on the file backend every
#   writing step is here. On a lake the other writing steps stay here too: some replace what they
#   computed from a snapshot (the whole version_metrics table, a backtest's run partition), which a
#   concurrent commit would make fail (`lake.ConcurrentWriteError`), not wait.
# - `warehouse_day` (on a lake only): the steps that write only their own day partitions, ingest
#   (`traces`) and mining (`failures`). Their Delta commits on different days do not conflict, and a
#   race on the same day is merged on the key (ingest) or mined again (mining), so several days run
#   side by side.
WAREHOUSE_POOL = "warehouse"
WAREHOUSE_DAY_POOL = "warehouse_day"


def day_write_pool() -> str:
    """The pool of a step that writes only its own day partitions: `warehouse_day` when the configured
    warehouse (PROMPT_RELEASE_WAREHOUSE, the config file) is a lake, else `warehouse`.

    Read when the code location loads, from the same settings its runs and workers use.
    """
    try:
        lake = config.lake_location()
    except config.WarehouseSettingError:
        lake = None  # a bad setting: every write fails with its one clear error; the file's pool is safe
    return WAREHOUSE_DAY_POOL if lake is not None else WAREHOUSE_POOL


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. Connections live for one transaction only."""

    path: str
    lock_timeout_s: float = config.DEFAULT_LOCK_TIMEOUT_S
    # Republish the analysts' read-only snapshot after each committed write
    # (None: PROMPT_RELEASE_ANALYST_SNAPSHOT, default on). See docs/analysts.md.
    analyst_snapshot: bool | None = None

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with write_transaction(self.path, lock_timeout_s=self.lock_timeout_s, publish=self.analyst_snapshot) as con:
            yield con

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with read_connection(self.path, lock_timeout_s=self.lock_timeout_s) as con:
            yield con


class RegistryResource(dg.ConfigurableResource):
    """The prompt registry root (the folder holding `prompts/`)."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)


class LandingResource(dg.ConfigurableResource):
    """The landing folder where trace files arrive in `<YYYY-MM-DD>/` day folders."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)


# Steps that call the model endpoint run in this pool, so a provider's rate
# limit is shared by one step at a time (the client limits within a step).
LLM_POOL = "llm"

# Each pool's limit, set in the instance where no limit was set yet
# (`dagster instance concurrency set warehouse_day N` changes one: N day partitions written at once).
# Two day writers by default: a day's ingest keeps one core busy and peaks under 1 GB.
POOL_LIMITS = {WAREHOUSE_POOL: 1, WAREHOUSE_DAY_POOL: 2, LLM_POOL: 1}


class LLMResource(dg.ConfigurableResource):
    """The OpenAI-compatible endpoint. Unset `base_url`: the embedded offline simulator.

    Configured from `OPENAI_BASE_URL` / `OPENAI_API_KEY` through `EnvVar` in the
    definitions; the key is never logged or stored (a `SecretStr` downstream).
    """

    base_url: Optional[str] = None
    api_key: Optional[str] = None
    max_concurrency: int = 64
    requests_per_minute: Optional[float] = None
    tokens_per_minute: Optional[float] = None

    def settings(self) -> LLMSettings:
        return LLMSettings.from_env(
            base_url=self.base_url or None,
            api_key=self.api_key or None,
            max_concurrency=self.max_concurrency,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
        )

    @contextmanager
    def endpoint(self, log=None):
        """LLMSettings for the step: the configured endpoint, else a simulator started for the step."""
        with model_endpoint(self.settings(), quiet=True) as settings:
            if log is not None:
                log(f"model endpoint: {settings.base_url}" + ("" if self.base_url else " (embedded simulator)"))
            yield settings


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The code location's resources: locations from `prompt_release.config` (flags, environment,
    defaults), the model endpoint through `EnvVar` when set (else the embedded simulator)."""

    def env(name: str) -> dg.EnvVar | None:
        return dg.EnvVar(name) if config.is_set(name) else None

    return {
        "warehouse": WarehouseResource(path=config.warehouse_setting(), lock_timeout_s=config.lock_timeout_s()),
        "registry": RegistryResource(root=str(config.registry_root())),
        "landing": LandingResource(root=str(config.landing_path())),
        "llm": LLMResource(base_url=env(config.ENV_BASE_URL), api_key=env(config.ENV_API_KEY)),
    }
