"""Production drift: an unchanged production prompt whose pass rate dropped between nights.

The nightly backtests re-run each production version (as the baseline arm) on
the newest golden set and recent history. Its pass rate of the newest night is
compared with the night before by Newcombe's interval for the difference of
two independent proportions; a version has drifted when the whole interval is
below zero (the model, the data or the traffic changed under it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from prompt_release.gates.statistics import Interval, newcombe_unpaired_difference
from prompt_release.markdown import md_table
from prompt_release.warehouse import read_connection

_NIGHTS_SQL = """
WITH per_run AS (
    SELECT r.baseline_version AS version, r.run_id, r.finished_at,
           count(*) FILTER (WHERE b.passed) AS passed, count(b.passed) AS n
    FROM backtest_runs r JOIN backtest_results b ON b.run_id = r.run_id AND b.role = 'baseline'
    GROUP BY ALL
), nights AS (
    SELECT version, CAST(finished_at AS DATE) AS night, sum(passed) AS passed, sum(n) AS n
    FROM per_run GROUP BY ALL
)
SELECT version, night, passed, n, lag(night) OVER w, lag(passed) OVER w, lag(n) OVER w
FROM nights WINDOW w AS (PARTITION BY version ORDER BY night)
QUALIFY row_number() OVER (PARTITION BY version ORDER BY night DESC) = 1
ORDER BY version
"""


@dataclass(frozen=True)
class DriftRow:
    """One production version: its newest night's pass rate against the night before."""

    version: str
    night: date
    passed: int
    n: int
    previous_night: date | None = None
    previous_passed: int | None = None
    previous_n: int | None = None
    change: Interval | None = None  # None: no previous night to compare with

    @property
    def dropped(self) -> bool:
        return self.change is not None and self.change.upper < 0


def drift_rows(warehouse: str | Path) -> list[DriftRow]:
    with read_connection(warehouse) as con:
        rows = con.execute(_NIGHTS_SQL).fetchall()
    out = []
    for version, night, passed, n, prev_night, prev_passed, prev_n in rows:
        if not n or not prev_n:
            out.append(DriftRow(version, night, int(passed), int(n)))
            continue
        change = newcombe_unpaired_difference(int(passed), int(n), int(prev_passed), int(prev_n))
        out.append(DriftRow(version, night, int(passed), int(n), prev_night, int(prev_passed), int(prev_n), change))
    return out


def drift_markdown(rows: list[DriftRow]) -> str:
    def line(r: DriftRow) -> tuple:
        rate = f"{r.passed / r.n:.1%}" if r.n else "-"
        if r.change is None:
            return (r.version, r.night, rate, "-", "first night", "-")
        c = r.change
        return (
            r.version,
            r.night,
            rate,
            f"{r.previous_passed / r.previous_n:.1%} ({r.previous_night})",
            f"{c.estimate:+.1%} [{c.lower:+.1%}, {c.upper:+.1%}]",
            "**DROP**" if r.dropped else "no",
        )

    return md_table(
        ["production version", "night", "pass rate", "previous", "change (95% CI)", "drift"],
        [line(r) for r in rows],
        align_right=(2, 3),
    )
