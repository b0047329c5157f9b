"""Behaviour diff: what changes for users when the candidate replaces the baseline.

Pairs candidate and baseline results on the same (case, sample) and sorts each
pair into regression (baseline passed, candidate failed), win (the reverse),
both failing, disagreement (both pass, different meaning) or same. Pairs are
then counted per group (every tag of the case: intent, segment, failure class,
case source, plus `all`), regressions first, then wins, with representative
before/after examples, so a reviewer sees *where* behaviour moved rather than
one aggregate number. Groups where nothing moved are left out.

Answers are compared by meaning (`meaning_key`): a JSON answer as its parsed
value (key order, whitespace and number formatting ignored), tool calls as
name plus parsed arguments, other text with whitespace and case folded.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

OUTCOMES = ("regression", "win", "both_failing", "disagreement", "same")
EXAMPLES_PER_GROUP = 3
COUNTS = ("regressions", "wins", "both_failing", "disagreements")


def _plain(value: Any) -> Any:
    """A parsed JSON value with numbers in one form: 1, 1.0 and 1e0 are the same number."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _parsed(text: Any) -> tuple[bool, Any]:
    if not isinstance(text, str):
        return text is not None, text
    try:
        return True, json.loads(text)
    except ValueError:
        return False, text


def meaning_key(output: str | None, tool_calls: str | list | None = None) -> str:
    """Equal for two answers that mean the same: JSON as its value, tool calls as name + arguments."""
    text = (output or "").strip()
    is_json, value = _parsed(text) if text else (False, "")
    answer: Any = {"json": _plain(value)} if is_json else {"text": " ".join(text.split()).lower()}
    calls = _parsed(tool_calls)[1] if isinstance(tool_calls, str) else tool_calls
    if calls:
        answer["tools"] = [
            [
                call.get("name") or (call.get("function") or {}).get("name"),
                _plain(_parsed(call.get("arguments", (call.get("function") or {}).get("arguments")))[1]),
            ]
            for call in calls
            if isinstance(call, dict)
        ]
    return json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _meaning(results: pl.DataFrame) -> pl.Expr:
    # `answer` + `tool_calls` are the raw columns when the caller has them; else `output` is the answer.
    if "answer" in results.columns:
        fields = ["answer", "tool_calls"] if "tool_calls" in results.columns else ["answer"]
    else:
        fields = ["output"]
    return (
        pl.struct(fields)
        .map_elements(lambda row: meaning_key(row[fields[0]], row.get("tool_calls")), return_dtype=pl.String)
        .alias("meaning")
    )


def pair_outcomes(results: pl.DataFrame) -> pl.DataFrame:
    """One row per (case_id, sample_index) with both roles side by side and its outcome.

    `results` has columns case_id, sample_index, role ('candidate'|'baseline'),
    passed (bool), output (str, what a reviewer reads), tags (list[str]), and
    optionally answer (the raw text) and tool_calls (JSON), which then decide
    sameness instead of `output`. Cases missing on either side (e.g. not run
    for budget) are left out: a diff needs both.
    """
    results = results.with_columns(_meaning(results))
    keep = ["case_id", "sample_index", "passed", "output", "meaning", "tags"]
    cand = results.filter(pl.col("role") == "candidate").select(keep)
    base = results.filter(pl.col("role") == "baseline").select(keep[:-1])
    paired = cand.join(base, on=["case_id", "sample_index"], suffix="_baseline", how="inner")
    paired = paired.rename({"passed": "passed_candidate", "output": "output_candidate"})
    same_text = pl.col("meaning") == pl.col("meaning_baseline")
    outcome = (
        pl.when(pl.col("passed_baseline") & ~pl.col("passed_candidate"))
        .then(pl.lit("regression"))
        .when(~pl.col("passed_baseline") & pl.col("passed_candidate"))
        .then(pl.lit("win"))
        .when(~pl.col("passed_baseline") & ~pl.col("passed_candidate"))
        .then(pl.lit("both_failing"))
        .when(same_text)
        .then(pl.lit("same"))
        .otherwise(pl.lit("disagreement"))
    )
    return paired.with_columns(
        pl.col("passed_candidate").fill_null(False),
        pl.col("passed_baseline").fill_null(False),
    ).with_columns(outcome.alias("outcome"))


