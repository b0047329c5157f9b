"""The simulator's rule language decides answers the way the docs say (pure, no server)."""

from __future__ import annotations

import json

from prompt_release.llm import rules

ROUTER = """You are a support router. Answer with the route.
[route] account_recovery: password, locked out, 2fa
[route] billing: invoice, charge, refund, password reset fee
[default-route] general
[format] json
"""

AGENT = """You help customers with orders.
[tool] issue_refund when: refund, money back
[tool] lookup_order when: where is, status
[require] lookup_order before issue_refund
[limit] issue_refund.amount_usd <= 200
"""

REFUND_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "pattern": "^ORD-[0-9]{6}$"},
        "amount_usd": {"type": "number"},
        "reason": {"type": "string", "enum": ["damaged", "late", "not_received", "other"]},
    },
}


def chat(system: str, user: str, history: list[dict] | None = None) -> list[dict]:
    return [{"role": "system", "content": system}, *(history or []), {"role": "user", "content": user}]


def test_first_matching_route_in_prompt_order_wins_with_high_confidence():
    # "password reset fee" matches both rules; the first in the prompt wins.
    decision = rules.decide(chat(ROUTER, "I paid a PASSWORD reset fee twice"))
    assert json.loads(decision.content) == {"route": "account_recovery", "confidence": 0.9}


def test_no_keyword_falls_back_to_default_route_with_low_confidence():
    decision = rules.decide(chat(ROUTER, "Do you ship to Canada?"))
    assert json.loads(decision.content) == {"route": "general", "confidence": 0.55}


def test_prose_format_breaks_the_json_contract():
    decision = rules.decide(chat(ROUTER.replace("[format] json", "[format] prose"), "my invoice is wrong"))
    assert "billing" in decision.content
    try:
        json.loads(decision.content)
    except ValueError:
        pass
    else:  # pragma: no cover - the assertion below explains
        raise AssertionError("prose answer parsed as JSON")


def test_keywords_only_come_from_the_user_message_not_the_prompt_prose():
    # The system prompt mentions "refund" in its rules; a neutral ticket still goes to default.
    decision = rules.decide(chat(ROUTER, "hello there"))
    assert json.loads(decision.content)["route"] == "general"


def test_refund_without_prior_lookup_calls_lookup_first():
    decision = rules.decide(
        chat(AGENT, "Please refund ORD-123456, $50, it arrived damaged"),
        tools={"issue_refund": REFUND_SCHEMA, "lookup_order": None},
    )
    assert decision.finish_reason == "tool_calls"
    [call] = decision.tool_calls
    assert call["name"] == "lookup_order"
    assert json.loads(call["arguments"]) == {"order_id": "ORD-123456", "amount_usd": 50, "reason": "damaged"}


def test_refund_after_lookup_calls_refund_with_extracted_arguments():
    history = [
        {"role": "user", "content": "Please refund ORD-123456, 50 dollars, it never came, not received"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
    ]
    decision = rules.decide(
        chat(AGENT, "Please refund ORD-123456, 50 dollars, not received", history),
        tools={"issue_refund": REFUND_SCHEMA},
    )
    [call] = decision.tool_calls
    assert call["name"] == "issue_refund"
    assert json.loads(call["arguments"]) == {"order_id": "ORD-123456", "amount_usd": 50, "reason": "not_received"}


def test_refund_over_the_limit_escalates_instead_of_calling():
    decision = rules.decide(chat(AGENT, "refund ORD-123456 for $500 please"))
    assert decision.tool_calls == []
    assert decision.content == rules.ESCALATE_TEXT


def test_loosened_policy_refunds_directly_without_lookup_or_limit():
    loose = "\n".join(line for line in AGENT.splitlines() if not line.startswith(("[require]", "[limit]")))
    decision = rules.decide(chat(loose, "refund ORD-123456 for $500, late"))
    [call] = decision.tool_calls
    assert call["name"] == "issue_refund"
    assert json.loads(call["arguments"])["amount_usd"] == 500


def test_summary_respects_max_words():
    document = " ".join(f"Sentence number {i} says something useful about the topic." for i in range(30))
    for limit in (60, 30, 5):
        decision = rules.decide(chat(f"Summarize.\n[summary] max_words: {limit}", document))
        assert 0 < len(decision.content.split()) <= limit


def test_refuse_and_clarify():
    prompt = "[refuse] weapon, exploit\n[clarify] something, stuff\n" + ROUTER
    assert rules.decide(chat(prompt, "how do I build a weapon")).content == rules.REFUSAL_TEXT
    clarify = rules.decide(chat(prompt, "I need help with stuff"))
    assert clarify.content.startswith("Could you clarify") and clarify.content.endswith("?")


def test_same_seed_same_answer_and_noise_changes_some_routes():
    messages = chat(ROUTER.replace("[format] json", "[format] prose"), "my invoice")
    assert rules.decide(messages, seed=7).content == rules.decide(messages, seed=7).content
    routes = {
        json.loads(rules.decide(chat(ROUTER, "my invoice"), seed=s, noise=0.5).content)["route"] for s in range(40)
    }
    assert "billing" in routes and len(routes) > 1


def test_malformed_directives_are_reported_and_ignored():
    parsed = rules.parse_rules("[route] billing\n[limit] refund <= lots\n[Note] not a directive")
    assert parsed.routes == () and parsed.limits == ()
    assert len(parsed.problems) == 2
