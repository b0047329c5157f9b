"""`make deploy-demo`: the demo's release story on the deployment shape, the sensors ticked by the daemon.

PostgreSQL holds the Dagster instance, Redis is the Celery broker, two Celery
workers run every step, `dagster-daemon` dequeues runs and ticks the sensors,
and the UI serves the same instance (`LocalDeployment`). This script does
what a person or a CI job would: it generates the history, launches the
ingest and golden-set runs through the UI's GraphQL API, labels the golden
sets, switches the sensors on, and serves canary and shadow traffic; the
evaluations, promotions, canary looks, roll forward and rollback are runs the
daemon launches from sensor ticks.

The warehouse is the DuckDB file of this machine by default (every worker
reaches it); `--warehouse` puts it in a lake (a local folder, or S3 for
workers on other machines).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
from dagster_graphql import DagsterGraphQLClient

from prompt_release import config
from prompt_release.golden import store as golden_store
from prompt_release.llm.endpoint import SIMULATOR_LATENCY_MS, SIMULATOR_LATENCY_PER_TOKEN_MS
from prompt_release.llm.simulator import start_simulator
from prompt_release.registry import Registry
from prompt_release.release.watch import WatchCursor, canary_actions, open_candidates
from prompt_release.sample.generator import align_label_history, generate
from prompt_release_dagster.demo import (
    ACTOR,
    CANARY_LOOKS,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
    DemoResult,
    _latest_canary_decision,
    _where,
    label_golden,
    one_line_hotfix,
    prepare_state,
    push_to_canary,
    record_report,
    routing_regression,
    serve,
    summary_table,
)
from prompt_release_dagster.instance import ensure_pool_limits
from prompt_release_dagster.local_deployment import LocalDeployment

TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
START_SENSOR = """mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
  __typename ... on Sensor { id } ... on PythonError { message } } }"""
SET_CURSOR = """mutation($selector: SensorSelector!, $cursor: String) {
  setSensorCursor(sensorSelector: $selector, cursor: $cursor) {
  __typename ... on PythonError { message } } }"""
REPOSITORIES = """{ repositoriesOrError { __typename ... on RepositoryConnection {
  nodes { name location { name } } } } }"""
STOP_SENSOR = """mutation($id: String!) { stopSensor(id: $id) {
  __typename ... on PythonError { message } } }"""
SENSOR_STATE = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { status ticks(limit: 1) { status } } } } }"""
# How often this script looks at the instance while it waits on a run.
POLL_S = 0.5
STOP_ATTEMPTS = 5


