"""Per-candidate evaluation: `backtest` -> `behaviour_diff` -> `gate_report`, the sensor that
starts it for every new candidate, the nightly re-run, and the production drift check.

One dynamic partition per candidate version (`support_router:v1.6.0`). The
gate report's metadata puts the verdict first; its hard gates are a blocking
check, so a rejected or frozen candidate stops the chain visibly.

No `from __future__ import annotations`: Dagster inspects the annotations.
"""

import json
from typing import Optional

import dagster as dg

from pipelines.resources import LLM_POOL, WAREHOUSE_POOL, LLMResource, RegistryResource, WarehouseResource
from prompt_release.evaluation.backtest import BacktestSettings, run_backtest, write_behaviour_diff
from prompt_release.evaluation.behaviour_diff import diff_markdown
from prompt_release.gates.evaluate import evaluate_run, latest_run_id, load_spec_for
from prompt_release.gates.report import render_markdown, verdict_line
from prompt_release.gates.statistics import newcombe_unpaired_difference
from prompt_release.registry import list_versions

CANDIDATES = dg.DynamicPartitionsDefinition(name="candidates")
OPEN_STATUSES = ("candidate", "approved")


class BacktestConfig(dg.Config):
    baseline: str = "production"
    dataset: Optional[str] = None
    history_days: int = 7
    history_size: int = 200
    samples: int = 1
    max_tokens: Optional[int] = None
    max_usd: Optional[float] = None


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
def backtest(context: dg.AssetExecutionContext, config: BacktestConfig, warehouse: WarehouseResource,
             registry: RegistryResource, llm: LLMResource) -> dg.MaterializeResult:
    settings = BacktestSettings(candidate=context.partition_key, baseline=config.baseline, dataset=config.dataset,
                                history_days=config.history_days, history_size=config.history_size,
                                samples=config.samples, max_tokens=config.max_tokens, max_usd=config.max_usd)
    with llm.endpoint(log=context.log.info) as llm_settings:
        outcome = run_backtest(settings, registry_root=registry.path, warehouse=warehouse.path,
                               llm_settings=llm_settings, progress=_progress_logger(context), log=context.log.info)
    rows = [(role, *(f"{v:.3f}" if isinstance(v, float) else v for v in stats.values()))
            for role, stats in outcome.summary.items()]
    headers = ["role", *next(iter(outcome.summary.values()), {}).keys()]
    table = "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
                      + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
    return dg.MaterializeResult(metadata={
        "run_id": outcome.run_id,
        "status": outcome.status,
        "baseline": outcome.baseline,
        "dataset": outcome.dataset_version or "history only",
        "cases": outcome.cases,
        "calls_made": outcome.calls_made,
        "calls_cached": outcome.calls_cached,
        "calls_replayed": outcome.calls_replayed,
        "calls_not_run_budget": outcome.calls_not_run,
        "summary": dg.MetadataValue.md(table),
    })


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
    return dg.MaterializeResult(metadata={
        "run_id": run_id,
        "regressions": int(overall["regressions"]),
        "wins": int(overall["wins"]),
        "cases": int(overall["cases"]),
        "groups": dg.MetadataValue.md(diff_markdown(diff)),
    })


@dg.asset(
    partitions_def=CANDIDATES,
    deps=[behaviour_diff],
    pool=WAREHOUSE_POOL,
    group_name="evaluation",
    kinds={"duckdb"},
    description="The release decision: every gate with its interval, promote / reject / freeze.",
    check_specs=[dg.AssetCheckSpec("hard_gates_pass", asset="gate_report", blocking=True,
                                   description="every hard gate of the candidate's gate spec passes")],
)
def gate_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource, registry: RegistryResource):
    candidate = context.partition_key
    run_id = latest_run_id(warehouse.path, candidate)
    report = evaluate_run(run_id, load_spec_for(registry.path, candidate), warehouse=warehouse.path)
    hard = [g for g in report["gates"] if g["severity"] == "hard"]
    context.log.info(verdict_line(report))
    yield dg.MaterializeResult(metadata={
        # Verdict first: the UI lists metadata in this order.
        "verdict": verdict_line(report),
        "report": dg.MetadataValue.md(render_markdown(report)),
        "report_id": report["report_id"],
        "html_report": dg.MetadataValue.path(report["paths"]["html"]),
        "run_id": run_id,
        "candidate_hash": report["candidate"]["hash"],
        "baseline": report["baseline"]["version"],
        "dataset": report["dataset"]["version"] or "history only",
        "cases": report["n_cases"],
    })
    yield dg.AssetCheckResult(
        check_name="hard_gates_pass",
        passed=all(g["outcome"] == "pass" for g in hard),
        metadata={"verdict": report["verdict"],
                  "gates": dg.MetadataValue.md("\n".join(f"- {g['metric']}: {g['outcome']}" for g in hard))},
    )


