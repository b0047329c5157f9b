"""Redaction corpus: every kind of personal data and secret the privacy review named, in values
and in object keys at every depth. Nothing survives into golden files or `golden_cases`, and
the `golden_no_pii` check (pii_in_value) fails a dataset that holds any of them."""

from __future__ import annotations

import json

import duckdb
import pytest

from prompt_release.golden import store
from prompt_release.golden.build import build_golden, sync_warehouse
from prompt_release.mining.detectors import mine_failures
from prompt_release.mining.redaction import find_pii, pii_in_value, redact_case
from tests.mining.support import CONTRACTS, DAY, insert, row

# kind -> examples, each a value a customer or a log line really carries (test values, not live data)
CORPUS: dict[str, list[str]] = {
    "SSN": ["123-45-6789", "078-05-1120"],
    "SECRET": [
        "sk-proj-Xa9bT2cD4eF6gH8iJ0kL2mN4oP6qR8sT0uV2wX4yZ6",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "AIzaSyA-1234567890abcdefghijklmnopqrstu",
    ],
    "PRIVATE_KEY": [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----"
    ],
    "ADDRESS": ["1600 Pennsylvania Avenue", "221B Baker Street", "Hauptstraße 5"],
    "IBAN": ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"],
    "PHONE": ["+33 1 42 68 53 00", "+44 20 7946 0958", "+1 415-555-0132", "(415) 555-0132", "+49 30 901820"],
    "EMAIL": ["jane.doe@example.com"],
    "CARD": ["4111 1111 1111 1111"],
    "IP": ["192.168.10.254", "2001:db8:85a3::8a2e:370:7334"],
}
EXAMPLES = [(kind, value) for kind, values in CORPUS.items() for value in values]


def _in_context(value: str) -> str:
    return f"Hello, please help: {value} is mine. Thanks"


def _nested(value: str) -> dict:
    """The value as a string at depth 4 and as an object key at depths 1 and 3."""
    return {
        "contact_by_key": {value: "primary", "history": [{"note": {"deep": [_in_context(value)]}}]},
        "meta": [{"owners": {value: {"since": 2020}}}],
    }


def _surviving(text: str) -> list[tuple[str, str]]:
    return [
        (kind, value) for kind, value in EXAMPLES if value in text or value.replace(" ", "") in text.replace(" ", "")
    ]


@pytest.mark.parametrize("kind, value", EXAMPLES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(EXAMPLES)])
def test_each_kind_is_found_in_text(kind, value):
    assert [m.kind for m in find_pii(_in_context(value))] == [kind]


def test_nothing_survives_redaction_in_values_or_keys_at_any_depth():
    case = {
        "input": {
            "messages": [{"role": "user", "content": _in_context(v)} for _, v in EXAMPLES],
            "variables": {f"k{i}": _nested(v) for i, (_, v) in enumerate(EXAMPLES)},
        }
    }
    redacted = redact_case(case)
    text = json.dumps(redacted, ensure_ascii=False)
    survivors = _surviving(text)
    print(
        f"redaction corpus: {len(EXAMPLES)} values of {len(CORPUS)} kinds, in text and as keys; "
        f"{len(survivors)} survive: {survivors}"
    )
    assert survivors == []
    assert pii_in_value(redacted) == []
    for kind in CORPUS:
        assert f"<{kind}_1>" in text


@pytest.mark.parametrize("kind, value", EXAMPLES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(EXAMPLES)])
def test_golden_no_pii_check_fails_on_any_kind_in_a_value_or_a_key(kind, value):
    assert [m.kind for m in pii_in_value({"variables": {"x": [{"y": _in_context(value)}]}})] == [kind]
    assert [m.kind for m in pii_in_value({"variables": {"contact_by_key": {value: 1}}})] == [kind]


def test_ordinary_support_text_is_not_redacted():
    for text in [
        "order ORD-123456 arrived late, refund $45",
        "version 1.6.0 of the router",
        "refund 150 dollars on 2026-10-02 at 12:30:45",
        "tracking 1Z999AA10123456784",
        "sha256:1db57a5a278b58da81f9d81a12060e00b6b3e355c515fcb4726df070f679ca29",
        "I waited 3 days for 2 parcels",
        "Room 12 on the 3rd floor",
    ]:
        assert find_pii(text) == [], text


def test_golden_files_and_tables_hold_none_of_the_corpus(warehouse, tmp_path):
    # one trace holding the whole corpus (clustering would keep one of many near-identical cases)
    user = " / ".join(_in_context(value) for _, value in EXAMPLES)
    rows = [
        row(
            user=user,
            span_id="s_pii",
            escalated=True,
            variables={"ticket": user, **{f"k{i}": _nested(v) for i, (_, v) in enumerate(EXAMPLES)}},
        )
    ]
    insert(warehouse, rows)
    mine_failures(warehouse, None, DAY, contracts=CONTRACTS)
    result = build_golden(warehouse, tmp_path, "support_router", contracts=CONTRACTS)
    assert result.created
    sync_warehouse(warehouse, tmp_path, "support_router_golden")
    texts = []  # decoded, so an escaped non-ASCII value (Hauptstra\u00dfe) cannot hide
    for path in (tmp_path / "datasets" / "golden").rglob("*.json*"):
        lines = (
            path.read_text(encoding="utf-8").splitlines()
            if path.suffix == ".jsonl"
            else [path.read_text(encoding="utf-8")]
        )
        texts += [json.dumps(json.loads(line), ensure_ascii=False) for line in lines if line.strip()]
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        stored_rows = con.execute("SELECT input, expected, intent, segment FROM golden_cases").fetchall()
    finally:
        con.close()
    for input_json, expected_json, intent, segment in stored_rows:
        texts += [
            json.dumps(json.loads(input_json), ensure_ascii=False),
            expected_json or "",
            intent or "",
            segment or "",
        ]
    cases = (len(stored_rows), "\n".join(texts))
    assert cases[0] > 0
    surviving = _surviving(cases[1])
    print(
        f"golden build over a trace holding all {len(EXAMPLES)} corpus values: {len(surviving)} corpus values survive: {surviving}"
    )
    assert surviving == []
    _, stored = store.read_version(tmp_path, "support_router_golden", 1)
    assert pii_in_value([c.input.model_dump(mode="json") for c in stored]) == []
