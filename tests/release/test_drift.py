"""Production drift: a production version's pass rate dropping between nights is flagged, noise is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prompt_release.release.drift import drift_markdown, drift_rows
from prompt_release.warehouse import write_transaction

NIGHT = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)


def add_run(warehouse, run_id: str, baseline: str, at: datetime, passed: int, n: int) -> None:
    """One nightly backtest whose baseline arm (the production version) passed `passed` of `n` cases."""
    with write_transaction(warehouse) as con:
        con.execute(
            "INSERT INTO backtest_runs (run_id, workflow, candidate_version, candidate_hash, baseline_version, "
            "baseline_hash, samples, status, started_at, finished_at) VALUES (?, 'w', 'w:v2.0.0', 'sha256:c', ?, "
            "'sha256:b', 1, 'complete', ?, ?)",
            [run_id, baseline, at, at],
        )
        con.executemany(
            "INSERT INTO backtest_results (run_id, role, prompt_version, package_hash, case_id, case_source, "
            "sample_index, status, passed) VALUES (?, 'baseline', ?, 'sha256:b', ?, 'golden', 0, 'ok', ?)",
            [[run_id, baseline, f"c{i}", i < passed] for i in range(n)],
        )


def test_a_drop_beyond_the_interval_is_flagged(warehouse) -> None:
    add_run(warehouse, "bt_1", "w:v1.0.0", NIGHT - timedelta(days=1), 190, 200)
    add_run(warehouse, "bt_2", "w:v1.0.0", NIGHT, 140, 200)
    (row,) = drift_rows(warehouse)
    assert (row.version, row.passed, row.n, row.previous_passed, row.previous_n) == ("w:v1.0.0", 140, 200, 190, 200)
    assert row.dropped and row.change.upper < 0
    assert "**DROP**" in drift_markdown([row])


def test_noise_and_a_first_night_are_not_drift(warehouse) -> None:
    add_run(warehouse, "bt_1", "w:v1.0.0", NIGHT - timedelta(days=1), 190, 200)
    add_run(warehouse, "bt_2", "w:v1.0.0", NIGHT, 186, 200)  # 95% -> 93%: inside the noise at n=200
    add_run(warehouse, "bt_3", "x:v1.0.0", NIGHT, 10, 200)  # terrible, but nothing to compare with yet
    rows = {r.version: r for r in drift_rows(warehouse)}
    assert not rows["w:v1.0.0"].dropped and rows["w:v1.0.0"].change.lower < 0 < rows["w:v1.0.0"].change.upper
    assert not rows["x:v1.0.0"].dropped and rows["x:v1.0.0"].change is None
    assert "first night" in drift_markdown(list(rows.values()))


def test_only_the_newest_two_nights_count(warehouse) -> None:
    add_run(warehouse, "bt_1", "w:v1.0.0", NIGHT - timedelta(days=2), 100, 200)  # an old bad night
    add_run(warehouse, "bt_2", "w:v1.0.0", NIGHT - timedelta(days=1), 190, 200)
    add_run(warehouse, "bt_3", "w:v1.0.0", NIGHT, 189, 200)
    (row,) = drift_rows(warehouse)
    assert row.previous_passed == 190 and not row.dropped
