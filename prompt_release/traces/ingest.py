"""Ingest trace files into the warehouse: discovery, format detection, whole files per transaction.

`ingest_paths` walks files and folders (`.jsonl`, `.json`, `.jsonl.gz`,
`.json.gz`), detects each file's format (native JSONL or OTLP/JSON), and
ingests whole files per transaction: a process killed mid-file leaves nothing
of it, and the next run ingests it whole. Small files share a transaction (up
to `GROUP_BYTES` or `GROUP_FILES` together): opening the warehouse, committing
and republishing the analyst snapshot cost far more than a small file's rows.
The small native files of a transaction also share their SQL passes
(`_ingest_native_batch`: their lines in one table with the file as a column,
accounting split per file by what each insert returns): planning the fast
path's statements was most of a tiny file's time.
A file that fails (rather than rejecting lines) sends its group back to one
transaction per file, so the files before it are stored as they would be
alone. `ingest_day` replaces the
rows of one landing day folder (delete, then insert, in one transaction).
Rows are deduplicated on `record_key`, so re-ingesting a file or overlapping
files adds no rows; those are counted as duplicates. On the DuckDB file
backend a key is unique over everything stored. On a lake a record is a
duplicate when its key is stored on its own day or within DEDUP_WINDOW_DAYS
(one) of it; a key that reappears farther away is stored again on its new
day: looking a key up in every day stored would make each write's cost grow
with the history (`_scoped`).

Native files go chunk by chunk (a thread reads and splits the next chunk
while DuckDB works): the fast path (`native.fast_insert_sql`) inserts every
line it can prove acceptable with a plain INSERT that skips keys already in
`traces`; the few other lines (rejects, unusual shapes) go through the
careful path (`native.check_sql`/`insert_sql`, INSERT OR IGNORE), which words
the reject reasons. A record_key repeated inside one chunk (or, when the
table was empty before the file, anywhere in the file) would break the plain
INSERT; `_optimistic` then reruns the transaction with a pass that sends such
lines the careful way and an anti-join on every stored key.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from prompt_release import config
from prompt_release.errors import UserError
from prompt_release.traces import events, native, otlp
from prompt_release.traces.lines import LineChunk, LineReader
from prompt_release.traces.models import FileSummary, IngestSummary
from prompt_release.warehouse import Scope, ScopeMiss, duck, redo_on_conflict, write_transaction

FORMATS = ("auto", "native", "otlp")
SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
RAW_LINE_LIMIT = 64 * 1024
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Progress = Callable[[str], None]
T = TypeVar("T")
_BATCH_ROWS = 8192


def discover(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files to ingest under `paths`, sorted within each folder; a missing path is a UserError."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        elif path.is_file():
            found.append(path)
        elif path.exists():
            # /dev/zero, a FIFO, a socket: reading would never end (or block forever)
            raise UserError("not a regular file (a device, FIFO or socket cannot be ingested)", file=path)
        else:
            raise UserError("no such file or folder", file=path)
    seen: set[Path] = set()
    unique = []
    for path in found:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(resolved)
    return unique


def day_of(path: Path) -> datetime | None:
    """Midnight UTC of the nearest `<YYYY-MM-DD>` folder holding `path`, if any."""
    for parent in path.parents:
        if _DAY.match(parent.name):
            try:
                return datetime.combine(date.fromisoformat(parent.name), datetime.min.time(), UTC)
            except ValueError:
                continue
    return None


def detect_format(path: Path) -> str:
    """'otlp' when the first non-blank line is an OTLP export request (or, for a
    pretty-printed `.json` document, the first 64 KiB name resourceSpans), else 'native'."""
    reader = LineReader(path, chunk_bytes=256 * 1024)
    for chunk in reader:
        found = _chunk_format(chunk)
        if found is not None:
            return found
    return "native"


def _chunk_format(chunk: LineChunk) -> str | None:
    """The format its first non-blank line tells (see detect_format); None when all are blank."""
    for i in range(len(chunk)):
        head = chunk.data[chunk.starts[i] : min(chunk.ends[i], chunk.starts[i] + 65536)]
        if head.strip():
            if b'"resourceSpans"' in head or b'"resource_spans"' in head:
                return "otlp"
            if head.strip() == b"{" and b'"resourceSpans"' in chunk.data[:65536]:
                return "otlp"
            return "native"
    return None


def ingest_paths(
    paths: Iterable[str | os.PathLike],
    *,
    warehouse: str | os.PathLike | None = None,
    format: str = "auto",
    progress: Progress | None = None,
) -> IngestSummary:
    """Ingest every trace file under `paths`, whole files per transaction (small files together)."""
    if format not in FORMATS:
        raise UserError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}", field="format")
    files = discover(paths)
    summary = IngestSummary()
    for group in _groups(files):
        if len(group) > 1:
            try:
                for file_summary in _scoped(
                    group,
                    lambda scope, group=group: _optimistic(
                        lambda check: _ingest_group(warehouse, group, format, progress, check, scope)
                    ),
                ):
                    summary.record(file_summary)  # after _settle_unknown_calls: the totals are final
                continue
            except _FileFailed:
                pass  # rolled back: file by file, so the files before the failing one are stored
        for path in group:

            def attempt(check_duplicates: bool, scope: Scope | None, path: Path = path) -> FileSummary:
                with write_transaction(warehouse, scope=scope) as con:
                    return ingest_file(con, path, format=format, progress=progress, check_duplicates=check_duplicates)

            summary.record(_scoped([path], lambda scope, attempt=attempt: _optimistic(lambda c: attempt(c, scope))))
    return summary


# What ingest touches on a lake; the days of traces it stages are those of the files' day folders
# and DEDUP_WINDOW_DAYS on each side. Late-signal events (traces.events) are staged by the same
# days as the calls, under the same dedup rule; an event about a call outside those days is still
# stored, but on a lake its call is not staged, so it is counted in events_unknown_call.
_INGEST_TABLES = ("traces", "events", "ingest_files", "ingest_rejects")
_SCOPE_ATTEMPTS = 3
# The lake's dedup rule: a record is a duplicate when its record_key is stored on its own day or
# within this many days of it (a span re-sent after midnight, a clock or timezone a little off); a
# key stored only farther away is stored again on the record's day. The lookup then reads a
# bounded number of days, so a write's cost does not grow with the history the lake holds. The
# DuckDB file backend keeps record_key unique over everything stored.
DEDUP_WINDOW_DAYS = 1


def _scoped(files: list[Path], run: Callable[[Scope | None], T]) -> T:
    """Run an ingest transaction staged with only the traces of its files' days (lake backend).

    A record whose key is stored on a day within DEDUP_WINDOW_DAYS of its own
    that was not staged makes the commit refuse (ScopeMiss, nothing written);
    the run is repeated with those days staged, so stored + duplicates +
    rejected stays exact. Files outside day folders stage no day up front.
    After a few misses (other writers racing) the whole lake is staged, and
    the dedup there is against every day.
    """
    return _scoped_days([day.date() for path in files if (day := day_of(path)) is not None], run)


def _scoped_days(days: Iterable[date], run: Callable[[Scope | None], T]) -> T:
    around = {day + timedelta(days=shift) for day in days for shift in range(-DEDUP_WINDOW_DAYS, DEDUP_WINDOW_DAYS + 1)}
    scope: Scope | None = Scope.of(_INGEST_TABLES, {"traces": around, "events": around}, key_window=DEDUP_WINDOW_DAYS)
    for _ in range(_SCOPE_ATTEMPTS):
        try:
            return run(scope)
        except ScopeMiss as miss:
            scope = scope.widened(miss)
    return run(None)


# Files ingested in one transaction, up to this many bytes (on disk) or files together.
# A kill loses at most one group's uncommitted work, never part of a file.
GROUP_BYTES = 16 * 1024 * 1024
GROUP_FILES = 1000


class _FileFailed(Exception):
    """A file of a shared transaction failed (an error, not a rejected line)."""


def _groups(files: list[Path]) -> Iterator[list[Path]]:
    group: list[Path] = []
    size = 0
    for path in files:
        length = _size(path)  # 0 when it cannot be read: ingesting it will say why
        if group and (size + length > GROUP_BYTES or len(group) >= GROUP_FILES):
            yield group
            group, size = [], 0
        group.append(path)
        size += length
    if group:
        yield group


def _ingest_group(
    warehouse: str | os.PathLike | None,
    group: list[Path],
    format: str,
    progress: Progress | None,
    check_duplicates: bool,
    scope: Scope | None = None,
) -> list[FileSummary]:
    with write_transaction(warehouse, scope=scope) as con:
        try:
            return _ingest_together(con, group, format, progress, check_duplicates)
        except duckdb.ConstraintException:
            raise  # a repeated record_key: _optimistic runs the group again with the duplicate pass
        except Exception as exc:
            raise _FileFailed() from exc


def _ingest_together(
    con: duckdb.DuckDBPyConnection,
    paths: list[Path],
    format: str,
    progress: Progress | None,
    check_duplicates: bool,
) -> list[FileSummary]:
    """Ingest files in their order inside the caller's transaction: small native
    files in batches (one SQL pass each), any other file on its own (`ingest_file`)."""
    summaries: list[FileSummary] = []
    batch: list[_SmallFile] = []
    batch_bytes = 0

    def flush() -> None:
        nonlocal batch, batch_bytes
        if batch:
            summaries.extend(_ingest_native_batch(con, batch, progress))
        batch, batch_bytes = [], 0

    for path in paths:
        small = _read_small(path, format) if format != "otlp" else None
        if small is not None:
            batch.append(small)
            batch_bytes += small.size
            if batch_bytes >= GROUP_BYTES:
                flush()
            continue
        flush()  # in their order: of two files holding a record, the first stores it
        summaries.append(ingest_file(con, path, format=format, progress=progress, check_duplicates=check_duplicates))
    flush()
    _settle_unknown_calls(con, summaries)
    return summaries


def _settle_unknown_calls(con: duckdb.DuckDBPyConnection, summaries: list[FileSummary]) -> None:
    """Count again, at the end of a transaction of several files, the events whose call is unknown:
    an event file that sorts before the calls it is about (events-*.jsonl, traces-*.jsonl) found
    none of them when it was ingested, and its calls arrived in the same commit."""
    for summary in summaries:
        if not summary.events_unknown_call or summary._ingested_at is None:
            continue
        now = events.count_unknown_calls(con, summary.source_file, summary._ingested_at)
        if now == summary.events_unknown_call:
            continue
        summary.events_unknown_call = now
        key = [summary.source_file, summary._ingested_at]
        # delete + insert rather than UPDATE: the lake backend sees inserted and deleted rows only
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _ingest_file_row AS SELECT * REPLACE (? AS events_unknown_call) "
            "FROM ingest_files WHERE source_file = ? AND ingested_at = ?",
            [now, *key],
        ).fetchall()
        con.execute("DELETE FROM ingest_files WHERE source_file = ? AND ingested_at = ?", key).fetchall()
        con.execute("INSERT INTO ingest_files SELECT * FROM _ingest_file_row").fetchall()
        con.execute("DROP TABLE _ingest_file_row").fetchall()


def _optimistic(attempt: Callable[[bool], object]):
    """Run a whole transaction assuming no record_key repeats inside one chunk of a
    native file, nor anywhere in a file ingested into an empty table (the fast
    path then needs no duplicate pass, and no anti-join on the stored keys there).
    If one does, the fast path's plain INSERT fails on the unique index, the
    transaction rolls back, and it runs again with the duplicate pass and the
    anti-join on. Nothing is half-written."""
    try:
        return attempt(False)
    except duckdb.ConstraintException:
        return attempt(True)


def ingest_day(
    landing_root: str | os.PathLike,
    day: str | date,
    *,
    warehouse: str | os.PathLike | None = None,
    format: str = "auto",
    progress: Progress | None = None,
) -> IngestSummary:
    """Replace exactly the rows from files under `<landing_root>/<day>/`, in one transaction.

    On a lake it stages the folder's day and DEDUP_WINDOW_DAYS on each side (more when its records
    need them, see `_scoped`): the rows it replaces are those stored on these days, where the
    folder's records fall. A day replaced by another writer meanwhile makes it run again over the
    new version (the replacement is the same whatever the order), a few times at most.
    """
    day_text = day.isoformat() if isinstance(day, date) else str(day)
    try:
        folder_day = date.fromisoformat(day_text) if _DAY.match(day_text) else None
    except ValueError:
        folder_day = None
    if folder_day is None:
        raise UserError(f"day must be YYYY-MM-DD, got {day_text!r}", field="day")
    folder = (Path(landing_root) / day_text).resolve()
    files = discover([folder]) if folder.is_dir() else []
    prefix = str(folder) + os.sep

    def attempt(check_duplicates: bool, scope: Scope | None) -> IngestSummary:
        summary = IngestSummary()
        with write_transaction(warehouse, scope=scope) as con:
            for table in _INGEST_TABLES:
                con.execute(f"DELETE FROM {table} WHERE starts_with(source_file, ?)", [prefix]).fetchall()
            for file_summary in _ingest_together(con, files, format, progress, check_duplicates):
                summary.record(file_summary)  # after _settle_unknown_calls: the totals are final
        return summary

    return redo_on_conflict(
        lambda: _scoped_days([folder_day], lambda scope: _optimistic(lambda check: attempt(check, scope)))
    )


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    format: str = "auto",
    progress: Progress | None = None,
    ingested_at: datetime | None = None,
    check_duplicates: bool = True,
) -> FileSummary:
    """Ingest one file inside the caller's transaction; return its accounting.

    `check_duplicates=False` skips the native fast path's pass that finds
    record_keys repeated inside a chunk: faster, but such a repeat then fails
    the transaction with duckdb.ConstraintException (see `_optimistic`)."""
    path = Path(path).resolve()
    try:
        return _ingest_file(con, path, format, progress, ingested_at or datetime.now(UTC), check_duplicates)
    except OSError as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: OSError) -> UserError:
    # e.g. no read permission, or removed since the folder was listed
    return UserError(f"cannot be read: {exc.strerror or exc}", file=path)


def _ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    format: str,
    progress: Progress | None,
    ingested_at: datetime,
    check_duplicates: bool,
) -> FileSummary:
    fmt = detect_format(path) if format == "auto" else format
    con.execute("SET TimeZone = 'UTC'")
    # one transaction per file holds the whole file's rows until commit; a
    # memory limit makes DuckDB spill them to its temp directory instead of
    # growing with the file (insertion order does not matter: rows carry source_line)
    duck.cap_memory(con, _memory_limit())
    con.execute("SET preserve_insertion_order = false")
    # a file's rejects describe its latest ingest; rows dedup on record_key
    con.execute("DELETE FROM ingest_rejects WHERE source_file = ?", [str(path)]).fetchall()
    summary = FileSummary(source_file=str(path), format=fmt, files=1)
    context = _FileContext(con, path, day_of(path), ingested_at, summary, progress)
    context.check_duplicates = check_duplicates
    if fmt == "native":
        _ingest_native(context)
    else:
        otlp.ingest_otlp(context)
    if context.reader is not None and context.reader.cut is not None:
        cut = context.reader.cut
        context.reject(cut.line_number, cut.message, None, cut.tail)
        summary.lines_read += 1
        summary.records += 1
    context.flush_rejects()
    assert summary.balanced, summary
    if summary.events:
        summary.events_unknown_call = events.count_unknown_calls(con, str(path), ingested_at)
    summary._ingested_at = ingested_at
    _record_files(con, [summary], ingested_at)
    return summary


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _memory_limit() -> str:
    return config.ingest_memory_limit()


class _FileContext:
    """What a format handler needs while ingesting one file."""

    def __init__(self, con, path, day_ts, ingested_at, summary, progress, rejects: list[tuple] | None = None) -> None:
        self.con: duckdb.DuckDBPyConnection = con
        self.path: Path = path
        self.day_ts: datetime | None = day_ts
        self.ingested_at: datetime = ingested_at
        self.summary: FileSummary = summary
        self.progress: Progress | None = progress
        self.reader: LineReader | None = None
        # (source_file, line_number, reason, field, raw, length, sha256); files of one batch share the list
        self._rejects: list[tuple] = [] if rejects is None else rejects
        self.check_duplicates: bool = True

    def lines(self, reuse_buffers: bool = False) -> LineReader:
        self.reader = LineReader(self.path, reuse_buffers=reuse_buffers)
        return self.reader

    def reject(
        self, line_number: int | None, reason: str, field: str | None, raw: bytes, whole: tuple[int, str] | None = None
    ) -> None:
        """Record one rejected record; `whole` = (length, sha256) when `raw` is only the head of it."""
        self.summary.rejected += 1
        length, digest = whole if whole is not None else (len(raw), hashlib.sha256(raw).hexdigest())
        self._rejects.append((str(self.path), line_number, reason, field, raw[:RAW_LINE_LIMIT], length, digest))
        if len(self._rejects) >= 10_000:
            self.flush_rejects()

    def reject_too_long(self, line_number: int, chunk: LineChunk, i: int, whole: tuple[int, str]) -> None:
        limit = self.reader.max_line_bytes if self.reader is not None else config.ingest_max_line_bytes()
        head = bytes(memoryview(chunk.data)[chunk.starts[i] : min(chunk.ends[i], chunk.starts[i] + RAW_LINE_LIMIT)])
        self.reject(
            line_number,
            f"line is {whole[0]:,} bytes, longer than the limit of {limit:,} ({config.ENV_INGEST_MAX_LINE_BYTES})",
            None,
            head,
            whole,
        )

    def flush_rejects(self) -> None:
        if not self._rejects:
            return
        table = pa.table(
            {
                "source_file": pa.array([r[0] for r in self._rejects], pa.string()),
                "line_number": pa.array([r[1] for r in self._rejects], pa.int64()),
                "reason": pa.array([r[2] for r in self._rejects], pa.string()),
                "field": pa.array([r[3] for r in self._rejects], pa.string()),
                "raw_line": pa.array([r[4].decode("utf-8", "replace") for r in self._rejects], pa.string()),
                "raw_length": pa.array([r[5] for r in self._rejects], pa.int64()),
                "raw_sha256": pa.array([r[6] for r in self._rejects], pa.string()),
            }
        )
        self.con.register("_ingest_rejects_batch", table)
        try:
            self.con.execute(
                "INSERT INTO ingest_rejects SELECT source_file, line_number, reason, field, raw_line, raw_length, "
                "raw_sha256, ? FROM _ingest_rejects_batch",
                [self.ingested_at],
            ).fetchall()
        finally:
            _unregister(self.con, "_ingest_rejects_batch")
        self._rejects.clear()

    def report(self, lines: int) -> None:
        if self.progress is not None:
            self.progress(f"{self.path.name}: {lines:,} lines")


def _chunk_table(chunk: LineChunk, context: _FileContext) -> pa.Table:
    """Arrow table (ln, line) of a chunk; blank lines and invalid UTF-8 lines become NULL.

    Zero-copy: the chunk's bytes are the Arrow data buffer; each value spans a
    whole line including its CR/LF, which the JSON parser reads as whitespace.
    """
    n = len(chunk)
    lengths = chunk.ends - chunk.starts
    blank = lengths == 0
    short = np.flatnonzero((lengths > 0) & (lengths <= 16))
    for i in short:  # whitespace-only lines are blank too; only short lines can be
        if not chunk.line(int(i)).strip():
            blank[i] = True
    valid = ~blank
    for i, whole in (chunk.oversize or {}).items():
        valid[i] = False
        context.reject_too_long(chunk.first_line + i, chunk, i, whole)
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[:n] = chunk.starts
    offsets[n] = chunk.ends[-1] if n else 0
    # the last value must not run past the newline-inclusive region; ends[-1] excludes CR/LF
    lines = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(),
        n,
        [pa.py_buffer(np.packbits(valid, bitorder="little")), pa.py_buffer(offsets), pa.py_buffer(chunk.data)],
    )
    try:
        text = lines.cast(pa.large_string())
    except pa.ArrowInvalid:
        # rare: some line is not UTF-8; find it (them) line by line and reject
        values = []
        for i in range(n):
            if not valid[i]:
                values.append(None)
                continue
            raw = chunk.line(i)
            try:
                values.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                reason, field = native.describe_unparsable(raw)
                context.reject(chunk.first_line + i, reason, field, raw)
                values.append(None)
                valid[i] = False
        text = pa.array(values, pa.large_string())
    context.summary.blank_lines += int(blank.sum())
    numbers = pa.array(np.arange(chunk.first_line, chunk.first_line + n, dtype=np.int64))
    table = pa.table({"ln": numbers, "line": text})
    # DuckDB hands each Arrow record batch to one thread: slices (zero-copy) let every thread work
    return pa.Table.from_batches(table.to_batches(max_chunksize=_BATCH_ROWS), schema=table.schema)


def _ingest_native(context: _FileContext) -> None:
    con, summary = context.con, context.summary
    params = {"source_file": str(context.path), "day_ts": context.day_ts, "ingested_at": context.ingested_at}
    unknown: list[str] = []  # keys outside the contract seen in this file, fields of the fast parse
    # into an empty table the anti-join on stored keys can only meet this file's
    # own earlier chunks; the unique index catches that case (see _optimistic)
    skip_stored = context.check_duplicates or con.execute("SELECT EXISTS (SELECT 1 FROM traces)").fetchall()[0][0]
    reader = context.lines(reuse_buffers=True)
    # A file of one chunk gains nothing from a reader thread, and starting one is most of a tiny file's time.
    for chunk in _prefetch(reader) if _size(context.path) > reader.chunk_bytes else reader:
        rejected_before = summary.rejected
        blank_before = summary.blank_lines
        table = _chunk_table(chunk, context)
        nonblank = len(chunk) - (summary.blank_lines - blank_before)
        con.register("_native_lines", table)
        try:
            if FAST_PATH:
                inserted, careful = _native_fast(con, unknown, params, context.check_duplicates, skip_stored)
            else:
                inserted, careful = 0, None
            if careful is None or careful:
                inserted += _native_careful(context, chunk, table, careful, params)
        finally:
            _unregister(con, "_native_lines")
            del table  # its values point into the chunk's buffer, which the reader fills again
            chunk.release()
        acceptable = nonblank - (summary.rejected - rejected_before)
        summary.lines_read += nonblank
        summary.records += nonblank
        summary.stored += inserted
        summary.duplicates += acceptable - inserted
        context.report(chunk.first_line + len(chunk) - 1)


# The fast path (see native.fast_insert_sql) handles every line it can prove
# acceptable; tests turn it off to compare it with the careful path.
FAST_PATH = True
_UNKNOWN_SAMPLE = 2000  # lines per chunk whose keys seed the fast parse
_UNKNOWN_MAX = 64  # beyond this many distinct unknown keys, lines with new ones go the careful way


def _native_fast(
    con, unknown: list[str], params: dict, check_duplicates: bool, skip_stored: bool
) -> tuple[int, list[int]]:
    """Insert the surely-acceptable lines of a registered chunk; return (inserted,
    line numbers left for the careful path). `skip_stored`: leave out keys already in traces."""
    _learn_unknown(con, "_native_lines", f"LIMIT {_UNKNOWN_SAMPLE}", unknown)
    skip = []
    if check_duplicates:
        skip = [ln for (ln,) in con.execute(native.duplicate_lines_sql("_native_lines")).fetchall()]
    result, careful = _run_fast(
        con, skip, native.fast_insert_sql("_native_lines", unknown, bool(skip), skip_stored), params
    )
    inserted = result[0][0]
    if careful:
        # lines with keys not seen before widen the fast parse for the next chunks
        _learn_unknown(con, "_native_lines", f"AND ln IN ({','.join(map(str, careful[:1000]))})", unknown)
    return inserted, careful


def _learn_unknown(con, source: str, clause: str, unknown: list[str]) -> None:
    if len(unknown) >= _UNKNOWN_MAX:
        return
    filter_sql = f"WHERE line IS NOT NULL {clause}"
    sql = f"SELECT DISTINCT unnest(try(json_keys(line))) FROM (SELECT line FROM {source} {filter_sql})"
    taken = {k.lower() for k in (*native.FIELDS, *unknown)}
    for (key,) in con.execute(sql).fetchall():
        if key is not None and len(unknown) < _UNKNOWN_MAX and native.fast_unknown_keys_ok(key, taken):
            unknown.append(key)
            taken.add(key.lower())


def _native_careful(
    context: _FileContext, chunk: LineChunk, table: pa.Table, lines: list[int] | None, params: dict
) -> int:
    """Check and insert lines of the chunk with the careful path (all lines when
    `lines` is None); record rejects with their reasons; return rows inserted.

    Nothing new is registered or materialized per chunk: DuckDB keeps every object
    registered in a transaction alive until it ends (even after unregister), as it
    keeps replaced temp tables, so per-chunk copies grew memory with the file (a
    file of repeated keys, which sends every line here, reached 5 GB for 1 GB).
    Both statements read the chunk's own table, filtered by line number, and parse
    the careful lines twice: the price of bounded memory on this rare path."""
    numbers = [int(n) for n in table["ln"].to_numpy()] if lines is None else lines
    inserted = 0
    if numbers:
        found = _event_lines(context.con, numbers)
        if found:
            inserted += _store_events(context, [(ln, chunk.line(ln - chunk.first_line)) for ln in found])
            handled = set(found)
            numbers = [n for n in numbers if n not in handled]
    for checked in _checked_parts(numbers):
        inserted += context.con.execute(native.insert_sql(checked), params).fetchall()[0][0]
        for ln, jtype, field, reason in context.con.execute(native.rejects_sql(checked)).fetchall():
            raw = chunk.line(ln - chunk.first_line)
            if jtype != "OBJECT":
                reason, field = native.describe_unparsable(raw)
            context.reject(ln, reason, field, raw)
    return inserted


_CAREFUL_ROWS = 8192


def _checked_parts(numbers: list[int], per_row: bool = False) -> Iterator[str]:
    """`native.check_sql` relations over the listed lines (row ids) of `_native_lines`, a part at a time."""
    for start in range(0, len(numbers), _CAREFUL_ROWS):
        part = numbers[start : start + _CAREFUL_ROWS]
        source = (
            f"(SELECT * FROM _native_lines WHERE ln BETWEEN {part[0]} AND {part[-1]} "
            f"AND list_contains({_int_list(part)}, ln))"
        )
        yield f"({native.check_sql(source, per_row)}) AS checked"


# A native file whose lines fit in this many bytes is read whole and ingested
# with the other small native files of its transaction in one SQL pass (see
# _ingest_native_batch); 0 turns that off (every file its own passes, as a large file).
BATCH_FILE_BYTES = 1024 * 1024


class _SmallFile:
    """A native file read whole, waiting for its batch."""

    def __init__(self, path: Path, chunks: list[LineChunk], cut, size: int) -> None:
        self.path, self.chunks, self.cut, self.size = path, chunks, cut, size


def _read_small(path: Path, format: str) -> _SmallFile | None:
    """The file's lines when it is native (or format 'native') and they fit in
    BATCH_FILE_BYTES; None when it must go its own way (`ingest_file`). A gzip
    file is read only that far, so a bomb costs one small chunk here."""
    if BATCH_FILE_BYTES <= 0 or (not path.name.endswith(".gz") and _size(path) > BATCH_FILE_BYTES):
        return None
    path = path.resolve()
    reader = LineReader(path, chunk_bytes=BATCH_FILE_BYTES)
    chunks: list[LineChunk] = []
    size = 0
    try:
        for chunk in reader:  # more than one chunk: a last line without newline, a line past the limit
            size += int(chunk.ends[-1])
            if size > BATCH_FILE_BYTES:
                return None
            if len(chunk.data) > int(chunk.ends[-1]) + 2:
                # the reader's buffer may be much larger than a tiny file: keep only its lines
                chunk.data = bytes(memoryview(chunk.data)[: int(chunk.ends[-1])])
            chunks.append(chunk)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if format == "auto" and next(filter(None, map(_chunk_format, chunks)), "native") == "otlp":
        return None
    return _SmallFile(path, chunks, reader.cut, size)


def _ingest_native_batch(
    con: duckdb.DuckDBPyConnection, files: list[_SmallFile], progress: Progress | None
) -> list[FileSummary]:
    """Ingest small native files in one pass each of the fast and careful paths,
    inside the caller's transaction; return their accounting, in their order.

    Per file the result is what `ingest_file` would give for the files one after
    the other: the lines of all files are one table with the file and line
    number as columns; a record_key repeated anywhere in the batch sends its
    lines the careful way, which stores the first acceptable one (file order,
    then line order) and counts the others as duplicates; every insert returns
    the file of each row it stored, so stored and duplicates are counted per file.
    Planning the large statements once per batch instead of once per file is
    the point: it was most of a tiny file's ingest."""
    ingested_at = datetime.now(UTC)
    con.execute("SET TimeZone = 'UTC'")
    duck.cap_memory(con, _memory_limit())
    con.execute("SET preserve_insertion_order = false")
    sources = [str(small.path) for small in files]
    con.register("_native_batch_files", pa.table({"source_file": pa.array(sources, pa.string())}))
    try:
        con.execute(
            "DELETE FROM ingest_rejects WHERE source_file IN (SELECT source_file FROM _native_batch_files)"
        ).fetchall()
    finally:
        _unregister(con, "_native_batch_files")
    rejects: list[tuple] = []
    contexts: list[_FileContext] = []
    tables: list[pa.Table] = []
    segments: list[tuple[int, int, LineChunk]] = []  # (first row id, file index, chunk)
    rows = 0
    for index, small in enumerate(files):
        summary = FileSummary(source_file=str(small.path), format="native", files=1)
        day_ts = day_of(small.path)
        context = _FileContext(con, small.path, day_ts, ingested_at, summary, progress, rejects)
        contexts.append(context)
        for chunk in small.chunks:
            blank_before = summary.blank_lines
            table = _chunk_table(chunk, context)
            n = table.num_rows
            nonblank = n - (summary.blank_lines - blank_before)
            summary.lines_read += nonblank
            summary.records += nonblank
            tables.append(
                pa.table(
                    {
                        "ln": pa.array(np.arange(rows, rows + n, dtype=np.int64)),
                        "line": table["line"],
                        "source_file": pa.array([sources[index]] * n, pa.string()),
                        "day_ts": pa.array([day_ts] * n, pa.timestamp("us", tz="UTC")),
                        "source_line": table["ln"],
                    }
                )
            )
            segments.append((rows, index, chunk))
            rows += n
    starts = [segment[0] for segment in segments]
    inserted: dict[str, int] = dict.fromkeys(sources, 0)
    if tables:
        lines = pa.concat_tables(tables).combine_chunks()  # one copy, compact, of every file's lines
        del tables
        lines = pa.Table.from_batches(lines.to_batches(max_chunksize=_BATCH_ROWS), schema=lines.schema)
        con.register("_native_lines", lines)
        try:
            careful = _native_batch_fast(con, ingested_at, inserted) if FAST_PATH else list(range(rows))
            found = _event_lines(con, careful)
            if found:
                by_file: dict[int, list[tuple[int, str]]] = {}
                for ln in found:
                    first, index, chunk = segments[bisect.bisect_right(starts, ln) - 1]
                    by_file.setdefault(index, []).append((chunk.first_line + ln - first, chunk.line(ln - first)))
                for index in sorted(by_file):  # in file order: of two files holding an event, the first stores it
                    inserted[sources[index]] += _store_events(contexts[index], by_file[index])
                handled = set(found)
                careful = [ln for ln in careful if ln not in handled]
            for checked in _checked_parts(careful, per_row=True):
                returned = con.execute(native.insert_sql(checked, per_row=True), {"ingested_at": ingested_at})
                _count_files(returned.fetchall(), inserted)
                for ln, jtype, field, reason in con.execute(native.rejects_sql(checked)).fetchall():
                    first, index, chunk = segments[bisect.bisect_right(starts, ln) - 1]
                    raw = chunk.line(ln - first)
                    if jtype != "OBJECT":
                        reason, field = native.describe_unparsable(raw)
                    contexts[index].reject(chunk.first_line + ln - first, reason, field, raw)
        finally:
            _unregister(con, "_native_lines")
    summaries = []
    for small, context in zip(files, contexts):
        summary = context.summary
        summary.stored = inserted[str(small.path)]
        summary.duplicates = summary.records - summary.rejected - summary.stored
        if small.cut is not None:
            context.reject(small.cut.line_number, small.cut.message, None, small.cut.tail)
            summary.lines_read += 1
            summary.records += 1
        assert summary.balanced and summary.duplicates >= 0, summary
        if small.chunks:
            context.report(small.chunks[-1].first_line + len(small.chunks[-1]) - 1)
        if summary.events:
            # counted once the batch's calls are in; _settle_unknown_calls recounts at the end of the transaction
            summary.events_unknown_call = events.count_unknown_calls(con, summary.source_file, ingested_at)
        summary._ingested_at = ingested_at
        summaries.append(summary)
    if contexts:
        contexts[0].flush_rejects()  # the batch's rejects, all files at once
    _record_files(con, summaries, ingested_at)
    return summaries


