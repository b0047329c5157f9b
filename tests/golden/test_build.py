"""Golden datasets: versions only on change, incidents become exactly one new case, files never rewritten."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from prompt_release.errors import UserError
from prompt_release.golden import store
from prompt_release.golden.build import build_golden, diff_cases, record_incident
from prompt_release.mining.detectors import mine_failures
from prompt_release.mining.redaction import find_pii
from tests.mining.support import CONTRACTS, DAY, insert, row


def _history(warehouse: Path) -> list[dict]:
    rows = [
        row(
            output="This ticket should go to billing.",
            user="I was charged twice, mail jane@example.com",
            correction={"route": "billing"},
            span_id="s_prose1",
        ),
        row(
            output="This ticket should go to billing.",
            user="I was charged twice, mail bob@example.com",
            span_id="s_prose2",
        ),
        row(
            output=json.dumps({"route": "refunds", "confidence": 0.9}),
            user="refund for my card 4111 1111 1111 1111",
            span_id="s_enum",
        ),
        row(user="cannot log in from 10.1.2.3, call +1 415-555-0132", escalated=True, span_id="s_escalated"),
        row(user="where is my parcel", feedback=-1.0, span_id="s_feedback"),
        row(user="healthy ticket about shipping", span_id="s_healthy"),
    ]
    insert(warehouse, rows)
    mine_failures(warehouse, None, DAY, contracts=CONTRACTS)
    return rows


def _build(warehouse, root):
    return build_golden(warehouse, root, "support_router", contracts=CONTRACTS)


def test_first_build_writes_v1_with_redacted_cases_and_a_manifest(warehouse, tmp_path):
    _history(warehouse)
    result = _build(warehouse, tmp_path)
    assert result.created and result.version_id == "support_router_golden:v1"
    manifest, cases = store.read_version(tmp_path, "support_router_golden", 1)
    # The two prose failures differ only by the email: once redacted they are one case seen twice.
    assert manifest.case_count == len(cases) == 4
    assert manifest.parent_version is None
    assert manifest.counts_by_failure_class["invalid_json"] == 1
    prose = next(c for c in cases if "s_prose2" in c.provenance.span_ids)
    assert prose.provenance.span_ids == ["s_prose1", "s_prose2"]
    assert set(manifest.source_spans) == {c.case_id for c in cases}
    text = store.cases_path(tmp_path, "support_router_golden", 1).read_text()
    assert "jane@example.com" not in text and "4111" not in text and "10.1.2.3" not in text
    for case in cases:
        assert find_pii(json.dumps(case.input.model_dump())) == []
        assert case.contract.checks[:2] == ["json_valid", "schema_valid"]
        assert all(m["role"] != "system" for m in case.input.messages)
    corrected = prose
    assert corrected.expected.model_dump() == {"kind": "label", "value": {"route": "billing"}, "source": "correction"}
    assert "<EMAIL_1>" in corrected.input.messages[-1]["content"]
    assert corrected.input.variables["ticket"] == corrected.input.messages[-1]["content"]


def test_building_twice_without_new_failures_makes_no_new_version(warehouse, tmp_path):
    _history(warehouse)
    first = _build(warehouse, tmp_path)
    second = _build(warehouse, tmp_path)
    assert first.created and not second.created
    assert second.version_id == "support_router_golden:v1"
    assert store.versions(tmp_path, "support_router_golden") == [1]


def test_one_incident_makes_exactly_one_new_version_whose_diff_is_that_case(warehouse, tmp_path):
    _history(warehouse)
    _build(warehouse, tmp_path)
    workflow, path = record_incident(
        warehouse, tmp_path, "s_healthy", expected='{"route": "shipping"}', note="VIP complaint"
    )
    assert workflow == "support_router" and path.exists()
    result = _build(warehouse, tmp_path)
    assert result.created and result.version_id == "support_router_golden:v2"
    assert len(result.added) == 1 and result.removed == [] and result.changed == []
    v1 = store.read_version(tmp_path, "support_router_golden", 1)[1]
    manifest, v2 = store.read_version(tmp_path, "support_router_golden", 2)
    assert diff_cases(v1, v2) == (result.added, [], [])
    assert manifest.parent_version == "support_router_golden:v1"
    new = next(c for c in v2 if c.case_id == result.added[0])
    assert new.tags.incident and new.expected.source == "incident" and new.provenance.note == "VIP complaint"
    assert not _build(warehouse, tmp_path).created  # the incident is in; nothing else changed


def test_label_file_sets_the_expectation_by_case_id(warehouse, tmp_path):
    _history(warehouse)
    _build(warehouse, tmp_path)
    _, cases = store.read_version(tmp_path, "support_router_golden", 1)
    target = next(c for c in cases if c.expected is None)
    labels = store.labels_path(tmp_path, "support_router_golden")
    labels.parent.mkdir(parents=True)
    labels.write_text(
        json.dumps({"case_id": target.case_id, "expected": {"kind": "label", "value": {"route": "technical"}}}) + "\n"
    )
    result = _build(warehouse, tmp_path)
    assert result.changed == [target.case_id] and result.added == []
    _, v2 = store.read_version(tmp_path, "support_router_golden", 2)
    labelled = next(c for c in v2 if c.case_id == target.case_id)
    assert labelled.expected.source == "label_file"


def test_existing_version_files_are_never_rewritten(warehouse, tmp_path):
    _history(warehouse)
    _build(warehouse, tmp_path)
    path = store.cases_path(tmp_path, "support_router_golden", 1)
    original = path.read_bytes()
    with pytest.raises(UserError, match="refusing to rewrite"):
        store.write_once(path, original + b"\n")
    assert store.write_once(path, original) is False
    path.write_bytes(original.replace(b"billing", b"general"))  # someone edits by hand
    assert store.verify_unchanged(tmp_path, "support_router_golden")
    with pytest.raises(UserError, match="edited"):
        _build(warehouse, tmp_path)


def test_versions_are_mirrored_to_the_warehouse(warehouse, tmp_path):
    _history(warehouse)
    _build(warehouse, tmp_path)
    _build(warehouse, tmp_path)
    con = duckdb.connect(str(warehouse), read_only=True)
    versions = con.execute("SELECT version_id, case_count FROM golden_versions").fetchall()
    cases = con.execute("SELECT count(*) FROM golden_cases WHERE version_id = 'support_router_golden:v1'").fetchone()[0]
    con.close()
    assert versions == [("support_router_golden:v1", 4)] and cases == 4


def test_incident_for_an_unknown_span_is_refused(warehouse, tmp_path):
    _history(warehouse)
    with pytest.raises(UserError, match="no trace"):
        record_incident(warehouse, tmp_path, "nope")
