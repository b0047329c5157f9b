"""Judge-proposed labels: `golden propose` stores proposals apart from labels; only what a person
accepts (in bulk or case by case) becomes a label, recorded with the person and the proposer."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompt_release.contracts.checks import compile_contract
from prompt_release.errors import UserError
from prompt_release.golden import store
from prompt_release.golden.labelling import (
    label_interactively,
    pending_proposals,
    propose_labels,
    proposed_expectation,
    read_proposals,
    unlabelled_cases,
)
from prompt_release.llm.client import CallResult
from prompt_release.llm.settings import LLMSettings
from prompt_release.llm.simulator import start_simulator
from prompt_release.registry import Registry
from tests.conftest import REPO_ROOT, run_cli
from tests.world import World, build_world

DATASET = "support_router_golden"
ROUTES = {"account_recovery", "billing", "technical", "shipping", "general"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("propose"), days=2, scale=0.15)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with start_simulator(port=0) as sim:
        yield sim.base_url


@pytest.fixture
def world(built: World, tmp_path: Path) -> World:
    """A copy per test: proposals, labels and versions are written."""
    shutil.copytree(built.registry, tmp_path / "registry")
    shutil.copy(built.warehouse, tmp_path / "warehouse.duckdb")
    return World(tmp_path, tmp_path / "registry", tmp_path / "warehouse.duckdb", built.landing, built.start, built.days)


def _propose(world: World, base_url: str, **options) -> object:
    settings = LLMSettings.from_env(base_url=base_url)
    return propose_labels(world.warehouse, world.registry, DATASET, llm_settings=settings, **options)


def _latest(world: World):
    return store.read_version(world.registry, DATASET, max(store.versions(world.registry, DATASET)))


def test_proposals_are_no_labels_until_a_person_accepts_them(world: World, endpoint: str) -> None:
    manifest, cases = _latest(world)
    versions = store.versions(world.registry, DATASET)
    unlabelled = {c.case_id for c in unlabelled_cases(world.registry, DATASET)}
    assert unlabelled, "the world's golden set has unlabelled cases"
    production = Registry(world.registry).load_package(
        Registry(world.registry).resolve_label("support_router", "production")
    )

    outcome = _propose(world, endpoint)
    assert outcome.asked and len(outcome.proposed) + len(outcome.not_proposed) == len(unlabelled)
    stored, rejected = read_proposals(world.registry, DATASET)
    assert [p.proposal_id for p in stored] == [p.proposal_id for p in outcome.proposed] and not rejected
    for proposal in stored:
        # A route the production contract allows, proposed by the production prompt on the endpoint's model.
        assert proposal.expected["kind"] == "label" and proposal.expected["value"]["route"] in ROUTES
        assert (proposal.model, proposal.prompt_version, proposal.package_hash) == (
            production.model,
            production.version_id,
            production.package_hash,
        )
        assert proposal.dataset_version == manifest.version_id and proposal.proposed_at
    # Coverage counts only accepted labels: no version was written, nothing became a label.
    assert store.versions(world.registry, DATASET) == versions
    assert {c.case_id for c in unlabelled_cases(world.registry, DATASET)} == unlabelled
    assert not store.labels_path(world.registry, DATASET).exists()

    # Asked again: the cases with this model's and prompt's proposal are not asked again (the
    # rest answer as before, from the cache).
    again = _propose(world, endpoint)
    assert again.kept == len(outcome.proposed) and not again.proposed and again.cached == again.asked

    # A prompt that answers in prose breaks the contract: its answers propose nothing.
    before = store.proposals_path(world.registry, DATASET).read_bytes()
    prose = _propose(world, endpoint, prompt="support_router:v1.7.0")
    assert prose.asked and not prose.proposed
    assert all("invalid_json" in why or "cannot render" in why for _, why in prose.not_proposed), prose.not_proposed
    assert store.proposals_path(world.registry, DATASET).read_bytes() == before
    # The same question twice is answered from the answer cache.
    assert _propose(world, endpoint, prompt="support_router:v1.7.0").cached == prose.asked

    env = {"PROMPT_RELEASE_CONFIG": str(world.root / "no-state")}
    out = run_cli(
        "golden", "label", DATASET, "--accept-proposals", "all", "--actor", "reviewer-2",
        "--registry", str(world.registry), "--warehouse", str(world.warehouse), env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"{len(stored)} label(s) recorded, {len(stored)} proposal(s) accepted" in out.stdout
    after, cases = _latest(world)
    assert after.labelled_count == manifest.labelled_count + len(stored)
    expected = {c.case_id: c.expected for c in cases}
    lines = [json.loads(x) for x in store.labels_path(world.registry, DATASET).read_text().splitlines()]
    assert len(lines) == len(stored)
    for line, proposal in zip(lines, stored, strict=True):
        assert line["case_id"] == proposal.case_id and line["labelled_by"] == "reviewer-2"
        assert line["proposal"]["proposal_id"] == proposal.proposal_id and line["proposal"]["decision"] == "accepted"
        assert line["proposal"]["model"] == production.model
        assert expected[proposal.case_id].value == proposal.expected["value"]
    assert pending_proposals(world.registry, DATASET) == {}


def test_an_acceptance_file_is_checked_whole_before_anything_is_written(world: World, endpoint: str) -> None:
    common = ["--registry", str(world.registry), "--warehouse", str(world.warehouse)]
    env = {"PROMPT_RELEASE_CONFIG": str(world.root / "no-state"), "OPENAI_BASE_URL": endpoint}
    out = run_cli("golden", "propose", DATASET, "--model", "judge-large", *common, env=env)
    assert out.returncode == 0, out.stderr
    (first, second, *rest), _ = read_proposals(world.registry, DATASET)
    assert "asked judge-large with support_router:" in out.stdout
    assert (
        f"{2 + len(rest)} proposal(s) stored" in out.stdout
        and "none is a label until a person accepts it" in out.stdout
    )
    bad = world.root / "accept.jsonl"
    bad.write_text(json.dumps({"proposal_id": first.proposal_id}) + "\n" + json.dumps({"proposal_id": "prop_0"}) + "\n")
    out = run_cli("golden", "label", DATASET, "--accept-proposals", str(bad), *common, env=env)
    assert out.returncode == 2 and f"{bad}:2" in out.stderr and "proposal_id" in out.stderr
    assert "no such proposal" in out.stderr
    assert not store.labels_path(world.registry, DATASET).exists()
    assert store.versions(world.registry, DATASET) == [1]

    # Lines of the proposal file itself name what to accept.
    good = world.root / "good.jsonl"
    lines = store.proposals_path(world.registry, DATASET).read_text().splitlines()
    good.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[0] + "\n")
    out = run_cli("golden", "label", DATASET, "--accept-proposals", str(good), *common, env=env)
    assert out.returncode == 0, out.stderr
    assert "2 label(s) recorded, 2 proposal(s) accepted" in out.stdout
    assert set(store.read_labels(world.registry, DATASET)) == {first.case_id, second.case_id}
    # Accepted once is no longer pending: naming it again is an error, and nothing is written.
    again = world.root / "again.jsonl"
    again.write_text(lines[0] + "\n")
    before = store.labels_path(world.registry, DATASET).read_bytes()
    out = run_cli("golden", "label", DATASET, "--accept-proposals", str(again), *common, env=env)
    assert out.returncode == 2 and f"{again}:1" in out.stderr and "has an expectation already" in out.stderr
    assert store.labels_path(world.registry, DATASET).read_bytes() == before

    # Another model may propose too (the simulator answers under any name); the newest proposal is offered.
    other = _propose(world, endpoint, limit=2)
    own_model = Registry(world.registry).load_package(other.prompt_version).model
    assert other.proposed and {p.model for p in other.proposed} == {own_model} != {"judge-large"}
    offered = pending_proposals(world.registry, DATASET)
    assert all(offered[p.case_id] == p for p in other.proposed)


def test_a_reviewer_accepts_edits_and_rejects_proposals_case_by_case(world: World, endpoint: str) -> None:
    outcome = _propose(world, endpoint)
    assert len(outcome.proposed) >= 3
    answers = ["a", '{"route": "billing"}', "r"]
    shown: list[str] = []

    def ask(_: str) -> str:
        # The first three cases showing a proposal get a decision; every other case is skipped.
        return answers.pop(0) if answers and "proposed label" in shown[-1] else "s"

    result = label_interactively(
        world.warehouse, world.registry, DATASET, actor="reviewer-3", ask=ask, say=shown.append
    )
    decided = outcome.proposed[:3]
    assert (result.accepted, result.edited, result.rejected, result.recorded) == (1, 1, 1, 2)
    labels = {
        json.loads(x)["case_id"]: json.loads(x)
        for x in store.labels_path(world.registry, DATASET).read_text().splitlines()
    }
    accepted, edited, rejected = decided
    assert labels[accepted.case_id]["expected"] == accepted.expected
    assert labels[accepted.case_id]["proposal"]["decision"] == "accepted"
    assert labels[edited.case_id]["expected"] == {"kind": "label", "value": {"route": "billing"}}
    assert labels[edited.case_id]["proposal"] == edited.source("edited")
    assert {line["labelled_by"] for line in labels.values()} == {"reviewer-3"}
    assert rejected.case_id not in labels
    _, turned_down = read_proposals(world.registry, DATASET)
    assert turned_down == {rejected.proposal_id: "reviewer-3"}
    assert rejected.case_id not in pending_proposals(world.registry, DATASET)
    # Labelled as decided, in the next version; the same proposal is not offered again.
    _, cases = _latest(world)
    expected = {c.case_id: c.expected for c in cases}
    assert expected[accepted.case_id] is not None and expected[rejected.case_id] is None
    again = _propose(world, endpoint)
    assert (rejected.case_id, "the same proposal was rejected by reviewer-3") in again.not_proposed


def test_a_malformed_proposal_line_names_file_line_and_field(world: World) -> None:
    path = store.proposals_path(world.registry, DATASET)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"proposal_id": "prop_1", "case_id": "c", "expected": {"route": "billing"}}) + "\n")
    with pytest.raises(UserError) as error:
        read_proposals(world.registry, DATASET)
    assert (error.value.line, error.value.field) == (1, "model") and str(path) in str(error.value)


def _answer(output: str | None, tool_calls: list | None = None, status: str = "ok") -> CallResult:
    return CallResult(tag="c", cache_key="k", sample_index=0, status=status, output=output, tool_calls=tool_calls or [])


def test_what_an_answer_proposes_is_checked_against_the_production_contract() -> None:
    registry = Registry(REPO_ROOT)
    router = compile_contract(registry.load_package("support_router:v1.5.2"))
    orders = compile_contract(registry.load_package("order_agent:v2.0.0"))
    ask = [{"role": "user", "content": "where is my order?"}]
    propose = proposed_expectation
    assert propose(router, _answer('{"route": "billing", "confidence": 0.9}'), ask) == (
        {"kind": "label", "value": {"route": "billing"}},
        "",
    )
    # Outside the schema's enum, prose instead of JSON, an error: no proposal, and why.
    assert propose(router, _answer('{"route": "sales", "confidence": 0.9}'), ask)[1].endswith("(enum_violation)")
    assert propose(router, _answer("It should go to billing."), ask) == (
        None,
        "the answer breaks the output contract (invalid_json)",
    )
    assert propose(router, _answer(None, status="error"), ask) == (None, "the call ended error")
    lookup = {"id": "call_1", "name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}
    assert propose(orders, _answer("", [lookup]), ask) == (
        {"kind": "tool_call", "value": {"name": "lookup_order", "arguments": {"order_id": "ORD-123456"}}},
        "",
    )
    # A refund with no lookup first breaks the tool policy: it proposes nothing.
    refund = {"id": "call_2", "name": "issue_refund", "arguments": {"order_id": "ORD-1", "amount_usd": 50}}
    assert propose(orders, _answer("", [refund]), ask)[0] is None
    assert propose(orders, _answer("I can't help with that."), ask)[0] == {"kind": "refuse", "value": None}
    assert propose(orders, _answer("Could you clarify what you need?"), ask)[0] == {"kind": "clarify", "value": None}
    assert propose(orders, _answer(" Your order ships today. "), ask)[0] == {
        "kind": "label",
        "value": "Your order ships today.",
    }
