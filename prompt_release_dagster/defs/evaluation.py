"""Per-candidate evaluation: `backtest` -> `behaviour_diff` -> `gate_report`, the sensor that
starts it for every new candidate, the nightly re-run, and the production drift check.

One dynamic partition per candidate version (`support_router:v1.6.0`). The
gate report's metadata puts the verdict first. A reject or a freeze is an
outcome, not a crash: the report materialises with its verdict, and its
per-partition check `hard_gates_pass` passes on promote and warns (never
blocks, never fails the run) otherwise, so the check's partitions show which
candidates passed. The promotion is held back by the decision itself:
`gate_sensor` promotes only reports whose verdict is promote.

No `from __future__ import annotations`: Dagster inspects the annotations.
"""

import json
import warnings
from pathlib import Path
from typing import Optional

import dagster as dg

from prompt_release.config import sensor_interval_s
from prompt_release.evaluation.backtest import BacktestSettings, run_backtest, write_behaviour_diff
from prompt_release.evaluation.behaviour_diff import diff_markdown
from prompt_release.gates.adaptive import AdaptiveGate
from prompt_release.gates.evaluate import evaluate_run, latest_run_id, load_spec_for, spec_path_for
from prompt_release.gates.history import latest_verdicts, verdicts_markdown
from prompt_release.gates.report import render_markdown, verdict_line
from prompt_release.markdown import md_table
from prompt_release.registry import Registry
from prompt_release.release.drift import drift_markdown, drift_rows
from prompt_release.release.watch import open_candidates
from prompt_release_dagster.partitions import CANDIDATES
from prompt_release_dagster.resources import LLM_POOL, WAREHOUSE_POOL, LLMResource, RegistryResource, WarehouseResource


class BacktestConfig(dg.Config):
    baseline: str = "production"
    dataset: Optional[str] = None
    history_days: int = 7
    history_size: int = 200
    samples: int = 1
    max_tokens: Optional[int] = None
    max_usd: Optional[float] = None
    # By default the backtest stops once every hard gate is decided (gates/adaptive.py);
    # full answers every case (the nightly re-run does, to watch the whole set).
    full: bool = False


def _progress_logger(context: dg.AssetExecutionContext, every_percent: int = 10):
    state = {"next": every_percent}

    def progress(done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if percent >= state["next"] or done == total:
            context.log.info(f"backtest progress: {done}/{total} calls ({percent}%)")
            state["next"] = (percent // every_percent + 1) * every_percent

    return progress


@dg.asset(
    partitions_def=CANDIDATES,
    deps=[
        dg.AssetDep("golden_dataset", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("traces", partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep("prompt_versions"),
    ],
    pool=LLM_POOL,
    group_name="evaluation",
    kinds={"openai", "duckdb"},
    description="Candidate vs baseline (default: production) on the newest golden dataset plus replayed "
    "production history, through the model endpoint; results in backtest_results.",
)
def backtest(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    warehouse: WarehouseResource,
    registry: RegistryResource,
    llm: LLMResource,
) -> dg.MaterializeResult:
    settings = BacktestSettings(
        candidate=context.partition_key,
        baseline=config.baseline,
        dataset=config.dataset,
        history_days=config.history_days,
        history_size=config.history_size,
        samples=config.samples,
        max_tokens=config.max_tokens,
        max_usd=config.max_usd,
    )
    has_spec = spec_path_for(registry.path, context.partition_key) is not None
    stopping = (
        None if config.full or not has_spec else AdaptiveGate(load_spec_for(registry.path, context.partition_key))
    )
    with llm.endpoint(log=context.log.info) as llm_settings:
        outcome = run_backtest(
            settings,
            registry_root=registry.path,
            warehouse=warehouse.path,
            llm_settings=llm_settings,
            progress=_progress_logger(context),
            log=context.log.info,
            stopping=stopping,
        )
    # Roles report different statistics (the judge's are not the arms'): one column per name seen.
    columns = list(dict.fromkeys(name for stats in outcome.summary.values() for name in stats))
    table = md_table(
        ["role", *columns], [(role, *(stats.get(name) for name in columns)) for role, stats in outcome.summary.items()]
    )
    return dg.MaterializeResult(
        metadata={
            "run_id": outcome.run_id,
            "status": outcome.status,
            "baseline": outcome.baseline,
            "dataset": outcome.dataset_version or "history only",
            "cases": outcome.cases,
            "calls_made": outcome.calls_made,
            "calls_cached": outcome.calls_cached,
            "calls_replayed": outcome.calls_replayed,
            "calls_not_run_budget": outcome.calls_not_run,
            "calls_saved": outcome.calls_saved,
            "stopped": outcome.stop_reason or "ran the whole set",
            "summary": dg.MetadataValue.md(table),
        }
    )


@dg.asset(
    partitions_def=CANDIDATES,
    deps=[backtest],
    pool=WAREHOUSE_POOL,
    group_name="evaluation",
    kinds={"duckdb"},
    description="Regressions, wins, both failing and disagreements per tag / intent / failure class.",
)
def behaviour_diff(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    run_id = latest_run_id(warehouse.path, context.partition_key)
    diff = write_behaviour_diff(run_id, warehouse=warehouse.path)
    overall = diff.filter(diff["group_kind"] == "all").to_dicts()
    overall = overall[0] if overall else {"cases": 0, "regressions": 0, "wins": 0}
    return dg.MaterializeResult(
        metadata={
            "run_id": run_id,
            "regressions": int(overall["regressions"]),
            "wins": int(overall["wins"]),
            "cases": int(overall["cases"]),
            "groups": dg.MetadataValue.md(diff_markdown(diff)),
        }
    )


# One check result per candidate partition, so the check's partitions show which candidates passed.
# Partitioned checks are a Dagster preview feature; we use it knowingly, so its warning is not printed.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    GATE_VERDICT_CHECK = dg.AssetCheckSpec(
        "hard_gates_pass",
        asset="gate_report",
        partitions_def=CANDIDATES,
        description="the candidate's verdict: passes on promote (every hard gate passes), warns on reject or "
        "freeze; the result's description is the verdict line",
    )


@dg.asset(
    partitions_def=CANDIDATES,
    deps=[behaviour_diff],
    pool=WAREHOUSE_POOL,
    group_name="evaluation",
    kinds={"duckdb"},
    description="The release decision: every gate with its interval, promote / reject / freeze.",
    check_specs=[GATE_VERDICT_CHECK],
)
def gate_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource, registry: RegistryResource):
    candidate = context.partition_key
    run_id = latest_run_id(warehouse.path, candidate)
    report = evaluate_run(run_id, load_spec_for(registry.path, candidate), warehouse=warehouse.path)
    hard = [g for g in report.gates if g.severity == "hard"]
    context.log.info(verdict_line(report))
    yield dg.MaterializeResult(
        metadata={
            # Verdict first: the UI lists metadata in this order.
            "verdict": verdict_line(report),
            "report": dg.MetadataValue.md(render_markdown(report)),
            "report_id": report.report_id,
            "html_report": dg.MetadataValue.url(Path(report.paths["html"]).resolve().as_uri()),
            # Every candidate's newest verdict, so the asset page shows them all without opening a partition.
            "all_candidates": dg.MetadataValue.md(verdicts_markdown(latest_verdicts(warehouse.path))),
            "run_id": run_id,
            "candidate_hash": report.candidate.hash,
            "baseline": report.baseline.version,
            "dataset": report.dataset.version or "history only",
            "cases": report.n_cases,
        }
    )
    # A verdict other than promote is a warning on this candidate, not an error of the pipeline.
    yield dg.AssetCheckResult(
        check_name="hard_gates_pass",
        passed=report.verdict == "promote",
        severity=dg.AssetCheckSeverity.WARN,
        description=verdict_line(report),
        metadata={
            "verdict": report.verdict.upper(),
            "candidate": candidate,
            "gates": dg.MetadataValue.md("\n".join(f"- {g.metric}: {g.outcome}" for g in hard)),
        },
    )


evaluate_candidate = dg.define_asset_job(
    "evaluate_candidate",
    selection=[backtest, behaviour_diff, gate_report],
    description="Backtest one candidate, diff its behaviour, decide its gate report.",
)


@dg.sensor(
    job=evaluate_candidate,
    minimum_interval_seconds=sensor_interval_s(60),
    description="A new candidate version in the registry gets a partition and an evaluation run.",
)
def candidate_sensor(context: dg.SensorEvaluationContext, registry: RegistryResource):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    found = open_candidates(Registry(registry.path))
    new = {vid: h for vid, h in found.items() if seen.get(vid) != h}
    if not new:
        return dg.SkipReason(f"no new candidate ({len(found)} open, all evaluated)")
    context.update_cursor(json.dumps({**seen, **new}, sort_keys=True))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=vid, run_key=f"{vid}@{h}") for vid, h in sorted(new.items())],
        dynamic_partitions_requests=[CANDIDATES.build_add_request(sorted(new))],
    )


