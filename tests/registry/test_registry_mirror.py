"""The warehouse mirror: prompt_versions and label_events for analysts."""

from __future__ import annotations

from pathlib import Path

import pytest

from prompt_release.registry import Registry
from prompt_release.warehouse import read_connection, write_transaction
from prompt_release.warehouse.registry_mirror import sync_to_warehouse
from tests.conftest import run_cli


def test_sync_mirrors_versions_and_events_once(registry: Path, warehouse: Path) -> None:
    reg = Registry(registry)
    counts = sync_to_warehouse(reg, warehouse)
    assert counts["prompt_versions"] == 9 and counts["label_events"] == 5  # incl. the summary_judge package
    reg.move_label("support_router", "staging", "1.6.0", reason="stage")
    again = sync_to_warehouse(reg, warehouse)
    assert again["label_events"] == 1  # only the new event

    with read_connection(warehouse) as con:
        rows = con.execute(
            "SELECT version_id, status, labels, verifies FROM prompt_versions "
            "WHERE prompt_id = 'support_router' ORDER BY major, minor, patch"
        ).fetchall()
        events = con.execute("SELECT action, label, to_version, actor FROM label_events ORDER BY ts").fetchall()
    assert rows[1] == ("support_router:v1.5.2", "released", ["production"], True)
    assert rows[2] == ("support_router:v1.6.0", "candidate", ["staging"], True)
    assert events[-1] == ("move", "staging", "support_router:v1.6.0", "test-runner")


def test_cli_sync_json(registry: Path, warehouse: Path) -> None:
    result = run_cli("prompts", "sync", "--registry", str(registry), "--warehouse", str(warehouse), "--json")
    assert result.returncode == 0, result.stderr
    assert '"prompt_versions": 9' in result.stdout


@pytest.mark.parametrize("backend", ["file", "lake"])
def test_a_forced_move_reads_forced_in_the_label_history(
    registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    warehouse = str(tmp_path / ("w.duckdb" if backend == "file" else "w.lake"))
    reg = Registry(registry)
    reg.move_label("support_router", "staging", "1.6.0", reason="stage")
    reg.move_label("support_router", "production", "1.6.0", force=True, reason="incident: ship the fix now")
    forced_id = reg.history("support_router")[-1].event_id
    sync_to_warehouse(reg, warehouse)
    # As a mirror made before the column existed reads it (false), until the next sync sets it.
    # (Rewritten as a delete and an insert: a lake does not see an UPDATE, see registry_mirror.)
    with write_transaction(warehouse) as con:
        con.execute("CREATE TEMP TABLE unforced AS SELECT * REPLACE (false AS forced) FROM label_events")
        con.execute("DELETE FROM label_events")
        con.execute("INSERT INTO label_events SELECT * FROM unforced")
    with read_connection(warehouse) as con:
        assert con.execute("SELECT count(*) FILTER (WHERE forced) FROM label_events").fetchone() == (0,)
    sync_to_warehouse(reg, warehouse)
    with read_connection(warehouse) as con:
        rows = con.execute("SELECT event_id, change, forced FROM v_label_history WHERE prompt_id = 'support_router'")
        history = rows.fetchall()
    assert [(change, forced) for event_id, change, forced in history if event_id == forced_id] == [
        ("production: support_router:v1.5.2 -> support_router:v1.6.0", True)
    ]
    assert sum(forced for _, _, forced in history) == 1
