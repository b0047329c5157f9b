"""Publish and open the analysts' read-only snapshot of the warehouse.

DuckDB lets one process hold a file read-write, and even a read-only opener
takes a lock that blocks writers. So analysts do not open the live file:
after every committed write transaction the writer, still holding the write
lock, checkpoints and copies the file to a temp file next to it and renames
it over `<warehouse>.analyst.duckdb` (`analyst_path`). The rename is atomic;
an analyst holding the previous snapshot keeps a valid handle on the old
inode (POSIX) and sees the new data on their next connection. The writer
never opens the snapshot through DuckDB, so no analyst lock can ever stall a
pipeline run. See docs/analysts.md for the design and its costs.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import duckdb

from prompt_release import config
from prompt_release.errors import UserError
from prompt_release.warehouse import duck
from prompt_release.warehouse import lake as lake_backend
from prompt_release.warehouse.locking import is_lock_error, open_with_backoff
from prompt_release.warehouse.migrate import check_readable

log = logging.getLogger(__name__)

# Catalog name analysts see when the snapshot is attached; stable across
# snapshots so saved queries may qualify names with it.
CATALOG = "warehouse"


def analyst_path(warehouse: str | os.PathLike | None = None) -> Path:
    """`.prompt_release/warehouse.duckdb` -> `.prompt_release/warehouse.analyst.duckdb`."""
    live = config.warehouse_path(warehouse)
    return live.with_name(f"{live.stem}.analyst{live.suffix or '.duckdb'}")


def is_local_file(warehouse: str | os.PathLike) -> bool:
    # MotherDuck (`md:`) and in-memory databases handle concurrency themselves.
    text = str(warehouse)
    return not (text.startswith("md:") or text.startswith("motherduck:") or text == ":memory:")


def publish_locked(con: duckdb.DuckDBPyConnection, warehouse: str | os.PathLike) -> Path | None:
    """Publish the snapshot from a connection that holds the write lock.

    Called right after COMMIT, before the writer releases the file, so no
    other writer can change it while it is copied. Returns the snapshot path,
    or None when the warehouse is not a local file. A failure to publish is
    logged, not raised: the write itself is committed, and analysts keep the
    previous snapshot (the `sql` command warns when it is older than the live file).
    """
    live = Path(warehouse)
    if not is_local_file(live):
        return None
    target = analyst_path(live)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        # After CHECKPOINT every committed change is in the main file and the
        # WAL is empty, so a byte copy of the main file is a consistent database.
        con.execute("CHECKPOINT")
        _copy_unchanged(live, tmp)
        _verify(con, tmp)
        _replace(tmp, target)
        return target
    except (OSError, duckdb.Error) as exc:
        log.warning("could not publish the analyst snapshot %s: %s", target, exc)
        return None
    finally:
        tmp.unlink(missing_ok=True)


_discarded = itertools.count()


def _replace(tmp: Path, target: Path) -> None:
    """Rename `tmp` over `target`; the previous snapshot's blocks are freed off the writer's path.

    Renaming over the last name of a file frees its blocks inside the rename
    (milliseconds for a warehouse-sized file, while the writer still holds
    the lock). So the old snapshot first gets a second name, the rename is
    then instant, and a thread drops that name. The thread is not a daemon:
    the interpreter waits for it at exit, so no stray copy is left behind.
    """
    old = target.with_name(f".{target.name}.{os.getpid()}.{next(_discarded)}.old")
    try:
        os.link(target, old)
    except OSError:  # no snapshot yet, or no hard links here: a plain rename
        os.replace(tmp, target)
        return
    try:
        os.replace(tmp, target)
    finally:
        threading.Thread(target=_unlink_quietly, args=(old,), name="snapshot-discard").start()


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove the previous analyst snapshot %s: %s", path, exc)


_COPY_ATTEMPTS = 3


class TornCopyError(OSError):
    """The live file changed while it was being copied."""


def _file_state(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _copy_unchanged(live: Path, tmp: Path) -> None:
    """Copy `live` to `tmp`, again if the file changed during the copy.

    The writer holds the lock and has checkpointed, so nothing should write the
    file now; but a byte copy is only a database if the file held still while
    it was read, and that is cheap to check: size and modification time
    before and after.
    """
    for attempt in range(1, _COPY_ATTEMPTS + 1):
        before = _file_state(live)
        shutil.copyfile(live, tmp)
        if _file_state(live) == before and tmp.stat().st_size == before[0]:
            return
        log.info("the warehouse changed while copy %d of it was made; copying again", attempt)
        time.sleep(0.01 * attempt)
    raise TornCopyError(f"{live} kept changing while it was copied ({_COPY_ATTEMPTS} attempts)")


def _verify(con: duckdb.DuckDBPyConnection, snapshot: Path) -> None:
    # Opening the copy proves it is a readable database before analysts get it.
    # Attached read-only to the writer's own connection: the same open of the
    # file (header, catalog, a table read) as a new connection, at a tenth of
    # the cost, since no second database instance is started.
    con.execute(f"ATTACH {_quoted(snapshot)} AS snapshot_check (READ_ONLY)")
    try:
        con.execute("SELECT count(*) FROM snapshot_check.schema_version").fetchall()
    finally:
        con.execute("DETACH snapshot_check")


def remove_stale(warehouse: str | os.PathLike) -> None:
    """Delete the snapshot when publishing is off, so no one reads stale data by default."""
    if is_local_file(warehouse):
        analyst_path(Path(warehouse)).unlink(missing_ok=True)


def publish_snapshot(warehouse: str | os.PathLike | None = None, *, lock_timeout_s: float | None = None) -> Path:
    """Publish the snapshot now (waits for the write lock like any writer).

    For a warehouse written by something other than `write_transaction`, or
    with per-write publishing turned off (`PROMPT_RELEASE_ANALYST_SNAPSHOT=0`)
    and one publish at the end of a run instead.
    """
    if lake_backend.lake_for(warehouse) is not None:
        raise UserError(
            "a lake has no analyst snapshot to publish: readers see each table's last commit", field="--warehouse"
        )
    live = config.warehouse_path(warehouse)
    if not is_local_file(live):
        raise UserError("analyst snapshots are for local DuckDB files", file=live)
    if not live.exists():
        raise UserError("no warehouse here yet, nothing to publish", file=live)
    con = open_with_backoff(live, lock_timeout_s=lock_timeout_s)
    try:
        published = publish_locked(con, live)
    finally:
        con.close()
    if published is None:
        raise UserError("could not publish the analyst snapshot (see the log above)", file=live)
    return published


def snapshot_lag_s(warehouse: str | os.PathLike | None = None) -> float | None:
    """Seconds the live file was modified after the snapshot, or None if the snapshot is current.

    Non-None means a write is in progress or a write happened without a
    publish; the analyst's numbers are as of the last published write.
    """
    if lake_backend.lake_for(warehouse) is not None:
        return None
    live = config.warehouse_path(warehouse)
    snap = analyst_path(live)
    try:
        lag = live.stat().st_mtime - snap.stat().st_mtime
    except FileNotFoundError:
        return None
    # The writer may touch the live file while closing, just after the copy.
    return lag if lag > 2.0 else None


def analyst_connection(
    warehouse: str | os.PathLike | None = None,
    *,
    live: bool = False,
    lock_timeout_s: float | None = None,
) -> duckdb.DuckDBPyConnection:
    """A read-only connection for analysts: the snapshot when present, else the live file.

    The snapshot is attached to a fresh in-memory database rather than opened
    with `duckdb.connect(path)`: DuckDB caches database instances by path
    within a process, so a second `connect` while an older connection is open
    would keep serving the replaced snapshot. `memory` stays the scratch
    catalog, so analysts may create temp tables; the warehouse is read-only.
    `live=True` opens the live file read-only, waiting out a writer (and
    making writers wait for it: keep such sessions short). Either way the
    session is locked down (`LOCKDOWN`): no statement through it writes or
    reads any file other than the attached warehouse.
    """
    lake = lake_backend.lake_for(warehouse)
    if lake is not None:
        # the lake's committed snapshot is what every reader sees; `live` changes nothing
        con = lake_backend.open_reader(lake, create=False)
        try:
            lock_down(con)
        except BaseException:
            con.close()
            raise
        return con
    live_path = config.warehouse_path(warehouse)
    snap = analyst_path(live_path)
    if not live and is_local_file(live_path) and snap.exists():
        target = snap
    elif is_local_file(live_path) and not live_path.exists():
        raise UserError(
            "no warehouse here yet (run `make demo`, or `prompt-release ingest PATH`, first)",
            file=live_path,
        )
    else:
        target = live_path
    con = duck.connect()
    try:
        _attach_read_only(con, target, live_path if target == live_path else None, lock_timeout_s)
        con.execute(f"USE {CATALOG}")
        check_readable(con, target)
        lock_down(con)
    except BaseException:
        con.close()
        raise
    return con


# After these, the session can read what is attached and write only its in-memory
# scratch catalog: no COPY ... TO, EXPORT DATABASE, ATTACH (of a new file, or of the
# live warehouse read-write), INSTALL/LOAD, or reading files (read_text, read_csv,
# a path in FROM). lock_configuration makes them impossible to SET back.
LOCKDOWN = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Make `con` unable to touch any file: call it after the warehouse is attached."""
    for statement in LOCKDOWN:
        con.execute(statement)


