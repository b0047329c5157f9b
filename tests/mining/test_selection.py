"""Selection: near-duplicates collapse, budgets hold, every failure class is represented."""

from __future__ import annotations

from collections import Counter

from prompt_release.mining.selection import Candidate, cluster_candidates, normalise, select_cases
from prompt_release.mining.settings import SelectionSettings


def _cand(i: int, text: str, cls: str, rank: int = 3, intent: str = "billing", segment: str = "gold") -> Candidate:
    return Candidate(f"case_{i:016x}", text, (cls,), rank, 1, intent, segment)


def test_normalise_generalises_numbers_and_placeholders():
    assert normalise("Order ORD-123456 from <EMAIL_2>  ") == normalise("order ord-999999 from <EMAIL_1>")


def test_near_duplicates_cluster_and_one_noisy_failure_cannot_flood():
    noisy = [_cand(i, f"I was charged twice for order {i}, please help", "invalid_json") for i in range(100)]
    others = [
        _cand(1000, "my parcel never arrived", "escalation", 2),
        _cand(1001, "how do I reset my password", "negative_feedback", 2),
        _cand(1002, "the app crashes on login", "latency_outlier", 1),
    ]
    clusters = cluster_candidates(noisy + others, 88)
    assert len([c for c in clusters if c.failure_class == "invalid_json"]) == 1
    chosen = select_cases(noisy + others, 50, SelectionSettings(per_cluster=3)).chosen
    counts = Counter(c.primary_class for c in chosen)
    assert counts == {"invalid_json": 3, "escalation": 1, "negative_feedback": 1, "latency_outlier": 1}


def test_budget_per_class_and_total_budget():
    cands = [_cand(i, f"distinct complaint number {'abcdefghij'[i % 10] * (i + 3)}", "correction") for i in range(40)]
    chosen = select_cases(cands, 100, SelectionSettings(per_failure_class=7, per_cluster=1, similarity=95)).chosen
    assert len(chosen) == 7
    assert len(select_cases(cands, 5, SelectionSettings(per_cluster=1, similarity=95)).chosen) == 5


def test_cluster_members_are_stratified_across_intents_and_segments():
    cands = [
        _cand(
            i,
            "refund my order please",
            "correction",
            intent=("billing" if i < 8 else "shipping"),
            segment=("gold" if i % 2 else "free"),
        )
        for i in range(10)
    ]
    chosen = select_cases(cands, 10, SelectionSettings(per_cluster=4)).chosen
    assert len({c.stratum for c in chosen}) == 4


def test_selection_is_deterministic():
    cands = [_cand(i, f"text {i % 7} about orders {i}", ["error", "retry", "correction"][i % 3]) for i in range(60)]
    assert select_cases(cands, 20).case_ids == select_cases(list(reversed(cands)), 20).case_ids
