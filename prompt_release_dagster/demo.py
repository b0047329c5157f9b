"""`make demo`: the whole release workflow through Dagster on the embedded default.

DuckDB file + the built-in simulator, a persistent Dagster home under
`.prompt_release/` (so `make ui` shows every run afterwards), and a copy of the
sample registry under `.prompt_release/registry` (so the demo's label moves
and golden sets never touch the committed `prompts/` or `datasets/`).

Scenario 1: 30 days of production history are ingested and mined, golden sets
are built and labelled (`golden label --from` a file made from the sample
world's ground truth), the candidate sensor evaluates every open candidate
(support_router v1.6.0 promoted; v1.7.0 rejected, JSON contract; order_agent
v2.1.0 rejected, unsafe tool calls; summarizer v1.1.0 rejected by the judge,
its shorter summaries drop key facts), the gate
sensor promotes to staging and canary, canary traffic is served through the
runtime client against the simulator, ingested, analysed, and rolled forward.
Scenario 2: a one-line edit (v1.6.1: `[format] json` -> `[format] prose`)
first runs in shadow on half of 200 live requests (the `shadow_comparison`
asset compares it with production on them), then is pushed straight to canary
as a hotfix, skipping the gate; the canary analysis
sees the hard failures and the canary sensor rolls it back automatically; its
failing traces become incident cases of the next golden version.
Scenario 3: a routing change (billing tickets sent to the technical team) is
pushed straight to canary: its JSON is valid, so no hard failure shows, but
the customers it misroutes escalate and give thumbs-down, as late event lines;
the canary aborts it on a user-felt metric, and the decision names it.

Sensors are evaluated in-process, tick by tick as the daemon evaluates them
(`DemoDriver.tick`), so no daemon is needed; each tick is recorded in the
instance's tick storage as the daemon records it, so the UI's sensor pages show
the demo's tick history with the runs each tick launched.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

# Tick storage has no public API: the daemon records its ticks through these (dagster 1.13).
from dagster._core.definitions.selector import InstigatorSelector
from dagster._core.scheduler.instigation import InstigatorType, TickData, TickStatus
from dagster._serdes import create_snapshot_id
from dagster._utils.error import serializable_error_info_from_exc_info

from prompt_release import config
from prompt_release.gates.evaluate import latest_report
from prompt_release.golden import store as golden_store
from prompt_release.golden.labelling import label_from_file
from prompt_release.llm.endpoint import SIMULATOR_LATENCY_MS, SIMULATOR_LATENCY_PER_TOKEN_MS
from prompt_release.llm.simulator import start_simulator
from prompt_release.registry import Registry
from prompt_release.release.watch import WatchCursor
from prompt_release.sample.generator import align_label_history, generate
from prompt_release.sample.labels import write_label_file
from prompt_release.sample.traffic import simulate_traffic
from prompt_release.warehouse import read_connection
from prompt_release.warehouse.lake import lake_for
from prompt_release.warehouse.snapshot import analyst_path
from prompt_release_dagster import definitions as location
from prompt_release_dagster.instance import ensure_dagster_home, ensure_pool_limits
from prompt_release_dagster.resources import LandingResource, LLMResource, RegistryResource, WarehouseResource

REPO_ROOT = Path(__file__).resolve().parent.parent
# The tags by which Dagster's UI shows a run as launched by a sensor tick (what the daemon sets).
SENSOR_NAME_TAG = "dagster/sensor_name"
RUN_KEY_TAG = "dagster/run_key"
DEMO_SESSION_TAG = "prompt_release/demo"
# The code location's name in `make ui` (pyproject's [tool.dg.project]) and workspace.yaml: the
# UI finds a sensor's ticks by (location, repository, sensor name).
LOCATION_NAME = "prompt_release"
REPOSITORY_NAME = "__repository__"
ACTOR = "demo-engineer"


@dataclass
class DemoResult:
    state_dir: Path
    registry: Path
    warehouse: Path | str
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # candidate -> report summary
    promotions: dict[str, str] = field(default_factory=dict)  # candidate -> promotion state
    canary_decisions: list[dict[str, Any]] = field(default_factory=list)
    golden_versions: dict[str, str] = field(default_factory=dict)
    golden_coverage: dict[str, tuple[int, int]] = field(default_factory=dict)  # dataset -> (labelled, cases)
    shadow: dict[str, Any] = field(default_factory=dict)  # the hotfix's shadow comparison
    runs: int = 0
    seconds: float = 0.0


def prepare_state(state_dir: Path, warehouse: str | None = None) -> dict[str, Any]:
    """A fresh demo state: registry copy, landing, warehouse and reports; the Dagster home is kept.

    `warehouse`: a lake (see config.lake_location) to use instead of the state's DuckDB file;
    a local lake folder is emptied first, an object-store lake must be new.
    """
    paths: dict[str, Any] = {
        "registry": state_dir / "registry",
        "landing": state_dir / "landing",
        "warehouse": state_dir / "warehouse.duckdb",
        "reports": state_dir / "reports",
        "labels": state_dir / "labels",
    }
    for key in ("registry", "landing", "reports", "labels"):
        shutil.rmtree(paths[key], ignore_errors=True)
    lake = lake_for(warehouse) if warehouse else None
    if lake is not None:
        paths["warehouse"] = lake.uri
        if not lake.is_s3:
            shutil.rmtree(lake.uri.removeprefix("file://"), ignore_errors=True)
    else:
        for stale in (paths["warehouse"], Path(f"{paths['warehouse']}.wal"), analyst_path(paths["warehouse"])):
            stale.unlink(missing_ok=True)
    paths["registry"].mkdir(parents=True)
    for folder in ("prompts", "schemas", "evals"):
        if (REPO_ROOT / folder).exists():
            shutil.copytree(REPO_ROOT / folder, paths["registry"] / folder)
    if (REPO_ROOT / "datasets" / "labels").exists():
        shutil.copytree(REPO_ROOT / "datasets" / "labels", paths["registry"] / "datasets" / "labels")
    return paths


def _patched_candidate(registry: Path, change_reason: str, old: str, new: str) -> str:
    """A patch of the production support_router whose template has `old` replaced by `new`, registered."""
    opened = Registry(registry)
    production = opened.resolve_label("support_router", "production")
    major, minor, patch = (int(p) for p in production.split(":v", 1)[1].split("."))
    existing = {p.name for p in (registry / "prompts" / "support_router").glob("v*.yaml")}
    while f"v{major}.{minor}.{patch}.yaml" in existing:
        patch += 1
    version = opened.new_version(
        "support_router",
        version=f"{major}.{minor}.{patch}",
        from_version=production,
        status="candidate",
        change_reason=change_reason,
    )
    template = registry / "prompts" / "support_router" / f"v{major}.{minor}.{patch}.md"
    template.write_text(template.read_text().replace(old, new))
    opened.register(version, actor=ACTOR)
    return version


def one_line_hotfix(registry: Path) -> str:
    """A patch of the production support_router with a one-line edit, registered as a candidate.

    The edit asks for prose instead of JSON: every unit test of the template
    still passes, and every downstream JSON parser breaks.
    """
    return _patched_candidate(registry, "Hotfix: friendlier tone for customers.", "[format] json", "[format] prose")


def routing_regression(registry: Path) -> str:
    """A patch of the production support_router that answers in valid JSON and routes billing wrong.

    The billing keywords now send tickets to the technical team: every answer
    parses and passes the schema, so no hard failure shows; the customers with
    a billing question feel it (they escalate and give thumbs-down, later).
    """
    return _patched_candidate(
        registry, "Route payment errors to the technical team.", "[route] billing:", "[route] technical:"
    )


def label_golden(paths: dict[str, Any], truth: dict[str, Any], result: DemoResult, prompt_id: str) -> str:
    """Reviewers' labels, here made from the sample world's ground truth, through `golden label
    --from`: the labelled set is written as the next version, which the backtests then read."""
    dataset = f"{prompt_id}_golden"
    label_file, _, _ = write_label_file(
        paths["registry"], dataset, truth, paths["labels"] / f"{dataset}.jsonl", warehouse=paths["warehouse"]
    )
    outcome = label_from_file(paths["warehouse"], paths["registry"], dataset, label_file, actor=ACTOR)
    result.golden_versions[prompt_id] = outcome.build.version_id if outcome.build else dataset
    result.golden_coverage[dataset] = (outcome.labelled, outcome.cases)
    return f"{result.golden_versions[prompt_id]} {outcome.labelled}/{outcome.cases} labelled"


def record_report(result: DemoResult, candidate: str) -> None:
    """The candidate's newest gate report, as the summary shows it (none yet: nothing recorded)."""
    report = latest_report(result.warehouse, candidate)
    if report:
        result.reports[candidate] = {
            "verdict": report.verdict,
            "report_id": report.report_id,
            "html": report.paths["html"],
            "failed": report.failed_gates,
            "inconclusive": report.inconclusive_gates,
        }


