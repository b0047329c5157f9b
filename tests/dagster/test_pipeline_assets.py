"""Dagster: traces per day, and the per-candidate evaluation chain, on ephemeral instances."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from prompt_release.llm.simulator import start_simulator
from prompt_release.sample.generator import generate
from prompt_release.warehouse import read_connection
from prompt_release_dagster.defs.evaluation import backtest, behaviour_diff, candidate_sensor, gate_report
from prompt_release_dagster.defs.traces import traces
from prompt_release_dagster.partitions import CANDIDATES
from prompt_release_dagster.resources import LandingResource, LLMResource, RegistryResource, WarehouseResource
from tests.world import SEED_SHIFT, World, build_world


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [event] = result.asset_materializations_for_node(key)
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def test_traces_materializes_a_day_with_metadata_and_checks(tmp_path: Path) -> None:
    day = date.today() - timedelta(days=2)
    truth = generate(tmp_path / "landing", days=2, seed=4 + SEED_SHIFT, scale=0.2, start_date=day)
    # which formats a day holds is drawn per day and workflow: take them from the ground truth
    formats = {
        "native" if f["format"] == "native" else "otlp"
        for f in truth["files"]
        if f["path"].startswith(f"{day.isoformat()}/")
    }
    resources = {
        "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb")),
        "landing": LandingResource(root=str(tmp_path / "landing")),
    }
    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize([traces], partition_key=day.isoformat(), resources=resources, instance=instance)
    assert first.success
    meta = _metadata(first, "traces")
    assert meta["rows_stored"] > 100 and meta["rejected"] == 0
    assert "support_router:v1.5" in meta["by_prompt_version"]
    assert formats and all(f"| {fmt} |" in meta["by_format"] for fmt in formats)
    checks = {e.check_name: e.passed for e in first.get_asset_check_evaluations()}
    assert checks == {"reject_rate_below_bound": True, "required_columns_not_null": True}
    # Materializing the day again replaces exactly its rows.
    again = dg.materialize([traces], partition_key=day.isoformat(), resources=resources, instance=instance)
    with read_connection(tmp_path / "w.duckdb") as con:
        stored = con.execute("SELECT count(*), count(DISTINCT day) FROM traces").fetchall()[0]
    assert stored == (meta["rows_stored"], 1) and _metadata(again, "traces")["rows_stored"] == stored[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("assets"))


def test_candidate_sensor_then_evaluation_chain_reports_the_verdict(world: World) -> None:
    instance = dg.DagsterInstance.ephemeral()
    registry = RegistryResource(root=str(world.registry))
    with dg.build_sensor_context(instance=instance, resources={"registry": registry}) as context:
        result = candidate_sensor(context)
        cursor = context.cursor
    requested = sorted(r.partition_key for r in result.run_requests)
    assert requested == ["order_agent:v2.1.0", "summarizer:v1.1.0", "support_router:v1.6.0", "support_router:v1.7.0"]
    instance.add_dynamic_partitions(CANDIDATES.name, requested)
    with dg.build_sensor_context(instance=instance, resources={"registry": registry}, cursor=cursor) as context:
        assert isinstance(candidate_sensor(context), dg.SkipReason)  # nothing new
    with start_simulator(port=0) as sim:
        resources = {
            "warehouse": WarehouseResource(path=str(world.warehouse)),
            "registry": registry,
            "llm": LLMResource(base_url=sim.base_url),
        }
        result = dg.materialize(
            [backtest, behaviour_diff, gate_report],
            partition_key="support_router:v1.7.0",
            resources=resources,
            instance=instance,
            raise_on_error=False,
            selection=[backtest, behaviour_diff, gate_report],
        )
    # A reject is an outcome, not a crash: the run succeeds and the report is materialised with its verdict.
    assert result.success
    meta = _metadata(result, "gate_report")
    assert list(meta)[0] == "verdict" and meta["verdict"].startswith("Verdict: REJECT")
    assert meta["html_report"].startswith("file:///") and meta["html_report"].endswith(".html")
    assert "| support_router:v1.7.0 | REJECT |" in meta["all_candidates"]
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "hard_gates_pass" and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN and check.partition == "support_router:v1.7.0"
    assert check.description == meta["verdict"]
    assert _metadata(result, "behaviour_diff")["regressions"] > 0
