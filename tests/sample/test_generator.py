"""The sample production history: deterministic, mixed formats, and ground truth that matches the files.

The consistency test re-reads every file the way a user would (plain JSON and
OTLP parsing, jsonschema, the documented rules) and recomputes each call's
failure classes independently of the generator's bookkeeping.
"""

from __future__ import annotations

import gzip
import json
import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import jsonschema
import pytest

from prompt_release.registry import Registry
from prompt_release.sample import generator as gen
from prompt_release.sample.content import extractive_summary, luhn_valid
from tests.conftest import run_cli
from tests.registry.conftest import copy_sample_registry

DAYS = 6
SCALE = 0.5
SEED = 7
START = date(2025, 6, 1)
VERSION_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}:v\d+\.\d+\.\d+$")


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    out = tmp_path_factory.mktemp("history")
    truth = gen.generate(out, days=DAYS, seed=SEED, scale=SCALE, start_date=START)
    return out, truth


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _lines(path: Path) -> list[str]:
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return [line for line in data.decode("utf-8").splitlines() if line.strip()]


def _attr_value(value: dict):
    ((kind, v),) = value.items()
    if kind == "intValue":
        return int(v)
    if kind == "arrayValue":
        return [_attr_value(x) for x in v.get("values", [])]
    return v


def _spans(path: Path):
    for line in _lines(path):
        request = json.loads(line)
        for resource_spans in request["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    attrs = {a["key"]: _attr_value(a["value"]) for a in span["attributes"]}
                    yield span, attrs


def _read_calls(root: Path) -> dict[str, dict]:
    """Every LLM call in the files, as a uniform dict keyed by span id."""
    calls: dict[str, dict] = {}
    for path in sorted(root.glob("20*/*")):
        rel = str(path.relative_to(root))
        if path.name.endswith((".otel.jsonl", ".phoenix.jsonl")):
            spans = list(_spans(path))
            by_id = {span["spanId"]: (span, attrs) for span, attrs in spans}
            for span, attrs in spans:
                latency = (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6
                status = "error" if span["status"].get("code") == 2 else "ok"
                if attrs.get("gen_ai.operation.name") == "chat":
                    root_attrs = by_id[span["parentSpanId"]][1]
                    out_messages = json.loads(attrs.get("gen_ai.output.messages", "[]"))
                    parts = [p for m in out_messages for p in m["parts"]]
                    texts = [p["content"] for p in parts if p["type"] == "text"]
                    tool_calls = [
                        {"name": p["name"], "arguments": p["arguments"]} for p in parts if p["type"] == "tool_call"
                    ]
                    history = json.loads(attrs["gen_ai.input.messages"])
                    prior = [p["name"] for m in history for p in m["parts"] if p["type"] == "tool_call"]
                    workflow = root_attrs["workflow"]
                    version = f"{root_attrs['gen_ai.prompt.name']}:v{root_attrs['gen_ai.prompt.version'].split(':v')[-1].lstrip('v')}"
                    fmt = "otlp_genai"
                elif attrs.get("openinference.span.kind") == "LLM":
                    root_attrs = by_id[span["parentSpanId"]][1]
                    content = attrs.get("llm.output_messages.0.message.content")
                    texts = [content] if content is not None else []
                    tool_calls = []
                    j = 0
                    while f"llm.output_messages.0.message.tool_calls.{j}.tool_call.function.name" in attrs:
                        raw = attrs[f"llm.output_messages.0.message.tool_calls.{j}.tool_call.function.arguments"]
                        try:
                            arguments = json.loads(raw)
                        except ValueError:
                            arguments = raw
                        tool_calls.append(
                            {
                                "name": attrs[f"llm.output_messages.0.message.tool_calls.{j}.tool_call.function.name"],
                                "arguments": arguments,
                            }
                        )
                        j += 1
                    prior = [
                        v
                        for k, v in attrs.items()
                        if k.startswith("llm.input_messages.") and k.endswith("tool_call.function.name")
                    ]
                    workflow = root_attrs["workflow"]
                    version = f"{attrs['prompt.id']}:{attrs['llm.prompt_template.version']}"
                    fmt = "openinference"
                else:
                    continue
                calls[span["spanId"]] = {
                    "file": rel,
                    "format": fmt,
                    "workflow": workflow,
                    "version": version,
                    "status": status,
                    "output": texts[0] if texts else None,
                    "tool_calls": tool_calls,
                    "prior_tools": prior,
                    "latency_ms": latency,
                    "cost_usd": None,
                    "feedback": None,
                    "escalated": False,
                    "correction": None,
                    "retries": 0,
                    "fallback": False,
                    "trace_id": span["traceId"],
                    "day": datetime.fromtimestamp(int(span["startTimeUnixNano"]) / 1e9, tz=UTC).date().isoformat(),
                }
        else:
            for line in _lines(path):
                record = json.loads(line)
                output = record.get("output")
                if isinstance(output, (dict, list)):
                    output = json.dumps(output)
                prior = [
                    tc["function"]["name"] for m in record["input"]["messages"] for tc in m.get("tool_calls") or []
                ]
                feedback = record.get("feedback")
                feedback = {"up": 1, "down": -1}.get(feedback, feedback)
                calls[record["span_id"]] = {
                    "file": rel,
                    "format": "native",
                    "workflow": record["workflow"],
                    "version": record["prompt_version"],
                    "status": record["status"],
                    "output": output,
                    "tool_calls": record.get("tool_calls") or [],
                    "prior_tools": prior,
                    "latency_ms": record["latency_ms"],
                    "cost_usd": record.get("cost_usd"),
                    "feedback": feedback,
                    "escalated": record["escalated"],
                    "correction": record.get("correction"),
                    "retries": record["retries"],
                    "fallback": record["fallback"],
                    "trace_id": record["trace_id"],
                    "day": record["timestamp"][:10],
                    "record": record,
                }
    return calls


def _classes(call: dict, tools: dict) -> set[str]:
    """The documented rules (generator.FAILURE_RULES), applied to one call read back from the files."""
    found: set[str] = set()
    if call["status"] == "error":
        found.add("error")
    if call["retries"] > 0:
        found.add("retry")
    if call["fallback"]:
        found.add("fallback")
    if call["feedback"] is not None and call["feedback"] < 0:
        found.add("negative_feedback")
    if call["escalated"]:
        found.add("escalation")
    output = call["output"]
    parsed = None
    if call["workflow"] == "support_router" and call["status"] == "ok":
        try:
            parsed = json.loads(output)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            found.add("invalid_json")
            parsed = None
        else:
            for error in jsonschema.Draft202012Validator(gen.SUPPORT_ROUTE_SCHEMA).iter_errors(parsed):
                if list(error.path) == ["route"] and error.validator == "enum":
                    found.add("enum_violation")
                else:
                    found.add("schema_violation")
    if call["correction"] is not None:
        if call["workflow"] == "support_router":
            differs = parsed is None or any(parsed.get(k) != v for k, v in call["correction"].items())
        else:
            differs = call["correction"] != output
        if differs:
            found.add("correction")
    if call["workflow"] != "support_router" and call["status"] == "ok" and output:
        if re.match(gen.REFUSAL_PATTERN, output):
            found.add("refusal")
        if re.match(gen.CLARIFICATION_PATTERN, output):
            found.add("clarification")
    for tool_call in call["tool_calls"]:
        spec = tools.get(tool_call["name"])
        if spec is None:
            found.add("unknown_tool")
            continue
        arguments = tool_call["arguments"]
        valid = isinstance(arguments, dict) and jsonschema.Draft202012Validator(spec["parameters"]).is_valid(arguments)
        if not valid:
            found.add("tool_args_invalid")
        if spec["risk"] == "high":
            over = valid and arguments["amount_usd"] > gen.REFUND_LIMIT_USD
            if not valid or over or "lookup_order" not in call["prior_tools"]:
                found.add("unsafe_tool_call")
    return found


def _outliers(calls: dict[str, dict]) -> dict[str, set[str]]:
    groups: dict[tuple, list[str]] = defaultdict(list)
    for span_id, call in calls.items():
        groups[(call["workflow"], call["day"])].append(span_id)
    found: dict[str, set[str]] = defaultdict(set)
    for ids in groups.values():
        median_latency = statistics.median(calls[i]["latency_ms"] for i in ids)
        costs = [calls[i]["cost_usd"] for i in ids if calls[i]["cost_usd"] is not None]
        median_cost = statistics.median(costs)
        for i in ids:
            if calls[i]["latency_ms"] > 10 * median_latency:
                found[i].add("latency_outlier")
            if calls[i]["cost_usd"] is not None and calls[i]["cost_usd"] > 10 * median_cost:
                found[i].add("cost_outlier")
    return found


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path, history):
    root, _ = history
    again = tmp_path / "again"
    gen.generate(again, days=DAYS, seed=SEED, scale=SCALE, start_date=START)
    assert _files(again) == _files(root)
    other = tmp_path / "other"
    gen.generate(other, days=DAYS, seed=SEED + 1, scale=SCALE, start_date=START)
    assert _files(other)["2025-06-01/summarizer.jsonl"] != _files(root).get("2025-06-01/summarizer.jsonl")


def test_history_is_written_in_day_folders_with_every_call_in_its_own_day(history):
    root, truth = history
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert folders == [date.fromordinal(START.toordinal() + i).isoformat() for i in range(DAYS)]
    calls = _read_calls(root)
    for call in calls.values():
        assert call["file"].startswith(call["day"] + "/"), call["file"]
    for folder in folders:
        workflows = {p.name.split(".")[0] for p in (root / folder).iterdir()}
        assert workflows == set(gen.WORKFLOWS)
    assert (root / "ground_truth.json").is_file()


def test_formats_are_mixed_and_otlp_follows_the_conventions(history):
    root, truth = history
    formats = Counter(f["format"] for f in truth["files"])
    assert set(formats) == {"native", "otlp_genai", "openinference"}
    assert formats["native"] > formats["otlp_genai"] + formats["openinference"]
    assert any(f["gzip"] for f in truth["files"])
    otel = sorted(root.glob("20*/*.otel.jsonl"))
    operations = Counter()
    for path in otel:
        for span, attrs in _spans(path):
            assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
            assert isinstance(span["startTimeUnixNano"], str)
            operations[attrs.get("gen_ai.operation.name")] += 1
            if attrs.get("gen_ai.operation.name") == "chat":
                assert isinstance(attrs["gen_ai.request.model"], str)
                if span["status"].get("code") == 2:
                    assert attrs["error.type"]
                else:
                    assert attrs["gen_ai.usage.input_tokens"] > 0
                    assert attrs["gen_ai.response.finish_reasons"]
                    json.loads(attrs["gen_ai.output.messages"])
            if span["parentSpanId"] == "":
                assert "gen_ai.prompt.name" in attrs and "gen_ai.prompt.version" in attrs and "workflow" in attrs
    assert operations["chat"] > 0 and operations["invoke_agent"] > 0 and operations["execute_tool"] > 0
    kinds = Counter(
        attrs.get("openinference.span.kind") for path in root.glob("20*/*.phoenix.jsonl") for _, attrs in _spans(path)
    )
    assert kinds["LLM"] > 0 and kinds["AGENT"] + kinds["CHAIN"] > 0
    tool_call_attrs = [
        k
        for path in root.glob("20*/order_agent.phoenix.jsonl")
        for _, attrs in _spans(path)
        for k in attrs
        if k.endswith("tool_call.function.name")
    ]
    assert tool_call_attrs


def test_ground_truth_matches_what_the_files_show(history):
    root, truth = history
    calls = _read_calls(root)
    by_span = {c["span_id"]: c for c in truth["calls"]}
    assert set(calls) == set(by_span)
    tools = {t["name"]: t for t in gen.ORDER_TOOLS}
    outliers = _outliers(calls)
    mismatches = []
    for span_id, call in calls.items():
        expected = by_span[span_id]
        assert call["file"] == expected["file"] and call["workflow"] == expected["workflow"]
        assert call["version"] == expected["prompt_version"]
        found = _classes(call, tools) | outliers.get(span_id, set())
        if found != set(expected["failures"]):
            mismatches.append((span_id, call["file"], sorted(found), expected["failures"]))
    assert not mismatches, mismatches[:5]
    # Counts are the per-call lists summed up.
    recount: dict = defaultdict(Counter)
    for c in truth["calls"]:
        for failure in c["failures"]:
            recount[c["workflow"]][failure] += 1
    assert {w: dict(c) for w, c in recount.items()} == {w: t for w, t in truth["totals"].items() if t}
    day_sum = Counter()
    for workflow, versions in truth["counts"].items():
        for days in versions.values():
            for per_class in days.values():
                for failure, n in per_class.items():
                    day_sum[(workflow, failure)] += n
    assert day_sum == Counter({(w, f): n for w, t in truth["totals"].items() for f, n in t.items()})


def test_every_failure_class_is_injected_and_some_calls_fail_in_several_ways(history):
    _, truth = history
    present = {failure for c in truth["calls"] for failure in c["failures"]}
    assert present == set(gen.FAILURE_CLASSES)
    assert sum(1 for c in truth["calls"] if len(c["failures"]) >= 2) > 10
    # Outliers are a handful per workflow and day, not a percentile's worth.
    for versions in truth["counts"].values():
        for days in versions.values():
            for per_class in days.values():
                assert per_class.get("latency_outlier", 0) <= 5


def test_production_outputs_follow_the_production_prompt_rules(history):
    root, truth = history
    calls = _read_calls(root)
    by_span = {c["span_id"]: c for c in truth["calls"]}
    checked = Counter()
    for span_id, call in calls.items():
        if call["format"] != "native" or call["status"] != "ok" or by_span[span_id]["failures"]:
            continue
        record = call["record"]
        if call["workflow"] == "support_router":
            route, _ = gen.route_by_rules(call["version"], record["input"]["variables"]["ticket"])
            assert json.loads(call["output"])["route"] == route
            checked["router"] += 1
        elif call["workflow"] == "summarizer":
            assert call["output"] == extractive_summary(record["input"]["variables"]["document"], 60)
            assert len(call["output"].split()) <= 60
            checked["summarizer"] += 1
    assert checked["router"] > 100 and checked["summarizer"] > 100
    # Routes follow keywords, so some are wrong against the true label: that is what corrections fix.
    router = [c for c in truth["calls"] if c["workflow"] == "support_router"]
    assert all(c["expected"]["route"] in gen.SUPPORT_ROUTES for c in router)


def test_versions_switch_after_the_first_third_of_the_days(history):
    _, truth = history
    switch = date.fromordinal(START.toordinal() + DAYS // 3).isoformat()
    for c in truth["calls"]:
        if c["workflow"] == "support_router":
            assert c["prompt_version"] == ("support_router:v1.5.1" if c["day"] < switch else "support_router:v1.5.2")
    assert {c["prompt_version"] for c in truth["calls"]} == {
        "support_router:v1.5.1",
        "support_router:v1.5.2",
        "order_agent:v2.0.0",
        "summarizer:v1.0.0",
    }


def test_inputs_carry_personal_data_for_redaction_to_find(history):
    root, truth = history
    text = "\n".join(json.dumps(c["record"]["input"]) for c in _read_calls(root).values() if c["format"] == "native")
    assert re.search(r"[\w.]+@[\w.-]+\.\w+", text)
    assert re.search(r"\+\d{1,2} [\d -]{8,}|\(\d{3}\) \d{3}-\d{4}", text)
    assert re.search(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", text)
    cards = re.findall(r"\b\d{4}[ -]?\d{4}[ -]?\d{4}[ -]?\d{4}\b", text)
    assert cards and all(luhn_valid(c) for c in cards)
    kinds = Counter(k for c in truth["calls"] for k in c["pii"])
    assert set(kinds) == {"email", "phone", "card", "ip"}


def test_order_agent_traces_hold_several_calls_under_one_parent(history):
    root, truth = history
    calls = _read_calls(root)
    per_trace = defaultdict(list)
    for call in calls.values():
        if call["workflow"] == "order_agent":
            per_trace[call["trace_id"]].append(call)
    multi = [t for t in per_trace.values() if len(t) >= 3]
    assert multi
    native_multi = [t for t in multi if t[0]["format"] == "native"]
    assert native_multi
    for trace in native_multi:
        assert len({c["record"]["parent_span_id"] for c in trace}) == 1
        # A later call sees the earlier calls' tool calls in its input.
        assert (
            "lookup_order" in trace[-1]["prior_tools"]
            or any(c["status"] == "error" for c in trace)
            or not trace[0]["tool_calls"]
            or trace[0]["tool_calls"][0]["name"] != "lookup_order"
        )
    longest = max(len(c["record"]["input"]["messages"]) for c in calls.values() if c["format"] == "native")
    assert longest >= 12  # long conversations occur


def test_every_native_record_carries_the_required_fields(history):
    root, _ = history
    n = 0
    for path in sorted(root.glob("20*/*.jsonl*")):
        if path.name.endswith((".otel.jsonl", ".phoenix.jsonl")):
            continue
        for line in _lines(path):
            record = json.loads(line)
            assert record["trace_id"] and record["span_id"] and record["model"]
            assert record["workflow"] in gen.WORKFLOWS
            assert VERSION_ID.match(record["prompt_version"])
            datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
            assert record["status"] in ("ok", "error")
            assert isinstance(record["input"]["messages"], list) and record["input"]["variables"]
            n += 1
    assert n > 1000


def test_package_hashes_are_written_when_given(tmp_path):
    hashes = {"summarizer:v1.0.0": "sha256:" + "ab" * 32}
    gen.generate(tmp_path, days=1, seed=1, scale=0.1, package_hashes=hashes)
    records = [
        json.loads(line)
        for p in tmp_path.glob("*/*.jsonl*")
        if not p.name.endswith((".otel.jsonl", ".phoenix.jsonl"))
        for line in _lines(p)
    ]
    assert {r.get("package_hash") for r in records if r["workflow"] == "summarizer"} == {hashes["summarizer:v1.0.0"]}
    assert all("package_hash" not in r for r in records if r["workflow"] != "summarizer")


def test_cli_writes_history_and_refuses_to_overwrite_without_flag(tmp_path):
    out = tmp_path / "landing"
    result = run_cli(
        "generate-traces",
        "--days",
        "2",
        "--out",
        str(out),
        "--seed",
        "3",
        "--scale",
        "0.2",
        "--start-date",
        "2025-07-01",
    )
    assert result.returncode == 0, result.stderr
    assert "support_router" in result.stdout and "ground truth" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["2025-07-01", "2025-07-02", "ground_truth.json"]
    first = _files(out)
    again = run_cli(
        "generate-traces",
        "--days",
        "2",
        "--out",
        str(out),
        "--seed",
        "3",
        "--scale",
        "0.2",
        "--start-date",
        "2025-07-01",
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr
    forced = run_cli(
        "generate-traces",
        "--days",
        "2",
        "--out",
        str(out),
        "--seed",
        "3",
        "--scale",
        "0.2",
        "--start-date",
        "2025-07-01",
        "--overwrite",
    )
    assert forced.returncode == 0, forced.stderr
    assert _files(out) == first


def test_order_messages_trigger_the_production_tool_rules_only_when_a_tool_is_expected(history):
    """Replaying a recorded input through the prompt's [tool] rules asks for a tool exactly when production used one."""
    root, truth = history
    rules = [
        line.split(" when: ")[1].split(", ")
        for line in gen.SYSTEM_PROMPTS["order_agent"].splitlines()
        if line.startswith("[tool]")
    ]
    keywords = [k for kws in rules for k in kws]
    by_span = {c["span_id"]: c for c in truth["calls"]}
    seen = Counter()
    for span_id, call in _read_calls(root).items():
        if call["workflow"] != "order_agent" or call["format"] != "native":
            continue
        messages = call["record"]["input"]["messages"]
        if messages[-1]["role"] != "user":
            continue  # not the first call of its turn
        wants_tool = any(k in messages[-1]["content"].lower() for k in keywords)
        expected = by_span[span_id]["expected"]
        assert wants_tool == (expected["tool"] is not None), messages[-1]["content"]
        seen[wants_tool] += 1
    assert seen[True] > 50 and seen[False] > 20


def test_a_registry_copys_production_moves_are_dated_when_the_traffic_switched(tmp_path: Path) -> None:
    registry = copy_sample_registry(tmp_path / "registry")
    start = date(2026, 10, 5)
    truth = gen.generate(tmp_path / "landing", days=6, seed=3, scale=0.05, start_date=start)
    assert gen.align_label_history(registry, truth) >= 3
    reg = Registry(registry)
    moves = {e.to_version: e.ts for e in reg.history("support_router") if e.label == "production"}
    # v1.5.1 serves the first third of the days, then v1.5.2.
    assert moves == {"support_router:v1.5.1": "2026-10-05T00:00:00Z", "support_router:v1.5.2": "2026-10-07T00:00:00Z"}
    assert reg.labels("support_router")["production"].moved_at == "2026-10-07T00:00:00Z"
