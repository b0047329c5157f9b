"""The `prompt_release` code location: every asset, check, job, schedule and sensor."""

from __future__ import annotations

import dagster as dg

from assets import registry as registry_assets
from pipelines.resources import LandingResource, RegistryResource, WarehouseResource

AREAS = (registry_assets,)


def _collect(name: str) -> list:
    return [item for area in AREAS for item in getattr(area, name, [])]


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
        },
    )
