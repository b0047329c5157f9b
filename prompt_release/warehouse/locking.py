"""Open the warehouse file, waiting out another process's lock.

DuckDB lets one process hold a file read-write; any other process (even a
read-only one) gets "Could not set lock on file". Openers retry with capped
exponential backoff and jitter until `lock_timeout_s`, then raise
`WarehouseLockedError` naming the file and the lock holder. Below both
`connection` (transactions) and `snapshot` (the analysts' copy), which use it.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import duckdb

from prompt_release import config
from prompt_release.errors import WarehouseLockedError
from prompt_release.warehouse import duck

_LOCK_PATTERN = re.compile(r"Could not set lock|Conflicting lock", re.IGNORECASE)


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.Error) and bool(_LOCK_PATTERN.search(str(exc)))


def open_with_backoff(
    path: str | Path, *, read_only: bool = False, lock_timeout_s: float | None = None
) -> duckdb.DuckDBPyConnection:
    """Connect to `path`, retrying while another process holds the lock."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + config.lock_timeout_s(lock_timeout_s)
    delay = 0.05
    while True:
        try:
            return duck.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if not is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                holder = re.search(r"\(PID \d+\)", str(exc))
                raise WarehouseLockedError(
                    "warehouse is locked by another process"
                    + (f" {holder.group(0)}" if holder else "")
                    + f"; gave up after {config.lock_timeout_s(lock_timeout_s):.0f}s "
                    f"(set {config.ENV_LOCK_TIMEOUT} to wait longer). DuckDB said: {exc}",
                    file=path,
                ) from exc
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())) * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 2.0)
