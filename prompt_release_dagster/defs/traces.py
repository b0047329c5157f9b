"""`traces`: a day's landing files ingested into the warehouse, with its data contract checks.

One run ingests every day of its partition range (single-run backfill), each
day replacing exactly the rows that came from that day's folder.
"""

import dagster as dg

from prompt_release import config
from prompt_release.markdown import md_table
from prompt_release.traces import ingest_day
from prompt_release_dagster.partitions import DAILY
from prompt_release_dagster.resources import LandingResource, WarehouseResource, day_write_pool

REQUIRED_COLUMNS = ("span_id", "trace_id", "ts", "day", "workflow", "model", "status", "record_key", "source_file")


@dg.asset(
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=day_write_pool(),
    group_name="ingest",
    kinds={"duckdb"},
    description="One row per LLM call from the landing folder's day folders (native JSONL, OTLP GenAI, "
    "OpenInference); lines that cannot be ingested go to ingest_rejects with their reason.",
    check_specs=[
        dg.AssetCheckSpec(
            "reject_rate_below_bound",
            asset="traces",
            blocking=True,
            description="rejected records / records <= PROMPT_RELEASE_MAX_REJECT_RATE "
            f"(default {config.DEFAULT_MAX_REJECT_RATE:.0%})",
        ),
        dg.AssetCheckSpec(
            "required_columns_not_null",
            asset="traces",
            description="every stored call has " + ", ".join(REQUIRED_COLUMNS),
        ),
    ],
)
def traces(context: dg.AssetExecutionContext, warehouse: WarehouseResource, landing: LandingResource):
    days = context.partition_keys
    totals: dict[str, int] = {
        "records": 0,
        "stored": 0,
        "duplicates": 0,
        "rejected": 0,
        "non_call_spans": 0,
        "prompt_version_missing": 0,
        "files": 0,
        "events": 0,
        "event_duplicates": 0,
        "events_unknown_call": 0,
    }
    by_format: dict[str, dict[str, int]] = {}
    for i, day in enumerate(days, 1):
        summary = ingest_day(landing.path, day, warehouse=warehouse.path)
        for name in totals:
            totals[name] += getattr(summary.total, name)
        for fmt, counts in summary.by_format.items():
            slot = by_format.setdefault(fmt, {"files": 0, "records": 0, "stored": 0, "rejected": 0})
            for name in slot:
                slot[name] += getattr(counts, name)
        if len(days) > 1 and (i == len(days) or i % max(1, len(days) // 10) == 0):
            context.log.info(f"ingested {i}/{len(days)} days ({totals['stored']} rows so far)")
    first, last = days[0], days[-1]
    with warehouse.read() as con:
        versions = con.execute(
            "SELECT coalesce(prompt_version, '(unknown)'), count(*) FROM traces WHERE day BETWEEN ? AND ? "
            "GROUP BY ALL ORDER BY 2 DESC",
            [first, last],
        ).fetchall()
        preview = con.execute(
            "SELECT ts, workflow, prompt_version, status, latency_ms, left(output, 60) FROM traces "
            "WHERE day BETWEEN ? AND ? ORDER BY ts LIMIT 8",
            [first, last],
        ).fetchall()
        nulls = con.execute(
            "SELECT "
            + ", ".join(f"count(*) FILTER (WHERE {c} IS NULL)" for c in REQUIRED_COLUMNS)
            + " FROM traces WHERE day BETWEEN ? AND ?",
            [first, last],
        ).fetchall()[0]
    reject_rate = totals["rejected"] / totals["records"] if totals["records"] else 0.0
    bound = config.max_reject_rate()
    missing = {c: n for c, n in zip(REQUIRED_COLUMNS, nulls, strict=True) if n}
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": totals["stored"],
            "days": f"{first} .. {last}" if first != last else first,
            "rows_stored": totals["stored"],
            "rejected": totals["rejected"],
            "duplicates_skipped": totals["duplicates"],
            "prompt_version_missing": totals["prompt_version_missing"],
            "late_events": totals["events"],
            "late_events_duplicate": totals["event_duplicates"],
            "late_events_unknown_call": totals["events_unknown_call"],
            "by_format": dg.MetadataValue.md(
                md_table(
                    ["format", "files", "records", "stored", "rejected"],
                    [(f, c["files"], c["records"], c["stored"], c["rejected"]) for f, c in sorted(by_format.items())],
                )
            ),
            "by_prompt_version": dg.MetadataValue.md(md_table(["prompt version", "calls"], versions)),
            "preview": dg.MetadataValue.md(
                md_table(["ts", "workflow", "prompt version", "status", "latency ms", "output"], preview)
            ),
        }
    )
    yield dg.AssetCheckResult(
        check_name="reject_rate_below_bound",
        passed=reject_rate <= bound,
        metadata={
            "reject_rate": reject_rate,
            "rejected": totals["rejected"],
            "records": totals["records"],
            "bound": bound,
        },
    )
    yield dg.AssetCheckResult(
        check_name="required_columns_not_null",
        passed=not missing,
        metadata={"null_counts": dg.MetadataValue.json(missing)},
    )


daily_ingest = dg.define_asset_job(
    "daily_ingest",
    selection=["traces", "failures", "version_metrics"],
    description="Ingest a day's landing files, mine its failures, compute its per-version metrics.",
)
daily_ingest_schedule = dg.build_schedule_from_partitioned_job(
    daily_ingest, hour_of_day=1, description="Every night: yesterday's traces, failures and version metrics."
)
