"""Behaviour diff: a reviewer sees where behaviour moved, largest regressions first."""

from __future__ import annotations

import json

import polars as pl

from prompt_release.evaluation.behaviour_diff import behaviour_diff, diff_markdown, pair_outcomes


def _results(rows: list[tuple[str, str, bool, str, list[str]]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"case_id": c, "sample_index": 0, "role": r, "passed": p, "output": o, "tags": t} for c, r, p, o, t in rows],
        schema={
            "case_id": pl.String,
            "sample_index": pl.Int64,
            "role": pl.String,
            "passed": pl.Boolean,
            "output": pl.String,
            "tags": pl.List(pl.String),
        },
    )


RESULTS = _results(
    [
        # account recovery: candidate fixes two cases
        ("c1", "baseline", False, '{"route": "general"}', ["intent:account_recovery"]),
        ("c1", "candidate", True, '{"route": "account_recovery"}', ["intent:account_recovery"]),
        ("c2", "baseline", False, '{"route": "general"}', ["intent:account_recovery"]),
        ("c2", "candidate", True, '{"route": "account_recovery"}', ["intent:account_recovery"]),
        # billing: one regression, one unchanged
        ("c3", "baseline", True, '{"route": "billing"}', ["intent:billing"]),
        ("c3", "candidate", False, '{"route": "general"}', ["intent:billing"]),
        ("c4", "baseline", True, '{"route": "billing"}', ["intent:billing"]),
        ("c4", "candidate", True, '{"route":  "billing"}', ["intent:billing"]),
        # both pass with different text: a disagreement
        ("c5", "baseline", True, "Refund issued.", ["intent:refund"]),
        ("c5", "candidate", True, "I have issued your refund.", ["intent:refund"]),
        # both fail
        ("c6", "baseline", False, "oops", ["intent:refund"]),
        ("c6", "candidate", False, "oops again", ["intent:refund"]),
        # only the candidate ran (budget): left out of the diff
        ("c7", "candidate", True, "x", ["intent:refund"]),
    ]
)


def test_each_pair_gets_one_outcome() -> None:
    outcomes = dict(pair_outcomes(RESULTS).select("case_id", "outcome").iter_rows())
    assert outcomes == {
        "c1": "win",
        "c2": "win",
        "c3": "regression",
        "c4": "same",  # whitespace is not a behaviour change
        "c5": "disagreement",
        "c6": "both_failing",
    }


def test_groups_are_ordered_by_regressions_and_carry_examples() -> None:
    diff = behaviour_diff(RESULTS)
    first = diff.row(0, named=True)
    # "all" and "billing" both hold the single regression; "all" has more cases.
    assert (first["group_kind"], first["group_value"], first["regressions"]) == ("all", "all", 1)
    billing = diff.filter(pl.col("group_value") == "billing").row(0, named=True)
    assert billing["regressions"] == 1 and billing["cases"] == 2
    example = json.loads(billing["examples"])[0]
    assert example == {
        "case_id": "c3",
        "outcome": "regression",
        "before": '{"route": "billing"}',
        "after": '{"route": "general"}',
    }
    recovery = diff.filter(pl.col("group_value") == "account_recovery").row(0, named=True)
    assert (recovery["wins"], recovery["regressions"]) == (2, 0)
    assert "| intent:billing | 2 | 1 | 0 | 0 | 0 |" in diff_markdown(diff)


def test_empty_results_give_an_empty_diff() -> None:
    assert behaviour_diff(RESULTS.clear()).is_empty()


def test_equal_json_and_tool_calls_are_the_same_behaviour_whatever_their_formatting() -> None:
    rows = [
        # key order, whitespace and number formatting: the same answer
        ("j1", "baseline", True, '{"route":"technical","confidence":0.9}', ["intent:tech"]),
        ("j1", "candidate", True, '{\n  "confidence": 0.90,\n  "route": "technical"\n}', ["intent:tech"]),
        ("j2", "baseline", True, '{"amount": 1, "items": [1e2, 2.50]}', ["intent:refund"]),
        ("j2", "candidate", True, '{"items": [100, 2.5], "amount": 1.0}', ["intent:refund"]),
        # a different value: a disagreement
        ("j3", "baseline", True, '{"route": "technical", "confidence": 0.9}', ["intent:tech"]),
        ("j3", "candidate", True, '{"route": "technical", "confidence": 0.8}', ["intent:tech"]),
    ]
    outcomes = dict(pair_outcomes(_results(rows)).select("case_id", "outcome").iter_rows())
    assert outcomes == {"j1": "same", "j2": "same", "j3": "disagreement"}

    calls = pl.DataFrame(
        [
            {
                "case_id": "t1",
                "sample_index": 0,
                "role": "baseline",
                "passed": True,
                "output": "x",
                "answer": None,
                "tool_calls": '[{"id": "call_a", "name": "lookup_order", "arguments": "{\\"order_id\\": \\"A1\\", \\"n\\": 2}"}]',
                "tags": ["intent:order"],
            },
            {
                "case_id": "t1",
                "sample_index": 0,
                "role": "candidate",
                "passed": True,
                "output": "y",
                "answer": "",
                "tool_calls": '[{"id": "call_b", "name": "lookup_order", "arguments": "{\\"n\\":2.0,\\"order_id\\":\\"A1\\"}"}]',
                "tags": ["intent:order"],
            },
            {
                "case_id": "t2",
                "sample_index": 0,
                "role": "baseline",
                "passed": True,
                "output": "x",
                "answer": None,
                "tool_calls": '[{"name": "lookup_order", "arguments": "{\\"order_id\\": \\"A1\\"}"}]',
                "tags": [],
            },
            {
                "case_id": "t2",
                "sample_index": 0,
                "role": "candidate",
                "passed": True,
                "output": "y",
                "answer": None,
                "tool_calls": '[{"name": "issue_refund", "arguments": "{\\"order_id\\": \\"A1\\"}"}]',
                "tags": [],
            },
        ]
    )
    outcomes = dict(pair_outcomes(calls).select("case_id", "outcome").iter_rows())
    assert outcomes == {"t1": "same", "t2": "disagreement"}  # call ids differ on every call: not behaviour


def test_groups_where_nothing_moved_are_left_out_and_wins_order_after_regressions() -> None:
    rows = [
        ("a", "baseline", True, '{"route": "billing"}', ["intent:billing"]),
        ("a", "candidate", True, '{ "route" : "billing" }', ["intent:billing"]),
        ("b", "baseline", False, "x", ["intent:recovery"]),
        ("b", "candidate", True, "y", ["intent:recovery"]),
        ("c", "baseline", True, "x", ["intent:refund"]),
        ("c", "candidate", False, "y", ["intent:refund"]),
    ]
    diff = behaviour_diff(_results(rows))
    groups = [f"{k}:{v}" for k, v in diff.select("group_kind", "group_value").iter_rows()]
    assert groups == ["all:all", "intent:refund", "intent:recovery"]  # billing: nothing moved
