"""Issue 17, acceptance 3: after the demo its golden sets are labelled, and each gate report says how
much of its run an accuracy gate could read and the n that decided it (the session's demo, run once)."""

from __future__ import annotations

import json

import pytest

from prompt_release.gates.evaluate import latest_report
from prompt_release.golden import store as golden_store
from prompt_release.golden.model import parse_version_ref
from prompt_release.warehouse import read_connection
from prompt_release_dagster.demo import ACTOR, DemoResult
from tests.dagster_demo import DemoRun

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


@pytest.fixture(scope="module")
def demo(dagster_demo: DemoRun) -> DemoResult:
    return dagster_demo.result


def test_every_golden_set_is_at_least_half_labelled_through_golden_label(demo: DemoResult) -> None:
    assert set(demo.golden_coverage) == {"support_router_golden", "order_agent_golden", "summarizer_golden"}
    for version_id in demo.golden_versions.values():
        dataset, number = parse_version_ref(version_id)
        manifest, cases = golden_store.read_version(demo.registry, dataset, number)
        assert number == max(golden_store.versions(demo.registry, dataset))
        labelled = [c for c in cases if c.expected is not None]
        assert (
            list(demo.golden_coverage[dataset])
            == [len(labelled), len(cases)]
            == [
                manifest.labelled_count,
                manifest.case_count,
            ]
        )
        assert 2 * len(labelled) >= len(cases), f"{version_id}: {len(labelled)}/{len(cases)} labelled"
        # The labels came through the label file, recorded by the demo's reviewer.
        from_file = {c.case_id for c in labelled if c.expected.source == "label_file"}
        lines = golden_store.labels_path(demo.registry, dataset).read_text().splitlines()
        recorded = [json.loads(line) for line in lines]
        assert from_file and from_file <= {r["case_id"] for r in recorded}
        assert {r["labelled_by"] for r in recorded} == {ACTOR}


def test_each_accuracy_gate_reports_its_labelled_coverage_and_deciding_n(demo: DemoResult) -> None:
    for candidate in demo.reports:
        report = latest_report(demo.warehouse, candidate)
        with read_connection(demo.warehouse) as con:
            labelled, cases = con.execute(
                """SELECT count(*) FILTER (WHERE labelled), count(*) FROM (
                       SELECT case_id, bool_and(task_correct IS NOT NULL) AS labelled FROM backtest_results
                       WHERE run_id = ? AND status NOT LIKE 'not_run%' GROUP BY case_id
                       HAVING count(DISTINCT role) = 2)""",
                [report.run_id],
            ).fetchone()
        assert cases == report.n_cases
        for gate in report.gates:
            assert gate.cases == report.n_cases
            assert gate.decides_at == (gate.n if gate.outcome != "inconclusive" else gate.decides_at)
            if gate.metric.endswith("_accuracy"):
                # An accuracy gate reads exactly the labelled cases of its run.
                assert gate.labelled == gate.n == labelled <= cases
            else:
                assert gate.labelled is None
    router = latest_report(demo.warehouse, "support_router:v1.6.0")
    accuracy = next(g for g in router.gates if g.metric == "handoff_accuracy")
    # Every golden case of the run is labelled now (before the labels, only those with a correction were).
    assert accuracy.outcome == "pass" and accuracy.labelled >= router.golden_cases


def test_each_hard_accuracy_gate_is_decided_on_its_labelled_minimum(demo: DemoResult) -> None:
    """Acceptance 3: each hard accuracy gate of the sample candidates is decided on at least 200 labelled
    cases (the spec's `min_labelled_n`; a run with fewer labelled cases reads every one of them), also
    when an adaptive run knew its verdict early: a contract reject still says how accurate it is."""
    accuracy_gates = 0
    for candidate in demo.reports:
        report = latest_report(demo.warehouse, candidate)
        minimum = report.spec.get("min_labelled_n", 200)
        dataset, number = parse_version_ref(report.dataset.version)
        manifest = golden_store.read_manifest(demo.registry, dataset, number)
        for gate in report.gates:
            if gate.severity != "hard" or not gate.metric.endswith("_accuracy"):
                continue
            accuracy_gates += 1
            assert gate.outcome != "inconclusive" and gate.decides_at == gate.labelled == gate.n
            assert gate.n >= min(minimum, manifest.labelled_count), (candidate, gate.metric, gate.n)
            if minimum <= manifest.labelled_count:
                assert gate.n >= minimum
    assert accuracy_gates >= 2  # support_router v1.6.0 and v1.7.0
    # v1.7.0 breaks the JSON contract: its reject is known within a few dozen cases; the run answered
    # on (labelled cases only) until handoff_accuracy had its minimum, and says so.
    prose = latest_report(demo.warehouse, "support_router:v1.7.0")
    assert prose.verdict == "reject" and "json_valid_rate" in prose.failed_gates
    assert prose.evidence.stop_reason.startswith("json_valid_rate decided FAIL after")
    assert "answered on to the labelled minimum" in prose.evidence.stop_reason


def test_the_break_glass_moves_read_forced_in_the_label_history(demo: DemoResult) -> None:
    with read_connection(demo.warehouse) as con:
        forced = con.execute("SELECT label, to_version FROM v_label_history WHERE forced").fetchall()
    # both pushed straight to canary past its protection: the hotfix and the routing regression
    assert forced == [("canary", "support_router:v1.6.1"), ("canary", "support_router:v1.6.2")]