class DeployedStory:
    """Launches runs through the webserver, waits on them and on sensor-launched runs in the instance."""

    def __init__(self, deployment: LocalDeployment, instance: dg.DagsterInstance, timeout_s: float = 900) -> None:
        self.deployment = deployment
        self.instance = instance
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.ports["webserver"], timeout=120)
        self.timeout_s = timeout_s
        self.sensor_ids: dict[str, str] = {}
        # The code location's names as the webserver reports them (workspace.yaml decides them).
        [repository] = self._graphql(REPOSITORIES, {})["repositoriesOrError"]["nodes"]
        self.selector = {"repositoryLocationName": repository["location"]["name"], "repositoryName": repository["name"]}

    def _graphql(self, query: str, variables: dict) -> dict:
        response = httpx.post(
            f"{self.deployment.ui_url}/graphql", json={"query": query, "variables": variables}, timeout=120
        )
        response.raise_for_status()
        return response.json()["data"]

    def start_sensor(self, name: str, *, cursor: str | None = None) -> None:
        """Switch a sensor on for the daemon; `cursor` first, as the UI's "Set cursor" does."""
        selector = {**self.selector, "sensorName": name}
        if cursor is not None:
            result = self._graphql(SET_CURSOR, {"selector": selector, "cursor": cursor})["setSensorCursor"]
            if result["__typename"] == "PythonError":
                raise RuntimeError(f"could not set the cursor of {name}: {result['message']}")
        result = self._graphql(START_SENSOR, {"selector": selector})["startSensor"]
        if result["__typename"] != "Sensor":
            raise RuntimeError(f"could not start {name}: {result}")
        self.sensor_ids[name] = result["id"]

    def stop_sensor(self, name: str) -> None:
        """Switch a sensor off, and see that it stays off.

        The daemon ends a tick by writing back the sensor's state as it read it a moment before, so a
        stop that lands in between is undone and the sensor runs on (dagster-io/dagster#7736, made
        rarer, not impossible). Reproduced here: 1 stop in 15, taken 2-5 s after a start. So: stop,
        wait for the tick in flight to end, read the status, and stop again if it says RUNNING.
        """
        sensor_id = self.sensor_ids.pop(name)
        selector = {**self.selector, "sensorName": name}
        for _ in range(STOP_ATTEMPTS):
            result = self._graphql(STOP_SENSOR, {"id": sensor_id})["stopSensor"]
            if result["__typename"] == "PythonError":
                raise RuntimeError(f"could not stop {name}: {result['message']}")
            status = self._settled_status(selector)
            if status == "STOPPED":
                return
            self.deployment.log(f"      {name} ran on after its stop (a tick wrote its old state back): stop again")
        raise RuntimeError(f"{name} is still {status} after {STOP_ATTEMPTS} stops: {self.deployment.ui_url}")

    def _settled_status(self, selector: dict) -> str:
        """The sensor's status once no tick of it is in flight (a tick writes its state as it ends)."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            sensor = self._graphql(SENSOR_STATE, {"selector": selector})["sensorOrError"]
            if sensor["__typename"] != "Sensor":
                raise RuntimeError(f"could not read {selector['sensorName']}: {sensor}")
            ticks = sensor["sensorState"]["ticks"]
            if not ticks or ticks[0]["status"] != "STARTED":
                # The tick's row is written just before the state: read the status after that write.
                time.sleep(POLL_S)
                return self._graphql(SENSOR_STATE, {"selector": selector})["sensorOrError"]["sensorState"]["status"]
            time.sleep(POLL_S)
        raise RuntimeError(f"a tick of {selector['sensorName']} did not end in {self.timeout_s:.0f}s")

    def submit(self, job: str, *, partition: str | None = None, tags: dict | None = None,
               assets: list[str] | None = None) -> str:  # fmt: skip
        tags = {**(tags or {}), **({"dagster/partition": partition} if partition else {})}
        return self.client.submit_job_execution(
            job,
            repository_location_name=self.selector["repositoryLocationName"],
            repository_name=self.selector["repositoryName"],
            tags=tags,
            asset_selection=assets,
        )

    def launch(self, job: str, **kwargs) -> dg.DagsterRun:
        return self.wait(self.submit(job, **kwargs))

    def wait(self, run_id: str, *, require_success: bool = True) -> dg.DagsterRun:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            run = self.instance.get_run_by_id(run_id)
            if run and run.status in TERMINAL:
                if require_success and run.status != dg.DagsterRunStatus.SUCCESS:
                    raise RuntimeError(
                        f"run {run_id} ({run.job_name}) {run.status.value}: "
                        f"{failure_reason(self.instance, run_id)} ({self.deployment.ui_url}/runs/{run_id})"
                    )
                return run
            time.sleep(POLL_S)
        raise RuntimeError(
            f"run {run_id} not finished after {self.timeout_s:.0f}s: {self.deployment.ui_url}/runs/{run_id}"
        )

    def sensor_run(self, sensor: str, run_key: str, *, require_success: bool = True) -> dg.DagsterRun:
        """Wait for the daemon to launch the run of this sensor and run key, then for it to finish."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            runs = self.instance.get_runs(dg.RunsFilter(tags={SENSOR_NAME_TAG: sensor, RUN_KEY_TAG: run_key}), limit=1)
            if runs:
                return self.wait(runs[0].run_id, require_success=require_success)
            time.sleep(POLL_S)
        raise RuntimeError(f"{sensor} launched no run for {run_key} in {self.timeout_s:.0f}s")

    def materialization(self, run_id: str, asset: str) -> dict:
        """The metadata of the run's first materialization of `asset`."""
        records = self.instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        for record in records:
            materialization = record.event_log_entry.asset_materialization
            if materialization.asset_key == dg.AssetKey(asset):
                return {k: v.value for k, v in materialization.metadata.items()}
        raise RuntimeError(f"run {run_id} materialized no {asset}")