def _attach_read_only(
    con: duckdb.DuckDBPyConnection,
    target: Path,
    live: Path | None,
    lock_timeout_s: float | None,
) -> None:
    if live is None:
        _attach_snapshot(con, target)
        return
    # Only the live file can be locked by a writer; wait that out like a writer would.
    deadline = time.monotonic() + config.lock_timeout_s(lock_timeout_s)
    delay = 0.05
    while True:
        try:
            con.execute(f"ATTACH {_quoted(target)} AS {CATALOG} (READ_ONLY)")
            return
        except duckdb.Error as exc:
            if not is_lock_error(exc) or time.monotonic() >= deadline:
                if is_lock_error(exc):
                    raise UserError(
                        "the pipeline holds the live warehouse; query the analyst snapshot "
                        f"(drop --live) or wait longer ({config.ENV_LOCK_TIMEOUT})",
                        file=live,
                    ) from exc
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


_ATTACH_ATTEMPTS = 20


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _file_identity(path: Path) -> tuple[int, int, int]:
    # a publish renames a new file (new inode, new ctime) over the snapshot path
    stat = path.stat()
    return stat.st_dev, stat.st_ino, stat.st_ctime_ns


def _attach_snapshot(con: duckdb.DuckDBPyConnection, snapshot: Path) -> None:
    """Attach the snapshot, again if a publish replaced it while it was being attached.

    With DuckDB 2.0.1, an ATTACH that races a rename over its path can take
    the header of one file and the blocks of the other; the session then
    fails on a later query ("Could not read enough bytes ... from location",
    "Metadata block index ... exceeds metadata block count"). Reproduced with
    two files renamed in turn over one path: one attach in 300 to 1000. So the
    file's identity is compared before and after the ATTACH; the same file at
    both ends means nothing was renamed in between (a publish always brings a
    new file). Once attached, DuckDB reads through the handle it holds, and
    later publishes do not touch the session.
    """
    for _ in range(_ATTACH_ATTEMPTS):
        before = _file_identity(snapshot)
        try:
            con.execute(f"ATTACH {_quoted(snapshot)} AS {CATALOG} (READ_ONLY)")
        except duckdb.Error:
            if _file_identity(snapshot) == before:
                raise
            continue  # a half-read of two files; nothing is attached
        if _file_identity(snapshot) == before:
            return
        con.execute(f"DETACH {CATALOG}")
        time.sleep(0.01)
    raise UserError(
        f"the analyst snapshot was replaced {_ATTACH_ATTEMPTS} times while it was being opened; "
        "try again, or query the live file with --live",
        file=snapshot,
    )
