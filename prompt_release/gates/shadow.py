"""Shadow comparison: a candidate's shadow answers against production's served answers on the same live inputs.

`runtime.shadow` logs each shadow answer with the span id of the served call
it shadows. Here each (shadow, served) pair becomes one paired case, both
answers are checked as a backtest checks its own (`evaluation.backtest.
answered_frame`: the same contract checks, hard-failure definition and per-case
columns), and the prompt's gate spec decides with the gates' statistics
(`gates.decision.decide`: Wilson, Newcombe/McNemar, order-statistic and
bootstrap intervals, minimum n, freeze with the n that would decide). Live
traffic carries no expected answer and no judge score, so accuracy and judge
gates are left out and named as such; everything else in the spec is decided
as in the backtest, on live inputs instead of golden ones. Nothing is
promoted from a shadow comparison: it is evidence before a canary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from prompt_release.contracts import checks
from prompt_release.errors import UserError
from prompt_release.evaluation.backtest import BacktestCase, answered_frame
from prompt_release.gates.decision import GateDecision, decide
from prompt_release.gates.evaluate import load_spec_for, per_case_frame, task_metric, with_hard_failure
from prompt_release.gates.spec import ACCURACY_PATTERN, GateSpec, gate_spec_from_dict
from prompt_release.llm.client import STATUS_OK, CallResult
from prompt_release.markdown import md_table
from prompt_release.registry import Registry
from prompt_release.warehouse import read_connection

# Live traffic has neither: no expected answer, no judge.
_NOT_ON_LIVE = ("judge_score",)

_SIDE = """coalesce({t}.span_id, {t}.record_key) AS {p}span_id, {t}.prompt_version AS {p}version,
       {t}.output AS {p}output, CAST({t}.tool_calls AS VARCHAR) AS {p}tool_calls, {t}.status AS {p}status,
       {t}.error_type AS {p}error, {t}.latency_ms AS {p}latency_ms, {t}.input_tokens AS {p}input_tokens,
       {t}.output_tokens AS {p}output_tokens, {t}.cost_usd AS {p}cost_usd"""

_PAIRS_SQL = f"""
SELECT {_SIDE.format(t="s", p="c_")}, {_SIDE.format(t="t", p="b_")},
       CAST(t.input_messages AS VARCHAR) AS input_messages, CAST(t.variables AS VARCHAR) AS variables
FROM traces s
JOIN traces t ON t.span_id = json_extract_string(s.attributes, '$.shadow.served_span_id')
WHERE s.prompt_id = $prompt_id AND json_extract(s.attributes, '$.shadow') IS NOT NULL
  AND ($since IS NULL OR s.ts >= $since)
