"""The `prompt_release` code location: every asset, check, job, schedule and sensor."""

from __future__ import annotations

import dagster as dg

from pipelines.resources import LandingResource, RegistryResource, WarehouseResource


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[],
        asset_checks=[],
        resources={
            "warehouse": WarehouseResource(),
            "registry": RegistryResource(),
            "landing": LandingResource(),
        },
    )
