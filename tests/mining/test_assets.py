"""The Dagster assets materialise on a small hand-made traces table, with metadata and passing checks."""

from __future__ import annotations

import dagster as dg

from prompt_release.golden import store
from prompt_release_dagster.defs.mining import failures, golden_dataset
from prompt_release_dagster.partitions import PROMPTS
from prompt_release_dagster.resources import RegistryResource, WarehouseResource
from tests.mining.support import DAY, insert, row


def test_failures_then_golden_dataset(warehouse, tmp_path):
    insert(
        warehouse,
        [
            row(feedback=-1.0, user="parcel lost, email me at a@b.com"),
            row(escalated=True, user="double charge"),
            row(user="fine"),
        ],
    )
    resources = {"warehouse": WarehouseResource(path=str(warehouse)), "registry": RegistryResource(root=str(tmp_path))}
    traces = dg.AssetSpec("traces", partitions_def=failures.partitions_def)
    mined = dg.materialize(
        [traces, failures],
        selection=[failures],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=DAY.isoformat(),
    )
    assert mined.success
    meta = mined.asset_materializations_for_node("failures")[0].metadata
    assert meta["dagster/row_count"].value == 2

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PROMPTS.name, ["support_router"])
    built = dg.materialize([golden_dataset], resources=resources, instance=instance, partition_key="support_router")
    assert built.success
    meta = built.asset_materializations_for_node("golden_dataset")[0].metadata
    assert meta["version_id"].value == "support_router_golden:v1" and meta["cases_added"].value == 2
    checks = {e.check_name: e.passed for e in built.get_asset_check_evaluations()}
    assert checks == {
        "golden_not_empty": True,
        "golden_cases_have_id_and_contract": True,
        "golden_no_pii": True,
        "golden_labelled_share": False,
        "golden_files_unchanged": True,
    }
    assert store.versions(tmp_path, "support_router_golden") == [1]