@dg.asset(
    deps=[gate_report],
    pool=WAREHOUSE_POOL,
    group_name="evaluation",
    kinds={"duckdb"},
    description="Drift: each production version's pass rate in its newest backtest vs the previous night's, "
    "with a Newcombe interval; flagged when it dropped (model, data or traffic changed under an unchanged prompt).",
    check_specs=[
        dg.AssetCheckSpec(
            "no_production_drift",
            asset="production_drift",
            description="no production version's pass rate dropped significantly",
        )
    ],
)
def production_drift(warehouse: WarehouseResource):
    rows = drift_rows(warehouse.path)
    drifted = [r.version for r in rows if r.dropped]
    yield dg.MaterializeResult(
        metadata={"drifted": len(drifted), "versions": dg.MetadataValue.md(drift_markdown(rows))}
    )
    yield dg.AssetCheckResult(
        check_name="no_production_drift",
        passed=not drifted,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"drifted_versions": ", ".join(drifted) or "none"},
    )


nightly_drift_job = dg.define_asset_job("production_drift_job", selection=[production_drift])


@dg.schedule(
    cron_schedule="0 3 * * *",
    job=evaluate_candidate,
    execution_timezone="UTC",
    description="Nightly: re-run every open candidate's backtest on the newest golden version plus the "
    "last 7 days of history (answers cached; new inputs are new calls).",
)
def nightly_backtests(context: dg.ScheduleEvaluationContext, registry: RegistryResource):
    night = context.scheduled_execution_time.strftime("%Y-%m-%d")
    candidates = sorted(open_candidates(Registry(registry.path)))
    if not candidates:
        return dg.SkipReason("no open candidate")
    known = set(context.instance.get_dynamic_partitions(CANDIDATES.name))
    missing = [c for c in candidates if c not in known]
    if missing:
        context.instance.add_dynamic_partitions(CANDIDATES.name, missing)
    full_set = {"ops": {"backtest": {"config": {"full": True}}}}
    return [dg.RunRequest(partition_key=c, run_key=f"nightly:{night}:{c}", run_config=full_set) for c in candidates]


@dg.schedule(
    cron_schedule="30 4 * * *",
    job=nightly_drift_job,
    execution_timezone="UTC",
    description="Nightly, after the backtests: flag a production version whose pass rate dropped.",
)
def nightly_drift(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"drift:{context.scheduled_execution_time:%Y-%m-%d}")
