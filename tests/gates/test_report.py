"""Gate report rendering: verdict first, every gate with its interval, offline HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from prompt_release.gates.report import (
    Freeze,
    GateReport,
    render_html,
    render_markdown,
    verdict_line,
    write_report,
)
from tests.gate_reports import STORED, stored_report


def _gate(
    metric: str,
    threshold: str,
    threshold_value: float,
    baseline: float,
    candidate: float,
    interval: list[float],
    estimate: float,
    interval_of: str,
    unit: str,
    outcome: str,
) -> dict:
    interval_unit = "ratio" if interval_of == "ratio" else unit
    return {
        "metric": metric,
        "severity": "hard",
        "threshold": threshold,
        "rule": threshold,
        "baseline": baseline,
        "candidate": candidate,
        "interval": interval,
        "estimate": estimate,
        "interval_of": interval_of,
        "interval_unit": interval_unit,
        "threshold_value": threshold_value,
        "outcome": outcome,
        "n": 150,
        "method": "test",
        "p_value": None,
        "reason": "test",
        "unit": unit,
    }


REPORT = GateReport.model_validate(
    {
        **stored_report(),
        "report_id": "gr_test123",
        "verdict": "reject",
        "exit_code": 1,
        "reason": "hard gate schema_pass_rate failed",
        "candidate": {"version": "support_router:v1.7.0", "hash": "sha256:c"},
        "baseline": {"version": "support_router:v1.5.2", "hash": "sha256:b"},
        "dataset": {"version": "support_router_golden:v2", "hash": "sha256:d"},
        "gates": [
            _gate("schema_pass_rate", ">= 99.5%", 0.995, 0.99, 0.02, [0.005, 0.06], 0.02, "candidate", "rate", "fail"),
            _gate("p95_latency", "<= baseline + 10%", 1.10, 420.0, 415.0, [0.95, 1.04], 0.99, "ratio", "ms", "pass"),
        ],
        "not_run": 4,
        "regressions": [
            {
                "group": "intent:billing",
                "cases": 40,
                "regressions": 38,
                "wins": 0,
                "both_failing": 0,
                "disagreements": 0,
                "examples": [
                    {
                        "case_id": "case_1",
                        "outcome": "regression",
                        "before": '{"route": "billing"}',
                        "after": "This ticket should go to billing.",
                    }
                ],
            },
        ],
        "accuracy_by_tag": [{"tag": "intent:billing", "baseline": 0.95, "candidate": 0.0, "n": 40}],
        "latency": {"baseline": [300, 410, 520, 700], "candidate": [310, 400, 515, 690]},
    }
)


def test_markdown_puts_the_verdict_first_and_lists_every_gate() -> None:
    text = render_markdown(REPORT)
    assert text.splitlines()[0] == "## Verdict: REJECT: hard gate schema_pass_rate failed"
    # A report stored before coverage was recorded shows its n as it was.
    assert "| schema_pass_rate | hard | 99.00% | 2.00% | [0.50%, 6.00%] | >= 99.5% | 150 | 150 | **FAIL** |" in text
    assert "p95_latency" in text and "**PASS**" in text
    assert "4 calls were not run" in text
    assert "intent:billing" in text


def test_each_gate_shows_its_labelled_coverage_and_the_n_that_decides_it() -> None:
    data = REPORT.to_json()
    accuracy = {
        **data["gates"][0],
        "metric": "handoff_accuracy",
        "outcome": "inconclusive",
        "n": 50,
        "cases": 400,
        "labelled": 50,
        "decides_at": 230,
    }
    data["gates"] = [{**g, "cases": 400, "decides_at": g["n"]} for g in data["gates"]] + [accuracy]
    report = GateReport.model_validate(data)
    text = render_markdown(report)
    assert "| 50 of 400 labelled (12%) | ~230 | **INCONCLUSIVE** |" in text
    assert "| 150 of 400 (38%) | 150 | **FAIL** |" in text
    assert "50 of 400 labelled (12%)" in render_html(report)


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
    data = REPORT.to_json()
    data["regressions"][0]["examples"][0]["after"] = "<script>alert(1)</script>"
    assert "<script>alert" not in render_html(GateReport.model_validate(data))


def test_the_verdict_is_said_once() -> None:
    report = REPORT.model_copy(update={"verdict": "promote", "reason": "promote: all 5 hard gate(s) pass"})
    assert verdict_line(report) == "Verdict: PROMOTE: all 5 hard gate(s) pass"


@pytest.mark.parametrize("name", ["gate_report_promote", "gate_report_reject_judged"])
def test_a_stored_report_reads_back_into_the_same_json(name: str) -> None:
    # Stored by the gate before reports were typed (a demo run's `gate_reports.report`).
    stored = json.loads((STORED / f"{name}.json").read_text())
    report = GateReport.model_validate_json(json.dumps(stored))
    assert report.candidate.version and report.gates[0].interval_of in ("candidate", "difference", "ratio")
    assert report.to_json() == stored
    assert json.dumps(report.to_json()) == json.dumps(stored)  # same keys, same order, same numbers
    assert GateReport.model_validate_json(json.dumps(report.to_json())) == report


def test_the_report_file_has_no_paths_and_the_stored_row_has_them(tmp_path: Path) -> None:
    stored = stored_report()
    report = GateReport.model_validate({k: v for k, v in stored.items() if k != "paths"})
    paths = write_report(report, tmp_path)
    on_disk = json.loads(paths["json"].read_text())
    assert "paths" not in on_disk and on_disk == report.to_json()
    assert on_disk["created_at"] == stored["created_at"]  # "+00:00", as the gate always wrote it
    assert GateReport.model_validate(on_disk) == report


def test_a_freeze_says_what_is_undecided_once_and_never_prints_none() -> None:
    frozen = REPORT.model_copy(
        update={
            "verdict": "freeze",
            "reason": "freeze: not enough evidence for p95_latency",
            "freeze": Freeze(cases_needed=None, reason="p95_latency: the ratio interval straddles x1.250 with n=400"),
        }
    )
    text = render_markdown(frozen)
    assert "None" not in text and text.count("not enough evidence") == 1
    assert "p95_latency: the ratio interval straddles" in text and "No number of cases can be suggested" in text
    needed = frozen.model_copy(update={"freeze": Freeze(cases_needed=86, reason=frozen.freeze.reason)})
    assert "About 86 paired cases would likely decide it." in render_markdown(needed)
    assert "None" not in render_html(frozen)
