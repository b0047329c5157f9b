"""Canary decisions as stored: a warehouse from before the rename reads back, migrated, as typed records."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from prompt_release.release.canary import CanaryDecisionRecord, load_decision
from prompt_release.warehouse import read_connection, write_transaction
from prompt_release.warehouse.migrate import migrations

STORED = Path(__file__).resolve().parents[1] / "fixtures" / "stored" / "canary_decisions.jsonl"


def _warehouse_at_version_11(path: Path) -> list[dict]:
    """The schema as prompt-release 11 left it, holding the canary decisions a demo run stored."""
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, "
        "applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)"
    )
    for version, name, sql in migrations():
        if version > 11:
            break
        con.execute(sql)
        con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
    rows = [json.loads(line) for line in STORED.read_text().splitlines()]
    for row in rows:
        columns = ", ".join(row)
        con.execute(
            f"INSERT INTO canary_decisions ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )
    con.close()
    return rows


def test_decisions_stored_before_the_rename_read_back_as_abort(tmp_path: Path) -> None:
    warehouse = tmp_path / "old.duckdb"
    rows = _warehouse_at_version_11(warehouse)
    assert [r["action"] for r in rows] == ["freeze", "roll_forward", "roll_back"]
    with write_transaction(warehouse):  # opening for writing migrates
        pass
    records = [load_decision(warehouse, r["decision_id"]) for r in rows]
    assert [r.action for r in records] == ["freeze", "roll_forward", "abort"]
    aborted = records[2]
    assert aborted.reason == rows[2]["reason"] and aborted.candidate_version == rows[2]["candidate_version"]
    assert aborted.evidence[0].abort_above == json.loads(rows[2]["evidence"])[0]["roll_back_above"]
    assert aborted.policy["failure_abort_above"] == 0.0 and "failure_rollback_above" not in aborted.policy
    assert aborted.failing_span_ids == rows[2]["failing_span_ids"]
    assert aborted.metrics.versions[aborted.candidate_version].hard_failures == aborted.candidate_hard_failures
    with read_connection(warehouse) as con:
        assert con.execute("SELECT action FROM v_canary_status").fetchall() == [("abort",)]


def test_a_record_round_trips(tmp_path: Path) -> None:
    warehouse = tmp_path / "old.duckdb"
    rows = _warehouse_at_version_11(warehouse)
    with write_transaction(warehouse):
        pass
    for row in rows:
        record = load_decision(warehouse, row["decision_id"])
        assert CanaryDecisionRecord.model_validate_json(record.model_dump_json()) == record
