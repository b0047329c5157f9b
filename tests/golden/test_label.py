"""`prompt-release golden label`: bulk labels from a file, interactive labelling, resumable, versioned."""

from __future__ import annotations

import json

from prompt_release.golden import store
from tests.conftest import run_cli
from tests.mining.support import insert, row


def _dataset(warehouse, tmp_path) -> tuple[list[str], list[str]]:
    insert(
        warehouse,
        [
            row(feedback=-1.0, span_id="s1", user="where is my parcel"),
            row(escalated=True, span_id="s2", user="I was double charged"),
            row(feedback=-1.0, span_id="s3", user="my app crashes on start"),
        ],
    )
    common = ["--warehouse", str(warehouse), "--registry", str(tmp_path)]
    assert run_cli("mine", *common).returncode == 0
    out = run_cli("golden", "build", "--workflow", "support_router", *common)
    assert "wrote support_router_golden:v1: 3 cases" in out.stdout, out.stderr
    _, cases = store.read_version(tmp_path, "support_router_golden", 1)
    return common, [c.case_id for c in cases]


def test_bulk_labels_become_the_next_version_and_a_bad_line_writes_nothing(warehouse, tmp_path) -> None:
    common, ids = _dataset(warehouse, tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"case_id": ids[0], "expected": {"route": "shipping"}})
        + "\n"
        + json.dumps({"case_id": ids[1], "expected": {"kind": "tool_call", "value": 3}})
        + "\n"
    )
    out = run_cli("golden", "label", "support_router_golden", "--from", str(bad), *common)
    assert out.returncode == 2
    assert f"{bad}:2" in out.stderr and "expected" in out.stderr
    assert not store.labels_path(tmp_path, "support_router_golden").exists()
    assert store.versions(tmp_path, "support_router_golden") == [1]

    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"case_id": "case_0000000000000000", "expected": "refuse"}) + "\n")
    out = run_cli("golden", "label", "support_router_golden", "--from", str(unknown), *common)
    assert out.returncode == 2 and f"{unknown}:1" in out.stderr and "case_id" in out.stderr

    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"case_id": ids[0], "expected": {"route": "shipping"}})
        + "\n\n"
        + json.dumps({"case_id": ids[1], "expected": "refuse"})
        + "\n"
    )
    out = run_cli("golden", "label", "support_router_golden", "--from", str(good), "--actor", "reviewer-1", *common)
    assert out.returncode == 0, out.stderr
    assert "2 label(s) recorded" in out.stdout and "wrote support_router_golden:v2" in out.stdout
    manifest, cases = store.read_version(tmp_path, "support_router_golden", 2)
    assert manifest.parent_version == "support_router_golden:v1" and manifest.labelled_count == 2
    expected = {c.case_id: c.expected for c in cases}
    assert expected[ids[0]].kind == "label" and expected[ids[0]].value == {"route": "shipping"}
    assert expected[ids[1]].kind == "refuse" and expected[ids[1]].source == "label_file"
    assert sorted(manifest.changes["changed"]) == sorted(ids[:2])
    lines = [json.loads(x) for x in store.labels_path(tmp_path, "support_router_golden").read_text().splitlines()]
    assert {x["labelled_by"] for x in lines} == {"reviewer-1"}
    assert {x["dataset_version"] for x in lines} == {"support_router_golden:v1"}
    # The next mined build keeps them: the label file is applied to every build.
    out = run_cli("golden", "build", "--workflow", "support_router", *common)
    assert "unchanged: support_router_golden:v2" in out.stdout


def test_interactive_labelling_skips_quits_and_resumes(warehouse, tmp_path) -> None:
    common, ids = _dataset(warehouse, tmp_path)
    out = run_cli(
        "golden", "label", "support_router_golden", *common, input='{"route": "shipping"}\nnot json {\ns\nq\n'
    )
    assert out.returncode == 0, out.stderr
    assert "3 unlabelled case(s)" in out.stdout
    assert "production (support_router:v1.5.2) answered" in out.stdout  # the trace the case came from
    assert "not an expectation" in out.stdout  # a typo is asked again, not recorded
    assert "1 label(s) recorded, 1 skipped" in out.stdout and "2 still without an expectation" in out.stdout
    # Resumed: the labelled case is not asked again.
    out = run_cli("golden", "label", "support_router_golden", *common, input="clarify\nrefuse\n")
    assert "2 unlabelled case(s)" in out.stdout, out.stdout
    assert "3/3 cases labelled" in out.stdout and "0 still without" in out.stdout
    _, cases = store.read_version(
        tmp_path, "support_router_golden", max(store.versions(tmp_path, "support_router_golden"))
    )
    assert all(c.expected is not None for c in cases)