def _native_batch_fast(con: duckdb.DuckDBPyConnection, ingested_at: datetime, inserted: dict[str, int]) -> list[int]:
    """The fast path over the registered batch (`_native_lines` with ROW_COLUMNS);
    count the rows it stored per file into `inserted`; return the row ids left for the careful path.
    A record_key repeated in the batch always goes the careful way (never the unique
    index's ConstraintException, as for one file): that keeps the first file's line."""
    unknown: list[str] = []
    _learn_unknown(con, "_native_lines", "", unknown)
    skip = [ln for (ln,) in con.execute(native.duplicate_lines_sql("_native_lines")).fetchall()]
    skip_stored = con.execute("SELECT EXISTS (SELECT 1 FROM traces)").fetchall()[0][0]
    sql = native.fast_insert_sql("_native_lines", unknown, bool(skip), skip_stored, per_row=True)
    returned, careful = _run_fast(con, skip, sql, {"ingested_at": ingested_at})
    _count_files(returned, inserted)
    return careful


def _run_fast(con: duckdb.DuckDBPyConnection, skip: list[int], sql: str, params: dict) -> tuple[list[tuple], list[int]]:
    """Run a fast-path INSERT (`native.fast_insert_sql`) with its `_native_skip` lines
    and `_native_defer` function in place; return the rows it returned and the line
    (row) numbers deferred or skipped, for the careful path."""
    if skip:
        con.register("_native_skip", pa.table({"ln": pa.array(skip, pa.int64())}))
    deferred: list[int] = []

    def defer(ln: int) -> bool:
        deferred.append(ln)
        return False

    con.create_function(native.FAST_DEFER, defer, ["BIGINT"], "BOOLEAN", side_effects=True)
    try:
        # fetched here: the next statement on the connection would discard the result
        result = con.execute(sql, params).fetchall()
    finally:
        _release(con.remove_function, native.FAST_DEFER)
        if skip:
            _unregister(con, "_native_skip")
    return result, sorted(set(deferred) | set(skip))


