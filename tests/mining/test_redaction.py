"""Redaction: personal data never reaches a golden file, and placeholders are stable within a case."""

from __future__ import annotations

import pytest

from prompt_release.mining.redaction import find_pii, redact_case

CORPUS = [
    ("Mail me at Jane.Doe+tix@example.co.uk please", "EMAIL"),
    ("call +1 415-555-0132 tomorrow", "PHONE"),
    ("my number is (415) 555-0132", "PHONE"),
    ("UK: +44 20 7946 0958", "PHONE"),
    ("office 415.555.0132", "PHONE"),
    ("card 4111 1111 1111 1111 was charged twice", "CARD"),
    ("card 5500-0000-0000-0004 declined", "CARD"),
    ("amex 378282246310005", "CARD"),
    ("login from 192.168.10.254 failed", "IP"),
    ("v6 2001:db8:85a3::8a2e:370:7334 blocked", "IP"),
    ("loopback ::1 too", "IP"),
]


@pytest.mark.parametrize("text, kind", CORPUS)
def test_each_kind_is_found_and_redacted(text, kind):
    assert [m.kind for m in find_pii(text)] == [kind]
    redacted = redact_case({"input": {"messages": [{"role": "user", "content": text}]}})
    content = redacted["input"]["messages"][0]["content"]
    assert f"<{kind}_1>" in content
    assert find_pii(content) == []


@pytest.mark.parametrize(
    "text",
    [
        "order ORD-123456 arrived late, refund $45",
        "refund 150 dollars on 2026-10-02 at 12:30:45",
        "card 4111 1111 1111 1112 is not Luhn valid",  # fails the Luhn check
        "version 1.6.0 of the router",
        "<EMAIL_1> wrote again",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert find_pii(text) == []


def test_placeholders_are_stable_across_the_whole_case():
    case = {
        "input": {
            "messages": [
                {"role": "user", "content": "I am JOHN@example.com, also reach john@example.com or mary@example.org"},
                {"role": "user", "content": "phone +1 415 555 0132 / 4155550132"},
            ],
            "variables": {"ticket": "from john@example.com", "ip": "10.0.0.1"},
        },
        "expected": {"kind": "label", "value": "reply to mary@example.org"},
    }
    out = redact_case(case)
    msgs = out["input"]["messages"]
    assert msgs[0]["content"] == "I am <EMAIL_1>, also reach <EMAIL_1> or <EMAIL_2>"
    assert msgs[1]["content"] == "phone <PHONE_1> / <PHONE_1>"
    assert out["input"]["variables"] == {"ticket": "from <EMAIL_1>", "ip": "<IP_1>"}
    assert out["expected"]["value"] == "reply to <EMAIL_2>"


def test_configured_patterns_are_redacted():
    out = redact_case({"t": "customer id CUST-99812 and CUST-99812"}, {"customer_id": r"CUST-\d{5}"})
    assert out["t"] == "customer id <CUSTOMER_ID_1> and <CUSTOMER_ID_1>"
