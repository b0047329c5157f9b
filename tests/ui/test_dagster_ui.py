"""Issue 7, acceptance 2: the demo's results in a real browser, in the Dagster UI and in the offline HTML report.

The demo runs once per session (small sizes, tests/dagster_demo.py) into a
fresh persistent Dagster home; the webserver serves the project's own code location (`workspace.yaml`) over that home with
the resources pointed at the demo's warehouse, registry and landing, as
`make ui` does after `make demo`. Headless Chromium opens the asset lineage
and the gate report of each candidate; the standalone HTML gate report is
opened from disk with the network blocked.

README pictures (`docs/img/*.png`) are rewritten only with
PROMPT_RELEASE_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import dagster as dg
import pytest

from prompt_release.gates.evaluate import latest_report
from prompt_release.gates.report import GateReport
from tests.conftest import REPO_ROOT
from tests.dagster_demo import DemoRun
from tests.ui.harness import (
    PAGE_TIMEOUT_MS,
    launch_webserver,
    open_asset_graph,
    open_asset_page,
    open_asset_partition,
    save_screenshot,
    settle,
    show_markdown,
    stop_process_group,
    wait_for_webserver,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("demo")]

PROMOTED = "support_router:v1.6.0"
REJECTED = "support_router:v1.7.0"  # answers in prose: breaks the JSON contract
CANDIDATES = {"order_agent:v2.1.0": "REJECT", "summarizer:v1.1.0": "REJECT", PROMOTED: "PROMOTE", REJECTED: "REJECT"}
LOCATION = "__repository__@prompt_release"


@dataclass(frozen=True)
class Demo:
    home: Path  # the Dagster home the demo's runs are recorded in
    state: Path  # its warehouse, registry copy, landing and HTML reports
    reports: dict[str, GateReport]  # candidate -> its latest gate report
    base_url: str  # the Dagster webserver over that home


@pytest.fixture(scope="module")
def demo(dagster_demo: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`make ui` over the session's demo (tests/dagster_demo.py: `make demo` at small sizes, shared
    with tests/test_demo_e2e.py): the webserver serves the project's own code location
    (`workspace.yaml`) with the resources pointed at the demo's state, which they read from the
    environment at import; it is stopped by PID whatever the tests do."""
    state = dagster_demo.result.state_dir
    reports = {c: latest_report(state / "warehouse.duckdb", c) for c in (PROMOTED, REJECTED)}
    assert reports[PROMOTED] and reports[PROMOTED].verdict == "promote", dagster_demo.log
    assert reports[REJECTED] and reports[REJECTED].verdict == "reject", dagster_demo.log
    log = tmp_path_factory.mktemp("ui_webserver") / "webserver.log"
    proc, base_url = launch_webserver(
        dagster_demo.home,
        REPO_ROOT / "workspace.yaml",
        log,
        env={
            "PROMPT_RELEASE_WAREHOUSE": str(state / "warehouse.duckdb"),
            "PROMPT_RELEASE_REGISTRY": str(state / "registry"),
            "PROMPT_RELEASE_LANDING": str(state / "landing"),
        },
    )
    try:
        wait_for_webserver(proc, base_url, log)
        yield Demo(dagster_demo.home, state, reports, base_url)
    finally:
        stop_process_group(proc)


def _all_asset_names() -> list[str]:
    from prompt_release_dagster.definitions import defs

    return sorted(key.to_user_string() for key in defs().resolve_all_asset_keys())


def test_dagster_ui_shows_the_lineage_and_each_candidates_gate_verdict(demo: Demo, browser_page) -> None:
    base_url, page = demo.base_url, browser_page

    assets = _all_asset_names()
    graph_text = open_asset_graph(page, base_url, expect_assets=["gate_report", *assets])
    for name in assets:
        assert name in graph_text
    save_screenshot(page, "asset-graph.png")

    # The promoted candidate: its latest materialization leads with the verdict.
    text = open_asset_partition(page, base_url, "gate_report", PROMOTED, expect_text="Verdict: PROMOTE")
    assert PROMOTED in text
    assert demo.reports[PROMOTED].report_id in text
    save_screenshot(page, "gate-report.png")
    report = show_markdown(page, expect_text="p95_latency")
    # The full report behind "[Show Markdown]": verdict first, then every gate with its outcome.
    assert report.index("Verdict: PROMOTE") < report.index("json_valid_rate")
    for gate in ("json_valid_rate", "schema_pass_rate", "handoff_accuracy", "error_rate", "p95_latency"):
        assert gate in report
    assert "FAIL" not in report

    # Another partition of the same asset shows its own verdict: the prose edit is rejected on the JSON gate.
    text = open_asset_partition(page, base_url, "gate_report", REJECTED, expect_text="Verdict: REJECT")
    assert "Verdict: PROMOTE" not in text
    assert "json_valid_rate" in text  # named in the verdict line as a failed hard gate
    assert demo.reports[REJECTED].report_id in text


def _wait_for(page, text: str) -> str:
    try:
        page.get_by_text(text).first.wait_for()
    except Exception as exc:  # playwright's TimeoutError: say what the page showed instead
        pytest.fail(f"{text!r} never appeared on {page.url}:\n{page.inner_text('body')[:3000]}\n({exc})")
    settle(page)
    return page.inner_text("body")


