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
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prompt_release.errors import UserError
from prompt_release.golden import store
from prompt_release.golden.build import BuildResult, expected_from_value, find_span, latest_version, write_next_version
from prompt_release.golden.model import GoldenCase
from prompt_release.mining.redaction import pii_in_value
from prompt_release.mining.settings import load_settings
from prompt_release.registry.ids import NAME_PATTERN, is_name
from prompt_release.warehouse import read_connection


@dataclass
class LabelOutcome:
    dataset: str
    recorded: int = 0
    skipped: int = 0
    build: BuildResult | None = None
    labelled: int = 0
    cases: int = 0


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


def _label_line(case_id: str, expected: dict[str, Any], actor: str, dataset_version: str) -> str:
    return json.dumps(
        {
            "case_id": case_id,
            "expected": {"kind": expected["kind"], "value": expected.get("value")},
            "labelled_by": actor,
            "labelled_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "dataset_version": dataset_version,
        },
        sort_keys=True,
        ensure_ascii=False,
    )


def record_labels(
    warehouse: str | Path | None,
    registry_root: str | Path,
    dataset: str,
    labels: Sequence[tuple[str, dict[str, Any]]],
    *,
    actor: str,
) -> LabelOutcome:
    """Append `labels` to the dataset's label file and write the next version with them applied."""
    root = Path(registry_root)
    manifest, cases = _latest(root, dataset)
    known = {c.case_id for c in cases}
    patterns = load_settings(root).redaction_patterns
    for case_id, expected in labels:
        if case_id not in known:
            raise UserError(f"no case {case_id!r} in {manifest.version_id}", field="case_id")
        _refuse_personal_data(expected, patterns)
    lines = [_label_line(case_id, expected, actor, manifest.version_id) for case_id, expected in labels]
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


def label_interactively(
    warehouse: str | Path | None,
    registry_root: str | Path,
    dataset: str,
    *,
    actor: str,
    ask: Callable[[str], str],
    say: Callable[[str], None],
) -> LabelOutcome:
    """Walk the unlabelled cases, recording each answer as it is given (so quitting keeps them)."""
    manifest, _ = _latest(Path(registry_root), dataset)
    version_id = manifest.version_id
    patterns = load_settings(registry_root).redaction_patterns
    pending = unlabelled_cases(registry_root, dataset)
    say(f"{len(pending)} unlabelled case(s) in {dataset}; {LABEL_HELP}")
    recorded = skipped = 0
    for index, case in enumerate(pending, 1):
        say(f"[{index}/{len(pending)}] " + describe_case(case, production_answer(warehouse, case)))
        while True:
            try:
                answer = ask("expected> ").strip()
            except EOFError:
                answer = "q"
            if answer in ("s", "skip", ""):
                skipped += 1
                break
            if answer in ("q", "quit"):
                return _finish(warehouse, registry_root, dataset, recorded, skipped)
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
            path = store.labels_path(registry_root, dataset)
            _append_atomically(path, [_label_line(case.case_id, expected, actor, version_id)])
            recorded += 1
            break
    return _finish(warehouse, registry_root, dataset, recorded, skipped)


def _loose_json(text: str) -> Any:
    # A reviewer types `refuse`, not `"refuse"`; anything else is JSON (a reference text in quotes),
    # so a typo is asked again instead of becoming a reference answer.
    if text in ("refuse", "clarify"):
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"not JSON ({exc}); a reference text goes in quotes", field="expected") from exc


def _finish(
    warehouse: str | Path | None, registry_root: str | Path, dataset: str, recorded: int, skipped: int
) -> LabelOutcome:
    outcome = apply_labels(warehouse, registry_root, dataset, recorded=recorded)
    outcome.skipped = skipped
    return outcome
