"""Issue 7: the analyst notebooks run against a fresh demo warehouse, and are committed without outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

pytestmark = pytest.mark.xdist_group("demo_world")

NOTEBOOKS = REPO_ROOT / "notebooks"
NAMES = ("01_version_quality_over_time.ipynb", "02_failure_clusters.ipynb", "03_gate_report_deep_dive.ipynb")


def test_notebooks_are_committed_without_outputs() -> None:
    for name in NAMES:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code, f"{name} has no code"
        for cell in code:
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: a cell has outputs"


def test_notebooks_match_their_generator() -> None:
    # The .ipynb files are generated from notebooks/make_notebooks.py: an edit to one alone is lost later.
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, build in module.NOTEBOOKS.items():
        on_disk = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert [c.source for c in on_disk.cells] == [c.source for c in build().cells], (
            f"{name} differs from make_notebooks.py: run `python notebooks/make_notebooks.py`"
        )


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_against_the_demo_warehouse(name: str, demo_world, tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    env = {
        **os.environ,
        "PROMPT_RELEASE_WAREHOUSE": str(demo_world.warehouse),
        "MPLBACKEND": "Agg",
        # The kernel imports prompt_release from this checkout, as the tests do.
        "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    env.pop("GATE_REPORT_ID", None)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=env)  # raises CellExecutionError naming the cell when one fails
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    charts = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert charts, f"{name} drew no chart"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert str(demo_world.warehouse) in text  # it read the warehouse it was pointed at
    if name.startswith("03"):
        assert "REJECT" in text  # the default report is the newest rejection
