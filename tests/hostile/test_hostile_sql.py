"""The analyst SQL path writes nothing and reads no file but the warehouse: each statement
kind that could (COPY TO, EXPORT DATABASE, ATTACH, INSTALL/LOAD, file readers) is refused,
and no file on disk changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from prompt_release.traces import ingest_paths
from prompt_release.warehouse import analyst_connection
from tests.conftest import run_cli


def _tree(root: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def world(tmp_path, warehouse):
    traces = tmp_path / "in" / "a.jsonl"
    traces.parent.mkdir()
    traces.write_text(
        json.dumps(
            {"trace_id": "t", "span_id": "s", "workflow": "w", "prompt_version": "support_router:v1.5.1", "model": "m"}
        )
        + "\n"
    )
    ingest_paths([traces], warehouse=warehouse)
    labels = tmp_path / "prompts" / "support_router" / "labels.json"
    labels.parent.mkdir(parents=True)
    labels.write_text(json.dumps({"labels": {"production": "support_router:v1.5.1"}}))
    return tmp_path, warehouse, labels


def statements(root: Path, warehouse: Path, labels: Path) -> dict[str, str]:
    return {
        "COPY TO a new file": f"COPY (SELECT 1 AS x) TO '{root / 'out.csv'}'",
        "COPY TO over a label file": f"""COPY (SELECT '{{"labels": {{"production": "support_router:v9.9.9"}}}}') TO '{labels}' (FORMAT csv, HEADER false, QUOTE '')""",
        "EXPORT DATABASE": f"EXPORT DATABASE '{root / 'export'}'",
        "ATTACH a new file": f"ATTACH '{root / 'new.duckdb'}' AS scratch",
        "ATTACH the live warehouse": f"ATTACH '{warehouse}' AS live",
        "INSTALL": "INSTALL httpfs",
        "LOAD": "LOAD httpfs",
        "read_text": f"SELECT * FROM read_text('{labels}')",
        "read_csv": f"SELECT * FROM read_csv('{labels}')",
        "a file path in FROM": f"SELECT * FROM '{root / 'in' / 'a.jsonl'}'",
        "turn external access back on": "SET enable_external_access = true",
        "unlock the configuration": "SET lock_configuration = false",
    }


@pytest.mark.parametrize("live", [False, True], ids=["snapshot", "live"])
def test_no_statement_through_the_analyst_connection_touches_a_file(world, live):
    root, warehouse, labels = world
    before = _tree(root)
    refused = []
    for name, sql in statements(root, warehouse, labels).items():
        con = analyst_connection(warehouse, live=live)
        try:
            con.execute(sql).fetchall()
        except duckdb.Error:
            refused.append(name)
        finally:
            con.close()
    assert refused == list(statements(root, warehouse, labels)), "statements that were allowed: " + ", ".join(
        n for n in statements(root, warehouse, labels) if n not in refused
    )
    assert _tree(root) == before
    # the scratch catalog still works, and the warehouse reads as before
    con = analyst_connection(warehouse, live=live)
    try:
        con.execute("CREATE TEMP TABLE t AS SELECT count(*) AS n FROM traces")
        assert con.execute("SELECT n FROM t").fetchall() == [(1,)]
    finally:
        con.close()


def test_sql_command_cannot_rewrite_a_label_file(world):
    root, warehouse, labels = world
    before = _tree(root)
    sql = statements(root, warehouse, labels)["COPY TO over a label file"]
    done = run_cli("sql", "--warehouse", str(warehouse), sql)
    assert done.returncode != 0 and "disabled by configuration" in done.stderr
    assert "Traceback" not in done.stderr
    assert _tree(root) == before
