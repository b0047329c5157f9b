"""The warehouse: migrations, version refusal, lock waiting, all-or-nothing writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from prompt_release.errors import SchemaVersionError, WarehouseLockedError
from prompt_release.warehouse import SCHEMA_VERSION, read_connection, write_transaction
from prompt_release.warehouse.migrate import current_version, migrations


def test_fresh_warehouse_is_migrated_to_the_latest_version(warehouse: Path) -> None:
    with write_transaction(warehouse) as con:
        assert current_version(con) == SCHEMA_VERSION
    with read_connection(warehouse) as con:
        names = [r[0] for r in con.execute("SELECT name FROM schema_version ORDER BY version").fetchall()]
    assert names == [name for _, name, _ in migrations()]


def test_older_warehouse_is_migrated_on_open(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse))
    con.execute(migrations()[0][2])
    con.execute("INSERT INTO schema_version (version, name) VALUES (1, ?)", [migrations()[0][1]])
    con.close()
    with write_transaction(warehouse) as con:
        assert current_version(con) == SCHEMA_VERSION


def test_newer_warehouse_is_refused_with_a_clear_message(warehouse: Path) -> None:
    with write_transaction(warehouse) as con:
        con.execute("INSERT INTO schema_version (version, name) VALUES (?, 'from_the_future')", [SCHEMA_VERSION + 1])
    with pytest.raises(SchemaVersionError, match=r"newer than this prompt-release"):
        with write_transaction(warehouse):
            pass
    with pytest.raises(SchemaVersionError, match=str(warehouse)):
        with read_connection(warehouse):
            pass


def test_failed_transaction_leaves_nothing_behind(warehouse: Path) -> None:
    with write_transaction(warehouse) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError):
        with write_transaction(warehouse) as con:
            con.execute("INSERT INTO t VALUES (1), (2)")
            raise RuntimeError("killed mid-write")
    with read_connection(warehouse) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def _hold_lock(warehouse: Path, seconds: float) -> subprocess.Popen:
    script = textwrap.dedent(
        f"""
        import sys, time, duckdb
        con = duckdb.connect({str(warehouse)!r})
        print("locked", flush=True)
        time.sleep({seconds})
        con.close()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_writer_waits_out_another_process_lock(warehouse: Path) -> None:
    with write_transaction(warehouse):
        pass
    holder = _hold_lock(warehouse, 1.5)
    try:
        with write_transaction(warehouse, lock_timeout_s=30) as con:
            con.execute("CREATE TABLE waited (x INTEGER)")
    finally:
        holder.wait()
    with read_connection(warehouse) as con:
        assert con.execute("SELECT count(*) FROM waited").fetchone()[0] == 0


def test_writer_gives_up_naming_the_lock(warehouse: Path) -> None:
    with write_transaction(warehouse):
        pass
    holder = _hold_lock(warehouse, 20)
    try:
        with pytest.raises(WarehouseLockedError) as err:
            with write_transaction(warehouse, lock_timeout_s=0.5):
                pass
        message = str(err.value)
        assert str(warehouse) in message
        assert "locked by another process" in message
        assert "PROMPT_RELEASE_LOCK_TIMEOUT" in message
    finally:
        holder.kill()
        holder.wait()


def test_no_warehouse_connection_draws_duckdbs_progress_bar(any_warehouse: str) -> None:
    """DuckDB draws its bar on stdout, even into a pipe: inside `--json` or `sql --format json`
    output it would break the reader. Every connection prompt-release hands out has it off.
    Checked in a child process: DuckDB turns the bar off by itself under pytest."""
    child = textwrap.dedent(
        f"""
        from prompt_release.warehouse import analyst_connection, read_connection, write_transaction
        bar = "SELECT current_setting('enable_progress_bar')"
        with write_transaction({any_warehouse!r}) as con:
            print("write", con.execute(bar).fetchall()[0][0])
        with read_connection({any_warehouse!r}) as con:
            print("read", con.execute(bar).fetchall()[0][0])
        analyst = analyst_connection({any_warehouse!r})
        print("analyst", analyst.execute(bar).fetchall()[0][0])
        analyst.close()
        import duckdb
        print("plain", duckdb.connect().execute(bar).fetchall()[0][0])
        """
    )
    checkout = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120, cwd=checkout)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["write", "False", "read", "False", "analyst", "False", "plain", "True"]
