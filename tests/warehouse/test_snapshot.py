"""Analysts read a published snapshot: they never block the pipeline, the pipeline never breaks them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from prompt_release.errors import UserError
from prompt_release.warehouse import (
    analyst_connection,
    analyst_path,
    publish_snapshot,
    write_transaction,
)
from prompt_release.warehouse import snapshot as snapshot_module
from prompt_release_dagster.resources import WarehouseResource
from tests.conftest import REPO_ROOT

BATCH = 50


def _count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM probe").fetchone()[0]


def _write_batch(warehouse: Path, batch: int, **kwargs) -> None:
    with write_transaction(warehouse, **kwargs) as con:
        con.execute("CREATE TABLE IF NOT EXISTS probe (batch INTEGER, i INTEGER)")
        con.execute("INSERT INTO probe SELECT ?, range FROM range(?)", [batch, BATCH])


def test_analyst_path_sits_next_to_the_warehouse(tmp_path: Path) -> None:
    assert analyst_path(tmp_path / "warehouse.duckdb") == tmp_path / "warehouse.analyst.duckdb"
    assert analyst_path(tmp_path / "prod.db") == tmp_path / "prod.analyst.db"


def test_every_commit_publishes_a_snapshot_analysts_can_read(warehouse: Path) -> None:
    _write_batch(warehouse, 0)
    assert analyst_path(warehouse).exists()
    con = analyst_connection(warehouse)
    try:
        assert _count(con) == BATCH
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("INSERT INTO probe VALUES (9, 9)")
    finally:
        con.close()


def test_a_rolled_back_write_publishes_nothing(warehouse: Path) -> None:
    _write_batch(warehouse, 0)
    with pytest.raises(RuntimeError):
        with write_transaction(warehouse) as con:
            con.execute("INSERT INTO probe VALUES (1, 1)")
            raise RuntimeError("step failed")
    con = analyst_connection(warehouse)
    try:
        assert _count(con) == BATCH
    finally:
        con.close()


def test_an_open_session_keeps_its_view_and_a_new_one_sees_new_data(warehouse: Path) -> None:
    _write_batch(warehouse, 0)
    old = analyst_connection(warehouse)
    try:
        _write_batch(warehouse, 1)
        # Same process, old connection still open: DuckDB's per-path instance
        # cache must not hand the replaced snapshot to the new session.
        new = analyst_connection(warehouse)
        try:
            assert _count(new) == 2 * BATCH
        finally:
            new.close()
        assert _count(old) == BATCH
    finally:
        old.close()


def test_turning_snapshots_off_removes_the_stale_one(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_batch(warehouse, 0)
    monkeypatch.setenv("PROMPT_RELEASE_ANALYST_SNAPSHOT", "0")
    _write_batch(warehouse, 1)
    assert not analyst_path(warehouse).exists()
    # Analysts then fall back to the live file, read-only, and see everything.
    con = analyst_connection(warehouse)
    try:
        assert _count(con) == 2 * BATCH
    finally:
        con.close()
    # One publish at the end of a run brings the snapshot back.
    assert publish_snapshot(warehouse) == analyst_path(warehouse)
    con = analyst_connection(warehouse)
    try:
        assert _count(con) == 2 * BATCH
    finally:
        con.close()


def test_a_warehouse_that_changes_while_copied_is_copied_again_never_published_torn(
    warehouse: Path, monkeypatch
) -> None:
    import shutil

    from prompt_release.warehouse import snapshot

    _write_batch(warehouse, 0)
    real_copy, copies = shutil.copyfile, []

    def copy_while_the_file_moves(times: int):
        def copy(src, dst):
            real_copy(src, dst)
            copies.append(dst)
            if len(copies) <= times:  # something wrote the file during the copy: its mtime moves
                state = os.stat(src)
                os.utime(src, ns=(state.st_atime_ns, state.st_mtime_ns + 1_000_000))

        return copy

    monkeypatch.setattr(snapshot.shutil, "copyfile", copy_while_the_file_moves(1))
    _write_batch(warehouse, 1)
    assert len(copies) == 2  # the first copy was thrown away
    con = analyst_connection(warehouse)
    try:
        assert _count(con) == 2 * BATCH
    finally:
        con.close()
    # Changing on every attempt: the previous snapshot stays, nothing torn is published.
    copies.clear()
    before = analyst_path(warehouse).read_bytes()
    monkeypatch.setattr(snapshot.shutil, "copyfile", copy_while_the_file_moves(99))
    _write_batch(warehouse, 2)
    assert len(copies) == 3
    assert analyst_path(warehouse).read_bytes() == before
    assert not list(warehouse.parent.glob(".*.tmp"))


class _PublishDuringAttach:
    """A connection whose first ATTACH of the snapshot (every one, with `always`) races a
    publish: the next snapshot is renamed over the path right after DuckDB has opened the old one."""

    def __init__(self, con: duckdb.DuckDBPyConnection, publish, *, always: bool = False) -> None:
        self.con, self.publish, self.always = con, publish, always
        self.statements: list[str] = []

    def execute(self, sql: str, *args):
        self.statements.append(sql.split()[0])
        result = self.con.execute(sql, *args)
        if sql.startswith("ATTACH") and (self.always or self.statements.count("ATTACH") == 1):
            self.publish()
        return result


def test_an_attach_that_races_a_publish_is_made_again_on_the_new_snapshot(warehouse: Path) -> None:
    # A raced ATTACH can mix the header of one file with the blocks of the next (DuckDB 2.0.1,
    # see snapshot._attach_snapshot; bench/snapshot_attach_race.py measures how often). The
    # analyst side detects that the file changed under the ATTACH and attaches again.
    _write_batch(warehouse, 0)
    snapshot = analyst_path(warehouse)
    con = duckdb.connect()
    racing = _PublishDuringAttach(con, lambda: _write_batch(warehouse, 1))
    try:
        snapshot_module._attach_snapshot(racing, snapshot)
        assert racing.statements == ["ATTACH", "DETACH", "ATTACH"]
        assert con.execute(f"SELECT count(*) FROM {snapshot_module.CATALOG}.probe").fetchone()[0] == 2 * BATCH
    finally:
        con.close()


def test_an_attach_that_keeps_racing_publishes_gives_up_with_a_clear_error(warehouse: Path, monkeypatch) -> None:
    _write_batch(warehouse, 0)
    snapshot = analyst_path(warehouse)
    monkeypatch.setattr(snapshot_module, "_ATTACH_ATTEMPTS", 3)
    batches = iter(range(1, 100))
    con = duckdb.connect()
    try:
        racing = _PublishDuringAttach(con, lambda: _write_batch(warehouse, next(batches)), always=True)
        with pytest.raises(UserError, match="replaced 3 times while it was being opened"):
            snapshot_module._attach_snapshot(racing, snapshot)
    finally:
        con.close()


def test_live_flag_reads_the_live_file_not_the_snapshot(warehouse: Path) -> None:
    _write_batch(warehouse, 0)
    _write_batch(warehouse, 1, publish=False)
    snap, live = analyst_connection(warehouse), analyst_connection(warehouse, live=True)
    try:
        assert (_count(snap), _count(live)) == (BATCH, 2 * BATCH)
    finally:
        snap.close()
        live.close()


def test_missing_warehouse_is_a_clear_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no warehouse here yet"):
        analyst_connection(tmp_path / "nothing.duckdb")


def test_dagster_warehouse_resource_publishes_after_a_step(warehouse: Path) -> None:
    @dg.asset
    def probe_rows(warehouse: WarehouseResource) -> None:
        with warehouse.write() as con:
            con.execute("CREATE TABLE probe AS SELECT 1 AS batch, range AS i FROM range(7)")

    result = dg.materialize(
        [probe_rows],
        resources={"warehouse": WarehouseResource(path=str(warehouse))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    con = analyst_connection(warehouse)
    try:
        assert _count(con) == 7
    finally:
        con.close()


_ANALYST = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from prompt_release.warehouse import analyst_connection

    warehouse, stop = Path(sys.argv[1]), Path(sys.argv[2])
    errors, counts, iterations = [], [], 0
    held = analyst_connection(warehouse)          # one session held for the whole run
    base = held.execute("SELECT count(*) FROM probe").fetchone()[0]
    print("ready", flush=True)
    deadline = time.monotonic() + 120
    while not stop.exists() and time.monotonic() < deadline:
        iterations += 1
        step = "held session"
        try:
            held_now = held.execute("SELECT count(*), sum(i) FROM probe").fetchone()
            if held_now[0] != base:
                errors.append(f"held session changed under the analyst: {held_now} vs {base}")
            step = "reconnect"
            con = analyst_connection(warehouse)   # reconnect: newest snapshot
            step = "query on the new connection"
            try:
                n = con.execute("SELECT count(*) FROM probe").fetchone()[0]
                torn = con.execute(
                    "SELECT count(*) FROM (SELECT batch FROM probe GROUP BY batch HAVING count(*) <> 50)"
                ).fetchone()[0]
            finally:
                con.close()
            if torn:
                errors.append(f"saw a half-written transaction at count {n}")
            if counts and n < counts[-1]:
                errors.append(f"went back in time: {n} after {counts[-1]}")
            counts.append(n)
        except Exception as exc:  # any error is a failure the test reports
            errors.append(f"{type(exc).__name__} at iteration {iterations} ({step}): {exc}")
    con = analyst_connection(warehouse)
    final = con.execute("SELECT count(*) FROM probe").fetchone()[0]
    con.close()
    held.close()
    print(json.dumps({"errors": errors, "base": base, "final": final,
                      "distinct": sorted(set(counts)), "iterations": iterations}), flush=True)
    """
)