def serve(paths: dict[str, Any], base_url: str, prompt_id: str, requests: int, seed: int, shadow_share: float = 0.0):
    """Live requests of `prompt_id` through the runtime client, logged into the landing folder."""
    return simulate_traffic(
        paths["registry"],
        prompt_id,
        landing=paths["landing"],
        base_url=base_url,
        requests=requests,
        warehouse=paths["warehouse"],
        seed=seed,
        shadow_share=shadow_share,
    )


def push_to_canary(registry: Registry, version: str, change: str) -> None:
    """Scenarios 2 and 3: `version` (a `change`, e.g. "hotfix") straight to a 20% canary, skipping the
    gate. The canary label is protected, so this takes break glass, and the audit trail records it as forced."""
    reason = f"{change} pushed straight to canary, skipping the gate"
    registry.move_label("support_router", "canary", version, percent=20, force=True, reason=reason, actor=ACTOR)


# Canary rounds serve and look at most this often: the always-valid test may look after every batch.
CANARY_LOOKS = 5


# Runs the demo executes in its own process: one still in these states when a demo starts was left
# by a demo that was killed (Ctrl-C, a closed terminal), and still holds its pool slots.
_UNFINISHED = (
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.CANCELING,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
)


def reap_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark the runs a killed demo left unfinished as failed and free their `warehouse`/`llm` pool
    slots, so the next demo does not wait forever for a slot no process will release. Only runs a
    demo made (tagged with its session) are touched: runs launched from `make ui` over the same
    Dagster home belong to the webserver's processes, not to a demo."""
    reaped = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=list(_UNFINISHED))):
        if DEMO_SESSION_TAG not in run.tags:
            continue
        instance.report_run_failed(run, "the demo process that ran it ended before the run did")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped


