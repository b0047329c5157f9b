"""Labelling golden cases with what good means, and writing the labelled version.

A label is one line of the dataset's label file (`store.labels_path`):
`{"case_id", "expected": {"kind", "value"}, "labelled_by", "labelled_at", "dataset_version"}`.
The file is the reviewers' record, appended to and never rewritten in place,
so a session that stops half way loses nothing and the next one resumes at
the first case still without an expectation. After labels are recorded, the
latest version's cases with the label file applied become the next version
(`build.write_next_version`, the same path `golden build` takes), so a
backtest sees the labels at once and every label is versioned with the cases
it applies to. `--from FILE` reads the same line shape (shorthand
expectations allowed, see `build.expected_from_value`); every line is checked
before anything is written.

A model may propose labels (`propose_labels`): the workflow's prompt (its
production version unless another is named) answers each unlabelled case on
the configured endpoint, through the same cached model client as the
backtests; an answer that keeps the production version's output contract
becomes a proposed expectation in the dataset's proposal file
(`store.proposals_path`), with the model, the prompt version and hash and the
time. A proposal is not a label: no version reads the proposal file, so gate
coverage counts only what a person accepted. A person accepts, edits or
rejects it in `golden label` (or accepts in bulk, `accept_proposals`); an
accepted or edited one becomes a label line naming both the person and the
proposal it came from; a rejection is a line of the proposal file, so the
same proposal is not offered again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prompt_release.canonical import canonical_json
from prompt_release.contracts import checks
from prompt_release.errors import UserError
from prompt_release.golden import store
from prompt_release.golden.build import (
    BuildResult,
    expected_from_correction,
    expected_from_value,
    find_span,
    latest_version,
    write_next_version,
)
from prompt_release.golden.model import GoldenCase
from prompt_release.llm.client import STATUS_OK, CallRequest, CallResult, run_calls_sync
from prompt_release.llm.settings import LLMSettings
from prompt_release.mining.redaction import pii_in_value
from prompt_release.mining.settings import load_settings
from prompt_release.registry import Registry
from prompt_release.registry.ids import NAME_PATTERN, is_name, parse_version_id
from prompt_release.warehouse import read_connection


@dataclass
class LabelOutcome:
    dataset: str
    recorded: int = 0
    skipped: int = 0
    build: BuildResult | None = None
    labelled: int = 0
    cases: int = 0
    accepted: int = 0  # proposals taken as they were (counted in `recorded`)
    edited: int = 0  # proposals a person corrected (counted in `recorded`)
    rejected: int = 0  # proposals turned down


@dataclass(frozen=True)
class Proposal:
    """An expectation a model proposed for one case: never a label until a person accepts it."""

    proposal_id: str
    case_id: str
    expected: dict[str, Any]
    model: str
    prompt_version: str
    package_hash: str
    proposed_at: str
    dataset_version: str

    def source(self, decision: str) -> dict[str, Any]:
        """What a label line made from it records: the proposal, who proposed it, and the person's decision."""
        return {
            "proposal_id": self.proposal_id,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "package_hash": self.package_hash,
            "proposed_at": self.proposed_at,
            "decision": decision,
        }


def _latest(root: Path, dataset: str) -> tuple[Any, list[GoldenCase]]:
    if not is_name(dataset):  # it becomes a path
        raise UserError(f"not a dataset name (expected {NAME_PATTERN}): {dataset!r}", field="dataset")
    found = latest_version(root, dataset)
    if found is None:
        raise UserError(f"no golden dataset {dataset!r} yet: run `prompt-release golden build` first", field="dataset")
    return found


def unlabelled_cases(root: str | Path, dataset: str) -> list[GoldenCase]:
    """Cases of the latest version with no expectation and no line in the label file, in case-id order."""
    _, cases = _latest(Path(root), dataset)
    labelled = store.read_labels(root, dataset)
    return [c for c in cases if c.expected is None and c.case_id not in labelled]


