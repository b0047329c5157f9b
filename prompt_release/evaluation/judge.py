"""LLM-as-judge: pairwise judgements of candidate vs baseline outputs against a versioned rubric.

The judge prompt is a registry package (e.g. `summary_judge`, named by the
rubric, at its production label). For each pair the judge sees the input
document and the two responses in an order drawn from (seed, pair id), so the
same run always shows the same order, different cases see both orders, and
the order is recorded for position-bias analysis. Judge calls go through the
same cached, budgeted model client as the backtest (`run_calls_sync`), keyed
by the judge package hash and the rendered messages. Every score carries the
rubric's `<id>:v<semver>` and content hash and the judge's version and hash.
Scores are on the rubric scale (1-5). At the start of each judged run the
rubric's calibration examples are judged the same way and the share that
matches the expected preference is reported as a self-check.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prompt_release.errors import UserError
from prompt_release.llm.client import NOT_RUN, STATUS_OK, CallRequest, run_calls_sync
from prompt_release.llm.settings import Budget, LLMSettings
from prompt_release.registry import Registry
from prompt_release.registry.rubric import Rubric, load_rubric, locked_problem

JUDGE_LABEL = "production"
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class JudgePair:
    """One comparison: the input document and the two outputs. `pair_id` seeds the order shown."""

    pair_id: str
    document: str
    candidate: str
    baseline: str


@dataclass(frozen=True, slots=True)
class JudgeScore:
    """The judge's verdict on one pair, mapped back from positions (A/B) to roles."""

    pair_id: str
    status: str  # ok | invalid (the judge's answer is not a valid verdict) | error | not_run_budget
    candidate_position: str  # 'A' or 'B': where the candidate was shown
    preferred: str | None  # candidate | baseline | tie
    preferred_position: str | None  # the judge's raw answer: A | B | tie
    candidate_score: float | None
    baseline_score: float | None
    reason: str | None
    rubric_version: str  # <id>:v<semver>
    rubric_hash: str
    judge_version: str
    judge_hash: str
    seed: int
    cached: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None

    def record(self) -> dict[str, Any]:
        """What a result row stores in its `judge` JSON column."""
        keep = (
            "status",
            "candidate_position",
            "preferred",
            "preferred_position",
            "candidate_score",
            "baseline_score",
            "reason",
            "rubric_version",
            "rubric_hash",
            "judge_version",
            "judge_hash",
            "seed",
            "cached",
            "error",
        )
        data = asdict(self)
        return {k: data[k] for k in keep}


def candidate_position(seed: int, pair_id: str) -> str:
    """'A' or 'B', drawn from (seed, pair id): stable for a run, about half and half over cases."""
    return "A" if hashlib.sha256(f"{seed}|{pair_id}".encode()).digest()[0] & 1 == 0 else "B"


def resolve_judge(registry: Registry, rubric: Rubric) -> Any:
    """The judge package the rubric names, at its production label."""
    version = registry.resolve_label(rubric.judge, JUDGE_LABEL)
    if version is None:
        raise UserError(
            f"rubric {rubric.ref} names judge {rubric.judge!r}, but its {JUDGE_LABEL} label points "
            f"nowhere; register and label it (prompt-release prompts label {rubric.judge} production ...)",
            field="judge",
        )
    return registry.load_package(version)


def _parse_verdict(output: str | None, rubric: Rubric) -> tuple[dict | None, str | None]:
    """(verdict, problem): the judge's JSON, tolerating prose around one object."""
    if not output:
        return None, "empty answer"
    try:
        data = json.loads(output)
    except json.JSONDecodeError:
        match = _JSON_OBJECT.search(output)
        try:
            data = json.loads(match.group(0)) if match else None
        except json.JSONDecodeError:
            data = None
    if not isinstance(data, dict):
        return None, "answer is not a JSON object"
    if data.get("preferred") not in ("A", "B", "tie"):
        return None, f"preferred must be A, B or tie, got {data.get('preferred')!r}"
    for key in ("score_a", "score_b"):
        value = data.get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not rubric.scale.min <= value <= rubric.scale.max
        ):
            return None, f"{key} must be a number from {rubric.scale.min} to {rubric.scale.max}, got {value!r}"
    return data, None


