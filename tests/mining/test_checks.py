"""Contract checks on single outputs: the semantics backtests and mining share."""

from __future__ import annotations

import json

import pytest

from prompt_release.contracts import checks
from tests.mining.support import ORDER, ROUTER, SUMMARIZER


def test_valid_route_passes_every_check():
    result = checks.check_output(ROUTER, json.dumps({"route": "billing", "confidence": 0.9}))
    assert result.json_valid and result.schema_valid and result.failure_classes == ()
    assert result.contract_ok


def test_prose_answer_is_invalid_json():
    result = checks.check_output(ROUTER, "This ticket should go to billing.")
    assert result.failure_classes == ("invalid_json",)


def test_route_outside_enum_is_an_enum_violation_with_its_path():
    result = checks.check_output(ROUTER, json.dumps({"route": "refunds", "confidence": 0.9}))
    assert result.failure_classes == ("enum_violation",)
    assert result.enum_path == "$.route"


def test_out_of_range_confidence_is_a_schema_violation_with_its_path():
    result = checks.check_output(ROUTER, json.dumps({"route": "billing", "confidence": 3}))
    assert result.failure_classes == ("schema_violation",)
    assert result.schema_path == "$.confidence"


def test_text_contract_has_no_json_checks():
    result = checks.check_output(SUMMARIZER, "A short summary.")
    assert result.json_valid is None and result.failure_classes == ()


LOOKUP = {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}
REFUND = {"name": "issue_refund", "arguments": {"order_id": "ORD-123456", "amount_usd": 50, "reason": "late"}}


def test_refund_after_lookup_within_limit_is_safe():
    prior = [{"role": "user", "content": "refund"}, {"role": "assistant", "tool_calls": [LOOKUP]}]
    result = checks.check_output(ORDER, "", [REFUND], prior)
    assert result.failure_classes == ()


def test_refund_after_lookup_in_the_same_response_is_safe():
    assert checks.check_output(ORDER, "", [LOOKUP, REFUND]).failure_classes == ()


def test_openai_style_prior_tool_call_counts():
    prior = [
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "{}"},
    ]
    assert checks.check_output(ORDER, "", [REFUND], prior).failure_classes == ()


def test_refund_without_lookup_is_unsafe():
    result = checks.check_output(ORDER, "", [REFUND], [{"role": "user", "content": "refund me"}])
    assert result.failure_classes == ("unsafe_tool_call",)
    assert "lookup_order" in result.tool_issues[0].detail


def test_refund_over_policy_bound_is_unsafe_but_schema_valid():
    big = {"name": "issue_refund", "arguments": {**REFUND["arguments"], "amount_usd": 500}}
    result = checks.check_output(ORDER, "", [LOOKUP, big])
    assert result.failure_classes == ("unsafe_tool_call",)
    assert "amount_usd=500 exceeds 200" in result.tool_issues[0].detail


def test_high_risk_call_with_invalid_arguments_is_args_invalid_and_unsafe():
    bad = {"name": "issue_refund", "arguments": {"order_id": "123", "amount_usd": 20, "reason": "late"}}
    result = checks.check_output(ORDER, "", [LOOKUP, bad])
    assert result.failure_classes == ("tool_args_invalid", "unsafe_tool_call")
    assert result.tool_issues[0].path == "$.order_id"


def test_low_risk_call_with_invalid_arguments_is_not_unsafe():
    result = checks.check_output(ORDER, "", [{"name": "lookup_order", "arguments": "not json"}])
    assert result.failure_classes == ("tool_args_invalid",)


def test_unknown_tool():
    result = checks.check_output(ORDER, "", [{"name": "delete_account", "arguments": {}}])
    assert result.failure_classes == ("unknown_tool",)


def test_refusal_and_clarification_patterns_are_configurable():
    assert checks.check_output(ORDER, "I can't help with that.").failure_classes == ("refusal",)
    assert checks.check_output(ORDER, "Could you clarify which order?").failure_classes == ("clarification",)
    custom = checks.check_output(ORDER, "Computer says no", refusal_patterns=[r"(?i)computer says no"])
    assert custom.refusal


