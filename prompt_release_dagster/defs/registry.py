"""`prompt_versions`: the prompt registry mirrored into the warehouse, and a check
that fails when any registered version no longer matches its recorded hash.

No `from __future__ import annotations` here: Dagster inspects the context annotation.
"""

import dagster as dg

from prompt_release.markdown import md_table
from prompt_release.registry import Registry
from prompt_release.warehouse.registry_mirror import sync_to_warehouse
from prompt_release_dagster.partitions import PROMPTS
from prompt_release_dagster.resources import WAREHOUSE_POOL, RegistryResource, WarehouseResource


@dg.asset(
    name="prompt_versions",
    group_name="registry",
    pool=WAREHOUSE_POOL,
    description="Every prompt version in the registry with its status, package hash and labels, "
    "plus the audit trail of label moves (table label_events). Adds a `prompts` partition per served prompt.",
)
def prompt_versions(
    context: dg.AssetExecutionContext, registry: RegistryResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    opened = Registry(registry.path)
    counts = sync_to_warehouse(opened, warehouse.path)
    packages = opened.list_versions()
    pointers: dict[str, list[str]] = {}
    for prompt_id in sorted({p.prompt_id for p in packages}):
        for label, entry in opened.labels(prompt_id).items():
            pointers.setdefault(entry.version_id, []).append(label)
    table = md_table(
        ["version", "status", "labels", "package hash"],
        [
            (
                p.version_id,
                p.status,
                ", ".join(sorted(pointers.get(p.version_id, []))) or None,
                f"`{p.package_hash[:19]}`",
            )
            for p in packages
        ],
    )
    served = opened.served_prompt_ids()
    new_prompts = sorted(set(served) - set(context.instance.get_dynamic_partitions(PROMPTS.name)))
    if new_prompts:
        context.instance.add_dynamic_partitions(PROMPTS.name, new_prompts)
    context.log.info("mirrored %s versions, %s new label events", counts["prompt_versions"], counts["label_events"])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": counts["prompt_versions"],
            "new_label_events": counts["label_events"],
            "label_events_total": counts["label_events_total"],
            "served_prompts": ", ".join(served) or "none",
            "versions": dg.MetadataValue.md(table),
        }
    )


@dg.asset_check(asset=prompt_versions, blocking=True, description="Every registered version still matches its hash.")
def registry_verifies(registry: RegistryResource) -> dg.AssetCheckResult:
    results = Registry(registry.path).verify()
    failed = [r for r in results if not r.ok]
    return dg.AssetCheckResult(
        passed=not failed,
        metadata={
            "verified": len(results) - len(failed),
            "failed": dg.MetadataValue.md("\n".join(f"- {r.problem}" for r in failed) or "none"),
        },
    )