def judge_pairs(
    pairs: Sequence[JudgePair],
    *,
    rubric: Rubric,
    judge_package: Any,
    llm_settings: LLMSettings,
    warehouse: str | Path | None = None,
    seed: int = 0,
    budget: Budget | None = None,
    spend_key: str | None = None,
) -> list[JudgeScore]:
    """Judge every pair (one call each, cached); one `JudgeScore` per pair, in order.
    `spend_key`: the logical run whose recorded spend `budget` also covers (see `run_calls`)."""
    rubric_view = rubric.prompt_view()
    rubric_hash = rubric.content_hash
    response_format = judge_package.response_format()
    positions = [candidate_position(seed, p.pair_id) for p in pairs]
    requests = []
    for index, (pair, position) in enumerate(zip(pairs, positions, strict=True)):
        a, b = (pair.candidate, pair.baseline) if position == "A" else (pair.baseline, pair.candidate)
        messages = judge_package.render(
            {"rubric": rubric_view, "document": pair.document, "response_a": a, "response_b": b}
        )
        requests.append(
            CallRequest(
                model=judge_package.model,
                messages=messages,
                parameters=dict(judge_package.parameters),
                response_format=response_format,
                package_hash=judge_package.package_hash,
                sample_index=0,
                tag=str(index),
            )
        )
    results = (
        run_calls_sync(requests, llm_settings, warehouse=warehouse, budget=budget, spend_key=spend_key)
        if requests
        else []
    )
    scores = []
    for pair, position, result in zip(pairs, positions, results, strict=True):
        common = dict(
            pair_id=pair.pair_id,
            candidate_position=position,
            rubric_version=rubric.ref,
            rubric_hash=rubric_hash,
            judge_version=judge_package.version_id,
            judge_hash=judge_package.package_hash,
            seed=seed,
            cached=bool(result.cached),
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_usd=result.cost_usd,
        )
        if result.status != STATUS_OK:
            scores.append(
                JudgeScore(
                    status=result.status,
                    preferred=None,
                    preferred_position=None,
                    candidate_score=None,
                    baseline_score=None,
                    reason=None,
                    error=result.error_type or result.error,
                    **common,
                )
            )
            continue
        verdict, problem = _parse_verdict(result.output, rubric)
        if verdict is None:
            scores.append(
                JudgeScore(
                    status="invalid",
                    preferred=None,
                    preferred_position=None,
                    candidate_score=None,
                    baseline_score=None,
                    reason=None,
                    error=problem,
                    **common,
                )
            )
            continue
        raw = verdict["preferred"]
        cand_key, base_key = ("score_a", "score_b") if position == "A" else ("score_b", "score_a")
        preferred = "tie" if raw == "tie" else ("candidate" if raw == position else "baseline")
        scores.append(
            JudgeScore(
                status=STATUS_OK,
                preferred=preferred,
                preferred_position=raw,
                candidate_score=float(verdict[cand_key]),
                baseline_score=float(verdict[base_key]),
                reason=str(verdict.get("reason") or ""),
                **common,
            )
        )
    return scores


# ----------------------------------------------------------------- calibration


def calibration_pairs(rubric: Rubric) -> list[JudgePair]:
    """The rubric's calibration examples as pairs: summary_a in the candidate slot, summary_b in the baseline's."""
    return [
        JudgePair(f"calibration|{rubric.ref}|{i}", ex.document, ex.summary_a, ex.summary_b)
        for i, ex in enumerate(rubric.calibration)
    ]


def calibration_report(rubric: Rubric, scores: Sequence[JudgeScore]) -> dict[str, Any]:
    """Agreement of the judge with the rubric's expected preferences (over the examples it judged)."""
    back = {"candidate": "A", "baseline": "B", "tie": "tie"}
    details = []
    for index, (example, score) in enumerate(zip(rubric.calibration, scores, strict=True)):
        got = back.get(score.preferred) if score.status == STATUS_OK else None
        details.append(
            {
                "index": index,
                "expected": example.expected_preference,
                "got": got,
                "summary_a_position": score.candidate_position,
                "status": score.status,
                "agrees": None if got is None else got == example.expected_preference,
            }
        )
    judged = [d for d in details if d["agrees"] is not None]
    agreed = sum(1 for d in judged if d["agrees"])
    return {
        "rubric_version": rubric.ref,
        "rubric_hash": rubric.content_hash,
        "judge_version": scores[0].judge_version if scores else None,
        "judge_hash": scores[0].judge_hash if scores else None,
        "examples": len(details),
        "judged": len(judged),
        "agreed": agreed,
        "agreement": agreed / len(judged) if judged else None,
        "results": details,
    }


# ----------------------------------------------------------------- the backtest step


@dataclass(slots=True)
class JudgedRun:
    """What the judge step adds to a backtest run."""

    rubric: Rubric
    judge_version: str
    judge_hash: str
    scores: dict[tuple[str, int], JudgeScore]  # (case id, sample index) -> verdict
    calibration: dict[str, Any]
    spent_tokens: int
    spent_usd: float
    summary: dict[str, Any]


def document_of(variables: dict, messages: Sequence[dict]) -> str:
    """The input the outputs are judged against: the `document` variable, else the last user message."""
    if isinstance(variables.get("document"), str):
        return variables["document"]
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def _remaining(budget: Budget | None, tokens: int, usd: float) -> Budget | None:
    if budget is None:
        return None
    return Budget(
        max_tokens=None if budget.max_tokens is None else max(0, budget.max_tokens - tokens),
        max_usd=None if budget.max_usd is None else max(0.0, budget.max_usd - usd),
    )