def _refuse_personal_data(expected: dict[str, Any], patterns: dict[str, str], **where: Any) -> None:
    leaks = pii_in_value(expected.get("value"), patterns)
    if leaks:
        # Golden files are redacted; a label carrying personal data would put it back.
        raise UserError(
            f"the expectation holds personal data ({leaks[0].kind}); write the case's placeholders instead",
            field="expected",
            **where,
        )


def read_label_lines(
    path: str | Path, known: Iterable[str], patterns: dict[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(case_id, expectation) per line of a bulk label file; the first bad line is a UserError naming it."""
    path = Path(path)
    if not path.exists():
        raise UserError("no such label file", file=path, field="from")
    known = set(known)
    out = []
    for number, record in store.jsonl_records(path):
        case_id = record.get("case_id")
        if not isinstance(case_id, str):
            raise UserError("a label names its case: a string case_id", file=path, line=number, field="case_id")
        if case_id not in known:
            raise UserError(
                f"no case {case_id!r} in the latest version of the dataset", file=path, line=number, field="case_id"
            )
        if "expected" not in record:
            raise UserError("a label says what good means: expected", file=path, line=number, field="expected")
        expected = expected_from_value(record["expected"], field="expected", file=path, line=number)
        _refuse_personal_data(expected, patterns or {}, file=path, line=number)
        out.append((case_id, expected))
    return out


def _append_atomically(path: Path, lines: Sequence[str]) -> None:
    # The whole new file is written beside the old one and renamed over it: a label file is
    # either as it was or holds every new line, never half of them.
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(old + "".join(line + "\n" for line in lines).encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _label_line(
    case_id: str,
    expected: dict[str, Any],
    actor: str,
    dataset_version: str,
    proposal: tuple[Proposal, str] | None = None,
) -> str:
    record = {
        "case_id": case_id,
        "expected": {"kind": expected["kind"], "value": expected.get("value")},
        "labelled_by": actor,
        "labelled_at": _now(),
        "dataset_version": dataset_version,
    }
    if proposal is not None:
        record["proposal"] = proposal[0].source(proposal[1])
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def record_labels(
    warehouse: str | Path | None,
    registry_root: str | Path,
    dataset: str,
    labels: Sequence[tuple[str, dict[str, Any]]],
    *,
    actor: str,
    proposals: Mapping[str, tuple[Proposal, str]] | None = None,
) -> LabelOutcome:
    """Append `labels` to the dataset's label file and write the next version with them applied.
    `proposals`: case id -> (the proposal a label came from, `accepted` or `edited`)."""
    root = Path(registry_root)
    manifest, cases = _latest(root, dataset)
    known = {c.case_id for c in cases}
    patterns = load_settings(root).redaction_patterns
    for case_id, expected in labels:
        if case_id not in known:
            raise UserError(f"no case {case_id!r} in {manifest.version_id}", field="case_id")
        _refuse_personal_data(expected, patterns)
    proposals = proposals or {}
    lines = [
        _label_line(case_id, expected, actor, manifest.version_id, proposals.get(case_id))
        for case_id, expected in labels
    ]
    if lines:
        _append_atomically(store.labels_path(root, dataset), lines)
    return apply_labels(warehouse, root, dataset, recorded=len(lines))


def label_from_file(
    warehouse: str | Path | None, registry_root: str | Path, dataset: str, path: str | Path, *, actor: str
) -> LabelOutcome:
    """`golden label --from FILE`: every line checked first, then all recorded, or none."""
    root = Path(registry_root)
    _, cases = _latest(root, dataset)
    labels = read_label_lines(path, {c.case_id for c in cases}, load_settings(root).redaction_patterns)
    return record_labels(warehouse, root, dataset, labels, actor=actor)


def apply_labels(
    warehouse: str | Path | None, registry_root: str | Path, dataset: str, *, recorded: int = 0
) -> LabelOutcome:
    """The latest version's cases with the label file applied, written as the next version if that changed them."""
    root = Path(registry_root)
    manifest, cases = _latest(root, dataset)
    labels = store.read_labels(root, dataset)
    final = [
        c.model_copy(update={"expected": labels[c.case_id]})
        if c.case_id in labels and c.expected != labels[c.case_id]
        else c
        for c in cases
    ]
    result = BuildResult(
        dataset=dataset,
        workflow=manifest.workflow,
        created=False,
        version_id=None,
        parent_version=manifest.version_id,
        case_count=len(final),
        cases=final,
    )
    write_next_version(warehouse, root, result, manifest, cases)
    return LabelOutcome(
        dataset=dataset,
        recorded=recorded,
        build=result,
        labelled=sum(1 for c in final if c.expected is not None),
        cases=len(final),
    )


def production_answer(warehouse: str | Path | None, case: GoldenCase) -> dict[str, Any] | None:
    """What production answered in the newest trace the case was seen in (None without a warehouse)."""
    if warehouse is None:
        return None
    try:
        with read_connection(warehouse) as con:
            for span_id in case.provenance.span_ids:
                row = find_span(con, span_id)
                if row:
                    return {
                        "version": row.get("prompt_version"),
                        "output": row.get("output"),
                        "tool_calls": row.get("tool_calls"),
                    }
    except Exception:  # a missing or unreadable warehouse leaves the reviewer the input alone
        return None
    return None


def describe_case(case: GoldenCase, answer: dict[str, Any] | None) -> str:
    lines = [f"case {case.case_id}  failure classes: {', '.join(case.tags.failure_classes) or '-'}"]
    for message in case.input.messages:
        lines.append(f"  {message.get('role', '?')}: {str(message.get('content'))[:400]}")
    if case.input.variables:
        lines.append(f"  variables: {json.dumps(case.input.variables, ensure_ascii=False)[:400]}")
    if answer:
        lines.append(f"  production ({answer['version']}) answered: {str(answer['output'])[:400]}")
        if answer.get("tool_calls") not in (None, "[]", "null"):
            lines.append(f"  with tool calls: {str(answer['tool_calls'])[:400]}")
    return "\n".join(lines)


LABEL_HELP = (
    'what good means: {"route": "billing"} (label fields), {"name": "lookup_order", "arguments": {...}} '
    '(tool call), "refuse", "clarify", {"kind": "exact_json", "value": {...}}, a reference text in quotes; '
    "s = skip, q = quit"
)
PROPOSAL_HELP = "a = accept the proposal, r = reject it, or type the right answer"


def label_interactively(
    warehouse: str | Path | None,
    registry_root: str | Path,
    dataset: str,
    *,
    actor: str,
    ask: Callable[[str], str],
    say: Callable[[str], None],
) -> LabelOutcome:
    """Walk the unlabelled cases, recording each answer as it is given (so quitting keeps them);
    a case with a pending proposal shows it, to accept (a), reject (r) or correct by typing."""
    manifest, _ = _latest(Path(registry_root), dataset)
    version_id = manifest.version_id
    patterns = load_settings(registry_root).redaction_patterns
    pending = unlabelled_cases(registry_root, dataset)
    proposed = pending_proposals(registry_root, dataset)
    say(
        f"{len(pending)} unlabelled case(s) in {dataset}; {LABEL_HELP}"
        + (f"\n{len(proposed)} with a proposal: {PROPOSAL_HELP}" if proposed else "")
    )
    path = store.labels_path(registry_root, dataset)
    tally = LabelOutcome(dataset)
    for index, case in enumerate(pending, 1):
        say(f"[{index}/{len(pending)}] " + describe_case(case, production_answer(warehouse, case)))
        proposal = proposed.get(case.case_id)
        if proposal is not None:
            say(describe_proposal(proposal))
        while True:
            try:
                answer = ask("expected> ").strip()
            except EOFError:
                answer = "q"
            if answer in ("s", "skip", ""):
                tally.skipped += 1
                break
            if answer in ("q", "quit"):
                return _finish(warehouse, registry_root, dataset, tally)
            if proposal is not None and answer in ("a", "accept"):
                _append_atomically(
                    path, [_label_line(case.case_id, proposal.expected, actor, version_id, (proposal, "accepted"))]
                )
                tally.recorded += 1
                tally.accepted += 1
                break
            if proposal is not None and answer in ("r", "reject"):
                _append_atomically(store.proposals_path(registry_root, dataset), [_rejection_line(proposal, actor)])
                tally.rejected += 1
                proposal = None
                say("proposal rejected; type the right answer, or s to skip")
                continue
            try:
                expected = expected_from_value(_loose_json(answer), field="expected")
            except UserError as exc:
                say(f"not an expectation: {exc.message}")
                continue
            try:
                _refuse_personal_data(expected, patterns)
            except UserError as exc:
                say(f"not recorded: {exc.message}")
                continue
            source = (proposal, "edited") if proposal is not None else None
            _append_atomically(path, [_label_line(case.case_id, expected, actor, version_id, source)])
            tally.recorded += 1
            tally.edited += proposal is not None
            break
    return _finish(warehouse, registry_root, dataset, tally)


def _loose_json(text: str) -> Any:
    # A reviewer types `refuse`, not `"refuse"`; anything else is JSON (a reference text in quotes),
    # so a typo is asked again instead of becoming a reference answer.
    if text in ("refuse", "clarify"):
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"not JSON ({exc}); a reference text goes in quotes", field="expected") from exc


def _finish(warehouse: str | Path | None, registry_root: str | Path, dataset: str, tally: LabelOutcome) -> LabelOutcome:
    outcome = apply_labels(warehouse, registry_root, dataset, recorded=tally.recorded)
    outcome.skipped, outcome.accepted, outcome.edited, outcome.rejected = (
        tally.skipped,
        tally.accepted,
        tally.edited,
        tally.rejected,
    )
    return outcome


# ----------------------------------------------------------------- proposals


@dataclass
class ProposeOutcome:
    dataset: str
    prompt_version: str
    model: str
    asked: int = 0  # cases sent to the model
    cached: int = 0  # of those, answered from the answer cache
    proposed: list[Proposal] = field(default_factory=list)  # stored
    kept: int = 0  # cases that already have a pending proposal of this model and prompt: not asked again
    not_proposed: list[tuple[str, str]] = field(default_factory=list)  # (case id, why its answer is no proposal)
    pending: int = 0  # pending proposals of the dataset afterwards


def _field(record: dict[str, Any], name: str, path: Path, number: int) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise UserError(f"a proposal line has a string {name}", file=path, line=number, field=name)
    return value


def read_proposals(root: str | Path, dataset: str) -> tuple[list[Proposal], dict[str, str]]:
    """(every proposal in file order, rejected proposal id -> who rejected it); a bad line names itself."""
    path = store.proposals_path(root, dataset)
    proposals: list[Proposal] = []
    rejected: dict[str, str] = {}
    for number, record in store.jsonl_records(path):
        if "rejected_by" in record:
            rejected[_field(record, "proposal_id", path, number)] = _field(record, "rejected_by", path, number)
            continue
        expected = expected_from_value(record.get("expected"), field="expected", file=path, line=number)
        proposals.append(
            Proposal(
                expected=expected,
                **{
                    name: _field(record, name, path, number)
                    for name in (
                        "proposal_id",
                        "case_id",
                        "model",
                        "prompt_version",
                        "package_hash",
                        "proposed_at",
                        "dataset_version",
                    )
                },
            )
        )
    return proposals, rejected


def pending_proposals(root: str | Path, dataset: str) -> dict[str, Proposal]:
    """Case id -> its newest proposal not rejected, for the cases still without an expectation."""
    proposals, rejected = read_proposals(root, dataset)
    if not proposals:
        return {}
    open_cases = {c.case_id for c in unlabelled_cases(root, dataset)}
    return {p.case_id: p for p in proposals if p.proposal_id not in rejected and p.case_id in open_cases}


def describe_proposal(proposal: Proposal) -> str:
    value = json.dumps(proposal.expected.get("value"), ensure_ascii=False)[:400]
    return (
        f"  proposed {proposal.expected['kind']} {value}  by {proposal.model} with {proposal.prompt_version} "
        f"({proposal.proposed_at}; {proposal.proposal_id}): {PROPOSAL_HELP}"
    )


def _rejection_line(proposal: Proposal, actor: str) -> str:
    record = {"proposal_id": proposal.proposal_id, "case_id": proposal.case_id, "rejected_by": actor}
    return json.dumps({**record, "rejected_at": _now()}, sort_keys=True, ensure_ascii=False)


def proposed_expectation(
    contract: checks.CompiledContract, result: CallResult, messages: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any] | None, str]:
    """(the expectation an answer proposes, or None and why it proposes nothing): an answer that breaks
    the output contract, errs or is empty says nothing about what good means."""
    if result.status != STATUS_OK:
        return None, f"the call ended {result.status}" + (f" ({result.error_type})" if result.error_type else "")
    check = checks.check_output(contract, result.output, result.tool_calls, messages)
    if not check.contract_ok:
        return None, "the answer breaks the output contract (" + ", ".join(check.failure_classes) + ")"
    if check.refusal:
        return {"kind": "refuse", "value": None}, ""
    if check.clarification:
        return {"kind": "clarify", "value": None}, ""
    if result.tool_calls:
        calls = [{"name": checks.tool_name(c), "arguments": c.get("arguments")} for c in result.tool_calls]
        return {"kind": "tool_call", "value": calls[0] if len(calls) == 1 else calls}, ""
    if check.parsed is not None:
        found = expected_from_correction(check.parsed, contract)
        return ({"kind": found["kind"], "value": found["value"]}, "") if found else (None, "empty answer")
    text = (result.output or "").strip()
    return ({"kind": "label", "value": text}, "") if text else (None, "empty answer")


