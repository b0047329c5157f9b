"""The CLI after `make demo`: one resolution order for locations, and errors that name what the user typed.

Locations resolve flag > PROMPT_RELEASE_* variable > the state file
`.prompt_release/config` (written by the demo) > default. A warehouse path
that does not exist is an error for every command that reads one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prompt_release import config
from tests.conftest import run_cli
from tests.registry.conftest import copy_sample_registry


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return copy_sample_registry(tmp_path / "registry")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder whose state file points at a registry copy, as `make demo` leaves it."""
    folder = tmp_path / "project"
    registry = copy_sample_registry(tmp_path / "demo_registry")
    config.write_config_file(
        folder / ".prompt_release" / "config",
        registry=registry,
        warehouse=tmp_path / "demo.duckdb",
        landing=tmp_path / "landing",
    )
    return folder


# Run in the project folder with no PROMPT_RELEASE_* location set: the state file decides.
NO_LOCATION_ENV = {
    "PROMPT_RELEASE_CONFIG": "",
    "PROMPT_RELEASE_WAREHOUSE": "",
    "PROMPT_RELEASE_REGISTRY": "",
    "PROMPT_RELEASE_LANDING": "",
}


def test_the_state_file_sits_between_the_environment_and_the_default(tmp_path: Path, monkeypatch) -> None:
    state = config.write_config_file(tmp_path / "config", warehouse=tmp_path / "from_file.duckdb")
    monkeypatch.setenv("PROMPT_RELEASE_CONFIG", str(state))
    monkeypatch.delenv("PROMPT_RELEASE_WAREHOUSE")
    assert config.warehouse_path() == tmp_path / "from_file.duckdb"
    assert config.warehouse_source() == f"'warehouse' in {state}"
    monkeypatch.setenv("PROMPT_RELEASE_WAREHOUSE", str(tmp_path / "from_env.duckdb"))
    assert config.warehouse_path() == tmp_path / "from_env.duckdb"
    assert config.warehouse_path(tmp_path / "flag.duckdb") == tmp_path / "flag.duckdb"
    assert config.registry_root() == Path(".")  # the file does not set it: the default


def test_a_bad_state_file_is_one_line_naming_it(tmp_path: Path) -> None:
    state = tmp_path / "config"
    state.write_text('warehose = "x.duckdb"\n')
    result = run_cli("prompts", "list", env={**NO_LOCATION_ENV, "PROMPT_RELEASE_CONFIG": str(state)})
    assert result.returncode == 2
    assert (
        result.stderr == f"prompt-release: error: {state}: unknown setting 'warehose' "
        "(known: warehouse, registry, landing)\n"
    )


def test_prompts_list_in_the_project_folder_reads_the_demos_registry_with_a_header(project: Path) -> None:
    result = run_cli("prompts", "list", "support_router", cwd=project, env=NO_LOCATION_ENV)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["VERSION", "STATUS", "PACKAGE", "HASH", "INTEGRITY", "LABELS"]
    assert any(r.startswith("support_router:v1.5.2") and r.endswith("production") for r in rows)


@pytest.mark.parametrize(
    "command",
    [
        ("gate", "--candidate", "support_router:v1.7.0"),
        ("backtest", "--candidate", "support_router:v1.7.0"),
        ("sql", "SELECT 1"),
        ("mine",),
        ("golden", "build"),
        ("warehouse", "migrate"),
    ],
)
def test_a_missing_warehouse_is_an_error_naming_the_path_and_the_flag(command, tmp_path: Path, registry) -> None:
    missing = tmp_path / "nope" / "nope.duckdb"
    result = run_cli(*command, "--warehouse", str(missing), "--registry", str(registry))
    assert result.returncode == 2
    assert f"no warehouse at '{missing}' (from --warehouse)" in result.stderr
    assert "Traceback" not in result.stderr and "REJECT" not in result.stdout
    assert not missing.parent.exists()  # nothing created


def test_unknown_candidates_are_named_by_the_flag_before_any_model_starts(tmp_path: Path, registry) -> None:
    (tmp_path / "w.duckdb").touch()
    common = ("--warehouse", str(tmp_path / "w.duckdb"), "--registry", str(registry))
    unknown_prompt = run_cli("gate", "--candidate", "support_ruter:v1.7.0", *common)
    assert unknown_prompt.returncode == 2
    assert "--candidate: unknown prompt 'support_ruter'" in unknown_prompt.stderr
    assert "gate spec" not in unknown_prompt.stderr
    unknown_version = run_cli("backtest", "--candidate", "support_router:v9.9.9", *common)
    assert unknown_version.returncode == 2
    assert "--candidate: unknown prompt version support_router:v9.9.9" in unknown_version.stderr
    malformed = run_cli("gate", "--candidate", "support_router", *common)
    assert "--candidate: invalid version id 'support_router'" in malformed.stderr
    assert "field 'version_id'" not in malformed.stderr
    for result in (unknown_prompt, unknown_version, malformed):
        assert "simulator" not in result.stderr  # failed before starting it
