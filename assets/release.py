"""Dagster glue for the release: version_metrics, canary_analysis, the promote / roll_forward /
rollback jobs, and the gate and canary sensors. Thin: every decision is made in `prompt_release.release`.

No `from __future__ import annotations` here: Dagster inspects the context and config annotations.
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Optional

import dagster as dg

from assets.partitions import DAILY, WORKFLOW_PARTITIONS
from pipelines.resources import LLMResource, WAREHOUSE_POOL, RegistryResource, WarehouseResource
from prompt_release.registry import CANARY, labels, sync_to_warehouse
from prompt_release.registry.store import FilesystemStore
from prompt_release.release.canary import analyse_canary, roll_back, roll_forward
from prompt_release.release.metrics import compute_version_metrics
from prompt_release.release.promotion import apply_gate_report, awaiting_approval, load_gate_report

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
    lines = [f"Days {days[0]} .. {days[-1]}" if len(days) > 1 else f"Day {days[0]}", "",
             "| version | calls | success rate | hard failures | unsafe calls | p95 ms (max) | cost/success USD | "
             "tool calls/trace |", "|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join("-" if v is None else str(v) for v in row) + " |" for row in table]
    return dg.MaterializeResult(
        metadata={"dagster/row_count": rows, "versions": dg.MetadataValue.md("\n".join(lines))}
    )


class CanaryAnalysisConfig(dg.Config):
    min_duration_s: Optional[float] = None  # None: the candidate's release policy (min_duration)
    recompute_failures: bool = True


@dg.asset(
    partitions_def=WORKFLOW_PARTITIONS,
    deps=[dg.AssetDep("traces", partition_mapping=dg.AllPartitionMapping()), dg.AssetKey("prompt_versions")],
    pool=WAREHOUSE_POOL,
    group_name="release",
    description="One look at the running canary of a prompt: candidate vs production on the same segments since "
    "the canary started, and the always-valid decision (roll_forward / roll_back / freeze) in canary_decisions.",
)
def canary_analysis(
    context: dg.AssetExecutionContext,
    config: CanaryAnalysisConfig,
    warehouse: WarehouseResource,
    registry: RegistryResource,
) -> dg.MaterializeResult:
    prompt_id = context.partition_key
    analysis = analyse_canary(warehouse.path, registry.path, prompt_id, min_duration_s=config.min_duration_s,
                              recompute_failures=config.recompute_failures)
    if analysis is None:
        return dg.MaterializeResult(metadata={"decision": "no canary", "summary": dg.MetadataValue.md(
            f"{prompt_id} has no live canary.")})
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
    context: dg.OpExecutionContext, config: PromoteConfig, warehouse: WarehouseResource, registry: RegistryResource,
    llm: LLMResource,
) -> str:
    report = load_gate_report(warehouse.path, config.report_id)
    # The staging check calls the model: the configured endpoint, else the embedded simulator.
    if config.llm_base_url:
        llm = llm.model_copy(update={"base_url": config.llm_base_url})
    with llm.endpoint(log=context.log.info) as settings:
        outcome = apply_gate_report(registry.path, report, actor=f"{ACTOR}:promote", warehouse=warehouse.path,
                                    llm_settings=settings, sample_size=config.sample_size)
    sync_to_warehouse(registry.path, warehouse.path)
    context.add_output_metadata({"state": outcome.state, "candidate": outcome.candidate,
                                 "summary": dg.MetadataValue.md(outcome.markdown())})
    context.log.info("%s: %s", outcome.state, outcome.reason)
    if outcome.state == "staging_failed":
        raise dg.Failure(description=outcome.reason, metadata={"summary": dg.MetadataValue.md(outcome.markdown())})
    return outcome.state


class CanaryDecisionConfig(dg.Config):
    prompt_id: str
    decision_id: str


@dg.op(pool=WAREHOUSE_POOL, description="Production label -> the canary's candidate; canary removed.")
def roll_forward_op(
    context: dg.OpExecutionContext, config: CanaryDecisionConfig, warehouse: WarehouseResource,
    registry: RegistryResource,
) -> str:
    outcome = roll_forward(registry.path, warehouse.path, config.prompt_id, config.decision_id,
                           actor=f"{ACTOR}:roll_forward")
    sync_to_warehouse(registry.path, warehouse.path)
    context.add_output_metadata({"state": outcome.state, "summary": dg.MetadataValue.md(outcome.markdown())})
    return outcome.state


@dg.op(pool=WAREHOUSE_POOL, description="Canary removed, candidate rejected, failing traces added as incident cases.")
def rollback_op(
    context: dg.OpExecutionContext, config: CanaryDecisionConfig, warehouse: WarehouseResource,
    registry: RegistryResource,
) -> str:
    outcome = roll_back(registry.path, warehouse.path, config.prompt_id, config.decision_id,
                        actor=f"{ACTOR}:rollback")
    sync_to_warehouse(registry.path, warehouse.path)
    context.add_output_metadata({"state": outcome.state, "incident_cases": len(outcome.incident_span_ids),
                                 "golden_version": outcome.golden_version or "unchanged",
                                 "summary": dg.MetadataValue.md(outcome.markdown())})
    return outcome.state


@dg.job(description="Apply a gate report (config: report_id): promote to staging and canary, or reject.")
def promote():
    apply_gate_report_op()


@dg.job(name="roll_forward", description="Roll a canary forward to production (config: prompt_id, decision_id).")
def roll_forward_job():
    roll_forward_op()


@dg.job(description="Roll a canary back (config: prompt_id, decision_id).")
def rollback():
    rollback_op()


canary_analysis_job = dg.define_asset_job(
    "canary_analysis_job", selection=[canary_analysis],
    description="Look at a live canary again (started by canary_sensor when new traces arrive).",
)


# ---------------------------------------------------------------------------- sensors


def _cursor(raw: Optional[str]) -> dict:
    if not raw:
        return {"ts": None, "seen": []}
    try:
        return json.loads(raw)
    except ValueError:
        return {"ts": None, "seen": []}


def _table_exists(con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0])


def _new_rows(con, sql: str, cursor: dict) -> list[tuple]:
    """Rows whose timestamp (2nd to last column) is at or after the cursor and whose id (1st) is unseen."""
    since = datetime.fromisoformat(cursor["ts"]) if cursor.get("ts") else datetime(1970, 1, 1, tzinfo=UTC)
    seen = set(cursor.get("seen") or [])
    return [r for r in con.execute(sql, [since]).fetchall() if r[0] not in seen]


def _advance(cursor: dict, rows: list[tuple], ts_index: int) -> str:
    if not rows:
        return json.dumps(cursor)
    last = max(r[ts_index] for r in rows)
    same = [r[0] for r in rows if r[ts_index] == last]
    seen = (cursor.get("seen") or []) if cursor.get("ts") == last.isoformat() else []
    return json.dumps({"ts": last.isoformat(), "seen": sorted(set(seen) | set(same))})


@dg.sensor(jobs=[promote], minimum_interval_seconds=30,
           description="New gate reports: promote -> promote job; reject -> promote job marks it rejected; "
           "freeze -> skipped with the reason. Also resumes a promotion once its required approval arrives.")
def gate_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, registry: RegistryResource):
    cursor = _cursor(context.cursor)
    if not Path(warehouse.path).exists():
        return dg.SkipReason("no warehouse yet")
    with warehouse.read() as con:
        rows = _new_rows(con, "SELECT report_id, verdict, candidate_version, reason, created_at FROM gate_reports "
                              "WHERE created_at >= ? ORDER BY created_at, report_id", cursor) \
            if _table_exists(con, "gate_reports") else []
    requests, skipped = [], []
    for report_id, verdict, candidate, reason, _ in rows:
        if verdict == "freeze":
            skipped.append(f"{candidate} frozen by gate report {report_id}: {reason}")
            continue
        requests.append(dg.RunRequest(run_key=report_id, job_name="promote",
                                      run_config={"ops": {"apply_gate_report_op": {"config": {"report_id": report_id}}}},
                                      tags={"gate_report_id": report_id, "verdict": verdict, "candidate": candidate}))
    store = FilesystemStore(registry.path)
    for prompt_id in store.prompt_ids():
        waiting = awaiting_approval(registry.path, prompt_id)
        if waiting is None:
            continue
        if waiting["approved"]:
            report_id = waiting["report_id"]
            requests.append(dg.RunRequest(
                run_key=f"{report_id}:approved", job_name="promote",
                run_config={"ops": {"apply_gate_report_op": {"config": {"report_id": report_id}}}},
                tags={"gate_report_id": report_id, "candidate": waiting["candidate"], "resumed": "approval"}))
        else:
            skipped.append(f"{waiting['candidate']} is in staging awaiting approval by {waiting['reviewer']!r} "
                           f"(gate report {waiting['report_id']})")
    for line in skipped:
        context.log.info(line)
    new_cursor = _advance(cursor, rows, 4)
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=new_cursor)
    return dg.SensorResult(skip_reason="; ".join(skipped) or "no new gate reports", cursor=new_cursor)


_ACTION_JOBS = {"roll_forward": ("roll_forward", "roll_forward_op"), "roll_back": ("rollback", "rollback_op")}


@dg.sensor(jobs=[roll_forward_job, rollback, canary_analysis_job], minimum_interval_seconds=60,
           description="Acts on canary decisions (roll_forward / rollback, run key = decision id), and asks for a "
           "new look at a live canary (canary_analysis) whenever new traces of its prompt were ingested.")
def canary_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, registry: RegistryResource):
    cursor = _cursor(context.cursor)
    if not Path(warehouse.path).exists():
        return dg.SkipReason("no warehouse yet")
    store = FilesystemStore(registry.path)
    live = {p: labels(registry.path, p).get(CANARY) for p in store.prompt_ids()}
    live = {p: entry for p, entry in live.items() if entry}
    with warehouse.read() as con:
        rows = _new_rows(con, "SELECT decision_id, prompt_id, candidate_version, action, reason, decided_at "
                              "FROM canary_decisions WHERE decided_at >= ? ORDER BY decided_at, decision_id", cursor)
        ingested = dict(con.execute(
            "SELECT prompt_id, max(ingested_at) FROM traces WHERE prompt_id IN (SELECT unnest(?)) GROUP BY 1",
            [sorted(live)],
        ).fetchall()) if live and _table_exists(con, "traces") else {}
    requests, skipped = [], []
    latest = {}
    for row in rows:
        latest[row[1]] = row  # rows are in decision order: keep each prompt's newest
    for decision_id, prompt_id, candidate, action, reason, _ in latest.values():
        if live.get(prompt_id, {}).get("version_id") != candidate:
            continue  # the canary already ended
        if action == "freeze":
            skipped.append(f"{prompt_id}: {candidate} canary frozen ({decision_id}): {reason}")
            continue
        job_name, op_name = _ACTION_JOBS[action]
        requests.append(dg.RunRequest(
            run_key=decision_id, job_name=job_name,
            run_config={"ops": {op_name: {"config": {"prompt_id": prompt_id, "decision_id": decision_id}}}},
            tags={"decision_id": decision_id, "candidate": candidate, "action": action}))
    acted = {r.tags["candidate"] for r in requests}
    for prompt_id, entry in sorted(live.items()):
        if entry["version_id"] in acted or prompt_id not in ingested or ingested[prompt_id] is None:
            continue
        requests.append(dg.RunRequest(
            run_key=f"canary_analysis:{prompt_id}:{entry['event_id']}:{ingested[prompt_id].isoformat()}",
            job_name="canary_analysis_job", partition_key=prompt_id,
            tags={"candidate": entry["version_id"], "reason": "new traces"}))
    for line in skipped:
        context.log.info(line)
    new_cursor = _advance(cursor, rows, 5)
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=new_cursor)
    return dg.SensorResult(skip_reason="; ".join(skipped) or "no live canary decision to act on", cursor=new_cursor)


ASSETS = [version_metrics, canary_analysis]
ASSET_CHECKS: list = []
JOBS = [promote, roll_forward_job, rollback, canary_analysis_job]
SENSORS = [gate_sensor, canary_sensor]
