"""Dagster glue for the release: version_metrics, shadow_comparison, canary_analysis, the promote / roll_forward /
rollback jobs (the `rollback` job runs `abort_canary`), and the gate and canary sensors.
Thin: every decision is made in `prompt_release.release`.

No `from __future__ import annotations` here: Dagster inspects the context and config annotations.
"""

from typing import Optional

import dagster as dg

from prompt_release.config import canary_min_duration_s, sensor_interval_s
from prompt_release.gates.shadow import compare_shadow
from prompt_release.markdown import md_table
from prompt_release.registry import Registry
from prompt_release.release.canary import abort_canary, analyse_canary, roll_forward
from prompt_release.release.metrics import compute_version_metrics
from prompt_release.release.promotion import apply_gate_report, load_gate_report
from prompt_release.release.watch import ReleaseAction, WatchCursor, canary_actions, gate_report_actions
from prompt_release.warehouse.registry_mirror import sync_to_warehouse
from prompt_release_dagster.partitions import DAILY, PROMPTS
from prompt_release_dagster.resources import WAREHOUSE_POOL, LLMResource, RegistryResource, WarehouseResource

ACTOR = "dagster"

# ---------------------------------------------------------------------------- assets


@dg.asset(
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetKey("traces"), dg.AssetKey("failures")],
    pool=WAREHOUSE_POOL,
    group_name="release",
    description="Daily metrics per prompt version: success, hard failures, unsafe tool calls, escalation, "
    "negative feedback, p50/p95/p99 latency, cost per success, retries, fallbacks, steps and tool calls per trace.",
)
def version_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    days = context.partition_keys
    rows = sum(compute_version_metrics(warehouse.path, day) for day in days)
    with warehouse.read() as con:
        table = con.execute(
            """SELECT prompt_version, sum(calls), round(sum(success_rate * calls) / sum(calls), 4),
                      sum(hard_failures), sum(unsafe_tool_calls), round(max(p95_latency_ms), 1),
                      round(avg(cost_per_success_usd), 6), round(avg(tool_calls_per_trace), 2)
               FROM version_metrics WHERE day BETWEEN ? AND ? GROUP BY prompt_version ORDER BY prompt_version""",
            [days[0], days[-1]],
        ).fetchall()
    heading = f"Days {days[0]} .. {days[-1]}" if len(days) > 1 else f"Day {days[0]}"
    versions = md_table(
        [
            "version",
            "calls",
            "success rate",
            "hard failures",
            "unsafe calls",
            "p95 ms (max)",
            "cost/success USD",
            "tool calls/trace",
        ],
        table,
        align_right=range(1, 8),
    )
    return dg.MaterializeResult(
        metadata={"dagster/row_count": rows, "versions": dg.MetadataValue.md(heading + "\n\n" + versions)}
    )


@dg.asset(
    partitions_def=PROMPTS,
    deps=[dg.AssetDep("traces", partition_mapping=dg.AllPartitionMapping()), dg.AssetKey("prompt_versions")],
    group_name="release",
    description="The prompt's shadow version vs production on the same live requests (shadow traces the runtime "
    "client logged), decided with the backtest's gate statistics; evidence before a canary, never a promotion.",
)
def shadow_comparison(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, registry: RegistryResource
) -> dg.MaterializeResult:
    prompt_id = context.partition_key
    comparisons = compare_shadow(warehouse.path, registry.path, prompt_id)
    if not comparisons:
        return dg.MaterializeResult(
            metadata={"pairs": 0, "summary": dg.MetadataValue.md(f"No shadow traffic for {prompt_id} yet.")}
        )
    for comparison in comparisons:
        context.log.info("%s vs %s: %s", comparison.candidate, comparison.baseline, comparison.decision.summary)
    newest = comparisons[-1]
    return dg.MaterializeResult(
        metadata={
            "pairs": sum(c.pairs for c in comparisons),
            "candidate": newest.candidate,
            "production": newest.baseline,
            "would": newest.decision.verdict,
            "summary": dg.MetadataValue.md("\n\n".join(c.markdown() for c in comparisons)),
        }
    )


class CanaryAnalysisConfig(dg.Config):
    # None: PROMPT_RELEASE_CANARY_MIN_DURATION_S if set, else the candidate's release policy (min_duration).
    min_duration_s: Optional[float] = None
    recompute_failures: bool = True


