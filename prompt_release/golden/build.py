"""Build the next version of a workflow's golden dataset from mined failures, incidents and labels.

`build_golden` reads the latest version, keeps its cases (`carry_over`), adds
every recorded incident, fills the remaining budget with failures chosen by
`prompt_release.mining.selection`, applies the label file, and writes a new
version only when the content hash changed. Candidate failures are grouped by
input in SQL (one row per distinct non-system conversation and variables), so
Python only sees distinct inputs. Each case is redacted as a whole before its
id is computed: system messages are dropped (they belong to the prompt
package, not the case), and the remaining messages, variables and expected
value share one set of placeholders. The warehouse mirror (`golden_versions`,
`golden_cases`) is synced from the files after every build.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import ValidationError

from prompt_release.contracts import checks
from prompt_release.contracts.package import PackageContract
from prompt_release.errors import UserError
from prompt_release.golden import store
from prompt_release.golden.model import (
    CaseInput,
    Contract,
    Expected,
    GoldenCase,
    Manifest,
    Provenance,
    Tags,
    case_id_for,
    content_hash,
    dataset_name,
)
from prompt_release.mining.redaction import Redactor, pii_in_value
from prompt_release.mining.selection import Candidate, select_cases
from prompt_release.mining.settings import MiningSettings, load_settings
from prompt_release.registry import Registry
from prompt_release.warehouse import Scope, read_connection, write_transaction
from prompt_release.warehouse.metrics import served

_SIGNAL_CLASSES = ("refusal", "clarification")


@dataclass
class BuildResult:
    dataset: str
    workflow: str
    created: bool
    version_id: str | None
    parent_version: str | None
    case_count: int = 0
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    cases: list[GoldenCase] = field(default_factory=list)
    candidates: int = 0
    clusters: int = 0
    message: str = ""


# --------------------------------------------------------------------------- contracts


@dataclass(frozen=True)
class _ContractIndex:
    by_key: Mapping[str, checks.CompiledContract]
    by_prompt: Mapping[str, checks.CompiledContract]

    @classmethod
    def build(cls, contracts: Sequence[PackageContract]) -> _ContractIndex:
        by_key: dict[str, checks.CompiledContract] = {}
        by_prompt: dict[str, checks.CompiledContract] = {}
        for contract in sorted(contracts, key=lambda c: c.version_id):
            compiled = checks.compile_contract(contract)
            by_key[contract.version_id] = compiled
            if contract.package_hash:
                by_key[contract.package_hash] = compiled
            by_prompt.setdefault(contract.version_id.split(":", 1)[0], compiled)
        return cls(by_key, by_prompt)

    def find(self, workflow: str, package_hash: str | None, version: str | None) -> checks.CompiledContract | None:
        return self.by_key.get(package_hash or "") or self.by_key.get(version or "") or self.by_prompt.get(workflow)


def _contract(workflow: str, compiled: checks.CompiledContract | None, failure_classes: Sequence[str]) -> Contract:
    names: list[str] = []
    output_format = compiled.output_format if compiled else "text"
    if output_format == "json":
        names += ["json_valid", "schema_valid"]
        if compiled and compiled.label_fields:
            names.append("enum_valid")
    if compiled and compiled.tools:
        names += ["known_tools", "tool_args_valid", "safe_tool_calls"]
    if output_format != "json" and not (compiled and compiled.tools):
        names.append("non_empty")
    if any(c in failure_classes for c in _SIGNAL_CLASSES):
        names.append("answers")  # the task needed an answer: refusing or asking back fails the case
    return Contract(prompt_id=workflow, output_format=output_format, checks=names)


# --------------------------------------------------------------------------- expectations


def expected_from_correction(correction: Any, compiled: checks.CompiledContract | None) -> dict[str, Any] | None:
    """The correction is the expected answer: tool calls, label fields, exact JSON or reference text."""
    if correction is None:
        return None
    if isinstance(correction, str) and compiled and compiled.output_format == "json":
        try:
            correction = json.loads(correction)
        except ValueError:
            pass
    if isinstance(correction, list) or (
        isinstance(correction, dict) and ("tool_calls" in correction or "name" in correction)
    ):
        calls = (
            correction.get("tool_calls") if isinstance(correction, dict) and "tool_calls" in correction else correction
        )
        return {"kind": "tool_call", "value": calls, "source": "correction"}
    if isinstance(correction, dict):
        labels = compiled.label_fields if compiled else ()
        picked = {k: correction[k] for k in labels if k in correction}
        if picked:
            return {"kind": "label", "value": picked, "source": "correction"}
        return {"kind": "exact_json", "value": correction, "source": "correction"}
    if isinstance(correction, str):
        return {"kind": "label", "value": correction, "source": "correction"}
    return {"kind": "exact_json", "value": correction, "source": "correction"}


def parse_expected_argument(text: str) -> dict[str, Any]:
    """`--expected JSON`: `{"kind": ..., "value": ...}`, or a shorthand the kind is inferred from.

    Shorthands: "refuse" / "clarify"; `{name, arguments}` or a list of them (a tool call);
    any other object is field labels (e.g. `{"route": "billing"}`); any other string a reference text.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UserError(f"--expected is not JSON: {exc}", field="expected") from exc
    return expected_from_value(value, field="expected")


