"""Every candidate's newest verdict at a glance: what the `gate_report` asset shows on its page.

A candidate is a partition of `gate_report`; the UI shows one partition's
metadata at a time. This table is recorded with every materialization, so the
asset's page lists all candidates' verdicts without opening each partition.
"""

from __future__ import annotations

from pathlib import Path

from prompt_release.markdown import md_table
from prompt_release.warehouse import read_connection


def latest_verdicts(warehouse: str | Path | None = None) -> list[dict]:
    """One row per candidate: its newest report's verdict, reason, report id and time, by candidate."""
    with read_connection(warehouse) as con:
        rows = con.execute(
            "SELECT candidate_version, verdict, reason, report_id, created_at FROM gate_reports "
            "QUALIFY row_number() OVER (PARTITION BY candidate_version ORDER BY created_at DESC, report_id DESC) = 1 "
            "ORDER BY candidate_version"
        ).fetchall()
    return [dict(zip(("candidate", "verdict", "reason", "report_id", "created_at"), r, strict=True)) for r in rows]


def verdicts_markdown(rows: list[dict]) -> str:
    if not rows:
        return "No gate report yet."
    return md_table(
        ["candidate", "verdict", "why", "report"],
        [(r["candidate"], r["verdict"].upper(), r["reason"] or "", r["report_id"]) for r in rows],
    )
