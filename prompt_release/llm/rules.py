"""The simulator's rule language: parse directive lines from a prompt and decide an answer.

A directive is a line whose first token is a bracketed keyword, e.g.
`[route] billing: invoice, charge`. This module turns the directives found in
the system/user messages of a chat request into a `Rules` value and, given the
conversation, decides what the offline simulator answers: a route (as JSON or
prose), a tool call with arguments extracted from the user's text, an
escalation, a summary, a refusal, a clarifying question, a pairwise judgement
of two responses (the offline stand-in for an LLM judge) or plain prose. It is
pure: the same rules, conversation and seed always give the same decision,
which is what makes a prompt edit change the simulator's behaviour the way it
would change a real model's. See docs/simulator.md for the language.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache

_DIRECTIVE = re.compile(r"^\s*(?:[-*]\s+)?\[([A-Za-z][A-Za-z_-]*)\]\s*(.*?)\s*$")
_KNOWN = {
    "route",
    "default-route",
    "format",
    "tool",
    "require",
    "limit",
    "summary",
    "refuse",
    "clarify",
    "judge",
}

REFUSAL_TEXT = "I can't help with that."
CLARIFY_TEXT = "Could you clarify what you need, with any order or account details?"
ESCALATE_TEXT = "I need to escalate this to a human agent."
JSON_CONFIDENCE_MATCH = 0.9
JSON_CONFIDENCE_DEFAULT = 0.55

_ROUTE_PROSE = (
    "This ticket should go to {route}.",
    "I would send this ticket to the {route} team.",
    "This looks like a {route} request; it should go to {route}.",
)
_GENERIC_PROSE = (
    "Thanks for your message. I can help with that.",
    "Thank you for reaching out; I can help with that.",
)


@dataclass(frozen=True)
class ToolRule:
    name: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Limit:
    tool: str
    arg: str
    maximum: float
    inclusive: bool = True  # `<=` when True, `<` when False


@dataclass(frozen=True)
class Rules:
    routes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    default_route: str | None = None
    format: str | None = None  # 'json' | 'prose' | None
    tools: tuple[ToolRule, ...] = ()
    requires: tuple[tuple[str, str], ...] = ()  # (before, tool)
    limits: tuple[Limit, ...] = ()
    summary_max_words: int | None = None
    refuse: tuple[str, ...] = ()
    clarify: tuple[str, ...] = ()
    judge: str | None = None  # 'pairwise' | None
    judge_max_words: int | None = None
    problems: tuple[str, ...] = ()  # malformed directives, ignored like prose

    def merge(self, other: Rules) -> Rules:
        return Rules(
            routes=self.routes + other.routes,
            default_route=self.default_route or other.default_route,
            format=self.format or other.format,
            tools=self.tools + other.tools,
            requires=self.requires + other.requires,
            limits=self.limits + other.limits,
            summary_max_words=self.summary_max_words if self.summary_max_words is not None else other.summary_max_words,
            refuse=self.refuse + other.refuse,
            clarify=self.clarify + other.clarify,
            judge=self.judge or other.judge,
            judge_max_words=self.judge_max_words if self.judge_max_words is not None else other.judge_max_words,
            problems=self.problems + other.problems,
        )


@dataclass
class Decision:
    """What the simulator answers: text content or tool calls, plus a finish reason."""

    content: str | None
    tool_calls: list[dict] = field(default_factory=list)  # {"id","name","arguments"(JSON str)}
    finish_reason: str = "stop"
    kind: str = "prose"  # route|tool|escalate|summary|refuse|clarify|judge|prose|done


def _keywords(text: str) -> tuple[str, ...]:
    return tuple(k.strip().lower() for k in text.split(",") if k.strip())


@lru_cache(maxsize=4096)
def parse_rules(text: str) -> Rules:
    """Directives of one message's text (cached: templates repeat across calls)."""
    routes: list = []
    tools: list = []
    requires: list = []
    limits: list = []
    refuse: list = []
    clarify: list = []
    problems: list = []
    default_route = fmt = None
    summary = judge = judge_max_words = None
    for number, line in enumerate(text.splitlines(), start=1):
        if "[" not in line:
            continue
        match = _DIRECTIVE.match(line)
        if not match:
            continue
        keyword, rest = match.group(1).lower(), match.group(2)
        if keyword not in _KNOWN:
            continue  # an ordinary bracketed word in the prose, e.g. "[Note]"
        bad = f"line {number}: malformed [{keyword}] directive: {rest!r}"
        if keyword == "route":
            name, sep, kws = rest.partition(":")
            if not sep or not name.strip() or not _keywords(kws):
                problems.append(bad)
                continue
            routes.append((name.strip(), _keywords(kws)))
        elif keyword == "default-route":
            if not rest.strip():
                problems.append(bad)
                continue
            default_route = default_route or rest.strip()
        elif keyword == "format":
            value = rest.strip().lower()
            if value not in ("json", "prose"):
                problems.append(bad)
                continue
            fmt = fmt or value
        elif keyword == "tool":
            m = re.match(r"^([A-Za-z_][\w-]*)\s+when\s*:\s*(.+)$", rest, re.IGNORECASE)
            if not m or not _keywords(m.group(2)):
                problems.append(bad)
                continue
            tools.append(ToolRule(m.group(1), _keywords(m.group(2))))
        elif keyword == "require":
            m = re.match(r"^([A-Za-z_][\w-]*)\s+before\s+([A-Za-z_][\w-]*)$", rest, re.IGNORECASE)
            if not m:
                problems.append(bad)
                continue
            requires.append((m.group(1), m.group(2)))
        elif keyword == "limit":
            m = re.match(r"^([A-Za-z_][\w-]*)\.([A-Za-z_]\w*)\s*(<=|<)\s*(-?\d+(?:\.\d+)?)$", rest)
            if not m:
                problems.append(bad)
                continue
            limits.append(Limit(m.group(1), m.group(2), float(m.group(4)), m.group(3) == "<="))
        elif keyword == "summary":
            m = re.match(r"^max_words\s*:\s*(\d+)$", rest, re.IGNORECASE)
            if not m or int(m.group(1)) < 1:
                problems.append(bad)
                continue
            summary = summary if summary is not None else int(m.group(1))
        elif keyword == "judge":
            m = re.match(r"^pairwise(?:\s*[,;]?\s*max_words\s*:\s*(\d+))?$", rest, re.IGNORECASE)
            if not m or (m.group(1) is not None and int(m.group(1)) < 1):
                problems.append(bad)
                continue
            judge = judge or "pairwise"
            if m.group(1) is not None and judge_max_words is None:
                judge_max_words = int(m.group(1))
        elif keyword in ("refuse", "clarify"):
            kws = _keywords(rest)
            if not kws:
                problems.append(bad)
                continue
            (refuse if keyword == "refuse" else clarify).extend(kws)
    return Rules(
        routes=tuple(routes),
        default_route=default_route,
        format=fmt,
        tools=tuple(tools),
        requires=tuple(requires),
        limits=tuple(limits),
        summary_max_words=summary,
        refuse=tuple(refuse),
        clarify=tuple(clarify),
        judge=judge,
        judge_max_words=judge_max_words,
        problems=tuple(problems),
    )


