"""The resources every area uses, bound once for the code location."""

import dagster as dg

from prompt_release_dagster.resources import default_resources


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