def failure_reason(instance: dg.DagsterInstance, run_id: str) -> str:
    """What the run's failed steps and the run itself said, in one line each."""
    lines = []
    failures = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    for record in instance.get_records_for_run(run_id, of_type=failures).records:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None)
        detail = error.message.strip().splitlines()[0] if error and error.message else ""
        lines.append(f"{event.step_key or 'run'}: {event.message or ''} {detail}".strip())
    return "; ".join(lines) or "no failure event"


@contextmanager
def deployed_story(
    state_dir: Path,
    deployment_settings: dict | None = None,
    *,
    days: int = 30,
    scale: float = 1.0,
    canary_requests: int = 2000,
    shadow_requests: int = 200,
    seed: int = 7,
    warehouse: str | None = None,
    log: Callable[[str], None] = print,
    on_ready: Callable | None = None,
) -> Iterator[tuple[DemoResult, DeployedStory]]:
    """`make demo`'s story (prompt_release_dagster.demo.run_demo) with every run launched through the
    deployment: runs it, then yields with the deployment still up (its instance, its UI); stops it after."""
    started = time.monotonic()
    paths = prepare_state(state_dir, warehouse)
    result = DemoResult(state_dir, paths["registry"], paths["warehouse"])
    today = datetime.now(UTC).date()
    start = today - timedelta(days=days)
    yesterday = today - timedelta(days=1)
    timings: dict[str, float] = {}
    lap = [time.monotonic()]

    def step(name: str, message: str) -> None:
        now = time.monotonic()
        timings[name] = now - lap[0]
        lap[0] = now
        log(f"{message}  ({timings[name]:.0f}s)")

    with start_simulator(
        port=0, latency_ms=SIMULATOR_LATENCY_MS, latency_per_token_ms=SIMULATOR_LATENCY_PER_TOKEN_MS
    ) as simulator:
        code_location_env = {
            config.ENV_WAREHOUSE: str(paths["warehouse"]),
            config.ENV_REGISTRY: str(paths["registry"]),
            config.ENV_LANDING: str(paths["landing"]),
            config.ENV_BASE_URL: simulator.base_url,
            # The demo compresses the release policy's minimum canary duration to zero, as `make demo` does.
            config.ENV_CANARY_MIN_DURATION: "0",
        }
        with (
            LocalDeployment(env=code_location_env, log=log, **(deployment_settings or {})) as deployment,
            _instance(deployment) as instance,
        ):
            # The pools' limits live in the instance's database (a new one here): ours are set as `make demo` sets them.
            ensure_pool_limits(instance)
            story = DeployedStory(deployment, instance)
            step("services", "[0/9] PostgreSQL, Redis, workers, daemon and UI up")
            if on_ready:
                on_ready(deployment, instance)

            registry = Registry(paths["registry"])
            hashes = {p.version_id: p.package_hash for p in registry.list_versions()}
            truth = generate(
                paths["landing"], days=days, seed=seed, scale=scale, start_date=start, package_hashes=hashes
            )
            align_label_history(paths["registry"], truth)
            calls = sum(n for w in truth["calls_per_day"].values() for v in w.values() for n in v.values())
            step(
                "generate",
                f"[1/9] generated {calls:,} production calls over {days} days in {len(truth['files'])} files",
            )

            story.launch("__ASSET_JOB", assets=["prompt_versions"])
            story.launch(
                "daily_ingest",
                tags={
                    "dagster/asset_partition_range_start": start.isoformat(),
                    "dagster/asset_partition_range_end": yesterday.isoformat(),
                },
            )
            step("ingest", "[2/9] ingested, failures mined, version metrics computed (Celery workers)")

            for prompt_id in registry.served_prompt_ids():
                story.launch("build_golden", partition=prompt_id)
                numbers = golden_store.versions(paths["registry"], f"{prompt_id}_golden")
                result.golden_versions[prompt_id] = f"{prompt_id}_golden:v{max(numbers)}"
            coverage = [label_golden(paths, truth, result, prompt_id) for prompt_id in list(result.golden_versions)]
            step("golden", f"[3/9] golden datasets: {', '.join(coverage)}")

            # 4. The daemon ticks candidate_sensor: one evaluation run per open candidate.
            candidates = open_candidates(registry)
            story.start_sensor("candidate_sensor")
            for candidate, package_hash in sorted(candidates.items()):
                # A rejected candidate's run fails its blocking gate check, by design: any end will do.
                story.sensor_run("candidate_sensor", f"{candidate}@{package_hash}", require_success=False)
            # `make demo` ticks it once; left on, it would also evaluate scenario 2's hotfix, which skips the gate.
            story.stop_sensor("candidate_sensor")
            for candidate in candidates:
                record_report(result, candidate)
            verdicts = ", ".join(f"{c} {r['verdict'].upper()}" for c, r in sorted(result.reports.items()))
            step("evaluate", f"[4/9] gate reports: {verdicts}")

            # 5. The daemon ticks gate_sensor: each promote / reject report becomes a promote run. Without
            # a cursor the release sensors start at now; the warehouse is new, so they start at its beginning.
            beginning = WatchCursor.beginning().dump()
            story.start_sensor("gate_sensor", cursor=beginning)
            for report in result.reports.values():
                if report["verdict"] != "freeze":
                    story.sensor_run("gate_sensor", report["report_id"])
            for candidate in result.reports:
                result.promotions[candidate] = _where(paths["registry"], candidate)
            moved = ", ".join(f"{c} -> {s}" for c, s in sorted(result.promotions.items()))
            step("promote", f"[5/9] after the gate sensor: {moved}")
            story.start_sensor("canary_sensor", cursor=beginning)

            def canary_round(prompt_id: str, requests: int, seed: int, looks: int = CANARY_LOOKS) -> dict | None:
                """Traffic in batches; after each ingest the daemon's canary_sensor looks, then acts."""
                decision = None
                for look in range(looks):
                    served = serve(paths, simulator.base_url, prompt_id, requests, seed=seed * 100 + look)
                    for day in served.days:  # two days when the traffic ran past midnight
                        story.launch("daily_ingest", partition=day)
                    # The look the sensor asks for now: the key it derives from the newest ingest.
                    watched = canary_actions(paths["warehouse"], registry, WatchCursor())
                    keys = [a.key for a in watched.actions if a.kind == "look_at_canary" and a.prompt_id == prompt_id]
                    if not keys:  # no live canary (the gate did not promote, e.g. at a tiny --scale)
                        log(f"      no live canary of {prompt_id} to look at")
                        break
                    story.sensor_run("canary_sensor", keys[0])
                    decision = _latest_canary_decision(paths["warehouse"], prompt_id)
                    log(
                        f"      look {look + 1}: {decision['action'] if decision else 'no decision'}"
                        + (f" ({decision['candidate_traces']} canary traces)" if decision else "")
                    )
                    if decision and decision["action"] != "freeze":
                        story.sensor_run("canary_sensor", decision["decision_id"])
                        break
                if decision:
                    result.canary_decisions.append(decision)
                return decision

            def pushed_to_canary(version: str, change: str, seed: int) -> dict | None:
                """Break glass: `version` straight to a 20% canary, then canary rounds until it is decided."""
                push_to_canary(registry, version, change)
                story.launch("__ASSET_JOB", assets=["prompt_versions"])
                decision = canary_round("support_router", canary_requests, seed=seed)
                result.promotions[version] = registry.load_package(version).status
                return decision

            decision = canary_round("support_router", canary_requests, seed=1)
            production = registry.resolve_label("support_router", "production")
            step("canary", f"[6/9] canary support_router: {decision and decision['action']} -> production {production}")

            # 7. Scenario 2: the one-line hotfix, first in shadow, then forced straight to canary.
            hotfix = one_line_hotfix(paths["registry"])
            registry.move_label(
                "support_router", "shadow", hotfix, reason="watch the hotfix on live requests", actor=ACTOR
            )
            shadowed = serve(paths, simulator.base_url, "support_router", shadow_requests, seed=300, shadow_share=0.5)
            for day in shadowed.days:
                story.launch("daily_ingest", partition=day)
            compared = story.launch("shadow_comparison_job", partition="support_router")
            shadow = story.materialization(compared.run_id, "shadow_comparison")
            result.shadow = {"pairs": shadow["pairs"], "would": shadow["would"], **shadowed.shadow}
            log(f"      shadow: {hotfix} answered {result.shadow['pairs']} live requests unserved; "
                f"against production it would {result.shadow['would']}")  # fmt: skip
            decision = pushed_to_canary(hotfix, "hotfix", seed=2)
            step("hotfix", f"[7/9] canary {hotfix} (one-line edit, no gate): {decision and decision['action']} "
                 f"-> {hotfix} is {result.promotions[hotfix]}")  # fmt: skip

            story.launch("build_golden", partition="support_router")
            step(
                "incident",
                f"[8/9] golden set after the incident: {label_golden(paths, truth, result, 'support_router')}",
            )

            # 9. Scenario 3: valid JSON, wrong routes for one intent; only what users feel shows it.
            regression = routing_regression(paths["registry"])
            decision = pushed_to_canary(regression, "routing change", seed=3)
            step("routing", f"[9/9] canary {regression} (billing routed to technical, no gate): "
                 f"{decision and decision['action']} -> {regression} is {result.promotions[regression]}"
                 + (f" ({decision['reason']})" if decision else ""))  # fmt: skip
            story.launch("build_golden", partition="support_router")
            log(f"      golden set after the routing incident: {label_golden(paths, truth, result, 'support_router')}")
            story.launch("__ASSET_JOB", assets=["prompt_versions"])
            for candidate in list(result.promotions):
                result.promotions[candidate] = _where(paths["registry"], candidate)
            result.runs = len(instance.get_run_records())
            result.seconds = time.monotonic() - started
            log("seconds per phase: " + ", ".join(f"{name} {s:.0f}" for name, s in timings.items()))
            yield result, story


