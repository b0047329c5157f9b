"""prompt-release's Dagster code location: thin glue over the `prompt_release` core.

`definitions.py` loads every module of `defs/` (one per area: traces, registry,
mining, evaluation, release, plus the resources), so adding an asset, check,
job, sensor or schedule to an area's module is all it takes. Decisions live in
`prompt_release.*`, where the tests reach them without Dagster.
"""