class DemoDriver:
    """Runs the code location's jobs and sensor ticks in this process, on the demo's resources.

    The definitions are the code location's own (`prompt_release_dagster.definitions`);
    only the resources' configuration differs: each run gets it as run config
    (`resources: {name: {config: ...}}`, shown with the run in the UI), each
    sensor tick the resources built from it. A sensor tick is
    evaluated as the daemon evaluates it: its cursor kept between ticks, its
    dynamic-partition requests applied, each run request launched once per run
    key and tagged with the sensor's name, so the UI lists the run as launched
    by that sensor.
    """

    def __init__(self, instance: dg.DagsterInstance, resources: dict[str, dg.ConfigurableResource]) -> None:
        # A persistent instance (a Dagster home, or `dg.instance_for_test()`): sensor ticks resolve
        # partition keys through its reference, as the daemon's do.
        self.defs = location.defs()
        self.instance = instance
        self.resources = resources
        self.resource_config = {
            name: {"config": resource.model_dump(exclude_none=True)} for name, resource in resources.items()
        }
        self.cursors: dict[str, str | None] = {}
        self.runs = 0
        # Run keys are deduplicated within this demo: the Dagster home is kept between demos (so
        # `make ui` keeps its history), but each demo starts from a new warehouse and registry copy,
        # so a run key launched by an earlier demo must launch again.
        self.session = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        self.abandoned = reap_abandoned_runs(instance)
        ensure_pool_limits(instance)  # `make ui`'s runs then share the demo's limits

    def run_job(
        self, name: str, *, run_config: dict | None = None, asset_selection: list | None = None, **kwargs
    ) -> dg.ExecuteInProcessResult:
        # Runs and their logs are in the Dagster home for `make ui`; the terminal gets the summary only.
        full_config = {
            **(run_config or {}),
            "resources": self.resource_config,
            "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
        }
        job = self.defs.resolve_implicit_global_asset_job_def() if asset_selection else self.defs.resolve_job_def(name)
        kwargs["tags"] = {**kwargs.get("tags", {}), DEMO_SESSION_TAG: self.session}
        outcome = job.execute_in_process(
            instance=self.instance,
            raise_on_error=False,
            run_config=full_config,
            asset_selection=asset_selection,
            **kwargs,
        )
        self.runs += 1
        return outcome

    def tick(self, sensor_name: str, *, jobs: tuple[str, ...] | None = None) -> list[dg.ExecuteInProcessResult]:
        """One tick of a sensor; runs its requests (only those for `jobs`, when given).

        The tick is stored as the daemon stores it: started, then finished as
        success (with the runs it launched), skipped, or failure (with the error).
        """
        sensor = self.defs.resolve_sensor_def(sensor_name)
        tick = self._start_tick(sensor_name)
        try:
            with dg.build_sensor_context(
                instance=self.instance,
                instance_ref=self.instance.get_ref(),
                resources=self.resources,
                definitions=self.defs,
                cursor=self.cursors.get(sensor_name),
                sensor_name=sensor_name,
            ) as context:
                data = sensor.evaluate_tick(context)
        except Exception:
            self.instance.update_tick(
                tick.with_status(TickStatus.FAILURE, error=serializable_error_info_from_exc_info(sys.exc_info()))
            )
            raise
        for request in data.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        self.cursors[sensor_name] = data.cursor
        outcomes = []
        for request in data.run_requests or []:
            job_name = request.job_name or sensor.job_name
            if jobs is not None and job_name not in jobs or self._launched(sensor_name, request.run_key):
                continue
            tags = {
                **request.tags,
                SENSOR_NAME_TAG: sensor_name,
                RUN_KEY_TAG: request.run_key,
                DEMO_SESSION_TAG: self.session,
            }
            outcome = self.run_job(
                job_name, partition_key=request.partition_key, run_config=request.run_config or None, tags=tags
            )
            tick = tick.with_run_info(outcome.run_id, request.run_key)
            outcomes.append(outcome)
        if data.cursor:
            tick = tick.with_cursor(data.cursor)
        if outcomes:
            tick = tick.with_status(TickStatus.SUCCESS)
        else:
            tick = tick.with_status(TickStatus.SKIPPED).with_reason(
                data.skip_message or "no new reports, candidates or canary traffic to act on"
            )
        self.instance.update_tick(tick)
        return outcomes

    def _start_tick(self, sensor_name: str):
        selector = InstigatorSelector(location_name=LOCATION_NAME, repository_name=REPOSITORY_NAME, name=sensor_name)
        selector_id = create_snapshot_id(selector)
        return self.instance.create_tick(
            TickData(
                # The UI looks ticks up by selector id; the origin id is the daemon's key for the
                # code server that evaluated the tick, which in the demo is this process.
                instigator_origin_id=f"prompt-release-demo:{selector_id}",
                instigator_name=sensor_name,
                instigator_type=InstigatorType.SENSOR,
                status=TickStatus.STARTED,
                timestamp=time.time(),
                selector_id=selector_id,
            )
        )

    def _launched(self, sensor_name: str, run_key: str | None) -> bool:
        if run_key is None:
            return False
        runs = self.instance.get_runs(
            filters=dg.RunsFilter(
                tags={SENSOR_NAME_TAG: sensor_name, RUN_KEY_TAG: run_key, DEMO_SESSION_TAG: self.session}
            ),
            limit=1,
        )
        return bool(runs)


