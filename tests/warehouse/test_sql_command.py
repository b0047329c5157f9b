"""`prompt-release sql`: readable answers from the analyst snapshot, one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from prompt_release.cli import main
from prompt_release.warehouse import analyst_path, write_transaction
from tests.conftest import run_cli


@pytest.fixture
def filled(warehouse: Path) -> Path:
    with write_transaction(warehouse) as con:
        con.execute(
            """
            CREATE TABLE version_scores AS
            SELECT * FROM (VALUES
                ('support_router:v1.5.2', 0.91, 120, '{"route": "billing"}'::JSON, 'first line' || chr(10) || 'second'),
                ('support_router:v1.6.0', 0.955, 8, '{"route": "account_recovery"}'::JSON, NULL)
            ) AS t(prompt_version, handoff_accuracy, n_cases, sample_output, note)
            """
        )
    return warehouse


def sql(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["sql", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_is_aligned_with_numbers_right_aligned(filled: Path, capsys) -> None:
    code, out, err = sql(capsys, "SELECT prompt_version, handoff_accuracy, n_cases FROM version_scores ORDER BY 1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["prompt_version", "handoff_accuracy", "n_cases"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["support_router:v1.5.2", "0.91", "120"]
    assert lines[3].split() == ["support_router:v1.6.0", "0.955", "8"]
    # Right-aligned numbers end in the same column.
    assert lines[2].index("120") + 3 == lines[3].index("8") + 1
    assert lines[-1] == "(2 rows)"


def test_table_shows_null_and_escapes_newlines(filled: Path, capsys) -> None:
    code, out, _ = sql(capsys, "SELECT note FROM version_scores ORDER BY prompt_version")
    assert code == 0
    assert out.splitlines()[2:4] == ["first line\\nsecond", "NULL"]


def test_table_caps_rows_and_says_so(filled: Path, capsys) -> None:
    code, out, _ = sql(capsys, "SELECT range AS n FROM range(500)", "--max-rows", "5")
    assert code == 0
    assert len(out.splitlines()) == 2 + 5 + 1
    assert "(500 rows, first 5 shown" in out


def test_csv_round_trips_through_a_csv_reader(filled: Path, capsys) -> None:
    code, out, _ = sql(capsys, "SELECT prompt_version, n_cases, note FROM version_scores ORDER BY 1", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows == [
        {"prompt_version": "support_router:v1.5.2", "n_cases": "120", "note": "first line\nsecond"},
        {"prompt_version": "support_router:v1.6.0", "n_cases": "8", "note": ""},
    ]


def test_json_is_a_list_of_objects_with_json_columns_nested(filled: Path, capsys) -> None:
    code, out, _ = sql(
        capsys,
        "SELECT prompt_version, handoff_accuracy, sample_output, note FROM version_scores ORDER BY 1",
        "--format",
        "json",
    )
    assert code == 0
    assert json.loads(out) == [
        {
            "prompt_version": "support_router:v1.5.2",
            "handoff_accuracy": 0.91,
            "sample_output": {"route": "billing"},
            "note": "first line\nsecond",
        },
        {
            "prompt_version": "support_router:v1.6.0",
            "handoff_accuracy": 0.955,
            "sample_output": {"route": "account_recovery"},
            "note": None,
        },
    ]
    code, out, _ = sql(capsys, "SELECT * FROM version_scores WHERE false", "--format", "json")
    assert json.loads(out) == []


def test_reads_the_snapshot_by_default_and_the_live_file_with_live(filled: Path, capsys) -> None:
    with write_transaction(filled, publish=False) as con:
        con.execute("DELETE FROM version_scores")
    assert analyst_path(filled).exists()
    assert sql(capsys, "SELECT count(*) AS n FROM version_scores", "--format", "csv")[1] == "n\n2\n"
    assert sql(capsys, "SELECT count(*) AS n FROM version_scores", "--format", "csv", "--live")[1] == "n\n0\n"


def test_query_from_stdin(filled: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT count(*) AS n FROM version_scores"))
    assert sql(capsys, "-", "--format", "csv")[1] == "n\n2\n"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT * FORM version_scores", "Parser Error"),
        ("SELECT * FROM no_such_table", "no_such_table does not exist"),
        ("DELETE FROM version_scores", "read-only"),
    ],
)
def test_sql_error_is_one_line_and_exit_2(filled: Path, query: str, expected: str) -> None:
    result = run_cli("sql", query, "--warehouse", str(filled))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("prompt-release: error: ")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_warehouse_says_so(tmp_path: Path, capsys) -> None:
    code, _, err = sql(capsys, "SELECT 1", "--warehouse", str(tmp_path / "none.duckdb"))
    assert code == 2
    assert f"no warehouse at '{tmp_path / 'none.duckdb'}' (from --warehouse)" in err
    assert "make demo" in err  # a command that exists
    assert not (tmp_path / "none.duckdb").exists()
