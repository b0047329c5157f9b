"""Issue 14: on a lake, steps writing only their own days no longer queue behind every other writer.

A DuckDB file has one writer at a time: every writing step is in the pool
`warehouse` (limit 1). On a lake, ingest (`traces`) and mining (`failures`) are
in `warehouse_day` (limit 2) instead. The pool is chosen when the code location
loads, from the warehouse setting, so the lake case runs in a process of its
own, with a lake configured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from prompt_release_dagster.definitions import defs
from prompt_release_dagster.instance import ensure_pool_limits
from prompt_release_dagster.resources import POOL_LIMITS, WAREHOUSE_DAY_POOL, WAREHOUSE_POOL
from tests.conftest import REPO_ROOT
from tests.pools import step_pools

DAY_WRITERS = {"traces", "failures"}

# In a process whose warehouse setting is a lake: the writing steps' pools; then `traces` and
# `failures` of one day materialized while a step of another run holds the one `warehouse` slot
# and one of the two `warehouse_day` slots (as a long backtest and another day's ingest would).
_ON_A_LAKE = r"""
import json, sys
from pathlib import Path
import dagster as dg
from prompt_release_dagster.definitions import defs
from prompt_release_dagster.instance import ensure_pool_limits
from prompt_release_dagster.resources import LandingResource, RegistryResource, WarehouseResource
from tests.pools import step_pools
from tests.warehouse.test_lake_day_writers import errored_calls

tmp, lake, day = Path(sys.argv[1]), sys.argv[2], "2026-11-03"
errored_calls(tmp / "landing", day)
definitions = defs()
pools = step_pools(definitions)
with dg.instance_for_test(temp_dir=str(tmp / "home")) as instance:
    limits = ensure_pool_limits(instance)
    storage = instance.event_log_storage
    held = {pool: storage.claim_concurrency_slot(pool, "other-run", "long_step").slot_status.value
            for pool in ("warehouse", "warehouse_day")}
    result = dg.materialize(
        [definitions.get_assets_def("traces"), definitions.get_assets_def("failures")],
        partition_key=day,
        instance=instance,
        resources={
            "warehouse": WarehouseResource(path=lake),
            "landing": LandingResource(root=str(tmp / "landing")),
            "registry": RegistryResource(root=str(tmp / "registry")),
        },
    )
    stored = {
        asset: result.asset_materializations_for_node(asset)[0].metadata["dagster/row_count"].value
        for asset in ("traces", "failures")
    }
    still_held = "other-run" in storage.get_concurrency_info("warehouse").active_run_ids
print(json.dumps({"pools": pools, "limits": limits, "held": held, "success": result.success,
                  "stored": stored, "warehouse_still_held": still_held}))
"""


def _writing_pools() -> dict[str, str]:
    return {step: pool for step, pool in step_pools(defs()).items() if pool in (WAREHOUSE_POOL, WAREHOUSE_DAY_POOL)}


def test_on_a_duckdb_file_every_writing_step_shares_the_one_warehouse_pool() -> None:
    pools = _writing_pools()
    assert DAY_WRITERS <= set(pools) and {"gate_report", "version_metrics", "golden_dataset"} <= set(pools)
    assert set(pools.values()) == {WAREHOUSE_POOL}


def test_on_a_lake_a_days_ingest_and_mining_run_while_the_warehouse_pool_is_held(tmp_path: Path) -> None:
    lake = str(tmp_path / "w.lake")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PROMPT_RELEASE_WAREHOUSE": lake,
        "PROMPT_RELEASE_CONFIG": str(tmp_path / "no-state-file"),
    }
    (tmp_path / "registry").mkdir()
    (tmp_path / "home").mkdir()
    # A step in the wrong pool would wait for the held slot for ever: the timeout says so.
    done = subprocess.run(
        [sys.executable, "-c", _ON_A_LAKE, str(tmp_path), lake],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    file_pools = _writing_pools()
    assert {name: pool for name, pool in out["pools"].items() if name in DAY_WRITERS} == dict.fromkeys(
        DAY_WRITERS, WAREHOUSE_DAY_POOL
    )
    # every other writing step stays in `warehouse`, as on the file
    others = {name: pool for name, pool in out["pools"].items() if name not in DAY_WRITERS and name in file_pools}
    assert others and set(others.values()) == {WAREHOUSE_POOL}
    assert out["limits"] == POOL_LIMITS and out["limits"][WAREHOUSE_DAY_POOL] >= 2
    assert out["held"] == {"warehouse": "CLAIMED", "warehouse_day": "CLAIMED"}
    assert out["success"] and out["warehouse_still_held"]
    assert out["stored"] == {"traces": 40, "failures": 7}


def test_pool_limits_already_set_in_the_instance_are_kept() -> None:
    with dg.instance_for_test() as instance:
        instance.event_log_storage.set_concurrency_slots(WAREHOUSE_DAY_POOL, 6)
        limits = ensure_pool_limits(instance)
    assert limits == {**POOL_LIMITS, WAREHOUSE_DAY_POOL: 6}
