"""The nightly schedules: which runs each night asks for."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import dagster as dg

from prompt_release.registry import Registry
from prompt_release.release.watch import open_candidates
from prompt_release_dagster.definitions import defs
from prompt_release_dagster.defs.evaluation import nightly_backtests, nightly_drift
from prompt_release_dagster.partitions import CANDIDATES
from prompt_release_dagster.resources import RegistryResource
from tests.conftest import REPO_ROOT

NIGHT = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def registry_copy(tmp_path):
    root = tmp_path / "registry"
    for name in ("prompts", "schemas"):
        shutil.copytree(REPO_ROOT / name, root / name)
    return root


def tick(schedule, instance, resources=None):
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=NIGHT,
        resources=resources or {},
        repository_def=defs().get_repository_def(),
    ) as context:
        return schedule.evaluate_tick(context)


def test_nightly_backtests_rerun_every_open_candidate_once_per_night(tmp_path) -> None:
    root = registry_copy(tmp_path)
    with dg.instance_for_test() as instance:
        data = tick(nightly_backtests, instance, {"registry": RegistryResource(root=str(root))})
        keys = {r.partition_key: r.run_key for r in data.run_requests}
        assert keys["support_router:v1.6.0"] == "nightly:2026-11-20:support_router:v1.6.0"
        assert "support_router:v1.5.2" not in keys  # production: no decision open
        # The partitions the runs need exist even if candidate_sensor never saw these candidates.
        assert set(keys) <= set(instance.get_dynamic_partitions(CANDIDATES.name))


def test_nightly_backtests_skip_when_nothing_is_open(tmp_path) -> None:
    root = registry_copy(tmp_path)
    registry = Registry(root)
    for version in open_candidates(registry):
        registry.set_status(version, "rejected", reason="decided")
    with dg.instance_for_test() as instance:
        data = tick(nightly_backtests, instance, {"registry": RegistryResource(root=str(root))})
    assert not data.run_requests and data.skip_message == "no open candidate"


def test_nightly_drift_runs_once_per_night() -> None:
    with dg.instance_for_test() as instance:
        data = tick(nightly_drift, instance)
    assert [r.run_key for r in data.run_requests] == ["drift:2026-11-20"]
