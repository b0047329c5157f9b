"""The prompt_versions asset mirrors the registry; its check fails on an edit in place."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from prompt_release.warehouse import read_connection
from prompt_release_dagster.defs.registry import prompt_versions, registry_verifies
from prompt_release_dagster.resources import RegistryResource, WarehouseResource

REPO_ROOT = Path(__file__).resolve().parents[2]


def _materialize(root: Path, warehouse: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [prompt_versions, registry_verifies],
        resources={"registry": RegistryResource(root=str(root)), "warehouse": WarehouseResource(path=str(warehouse))},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_prompt_versions_asset_and_verify_check(tmp_path: Path, warehouse: Path) -> None:
    root = tmp_path / "registry"
    for name in ("prompts", "schemas", "evals"):
        shutil.copytree(REPO_ROOT / name, root / name)

    result = _materialize(root, warehouse)
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed
    with read_connection(warehouse) as con:
        assert con.execute("SELECT count(*) FROM prompt_versions").fetchone()[0] == 9  # incl. the summary_judge package

    template = root / "prompts/support_router/v1.5.2.md"
    template.write_text(template.read_text() + "\nedited\n")
    [check] = _materialize(root, warehouse).get_asset_check_evaluations()
    assert not check.passed
    assert "support_router:v1.5.2 was edited in place" in check.metadata["failed"].value