def test_the_ui_shows_sensor_launched_runs_every_verdict_and_a_reject_without_a_stack_trace(
    demo: Demo, browser_page
) -> None:
    base_url, page = demo.base_url, browser_page

    # The evaluate_candidate runs were launched by candidate_sensor, one per candidate.
    page.goto(f"{base_url}/runs?{urlencode({'q[0]': 'job:evaluate_candidate'})}")
    text = _wait_for(page, f"partition: {REJECTED}")
    for candidate in CANDIDATES:
        assert f"partition: {candidate}" in text
    assert text.count("candidate_sensor") >= len(CANDIDATES)
    assert "Failure" not in text

    # gate_sensor's own page has its tick history: the demo records each tick as the daemon does.
    page.goto(f"{base_url}/locations/{LOCATION}/sensors/gate_sensor")
    text = _wait_for(page, "runs requested")
    assert "Latest tick" in text and "never run" not in text
    assert re.search(rf"{len(CANDIDATES)} runs requested", text), text[text.find("Latest tick") :][:1500]
    save_screenshot(page, "gate-sensor-ticks.png")
    page.goto(f"{base_url}/runs?{urlencode({'q[0]': 'tag:dagster/sensor_name=gate_sensor'})}")
    text = _wait_for(page, f"candidate: {REJECTED}")
    assert text.count("gate_sensor") >= len(CANDIDATES)
    for candidate, verdict in CANDIDATES.items():
        assert f"candidate: {candidate}" in text
        assert f"verdict: {verdict.lower()}" in text
    save_screenshot(page, "gate-sensor-runs.png")

    # The asset page shows every candidate's verdict without opening a partition.
    open_asset_page(page, base_url, "gate_report", expect_text="all_candidates")
    # The metadata's markdown table renders after its label: wait for each row (in the text as shown,
    # cells apart), not for the label.
    for candidate, verdict in CANDIDATES.items():
        row = rf"{re.escape(candidate)}\s+{verdict}\s"
        try:
            page.wait_for_function(
                "(row) => new RegExp(row).test(document.body.innerText)", arg=row, timeout=PAGE_TIMEOUT_MS
            )
        except Exception as exc:  # playwright's TimeoutError: say what the page showed instead
            text = page.inner_text("body")
            pytest.fail(f"{candidate} {verdict} never shown: {text[text.find('all_candidates') :][:2000]} ({exc})")
    save_screenshot(page, "gate-report-verdicts.png")

    # The check warns on a reject, with the verdict as its description: an outcome, not a failed run.
    page.goto(f"{base_url}/assets/gate_report?{urlencode({'view': 'checks', 'checkDetail': 'hard_gates_pass'})}")
    text = _wait_for(page, "non-blocking")
    assert "Verdict: " in text

    instance = dg.DagsterInstance.from_config(str(demo.home))
    try:
        [run] = instance.get_runs(
            filters=dg.RunsFilter(job_name="evaluate_candidate", tags={"dagster/partition": REJECTED})
        )
    finally:
        instance.dispose()
    assert run.status == dg.DagsterRunStatus.SUCCESS
    page.goto(f"{base_url}/runs/{run.run_id}")
    text = _wait_for(page, "hard_gates_pass")
    for crash in ("Stack Trace", "DagsterAssetCheckFailedError", "Traceback"):
        assert crash not in text


def test_the_html_gate_report_opens_offline_with_its_verdict_and_charts(demo: Demo, browser_page) -> None:
    html = Path(demo.reports[PROMOTED].paths["html"])
    assert html.is_file()
    page = browser_page
    # Anything but the file itself (a CDN script, a web font) would be a request off the machine.
    outside: list[str] = []

    def block(route) -> None:
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", block)
    page.goto(html.as_uri())
    banner = page.locator("h1").first.inner_text()
    assert banner.startswith("Verdict: PROMOTE")
    assert PROMOTED in page.inner_text("body")
    charts = page.locator("svg[role=img]")
    labels = [charts.nth(i).get_attribute("aria-label") for i in range(charts.count())]
    # Intervals on one axis per kind: the candidate's rate, its difference in points, its latency ratio.
    assert labels == [
        "gate intervals against thresholds: candidate's rate (%)",
        "gate intervals against thresholds: candidate − baseline (percentage points)",
        "gate intervals against thresholds: candidate ÷ baseline (× the baseline)",
        "accuracy by tag",
        "latency distributions",
    ]
    for width in (1280, 1600):
        page.set_viewport_size({"width": width, "height": 1000})
        for i in range(charts.count()):
            chart = charts.nth(i).bounding_box()
            assert chart["height"] > 50 and chart["x"] >= 0 and chart["x"] + chart["width"] <= width
        # Nothing clipped: every label of every chart lies inside its chart.
        clipped = page.evaluate("""() => [...document.querySelectorAll('svg[role=img] text')].filter(t => {
            const box = t.getBoundingClientRect(), svg = t.ownerSVGElement.getBoundingClientRect();
            return box.left < svg.left - 0.5 || box.right > svg.right + 0.5 || box.top < svg.top - 0.5
                || box.bottom > svg.bottom + 0.5; }).map(t => t.textContent)""")
        assert clipped == []
    assert page.get_by_text("threshold ×1.25").count() == 1  # the threshold is marked with its value
    assert "ms, log scale" in page.inner_text("body")
    assert outside == []
    page.set_viewport_size({"width": 1280, "height": 1000})
    save_screenshot(page, "html-report.png")
