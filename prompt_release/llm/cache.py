"""The response cache in the warehouse (`llm_cache`): keys, bulk lookup, batched writes.

A cache key is the sha256 of the canonical JSON of everything that shapes an
answer (package hash, model, messages, parameters including the seed, tools,
response_format, sample index). Lookups are one query for all keys of a run.
Writes happen on a background thread in small batches, each its own short
transaction, so the DuckDB file is held only briefly (one writer at a time)
and a run killed midway keeps every batch already committed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa

from prompt_release.warehouse import write_transaction


class CachedResponse(NamedTuple):
    response: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None


class CacheRow(NamedTuple):
    cache_key: str
    package_hash: str | None
    model: str
    sample_index: int
    request: str
    response: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None


def cache_key(canonical_request: bytes) -> str:
    return hashlib.sha256(canonical_request).hexdigest()


def lookup(warehouse: str | Path | None, keys: list[str]) -> dict[str, CachedResponse]:
    """Cached responses for the keys found, in one query."""
    if not keys:
        return {}
    # Opened for writing so an older warehouse is migrated first. A lookup
    # itself changes nothing, so the analyst snapshot is not republished (a
    # checkpoint, a copy of the whole file and a verifying open, for nothing);
    # the caller's next write publishes it, migration included.
    with write_transaction(warehouse, publish=False) as con:
        return lookup_on(con, keys)


def lookup_on(con: duckdb.DuckDBPyConnection, keys: list[str]) -> dict[str, CachedResponse]:
    """`lookup` on a connection the caller already holds (e.g. inside its own write transaction)."""
    if not keys:
        return {}
    rows = con.execute(
        "SELECT cache_key, response::VARCHAR, input_tokens, output_tokens, latency_ms "
        "FROM llm_cache WHERE cache_key IN (SELECT unnest($keys::VARCHAR[]))",
        {"keys": keys},
    ).fetchall()
    return {row[0]: CachedResponse(*row[1:]) for row in rows}


def write_rows(warehouse: str | Path | None, rows: list[CacheRow]) -> None:
    """Insert rows in one transaction; a key already cached is left as it was."""
    columns = list(zip(*rows, strict=True))
    batch = pa.table(
        {
            "cache_key": pa.array(columns[0], pa.string()),
            "package_hash": pa.array(columns[1], pa.string()),
            "model": pa.array(columns[2], pa.string()),
            "sample_index": pa.array(columns[3], pa.int32()),
            "request": pa.array(columns[4], pa.string()),
            "response": pa.array(columns[5], pa.string()),
            "input_tokens": pa.array(columns[6], pa.int64()),
            "output_tokens": pa.array(columns[7], pa.int64()),
            "latency_ms": pa.array(columns[8], pa.float64()),
        }
    )
    with write_transaction(warehouse) as con:
        con.register("llm_cache_batch", batch)
        con.execute(
            "INSERT OR IGNORE INTO llm_cache (cache_key, package_hash, model, sample_index, request, "
            "response, input_tokens, output_tokens, latency_ms) "
            "SELECT cache_key, package_hash, model, sample_index, request, response, input_tokens, "
            "output_tokens, latency_ms FROM llm_cache_batch"
        )
        con.unregister("llm_cache_batch")


class CacheWriter:
    """Collects completed calls and writes them every `flush_rows` rows or `flush_s` seconds.

    `add` is cheap and called from the event loop; the warehouse work runs on
    a daemon thread. `close` writes what is left and re-raises a write error.
    """

    def __init__(self, warehouse: str | Path | None, *, flush_rows: int = 1000, flush_s: float = 1.0) -> None:
        self.warehouse = warehouse
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.rows_written = 0
        self._rows: deque[CacheRow] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="llm-cache-writer", daemon=True)
        self._thread.start()

    def add(self, row: CacheRow) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.flush_rows:
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            stopping = self._stopping
            self._flush()
            if stopping:
                return

    def _flush(self) -> None:
        # Take only what is there now: rows arriving during the write wait for
        # the next round, so a slow write cannot turn into back-to-back tiny ones.
        batch = [self._rows.popleft() for _ in range(len(self._rows))]
        if not batch:
            return
        try:
            write_rows(self.warehouse, batch)
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised by close()
            self._rows.extendleft(reversed(batch))
            self._error = exc
            return
        self._error = None
        self.rows_written += len(batch)

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()
        if self._rows and self._error is None:
            self._flush()
        if self._error is not None:
            raise self._error
