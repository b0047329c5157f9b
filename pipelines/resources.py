"""Dagster resources: thin, configurable handles over the core library's locations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from prompt_release import config
from prompt_release.warehouse import read_connection, write_transaction

# Every asset step that writes the warehouse runs in this pool; the Dagster
# instance (see `dagster.yaml` written by `make demo`) limits it to 1 so two
# steps never contend for DuckDB's single-writer lock.
WAREHOUSE_POOL = "warehouse"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. Connections live for one transaction only."""

    path: str = str(config.warehouse_path())
    lock_timeout_s: float = config.DEFAULT_LOCK_TIMEOUT_S
    # Republish the analysts' read-only snapshot after each committed write
    # (None: PROMPT_RELEASE_ANALYST_SNAPSHOT, default on). See docs/analysts.md.
    analyst_snapshot: bool | None = None

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with write_transaction(
            self.path, lock_timeout_s=self.lock_timeout_s, publish=self.analyst_snapshot
        ) as con:
            yield con

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with read_connection(self.path, lock_timeout_s=self.lock_timeout_s) as con:
            yield con


class RegistryResource(dg.ConfigurableResource):
    """The prompt registry root (the folder holding `prompts/`)."""

    root: str = str(config.registry_root())

    @property
    def path(self) -> Path:
        return Path(self.root)


class LandingResource(dg.ConfigurableResource):
    """The landing folder where trace files arrive in `<YYYY-MM-DD>/` day folders."""

    root: str = str(config.landing_path())

    @property
    def path(self) -> Path:
        return Path(self.root)
