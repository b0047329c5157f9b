"""Gate report rendering: verdict first, every gate with its interval, offline HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prompt_release.gates.report import render_html, render_markdown, write_report

REPORT = {
    "report_id": "gr_test123",
    "verdict": "reject",
    "reason": "hard gate schema_pass_rate failed",
    "created_at": "2026-11-28T12:00:00Z",
    "candidate": {"version": "support_router:v1.7.0", "hash": "sha256:c"},
    "baseline": {"version": "support_router:v1.5.2", "hash": "sha256:b"},
    "dataset": {"version": "support_router_golden:v2", "hash": "sha256:d"},
    "run_id": "bt_1",
    "confidence": 0.95,
    "gates": [
        {"metric": "schema_pass_rate", "severity": "hard", "threshold": ">= 99.5%", "threshold_value": 0.995,
         "baseline": 0.99, "candidate": 0.02, "interval": [0.005, 0.06], "outcome": "fail", "n": 150, "unit": "rate"},
        {"metric": "p95_latency", "severity": "hard", "threshold": "<= baseline + 10%", "threshold_value": 1.10,
         "baseline": 420.0, "candidate": 415.0, "interval": [0.95, 1.04], "estimate": 0.99, "interval_unit": "ratio",
         "outcome": "pass", "n": 150, "unit": "ms"},
    ],
    "freeze": None,
    "not_run": 4,
    "regressions": [
        {"group": "intent:billing", "cases": 40, "regressions": 38, "wins": 0,
         "examples": [{"case_id": "case_1", "outcome": "regression", "before": '{"route": "billing"}',
                       "after": "This ticket should go to billing."}]},
    ],
    "accuracy_by_tag": [{"tag": "intent:billing", "baseline": 0.95, "candidate": 0.0, "n": 40}],
    "latency": {"baseline": [300, 410, 520, 700], "candidate": [310, 400, 515, 690]},
}


def test_markdown_puts_the_verdict_first_and_lists_every_gate() -> None:
    text = render_markdown(REPORT)
    assert text.splitlines()[0] == "## Verdict: REJECT: hard gate schema_pass_rate failed"
    assert "| schema_pass_rate | hard | 99.00% | 2.00% | [0.50%, 6.00%] | >= 99.5% | 150 | **FAIL** |" in text
    assert "p95_latency" in text and "**PASS**" in text
    assert "4 calls were not run" in text
    assert "intent:billing" in text


def test_html_is_standalone_and_shows_the_verdict(tmp_path: Path) -> None:
    paths = write_report(REPORT, tmp_path)
    page = paths["html"].read_text()
    assert "Verdict: REJECT" in page
    # Opens offline: nothing fetched from anywhere.
    assert not re.search(r"""(src|href)=["']https?://""", page)
    assert "<script" not in page
    assert page.count("<svg") == 3
    assert json.loads(paths["json"].read_text())["report_id"] == "gr_test123"
    assert not list(tmp_path.glob("*.tmp"))


def test_html_escapes_model_output() -> None:
    report = json.loads(json.dumps(REPORT))
    report["regressions"][0]["examples"][0]["after"] = "<script>alert(1)</script>"
    assert "<script>alert" not in render_html(report)


def test_the_verdict_is_said_once() -> None:
    from prompt_release.gates.report import verdict_line

    report = {**REPORT, "verdict": "promote", "reason": "promote: all 5 hard gate(s) pass"}
    assert verdict_line(report) == "Verdict: PROMOTE: all 5 hard gate(s) pass"
