"""An analyst on a lake while the pipeline writes: never an error, never half a commit (issue 14, acceptance 3).

One process loops through `analyst_connection()` and checks, on every
connection, what a half-visible transaction would break: a file's accounting
row without all of its traces, a golden version without all of its cases, a
finished backtest without all of its results, a failure whose trace is not
there. Meanwhile ingest (two more days), mining, a golden build and a
backtest (the embedded simulator) write to the same lake, each in its own
process, as Dagster steps on several workers would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import date, timedelta
from pathlib import Path

import pytest

from prompt_release.golden.build import build_golden
from prompt_release.mining.detectors import mine_failures
from prompt_release.registry import Registry
from prompt_release.sample.generator import generate
from prompt_release.traces import ingest_paths
from prompt_release.warehouse import analyst_connection
from prompt_release.warehouse import lake as lake_backend
from prompt_release.warehouse.lake import COMMIT_ORDER, template
from tests.conftest import REPO_ROOT
from tests.warehouse.test_lake_concurrency import day_file
from tests.world import SEED_SHIFT, WORKFLOWS

pytestmark = pytest.mark.slow

_ANALYST = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from prompt_release.warehouse import analyst_connection

    stop = Path(sys.argv[1])
    CHECKS = {
        "a file's accounting without all of its traces": '''
            SELECT f.source_file FROM (SELECT source_file, sum(stored) AS stored FROM ingest_files GROUP BY 1) f
            LEFT JOIN (SELECT source_file, count(*) AS n FROM traces GROUP BY 1) t USING (source_file)
            WHERE coalesce(t.n, 0) <> f.stored''',
        "a golden version without all of its cases": '''
            SELECT v.version_id FROM golden_versions v
            LEFT JOIN (SELECT version_id, count(*) AS n FROM golden_cases GROUP BY 1) c USING (version_id)
            WHERE coalesce(c.n, 0) <> v.case_count''',
        "a failure whose trace is not there": '''
            SELECT f.record_key FROM failures f ANTI JOIN traces t USING (record_key)''',
    }
    errors, finished, iterations = [], {}, 0
    print("ready", flush=True)
    deadline = time.monotonic() + 600
    while not stop.exists() and time.monotonic() < deadline:
        iterations += 1
        try:
            con = analyst_connection()
            try:
                for what, sql in CHECKS.items():
                    bad = con.execute(sql).fetchall()
                    if bad:
                        errors.append(f"{what}: {bad[:3]} (iteration {iterations})")
                for run_id, n in con.execute(
                    "SELECT r.run_id, count(x.run_id) FROM backtest_runs r "
                    "LEFT JOIN backtest_results x USING (run_id) "
                    "WHERE r.status <> 'running' GROUP BY 1"
                ).fetchall():
                    finished.setdefault(run_id, set()).add(n)
            finally:
                con.close()
        except Exception as exc:  # any error is a failure the test reports
            errors.append(f"{type(exc).__name__} at iteration {iterations}: {exc}")
    print(json.dumps({"errors": errors, "iterations": iterations,
                      "finished": {k: sorted(v) for k, v in finished.items()}}), flush=True)
    """
)


def test_every_table_has_its_place_in_the_commit_order() -> None:
    assert sorted(COMMIT_ORDER) == sorted(template().tables)