@dg.asset(
    partitions_def=PROMPTS,
    deps=[dg.AssetDep("traces", partition_mapping=dg.AllPartitionMapping()), dg.AssetKey("prompt_versions")],
    pool=WAREHOUSE_POOL,
    group_name="release",
    description="One look at the running canary of a prompt: candidate vs production on the same segments since "
    "the canary started, and the always-valid decision (roll_forward / abort / freeze) in canary_decisions.",
)
def canary_analysis(
    context: dg.AssetExecutionContext,
    config: CanaryAnalysisConfig,
    warehouse: WarehouseResource,
    registry: RegistryResource,
) -> dg.MaterializeResult:
    prompt_id = context.partition_key
    min_duration_s = config.min_duration_s if config.min_duration_s is not None else canary_min_duration_s()
    analysis = analyse_canary(
        warehouse.path,
        Registry(registry.path),
        prompt_id,
        min_duration_s=min_duration_s,
        recompute_failures=config.recompute_failures,
    )
    if analysis is None:
        return dg.MaterializeResult(
            metadata={"decision": "no canary", "summary": dg.MetadataValue.md(f"{prompt_id} has no live canary.")}
        )
    context.log.info("%s: %s (%s)", analysis.decision_id, analysis.action, analysis.decision.reason)
    return dg.MaterializeResult(
        metadata={
            "decision": analysis.action,
            "decision_id": analysis.decision_id,
            "candidate": analysis.candidate_version,
            "production": analysis.production_version,
            "candidate_traces": analysis.decision.candidate_traces,
            "production_traces": analysis.decision.production_traces,
            "gate_report_id": analysis.gate_report_id or "none",
            "summary": dg.MetadataValue.md(analysis.markdown()),
        }
    )


# ---------------------------------------------------------------------------- jobs


class PromoteConfig(dg.Config):
    report_id: str
    llm_base_url: Optional[str] = None  # None: OPENAI_BASE_URL
    sample_size: int = 50


@dg.op(pool=WAREHOUSE_POOL, description="Apply one gate report: staging, staging check, approval, canary; or reject.")
def apply_gate_report_op(
    context: dg.OpExecutionContext,
    config: PromoteConfig,
    warehouse: WarehouseResource,
    registry: RegistryResource,
    llm: LLMResource,
) -> str:
    report = load_gate_report(warehouse.path, config.report_id)
    opened = Registry(registry.path)
    # The staging check calls the model: the configured endpoint, else the embedded simulator.
    if config.llm_base_url:
        llm = llm.model_copy(update={"base_url": config.llm_base_url})
    with llm.endpoint(log=context.log.info) as settings:
        outcome = apply_gate_report(
            opened,
            report,
            actor=f"{ACTOR}:promote",
            warehouse=warehouse.path,
            llm_settings=settings,
            sample_size=config.sample_size,
        )
    sync_to_warehouse(opened, warehouse.path)
    context.add_output_metadata(
        {"state": outcome.state, "candidate": outcome.candidate, "summary": dg.MetadataValue.md(outcome.markdown())}
    )
    context.log.info("%s: %s", outcome.state, outcome.reason)
    if outcome.state == "staging_failed":
        raise dg.Failure(description=outcome.reason, metadata={"summary": dg.MetadataValue.md(outcome.markdown())})
    return outcome.state


class CanaryDecisionConfig(dg.Config):
    prompt_id: str
    decision_id: str


@dg.op(pool=WAREHOUSE_POOL, description="Production label -> the canary's candidate; canary removed.")
def roll_forward_op(
    context: dg.OpExecutionContext,
    config: CanaryDecisionConfig,
    warehouse: WarehouseResource,
    registry: RegistryResource,
) -> str:
    opened = Registry(registry.path)
    outcome = roll_forward(opened, warehouse.path, config.prompt_id, config.decision_id, actor=f"{ACTOR}:roll_forward")
    sync_to_warehouse(opened, warehouse.path)
    context.add_output_metadata({"state": outcome.state, "summary": dg.MetadataValue.md(outcome.markdown())})
    return outcome.state


