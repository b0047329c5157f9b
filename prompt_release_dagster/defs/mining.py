"""Dagster glue for failure mining and golden datasets: thin calls into `prompt_release`."""

# No `from __future__ import annotations`: Dagster inspects the context annotation at definition time.

import dagster as dg

from prompt_release.golden import store
from prompt_release.golden.build import build_golden
from prompt_release.markdown import md_table
from prompt_release.mining.detectors import mine_failures
from prompt_release.mining.redaction import pii_in_value
from prompt_release.mining.settings import load_settings
from prompt_release_dagster.partitions import DAILY, PROMPTS
from prompt_release_dagster.resources import WAREHOUSE_POOL, RegistryResource, WarehouseResource, day_write_pool

_GOLDEN_CHECKS = [
    dg.AssetCheckSpec("golden_not_empty", asset="golden_dataset", description="the dataset has at least one case"),
    dg.AssetCheckSpec(
        "golden_cases_have_id_and_contract",
        asset="golden_dataset",
        description="every case has a case id and at least one contract check",
    ),
    dg.AssetCheckSpec(
        "golden_no_pii",
        asset="golden_dataset",
        blocking=True,
        description="no personal data or secret (emails, phones, cards, IPs, SSNs, IBANs, addresses, API keys, JWTs, private keys, configured patterns; in values or keys) survives redaction",
    ),
    dg.AssetCheckSpec(
        "golden_labelled_share",
        asset="golden_dataset",
        description="share of cases with a known expectation (warns below 20%)",
    ),
    dg.AssetCheckSpec(
        "golden_files_unchanged",
        asset="golden_dataset",
        blocking=True,
        description="every existing version file still matches the sha256 in its manifest",
    ),
]


@dg.asset(
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetKey("traces")],
    pool=day_write_pool(),
    group_name="mining",
    description="One row per LLM call and failure class, detected from that day's traces.",
)
def failures(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, registry: RegistryResource
) -> dg.MaterializeResult:
    # A run may cover several days (single-run backfill): each day is replaced on its own.
    by_class: dict[str, int] = {}
    failures_found = calls = without_contract = validated = 0
    seconds = 0.0
    for day in context.partition_keys:
        summary = mine_failures(warehouse.path, registry.path, day)
        failures_found += summary.failures
        calls += summary.calls
        without_contract += summary.calls_without_contract
        validated += summary.distinct_outputs_validated
        seconds += summary.seconds
        for name, count in summary.failures_by_class.items():
            by_class[name] = by_class.get(name, 0) + count
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": failures_found,
            "days": len(context.partition_keys),
            "calls": calls,
            "calls_without_contract": without_contract,
            "distinct_outputs_validated": validated,
            "seconds": round(seconds, 3),
            "failures_by_class": dg.MetadataValue.md(
                md_table(["failure class", "calls"], sorted(by_class.items())) if by_class else "no failures"
            ),
        }
    )


@dg.asset(
    partitions_def=PROMPTS,
    deps=[dg.AssetDep("failures", partition_mapping=dg.AllPartitionMapping())],
    check_specs=_GOLDEN_CHECKS,
    pool=WAREHOUSE_POOL,
    group_name="mining",
    description="Versioned golden dataset per served prompt (<workflow>_golden:vN, the workflow named like the "
    "prompt); a new version only when content changes.",
)
def golden_dataset(context: dg.AssetExecutionContext, warehouse: WarehouseResource, registry: RegistryResource):
    workflow = context.partition_key
    root = registry.path
    settings = load_settings(root)
    result = build_golden(warehouse.path, root, workflow, settings=settings)
    cases = result.cases
    by_class: dict[str, int] = {}
    for case in cases:
        for name in case.tags.failure_classes:
            by_class[name] = by_class.get(name, 0) + 1
    preview = md_table(
        ["case", "failure classes", "expected", "last message"],
        [
            (
                f"`{c.case_id}`",
                ", ".join(c.tags.failure_classes) or None,
                f"{c.expected.kind} ({c.expected.source})" if c.expected else None,
                c.input.messages[-1].get("content") if c.input.messages else None,
            )
            for c in cases[:10]
        ],
        max_cell=60,
    )
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(cases),
            "version_id": result.version_id or "none",
            "new_version": result.created,
            "parent_version": result.parent_version or "none",
            "cases_added": len(result.added),
            "cases_removed": len(result.removed),
            "cases_changed": len(result.changed),
            "counts_by_failure_class": dg.MetadataValue.json(dict(sorted(by_class.items()))),
            "summary": result.message,
            "preview": dg.MetadataValue.md(preview if cases else "empty"),
        }
    )
    yield dg.AssetCheckResult(check_name="golden_not_empty", passed=bool(cases), metadata={"cases": len(cases)})
    bad = [c.case_id or "<no id>" for c in cases if not c.case_id or not c.contract.checks]
    yield dg.AssetCheckResult(
        check_name="golden_cases_have_id_and_contract",
        passed=not bad,
        metadata={"cases_without": len(bad), "examples": ", ".join(bad[:5])},
    )
    leaks = [
        (c.case_id, m.kind)
        for c in cases
        for m in pii_in_value(
            [c.input.model_dump(mode="json"), c.expected.model_dump(mode="json") if c.expected else None],
            settings.redaction_patterns,
        )
    ]
    yield dg.AssetCheckResult(
        check_name="golden_no_pii",
        passed=not leaks,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"matches": len(leaks), "examples": str(leaks[:5])},
    )
    share = sum(1 for c in cases if c.expected is not None) / len(cases) if cases else 0.0
    yield dg.AssetCheckResult(
        check_name="golden_labelled_share",
        passed=share >= 0.2,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"labelled_share": round(share, 3)},
    )
    problems = store.verify_unchanged(root, result.dataset)
    yield dg.AssetCheckResult(
        check_name="golden_files_unchanged",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"problems": "\n".join(problems) or "none"},
    )


build_golden_job = dg.define_asset_job(
    "build_golden",
    selection=[golden_dataset],
    description="Build the next golden dataset version of a workflow (a new version only when content changed).",
)