ORDER BY s.ts, c_span_id
"""


@dataclass
class ShadowComparison:
    prompt_id: str
    candidate: str
    baseline: str
    pairs: int
    decision: GateDecision
    left_out: list[str] = field(default_factory=list)  # gates live traffic cannot decide, and why
    shadow_errors: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "pairs": self.pairs,
            "verdict": self.decision.verdict,
            "reason": self.decision.summary,
            "gates": {g.metric: g.outcome for g in self.decision.gates},
            "left_out": self.left_out,
        }

    def markdown(self) -> str:
        rows = [
            [
                g.metric,
                g.severity,
                _fmt(g.baseline_value),
                _fmt(g.candidate_value),
                f"[{_fmt(g.interval_lower)}, {_fmt(g.interval_upper)}]",
                g.threshold,
                g.n,
                g.cases_to_decide if g.outcome == "inconclusive" and g.cases_to_decide else g.n,
                g.outcome.upper(),
            ]
            for g in self.decision.gates
        ]
        table = md_table(
            ["gate", "severity", "production", "shadow", "interval", "threshold", "n", "n to decide", "outcome"],
            rows,
            align_right=(2, 3, 6, 7),
        )
        head = (
            f"**{self.candidate}** in shadow vs **{self.baseline}** served, on the same {self.pairs} live "
            f"requests: would {self.decision.summary}"
        )
        tail = f"\n\nLeft out (live traffic has no expected answer or judge): {', '.join(self.left_out)}"
        return head + "\n\n" + table + (tail if self.left_out else "")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def live_spec(spec: GateSpec) -> tuple[GateSpec, list[str]]:
    """The spec without the gates live traffic cannot decide (accuracy, judge), and their names."""
    raw = spec.model_dump(mode="json", exclude_none=True)
    left_out = [m for m in raw["gates"] if ACCURACY_PATTERN.match(m) or m in _NOT_ON_LIVE]
    raw["gates"] = {m: rule for m, rule in raw["gates"].items() if m not in left_out}
    if not raw["gates"]:
        raise UserError("every gate of the spec needs an expected answer or a judge: none applies to live traffic")
    return gate_spec_from_dict(raw), left_out


def _answer(row: dict[str, Any], side: str, case_id: str) -> CallResult:
    tool_calls = json.loads(row[f"{side}tool_calls"]) if row[f"{side}tool_calls"] else []
    return CallResult(
        tag=f"{side}{case_id}",
        cache_key="live:" + row[f"{side}span_id"],
        sample_index=0,
        status=STATUS_OK if row[f"{side}status"] != "error" else "error",
        output=row[f"{side}output"],
        tool_calls=tool_calls if isinstance(tool_calls, list) else [],
        input_tokens=row[f"{side}input_tokens"],
        output_tokens=row[f"{side}output_tokens"],
        cost_usd=row[f"{side}cost_usd"],
        latency_ms=row[f"{side}latency_ms"],
        error_type=row[f"{side}error"],
    )


def compare_shadow(
    warehouse: str | Path | None,
    registry_root: str | Path,
    prompt_id: str,
    *,
    since: datetime | None = None,
) -> list[ShadowComparison]:
    """One comparison per (shadow version, served version) seen in the shadow traces of `prompt_id`."""
    registry = Registry(registry_root)
    with read_connection(warehouse) as con:
        has_traces = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'traces'"
        ).fetchone()[0]
        cursor = con.execute(_PAIRS_SQL, {"prompt_id": prompt_id, "since": since}) if has_traces else None
        names = [d[0] for d in cursor.description] if cursor else []
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()] if cursor else []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["c_version"], row["b_version"]), []).append(row)
    out = []
    for (candidate_id, baseline_id), pairs in sorted(groups.items()):
        candidate, baseline = registry.load_package(candidate_id), registry.load_package(baseline_id)
        contracts = {"candidate": checks.compile_contract(candidate), "baseline": checks.compile_contract(baseline)}
        answers = []
        for row in pairs:
            case_id = row["b_span_id"]  # one served request = one paired case
            messages = [m for m in json.loads(row["input_messages"] or "[]") if m.get("role") != "system"]
            case = BacktestCase(
                case_id=case_id,
                source="shadow",
                messages=messages,
                variables=json.loads(row["variables"] or "{}"),
                expected=None,
                tags=["source:shadow"],
            )
            answers.append(("candidate", candidate, contracts["candidate"], case, _answer(row, "c_", case_id)))
            answers.append(("baseline", baseline, contracts["baseline"], case, _answer(row, "b_", case_id)))
        spec, left_out = live_spec(load_spec_for(registry.root, candidate_id))
        results = with_hard_failure(answered_frame(f"shadow:{candidate_id}:{baseline_id}", answers))
        task = task_metric(spec)
        sides = [per_case_frame(results.filter(pl.col("role") == role), task) for role in ("candidate", "baseline")]
        decision = decide(spec, *sides, provenance={"candidate_prompt": candidate_id, "baseline_prompt": baseline_id})
        out.append(
            ShadowComparison(
                prompt_id=prompt_id,
                candidate=candidate_id,
                baseline=baseline_id,
                pairs=len(pairs),
                decision=decision,
                left_out=left_out,
                shadow_errors=sum(1 for row in pairs if row["c_status"] == "error"),
            )
        )
    return out
