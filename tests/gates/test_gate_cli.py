"""`prompt-release gate` as a CI step: exit 0 promote, 1 reject, 3 freeze, 2 usage error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompt_release.llm.simulator import start_simulator
from prompt_release.warehouse import read_connection
from tests.conftest import run_cli
from tests.world import World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("gate"))


@pytest.fixture(scope="module")
def env(world: World):
    with start_simulator(port=0) as sim:
        yield {
            "PROMPT_RELEASE_REGISTRY": str(world.registry),
            "PROMPT_RELEASE_WAREHOUSE": str(world.warehouse),
            "OPENAI_BASE_URL": sim.base_url,
        }


def test_promote_exits_0_with_the_verdict_first(env: dict) -> None:
    result = run_cli("gate", "--candidate", "support_router:v1.6.0", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("## Verdict: PROMOTE")
    html = Path(result.stdout.strip().splitlines()[-1].removeprefix("report: "))
    assert "Verdict: PROMOTE" in html.read_text()


def test_reject_exits_1_and_is_stored_with_its_ids(env: dict, world: World) -> None:
    result = run_cli("gate", "--candidate", "support_router:v1.7.0", "--json", env=env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "reject" and "json_valid_rate" in report["failed_gates"]
    with read_connection(world.warehouse) as con:
        row = con.execute(
            "SELECT verdict, candidate_hash, baseline_version, dataset_version, run_id "
            "FROM gate_reports WHERE report_id = ?",
            [report["report_id"]],
        ).fetchall()[0]
    assert row[0] == "reject" and row[1] == report["candidate"]["hash"]
    assert row[2] == "support_router:v1.5.2" and row[3] == "support_router_golden:v1" and row[4] == report["run_id"]


def test_not_enough_evidence_exits_3(env: dict, tmp_path: Path) -> None:
    spec = tmp_path / "strict.json"
    # The issue's own example threshold: a few hundred cases cannot show 99.5%.
    spec.write_text(json.dumps({"gates": {"schema_pass_rate": ">= 99.5%"}}))
    result = run_cli("gate", "--candidate", "support_router:v1.6.0", "--spec", str(spec), env=env)
    assert result.returncode == 3, result.stderr
    assert "Verdict: FREEZE" in result.stdout and "cases would likely decide it" in result.stdout


def test_malformed_spec_is_a_usage_error_naming_the_gate(env: dict, tmp_path: Path) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"gates": {"schema_pass_rate": ">= lots"}}))
    result = run_cli("gate", "--candidate", "support_router:v1.6.0", "--spec", str(spec), env=env)
    assert result.returncode == 2
    assert "schema_pass_rate" in result.stderr and str(spec) in result.stderr


def test_the_documented_example_spec_loads() -> None:
    from prompt_release.gates.spec import load_gate_spec

    spec = load_gate_spec(Path(__file__).resolve().parents[2] / "docs" / "examples" / "gate_spec.json")
    assert [g.metric for g in spec.parsed_gates] == [
        "schema_pass_rate",
        "unsafe_tool_call_rate",
        "handoff_accuracy",
        "p95_latency",
    ]
