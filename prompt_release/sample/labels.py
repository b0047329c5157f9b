"""Bulk label files for the sample world's golden sets, from the generator's ground truth.

The generator knows, for every call it wrote, what the production prompt
should have done (`ground_truth.json`, `calls[].expected`). A golden case
names the spans it was mined from, so its expectation is the ground truth of
the first of those spans the generator wrote, in the shape `golden label
--from FILE` reads: support_router the true route (`{"route": ...}`, a label
field); order_agent the tool call the policy wants at that turn, a clarifying
question where it should ask for the order id, or the hand-over text where it
should escalate (other text answers, worded per order, have no expectation a
check can match: they stay unlabelled); summarizer the production rule's
extractive summary of the case's own (redacted) document, as a reference
text. A case seen only in spans the generator did not write (canary traffic
replays recorded inputs) takes the ground truth of a generated span with the
same input, found in the warehouse. Cases that already carry an
expectation (a correction, an incident's) get no line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prompt_release.golden.build import conversation_key
from prompt_release.golden.labelling import unlabelled_cases
from prompt_release.golden.model import GoldenCase
from prompt_release.sample.content import extractive_summary
from prompt_release.sample.generator import ESCALATION_TEXT
from prompt_release.warehouse import read_connection

# The same conversation, whoever logged it (the generator and the runtime client write variables
# differently; the conversation holds the ticket, document or order message they carry).
_TWINS_SQL = f"""
WITH keyed AS (
    SELECT coalesce(t.span_id, t.record_key) AS span_id, {conversation_key("t", variables=False)} AS conversation
    FROM traces t WHERE t.workflow = $workflow
)
SELECT p.span_id, min(h.span_id) AS generated
FROM keyed p JOIN keyed h USING (conversation)
WHERE list_contains($pending, p.span_id) AND list_contains($generated, h.span_id)
GROUP BY p.span_id
"""


def expectation(workflow: str, truth: Mapping[str, Any], case: GoldenCase) -> Any | None:
    """What good means for `case` given its span's ground truth, as `golden label` reads it (None: no label)."""
    if workflow == "support_router" and truth.get("route"):
        return {"route": truth["route"]}
    if workflow == "order_agent":
        if truth.get("tool"):
            return {"name": truth["tool"], "arguments": truth.get("arguments") or {}}
        if truth.get("answer") == "ask_order_id":
            return "clarify"
        if truth.get("answer") == "escalate":
            return {"kind": "label", "value": ESCALATION_TEXT}
        return None
    if workflow == "summarizer" and truth.get("answer") == "summary":
        document = case.input.variables.get("document")
        if not isinstance(document, str):
            document = next((m.get("content") for m in case.input.messages if m.get("role") == "user"), None)
        if isinstance(document, str) and document.strip():
            return {"kind": "label", "value": extractive_summary(document, int(truth.get("max_words") or 60))}
    return None


def _generated_twins(
    warehouse: str | Path | None, workflow: str, spans: list[str], by_span: Mapping[str, Any]
) -> dict[str, str]:
    """span id -> a generated span with the same conversation, for spans the generator did not write."""
    if warehouse is None or not spans:
        return {}
    with read_connection(warehouse) as con:
        rows = con.execute(
            _TWINS_SQL,
            {
                "workflow": workflow,
                "pending": spans,
                "generated": [s for s, c in by_span.items() if c["workflow"] == workflow],
            },
        ).fetchall()
    return dict(rows)


def write_label_file(
    registry_root: str | Path,
    dataset: str,
    truth: Mapping[str, Any],
    out: str | Path,
    *,
    warehouse: str | Path | None = None,
) -> tuple[Path, int, int]:
    """Write the label lines for the unlabelled cases of `dataset`'s latest version; (file, lines, unlabelled)."""
    by_span = {call["span_id"]: call for call in truth["calls"]}
    pending = unlabelled_cases(registry_root, dataset)
    unknown = [
        s for c in pending if not any(s in by_span for s in c.provenance.span_ids) for s in c.provenance.span_ids
    ]
    twins = _generated_twins(warehouse, pending[0].workflow, unknown, by_span) if pending else {}
    by_span = {**by_span, **{span: by_span[twin] for span, twin in twins.items()}}
    lines = []
    for case in pending:
        call = next((by_span[s] for s in case.provenance.span_ids if s in by_span), None)
        expected = expectation(case.workflow, call["expected"], case) if call else None
        if expected is not None:
            lines.append(json.dumps({"case_id": case.case_id, "expected": expected}, sort_keys=True))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path, len(lines), len(pending)
