"""The `prompt_release` code location: everything in `defs/`, loaded by convention."""

import warnings
from pathlib import Path

import dagster as dg

# Dagster itself passes the beta `owners` parameter when it copies our sensors; we set no owners,
# so its beta warning is noise in every `make ui` and code-server log.
warnings.filterwarnings(
    "ignore", message="Parameter `owners` of initializer `SensorDefinition.__init__`", category=dg.BetaWarning
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