def run_demo(
    state_dir: Path,
    *,
    instance: dg.DagsterInstance | None = None,
    days: int = 30,
    scale: float = 1.0,
    canary_requests: int = 2000,
    shadow_requests: int = 200,
    seed: int = 7,
    log=print,
    warehouse: str | None = None,
) -> DemoResult:
    started = time.monotonic()
    paths = prepare_state(state_dir, warehouse)
    result = DemoResult(state_dir, paths["registry"], paths["warehouse"])
    today = datetime.now(UTC).date()
    start = today - timedelta(days=days)
    yesterday = today - timedelta(days=1)

    with start_simulator(
        port=0, latency_ms=SIMULATOR_LATENCY_MS, latency_per_token_ms=SIMULATOR_LATENCY_PER_TOKEN_MS
    ) as simulator:
        resources = {
            "warehouse": WarehouseResource(path=str(paths["warehouse"])),
            "registry": RegistryResource(root=str(paths["registry"])),
            "landing": LandingResource(root=str(paths["landing"])),
            "llm": LLMResource(base_url=simulator.base_url),
        }
        demo = DemoDriver(instance or dg.DagsterInstance.get(), resources)
        if demo.abandoned:
            log(
                f"marked {len(demo.abandoned)} run(s) an earlier, killed demo left unfinished as failed "
                "and freed their pool slots"
            )
        # Without a cursor the release sensors start at now; the demo's warehouse is new, so it
        # tells them to start at its beginning (what a user does with the UI's "Set cursor").
        demo.cursors.update({name: WatchCursor.beginning().dump() for name in ("gate_sensor", "canary_sensor")})

        # 1. Production history: 30 days of the served prompts, mixed formats, with failures.
        registry = Registry(paths["registry"])
        hashes = {p.version_id: p.package_hash for p in registry.list_versions()}
        truth = generate(paths["landing"], days=days, seed=seed, scale=scale, start_date=start, package_hashes=hashes)
        align_label_history(paths["registry"], truth)  # the copy's production moves at the traffic's true times
        calls = sum(n for w in truth["calls_per_day"].values() for v in w.values() for n in v.values())
        log(f"[1/9] generated {calls:,} production calls over {days} days in {len(truth['files'])} files")

        # 2. Registry mirror, then ingest + mine + version metrics over the whole range in one run.
        demo.run_job("__ASSET_JOB", asset_selection=[dg.AssetKey("prompt_versions")])
        ingest = demo.run_job(
            "daily_ingest",
            tags={
                "dagster/asset_partition_range_start": start.isoformat(),
                "dagster/asset_partition_range_end": yesterday.isoformat(),
            },
        )
        if not ingest.success:
            raise RuntimeError("daily_ingest failed; see the Dagster UI (make ui)")
        # A single-run backfill reports one materialization per day, all with the run's totals.
        traces_event = ingest.asset_materializations_for_node("traces")[0]
        log(
            f"[2/9] ingested {traces_event.metadata['rows_stored'].value:,} calls, "
            f"{traces_event.metadata['rejected'].value} rejected; failures mined; version metrics computed"
        )

        # 3. Golden datasets, one per served prompt.
        for prompt_id in Registry(paths["registry"]).served_prompt_ids():
            demo.run_job("build_golden", partition_key=prompt_id)
            numbers = golden_store.versions(paths["registry"], f"{prompt_id}_golden")
            result.golden_versions[prompt_id] = f"{prompt_id}_golden:v{max(numbers)}"

        coverage = [label_golden(paths, truth, result, prompt_id) for prompt_id in list(result.golden_versions)]
        log(f"[3/9] golden datasets: {', '.join(coverage)}")

        # 4. The candidate sensor evaluates every open candidate: backtest -> diff -> gate report.
        for run in demo.tick("candidate_sensor"):
            candidate = run.dagster_run.tags["dagster/partition"]
            record_report(result, candidate)
        log(
            "[4/9] gate reports: " + ", ".join(f"{c} {r['verdict'].upper()}" for c, r in sorted(result.reports.items()))
        )

        # 5. The gate sensor applies the reports: staging, staging check, canary; or reject.
        demo.tick("gate_sensor")
        for candidate in result.reports:
            result.promotions[candidate] = _where(paths["registry"], candidate)
        log("[5/9] after the gate sensor: " + ", ".join(f"{c} -> {s}" for c, s in sorted(result.promotions.items())))

        # 6. Canary traffic for support_router v1.6.0 through the runtime client, ingested and analysed.
        def canary_round(prompt_id: str, requests: int, seed: int, looks: int = CANARY_LOOKS) -> dict | None:
            """Serve traffic in batches; after each, ingest and look at the canary again.

            The canary test is always-valid, so looking after every batch keeps
            its error rate; it freezes until the traffic is enough to decide.
            """
            decision = None
            for look in range(looks):
                served = serve(paths, simulator.base_url, prompt_id, requests, seed=seed * 100 + look)
                for day in served.days:  # two days when the traffic ran past midnight
                    demo.run_job("daily_ingest", partition_key=day)
                # The demo compresses the release policy's minimum canary duration to zero.
                demo.run_job(
                    "canary_analysis_job",
                    partition_key=prompt_id,
                    run_config={"ops": {"canary_analysis": {"config": {"min_duration_s": 0}}}},
                )
                demo.tick("canary_sensor", jobs=("roll_forward", "rollback"))
                decision = _latest_canary_decision(paths["warehouse"], prompt_id)
                log(
                    f"      look {look + 1}: {decision['action'] if decision else 'no decision'}"
                    + (f" ({decision['candidate_traces']} canary traces)" if decision else "")
                )
                if decision and decision["action"] != "freeze":
                    break
            if decision:
                result.canary_decisions.append(decision)
            return decision

        decision = canary_round("support_router", canary_requests, seed=1)
        log(
            f"[6/9] canary support_router: {decision['action'] if decision else 'no decision'}"
            f" -> production is now {registry.resolve_label('support_router', 'production')}"
        )

        # 7. Scenario 2: a one-line edit pushed straight to canary, skipping the gate: the canary
        # label is protected, so this takes break glass, and the audit trail records it as forced.
        def pushed_to_canary(version: str, change: str, seed: int) -> dict | None:
            """Break glass: `version` straight to a 20% canary, then canary rounds until it is decided."""
            push_to_canary(registry, version, change)
            demo.run_job("__ASSET_JOB", asset_selection=[dg.AssetKey("prompt_versions")])
            decision = canary_round("support_router", canary_requests, seed=seed)
            result.promotions[version] = registry.load_package(version).status
            return decision

        hotfix = one_line_hotfix(paths["registry"])
        # First it runs in shadow on a share of live requests (the app opted in): never served, and the
        # comparison with production on the same requests already shows what the canary will find.
        registry.move_label("support_router", "shadow", hotfix, reason="watch the hotfix on live requests", actor=ACTOR)
        shadowed = serve(paths, simulator.base_url, "support_router", shadow_requests, seed=300, shadow_share=0.5)
        for day in shadowed.days:
            demo.run_job("daily_ingest", partition_key=day)
        compared = demo.run_job("shadow_comparison_job", partition_key="support_router")
        shadow_event = compared.asset_materializations_for_node("shadow_comparison")[0]
        result.shadow = {
            "pairs": shadow_event.metadata["pairs"].value,
            "would": shadow_event.metadata["would"].value,
            **shadowed.shadow,
        }
        log(
            f"      shadow: {hotfix} answered {result.shadow['pairs']} live requests unserved; "
            f"against production it would {result.shadow['would']}"
        )
        decision = pushed_to_canary(hotfix, "hotfix", seed=2)
        log(
            f"[7/9] canary {hotfix} (one-line edit, no gate): {decision['action'] if decision else 'no decision'}"
            f" -> {hotfix} is {result.promotions[hotfix]}"
        )

        # 8. The canary's failing traces are now incident cases: the next golden version holds them,
        # and the new cases (the incidents, failures mined from canary traffic) are labelled.
        demo.run_job("build_golden", partition_key="support_router")
        log(f"[8/9] golden set after the incident: {label_golden(paths, truth, result, 'support_router')}")
        # 9. Scenario 3: valid JSON, wrong routes for one intent; only what users feel shows it.
        regression = routing_regression(paths["registry"])
        decision = pushed_to_canary(regression, "routing change", seed=3)
        log(
            f"[9/9] canary {regression} (billing routed to technical, no gate): "
            f"{decision['action'] if decision else 'no decision'} -> {regression} is "
            f"{result.promotions[regression]}" + (f" ({decision['reason']})" if decision else "")
        )
        # Its failing traces are incident cases of a newer golden version: labelled as the others are.
        log(f"      golden set after the routing incident: {label_golden(paths, truth, result, 'support_router')}")
        demo.run_job("__ASSET_JOB", asset_selection=[dg.AssetKey("prompt_versions")])
        for candidate in list(result.promotions):
            result.promotions[candidate] = _where(paths["registry"], candidate)

    # The CLI and `make ui` in the project folder now find the demo's state (flag > env > this file > default).
    config.write_config_file(
        state_dir / "config", warehouse=paths["warehouse"], registry=paths["registry"], landing=paths["landing"]
    )
    result.runs = demo.runs
    result.seconds = time.monotonic() - started
    return result


