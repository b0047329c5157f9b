"""The response cache in the warehouse (`llm_cache`) and what each run paid (`llm_spend`).

A cache key is the sha256 of the canonical JSON of everything that shapes an
answer (the endpoint identity: normalised base URL and served model; package
hash, model, messages, parameters including the seed, tools, response_format,
sample index), so answers from one endpoint are never reused for another. Lookups are one query for all keys of a run.
Writes happen on a background thread, each batch its own short transaction
(the DuckDB file is held only briefly: one writer at a time), and the caller
waits for the commit of its row before it counts the call (group commit: what
arrives during one commit goes in the next). So a `kill -9` pays again at
most the answers inside the commit under way (at most one per call in
flight), and a run killed midway keeps every answer it had counted.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from concurrent.futures import Future, InvalidStateError
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa

from prompt_release.warehouse import Scope, write_transaction


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


class SpendRow(NamedTuple):
    """One attempt's spend for run `run_key`: a reservation (worst case) or its settlement."""

    attempt_id: str
    run_key: str
    cache_key: str
    tokens: float
    usd: float
    settled: bool


# The cache's own transactions read and write only these tables: on a lake they stage just them,
# not every table of the warehouse (traces included) for each batch of answers.
CACHE_TABLES = ("llm_cache", "llm_spend")
_CACHE_SCOPE = Scope.of(CACHE_TABLES)
# A lookup writes nothing: on a lake it stages no table and reads the cache as committed.
_LOOKUP_SCOPE = Scope.of(())


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
    with write_transaction(warehouse, publish=False, scope=_LOOKUP_SCOPE) as con:
        return lookup_on(con, keys)


def lookup_with_spend(
    warehouse: str | Path | None, keys: list[str], run_key: str
) -> tuple[dict[str, CachedResponse], tuple[float, float]]:
    """`lookup` and `spent_on(run_key)` in one open of the warehouse."""
    with write_transaction(warehouse, publish=False, scope=_LOOKUP_SCOPE) as con:
        return lookup_on(con, keys), spent_on(con, run_key)


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


def spent_on(con: duckdb.DuckDBPyConnection, run_key: str) -> tuple[float, float]:
    """(tokens, USD) run `run_key` has paid for so far, an unsettled attempt at its worst case."""
    row = con.execute(
        "SELECT coalesce(sum(tokens), 0), coalesce(sum(usd), 0) FROM llm_spend WHERE run_key = ?", [run_key]
    ).fetchall()[0]
    return float(row[0]), float(row[1])


def write_rows(
    warehouse: str | Path | None, rows: list[CacheRow], spend: list[SpendRow] = (), *, publish: bool | None = None
) -> None:
    """Insert rows in one transaction; a key already cached is left as it was. A spend row
    replaces the row of the same attempt (its settlement replaces its reservation)."""
    with write_transaction(warehouse, publish=publish, scope=_CACHE_SCOPE) as con:
        if rows:
            _insert_cache_rows(con, rows)
        if spend:
            # One row per attempt: the last word (its settlement) wins within a batch too.
            latest = list({row.attempt_id: row for row in spend}.values())
            columns = list(zip(*latest, strict=True))
            con.register(
                "llm_spend_batch",
                pa.table(
                    {
                        "attempt_id": pa.array(columns[0], pa.string()),
                        "run_key": pa.array(columns[1], pa.string()),
                        "cache_key": pa.array(columns[2], pa.string()),
                        "tokens": pa.array(columns[3], pa.float64()),
                        "usd": pa.array(columns[4], pa.float64()),
                        "settled": pa.array(columns[5], pa.bool_()),
                    }
                ),
            )
            # a delete and an insert, not INSERT OR REPLACE: that updates the stored row in place, and
            # a lake commits only the rows a transaction inserted and deleted (the settlement was lost)
            con.execute("DELETE FROM llm_spend WHERE attempt_id IN (SELECT attempt_id FROM llm_spend_batch)")
            con.execute(
                "INSERT INTO llm_spend (attempt_id, run_key, cache_key, tokens, usd, settled) "
                "SELECT attempt_id, run_key, cache_key, tokens, usd, settled FROM llm_spend_batch"
            )
            con.unregister("llm_spend_batch")


def _insert_cache_rows(con: duckdb.DuckDBPyConnection, rows: list[CacheRow]) -> None:
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
    con.register("llm_cache_batch", batch)
    con.execute(
        "INSERT OR IGNORE INTO llm_cache (cache_key, package_hash, model, sample_index, request, "
        "response, input_tokens, output_tokens, latency_ms) "
        "SELECT cache_key, package_hash, model, sample_index, request, response, input_tokens, "
        "output_tokens, latency_ms FROM llm_cache_batch"
    )
    con.unregister("llm_cache_batch")


class CacheWriter:
    """Writes completed calls (and spend rows) on a daemon thread, in group commits.

    `add`/`record` are cheap, called from the event loop, and return a future
    that is done once the row is committed; a caller that counts a call only
    after that never pays for an answer it had counted again. Each batch holds
    what was queued when the previous commit ended (at most `flush_rows` cache
    rows) and skips republishing the analyst snapshot; the last one, at
    `close`, republishes it. `close` writes what is left and re-raises a write
    error.
    """

    def __init__(self, warehouse: str | Path | None, *, flush_rows: int = 1000) -> None:
        self.warehouse = warehouse
        self.flush_rows = flush_rows
        self.rows_written = 0
        self._committed = False
        self._queue: deque[tuple[CacheRow | None, SpendRow | None, Future]] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="llm-cache-writer", daemon=True)
        self._thread.start()

    def add(self, row: CacheRow, spend: SpendRow | None = None) -> Future:
        """Queue an answer (and its settlement); the future is done once both are committed."""
        return self._put(row, spend)

    def record(self, spend: SpendRow) -> Future:
        """Queue a spend row alone (a reservation before a call, or a settlement without an answer)."""
        return self._put(None, spend)

    def _put(self, row: CacheRow | None, spend: SpendRow | None) -> Future:
        done: Future = Future()
        if self._error is not None:
            done.set_exception(self._error)
            return done
        self._queue.append((row, spend, done))
        self._wake.set()
        return done

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._queue and self._error is None:
                self._flush(publish=False)
            if self._stopping:
                return

    def _flush(self, *, publish: bool | None) -> None:
        # Take only what is there now: rows arriving during the write go in the next commit.
        batch = []
        rows = 0
        while self._queue and rows < self.flush_rows:
            item = self._queue.popleft()
            batch.append(item)
            rows += item[0] is not None
        cache_rows = [row for row, _, _ in batch if row is not None]
        spend_rows = [spend for _, spend, _ in batch if spend is not None]
        if not batch and not publish:
            return
        try:
            write_rows(self.warehouse, cache_rows, spend_rows, publish=publish)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter, re-raised by close()
            self._error = exc
            for _, _, done in (*batch, *self._queue):
                _resolve(done, exc)
            self._queue.clear()
            return
        self.rows_written += len(cache_rows)
        self._committed = True
        for _, _, done in batch:
            _resolve(done)

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()
        if self._error is None:
            # The rest, if any, and the one republish of the analyst snapshot for the whole run.
            while self._queue and self._error is None:
                self._flush(publish=False)
            if self._error is None and self._committed:
                self._flush(publish=None)
        if self._error is not None:
            raise self._error


def _resolve(done: Future, error: BaseException | None = None) -> None:
    # A waiter cancelled meanwhile (its run ended on another call's error) cancelled its future.
    if done.cancelled():
        return
    try:
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
    except InvalidStateError:
        pass
