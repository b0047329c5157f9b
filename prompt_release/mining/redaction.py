"""Redact personal data from a golden case before it leaves the warehouse.

Kinds found: emails, phone numbers, card-like numbers (13-19 digits, Luhn
valid), IPv4 and IPv6 addresses, plus configured extra patterns (kind ->
regex). Each distinct value becomes a placeholder `<KIND_N>`, numbered in
order of first appearance; the same value (emails case-insensitively, phones
and cards by their digits) gets the same placeholder everywhere in one case
(messages, variables, expected), so the case still tests the same behaviour.
`find_pii(text)` lists what is left, for the asset check that fails a dataset
with any surviving match. Order ids (`ORD-123456`), money amounts and dates
are not phone numbers: a phone needs 10 to 15 digits, or a leading `+`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# 13-19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?![\w-])"
)
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_DATE_LIKE = re.compile(r"^\d{4}[-./]\d{2}[-./]\d{2}$")


class PiiMatch(NamedTuple):
    kind: str
    text: str
    start: int
    end: int


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _is_phone(text: str) -> bool:
    digits = _digits(text)
    if _DATE_LIKE.match(text.strip()):
        return False
    if text.lstrip().startswith("+"):
        return 8 <= len(digits) <= 15
    return 10 <= len(digits) <= 15


def _is_ipv6(text: str) -> bool:
    if text.count(":") < 2 or not re.search(r"[0-9A-Fa-f]", text):
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def find_pii(text: str, extra_patterns: Mapping[str, str] | None = None) -> list[PiiMatch]:
    """Every personal-data match in `text`, non-overlapping, in order; placeholders are ignored."""
    if not text:
        return []
    found: list[PiiMatch] = []
    taken: list[tuple[int, int]] = [(m.start(), m.end()) for m in _PLACEHOLDER.finditer(text)]

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(kind: str, m: re.Match) -> None:
        if free(m.start(), m.end()):
            found.append(PiiMatch(kind, m.group(0), m.start(), m.end()))
            taken.append((m.start(), m.end()))

    # Order matters: specific shapes first, so a card is not read as a phone.
    for kind, pattern in (extra_patterns or {}).items():
        for m in re.finditer(pattern, text):
            if m.group(0):
                add(kind.upper(), m)
    for m in _EMAIL.finditer(text):
        add("EMAIL", m)
    for m in _IPV4.finditer(text):
        add("IP", m)
    for m in _IPV6.finditer(text):
        if _is_ipv6(m.group(0)):
            add("IP", m)
    for m in _CARD.finditer(text):
        if luhn_valid(_digits(m.group(0))):
            add("CARD", m)
    for m in _PHONE.finditer(text):
        if _is_phone(m.group(0)):
            add("PHONE", m)
    found.sort(key=lambda p: p.start)
    return found


def _identity(kind: str, text: str) -> str:
    if kind == "EMAIL":
        return text.lower()
    if kind == "PHONE":
        # The last 10 digits: "+1 415 555 0132" and "4155550132" are the same line.
        return _digits(text)[-10:]
    if kind == "CARD":
        return _digits(text)
    if kind == "IP":
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return text
    return text


@dataclass
class Redactor:
    """Placeholders for one case: the same value always maps to the same `<KIND_N>`."""

    extra_patterns: Mapping[str, str] = field(default_factory=dict)
    _seen: dict[tuple[str, str], str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def placeholder(self, kind: str, text: str) -> str:
        key = (kind, _identity(kind, text))
        if key not in self._seen:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._seen[key] = f"<{kind}_{self._counts[kind]}>"
        return self._seen[key]

    def text(self, text: str) -> str:
        matches = find_pii(text, self.extra_patterns)
        if not matches:
            return text
        out, last = [], 0
        for m in matches:
            out.append(text[last : m.start])
            out.append(self.placeholder(m.kind, m.text))
            last = m.end
        out.append(text[last:])
        return "".join(out)

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON-like value (keys are left alone)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value

    @property
    def replaced(self) -> dict[str, int]:
        """How many distinct values of each kind this case had."""
        return dict(self._counts)


def redact_case(parts: Mapping[str, Any], extra_patterns: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Redact all parts of one case with shared placeholders, in the order given (e.g. input, expected)."""
    redactor = Redactor(dict(extra_patterns or {}))
    return {name: redactor.value(value) for name, value in parts.items()}


def pii_in_value(value: Any, extra_patterns: Mapping[str, str] | None = None) -> list[PiiMatch]:
    """Every surviving match anywhere in a JSON-like value."""
    if isinstance(value, str):
        return find_pii(value, extra_patterns)
    if isinstance(value, Mapping):
        return [m for v in value.values() for m in pii_in_value(v, extra_patterns)]
    if isinstance(value, (list, tuple)):
        return [m for v in value for m in pii_in_value(v, extra_patterns)]
    return []