def _proposal_id(case_id: str, model: str, package_hash: str, expected: dict[str, Any]) -> str:
    material = canonical_json([case_id, model, package_hash, expected["kind"], expected.get("value")])
    return "prop_" + hashlib.sha256(material).hexdigest()[:16]


def propose_labels(
    warehouse: str | Path | None,
    registry_root: str | Path,
    dataset: str,
    *,
    llm_settings: LLMSettings,
    model: str | None = None,
    prompt: str | None = None,
    limit: int | None = None,
) -> ProposeOutcome:
    """Ask a model for the expected answer of each unlabelled case and store what keeps the contract as
    proposals (all at once, after every answer is in: an interrupted run stores none)."""
    root = Path(registry_root)
    manifest, _ = _latest(root, dataset)
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}", field="--limit")
    registry = Registry(root)
    workflow = manifest.workflow
    production = registry.resolve_label(workflow, "production")
    if production is None:
        raise UserError(
            f"{workflow} has no production version: its output contract is what a proposal must keep",
            field="dataset",
        )
    contract_package = registry.load_package(production)
    if prompt is not None and parse_version_id(prompt)[0] != workflow:
        raise UserError(f"{prompt} is not a version of {workflow}, the workflow of {dataset}", field="--prompt")
    package = registry.load_package(prompt) if prompt else contract_package
    model = model or package.model
    contract = checks.compile_contract(contract_package)
    patterns = load_settings(root).redaction_patterns
    outcome = ProposeOutcome(dataset, package.version_id, model)
    proposals, rejected = read_proposals(root, dataset)
    pending = {p.case_id: p for p in proposals if p.proposal_id not in rejected}
    todo = []
    for case in unlabelled_cases(root, dataset):
        have = pending.get(case.case_id)
        if have is not None and have.model == model and have.package_hash == package.package_hash:
            outcome.kept += 1
        else:
            todo.append(case)
    todo = todo[:limit] if limit is not None else todo
    tools = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in package.tools]
    requests = []
    for case in todo:
        try:
            messages = package.render(case.input.variables, messages=case.input.messages)
        except UserError as exc:
            outcome.not_proposed.append((case.case_id, f"{package.version_id} cannot render it: {exc.message}"))
            continue
        requests.append(
            CallRequest(
                model=model,
                messages=messages,
                parameters=dict(package.parameters),
                tools=tools,
                response_format=package.response_format(),
                package_hash=package.package_hash,
                tag=case.case_id,
            )
        )
    results = run_calls_sync(requests, llm_settings, warehouse=warehouse) if requests else []
    outcome.asked = len(requests)
    outcome.cached = sum(1 for r in results if r.cached)
    proposed_at = _now()
    for request, result in zip(requests, results, strict=True):
        case_id = request.tag or ""
        expected, why = proposed_expectation(contract, result, request.messages)
        if expected is not None and pii_in_value(expected.get("value"), patterns):
            expected, why = None, "the answer holds personal data"
        if expected is None:
            outcome.not_proposed.append((case_id, why))
            continue
        proposal_id = _proposal_id(case_id, model, package.package_hash, expected)
        if proposal_id in rejected:
            outcome.not_proposed.append((case_id, f"the same proposal was rejected by {rejected[proposal_id]}"))
            continue
        outcome.proposed.append(
            Proposal(
                proposal_id=proposal_id,
                case_id=case_id,
                expected=expected,
                model=model,
                prompt_version=package.version_id,
                package_hash=package.package_hash,
                proposed_at=proposed_at,
                dataset_version=manifest.version_id,
            )
        )
    if outcome.proposed:
        lines = [json.dumps({**vars(p)}, sort_keys=True, ensure_ascii=False) for p in outcome.proposed]
        _append_atomically(store.proposals_path(root, dataset), lines)
    outcome.pending = len(pending_proposals(root, dataset))
    return outcome


