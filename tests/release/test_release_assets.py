"""Dagster glue: gate_sensor and canary_sensor with cursors, the promote job and the job that aborts a canary, the assets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg

from prompt_release.registry import Registry
from prompt_release.release.watch import WatchCursor
from prompt_release.sample.traffic import simulate_traffic
from prompt_release.traces import ingest_day
from prompt_release.warehouse import read_connection
from prompt_release_dagster.defs.release import (
    canary_analysis,
    canary_sensor,
    gate_sensor,
    promote,
    rollback,
    version_metrics,
)
from prompt_release_dagster.partitions import PROMPTS
from prompt_release_dagster.resources import LLMResource, RegistryResource, WarehouseResource
from tests.release.support import T0, add_report


def resources(registry_root: Path, warehouse: Path) -> dict:
    return {
        "registry": RegistryResource(root=str(registry_root)),
        "warehouse": WarehouseResource(path=str(warehouse)),
        "llm": LLMResource(),
    }


# The demo's explicit start: act on every row already written (without a cursor a sensor starts at now).
BEGINNING = WatchCursor.beginning().dump()


def evaluate(sensor, res: dict, cursor: str | None):
    with dg.build_sensor_context(resources=res, cursor=cursor) as context:
        return sensor(context), context.cursor


def test_gate_sensor_starts_promote_per_new_report_and_skips_freezes(registry_root, warehouse) -> None:
    res = resources(registry_root, warehouse)
    add_report(warehouse, "gr_1", "promote", "support_router:v1.6.0", "support_router:v1.5.2", T0)
    add_report(warehouse, "gr_2", "reject", "support_router:v1.7.0", "support_router:v1.5.2", T0)
    result, _ = evaluate(gate_sensor, res, BEGINNING)
    assert sorted(r.run_key for r in result.run_requests) == ["gr_1", "gr_2"]
    assert {r.job_name for r in result.run_requests} == {"promote"}
    cursor = result.cursor

    again, _ = evaluate(gate_sensor, res, cursor)
    assert not again.run_requests and "no new gate reports" in again.skip_reason.skip_message

    add_report(
        warehouse,
        "gr_3",
        "freeze",
        "summarizer:v1.1.0",
        "summarizer:v1.0.0",
        T0 + timedelta(hours=1),
        reason="judge_score inconclusive",
    )
    frozen, _ = evaluate(gate_sensor, res, again.cursor)
    assert not frozen.run_requests
    assert "summarizer:v1.1.0 frozen by gate report gr_3: judge_score inconclusive" in frozen.skip_reason.skip_message


def test_switching_the_gate_sensor_on_never_applies_reports_written_before(registry_root, warehouse) -> None:
    res = resources(registry_root, warehouse)
    add_report(warehouse, "gr_old", "reject", "support_router:v1.7.0", "support_router:v1.5.2", T0)
    first, _ = evaluate(gate_sensor, res, None)  # no cursor: a sensor turned on in the UI for the first time
    assert not first.run_requests
    add_report(
        warehouse, "gr_new", "promote", "support_router:v1.6.0", "support_router:v1.5.2", T0 + timedelta(minutes=1)
    )
    later, _ = evaluate(gate_sensor, res, first.cursor)
    assert [r.run_key for r in later.run_requests] == ["gr_new"]


def test_promote_job_applies_reject_and_promote(registry_root, recorded, simulator) -> None:
    reg = Registry(registry_root)
    add_report(recorded, "gr_r", "reject", "support_router:v1.7.0", "support_router:v1.5.2", T0, "JSON contract")
    add_report(recorded, "gr_p", "promote", "support_router:v1.6.0", "support_router:v1.5.2", T0)
    res = resources(registry_root, recorded)
    for report_id in ("gr_r", "gr_p"):
        result = promote.execute_in_process(
            run_config={
                "ops": {
                    "apply_gate_report_op": {"config": {"report_id": report_id, "llm_base_url": simulator.base_url}}
                }
            },
            resources=res,
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert result.success
    assert reg.load_package("support_router:v1.7.0").status == "rejected"
    assert reg.labels("support_router")["canary"].version_id == "support_router:v1.6.0"
    with read_connection(recorded) as con:  # the promote job mirrors the audit trail into the warehouse
        assert (
            con.execute("SELECT count(*) FROM label_events WHERE gate_report_id = 'gr_p'").fetchone()[0] == 3
        )  # verdict, staging, canary


def test_awaiting_approval_is_resumed_by_the_gate_sensor_once_approved(registry_root, recorded, simulator) -> None:
    reg = Registry(registry_root)
    add_report(recorded, "gr_o", "promote", "order_agent:v2.1.0", "order_agent:v2.0.0", T0)
    res = resources(registry_root, recorded)
    run_config = {
        "ops": {"apply_gate_report_op": {"config": {"report_id": "gr_o", "llm_base_url": simulator.base_url}}}
    }
    assert (
        promote.execute_in_process(
            run_config=run_config, resources=res, instance=dg.DagsterInstance.ephemeral()
        ).output_for_node("apply_gate_report_op")
        == "awaiting_approval"
    )
    first, _ = evaluate(gate_sensor, res, BEGINNING)
    [request] = first.run_requests  # the report itself
    waiting, _ = evaluate(gate_sensor, res, first.cursor)
    assert "awaiting approval by 'risk-team'" in waiting.skip_reason.skip_message
    reg.approve("order_agent:v2.1.0", reviewer="risk-team")
    resumed, _ = evaluate(gate_sensor, res, first.cursor)
    assert [r.run_key for r in resumed.run_requests] == ["gr_o:approved"]


def test_canary_analysis_asset_and_canary_sensor_abort_the_canary(registry_root, recorded, landing, simulator) -> None:
    reg = Registry(registry_root)
    res = resources(registry_root, recorded)
    reg.move_label(
        "support_router", "canary", "1.7.0", percent=30, force=True, reason="manual canary", gate_report_id="gr_m"
    )
    summary = simulate_traffic(
        registry_root, "support_router", landing=landing, base_url=simulator.base_url, requests=300, warehouse=recorded
    )
    for day in summary.days:
        ingest_day(landing, day, warehouse=recorded)

    # A live canary with new traces: the sensor asks for a look at it.
    looked, _ = evaluate(canary_sensor, res, BEGINNING)
    assert [(r.job_name, r.partition_key) for r in looked.run_requests] == [("canary_analysis_job", "support_router")]

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PROMPTS.name, ["support_router"])
    result = dg.materialize([canary_analysis], resources=res, partition_key="support_router", instance=instance)
    metadata = result.asset_materializations_for_node("canary_analysis")[0].metadata
    assert metadata["decision"].value == "abort"
    decision_id = metadata["decision_id"].value
    assert "hard_failure_rate" in metadata["summary"].value

    acted, _ = evaluate(canary_sensor, res, looked.cursor)
    [request] = [r for r in acted.run_requests if r.job_name == "rollback"]
    assert request.run_key == decision_id
    assert request.run_config["ops"]["rollback_op"]["config"] == {
        "prompt_id": "support_router",
        "decision_id": decision_id,
    }
    run = rollback.execute_in_process(
        run_config=request.run_config, resources=res, instance=dg.DagsterInstance.ephemeral()
    )
    assert run.success and run.output_for_node("rollback_op") == "aborted"
    assert "canary" not in reg.labels("support_router")
    assert reg.resolve_label("support_router", "production") == "support_router:v1.5.2"  # never moved
    quiet, _ = evaluate(canary_sensor, res, acted.cursor)
    assert not quiet.run_requests


def test_version_metrics_asset(registry_root, recorded) -> None:
    result = dg.materialize(
        [version_metrics],
        resources=resources(registry_root, recorded),
        partition_key="2026-10-02",
        instance=dg.DagsterInstance.ephemeral(),
    )
    metadata = result.asset_materializations_for_node("version_metrics")[0].metadata
    assert metadata["dagster/row_count"].value == 3  # one production version per sample workflow
    assert "support_router:v1.5.2" in metadata["versions"].value
