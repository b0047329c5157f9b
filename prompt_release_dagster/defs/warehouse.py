"""Lake maintenance: compact small files and remove files no version needs any more."""

import dagster as dg

from prompt_release.warehouse.lake import DEFAULT_RETENTION_HOURS, lake_for, maintain
from prompt_release_dagster.resources import WarehouseResource


class MaintenanceConfig(dg.Config):
    # time travel to a version older than this fails once vacuum removed its files
    retention_hours: int = DEFAULT_RETENTION_HOURS


@dg.op(
    description="Lake backend: optimize (compact) every table, then vacuum files unreferenced for "
    "longer than the retention (default 7 days: time travel reaches back that far). "
    "Nothing to do on a DuckDB file."
)
def lake_maintenance_op(
    context: dg.OpExecutionContext, config: MaintenanceConfig, warehouse: WarehouseResource
) -> dict:
    lake = lake_for(warehouse.path)
    if lake is None:
        context.log.info("the warehouse is a DuckDB file: nothing to maintain")
        return {}
    done = maintain(lake, retention_hours=config.retention_hours)
    context.add_output_metadata(
        {
            "files_compacted": sum(t["files_removed"] for t in done.values()),
            "files_written": sum(t["files_added"] for t in done.values()),
            "files_vacuumed": sum(t["vacuumed"] for t in done.values()),
            "retention_hours": config.retention_hours,
        }
    )
    return done


@dg.job(description="Compact and vacuum the lake's Delta tables (no-op on a DuckDB file).")
def lake_maintenance():
    lake_maintenance_op()


@dg.schedule(
    cron_schedule="0 5 * * 0",
    job=lake_maintenance,
    execution_timezone="UTC",
    description="Weekly, Sunday 05:00 UTC: compact small files, vacuum past the retention.",
)
def weekly_lake_maintenance(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"lake_maintenance:{context.scheduled_execution_time:%Y-%m-%d}")
