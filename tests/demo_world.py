"""The demo warehouse without Dagster: what the notebooks and the view tests query.

`build_demo_world(base)` plays the release story the demo pipeline tells, by
calling the library functions the Dagster assets call: a few days of
production history ingested and mined into golden sets (`tests.world`), a
backtest and gate report for each sample candidate (support_router v1.6.0
promotes, v1.7.0 breaks the JSON contract, order_agent v2.1.0 makes unsafe
refunds, summarizer v1.1.0 rejected by the judge: its shorter summaries drop key facts), each report applied (staging check,
canary or rejection), canary traffic served through the runtime client and
analysed (support_router rolls forward),
`version_metrics` for every day, and the registry mirrored into the warehouse.
It takes about 20 s and needs no network beyond a localhost simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prompt_release.evaluation.backtest import (
    BacktestSettings,
    run_backtest,
    write_behaviour_diff,
)
from prompt_release.gates.canary import CanaryPolicy
from prompt_release.gates.evaluate import evaluate_run, load_spec_for
from prompt_release.llm.settings import LLMSettings
from prompt_release.llm.simulator import start_simulator
from prompt_release.mining.detectors import mine_failures
from prompt_release.registry import Registry
from prompt_release.release.canary import analyse_canary, roll_forward
from prompt_release.release.metrics import compute_version_metrics
from prompt_release.release.promotion import apply_gate_report
from prompt_release.release.replay import RecordedInput, recorded_inputs
from prompt_release.sample.traffic import simulate_traffic
from prompt_release.traces import ingest_day
from prompt_release.warehouse.registry_mirror import sync_to_warehouse
from tests.world import World, build_world

CANDIDATES = ("support_router:v1.6.0", "support_router:v1.7.0", "order_agent:v2.1.0", "summarizer:v1.1.0")
# Latency on a shared test machine is noisy: a wide margin lets hard failures alone decide the demo canary.
# USD per 1M tokens for the sample packages' model, so canary traffic logs a cost like the history does.
PRICES = {"production-default": (0.15, 0.60)}
CANARY_POLICY = CanaryPolicy(min_canary_traces=50, failure_margin=0.05, latency_margin=1.0)


@dataclass
class DemoWorld:
    world: World
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # candidate -> gate report
    canary_decisions: dict[str, str] = field(default_factory=dict)  # prompt id -> action of the last look

    @property
    def warehouse(self) -> Path:
        return self.world.warehouse

    @property
    def registry(self) -> Path:
        return self.world.registry


def _renderable_inputs(world: World, prompt_id: str) -> list[RecordedInput]:
    # The generated history holds a few calls logged without a template variable;
    # `simulate_traffic` would stop at the first one, so replay only complete inputs.
    registry = Registry(world.registry)
    needed = set(registry.load_package(registry.resolve_label(prompt_id, "production")).required_variables)
    return [i for i in recorded_inputs(world.warehouse, prompt_id, limit=500) if needed <= set(i.variables)]


def build_demo_world(base: Path, *, traffic: int = 1000) -> DemoWorld:
    world = build_world(base)
    demo = DemoWorld(world)
    registry = Registry(world.registry)
    with start_simulator(port=0) as simulator:
        llm = LLMSettings(base_url=simulator.base_url, max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.05)
        for candidate in CANDIDATES:
            spec = load_spec_for(world.registry, candidate)
            settings = BacktestSettings(
                candidate=candidate, baseline=spec.baseline_prompt or "production", dataset=spec.dataset
            )
            outcome = run_backtest(settings, registry_root=world.registry, warehouse=world.warehouse, llm_settings=llm)
            write_behaviour_diff(outcome.run_id, warehouse=world.warehouse)
            demo.reports[candidate] = evaluate_run(
                outcome.run_id, spec, warehouse=world.warehouse, reports_dir=base / "reports"
            )
        for candidate in CANDIDATES:
            apply_gate_report(
                registry, demo.reports[candidate], warehouse=world.warehouse, llm_settings=llm, sample_size=20
            )

        # Canary traffic lands in today's folder, as the production app would log it.
        today = datetime.now(UTC).date()
        for prompt_id, requests in (("support_router", traffic), ("summarizer", traffic // 2)):
            simulate_traffic(
                world.registry,
                prompt_id,
                landing=world.landing,
                base_url=simulator.base_url,
                requests=requests,
                inputs=_renderable_inputs(world, prompt_id),
                prices=PRICES,
            )
        ingest_day(world.landing, today, warehouse=world.warehouse)
        mine_failures(world.warehouse, world.registry, today)
        for prompt_id, wait_out_duration in (("support_router", True), ("summarizer", False)):
            # summarizer's canary stays within its release policy's minimum duration: a freeze.
            analysis = analyse_canary(
                world.warehouse,
                registry,
                prompt_id,
                policy=CANARY_POLICY,
                min_duration_s=0 if wait_out_duration else None,
            )
            if analysis is None:
                continue
            demo.canary_decisions[prompt_id] = analysis.action
            if analysis.action == "roll_forward":
                roll_forward(registry, world.warehouse, prompt_id, analysis.decision_id)

    for offset in range(world.days + 1):
        compute_version_metrics(world.warehouse, world.start + timedelta(days=offset))
    sync_to_warehouse(registry, world.warehouse)
    return demo


if __name__ == "__main__":  # build one by hand: python -m tests.demo_world DIR
    import sys
    import time

    started = time.perf_counter()
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".prompt_release/demo_world")
    built = build_demo_world(target)
    print(f"demo warehouse {built.warehouse} in {time.perf_counter() - started:.1f}s")
    for candidate, report in built.reports.items():
        print(f"  {candidate}: {report['verdict']} ({report['report_id']})")
    print(f"  canary: {built.canary_decisions}")