def accept_proposals(
    warehouse: str | Path | None, registry_root: str | Path, dataset: str, which: str, *, actor: str
) -> LabelOutcome:
    """`golden label --accept-proposals all|FILE`: every pending proposal, or those a JSONL file names by
    `proposal_id` (lines of the proposal file itself qualify); the file is checked whole first."""
    root = Path(registry_root)
    pending = pending_proposals(root, dataset)
    if which == "all":
        chosen = list(pending.values())
    else:
        path = Path(which)
        if not path.exists():
            raise UserError("no such file of proposals to accept", file=path, field="--accept-proposals")
        by_id = {p.proposal_id: p for p in pending.values()}
        known, rejected = read_proposals(root, dataset)
        every = {p.proposal_id: p for p in known}
        chosen = []
        for number, record in store.jsonl_records(path):
            proposal_id = record.get("proposal_id")
            if not isinstance(proposal_id, str):
                raise UserError(
                    "a line names a proposal: a string proposal_id", file=path, line=number, field="proposal_id"
                )
            if proposal_id not in by_id:
                why = (
                    f"it was rejected by {rejected[proposal_id]}"
                    if proposal_id in rejected
                    else "its case has an expectation already, or a newer proposal"
                    if proposal_id in every
                    else f"no such proposal for {dataset}"
                )
                raise UserError(
                    f"proposal {proposal_id!r} is not pending: {why}", file=path, line=number, field="proposal_id"
                )
            if by_id[proposal_id] not in chosen:  # a line repeated is one acceptance
                chosen.append(by_id[proposal_id])
    labels = [(p.case_id, p.expected) for p in chosen]
    outcome = record_labels(
        warehouse, root, dataset, labels, actor=actor, proposals={p.case_id: (p, "accepted") for p in chosen}
    )
    outcome.accepted = len(chosen)
    return outcome
