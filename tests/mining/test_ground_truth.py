"""Issue 4, acceptance 1: on the generated history every injected failure is detected.

Expected counts come from the generator's ground truth (what it injected),
never from the detectors: per workflow, prompt version, day and failure class.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from prompt_release.mining.detectors import mine_failures
from prompt_release.sample.generator import generate
from prompt_release.traces import ingest_paths
from prompt_release.warehouse import read_connection

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Counter]:
    base = tmp_path_factory.mktemp("ground_truth")
    landing, warehouse = base / "landing", base / "warehouse.duckdb"
    truth = generate(landing, days=4, seed=11, scale=0.4, start_date=None)
    ingest_paths(sorted(p for p in landing.iterdir() if p.is_dir()), warehouse=warehouse)
    mine_failures(warehouse, REPO_ROOT)
    with read_connection(warehouse) as con:
        rows = con.execute(
            "SELECT workflow, prompt_version, CAST(day AS VARCHAR), failure_class, count(*) FROM failures GROUP BY ALL"
        ).fetchall()
    found = Counter({(w, v, d, c): n for w, v, d, c, n in rows})
    return truth, found


def test_every_injected_failure_class_is_detected_with_the_injected_count(mined: tuple[dict, Counter]) -> None:
    truth, found = mined
    expected = Counter()
    for workflow, versions in truth["counts"].items():
        for version, days in versions.items():
            for day, classes in days.items():
                for failure_class, n in classes.items():
                    expected[(workflow, version, day, failure_class)] = n
    assert expected, "the generator injected nothing"

    def by_class(counter):
        return Counter({k[3]: 0 for k in counter}) + Counter(
            {cls: sum(n for k, n in counter.items() if k[3] == cls) for cls in {k[3] for k in counter}}
        )

    assert by_class(found) == by_class(expected)
    assert found == expected


def test_every_failure_class_the_generator_knows_was_injected(mined: tuple[dict, Counter]) -> None:
    truth, _ = mined
    injected = {cls for per_workflow in truth["totals"].values() for cls, n in per_workflow.items() if n}
    assert injected == set(truth["failure_classes"])