def _count_files(returned: list[tuple], counts: dict[str, int]) -> None:
    """Add up per source_file the rows an INSERT ... RETURNING source_file stored."""
    for (source_file,) in returned:
        counts[source_file] += 1


def _record_files(con: duckdb.DuckDBPyConnection, summaries: list[FileSummary], ingested_at: datetime) -> None:
    """One ingest_files row per file (see ingest_file), all in one statement."""
    columns = ("source_file", "format", *_FILE_COUNTS)
    table = pa.table({name: [getattr(s, name) for s in summaries] for name in (*columns, *_EVENT_COUNTS)})
    con.register("_ingest_files_batch", table)
    try:
        con.execute(
            f"INSERT INTO ingest_files SELECT {', '.join(columns)}, ?, {', '.join(_EVENT_COUNTS)} "
            "FROM _ingest_files_batch",
            [ingested_at],
        ).fetchall()
    finally:
        _unregister(con, "_ingest_files_batch")


_FILE_COUNTS = (
    "lines_read",
    "blank_lines",
    "records",
    "stored",
    "duplicates",
    "rejected",
    "non_call_spans",
    "prompt_version_missing",
)
_EVENT_COUNTS = ("events", "event_duplicates", "events_unknown_call")  # after ingested_at (migration 0019)


