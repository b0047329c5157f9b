"""The resources every area uses, bound once for the code location, and the executor of every job."""

import dagster as dg

from prompt_release_dagster.deploy import selected_executor
from prompt_release_dagster.resources import default_resources


@dg.definitions
def resources() -> dg.Definitions:
    # PROMPT_RELEASE_EXECUTOR picks who runs the steps (default: Dagster's multiprocess executor).
    return dg.Definitions(resources=default_resources(), executor=selected_executor())