def _where(registry: Path, version_id: str) -> str:
    """The labels pointing at a version, else its status."""
    opened = Registry(registry)
    pointers = [
        name for name, entry in opened.labels(version_id.split(":")[0]).items() if entry.version_id == version_id
    ]
    return ", ".join(sorted(pointers)) or opened.load_package(version_id).status


def _latest_canary_decision(warehouse: Path, prompt_id: str) -> dict | None:
    with read_connection(warehouse) as con:
        rows = con.execute(
            "SELECT * FROM canary_decisions WHERE prompt_id = ? ORDER BY decided_at DESC LIMIT 1", [prompt_id]
        ).fetchall()
        names = [d[0] for d in con.description]
    return dict(zip(names, rows[0], strict=True)) if rows else None


def summary_table(result: DemoResult) -> str:
    lines = ["", "Release decisions", "", f"{'candidate':<24} {'gate':<8} {'now':<22} report"]
    for candidate, report in sorted(result.reports.items()):
        lines.append(
            f"{candidate:<24} {report['verdict'].upper():<8} {result.promotions.get(candidate, ''):<22} "
            f"{report['html']}"
        )
    for candidate, state in sorted(result.promotions.items()):
        if candidate not in result.reports:
            lines.append(f"{candidate:<24} {'(none)':<8} {state:<22} pushed to canary without a gate")
    lines += ["", "support_router audit trail (every label move with its cause):", ""]
    for event in Registry(result.registry).history("support_router")[-12:]:
        # A break-glass move past a protected label says so first.
        reason = ("FORCED: " if event.forced else "") + (event.reason or "")
        # The report id once: a reason that already names it does not repeat it.
        cause = f"report {event.gate_report_id}:" if event.gate_report_id and event.gate_report_id not in reason else ""
        reason = textwrap.shorten(reason, 80, placeholder=" …")  # whole words, never "stagin"
        lines.append(
            f"  {event.ts[11:19]} {event.action:<8} {event.label or '':<10} "
            f"{event.from_version or '-':>22} -> {event.to_version or '-':<22} "
            f"{cause} {reason}".rstrip()
        )
    lines += [
        "",
        "Golden datasets: "
        + ", ".join(
            f"{version} ({'/'.join(map(str, result.golden_coverage.get(version.split(':')[0], ())))} labelled)"
            for version in result.golden_versions.values()
        ),
        f"{result.runs} Dagster runs in {result.seconds:.0f}s. Warehouse: {result.warehouse}",
        "See them in the Dagster UI: make ui   (then open http://127.0.0.1:3000)",
        f'Query the results: .venv/bin/prompt-release sql "SELECT * FROM gate_reports" --warehouse {result.warehouse}',
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", module="dagster")
    logging.getLogger("dagster").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    parser = argparse.ArgumentParser(prog="python -m prompt_release_dagster.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", default=".prompt_release", help="where the demo keeps its state")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--canary-requests", type=int, default=2000)
    parser.add_argument(
        "--warehouse",
        default=None,
        help="a lake (s3://bucket/prefix, file:///folder, folder/ or *.lake) instead of the state's DuckDB file",
    )
    args = parser.parse_args(argv)
    state_dir = Path(args.state_dir).resolve()
    home = ensure_dagster_home()
    print(f"prompt-release demo: state in {state_dir}, Dagster home {home}", flush=True)
    result = run_demo(
        state_dir,
        days=args.days,
        scale=args.scale,
        canary_requests=args.canary_requests,
        log=lambda message: print(message, flush=True),
        warehouse=args.warehouse,
    )
    print(summary_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
