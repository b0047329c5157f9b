"""Ingest on arrival: the landing sensor asks for one run per batch of new files; the run ingests
them and looks at the live canary right after."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import dagster as dg

from prompt_release.registry import Registry
from prompt_release.warehouse import read_connection
from prompt_release_dagster.defs.arrivals import ingest_arrivals, landing_sensor
from prompt_release_dagster.resources import LandingResource, RegistryResource, WarehouseResource
from tests.dagster.test_schedules import registry_copy


def test_landing_sensor_then_ingest_arrivals_ingests_and_looks_at_the_canary(tmp_path) -> None:
    root = registry_copy(tmp_path)
    registry = Registry(root)
    registry.move_label("support_router", "canary", "support_router:v1.6.0", percent=50, force=True, reason="test")
    landing = tmp_path / "landing"
    folder = landing / datetime.now(UTC).date().isoformat()
    folder.mkdir(parents=True)
    now = datetime.now(UTC)
    calls = []
    for i, version in enumerate(["support_router:v1.5.2", "support_router:v1.6.0"] * 3):
        calls.append({"trace_id": f"t{i}", "span_id": f"s{i}", "workflow": "support_router", "prompt_version": version,
                      "model": "m", "timestamp": now.isoformat(), "output": '{"route": "billing", "confidence": 0.9}',
                      "latency_ms": 100})  # fmt: skip
    path = folder / "traces-1.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in calls))
    events = folder / "events-1.jsonl"
    events.write_text(json.dumps({"event": "feedback", "span_id": "s1", "value": "down"}) + "\n")
    for p in (path, events):
        stamp = (now - timedelta(seconds=5)).timestamp()
        os.utime(p, (stamp, stamp))
    warehouse = str(tmp_path / "warehouse.duckdb")
    resources = {
        "landing": LandingResource(root=str(landing)),
        "registry": RegistryResource(root=str(root)),
        "warehouse": WarehouseResource(path=warehouse),
    }
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            result = landing_sensor(context)
            (request,) = result.run_requests
            files = request.run_config["ops"]["ingest_arrived_files"]["config"]["files"]
            assert sorted(files) == sorted([str(path.resolve()), str(events.resolve())])
        with dg.build_sensor_context(instance=instance, resources=resources, cursor=result.cursor) as context:
            again = landing_sensor(context)
            assert not again.run_requests  # cursor: the same files are not handed out twice
        run = ingest_arrivals.execute_in_process(run_config=request.run_config, resources=resources, instance=instance)
        assert run.success
    with read_connection(warehouse) as con:
        assert con.execute("SELECT count(*) FROM traces").fetchall() == [(6,)]
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(1,)]
        (decision,) = con.execute("SELECT candidate_version, candidate_traces FROM canary_decisions").fetchall()
    assert decision == ("support_router:v1.6.0", 3)