def judge_backtest(
    rows: Sequence[dict[str, Any]],
    inputs: dict[str, tuple[dict, list[dict]]],
    *,
    rubric_path: str | None,
    registry: Registry,
    llm_settings: LLMSettings,
    warehouse: str | Path | None,
    seed: int,
    budget: Budget | None = None,
    spent_tokens: int = 0,
    spent_usd: float = 0.0,
    spend_key: str | None = None,
    log: Any = lambda message: None,
) -> JudgedRun | None:
    """Judge a backtest's result rows pairwise (candidate vs baseline per case and sample).

    `rows` are the backtest result rows, `inputs` maps a case id to its
    (variables, messages). Nothing happens (None) when the candidate names no
    rubric. Only pairs where both sides answered are judged; the calibration
    examples go first, in the same batch of calls, under the budget left over
    by the backtest itself: `spent_tokens`/`spent_usd` spent outside the record of
    `spend_key` (the backtest's run id, whose recorded spend counts as well).
    """
    if not rubric_path:
        return None
    rubric = load_rubric(registry.root, rubric_path)
    problem = locked_problem(registry.read_lock(), rubric, rubric_path)
    if problem:
        raise UserError(problem, file=rubric_path, field="version")
    judge_package = resolve_judge(registry, rubric)
    by_key: dict[tuple[str, int], dict[str, dict]] = {}
    for row in rows:
        by_key.setdefault((row["case_id"], row["sample_index"]), {})[row["role"]] = row
    keys, pairs = [], []
    for key in sorted(by_key):
        sides = by_key[key]
        cand, base = sides.get("candidate"), sides.get("baseline")
        if not cand or not base or cand["status"] != STATUS_OK or base["status"] != STATUS_OK:
            continue
        variables, messages = inputs[key[0]]
        keys.append(key)
        pairs.append(
            JudgePair(
                f"{key[0]}|{key[1]}", document_of(variables, messages), cand["output"] or "", base["output"] or ""
            )
        )
    calibration = calibration_pairs(rubric)
    log(
        f"judge: {len(pairs)} pairs + {len(calibration)} calibration examples, rubric {rubric.ref} "
        f"({rubric.content_hash[:19]}), judge {judge_package.version_id}"
    )
    scores = judge_pairs(
        calibration + pairs,
        rubric=rubric,
        judge_package=judge_package,
        llm_settings=llm_settings,
        warehouse=warehouse,
        seed=seed,
        budget=_remaining(budget, spent_tokens, spent_usd),
        spend_key=spend_key,
    )
    calibration_scores, case_scores = scores[: len(calibration)], scores[len(calibration) :]
    report = calibration_report(rubric, calibration_scores)
    fresh = [s for s in scores if not s.cached and s.status not in NOT_RUN]
    judged = [s for s in case_scores if s.status == STATUS_OK]
    summary = {
        "rubric": rubric.ref,
        "rubric_hash": rubric.content_hash,
        "judge": judge_package.version_id,
        "pairs": len(pairs),
        "judged": len(judged),
        "not_judged": len(pairs) - len(judged),
        "candidate_preferred": sum(s.preferred == "candidate" for s in judged) / len(judged) if judged else None,
        "baseline_preferred": sum(s.preferred == "baseline" for s in judged) / len(judged) if judged else None,
        "ties": sum(s.preferred == "tie" for s in judged) / len(judged) if judged else None,
        "calibration_agreement": report["agreement"],
        "calibration_examples": report["examples"],
    }
    if report["agreement"] is not None:
        log(
            f"judge calibration: {report['agreed']}/{report['judged']} examples agree with the rubric "
            f"({report['agreement']:.0%})"
        )
    return JudgedRun(
        rubric=rubric,
        judge_version=judge_package.version_id,
        judge_hash=judge_package.package_hash,
        scores=dict(zip(keys, case_scores, strict=True)),
        calibration=report,
        spent_tokens=sum((s.input_tokens or 0) + (s.output_tokens or 0) for s in fresh),
        spent_usd=sum(s.cost_usd or 0.0 for s in fresh),
        summary=summary,
    )


def apply_scores(rows: list[dict[str, Any]], judged: JudgedRun) -> None:
    """Fill `judge_score`, `rubric_version`, `rubric_hash` and `judge` on the result rows (in place).

    Every row of a judged run carries the rubric, even where no verdict was
    possible (one side failed, budget): the score is then NULL.
    """
    for row in rows:
        row["rubric_version"] = judged.rubric.ref
        row["rubric_hash"] = judged.rubric.content_hash
        score = judged.scores.get((row["case_id"], row["sample_index"]))
        if score is None:
            continue
        row["judge_score"] = score.candidate_score if row["role"] == "candidate" else score.baseline_score
        row["judge"] = json.dumps(score.record())
