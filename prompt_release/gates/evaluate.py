"""From a backtest run to a stored gate report: per-case metrics, the decision, the report files.

Per case (averaged over its samples) the backtest results become the inputs
`decision.decide` reads: one column per rate metric, `<task>_accuracy` from the
expectation match, `latency_ms`, `tokens`, `cost_usd`, `success`. Replayed
baseline rows (recorded production outputs) count for every quality gate, but
their latency, tokens and cost were measured in production, not on this
endpoint, so efficiency gates compare fresh calls only. The report (JSON,
standalone HTML, and a `gate_reports` row) carries every id it was made from.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from prompt_release import config
from prompt_release.errors import UserError
from prompt_release.gates.decision import GateDecision, decide
from prompt_release.gates.report import GateReport, write_report
from prompt_release.gates.spec import ACCURACY_PATTERN, GateSpec, gate_spec_from_dict, load_gate_spec
from prompt_release.llm.client import NOT_RUN
from prompt_release.registry.ids import parse_version_id
from prompt_release.warehouse import Scope, duck, query_frame, read_connection, write_transaction
from prompt_release.warehouse.metrics import BACKTEST_HARD_FAILURE

REPORTS_DIR = config.STATE_DIR / "reports"


def task_metric(spec: GateSpec) -> str:
    """The name a gate spec gives task accuracy (`handoff_accuracy`, `tool_accuracy`, ...): its
    `<task>_accuracy` gate, else `task_accuracy`. Each prompt names its task in its own spec."""
    return next((g.metric for g in spec.parsed_gates if ACCURACY_PATTERN.match(g.metric)), "task_accuracy")


def spec_path_for(registry_root: str | Path, candidate: str) -> Path | None:
    """The candidate's own gate spec (`v<semver>.gates.json`), else its prompt's default (`gates.json`)."""
    prompt_id, semver = parse_version_id(candidate)
    folder = Path(registry_root) / "prompts" / prompt_id
    for name in (f"v{semver}.gates.json", f"v{semver}.gates.yaml", "gates.json", "gates.yaml"):
        if (folder / name).exists():
            return folder / name
    return None


def load_spec_for(registry_root: str | Path, candidate: str, *, spec_file: str | Path | None = None) -> GateSpec:
    path = Path(spec_file) if spec_file else spec_path_for(registry_root, candidate)
    if path is None:
        raise UserError(
            f"no gate spec for {candidate}: add prompts/{candidate.split(':')[0]}/gates.json or pass --spec FILE",
            field="spec",
        )
    spec = load_gate_spec(path)
    if spec.candidate_prompt and spec.candidate_prompt != candidate:
        raise UserError(
            f"gate spec is for {spec.candidate_prompt}, not {candidate}", file=path, field="candidate_prompt"
        )
    return spec


def with_hard_failure(results: pl.DataFrame) -> pl.DataFrame:
    """`backtest_results` rows built in memory (an adaptive run's look) with the `hard_failure` column
    the warehouse query adds: the one definition (warehouse.metrics), computed by the same SQL."""
    con = duck.connect()
    try:
        con.register("results", results.to_arrow())
        return query_frame(con, f"SELECT *, {BACKTEST_HARD_FAILURE} AS hard_failure FROM results")
    finally:
        con.close()


def per_case_frame(results: pl.DataFrame, task: str = "task_accuracy") -> pl.DataFrame:
    """One row per case for one role: every metric input `decide` may read (task accuracy named `task`)."""
    ran = results.filter(~pl.col("status").is_in(NOT_RUN))
    fresh = ~pl.col("replayed")
    return ran.group_by("case_id").agg(
        pl.col("json_valid").cast(pl.Float64).mean().alias("json_valid_rate"),
        pl.col("schema_valid").cast(pl.Float64).mean().alias("schema_pass_rate"),
        pl.col("tool_calls_valid").cast(pl.Float64).mean().alias("tool_call_valid_rate"),
        pl.col("unsafe_tool_call").cast(pl.Float64).mean().alias("unsafe_tool_call_rate"),
        pl.col("refused").cast(pl.Float64).mean().alias("refusal_rate"),
        (pl.col("status") == "error").cast(pl.Float64).mean().alias("error_rate"),
        pl.col("passed").cast(pl.Float64).mean().alias("success_rate"),
        pl.col("hard_failure").cast(pl.Float64).mean().alias("hard_failure_rate"),
        pl.col("task_correct").cast(pl.Float64).mean().alias(task),
        pl.col("judge_score").mean().alias("judge_score"),
        pl.col("latency_ms").filter(fresh).mean().alias("latency_ms"),
        (pl.col("input_tokens") + pl.col("output_tokens")).filter(fresh).cast(pl.Float64).mean().alias("tokens"),
        pl.col("cost_usd").filter(fresh).mean().alias("cost_usd"),
        pl.col("passed").cast(pl.Float64).mean().alias("success"),
    )


def load_run(warehouse: str | Path | None, run_id: str) -> tuple[dict[str, Any], pl.DataFrame, pl.DataFrame]:
    with read_connection(warehouse) as con:
        found = con.execute("SELECT * FROM backtest_runs WHERE run_id = ?", [run_id]).fetchall()
        run = found[0] if found else None
        if run is None:
            raise UserError(f"no backtest run {run_id!r} in the warehouse", field="run_id")
        run_info = dict(zip([d[0] for d in con.description], run, strict=True))
        # hard_failure: the one definition (warehouse.metrics), as the canary and the views count it
        results = query_frame(
            con, f"SELECT *, {BACKTEST_HARD_FAILURE} AS hard_failure FROM backtest_results WHERE run_id = ?", [run_id]
        )
        diff = query_frame(
            con,
            "SELECT * FROM behaviour_diff WHERE run_id = ? ORDER BY regressions DESC, wins DESC, cases DESC",
            [run_id],
        )
    return run_info, results, diff


def latest_run_id(warehouse: str | Path | None, candidate: str, baseline: str | None = None) -> str:
    with read_connection(warehouse) as con:
        query = "SELECT run_id FROM backtest_runs WHERE candidate_version = ?"
        params: list[Any] = [candidate]
        if baseline:
            query += " AND baseline_version = ?"
            params.append(baseline)
        row = con.execute(query + " ORDER BY finished_at DESC LIMIT 1", params).fetchone()
    if row is None:
        raise UserError(
            f"no backtest of {candidate} yet: run `prompt-release backtest --candidate {candidate}` first",
            field="candidate",
        )
    return row[0]


def _accuracy_by_tag(results: pl.DataFrame) -> list[dict[str, Any]]:
    rows = (
        results.filter(pl.col("task_correct").is_not_null())
        .with_columns(pl.col("tags").str.json_decode(pl.List(pl.String)))
        .explode("tags")
        .filter(
            pl.col("tags").str.starts_with("intent:")
            | pl.col("tags").str.starts_with("source:")
            | pl.col("tags").str.starts_with("failure_class:")
        )
        .group_by("tags", "role")
        .agg(pl.col("task_correct").cast(pl.Float64).mean().alias("accuracy"), pl.len().alias("n"))
    )
    table: dict[str, dict[str, Any]] = {}
    for row in rows.iter_rows(named=True):
        entry = table.setdefault(row["tags"], {"tag": row["tags"], "baseline": None, "candidate": None, "n": 0})
        entry[row["role"]] = row["accuracy"]
        entry["n"] = max(entry["n"], row["n"])
    return sorted(table.values(), key=lambda r: (-r["n"], r["tag"]))


def _latencies(results: pl.DataFrame, role: str, limit: int = 2000) -> list[float]:
    values = results.filter((pl.col("role") == role) & ~pl.col("replayed"))["latency_ms"].drop_nulls()
    return [round(float(v), 2) for v in values.head(limit)]


def _gate_row(result: Any, unit: str | None, n_cases: int) -> dict[str, Any]:
    decided = result.outcome != "inconclusive"
    return {
        "metric": result.metric,
        "severity": result.severity,
        "threshold": result.threshold,
        "rule": result.rule,
        "baseline": result.baseline_value,
        "candidate": result.candidate_value,
        "interval": [result.interval_lower, result.interval_upper],
        "estimate": result.effect,
        "interval_of": result.interval_of,
        "interval_unit": "rate"
        if result.interval_of == "candidate" and unit == "rate"
        else ("ratio" if result.interval_of == "ratio" else unit),
        "threshold_value": result.threshold_value,
        "outcome": result.outcome,
        "n": result.n,
        "method": result.method,
        "p_value": result.p_value,
        "reason": result.reason,
        "unit": unit,
        "cases": n_cases,
        # An accuracy gate can read only the cases with an expected answer: its n is the labelled ones.
        "labelled": result.n if ACCURACY_PATTERN.match(result.metric) else None,
        "decides_at": result.n if decided else result.cases_to_decide,
    }


def _unit(metric: str) -> str | None:
    if metric.endswith("_latency"):
        return "ms"
    if metric == "cost_per_success":
        return "usd"
    if metric in ("tokens_per_success", "judge_score"):
        return None
    return "rate"


def _freeze(decision: GateDecision) -> dict[str, Any]:
    """Why the gate froze, gate by gate (the verdict line already says it froze), and the cases needed."""
    gates = [g for g in decision.gates if g.metric in decision.inconclusive_gates]
    return {"cases_needed": decision.cases_to_decide, "reason": "; ".join(f"{g.metric}: {g.reason}" for g in gates)}


def _p(values: pl.Series, q: float) -> float | None:
    values = values.drop_nulls()
    return round(float(values.quantile(q, "linear")), 1) if values.len() else None


def endpoint_section(run: dict[str, Any], results: pl.DataFrame) -> dict[str, Any]:
    """Which endpoint and served model produced each arm, at what concurrency, and its timing:
    the server's own figure beside the client's (queueing included) where the server gives one."""
    arms = {}
    for role in ("candidate", "baseline"):
        rows = results.filter(pl.col("role") == role)
        fresh = rows.filter(~pl.col("replayed"))
        served = (
            sorted(m for m in fresh["served_model"].drop_nulls().unique().to_list())
            if "served_model" in rows.columns
            else []
        )
        arm = {
            "served_model": run.get(f"{role}_served_model"),
            "answers_model": served,  # what the answers themselves say
            "answers": fresh.height,  # from the endpoint, as stored (a rerun that reproduces them keeps them)
            "cached": int(fresh["cached"].sum()) if fresh.height else 0,
            "replayed_from_production": rows.height - fresh.height,
        }
        if "client_ms" in rows.columns:
            arm.update(
                {
                    "client_p50_ms": _p(fresh["client_ms"], 0.5),
                    "client_p95_ms": _p(fresh["client_ms"], 0.95),
                    "server_p50_ms": _p(fresh["server_ms"], 0.5),
                    "server_p95_ms": _p(fresh["server_ms"], 0.95),
                }
            )
        arms[role] = arm
    return {
        "base_url": run.get("endpoint"),
        "max_concurrency": run.get("max_concurrency"),
        "lowest_concurrency": run.get("lowest_concurrency"),
        "calls_made": run.get("calls_made"),
        "calls_cached": run.get("calls_cached"),
        "arms": arms,
    }


def build_report(
    run: dict[str, Any], results: pl.DataFrame, diff: pl.DataFrame, spec: GateSpec, decision: GateDecision
) -> GateReport:
    spec_json = spec.model_dump(mode="json", exclude_none=True)
    # The run id names the packages, inputs and endpoint; the results hash the answers themselves
    # (a rerun of a sampling model may answer otherwise): a report id names one body of evidence.
    report_id = (
        "gr_"
        + hashlib.sha256(
            json.dumps([run["run_id"], run.get("results_hash"), spec_json], sort_keys=True).encode()
        ).hexdigest()[:16]
    )
    regressions = [
        {
            "group": f"{r['group_kind']}:{r['group_value']}",
            "cases": r["cases"],
            "regressions": r["regressions"],
            "wins": r["wins"],
            "both_failing": r["both_failing"],
            "disagreements": r["disagreements"],
            "examples": json.loads(r["examples"] or "[]"),
        }
        for r in diff.filter(pl.col("group_kind") != "all").head(10).iter_rows(named=True)
    ]
    reason = decision.summary
    return GateReport.model_validate(
        {
            "report_id": report_id,
            "verdict": decision.verdict,
            "exit_code": decision.exit_code,
            "reason": reason,
            "created_at": datetime.now(UTC).isoformat(),
            "run_id": run["run_id"],
            "workflow": run["workflow"],
            "candidate": {"version": run["candidate_version"], "hash": run["candidate_hash"]},
            "baseline": {"version": run["baseline_version"], "hash": run["baseline_hash"]},
            "dataset": {"version": run["dataset_version"], "hash": run["dataset_hash"]},
            "history_cases": run["history_cases"],
            "golden_cases": run["golden_cases"],
            "rubric_version": run.get("rubric_version"),
            "rubric_hash": run.get("rubric_hash"),
            "judge_version": run.get("judge_version"),
            "judge_calibration": json.loads(run["judge_calibration"]) if run.get("judge_calibration") else None,
            "confidence": decision.confidence,
            "n_cases": decision.n_cases,
            "gates": [_gate_row(g, _unit(g.metric), decision.n_cases) for g in decision.gates],
            "failed_gates": decision.failed_gates,
            "inconclusive_gates": decision.inconclusive_gates,
            "soft_warnings": decision.soft_warnings,
            "freeze": _freeze(decision) if decision.verdict == "freeze" else None,
            "not_run": run.get("calls_not_run") or 0,
            "evidence": {
                "calls_made": run.get("calls_made"),
                "calls_cached": run.get("calls_cached"),
                "calls_replayed": run.get("calls_replayed"),
                "calls_saved": run.get("calls_saved") or 0,
                "cases_planned": run.get("cases_planned"),
                "stop_reason": run.get("stop_reason"),
                "spent_tokens": run.get("spent_tokens"),
                "spent_usd": run.get("spent_usd"),
            },
            "regressions": regressions,
            "accuracy_by_tag": _accuracy_by_tag(results),
            "latency": {"baseline": _latencies(results, "baseline"), "candidate": _latencies(results, "candidate")},
            "endpoint": endpoint_section(run, results),
            "spec": spec_json,
        }
    )


def evaluate_run(
    run_id: str,
    spec: GateSpec | dict[str, Any],
    *,
    warehouse: str | Path | None = None,
    reports_dir: str | Path | None = None,
) -> GateReport:
    """Decide a backtest run against a spec; store and write the report; return it (with file paths)."""
    if isinstance(spec, dict):
        spec = gate_spec_from_dict(spec)
    run, results, diff = load_run(warehouse, run_id)
    if spec.baseline_prompt and spec.baseline_prompt != run["baseline_version"]:
        raise UserError(
            f"gate spec compares against {spec.baseline_prompt} but run {run_id} used {run['baseline_version']}",
            field="baseline_prompt",
        )
    workflow = run["workflow"]
    task = task_metric(spec)
    candidate = per_case_frame(results.filter(pl.col("role") == "candidate"), task)
    baseline = per_case_frame(results.filter(pl.col("role") == "baseline"), task)
    provenance = {
        k: run[k]
        for k in (
            "run_id",
            "candidate_hash",
            "baseline_hash",
            "dataset_version",
            "dataset_hash",
            "rubric_version",
            "rubric_hash",
            "judge_version",
            "judge_hash",
        )
    }
    decision = decide(spec, candidate, baseline, provenance=provenance)
    report = build_report(run, results, diff, spec, decision)
    out_dir = Path(reports_dir) if reports_dir else config.reports_dir(warehouse)
    paths = write_report(report, out_dir)
    report = report.model_copy(update={"paths": {k: str(v) for k, v in paths.items()}})
    stored = report.to_json()
    with write_transaction(warehouse, scope=Scope.of(("gate_reports",))) as con:
        con.execute("DELETE FROM gate_reports WHERE report_id = ?", [report.report_id])
        con.execute(
            "INSERT INTO gate_reports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                report.report_id,
                run_id,
                workflow,
                run["candidate_version"],
                run["candidate_hash"],
                run["baseline_version"],
                run["baseline_hash"],
                run["dataset_version"],
                decision.verdict,
                decision.exit_code,
                report.reason,
                json.dumps(stored["spec"]),
                json.dumps(stored, default=str),
                stored["paths"]["html"],
                datetime.now(UTC),
            ],
        )
    return report


def latest_report(warehouse: str | Path | None, candidate: str) -> GateReport | None:
    with read_connection(warehouse) as con:
        row = con.execute(
            "SELECT report FROM gate_reports WHERE candidate_version = ? ORDER BY created_at DESC LIMIT 1", [candidate]
        ).fetchone()
    return GateReport.model_validate_json(row[0]) if row else None
