"""The `prompt_release` code location: every asset, check, job, schedule and sensor."""

from __future__ import annotations

import os

import dagster as dg

from assets import evaluation, mining, release, traces
from assets import registry as registry_assets
from pipelines.resources import LandingResource, LLMResource, RegistryResource, WarehouseResource

AREAS = (traces, registry_assets, mining, evaluation, release)


def _collect(name: str) -> list:
    return [item for area in AREAS for item in getattr(area, name, [])]


def _env(name: str) -> dg.EnvVar | None:
    # EnvVar keeps the value out of the run config the UI shows; unset means
    # the default (for the endpoint: the embedded simulator).
    return dg.EnvVar(name) if os.environ.get(name) else None


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=_collect("ASSETS"),
        asset_checks=_collect("ASSET_CHECKS"),
        jobs=_collect("JOBS"),
        sensors=_collect("SENSORS"),
        schedules=_collect("SCHEDULES"),
        resources={
            "warehouse": WarehouseResource(),
            "registry": RegistryResource(),
            "landing": LandingResource(),
            "llm": LLMResource(base_url=_env("OPENAI_BASE_URL"), api_key=_env("OPENAI_API_KEY")),
        },
    )