def _split_tag(tag_col: str) -> list[pl.Expr]:
    kind = pl.col(tag_col).str.split_exact(":", 1).struct.field("field_0")
    value = pl.col(tag_col).str.split_exact(":", 1).struct.field("field_1")
    has_kind = pl.col(tag_col).str.contains(":")
    return [
        pl.when(has_kind).then(kind).otherwise(pl.lit("tag")).alias("group_kind"),
        pl.when(has_kind).then(value).otherwise(pl.col(tag_col)).alias("group_value"),
    ]


def behaviour_diff(results: pl.DataFrame, *, examples_per_group: int = EXAMPLES_PER_GROUP) -> pl.DataFrame:
    """Counts per group, regressions first, then wins; groups where nothing moved are left out
    (the `all` group is always kept: it carries the totals).

    Columns: group_kind, group_value, cases, regressions, wins, both_failing,
    disagreements, examples (JSON text: up to N regression examples, else
    disagreements, each with case id and before/after output).
    """
    pairs = pair_outcomes(results)
    if pairs.is_empty():
        return pl.DataFrame(
            schema={
                "group_kind": pl.String,
                "group_value": pl.String,
                "cases": pl.Int64,
                "regressions": pl.Int64,
                "wins": pl.Int64,
                "both_failing": pl.Int64,
                "disagreements": pl.Int64,
                "examples": pl.String,
            }
        )
    tagged = pairs.with_columns(
        pl.concat_list([pl.lit(["all:all"]), pl.col("tags").fill_null(pl.lit([], dtype=pl.List(pl.String)))]).alias(
            "group_tag"
        )
    ).explode("group_tag")
    tagged = tagged.with_columns(_split_tag("group_tag"))
    counts = (
        tagged.group_by("group_kind", "group_value")
        .agg(
            pl.len().alias("cases"),
            (pl.col("outcome") == "regression").sum().alias("regressions"),
            (pl.col("outcome") == "win").sum().alias("wins"),
            (pl.col("outcome") == "both_failing").sum().alias("both_failing"),
            (pl.col("outcome") == "disagreement").sum().alias("disagreements"),
        )
        .with_columns(
            pl.col(c).cast(pl.Int64) for c in ("cases", "regressions", "wins", "both_failing", "disagreements")
        )
    )
    # Representative examples: regressions first, then disagreements, then wins;
    # stable order by case id so the same run always shows the same examples.
    priority = {"regression": 0, "disagreement": 1, "win": 2, "both_failing": 3}
    examples = (
        tagged.filter(pl.col("outcome") != "same")
        .with_columns(pl.col("outcome").replace_strict(priority, default=9).alias("_prio"))
        .sort("group_kind", "group_value", "_prio", "case_id", "sample_index")
        .group_by("group_kind", "group_value", maintain_order=True)
        .head(examples_per_group)
        .group_by("group_kind", "group_value", maintain_order=True)
        .agg(
            pl.struct(
                "case_id",
                "outcome",
                pl.col("output_baseline").alias("before"),
                pl.col("output_candidate").alias("after"),
            ).alias("examples")
        )
    )
    moved = pl.sum_horizontal(*COUNTS) > 0
    counts = counts.filter(moved | (pl.col("group_kind") == "all"))
    out = counts.join(examples, on=["group_kind", "group_value"], how="left")
    out = out.with_columns(
        pl.col("examples")
        .map_elements(lambda items: json.dumps(list(items) if items is not None else []), return_dtype=pl.String)
        .fill_null("[]")
    )
    return out.sort(
        ["regressions", "wins", "disagreements", "cases", "group_kind", "group_value"],
        descending=[True, True, True, True, False, False],
    )


def diff_markdown(diff: pl.DataFrame, *, limit: int = 15) -> str:
    """The diff as a markdown table for the Dagster UI and reports."""
    lines = [
        "| group | cases | regressions | wins | both failing | disagreements |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in diff.head(limit).iter_rows(named=True):
        lines.append(
            f"| {row['group_kind']}:{row['group_value']} | {row['cases']} | {row['regressions']} "
            f"| {row['wins']} | {row['both_failing']} | {row['disagreements']} |"
        )
    return "\n".join(lines)