class _instance:
    """The deployment's instance, opened in this process with the deployment's environment."""

    def __init__(self, deployment: LocalDeployment) -> None:
        self.deployment = deployment
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> dg.DagsterInstance:
        for name in ("DAGSTER_HOME", *[k for k in self.deployment.env if k.startswith("DAGSTER_PG_")]):
            self.saved[name] = os.environ.get(name)
            os.environ[name] = self.deployment.env[name]
        self.instance = dg.DagsterInstance.get()
        return self.instance

    def __exit__(self, *exc) -> None:
        self.instance.dispose()
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", module="dagster")
    parser = argparse.ArgumentParser(
        prog="python -m prompt_release_dagster.deploy_demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--state-dir", default=".prompt_release/deploy", help="the demo's registry copy, warehouse")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--canary-requests", type=int, default=2000)
    parser.add_argument("--warehouse", default=None, help="a lake (s3://bucket/prefix, file:///folder, *.lake)")
    parser.add_argument("--keep", action="store_true", help="keep the deployment up (the UI) until Ctrl-C")
    args = parser.parse_args(argv)
    state_dir = Path(args.state_dir).resolve()
    print(f"prompt-release deploy demo: state in {state_dir}", flush=True)

    def ready(deployment: LocalDeployment, instance: dg.DagsterInstance) -> None:
        print(f"Open the Dagster UI while it runs: {deployment.ui_url}", flush=True)

    try:
        with deployed_story(
            state_dir,
            days=args.days,
            scale=args.scale,
            canary_requests=args.canary_requests,
            warehouse=args.warehouse,
            log=lambda message: print(message, flush=True),
            on_ready=ready,
        ) as (result, story):
            print(summary_table(result).replace("make ui   (then open http://127.0.0.1:3000)", story.deployment.ui_url))
            if args.keep:
                print(f"The deployment stays up: {story.deployment.ui_url}  (Ctrl-C stops everything)", flush=True)
                signal.pause()
    except KeyboardInterrupt:
        print("interrupted: every process this demo started was stopped", file=sys.stderr)
        return 130
    print("Every process this demo started (PostgreSQL, Redis, workers, daemon, UI) was stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