def test_a_reader_opening_while_a_transaction_commits_sees_rows_before_their_header(tmp_path: Path, monkeypatch):
    """The race made deterministic: a whole ingest commits between the reader's opening of the
    first and the second of its two tables (traces, ingest_files). Opened in reverse commit order,
    the reader sees the new traces without their accounting row, never the row without the traces."""
    lake = str(tmp_path / "warehouse.lake")
    first, _ = day_file(tmp_path / "landing", "2026-11-01")
    second, _ = day_file(tmp_path / "landing", "2026-11-02")
    ingest_paths([first], warehouse=lake)
    dl = lake_backend._deltalake()
    real = dl.DeltaTable
    opened: list[str] = []

    class Interleaved(real):
        def __init__(self, uri, *args, **kwargs):
            super().__init__(uri, *args, **kwargs)
            name = str(uri).rstrip("/").rsplit("/", 1)[-1]
            if name in ("traces", "ingest_files") and not opened:
                opened.append(name)
                monkeypatch.setattr(dl, "DeltaTable", real)  # the writer opens its own tables
                ingest_paths([second], warehouse=lake)

    monkeypatch.setattr(dl, "DeltaTable", Interleaved)
    with analyst_connection(lake) as con:
        per_file = con.execute(
            "SELECT f.source_file, f.stored, (SELECT count(*) FROM traces t WHERE t.source_file = f.source_file) "
            "FROM ingest_files f ORDER BY 1"
        ).fetchall()
        days = con.execute("SELECT count(DISTINCT day) FROM traces").fetchone()[0]
    assert [(Path(f).name, stored == n) for f, stored, n in per_file] == [(first.name, True)]
    assert days == 2  # the second file's traces, committed before its accounting row
    assert opened == ["ingest_files"]


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "prompt_release", *args],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_an_analyst_loop_never_errs_nor_sees_half_a_commit_while_the_pipeline_writes(tmp_path: Path, monkeypatch):
    lake = str(tmp_path / "warehouse.lake")
    registry = tmp_path / "registry"
    for folder in ("prompts", "schemas", "evals"):
        shutil.copytree(REPO_ROOT / folder, registry / folder)
    monkeypatch.setenv("PROMPT_RELEASE_WAREHOUSE", lake)
    monkeypatch.setenv("PROMPT_RELEASE_REGISTRY", str(registry))
    landing = tmp_path / "landing"
    hashes = {p.version_id: p.package_hash for p in Registry(registry).list_versions()}
    days = 4
    generate(
        landing,
        days=days,
        seed=5 + SEED_SHIFT,
        scale=0.3,
        start_date=date.today() - timedelta(days=days),
        package_hashes=hashes,
    )
    day_folders = sorted(p for p in landing.iterdir() if p.is_dir())
    # The first two days are there before the analyst starts: a golden set and history to backtest on.
    ingest_paths(day_folders[:2], warehouse=lake)
    mine_failures(lake, registry)
    for workflow in WORKFLOWS:
        build_golden(lake, registry, workflow)

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    stop = tmp_path / "stop"
    analyst = subprocess.Popen(
        [sys.executable, "-c", _ANALYST, str(stop)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    writers: list[subprocess.Popen] = []
    try:
        assert analyst.stdout.readline().strip() == "ready", analyst.stderr.read()
        writers = [
            _cli("ingest", *map(str, day_folders[2:]), "--json", env=env),
            _cli("mine", env=env),
            _cli("golden", "build", env=env),
            _cli(
                "backtest",
                "--candidate",
                "support_router:v1.6.0",
                "--history-size",
                "40",
                "--concurrency",
                "8",
                "--json",
                env=env,
            ),
        ]
        for writer in writers:
            _out, werr = writer.communicate(timeout=900)
            if writer.returncode and "another writer" in werr:
                # it lost a partition race, said so and committed nothing more: run it again, as
                # its scheduler (Dagster's retry policy) would, still under the analyst's eye
                again = subprocess.run(writer.args, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
                writer.returncode, werr = again.returncode, again.stderr
            assert writer.returncode == 0, f"{writer.args[3:]}: exit {writer.returncode}\n{werr[-2000:]}"
        stop.touch()
        out, err = analyst.communicate(timeout=300)
    finally:
        for proc in [analyst, *writers]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert analyst.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["errors"] == []
    assert report["iterations"] > 0

    # Every finished backtest the analyst saw, it saw whole: the count it read is the final count.
    with analyst_connection() as con:
        final = dict(
            con.execute(
                "SELECT run_id, count(*) FROM backtest_results GROUP BY 1 "
                "HAVING run_id IN (SELECT run_id FROM backtest_runs WHERE status <> 'running')"
            ).fetchall()
        )
        stored_days = con.execute("SELECT count(DISTINCT day) FROM traces").fetchone()[0]
    assert final, "the backtest finished no run"
    for run_id, seen in report["finished"].items():
        assert seen == [final[run_id]], run_id
    assert stored_days == days
