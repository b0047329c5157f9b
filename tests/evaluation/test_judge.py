"""Issue 5, checks: the LLM-as-judge (pairwise, randomised order, versioned rubric, calibration self-check)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from prompt_release.errors import UserError
from prompt_release.evaluation.backtest import BacktestSettings, run_backtest
from prompt_release.evaluation.judge import (
    JudgePair,
    calibration_pairs,
    calibration_report,
    candidate_position,
    judge_pairs,
    resolve_judge,
)
from prompt_release.llm import rules
from prompt_release.llm.settings import LLMSettings
from prompt_release.llm.simulator import start_simulator
from prompt_release.registry import Registry
from prompt_release.registry.rubric import load_rubric, parse_rubric
from prompt_release.warehouse import read_connection
from tests.world import REPO_ROOT, World, build_world

RUBRIC_PATH = "evals/rubrics/summary_quality.yaml"
DOCUMENT = (
    "Customer Ana Ruiz called on 3 March about invoice 4471. She was charged twice for the May "
    "subscription. We refunded one charge of $29 and sent a confirmation email. She asked that future "
    "invoices go to her work address."
)
FULL = "Ana Ruiz called on 3 March: invoice 4471 was charged twice for May; we refunded $29 and emailed her."
THIN = "A customer called about a double charge, which was refunded."


@pytest.fixture(scope="module")
def simulator():
    with start_simulator(port=0) as sim:
        yield sim


@pytest.fixture(scope="module")
def llm(simulator) -> LLMSettings:
    return LLMSettings(base_url=simulator.base_url, max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.05)


@pytest.fixture(scope="module")
def rubric():
    return load_rubric(REPO_ROOT, RUBRIC_PATH)


@pytest.fixture(scope="module")
def judge_package(rubric):
    return resolve_judge(Registry(REPO_ROOT), rubric)


# ----------------------------------------------------------------- the simulator as judge


def _layout(a: str, b: str, document: str = DOCUMENT) -> str:
    return f"You judge summaries.\n### Document\n{document}\n### Response A\n{a}\n### Response B\n{b}\n"


def test_simulator_judge_prefers_the_summary_that_keeps_key_facts() -> None:
    assert {"ana", "ruiz", "4471", "29", "march", "may"} <= set(rules.key_tokens(DOCUMENT))
    assert "customer" not in rules.key_tokens(DOCUMENT)  # capitalised only because it opens a sentence
    verdict = rules.judge_pairwise(_layout(FULL, THIN), 60)
    assert verdict["preferred"] == "A" and verdict["score_a"] > verdict["score_b"]
    swapped = rules.judge_pairwise(_layout(THIN, FULL), 60)  # position-blind
    assert swapped["preferred"] == "B" and (swapped["score_a"], swapped["score_b"]) == (
        verdict["score_b"],
        verdict["score_a"],
    )


def test_simulator_judge_penalises_refusals_and_overlong_answers() -> None:
    refusal = rules.judge_pairwise(_layout(rules.REFUSAL_TEXT, FULL), 60)
    assert refusal["preferred"] == "B" and refusal["score_a"] == 1
    question = rules.judge_pairwise(_layout(FULL, "Could you clarify what you need?"), 60)
    assert question["preferred"] == "A" and question["score_b"] == 1
    padded = FULL + " " + " ".join(["This was discussed at length."] * 12)
    over = rules.judge_pairwise(_layout(padded, FULL), 60)
    assert over["preferred"] == "B" and over["score_a"] < over["score_b"]
    assert rules.judge_pairwise(_layout(padded, FULL), None)["preferred"] == "tie"  # no limit, same facts


def test_judge_directive_parses_and_drives_the_decision() -> None:
    parsed = rules.parse_rules("[judge] pairwise max_words: 40\n[judge] pairwise sometimes")
    assert (parsed.judge, parsed.judge_max_words) == ("pairwise", 40)
    assert parsed.problems and "judge" in parsed.problems[0]
    decision = rules.decide(
        [
            {"role": "system", "content": "[judge] pairwise\n" + _layout(FULL, THIN)},
            {"role": "user", "content": "Judge them."},
        ]
    )
    assert decision.kind == "judge"
    answer = json.loads(decision.content)
    assert set(answer) == {"preferred", "score_a", "score_b", "reason"} and answer["preferred"] == "A"
    # A prompt without the directive is not judged, whatever its layout.
    assert rules.decide([{"role": "user", "content": _layout(FULL, THIN)}]).kind != "judge"


# ----------------------------------------------------------------- rubric


def test_rubric_loads_with_a_content_hash_that_follows_its_content(rubric, tmp_path: Path) -> None:
    assert rubric.ref == "summary_quality:v1.0.0" and rubric.judge == "summary_judge"
    assert rubric.content_hash.startswith("sha256:") and len(rubric.calibration) >= 4
    assert abs(sum(c.weight for c in rubric.criteria) - 1) < 1e-9
    text = (REPO_ROOT / RUBRIC_PATH).read_text()
    edited = parse_rubric(text.replace("max_words: 60", "max_words: 50"), file="x.yaml")
    assert edited.ref == rubric.ref and edited.content_hash != rubric.content_hash
    with pytest.raises(UserError, match="weights must sum to 1"):
        parse_rubric(text.replace("weight: 0.5", "weight: 0.7"), file="x.yaml")
    with pytest.raises(UserError) as bad:
        parse_rubric(text.replace("expected_preference: B", "expected_preference: maybe", 1), file="x.yaml")
    assert "calibration" in (bad.value.field or "")
    with pytest.raises(UserError, match="escapes"):
        load_rubric(tmp_path, "../summary_quality.yaml")


def test_manifest_rubric_field_is_not_hashed() -> None:
    reg = Registry(REPO_ROOT)
    package = reg.load_package("summarizer:v1.1.0")
    assert package.rubric == RUBRIC_PATH
    assert all(result.ok for result in reg.verify())  # adding the field changed no registered hash


# ----------------------------------------------------------------- judge_pairs


def test_order_is_deterministic_per_seed_and_both_orders_occur() -> None:
    ids = [f"case_{i:04d}|0" for i in range(40)]
    first = [candidate_position(7, i) for i in ids]
    assert first == [candidate_position(7, i) for i in ids]
    assert {"A", "B"} == set(first) and 10 < first.count("A") < 30
    assert first != [candidate_position(8, i) for i in ids]


def test_judge_pairs_maps_positions_back_and_records_rubric_and_judge(
    tmp_path: Path, rubric, judge_package, llm
) -> None:
    warehouse = tmp_path / "w.duckdb"
    pairs = [JudgePair(f"p{i}", DOCUMENT, FULL, THIN) for i in range(12)]
    scores = judge_pairs(
        pairs, rubric=rubric, judge_package=judge_package, llm_settings=llm, warehouse=warehouse, seed=3
    )
    assert {s.candidate_position for s in scores} == {"A", "B"}
    for score in scores:
        assert score.status == "ok" and score.preferred == "candidate"
        assert score.candidate_score > score.baseline_score
        assert score.preferred_position == score.candidate_position  # the raw answer named the shown slot
        assert (score.rubric_version, score.rubric_hash) == (rubric.ref, rubric.content_hash)
        assert (score.judge_version, score.judge_hash) == ("summary_judge:v1.0.0", judge_package.package_hash)
        assert score.record()["rubric_hash"] == rubric.content_hash
    again = judge_pairs(
        pairs, rubric=rubric, judge_package=judge_package, llm_settings=llm, warehouse=warehouse, seed=3
    )
    assert all(s.cached for s in again)  # judge calls go through the same cache
    assert [s.candidate_score for s in again] == [s.candidate_score for s in scores]


def test_calibration_agreement_is_the_share_matching_expected_preference(
    rubric, judge_package, llm, tmp_path: Path
) -> None:
    scores = judge_pairs(
        calibration_pairs(rubric),
        rubric=rubric,
        judge_package=judge_package,
        llm_settings=llm,
        warehouse=tmp_path / "w.duckdb",
        seed=0,
    )
    report = calibration_report(rubric, scores)
    assert report["examples"] == report["judged"] == len(rubric.calibration)
    assert report["agreement"] == pytest.approx(report["agreed"] / report["judged"])
    # The key-fact stand-in cannot see a faithfulness error (names swapped): the last example.
    assert [r["agrees"] for r in report["results"]] == [True] * (len(rubric.calibration) - 1) + [False]
    assert report["rubric_hash"] == rubric.content_hash


# ----------------------------------------------------------------- in the backtest


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("judge"), days=2, scale=0.15)


def test_backtest_of_summarizer_fills_judge_scores_for_both_roles(world: World, llm, rubric) -> None:
    outcome = run_backtest(
        BacktestSettings(candidate="summarizer:v1.1.0", history_size=40),
        registry_root=world.registry,
        warehouse=world.warehouse,
        llm_settings=llm,
    )
    with read_connection(world.warehouse) as con:
        per_role = dict(
            (r[0], r[1:])
            for r in con.execute(
                "SELECT role, count(*) FILTER (WHERE judge_score IS NOT NULL), count(*) FILTER (WHERE status = 'ok'), "
                "avg(judge_score), min(rubric_version), max(rubric_version), min(rubric_hash), max(rubric_hash) "
                "FROM backtest_results WHERE run_id = ? GROUP BY role",
                [outcome.run_id],
            ).fetchall()
        )
        run = con.execute(
            "SELECT rubric_version, rubric_hash, judge_version, judge_calibration FROM backtest_runs WHERE run_id = ?",
            [outcome.run_id],
        ).fetchone()
        positions = dict(
            con.execute(
                "SELECT judge->>'candidate_position', count(*) FROM backtest_results "
                "WHERE run_id = ? AND role = 'candidate' AND judge IS NOT NULL GROUP BY 1",
                [outcome.run_id],
            ).fetchall()
        )
    for role in ("candidate", "baseline"):
        judged, ok, _, low_v, high_v, low_h, high_h = per_role[role]
        assert judged > 0 and judged >= ok - 2  # every pair where both sides answered
        assert low_v == high_v == rubric.ref and low_h == high_h == rubric.content_hash
    # 30-word summaries drop facts the 60-word production summaries keep.
    assert per_role["candidate"][2] < per_role["baseline"][2]
    assert set(positions) == {"A", "B"}
    assert run[:3] == (rubric.ref, rubric.content_hash, "summary_judge:v1.0.0")
    calibration = json.loads(run[3])
    assert calibration["examples"] == len(rubric.calibration) and 0 < calibration["agreement"] <= 1
    assert outcome.summary["judge"]["calibration_agreement"] == calibration["agreement"]
    assert outcome.summary["candidate"]["judge_score"] < outcome.summary["baseline"]["judge_score"]


def test_workflow_without_rubric_is_not_judged(world: World, llm) -> None:
    outcome = run_backtest(
        BacktestSettings(candidate="support_router:v1.6.0", history_size=20, dataset="none"),
        registry_root=world.registry,
        warehouse=world.warehouse,
        llm_settings=llm,
    )
    with read_connection(world.warehouse) as con:
        assert con.execute(
            "SELECT count(judge_score), count(rubric_version) FROM backtest_results WHERE run_id = ?", [outcome.run_id]
        ).fetchone() == (0, 0)
        assert con.execute(
            "SELECT rubric_version, judge_calibration FROM backtest_runs WHERE run_id = ?", [outcome.run_id]
        ).fetchone() == (None, None)
    assert "judge" not in outcome.summary


def test_missing_judge_label_is_a_user_error(world: World, llm, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(world.registry, registry)
    (registry / "prompts/summary_judge/labels.json").unlink()
    (registry / "prompts/summary_judge/label_events.jsonl").unlink()
    with pytest.raises(UserError, match="summary_judge"):
        resolve_judge(Registry(registry), load_rubric(registry, RUBRIC_PATH))


def test_a_rubric_edited_in_place_is_refused_by_verify_and_by_the_judge(world: World, llm, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    registry = tmp_path / "registry"
    shutil.copytree(world.registry, registry)
    shutil.copy(world.warehouse, tmp_path / "warehouse.duckdb")
    rubric_file = registry / RUBRIC_PATH
    verified = run_cli("prompts", "verify", "--registry", str(registry))
    assert verified.returncode == 0 and "FAIL" not in verified.stdout, verified.stdout
    # Same version, other criteria: judged runs would mix two rubrics under one version.
    rubric_file.write_text(rubric_file.read_text().replace("max_words: 60", "max_words: 90"))
    refused = run_cli("prompts", "verify", "--registry", str(registry))
    assert refused.returncode == 1
    assert "FAIL rubric summary_quality:v1.0.0" in refused.stdout and "bump its version" in refused.stdout
    with pytest.raises(UserError, match="summary_quality:v1.0.0 .* edited in place"):
        run_backtest(
            BacktestSettings(candidate="summarizer:v1.1.0", history_size=5, dataset="none"),
            registry_root=registry,
            warehouse=tmp_path / "warehouse.duckdb",
            llm_settings=llm,
        )
    # Bumped, the edit is a new rubric version, recorded when a package judged by it is registered.
    rubric_file.write_text(rubric_file.read_text().replace("version: 1.0.0", "version: 1.1.0"))
    assert run_cli("prompts", "verify", "--registry", str(registry)).returncode == 0
    Registry(registry).register("summarizer:v1.1.0")
    lock = json.loads((registry / "prompts/registry.lock.json").read_text())
    assert set(lock["rubrics"]) == {"summary_quality:v1.0.0", "summary_quality:v1.1.0"}
    assert lock["rubrics"]["summary_quality:v1.1.0"]["content_hash"] == load_rubric(registry, RUBRIC_PATH).content_hash


def test_gate_cli_decides_the_summarizer_on_judge_score_with_the_embedded_simulator(world: World) -> None:
    from tests.conftest import run_cli

    env = {"OPENAI_BASE_URL": ""}  # no endpoint configured: the embedded simulator starts
    result = run_cli(
        "gate",
        "--candidate",
        "summarizer:v1.1.0",
        "--history-size",
        "40",
        "--json",
        "--registry",
        str(world.registry),
        "--warehouse",
        str(world.warehouse),
        env=env,
    )
    assert result.returncode == 1, result.stderr  # reject
    report = json.loads(result.stdout)
    gate = next(g for g in report["gates"] if g["metric"] == "judge_score")
    assert gate["outcome"] == "fail" and gate["candidate"] < gate["baseline"]
    assert report["rubric_version"] == "summary_quality:v1.0.0" and report["rubric_hash"].startswith("sha256:")
    assert report["judge_calibration"]["examples"] == 6