def expected_from_value(value: Any, *, field: str, file: str | Path | None = None, line: int | None = None) -> dict:
    """An expectation `{"kind", "value"}` from its long form or a shorthand (see `parse_expected_argument`);
    a bad one is a UserError naming `field` (and `file`, `line` when it came from a file)."""
    where = {"field": field, "file": file, "line": line}
    if isinstance(value, dict) and "kind" in value:
        expected = {"kind": value["kind"], "value": value.get("value")}
    elif value in ("refuse", "clarify"):
        expected = {"kind": value, "value": None}
    elif isinstance(value, list) or (isinstance(value, dict) and "name" in value):
        expected = {"kind": "tool_call", "value": value}
    elif isinstance(value, (dict, str)):
        expected = {"kind": "label", "value": value}
    else:
        raise UserError("an expectation must be an object, a list of tool calls or a string", **where)
    try:
        Expected.model_validate({**expected, "source": "incident"})
    except ValidationError as exc:
        raise UserError(exc.errors()[0]["msg"], **where) from exc
    return expected


# --------------------------------------------------------------------------- warehouse reads

_NON_SYSTEM = (
    "[m FOR m IN CAST(coalesce(t.input_messages, '[]'::JSON) AS JSON[]) IF coalesce(m ->> '$.role', '') <> 'system']"
)


def conversation_key(alias: str, *, variables: bool = True) -> str:
    """SQL: the input of a trace `alias` as the same text whoever logged it: its non-system turns
    (role and content, JSON formatting aside) and, with `variables`, its variables as logged."""
    turns = (
        f"[m FOR m IN CAST(coalesce({alias}.input_messages, '[]'::JSON) AS JSON[]) "
        "IF coalesce(m ->> '$.role', '') <> 'system']"
    )
    return (
        f"array_to_string(list_transform({turns}, lambda m: coalesce(m ->> '$.role', '') || ':' || "
        f"coalesce(m ->> '$.content', '')), chr(10))"
        + (f" || chr(30) || coalesce(CAST({alias}.variables AS VARCHAR), '')" if variables else "")
    )