def _event_lines(con: duckdb.DuckDBPyConnection, numbers: list[int]) -> list[int]:
    """The event lines (a JSON object with an `event` key) among the listed lines (row ids) of
    `_native_lines`. They are never call lines: the fast path leaves them to the careful
    path because they lack the call's required fields."""
    found: list[int] = []
    for start in range(0, len(numbers), _CAREFUL_ROWS):
        part = numbers[start : start + _CAREFUL_ROWS]
        found += [
            ln
            for (ln,) in con.execute(
                f"SELECT ln FROM _native_lines WHERE ln BETWEEN {part[0]} AND {part[-1]} "
                f"AND list_contains({_int_list(part)}, ln) AND coalesce(try(json_exists(line, '$.event')), false) "
                "AND try(json_type(line)) = 'OBJECT' ORDER BY ln"
            ).fetchall()
        ]
    return found


def _store_events(context: _FileContext, lines: list[tuple[int, str]]) -> int:
    """Store the file's event lines, given as (line number, text); return the events new to the
    warehouse (counted as stored, like a call line; the others are duplicates or rejected)."""
    fallback = context.day_ts or context.ingested_at
    rows = []
    for line_number, raw in lines:
        try:
            rows.append(events.native_row(json.loads(raw), line_number, fallback))
        except events.BadEvent as exc:
            context.reject(line_number, exc.reason, exc.field, raw)
        except (ValueError, RecursionError):
            reason, field = native.describe_unparsable(raw)
            context.reject(line_number, reason, field, raw)
    stored = events.store(context.con, rows, str(context.path), context.ingested_at)
    context.summary.events += stored
    context.summary.event_duplicates += len(rows) - stored
    return stored


def _int_list(numbers: list[int]) -> str:
    return "[" + ",".join(map(str, numbers)) + "]::BIGINT[]"


def _prefetch(chunks: Iterable[LineChunk]) -> Iterator[LineChunk]:
    """Read and split the next chunk in a thread while DuckDB works on this one
    (file reads, numpy and DuckDB all release the GIL)."""
    box: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(("chunk", chunk)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))

    thread = threading.Thread(target=produce, name="ingest-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def _unregister(con: duckdb.DuckDBPyConnection, name: str) -> None:
    _release(con.unregister, name)


def _release(cleanup: Callable[[str], object], name: str) -> None:
    # after a failed statement the transaction is aborted and cleanup calls
    # (unregister, remove_function) raise too; the first error is the one worth seeing
    try:
        cleanup(name)
    except duckdb.Error:
        pass
