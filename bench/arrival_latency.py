"""Time from a landed trace file to a canary decision, in the demo world, with the documented sensor intervals.

A small sample history (3 days) is ingested, support_router's routing
regression (billing tickets sent to technical, valid JSON) is put on a 20%
canary, and canary traffic is served through the runtime client against the
simulator; its trace and late-event files land in today's folder. Then the
path a daemon takes is run in this process: `landing_sensor` is evaluated (it
would be within LANDING_SENSOR_INTERVAL_S of the landing), `ingest_arrivals`
ingests the files and looks at the canary, `canary_sensor` is evaluated (within
its 60 s interval) and its `rollback` run acts on the decision.

Printed: each step's measured wall time, then the landed-file-to-decision
time as worst case (the whole sensor interval waited) and mean case (half of
it), and the same up to the rollback. The waits are the documented intervals,
added, not slept. Run: `python bench/arrival_latency.py [--requests N]`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg  # noqa: E402

from prompt_release.llm.simulator import start_simulator  # noqa: E402
from prompt_release.registry import Registry  # noqa: E402
from prompt_release.release.watch import WatchCursor  # noqa: E402
from prompt_release.sample.generator import generate  # noqa: E402
from prompt_release.sample.traffic import simulate_traffic  # noqa: E402
from prompt_release.traces import ingest_paths  # noqa: E402
from prompt_release.warehouse import read_connection  # noqa: E402
from prompt_release_dagster.defs.arrivals import LANDING_SENSOR_INTERVAL_S, ingest_arrivals, landing_sensor  # noqa: E402
from prompt_release_dagster.defs.release import canary_sensor, roll_forward_job, rollback  # noqa: E402
from prompt_release_dagster.demo import prepare_state, routing_regression  # noqa: E402
from prompt_release_dagster.resources import LandingResource, RegistryResource, WarehouseResource  # noqa: E402

CANARY_SENSOR_INTERVAL_S = 60


def main() -> int:
    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="canary-window requests served (20% to the canary)")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="arrival_latency_"))
    try:
        paths = prepare_state(state)
        registry = Registry(paths["registry"])
        start = datetime.now(UTC).date() - timedelta(days=3)
        hashes = {p.version_id: p.package_hash for p in registry.list_versions()}
        generate(state / "history", days=3, scale=0.3, start_date=start, package_hashes=hashes)
        ingest_paths([state / "history"], warehouse=paths["warehouse"])
        # production at v1.6.0 (the demo's state after its first canary), so the regression is its patch
        registry.move_label("support_router", "production", "support_router:v1.6.0", force=True, reason="bench")
        regression = routing_regression(paths["registry"])
        registry.move_label("support_router", "canary", regression, percent=20, force=True, reason="bench")
        resources = {
            "landing": LandingResource(root=str(paths["landing"])),
            "registry": RegistryResource(root=str(paths["registry"])),
            "warehouse": WarehouseResource(path=str(paths["warehouse"])),
        }
        with start_simulator(port=0) as simulator, dg.instance_for_test() as instance:
            simulate_traffic(paths["registry"], "support_router", landing=paths["landing"],
                             base_url=simulator.base_url, requests=args.requests, warehouse=paths["warehouse"], seed=3)  # fmt: skip
            landed = max(p.stat().st_mtime for p in Path(paths["landing"]).rglob("*.jsonl"))
            time.sleep(1.1)  # the sensor leaves files modified in the last second alone
            t0 = time.monotonic()
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                result = landing_sensor(context)
            (request,) = result.run_requests
            t1 = time.monotonic()
            run = ingest_arrivals.execute_in_process(
                run_config=request.run_config, resources=resources, instance=instance
            )
            assert run.success
            t2 = time.monotonic()
            with read_connection(paths["warehouse"]) as con:
                action, reason, traces, decided_at = con.execute(
                    "SELECT action, reason, candidate_traces, decided_at FROM canary_decisions "
                    "ORDER BY decided_at DESC LIMIT 1"
                ).fetchall()[0]
            with dg.build_sensor_context(
                instance=instance, resources=resources, cursor=WatchCursor.beginning().dump()
            ) as context:
                acted = canary_sensor(context)
            t3 = time.monotonic()
            ran = 0.0
            for req in acted.run_requests or []:
                job = {"rollback": rollback, "roll_forward": roll_forward_job}.get(req.job_name)
                if job is not None:
                    started = time.monotonic()
                    job.execute_in_process(run_config=req.run_config, resources=resources, instance=instance)
                    ran += time.monotonic() - started
        tick, ingest, act_tick = t1 - t0, t2 - t1, t3 - t2
        to_decision = tick + ingest
        print(f"canary: {regression} at 20%; {args.requests} requests served; decision {action} after {traces} "
              f"canary traces: {reason}")  # fmt: skip
        print(f"landed (newest file mtime) -> decision written: {decided_at.timestamp() - landed:.1f} s wall here "
              "(sensor evaluated at once, 1.1 s settle wait included)")  # fmt: skip
        print(f"landing_sensor tick {tick:.2f} s, ingest_arrivals run (ingest + canary analysis) {ingest:.1f} s, "
              f"canary_sensor tick {act_tick:.2f} s, rollback run {ran:.1f} s")  # fmt: skip
        worst = LANDING_SENSOR_INTERVAL_S + 1 + to_decision
        mean = LANDING_SENSOR_INTERVAL_S / 2 + 1 + to_decision
        print(f"landed file -> canary decision: worst {worst:.0f} s, mean {mean:.0f} s "
              f"(landing_sensor every {LANDING_SENSOR_INTERVAL_S} s); goal < 120 s: {'PASS' if worst < 120 else 'FAIL'}")  # fmt: skip
        acted_worst = worst + CANARY_SENSOR_INTERVAL_S + act_tick + ran
        print(f"landed file -> rollback applied: worst {acted_worst:.0f} s, mean "
              f"{mean + CANARY_SENSOR_INTERVAL_S / 2 + act_tick + ran:.0f} s (canary_sensor every {CANARY_SENSOR_INTERVAL_S} s)")  # fmt: skip
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
