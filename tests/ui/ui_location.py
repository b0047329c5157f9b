"""A test-only Dagster code location: one asset whose markdown metadata carries a verdict.

The UI test points the webserver at this file to prove the browser harness end
to end (materialize, serve, open the asset page, read the metadata) without
depending on the real pipeline's assets.
"""

from __future__ import annotations

import dagster as dg

ASSET_KEY = "verdict_probe"
VERDICT = "Verdict: PROMOTE"
REPORT_MARKDOWN = (
    f"## {VERDICT}\n\n"
    "| gate | candidate | baseline | result |\n"
    "|---|---|---|---|\n"
    "| handoff_accuracy | 0.95 | 0.91 | pass |\n"
)


@dg.asset(name=ASSET_KEY, group_name="ui_probe", description="Browser-harness probe asset.")
def verdict_probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"report": dg.MetadataValue.md(REPORT_MARKDOWN), "dagster/row_count": 1}
    )


defs = dg.Definitions(assets=[verdict_probe])
