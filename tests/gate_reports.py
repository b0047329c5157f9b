"""Gate reports for tests: a stored report (written by the gate before reports were typed) with new facts."""

from __future__ import annotations

import json
from pathlib import Path

from prompt_release.gates.report import GateReport

STORED = Path(__file__).parent / "fixtures" / "stored"


def stored_report(name: str = "gate_report_promote") -> dict:
    """A `gate_reports.report` JSON as a demo run stored it (latency and tags trimmed)."""
    return json.loads((STORED / f"{name}.json").read_text(encoding="utf-8"))


def gate_report(
    report_id: str,
    verdict: str,
    candidate: str,
    *,
    baseline: str = "support_router:v1.5.2",
    reason: str = "gates say so",
    candidate_hash: str | None = None,
) -> GateReport:
    data = stored_report()
    data.update(
        report_id=report_id,
        verdict=verdict,
        reason=reason,
        exit_code={"promote": 0, "reject": 1, "freeze": 3}[verdict],
        candidate={"version": candidate, "hash": candidate_hash},
        baseline={"version": baseline, "hash": None},
        workflow=candidate.split(":")[0],
    )
    return GateReport.model_validate(data)