_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from prompt_release.warehouse import write_transaction

    warehouse, batches = Path(sys.argv[1]), int(sys.argv[2])
    for batch in range(1, batches + 1):
        with write_transaction(warehouse, lock_timeout_s=5) as con:
            con.execute("INSERT INTO probe SELECT ?, range FROM range(50)", [batch])
    print("written", batches, flush=True)
    """
)


def test_analyst_process_and_pipeline_process_never_disturb_each_other(tmp_path: Path, warehouse: Path) -> None:
    _write_batch(warehouse, 0)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    stop = tmp_path / "stop"
    batches = 25
    analyst = subprocess.Popen(
        [sys.executable, "-c", _ANALYST, str(warehouse), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert analyst.stdout.readline().strip() == "ready", analyst.stderr.read()
        # A short lock timeout: if an analyst session could block the writer,
        # the writer would fail rather than quietly wait.
        writer = subprocess.run(
            [sys.executable, "-c", _WRITER, str(warehouse), str(batches)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        stop.touch()
        out, err = analyst.communicate(timeout=120)
    finally:
        if analyst.poll() is None:
            analyst.kill()
            analyst.wait()
    assert writer.returncode == 0, writer.stderr
    assert writer.stdout.strip() == f"written {batches}"
    assert analyst.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["errors"] == []
    assert report["iterations"] > 0
    assert report["base"] == BATCH
    assert report["final"] == (batches + 1) * BATCH
