"""Rows the release tests write: gate reports at chosen times."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from prompt_release.warehouse import write_transaction
from tests.gate_reports import gate_report

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def add_report(
    warehouse: Path, report_id: str, verdict: str, candidate: str, baseline: str, at: datetime, reason: str = ""
) -> None:
    report = gate_report(report_id, verdict, candidate, baseline=baseline, reason=reason).to_json()
    with write_transaction(warehouse) as con:
        con.execute(
            "INSERT INTO gate_reports VALUES (?, 'run_1', ?, ?, 'sha256:x', ?, 'sha256:y', NULL, ?, ?, ?, '{}', ?, NULL, ?)",
            [
                report_id,
                candidate.split(":")[0],
                candidate,
                baseline,
                verdict,
                {"promote": 0, "reject": 1, "freeze": 3}[verdict],
                reason,
                json.dumps(report),
                at,
            ],
        )