evaluate_candidate = dg.define_asset_job(
    "evaluate_candidate", selection=[backtest, behaviour_diff, gate_report],
    description="Backtest one candidate, diff its behaviour, decide its gate report.",
)


def open_candidates(registry_root) -> dict[str, str]:
    """version id -> package hash of every version a release decision is still open for."""
    return {p.version_id: p.package_hash for p in list_versions(registry_root) if p.status in OPEN_STATUSES}


@dg.sensor(job=evaluate_candidate, minimum_interval_seconds=60,
           description="A new candidate version in the registry gets a partition and an evaluation run.")
def candidate_sensor(context: dg.SensorEvaluationContext, registry: RegistryResource):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    found = open_candidates(registry.path)
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
    check_specs=[dg.AssetCheckSpec("no_production_drift", asset="production_drift",
                                   description="no production version's pass rate dropped significantly")],
)
def production_drift(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    with warehouse.read() as con:
        rows = con.execute(
            """
            WITH per_run AS (
                SELECT r.baseline_version AS version, r.run_id, r.finished_at,
                       count(*) FILTER (WHERE b.passed) AS passed, count(b.passed) AS n
                FROM backtest_runs r JOIN backtest_results b ON b.run_id = r.run_id AND b.role = 'baseline'
                GROUP BY ALL
            ), nights AS (
                SELECT version, CAST(finished_at AS DATE) AS night, sum(passed) AS passed, sum(n) AS n
                FROM per_run GROUP BY ALL
            )
            SELECT version, night, passed, n,
                   lag(night) OVER w, lag(passed) OVER w, lag(n) OVER w
            FROM nights WINDOW w AS (PARTITION BY version ORDER BY night)
            QUALIFY row_number() OVER (PARTITION BY version ORDER BY night DESC) = 1
            ORDER BY version
            """
        ).fetchall()
    table = ["| production version | night | pass rate | previous | change (95% CI) | drift |", "|---|---|---:|---:|---|---|"]
    drifted = []
    for version, night, passed, n, prev_night, prev_passed, prev_n in rows:
        if not prev_n or not n:
            table.append(f"| {version} | {night} | {passed / n:.1%} | – | first night | – |")
            continue
        diff = newcombe_unpaired_difference(int(passed), int(n), int(prev_passed), int(prev_n))
        dropped = diff.upper < 0
        if dropped:
            drifted.append(version)
        table.append(f"| {version} | {night} | {passed / n:.1%} | {prev_passed / prev_n:.1%} ({prev_night}) "
                     f"| {diff.estimate:+.1%} [{diff.lower:+.1%}, {diff.upper:+.1%}] | {'**DROP**' if dropped else 'no'} |")
    yield dg.MaterializeResult(metadata={"drifted": len(drifted), "versions": dg.MetadataValue.md("\n".join(table))})
    yield dg.AssetCheckResult(check_name="no_production_drift", passed=not drifted,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"drifted_versions": ", ".join(drifted) or "none"})


nightly_drift_job = dg.define_asset_job("production_drift_job", selection=[production_drift])


@dg.schedule(cron_schedule="0 3 * * *", job=evaluate_candidate, execution_timezone="UTC",
             description="Nightly: re-run every open candidate's backtest on the newest golden version plus the "
             "last 7 days of history (answers cached; new inputs are new calls).")
def nightly_backtests(context: dg.ScheduleEvaluationContext, registry: RegistryResource):
    night = context.scheduled_execution_time.strftime("%Y-%m-%d")
    candidates = sorted(open_candidates(registry.path))
    if not candidates:
        return dg.SkipReason("no open candidate")
    known = set(context.instance.get_dynamic_partitions(CANDIDATES.name))
    missing = [c for c in candidates if c not in known]
    if missing:
        context.instance.add_dynamic_partitions(CANDIDATES.name, missing)
    return [dg.RunRequest(partition_key=c, run_key=f"nightly:{night}:{c}") for c in candidates]


@dg.schedule(cron_schedule="30 4 * * *", job=nightly_drift_job, execution_timezone="UTC",
             description="Nightly, after the backtests: flag a production version whose pass rate dropped.")
def nightly_drift(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"drift:{context.scheduled_execution_time:%Y-%m-%d}")


ASSETS = [backtest, behaviour_diff, gate_report, production_drift]
JOBS = [evaluate_candidate, nightly_drift_job]
SENSORS = [candidate_sensor]
SCHEDULES = [nightly_backtests, nightly_drift]
