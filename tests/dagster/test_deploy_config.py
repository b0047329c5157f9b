"""The deployment's files and settings: no connection value stored, the executor chosen by the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prompt_release.errors import UserError
from prompt_release_dagster import deploy

REPO_ROOT = Path(__file__).resolve().parents[2]
URL = "postgresql://relusr9:s3cr%40t@db.internal:6543/dagster"


def test_the_written_instance_reads_every_connection_field_from_the_environment(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "prompt_release_dagster.deploy", "instance", "--home", str(tmp_path)],
        env={"DAGSTER_PG_URL": URL, "PATH": "/usr/bin:/bin"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "dagster.yaml").read_text() + (tmp_path / "celery.yaml").read_text()
    for value in ("s3cr", "db.internal", "6543", "relusr9", "redis://"):
        assert value not in written and value not in result.stdout
    settings = yaml.safe_load((tmp_path / "dagster.yaml").read_text())
    db = settings["storage"]["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"
    assert db == {field: {"env": var} for field, var in deploy.PG_FIELDS.items()}
    assert settings["concurrency"]["pools"]["default_limit"] == 1
    celery = yaml.safe_load((tmp_path / "celery.yaml").read_text())["execution"]["config"]
    assert celery["broker"] == {"env": deploy.ENV_CELERY_BROKER}
    assert celery["config_source"]["task_acks_late"] is True


def test_the_url_is_split_into_the_variables_the_instance_reads() -> None:
    assert deploy.pg_environment(URL) == {
        "DAGSTER_PG_HOST": "db.internal",
        "DAGSTER_PG_PORT": "6543",
        "DAGSTER_PG_USER": "relusr9",
        "DAGSTER_PG_PASSWORD": "s3cr@t",
        "DAGSTER_PG_DB": "dagster",
    }
    with pytest.raises(UserError, match="DAGSTER_PG_URL.*database"):
        deploy.pg_environment("postgresql://release@db.internal")
    with pytest.raises(UserError, match="scheme 'mysql'"):
        deploy.pg_environment("mysql://release@db/dagster")


def test_the_executor_is_chosen_by_the_environment_and_the_definitions_stay_the_same(monkeypatch) -> None:
    from prompt_release_dagster.definitions import defs

    default_jobs = sorted(job.name for job in defs().get_repository_def().get_all_jobs())
    monkeypatch.setenv(deploy.ENV_EXECUTOR, "celery")
    with pytest.raises(UserError, match=deploy.ENV_CELERY_BROKER):
        deploy.selected_executor()
    monkeypatch.setenv(deploy.ENV_CELERY_BROKER, "redis://127.0.0.1:1/0")
    celery = defs()
    assert sorted(job.name for job in celery.get_repository_def().get_all_jobs()) == default_jobs
    assert {celery.resolve_job_def(name).executor_def.name for name in ("daily_ingest", "promote")} == {"celery"}
    monkeypatch.setenv(deploy.ENV_EXECUTOR, "dask")
    with pytest.raises(UserError, match="multiprocess, in_process, celery"):
        deploy.selected_executor()
