"""The Dagster UI in a real browser: the asset graph shows our assets, asset pages show their reports."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from tests.ui import ui_location
from tests.ui.harness import (
    open_asset_graph,
    open_asset_page,
    save_screenshot,
    write_dagster_home,
    write_workspace,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def probe_home(tmp_path: Path) -> Path:
    """An ephemeral Dagster home holding one materialization of the probe asset."""
    home = write_dagster_home(tmp_path / "dagster_home")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        result = dg.materialize([ui_location.verdict_probe], instance=instance)
        assert result.success
    finally:
        instance.dispose()
    return home


def test_asset_graph_and_asset_page_show_the_materialized_report(
    probe_home: Path, tmp_path: Path, dagster_webserver, browser_page
) -> None:
    workspace = write_workspace(tmp_path / "workspace.yaml", Path(ui_location.__file__))
    base_url = dagster_webserver(probe_home, workspace)

    graph_text = open_asset_graph(browser_page, base_url, ui_location.ASSET_KEY)
    assert ui_location.ASSET_KEY in graph_text
    save_screenshot(browser_page, "asset-graph.png")

    page_text = open_asset_page(browser_page, base_url, ui_location.ASSET_KEY, expect_text=ui_location.VERDICT)
    # The markdown report from the materialization is rendered on the page, verdict first.
    assert ui_location.VERDICT in page_text
    assert page_text.index(ui_location.VERDICT) < page_text.index("handoff_accuracy")
    assert "Row count" in page_text
