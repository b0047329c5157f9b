"""Ingest on arrival: `landing_sensor` hands new landing files to `ingest_arrivals`, which ingests
them and looks at every live canary right after, so a canary decides within minutes of its traffic
landing. The nightly `daily_ingest` schedule stays as the catch-up (it replaces whole days, the
same rows: ingest deduplicates on record_key and event_key).

Latency from a landed file to a canary decision, with the intervals below: at most
`LANDING_SENSOR_INTERVAL_S` until the sensor sees the file, plus the run (ingest + analysis);
acting on the decision (roll forward / rollback) waits for `canary_sensor` (60 s). Measured by
`bench/arrival_latency.py`.
"""

import hashlib

import dagster as dg

from prompt_release.registry import CANARY, Registry
from prompt_release.release.canary import analyse_canary
from prompt_release.traces import ingest_paths
from prompt_release.traces.arrivals import ArrivalCursor, new_files
from prompt_release_dagster.resources import WAREHOUSE_POOL, LandingResource, RegistryResource, WarehouseResource

LANDING_SENSOR_INTERVAL_S = 30


class ArrivedFilesConfig(dg.Config):
    files: list[str]


@dg.op(pool=WAREHOUSE_POOL, description="Ingest the landing files the sensor found, then look at every live canary.")
def ingest_arrived_files(
    context: dg.OpExecutionContext,
    config: ArrivedFilesConfig,
    warehouse: WarehouseResource,
    registry: RegistryResource,
) -> None:
    summary = ingest_paths(config.files, warehouse=warehouse.path)
    total = summary.total
    opened = Registry(registry.path)
    looks = []
    for prompt_id in opened.prompt_ids():
        if CANARY not in opened.labels(prompt_id):
            continue
        analysis = analyse_canary(warehouse.path, opened, prompt_id)
        if analysis is not None:
            looks.append((prompt_id, analysis.action, analysis.decision_id, analysis.decision.reason))
            context.log.info(
                f"{prompt_id}: canary {analysis.action} ({analysis.decision_id}): {analysis.decision.reason}"
            )
    context.add_output_metadata(
        {
            "files": len(config.files),
            "rows_stored": total.stored,
            "duplicates_skipped": total.duplicates,
            "rejected": total.rejected,
            "events": total.events,
            "events_unknown_call": total.events_unknown_call,
            "canary_looks": dg.MetadataValue.json([list(look) for look in looks]),
        }
    )


@dg.job(description="Ingest newly landed files (config: files) and look at every live canary right after.")
def ingest_arrivals():
    ingest_arrived_files()


@dg.sensor(
    jobs=[ingest_arrivals],
    minimum_interval_seconds=LANDING_SENSOR_INTERVAL_S,
    description="New or grown trace files in today's and yesterday's landing folders -> ingest_arrivals "
    "(a batch of at most 50 files per run, oldest first; cursor = newest modification time handed out).",
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingResource):
    files, cursor = new_files(landing.path, ArrivalCursor.parse(context.cursor))
    if not files:
        return dg.SensorResult(skip_reason="no new landing files", cursor=context.cursor)
    key = hashlib.sha256(cursor.dump().encode() + "\n".join(files).encode()).hexdigest()[:16]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"arrivals:{key}",
                job_name="ingest_arrivals",
                run_config={"ops": {"ingest_arrived_files": {"config": {"files": files}}}},
                tags={"files": str(len(files))},
            )
        ],
        cursor=cursor.dump(),
    )
