"""Choose which mined failures become golden cases: cluster, rank, budget, stratify.

Candidates are blocked by their primary failure class (the most severe one),
their text normalised (case, digits, placeholders, whitespace) and collapsed
first by exact equality, then into near-duplicate clusters with rapidfuzz's
`token_set_ratio` (`process.cdist` over the block, computed in row chunks so
memory stays bounded; each cluster is a leader plus every unassigned text at or
above the similarity cut-off, leaders taken in order of frequency). Clusters
are ranked by occurrences x severity weight. Picking is round-robin across
failure classes (so every class is represented), walking each class's clusters
in rank order, taking at most `per_cluster` cases from a cluster and
`per_failure_class` from a class; inside a cluster the member whose
intent/segment stratum is least represented so far is taken first. Everything
is deterministic: the same candidates give the same selection.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz, process

from prompt_release.mining.settings import FAILURE_CLASSES, SelectionSettings

_SEVERITY_WEIGHT = {4: 8, 3: 4, 2: 2, 1: 1}
_CLASS_ORDER = {name: i for i, name in enumerate(FAILURE_CLASSES)}
_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_\d+>")
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")
_CHUNK = 1024


@dataclass(frozen=True)
class Candidate:
    """One distinct case input that failed, with what is needed to rank and stratify it."""

    case_id: str
    text: str
    failure_classes: tuple[str, ...]
    severity_rank: int
    occurrences: int = 1
    intent: str = "none"
    segment: str = "none"

    @property
    def primary_class(self) -> str:
        return (
            min(self.failure_classes, key=lambda c: _CLASS_ORDER.get(c, len(_CLASS_ORDER)))
            if self.failure_classes
            else "none"
        )

    @property
    def stratum(self) -> tuple[str, str]:
        return (self.intent, self.segment)


@dataclass
class Cluster:
    failure_class: str
    members: list[Candidate]
    score: float = 0.0
    severity_rank: int = 0
    occurrences: int = 0
    leader: str = ""


@dataclass
class Selection:
    chosen: list[Candidate] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)

    @property
    def case_ids(self) -> list[str]:
        return [c.case_id for c in self.chosen]


def normalise(text: str) -> str:
    """What near-duplicate detection compares: lower case, numbers and placeholders generalised."""
    text = _PLACEHOLDER.sub(lambda m: f"<{m.group(1).lower()}>", text)
    text = _DIGITS.sub("0", text.lower())
    return _SPACE.sub(" ", text).strip()


def _leader_clusters(texts: list[str], similarity: float) -> list[int]:
    """Cluster index per text; leaders are taken in the order given (most frequent first)."""
    n = len(texts)
    assigned = np.full(n, -1, dtype=np.int64)
    next_cluster = 0
    for start in range(0, n, _CHUNK):
        rows = texts[start : start + _CHUNK]
        scores = process.cdist(
            rows, texts, scorer=fuzz.token_set_ratio, score_cutoff=similarity, dtype=np.uint8, workers=-1
        )
        for offset in range(len(rows)):
            i = start + offset
            if assigned[i] >= 0:
                continue
            near = np.flatnonzero((scores[offset] >= similarity) & (assigned < 0))
            assigned[near] = next_cluster
            assigned[i] = next_cluster
            next_cluster += 1
    return assigned.tolist()


def cluster_candidates(candidates: Sequence[Candidate], similarity: float) -> list[Cluster]:
    """Near-duplicate clusters, blocked by primary failure class, ranked best first."""
    blocks: dict[str, list[Candidate]] = defaultdict(list)
    for cand in candidates:
        blocks[cand.primary_class].append(cand)
    clusters: list[Cluster] = []
    for failure_class, members in sorted(blocks.items()):
        by_text: dict[str, list[Candidate]] = defaultdict(list)
        for cand in members:
            by_text[normalise(cand.text)].append(cand)
        texts = sorted(by_text, key=lambda t: (-sum(c.occurrences for c in by_text[t]), t))
        groups: dict[int, list[Candidate]] = defaultdict(list)
        for text, index in zip(texts, _leader_clusters(texts, similarity), strict=True):
            groups[index].extend(by_text[text])
        for index in sorted(groups):
            group = sorted(groups[index], key=lambda c: (-c.severity_rank, -c.occurrences, c.case_id))
            occurrences = sum(c.occurrences for c in group)
            severity = max(c.severity_rank for c in group)
            clusters.append(
                Cluster(
                    failure_class=failure_class,
                    members=group,
                    score=occurrences * _SEVERITY_WEIGHT.get(severity, 1),
                    severity_rank=severity,
                    occurrences=occurrences,
                    leader=group[0].case_id,
                )
            )
    clusters.sort(key=lambda c: (-c.score, -c.severity_rank, c.leader))
    return clusters


def _class_queue(clusters: list[Cluster], per_cluster: int) -> Iterator[Cluster]:
    """A class's clusters in rank order, revisited once per round up to `per_cluster` rounds."""
    for round_ in range(per_cluster):
        for cluster in clusters:
            if len(cluster.members) > round_:
                yield cluster


def select_cases(
    candidates: Sequence[Candidate], budget: int, settings: SelectionSettings = SelectionSettings()
) -> Selection:
    """Pick up to `budget` candidates (see module doc for the rule)."""
    clusters = cluster_candidates(candidates, settings.similarity)
    result = Selection(clusters=clusters)
    if budget <= 0 or not clusters:
        return result
    by_class: dict[str, list[Cluster]] = defaultdict(list)
    for cluster in clusters:
        by_class[cluster.failure_class].append(cluster)
    # Classes in order of their best cluster: the most hurtful class picks first each round.
    class_order = sorted(by_class, key=lambda c: (-by_class[c][0].severity_rank, -by_class[c][0].score, c))
    queues = {c: _class_queue(by_class[c], settings.per_cluster) for c in class_order}
    taken_per_class: Counter[str] = Counter()
    strata: Counter[tuple[str, str]] = Counter()
    remaining = {id(cl): list(cl.members) for cl in clusters}
    active = list(class_order)
    while active and len(result.chosen) < budget:
        for failure_class in list(active):
            if len(result.chosen) >= budget:
                break
            if taken_per_class[failure_class] >= settings.per_failure_class:
                active.remove(failure_class)
                continue
            cluster = next(queues[failure_class], None)
            if cluster is None:
                active.remove(failure_class)
                continue
            pool = remaining[id(cluster)]
            best = min(pool, key=lambda c: (strata[c.stratum], -c.severity_rank, -c.occurrences, c.case_id))
            pool.remove(best)
            result.chosen.append(best)
            taken_per_class[failure_class] += 1
            strata[best.stratum] += 1
    return result
