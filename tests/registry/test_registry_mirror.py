"""The warehouse mirror: prompt_versions and label_events for analysts."""

from __future__ import annotations

from pathlib import Path

from prompt_release.registry import Registry
from prompt_release.warehouse import read_connection
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