@dg.op(pool=WAREHOUSE_POOL, description="Canary removed, candidate rejected, failing traces added as incident cases.")
def rollback_op(
    context: dg.OpExecutionContext,
    config: CanaryDecisionConfig,
    warehouse: WarehouseResource,
    registry: RegistryResource,
) -> str:
    opened = Registry(registry.path)
    outcome = abort_canary(opened, warehouse.path, config.prompt_id, config.decision_id, actor=f"{ACTOR}:rollback")
    sync_to_warehouse(opened, warehouse.path)
    context.add_output_metadata(
        {
            "state": outcome.state,
            "incident_cases": len(outcome.incident_span_ids),
            "golden_version": outcome.golden_version or "unchanged",
            "summary": dg.MetadataValue.md(outcome.markdown()),
        }
    )
    return outcome.state


@dg.job(description="Apply a gate report (config: report_id): promote to staging and canary, or reject.")
def promote():
    apply_gate_report_op()


@dg.job(name="roll_forward", description="Roll a canary forward to production (config: prompt_id, decision_id).")
def roll_forward_job():
    roll_forward_op()


@dg.job(
    description="Abort a canary (config: prompt_id, decision_id): canary removed, candidate rejected, its "
    "failing traces recorded as incidents; production is not touched."
)
def rollback():
    rollback_op()


canary_analysis_job = dg.define_asset_job(
    "canary_analysis_job",
    selection=[canary_analysis],
    description="Look at a live canary again (started by canary_sensor when new traces arrive).",
)

shadow_comparison_job = dg.define_asset_job(
    "shadow_comparison_job",
    selection=[shadow_comparison],
    description="Compare a prompt's shadow version with production on the live requests shadowed so far.",
)


# ---------------------------------------------------------------------------- sensors


def _run_request(action: ReleaseAction) -> dg.RunRequest:
    """The job run that carries out one release action; its run key makes it idempotent."""
    if action.kind == "apply_gate_report":
        tags = {"gate_report_id": action.report_id, "candidate": action.candidate}
        tags |= {"resumed": "approval"} if action.resumed_after_approval else {"verdict": action.verdict}
        return dg.RunRequest(
            run_key=action.key,
            job_name="promote",
            tags=tags,
            run_config={"ops": {"apply_gate_report_op": {"config": {"report_id": action.report_id}}}},
        )
    if action.kind == "look_at_canary":
        return dg.RunRequest(
            run_key=action.key,
            job_name="canary_analysis_job",
            partition_key=action.prompt_id,
            tags={"candidate": action.candidate, "reason": "new traces"},
        )
    job_name, op_name = {"roll_forward": ("roll_forward", "roll_forward_op"), "abort": ("rollback", "rollback_op")}[
        action.kind
    ]
    return dg.RunRequest(
        run_key=action.key,
        job_name=job_name,
        run_config={"ops": {op_name: {"config": {"prompt_id": action.prompt_id, "decision_id": action.decision_id}}}},
        tags={"decision_id": action.decision_id, "candidate": action.candidate, "action": action.kind},
    )


def _sensor_result(context: dg.SensorEvaluationContext, watched, idle: str) -> dg.SensorResult:
    for line in watched.waiting:
        context.log.info(line)
    requests = [_run_request(a) for a in watched.actions]
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=watched.cursor.dump())
    return dg.SensorResult(skip_reason="; ".join(watched.waiting) or idle, cursor=watched.cursor.dump())


@dg.sensor(
    jobs=[promote],
    minimum_interval_seconds=sensor_interval_s(30),
    description="New gate reports: promote -> promote job; reject -> promote job marks it rejected; "
    "freeze -> skipped with the reason. Also resumes a promotion once its required approval arrives.",
)
def gate_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, registry: RegistryResource):
    watched = gate_report_actions(warehouse.path, Registry(registry.path), WatchCursor.parse(context.cursor))
    return _sensor_result(context, watched, "no new gate reports")


@dg.sensor(
    jobs=[roll_forward_job, rollback, canary_analysis_job],
    minimum_interval_seconds=sensor_interval_s(60),
    description="Acts on canary decisions (roll_forward -> roll_forward job, abort -> rollback job, "
    "run key = decision id), and asks for a "
    "new look at a live canary (canary_analysis) whenever new traces of its prompt were ingested.",
)
def canary_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, registry: RegistryResource):
    watched = canary_actions(warehouse.path, Registry(registry.path), WatchCursor.parse(context.cursor))
    return _sensor_result(context, watched, "no live canary decision to act on")
