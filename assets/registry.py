"""`prompt_versions`: the prompt registry mirrored into the warehouse, and a check
that fails when any registered version no longer matches its recorded hash.

No `from __future__ import annotations` here: Dagster inspects the context annotation.
"""

import dagster as dg

from pipelines.resources import WAREHOUSE_POOL, RegistryResource, WarehouseResource
from prompt_release.registry import labels, list_versions, sync_to_warehouse, verify


@dg.asset(
    name="prompt_versions",
    group_name="registry",
    pool=WAREHOUSE_POOL,
    description="Every prompt version in the registry with its status, package hash and labels, "
    "plus the audit trail of label moves (table label_events).",
)
def prompt_versions(
    context: dg.AssetExecutionContext, registry: RegistryResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    counts = sync_to_warehouse(registry.path, warehouse.path)
    packages = list_versions(registry.path)
    pointers: dict[str, list[str]] = {}
    for prompt_id in sorted({p.prompt_id for p in packages}):
        for label, entry in labels(registry.path, prompt_id).items():
            pointers.setdefault(entry["version_id"], []).append(label)
    table = ["| version | status | labels | package hash |", "|---|---|---|---|"]
    table += [
        f"| {p.version_id} | {p.status} | {', '.join(sorted(pointers.get(p.version_id, []))) or '-'} "
        f"| `{p.package_hash[:19]}` |"
        for p in packages
    ]
    context.log.info("mirrored %s versions, %s new label events", counts["prompt_versions"], counts["label_events"])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": counts["prompt_versions"],
            "new_label_events": counts["label_events"],
            "label_events_total": counts["label_events_total"],
            "versions": dg.MetadataValue.md("\n".join(table)),
        }
    )


@dg.asset_check(asset=prompt_versions, blocking=True, description="Every registered version still matches its hash.")
def registry_verifies(registry: RegistryResource) -> dg.AssetCheckResult:
    results = verify(registry.path)
    failed = [r for r in results if not r.ok]
    return dg.AssetCheckResult(
        passed=not failed,
        metadata={
            "verified": len(results) - len(failed),
            "failed": dg.MetadataValue.md("\n".join(f"- {r.problem}" for r in failed) or "none"),
        },
    )


ASSETS = [prompt_versions]
ASSET_CHECKS = [registry_verifies]