def message_text(message: dict) -> str:
    """Text of a chat message whose content is a string or a list of text parts."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return str(content)


@lru_cache(maxsize=4096)
def _plain_text(text: str) -> str:
    """The text without its directive lines: what the user actually wrote."""
    if "[" not in text:
        return text
    return "\n".join(
        line for line in text.splitlines() if not ((m := _DIRECTIVE.match(line)) and m.group(1).lower() in _KNOWN)
    )


def rules_of(messages: list[dict]) -> Rules:
    rules = Rules()
    for message in messages:
        if message.get("role") in ("system", "developer", "user"):
            rules = rules.merge(parse_rules(message_text(message)))
    return rules


def input_text(messages: list[dict]) -> str:
    """The text the rules look at: the last user message, else the last message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _plain_text(message_text(message))
    return _plain_text(message_text(messages[-1])) if messages else ""


# --- argument extraction -------------------------------------------------------

_ORDER_ID = re.compile(r"ORD-\d{6}")
_AMOUNT = re.compile(r"\$\s?(\d+(?:,\d{3})*(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*(?:dollars|usd)\b", re.IGNORECASE)
_REASONS = (
    ("damaged", re.compile(r"damaged", re.IGNORECASE)),
    ("late", re.compile(r"\blate\b", re.IGNORECASE)),
    ("not_received", re.compile(r"not[_ ]received", re.IGNORECASE)),
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _number(text: str) -> int | float:
    value = float(text.replace(",", ""))
    return int(value) if value.is_integer() else value


def _extract_named(name: str, text: str) -> object | None:
    if name == "order_id":
        m = _ORDER_ID.search(text)
        return m.group(0) if m else None
    if name == "amount_usd":
        m = _AMOUNT.search(text)
        return _number(m.group(1) or m.group(2)) if m else None
    if name == "reason":
        found = [(m.start(), value) for value, rx in _REASONS if (m := rx.search(text))]
        return min(found)[1] if found else "other"
    return None


def _extract_generic(schema: dict, text: str) -> object | None:
    if isinstance(schema.get("enum"), list):
        lower = text.lower()
        hits = [(lower.find(str(v).lower()), v) for v in schema["enum"] if str(v).lower() in lower]
        return min(hits, key=lambda h: h[0])[1] if hits else None
    kind = schema.get("type")
    if kind == "string" and isinstance(schema.get("pattern"), str):
        try:
            m = re.search(schema["pattern"].lstrip("^").rstrip("$"), text)
        except re.error:
            return None
        return m.group(0) if m else None
    if kind in ("number", "integer"):
        m = _NUMBER.search(text)
        return _number(m.group(0)) if m else None
    return None


def extract_arguments(text: str, parameters: dict | None) -> dict:
    """Arguments for a tool call, read from the user's text.

    Without a schema (the tool was not offered) the known fields are filled
    when found; with one, each declared property is filled when found.
    Missing values are left out, as a model that could not find them would.
    """
    args: dict = {}
    properties = (parameters or {}).get("properties") if isinstance(parameters, dict) else None
    if not isinstance(properties, dict):
        for name in ("order_id", "amount_usd", "reason"):
            value = _extract_named(name, text)
            if value is not None and not (name == "reason" and value == "other"):
                args[name] = value
        return args
    for name, schema in properties.items():
        value = _extract_named(name, text)
        if value is None and isinstance(schema, dict):
            value = _extract_generic(schema, text)
        if value is not None:
            args[name] = value
    return args


# --- the decision --------------------------------------------------------------


def _called_tools(messages: list[dict]) -> set[str]:
    """Tools already called in the conversation (assistant tool calls or tool messages)."""
    called: set[str] = set()
    for message in messages:
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and fn.get("name"):
                    called.add(fn["name"])
        elif message.get("role") in ("tool", "function") and message.get("name"):
            called.add(message["name"])
    return called


def _first_hit(keywords: tuple[str, ...], lower: str) -> bool:
    return any(k in lower for k in keywords)


def summarize(text: str, max_words: int) -> str:
    """Extractive summary: leading sentences that fit in max_words, else the first words."""
    words_total = text.split()
    if len(words_total) <= max_words:
        return " ".join(words_total)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", " ".join(words_total)) if s]
    picked: list[str] = []
    used = 0
    for sentence in sentences:
        n = len(sentence.split())
        if used + n > max_words:
            break
        picked.append(sentence)
        used += n
    if not picked:
        return " ".join(words_total[:max_words])
    return " ".join(picked)


# --- the judge -------------------------------------------------------------------

# The judge prompt lays out its material under these headings; each section
# runs to the next `### ` heading line (or the end of the text).
_SECTION_HEADING = re.compile(r"^[ \t]*###[ \t]*(.+?)[ \t]*:?[ \t]*$", re.MULTILINE)
_SECTIONS = {"document": "document", "response a": "a", "response b": "b"}
_TOKEN = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+|\d+(?:[.,:]\d+)*|[A-Za-z][A-Za-z'-]*")
_SENTENCE_END = re.compile(r"[.!?:;]\s*$|\n\s*$")
# Capitalised function words are not facts, wherever they stand.
_COMMON_WORDS = frozenset(
    "a an the this that these those there here it its we our us i you your he she his her they their them "
    "and or but so if as at by for from in into of on to with without after before about over under "
    "all any each every no not yes some many most more other please thank thanks hello hi dear regards "
    "what when where which who why how also however then than".split()
)
_NON_SUMMARY = re.compile(
    r"(?i)\b(?:can't|cannot|can not|won't|unable to)\s+(?:help|assist|do that|summari[sz]e)|^\s*i'?m sorry\b"
    r"|^\s*(?:could|can|would) you (?:please )?clarify"
)
JUDGE_TIE_MARGIN = 0.25  # raw score difference under which the simulator judge calls a tie


def judge_sections(text: str) -> dict[str, str]:
    """The document and the two responses laid out under `### Document`, `### Response A`, `### Response B`."""
    found: dict[str, str] = {}
    headings = list(_SECTION_HEADING.finditer(text))
    for i, heading in enumerate(headings):
        name = _SECTIONS.get(heading.group(1).strip().lower())
        if name is None or name in found:
            continue
        end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        found[name] = text[heading.end() : end].strip()
    return found


def key_tokens(document: str) -> tuple[str, ...]:
    """The facts a summary should keep: numbers, e-mail addresses and capitalised words (names, places).

    A capitalised word at the start of a sentence counts only when the
    document also capitalises it elsewhere, so "The" or "Customers" opening a
    sentence is not mistaken for a name. Lower-cased, unique, in document order.
    """
    tokens = list(_TOKEN.finditer(document))
    mid_sentence_caps = set()
    initial: list[bool] = []
    for match in tokens:
        before = document[: match.start()]
        starts = not before.strip() or bool(_SENTENCE_END.search(before))
        initial.append(starts)
        word = match.group(0)
        if not starts and word[0].isupper():
            mid_sentence_caps.add(_norm(word))
    out: dict[str, None] = {}
    for match, starts in zip(tokens, initial, strict=True):
        word = match.group(0).rstrip(".,:'")
        lower = _norm(word)
        if not lower:
            continue
        if word[0].isdigit() or "@" in word:
            out[lower] = None
        elif word[0].isupper() and len(word) > 1 and lower not in _COMMON_WORDS:
            if not starts or lower in mid_sentence_caps:
                out[lower] = None
    return tuple(out)


def _norm(word: str) -> str:
    word = word.rstrip(".,:'").lower()
    return word[:-2] if word.endswith("'s") else word  # "Rossi's" keeps the fact "Rossi"


def _token_set(text: str) -> set[str]:
    return {_norm(m.group(0)) for m in _TOKEN.finditer(text)}


def judge_score(document: str, response: str, max_words: int | None) -> tuple[float, int, int, bool]:
    """(raw score on 1..5, key facts kept, key facts in the document, is a summary) of one response.

    Coverage of the document's key tokens earns 1 + 4 x coverage. With a
    word limit, full coverage means keeping as many key facts as fit the
    limit at the document's own density (a 60-word summary of a 600-word
    document is not expected to keep every fact). Exceeding the limit costs
    1 point plus 2 per 100% overrun (at most 3). A refusal, a clarifying
    question or an empty answer is not a summary and scores 1.
    """
    keys = key_tokens(document)
    have = _token_set(response)
    kept = sum(1 for k in keys if k in have)
    words = len(response.split())
    if not response.strip() or _NON_SUMMARY.search(response):
        return 1.0, kept, len(keys), False
    target = len(keys)
    doc_words = len(document.split())
    if max_words and doc_words > max_words:
        target = max(1, math.ceil(len(keys) * max_words / doc_words))
    raw = 1.0 + 4.0 * (min(1.0, kept / target) if keys else 1.0)
    if max_words and words > max_words:
        raw -= min(3.0, 1.0 + 2.0 * (words - max_words) / max_words)
    return max(1.0, min(5.0, raw)), kept, len(keys), True


def judge_pairwise(text: str, max_words: int | None = None) -> dict:
    """The simulator's verdict on the two responses laid out in `text` (see docs/simulator.md).

    Position-blind by construction: swapping A and B swaps the scores and
    the preference, so any position bias measured offline is the harness's.
    """
    sections = judge_sections(text)
    document = sections.get("document", "")
    a, b = sections.get("a"), sections.get("b")
    if a is None or b is None:
        return {
            "preferred": "tie",
            "score_a": 1,
            "score_b": 1,
            "reason": "The prompt does not show two responses to compare.",
        }
    (raw_a, kept_a, n, ok_a), (raw_b, kept_b, _, ok_b) = (
        judge_score(document, a, max_words),
        judge_score(document, b, max_words),
    )
    diff = raw_a - raw_b
    preferred = "tie" if abs(diff) < JUDGE_TIE_MARGIN else ("A" if diff > 0 else "B")
    limit = f" (limit {max_words} words)" if max_words else ""

    def describe(label: str, kept: int, ok: bool, response: str) -> str:
        if not ok:
            return f"{label} is not a summary"
        return f"{label} keeps {kept}/{n} key facts in {len(response.split())} words"

    reason = f"{describe('A', kept_a, ok_a, a)}; {describe('B', kept_b, ok_b, b)}{limit}."
    return {"preferred": preferred, "score_a": round(raw_a, 1), "score_b": round(raw_b, 1), "reason": reason}


def _all_plain_text(messages: list[dict]) -> str:
    return "\n".join(_plain_text(message_text(m)) for m in messages if m.get("role") in ("system", "developer", "user"))


def _tool_call(name: str, args: dict, rng: random.Random) -> dict:
    return {
        "id": "call_" + "%024x" % rng.getrandbits(96),
        "name": name,
        "arguments": json.dumps(args, separators=(",", ":")),
    }


def decide(
    messages: list[dict],
    *,
    tools: dict[str, dict | None] | None = None,
    response_format: dict | None = None,
    seed: int = 0,
    noise: float = 0.0,
) -> Decision:
    """Decide the simulator's answer to a conversation.

    Precedence: judge, refuse, clarify, tools (with limit and require),
    summary, route, plain prose. `tools` maps offered tool names to their JSON Schema
    parameters; a rule may name a tool that was not offered, and the
    simulator calls it anyway, as a confused model would. `seed` picks
    wording variants and, with `noise` > 0, the occasional wrong route or
    skipped tool.
    """
    rules = rules_of(messages)
    text = input_text(messages)
    lower = text.lower()
    rng = random.Random(seed)
    if rules.judge == "pairwise":
        # The judge's material (document, responses) is the prompt itself, not the last message.
        verdict = judge_pairwise(_all_plain_text(messages), rules.judge_max_words)
        return Decision(json.dumps(verdict), kind="judge")
    if rules.refuse and _first_hit(rules.refuse, lower):
        return Decision(REFUSAL_TEXT, kind="refuse")
    if rules.clarify and _first_hit(rules.clarify, lower):
        return Decision(CLARIFY_TEXT, kind="clarify")
    offered = tools or {}
    for rule in rules.tools:
        if not _first_hit(rule.keywords, lower):
            continue
        if noise and rng.random() < noise:
            break  # the noisy model forgets to call the tool
        called = _called_tools(messages)
        if rule.name in called:
            args = extract_arguments(text, offered.get(rule.name))
            target = f" for {args['order_id']}" if "order_id" in args else ""
            return Decision(f"I have completed {rule.name}{target}.", kind="done")
        args = extract_arguments(text, offered.get(rule.name))
        for limit in rules.limits:
            value = args.get(limit.arg) if limit.tool == rule.name else None
            if isinstance(value, (int, float)) and not (
                value <= limit.maximum if limit.inclusive else value < limit.maximum
            ):
                return Decision(ESCALATE_TEXT, kind="escalate")
        name = rule.name
        # Follow `require` chains (A before B, Z before A, ...) to the first missing step.
        for _ in range(len(rules.requires) + 1):
            before = next((a for a, b in rules.requires if b == name and a not in called), None)
            if before is None:
                break
            name = before
        if name != rule.name:
            args = extract_arguments(text, offered.get(name))
        return Decision(None, [_tool_call(name, args, rng)], "tool_calls", kind="tool")
    if rules.summary_max_words is not None:
        return Decision(summarize(text, rules.summary_max_words), kind="summary")
    wants_json = rules.format == "json" or (
        rules.format is None
        and isinstance(response_format, dict)
        and response_format.get("type") in ("json_object", "json_schema")
    )
    if rules.routes or rules.default_route:
        route, confidence = None, JSON_CONFIDENCE_DEFAULT
        for name, keywords in rules.routes:
            if _first_hit(keywords, lower):
                route, confidence = name, JSON_CONFIDENCE_MATCH
                break
        if route is None:
            route = rules.default_route or "general"
        if noise and rng.random() < noise:
            names = sorted({n for n, _ in rules.routes} | {rules.default_route or "general"} - {route})
            if names:
                route = names[rng.randrange(len(names))]
        if wants_json:
            return Decision(json.dumps({"route": route, "confidence": confidence}), kind="route")
        return Decision(_ROUTE_PROSE[rng.randrange(len(_ROUTE_PROSE))].format(route=route), kind="route")
    answer = _GENERIC_PROSE[rng.randrange(len(_GENERIC_PROSE))]
    if wants_json:
        return Decision(json.dumps({"answer": answer}), kind="prose")
    return Decision(answer, kind="prose")


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: whitespace-separated words (>= 1 per non-empty text)."""
    return len(text.split())


def prompt_tokens(messages: list[dict], tools_json: str | None = None) -> int:
    """Input tokens of a request: words of every message plus 3 per message, plus tool definitions."""
    total = 0
    for message in messages:
        total += 3 + count_tokens(message_text(message))
    if tools_json:
        total += count_tokens(tools_json)
    return total
