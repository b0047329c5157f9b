"""One setting picks the warehouse backend: a DuckDB file, or a Delta Lake root."""

from __future__ import annotations

from pathlib import Path

import pytest

from prompt_release import config
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("s3://my-bucket/prompt/lake/", "s3://my-bucket/prompt/lake"),
        ("s3://my-bucket", "s3://my-bucket"),
        ("s3:/my-bucket/p", "s3://my-bucket/p"),  # a URI that went through pathlib.Path
        ("file:///srv/lake/", "file:///srv/lake"),
    ],
)
def test_lake_uris_pick_the_lake_backend(setting: str, expected: str) -> None:
    assert config.lake_location(setting).uri == expected


def test_a_folder_ending_in_slash_or_dot_lake_is_a_local_lake(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert config.lake_location("warehouse/").uri == f"file://{tmp_path}/warehouse"
    monkeypatch.setenv(config.ENV_WAREHOUSE, "team.lake")
    assert config.lake_location().uri == f"file://{tmp_path}/team.lake"
    assert config.lake_location().setting == config.ENV_WAREHOUSE


def test_a_duckdb_file_stays_the_file_backend(tmp_path: Path) -> None:
    assert config.lake_location(tmp_path / "w.duckdb") is None
    assert config.lake_location("relative/warehouse.duckdb") is None


def test_credentials_come_from_the_aws_variables_and_are_not_kept(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    lake = config.lake_location("s3://bucket/p")
    options = lake.storage_options()
    assert options["AWS_SECRET_ACCESS_KEY"] == "s3cr3t-value"
    assert options["AWS_ALLOW_HTTP"] == "true"
    assert "s3cr3t" not in repr(lake) and "AKID" not in repr(lake)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rotated")
    assert lake.storage_options()["AWS_SECRET_ACCESS_KEY"] == "rotated"


@pytest.mark.parametrize(
    "setting", ["md:team", "gs://bucket/lake", "http://example.com/lake", "s3://", "file://host/lake"]
)
def test_a_bad_location_is_one_line_naming_the_setting_and_exit_2(setting: str, tmp_path: Path) -> None:
    result = run_cli("sql", "SELECT 1", cwd=tmp_path, env={config.ENV_WAREHOUSE: setting})
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert config.ENV_WAREHOUSE in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_flag_is_named_when_the_flag_is_bad(tmp_path: Path) -> None:
    result = run_cli("sql", "SELECT 1", "--warehouse", "gs://bucket/lake", cwd=tmp_path)
    assert result.returncode == 2
    assert "--warehouse" in result.stderr