@pytest.mark.parametrize(
    "policy",
    [
        {"issue_refund": {"requires_prior": "lookup_order", "limits": {"amount_usd": {"max": 200}}}},
        [
            {"tool": "issue_refund", "requires_prior": ["lookup_order"]},
            {"tool": "issue_refund", "argument": "amount_usd", "max": 200},
        ],
        ["lookup_order before issue_refund", "issue_refund.amount_usd <= 200"],
        {"rules": ["lookup_order before issue_refund", "issue_refund.amount_usd <= 200"]},
    ],
)
def test_tool_policy_shapes_parse_to_the_same_rule(policy):
    rule = checks.parse_tool_policy(policy)["issue_refund"]
    assert rule.requires_prior == ("lookup_order",)
    assert rule.max_bounds == (("amount_usd", 200.0),)


def test_expectation_matchers():
    out = json.dumps({"confidence": 0.9, "route": "billing"})
    assert checks.match_expected({"kind": "exact_json", "value": {"route": "billing", "confidence": 0.9}}, out)
    assert checks.match_expected({"kind": "label", "value": {"route": "billing"}}, out)
    assert not checks.match_expected({"kind": "label", "value": {"route": "technical"}}, out)
    assert checks.match_expected(
        {"kind": "tool_call", "value": {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}}, "", [LOOKUP]
    )
    assert not checks.match_expected(
        {"kind": "tool_call", "value": {"name": "issue_refund", "arguments": {}}}, "", [LOOKUP]
    )
    assert checks.match_expected({"kind": "refuse", "value": None}, "I cannot help with that.")
    assert checks.match_expected({"kind": "clarify", "value": None}, "Could you please clarify?")
    assert checks.match_expected(None, "x") is None


# --- what real models write: tool calls as text, fenced JSON -------------------------------------

REFUND_TEXT = json.dumps(REFUND)


@pytest.mark.parametrize(
    "answer",
    [
        f"Sure, refunding now:\n```json\n{REFUND_TEXT}\n```",
        REFUND_TEXT,
        f"<tool_call>\n{REFUND_TEXT}\n</tool_call>",
        json.dumps(
            {"type": "function", "function": {"name": "issue_refund", "arguments": json.dumps(REFUND["arguments"])}}
        ),
    ],
    ids=["fenced", "bare", "tagged", "openai-shaped"],
)
def test_a_refund_written_as_text_fails_and_is_unsafe_without_a_lookup(answer: str):
    result = checks.check_output(ORDER, answer, [], [{"role": "user", "content": "refund please"}])
    assert result.failure_classes == ("text_tool_call", "unsafe_tool_call")
    assert not result.contract_ok
    assert [c["name"] for c in result.text_tool_calls] == ["issue_refund"]
    unsafe = next(i for i in result.tool_issues if i.kind == "unsafe_tool_call")
    assert "written as text" in unsafe.detail and "lookup_order" in unsafe.detail


def test_a_safe_call_written_as_text_still_fails_the_answer():
    prior = [{"role": "user", "content": "refund"}, {"role": "assistant", "tool_calls": [LOOKUP]}]
    result = checks.check_output(ORDER, REFUND_TEXT, [], prior)
    assert result.failure_classes == ("text_tool_call",)


def test_prose_naming_a_tool_and_data_without_arguments_are_not_tool_calls():
    assert checks.check_output(ORDER, "I can issue_refund once I have looked the order up.").failure_classes == ()
    assert checks.check_output(ORDER, '{"name": "issue_refund", "status": "pending"}').failure_classes == ()


FENCED_ROUTE = '```json\n{"route": "billing", "confidence": 0.9}\n```'


def test_fenced_json_fails_a_json_contract_whose_parser_does_not_strip_fences():
    result = checks.check_output(ROUTER, FENCED_ROUTE)
    assert result.failure_classes == ("invalid_json", "fenced_json") and not result.contract_ok


def test_fenced_json_passes_when_the_package_declares_fence_stripping():
    from dataclasses import replace

    stripping = replace(ROUTER, package_hash="sha256:router-strips", post_processing=({"kind": "strip_fences"},))
    result = checks.check_output(stripping, FENCED_ROUTE)
    assert result.contract_ok and result.parsed == {"route": "billing", "confidence": 0.9}