# A case is represented by its newest served recording: by day, a served call before a shadow run of
# the same request (never served; stamped when it ran, after its twin), then time; the span id only
# breaks exact ties (span ids are random per call: ordered by them first, a rerun picked others).
_NEWEST = f"(day, {served('j')}, ts, coalesce(span_id, record_key))"
_CANDIDATES_SQL = f"""
WITH f AS (
    SELECT record_key, list(DISTINCT failure_class ORDER BY failure_class) AS classes, max(severity_rank) AS severity_rank
    FROM failures WHERE workflow = $workflow GROUP BY record_key
),
j AS (
    SELECT t.*, f.classes, f.severity_rank,
           md5(CAST({_NON_SYSTEM} AS VARCHAR) || '|' || coalesce(CAST(t.variables AS VARCHAR), '')) AS input_key
    FROM traces t JOIN f USING (record_key)
)
SELECT input_key,
       count(*) AS occurrences,
       list_sort(list_distinct(flatten(list(classes)))) AS failure_classes,
       max(severity_rank) AS severity_rank,
       list(coalesce(span_id, record_key) ORDER BY day DESC, {served("j")} DESC, ts DESC, coalesce(span_id, record_key)) AS span_ids,
       list(DISTINCT prompt_version ORDER BY prompt_version) FILTER (WHERE prompt_version IS NOT NULL) AS prompt_versions,
       list(DISTINCT CAST(day AS VARCHAR) ORDER BY CAST(day AS VARCHAR)) AS days,
       arg_max(CAST(input_messages AS VARCHAR), {_NEWEST}) AS input_messages,
       arg_max(CAST(variables AS VARCHAR), {_NEWEST}) AS variables,
       arg_max(CAST(correction AS VARCHAR), {_NEWEST}) FILTER (WHERE correction IS NOT NULL) AS correction,
       arg_max(CAST(segment AS VARCHAR), {_NEWEST}) AS segment,
       arg_max(CAST(attributes AS VARCHAR), {_NEWEST}) AS attributes,
       arg_max(output, {_NEWEST}) AS output,
       arg_max(CAST(tool_calls AS VARCHAR), {_NEWEST}) AS tool_calls,
       arg_max(package_hash, {_NEWEST}) AS package_hash,
       arg_max(prompt_version, {_NEWEST}) AS prompt_version
FROM j
GROUP BY input_key
ORDER BY input_key
"""

_SPAN_SQL = """
SELECT coalesce(span_id, record_key) AS span_id, workflow, day, prompt_version, package_hash,
       CAST(input_messages AS VARCHAR) AS input_messages, CAST(variables AS VARCHAR) AS variables,
       CAST(correction AS VARCHAR) AS correction, CAST(segment AS VARCHAR) AS segment,
       CAST(attributes AS VARCHAR) AS attributes, output, CAST(tool_calls AS VARCHAR) AS tool_calls
FROM traces WHERE span_id = ? OR record_key = ?
ORDER BY day DESC LIMIT 1
"""


