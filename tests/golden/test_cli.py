"""The golden CLI end to end in a subprocess: mine, build, add-incident, list, show, diff."""

from __future__ import annotations

from tests.conftest import run_cli
from tests.mining.support import insert, row


def test_golden_cli_round_trip(warehouse, tmp_path):
    insert(
        warehouse,
        [
            row(feedback=-1.0, span_id="s1", user="where is my parcel"),
            row(escalated=True, span_id="s2", user="I was double charged"),
            row(span_id="s3", user="healthy one"),
        ],
    )
    common = ["--warehouse", str(warehouse), "--registry", str(tmp_path)]
    # No prompts/ in this root: mining runs without contracts, so only behavioural detectors fire.
    out = run_cli("mine", *common)
    assert out.returncode == 0, out.stderr
    assert "negative_feedback" in out.stdout
    out = run_cli("golden", "build", "--workflow", "support_router", *common)
    assert out.returncode == 0, out.stderr
    assert "wrote support_router_golden:v1: 2 cases" in out.stdout
    out = run_cli("golden", "add-incident", "--span-id", "s3", "--expected", '{"route": "shipping"}', *common)
    assert out.returncode == 0, out.stderr
    run_cli("golden", "build", "--workflow", "support_router", *common)
    listing = run_cli("golden", "list", *common).stdout
    assert "support_router_golden:v1" in listing and "support_router_golden:v2" in listing
    diff = run_cli("golden", "diff", "support_router_golden:v1", "support_router_golden:v2", *common).stdout
    assert "+1 -0 ~0" in diff
    show = run_cli("golden", "show", "support_router_golden:v2", *common)
    assert "label" in show.stdout and "(incident)" in show.stdout
    bad = run_cli("golden", "add-incident", "--span-id", "missing", *common)
    assert bad.returncode == 2 and "no trace" in bad.stderr
