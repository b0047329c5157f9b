"""Issue 15: the release story on the deployment shape, PostgreSQL + Redis + two Celery workers + the daemon.

One deployment is brought up for the module (`deployed_story`, what `make
deploy-demo` runs): the story runs with the sensors ticked by `dagster-daemon`,
every step on a Celery worker, and the tests read what it left in the
instance's PostgreSQL database. The embedded demo runs the same story at the
same scale (tests/dagster_demo.py) in its own process, meanwhile, for the
comparison. The worker-kill test leaves one worker; the last test stops the
deployment and looks for any process it left.

`make test` runs this module as its own step after the suite (the `deployment`
marker); in CI (`CI` set) a missing `deploy` extra or server fails it instead of
skipping it.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pytest

from prompt_release.registry import Registry
from prompt_release_dagster.definitions import defs
from prompt_release_dagster.demo import RUN_KEY_TAG, SENSOR_NAME_TAG, DemoResult
from prompt_release_dagster.resources import WAREHOUSE_POOL
from tests.dagster_demo import CANARY_REQUESTS, DAYS, SCALE, SEED, TIMEOUT_S, decisions, run_demo_process
from tests.pools import step_pools

try:
    import dagster_celery  # noqa: F401
    import psycopg2

    from prompt_release_dagster.deploy_demo import deployed_story, failure_reason
    from prompt_release_dagster.local_deployment import pg_binary

    pg_binary("initdb")
    if not shutil.which("redis-server"):
        raise RuntimeError("redis-server not found")
except (ImportError, RuntimeError) as missing:
    if os.environ.get("CI"):
        raise  # CI installs both (make deploy-install): a missing one is a broken setup, never a skip
    pytest.skip(f"the deployment shape needs `make deploy-install`: {missing}", allow_module_level=True)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.deployment,
    pytest.mark.xdist_group("deployment"),
    # The module's first test sets the deployment up and runs the whole story (minutes on 2 busy cores).
    pytest.mark.timeout(2400),
]

# Longer than any step at this scale, so only a lost worker's step is handed out again (a shorter one
# would hand a step still running to the other worker); the kill test waits about this long.
VISIBILITY_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory):
    """The embedded demo, started now in its own process; `.result()` waits for it."""
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(run_demo_process, tmp_path_factory.mktemp("embedded"), timeout_s=2 * TIMEOUT_S)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, embedded):
    scale = {"days": DAYS, "scale": SCALE, "canary_requests": CANARY_REQUESTS, "seed": SEED}
    with deployed_story(
        tmp_path_factory.mktemp("deployed"),
        {"visibility_timeout_s": VISIBILITY_TIMEOUT_S},
        log=lambda message: print(message, flush=True),
        **scale,
    ) as (result, story):
        yield result, story


def test_the_deployed_story_decides_as_the_embedded_demo(deployed, embedded) -> None:
    result, _ = deployed
    embedded_result: DemoResult = embedded.result().result
    assert decisions(result) == decisions(embedded_result)
    gates = {c: (r["failed"], r["inconclusive"]) for c, r in result.reports.items()}
    assert gates == {c: (r["failed"], r["inconclusive"]) for c, r in embedded_result.reports.items()}
    # (labelled, cases) per golden set; the embedded result came through JSON, its pairs as lists
    assert result.golden_coverage == {k: tuple(v) for k, v in embedded_result.golden_coverage.items()}
    assert result.reports["support_router:v1.6.0"]["verdict"] == "promote"
    # v1.6.0 rolled forward; the hotfix aborted on hard failures, the routing regression on what users felt
    assert [d["action"] for d in result.canary_decisions] == ["roll_forward", "abort", "abort"]
    reasons = [d["reason"] for d in result.canary_decisions]
    assert reasons == [d["reason"] for d in embedded_result.canary_decisions]


def test_runs_ticks_and_materializations_are_in_postgres(deployed) -> None:
    result, story = deployed
    instance = story.instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"

    def launched_by(job_name: str) -> set[str | None]:
        return {run.tags.get(SENSOR_NAME_TAG) for run in instance.get_runs(dg.RunsFilter(job_name=job_name))}

    assert launched_by("evaluate_candidate") == {"candidate_sensor"}
    assert launched_by("promote") == {"gate_sensor"}
    assert launched_by("roll_forward") == launched_by("rollback") == {"canary_sensor"}
    assert launched_by("canary_analysis_job") == {"canary_sensor"}
    for run in instance.get_runs(dg.RunsFilter(tags={SENSOR_NAME_TAG: "canary_sensor"})):
        assert run.tags[RUN_KEY_TAG] and run.status == dg.DagsterRunStatus.SUCCESS

    # The same facts read straight from the database the daemon and the workers wrote to.
    env = story.deployment.env
    with (
        psycopg2.connect(
            host=env["DAGSTER_PG_HOST"],
            port=int(env["DAGSTER_PG_PORT"]),
            user=env["DAGSTER_PG_USER"],
            dbname=env["DAGSTER_PG_DB"],
        ) as con,
        con.cursor() as cur,
    ):
        cur.execute(
            "SELECT count(*) FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
            "WHERE t.key = %s AND t.value IN ('gate_sensor', 'canary_sensor')",
            [SENSOR_NAME_TAG],
        )
        sensor_runs = cur.fetchone()[0]
        cur.execute("SELECT selector_id, status, count(*) FROM job_ticks GROUP BY 1, 2")
        ticks = cur.fetchall()
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key LIKE %s",
            ["%gate_report%"],
        )
        gate_materializations = cur.fetchone()[0]
    promotes = len([r for r in result.reports.values() if r["verdict"] != "freeze"])
    assert sensor_runs >= promotes + 2  # the promotions, a roll forward, a rollback, and the canary looks
    # One successful tick may launch several runs: at least one per sensor that launched any.
    assert sum(n for _, status, n in ticks if status == "SUCCESS") >= 3
    assert gate_materializations == len(result.reports)


def _warehouse_steps() -> set[str]:
    return {step for step, pool in step_pools(defs()).items() if pool == WAREHOUSE_POOL}


def _step_intervals(instance: dg.DagsterInstance, run_ids: list[str], steps: set[str]) -> list[tuple]:
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    intervals = []
    for run_id in run_ids:
        started = {}
        for record in instance.get_records_for_run(run_id, of_type=kinds).records:
            entry = record.event_log_entry
            if entry.step_key not in steps:
                continue
            if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                started[entry.step_key] = entry.timestamp
            else:
                intervals.append((started.pop(entry.step_key), entry.timestamp, run_id, entry.step_key))
    return sorted(intervals)


def test_warehouse_pool_steps_never_overlap_on_celery_workers(deployed) -> None:
    _, story = deployed
    instance = story.instance
    steps = _warehouse_steps()
    assert {"traces", "failures", "version_metrics", "gate_report"} <= steps

    # The candidate sensor launched one evaluation per open candidate in one tick: those runs were in
    # progress at the same time, each with warehouse steps, yet no two warehouse steps ever were.
    evaluations = [r.run_id for r in instance.get_runs(dg.RunsFilter(job_name="evaluate_candidate"))]
    stats = [instance.get_run_stats(run_id) for run_id in evaluations]
    assert len(evaluations) >= 2 and sorted(s.start_time for s in stats)[1] < min(s.end_time for s in stats)
    all_runs = [r.run_id for r in instance.get_runs()]
    intervals = _step_intervals(instance, all_runs, steps)
    assert len({run_id for _, _, run_id, _ in intervals} & set(evaluations)) >= 2
    for (_, end, run_a, step_a), (start, _, run_b, step_b) in zip(intervals, intervals[1:], strict=False):
        assert end <= start, f"{run_a}/{step_a} overlaps {run_b}/{step_b}"

    # Every one of those steps ran on a Celery worker, both workers took some.
    workers = set()
    for run_id in all_runs:
        for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records:
            metadata = record.event_log_entry.dagster_event.event_specific_data.metadata or {}
            if "Celery worker" in metadata:
                workers.add(metadata["Celery worker"].value.split("@")[0])
    assert workers == {"worker1", "worker2"}


def test_a_worker_killed_during_a_backtest_loses_no_run_and_the_rerun_pays_nothing(deployed) -> None:
    result, story = deployed
    instance: dg.DagsterInstance = story.instance
    registry = Registry(result.registry)
    # A new candidate: every backtest call of it is new, so the backtest is busy when the worker dies.
    version = registry.new_version(
        "support_router",
        version="1.9.0",
        from_version="support_router:v1.6.0",
        status="candidate",
        change_reason="deployment test: a fresh candidate",
    )
    template = Path(result.registry) / "prompts" / "support_router" / "v1.9.0.md"
    template.write_text(template.read_text() + "\nBe concise.\n")
    registry.register(version, actor="test")
    instance.add_dynamic_partitions("candidates", [version])

    run_id = story.submit("evaluate_candidate", partition=version)
    worker = _worker_running(instance, run_id, "backtest", timeout_s=600)
    story.deployment.kill(worker)

    run = story.wait(run_id, require_success=False)
    if run.status == dg.DagsterRunStatus.SUCCESS:
        # Redis handed the lost worker's step to the other worker once its visibility timeout passed.
        hosts = _workers_for_step(instance, run_id, "backtest")
        assert hosts[0] == worker and len(hosts) == 2 and hosts[1] != worker
    else:
        assert "backtest" in failure_reason(instance, run_id)

    rerun = story.wait(story.submit("evaluate_candidate", partition=version), require_success=False)
    metadata = _materialization_metadata(instance, rerun.run_id)
    assert metadata["calls_made"] == 0 and metadata["calls_cached"] > 0, metadata
    assert rerun.tags.get(SENSOR_NAME_TAG) is None  # the test's own runs: the sensor is off after step 4


def test_stopping_the_deployment_leaves_no_process_it_started(deployed) -> None:
    _, story = deployed
    groups = {p.popen.pid: p.name for p in story.deployment.processes}
    assert {"postgres", "redis", "webserver", "daemon"} <= set(groups.values())
    assert _live_members(groups), "the deployment's processes should be running before the stop"
    story.deployment.stop()
    assert _live_members(groups) == {}


def _live_members(groups: dict[int, str]) -> dict[int, str]:
    """Every running (not zombie) process in one of these process groups: pid -> its group's name."""
    live = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        state, pgid = fields[0], int(fields[2])
        if pgid in groups and state != "Z":
            live[int(stat.parent.name)] = groups[pgid]
    return live


def _materialization_metadata(instance: dg.DagsterInstance, run_id: str) -> dict:
    [record] = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records[:1]
    return {k: v.value for k, v in record.event_log_entry.asset_materialization.metadata.items()}


def _workers_for_step(instance: dg.DagsterInstance, run_id: str, step: str) -> list[str]:
    hosts = []
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records:
        entry = record.event_log_entry
        metadata = entry.dagster_event.event_specific_data.metadata or {}
        if entry.step_key == step and "Celery worker" in metadata:
            hosts.append(metadata["Celery worker"].value.split("@")[0])
    return hosts


def _worker_running(instance: dg.DagsterInstance, run_id: str, step: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        hosts = _workers_for_step(instance, run_id, step)
        if hosts:
            return hosts[0]
        time.sleep(0.5)
    raise AssertionError(f"{step} of run {run_id} did not start on a worker in {timeout_s:.0f}s")