def _records(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _loads(text: str | None, default: Any = None) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def find_span(con: duckdb.DuckDBPyConnection, span_id: str) -> dict[str, Any] | None:
    rows = _records(con.execute(_SPAN_SQL, [span_id, span_id]))
    return rows[0] if rows else None


# --------------------------------------------------------------------------- cases


def _segment_tag(segment: Any, variables: Mapping[str, Any]) -> str:
    if isinstance(segment, dict) and segment:
        return ",".join(f"{k}={segment[k]}" for k in sorted(segment))
    if isinstance(segment, (str, int, float)) and segment != "":
        return str(segment)
    tier = variables.get("customer_tier") if isinstance(variables, Mapping) else None
    return f"customer_tier={tier}" if tier else "none"


def _intent_tag(row: Mapping[str, Any], correction: Any) -> str:
    attributes = _loads(row.get("attributes"), {}) or {}
    variables = _loads(row.get("variables"), {}) or {}
    for source in (attributes, variables):
        if isinstance(source, dict) and isinstance(source.get("intent"), str):
            return source["intent"]
    if isinstance(correction, dict) and isinstance(correction.get("route"), str):
        return correction["route"]
    output = _loads(row.get("output"))
    if isinstance(output, dict) and isinstance(output.get("route"), str):
        return output["route"]
    calls = _loads(row.get("tool_calls"), []) or []
    if calls and isinstance(calls[0], dict) and calls[0].get("name"):
        return str(calls[0]["name"])
    return "none"


@dataclass
class _Draft:
    case: GoldenCase
    text: str
    severity_rank: int
    occurrences: int


def _draft(
    row: Mapping[str, Any],
    workflow: str,
    contracts: _ContractIndex,
    settings: MiningSettings,
    *,
    expected: dict[str, Any] | None = None,
    incident: bool = False,
    note: str | None = None,
) -> _Draft:
    compiled = contracts.find(workflow, row.get("package_hash"), row.get("prompt_version"))
    messages = [
        m for m in (_loads(row.get("input_messages"), []) or []) if isinstance(m, dict) and m.get("role") != "system"
    ]
    variables = _loads(row.get("variables"), {}) or {}
    if not isinstance(variables, dict):
        variables = {"value": variables}
    correction = _loads(row.get("correction"))
    if expected is None:
        expected = expected_from_correction(correction, compiled)
    classes = list(row.get("failure_classes") or [])
    redactor = Redactor(dict(settings.redaction_patterns))
    red_input = redactor.value({"messages": messages, "variables": variables})
    red_expected = redactor.value(expected) if expected else None
    last_user = next((m.get("content") for m in reversed(red_input["messages"]) if m.get("role") == "user"), None)
    text = last_user if isinstance(last_user, str) else json.dumps(red_input["variables"], sort_keys=True)
    spans = list(row.get("span_ids") or [row.get("span_id")])[: settings.selection.max_source_spans]
    case = GoldenCase(
        case_id=case_id_for(red_input),
        workflow=workflow,
        input=CaseInput.model_validate(red_input),
        expected=Expected.model_validate(red_expected) if red_expected else None,
        contract=_contract(workflow, compiled, classes),
        tags=Tags(
            intent=redactor.text(_intent_tag(row, correction)),
            segment=redactor.text(_segment_tag(_loads(row.get("segment")), variables)),
            failure_classes=classes,
            incident=incident,
        ),
        provenance=Provenance(
            span_ids=[s for s in spans if s],
            prompt_versions=list(
                row.get("prompt_versions") or ([row["prompt_version"]] if row.get("prompt_version") else [])
            ),
            days=list(row.get("days") or ([str(row["day"])] if row.get("day") else [])),
            note=note,
        ),
    )
    return _Draft(case, text, int(row.get("severity_rank") or 0), int(row.get("occurrences") or 1))


# --------------------------------------------------------------------------- build


def _merge(a: _Draft, b: _Draft, max_spans: int) -> _Draft:
    """Two inputs that are the same case once redacted: one case, seen in both places."""
    first, second = (a, b) if (a.case.expected is not None or b.case.expected is None) else (b, a)
    case = first.case
    tags = case.tags.model_copy(
        update={"failure_classes": sorted(set(case.tags.failure_classes) | set(second.case.tags.failure_classes))}
    )
    prov = case.provenance
    merged_prov = prov.model_copy(
        update={
            "span_ids": sorted(set(prov.span_ids) | set(second.case.provenance.span_ids))[:max_spans],
            "prompt_versions": sorted(set(prov.prompt_versions) | set(second.case.provenance.prompt_versions)),
            "days": sorted(set(prov.days) | set(second.case.provenance.days)),
        }
    )
    contract = _contract(case.workflow, None, tags.failure_classes).checks
    checks_ = list(dict.fromkeys(case.contract.checks + [c for c in contract if c == "answers"]))
    return _Draft(
        case.model_copy(
            update={
                "tags": tags,
                "provenance": merged_prov,
                "contract": case.contract.model_copy(update={"checks": checks_}),
            }
        ),
        first.text,
        max(a.severity_rank, b.severity_rank),
        a.occurrences + b.occurrences,
    )


def latest_version(root: str | Path, dataset: str) -> tuple[Manifest, list[GoldenCase]] | None:
    found = store.versions(root, dataset)
    return store.read_version(root, dataset, found[-1]) if found else None


def _incident_drafts(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    workflow: str,
    contracts: _ContractIndex,
    settings: MiningSettings,
    known: set[str],
) -> list[_Draft]:
    drafts = []
    path = store.incidents_path(root, workflow)
    for number, record in store.read_incidents(root, workflow):
        span_id = record.get("span_id")
        row = find_span(con, str(span_id)) if span_id else None
        if row is None:
            if record.get("case_id") in known:
                continue  # already in the dataset; its trace has since left the warehouse
            raise UserError(f"incident span {span_id!r} is not in the warehouse", file=path, line=number)
        row = {**row, "failure_classes": record.get("failure_classes") or []}
        drafts.append(
            _draft(
                row,
                workflow,
                contracts,
                settings,
                expected={**record["expected"], "source": "incident"} if record.get("expected") else None,
                incident=True,
                note=record.get("note"),
            )
        )
    return drafts


def _manifest(
    dataset: str,
    version: int,
    workflow: str,
    cases: list[GoldenCase],
    parent: Manifest | None,
    added: list[str],
    removed: list[str],
    changed: list[str],
    data: bytes,
) -> Manifest:
    by_class: Counter[str] = Counter()
    by_tag: dict[str, Counter[str]] = {
        "intent": Counter(),
        "segment": Counter(),
        "expected_kind": Counter(),
        "expected_source": Counter(),
        "incident": Counter(),
    }
    for case in cases:
        by_class.update(case.tags.failure_classes)
        by_tag["intent"][case.tags.intent] += 1
        by_tag["segment"][case.tags.segment] += 1
        by_tag["expected_kind"][case.expected.kind if case.expected else "none"] += 1
        by_tag["expected_source"][case.expected.source if case.expected else "none"] += 1
        by_tag["incident"][str(case.tags.incident).lower()] += 1
    return Manifest(
        dataset=dataset,
        version=version,
        version_id=f"{dataset}:v{version}",
        workflow=workflow,
        content_hash=content_hash(cases),
        parent_version=parent.version_id if parent else None,
        case_count=len(cases),
        labelled_count=sum(1 for c in cases if c.expected is not None),
        counts_by_failure_class=dict(sorted(by_class.items())),
        counts_by_tag={k: dict(sorted(v.items())) for k, v in by_tag.items()},
        changes={"added": added, "removed": removed, "changed": changed},
        source_spans={c.case_id: c.provenance.span_ids for c in cases},
        cases_file=f"v{version}.jsonl",
        cases_sha256=store.sha256_bytes(data),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def diff_cases(old: Sequence[GoldenCase], new: Sequence[GoldenCase]) -> tuple[list[str], list[str], list[str]]:
    """(added, removed, changed) case ids; changed = same id, different content."""
    before = {c.case_id: c.content() for c in old}
    after = {c.case_id: c.content() for c in new}
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return added, removed, changed


def build_golden(
    warehouse: str | Path | None,
    registry_root: str | Path,
    workflow: str,
    *,
    contracts: Sequence[PackageContract] | None = None,
    settings: MiningSettings | None = None,
) -> BuildResult:
    """Build the next version of `<workflow>_golden` if its content changed (see module doc)."""
    root = Path(registry_root)
    dataset = dataset_name(workflow)
    settings = settings or load_settings(root)
    sel = settings.selection
    if contracts is None:
        contracts = Registry(root).contracts()
    index = _ContractIndex.build(contracts)
    previous = latest_version(root, dataset)
    prev_manifest, prev_cases = previous if previous else (None, [])

    cases: dict[str, GoldenCase] = {c.case_id: c for c in prev_cases} if sel.carry_over else {}
    with read_connection(warehouse) as con:
        has_traces = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'traces'"
        ).fetchone()[0]
        incidents = _incident_drafts(con, root, workflow, index, settings, set(cases)) if has_traces else []
        rows = _records(con.execute(_CANDIDATES_SQL, {"workflow": workflow})) if has_traces else []
    for draft in incidents:
        old = cases.get(draft.case.case_id)
        if old is not None and old.tags.incident and old.expected == draft.case.expected:
            continue  # the incident is already a case as recorded
        case = draft.case
        if old is not None:  # keep what is known about the case, mark it an incident
            case = old.model_copy(
                update={
                    "expected": draft.case.expected or old.expected,
                    "tags": old.tags.model_copy(update={"incident": True}),
                    "provenance": old.provenance.model_copy(
                        update={"note": draft.case.provenance.note or old.provenance.note}
                    ),
                }
            )
        cases[case.case_id] = case

    drafts: dict[str, _Draft] = {}
    for row in rows:
        draft = _draft(row, workflow, index, settings)
        if draft.case.case_id in cases:
            continue
        same = drafts.get(draft.case.case_id)
        drafts[draft.case.case_id] = draft if same is None else _merge(same, draft, sel.max_source_spans)
    candidates = [
        Candidate(
            d.case.case_id,
            d.text,
            tuple(d.case.tags.failure_classes) or ("none",),
            d.severity_rank,
            d.occurrences,
            d.case.tags.intent,
            d.case.tags.segment,
        )
        for d in drafts.values()
    ]
    budget = max(0, sel.max_cases - len(cases))
    selection = select_cases(candidates, budget, sel)
    for cand in selection.chosen:
        cases[cand.case_id] = drafts[cand.case_id].case

    labels = store.read_labels(root, dataset)
    for case_id, expected in labels.items():
        if case_id in cases and cases[case_id].expected != expected:
            cases[case_id] = cases[case_id].model_copy(update={"expected": expected})

    final = sorted(cases.values(), key=lambda c: c.case_id)
    result = BuildResult(
        dataset=dataset,
        workflow=workflow,
        created=False,
        version_id=None,
        parent_version=prev_manifest.version_id if prev_manifest else None,
        case_count=len(final),
        cases=final,
        candidates=len(candidates),
        clusters=len(selection.clusters),
    )
    leaks = [
        (c.case_id, m.kind)
        for c in final
        for m in pii_in_value(
            [
                c.input.model_dump(mode="json"),
                c.expected.model_dump(mode="json") if c.expected else None,
                c.tags.intent,
                c.tags.segment,
            ],
            settings.redaction_patterns,
        )
    ]
    if leaks:
        raise RuntimeError(f"redaction left personal data in {len(leaks)} case(s), e.g. {leaks[0]}")
    if not final:
        result.message = "no cases: no mined failures, incidents or previous version for this workflow"
        return result
    write_next_version(warehouse, root, result, prev_manifest, prev_cases)
    if result.created and len(final) < sel.min_cases:
        result.message += f"; fewer than the {sel.min_cases} cases targeted (not enough distinct failures yet)"
    return result


def write_next_version(
    warehouse: str | Path | None,
    root: Path,
    result: BuildResult,
    prev_manifest: Manifest | None,
    prev_cases: Sequence[GoldenCase],
) -> None:
    """Write `result.cases` as the next version of `result.dataset` unless the latest has this content;
    fills in `result` and mirrors the files into the warehouse either way."""
    final = result.cases
    if prev_manifest and content_hash(final) == prev_manifest.content_hash:
        result.version_id = prev_manifest.version_id
        result.message = f"unchanged: {prev_manifest.version_id} already has this content"
        sync_warehouse(warehouse, root, result.dataset)
        return
    added, removed, changed = diff_cases(prev_cases, final)
    version = (prev_manifest.version if prev_manifest else 0) + 1
    data = store.cases_bytes(final)
    manifest = _manifest(result.dataset, version, result.workflow, final, prev_manifest, added, removed, changed, data)
    store.write_version(root, manifest, data)
    sync_warehouse(warehouse, root, result.dataset)
    result.created = True
    result.version_id = manifest.version_id
    result.manifest = manifest
    result.added, result.removed, result.changed = added, removed, changed
    result.message = f"wrote {manifest.version_id}: {len(final)} cases (+{len(added)} -{len(removed)} ~{len(changed)})"


def sync_warehouse(warehouse: str | Path | None, root: str | Path, dataset: str) -> int:
    """Mirror every version file of `dataset` missing from `golden_versions`; returns versions added."""
    with write_transaction(warehouse, scope=Scope.of(("golden_versions", "golden_cases"))) as con:
        have = {
            r[0] for r in con.execute("SELECT version FROM golden_versions WHERE dataset = ?", [dataset]).fetchall()
        }
        added = 0
        for version in store.versions(root, dataset):
            if version in have:
                continue
            manifest, cases = store.read_version(root, dataset, version)
            con.execute(
                """INSERT INTO golden_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    manifest.version_id,
                    dataset,
                    version,
                    manifest.workflow,
                    manifest.content_hash,
                    manifest.parent_version,
                    manifest.case_count,
                    manifest.labelled_count,
                    manifest.changes.get("added", []),
                    manifest.changes.get("removed", []),
                    json.dumps(manifest.counts_by_failure_class),
                    json.dumps(manifest.counts_by_tag),
                    str(store.cases_path(root, dataset, version)),
                    manifest.created_at,
                ],
            )
            con.executemany(
                "INSERT INTO golden_cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [
                        manifest.version_id,
                        dataset,
                        version,
                        c.workflow,
                        c.case_id,
                        json.dumps(c.input.model_dump(mode="json")),
                        json.dumps(c.expected.model_dump(mode="json")) if c.expected else None,
                        c.expected.kind if c.expected else None,
                        c.expected.source if c.expected else None,
                        json.dumps(c.contract.model_dump(mode="json")),
                        json.dumps(c.tags.model_dump(mode="json")),
                        c.tags.failure_classes,
                        c.tags.intent,
                        c.tags.segment,
                        c.provenance.span_ids,
                    ]
                    for c in cases
                ],
            )
            added += 1
    return added


def record_incident(
    warehouse: str | Path | None,
    registry_root: str | Path,
    span_id: str,
    expected: str | None = None,
    note: str | None = None,
) -> tuple[str, Path]:
    """Append an incident for `span_id` to its workflow's incident file; returns (workflow, file)."""
    with read_connection(warehouse) as con:
        return record_incident_on(con, registry_root, span_id, expected, note)


def record_incident_on(
    con: duckdb.DuckDBPyConnection,
    registry_root: str | Path,
    span_id: str,
    expected: str | None = None,
    note: str | None = None,
) -> tuple[str, Path]:
    """`record_incident` on a read connection the caller holds: several incidents, one open of the
    warehouse (on a lake each open reads every table's log)."""
    parsed = parse_expected_argument(expected) if expected else None
    has_traces = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'traces'").fetchone()[0]
    row = find_span(con, span_id) if has_traces else None
    failure_classes = (
        sorted(
            {
                r[0]
                for r in con.execute(
                    "SELECT failure_class FROM failures WHERE span_id = ? OR record_key = ?", [span_id, span_id]
                ).fetchall()
            }
        )
        if row
        else []
    )
    if row is None:
        raise UserError(f"no trace with span id {span_id!r} in the warehouse", field="span-id")
    workflow = row["workflow"]
    dataset_name(workflow)  # validates the workflow id before it becomes a path
    for number, record in store.read_incidents(registry_root, workflow):
        if record.get("span_id") == span_id:
            raise UserError(
                f"span {span_id!r} is already an incident",
                file=store.incidents_path(registry_root, workflow),
                line=number,
            )
    record: dict[str, Any] = {"span_id": span_id, "failure_classes": failure_classes}
    if parsed:
        record["expected"] = parsed
    if note:
        record["note"] = note
    return workflow, store.append_incident(registry_root, workflow, record)
