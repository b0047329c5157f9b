"""Redact personal data and secrets from a golden case before it leaves the warehouse.

Kinds found: secrets (API keys and tokens by their published prefixes, from
detect-secrets' rule set plus current OpenAI/Anthropic/Google key shapes),
JWTs (three base64url parts whose header decodes to JSON), private key
blocks, US social security numbers (SSA rules: no 000/666/9xx area, 00
group or 0000 serial), IBANs (python-stdnum: country length and mod-97
checksum), emails, phone numbers (national formats by the pattern below,
international `+CC ...` formats by Google's libphonenumber), card-like
numbers (13-19 digits, Luhn valid), IPv4 and IPv6 addresses, street
addresses (house number + name + street type, or `<Name>straße 5`), plus
configured extra patterns (kind -> regex). Object keys are redacted like
values, at every depth (a phone number used as a key is still a phone number).

Why rules and not a model: Presidio's recognisers need a spaCy language
model, which cannot be installed here (no network but the package
registries) and would make redaction depend on a model version; the kinds
above all have a fixed published shape or checksum, which rules find exactly.
Free-text names are not found (that would need the model). Each distinct value becomes a placeholder `<KIND_N>`, numbered in
order of first appearance; the same value (emails case-insensitively, phones
and cards by their digits) gets the same placeholder everywhere in one case
(messages, variables, expected), so the case still tests the same behaviour.
`find_pii(text)` lists what is left, for the asset check that fails a dataset
with any surviving match. Order ids (`ORD-123456`), money amounts and dates
are not phone numbers: a phone needs 10 to 15 digits, or a leading `+`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import phonenumbers
from detect_secrets.plugins import (
    artifactory,
    aws,
    azure_storage_key,
    discord,
    github_token,
    gitlab_token,
    mailchimp,
    openai,
    pypi_token,
    sendgrid,
    slack,
    square_oauth,
    stripe,
    telegram_token,
    twilio,
)
from stdnum import iban as stdnum_iban

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# 13-19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}(?![\w-])")
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.])"
)
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])")
# country code, check digits, then 11-30 letters/digits, optionally grouped by single spaces
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END \1PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)"
)
_STREET_TYPES = (
    "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|parkway|pkwy|"
    "square|sq|highway|hwy|circle|cir|close|crescent|gardens|grove|row|mews|walk"
)
_STREET = re.compile(
    rf"(?<![\w-])\d{{1,6}}[A-Za-z]?,? (?:[A-Z][\w'.-]*\.? ){{1,4}}(?:{_STREET_TYPES})\b\.?"
    r"(?:,? (?:apt|apartment|suite|unit|#)\.? ?\w+)?",
    re.IGNORECASE,
)
# `Hauptstraße 5`, `Rue de Rivoli 12` style: a street word then the house number
_STREET_NUMBER_LAST = re.compile(
    r"(?<![\w-])(?:[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm)"
    r"|(?:Rue|Avenue|Boulevard|Calle|Via|Rua) (?:(?:de|du|des|la|le|del|di) )?[A-Z][\w'-]*) \d{1,4}[a-z]?\b"
)
# detect-secrets' rule set: plugins whose patterns match the secret itself (not a
# keyword near it, nor any high-entropy string: hashes and ids are not secrets)
_SECRET_PLUGINS = (
    artifactory.ArtifactoryDetector,
    aws.AWSKeyDetector,
    azure_storage_key.AzureStorageKeyDetector,
    discord.DiscordBotTokenDetector,
    github_token.GitHubTokenDetector,
    gitlab_token.GitLabTokenDetector,
    mailchimp.MailchimpDetector,
    openai.OpenAIDetector,
    pypi_token.PypiTokenDetector,
    sendgrid.SendGridDetector,
    slack.SlackDetector,
    square_oauth.SquareOAuthDetector,
    stripe.StripeDetector,
    telegram_token.TelegramBotTokenDetector,
    twilio.TwilioKeyDetector,
)
# key shapes newer than that rule set, and bearer credentials in text
_MORE_SECRETS = (
    r"(?<![\w-])sk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d{2}-)?[A-Za-z0-9_-]{20,}",
    r"(?<![\w-])AIza[0-9A-Za-z_-]{35}",
    r"(?<![\w-])github_pat_[A-Za-z0-9_]{22,}",
    r"(?<![\w-])(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,}",
    r"(?i)(?<=bearer )[A-Za-z0-9._~+/-]{20,}=*",
)


_AROUND = " \t\r\n\"'=:"


@lru_cache(maxsize=1)
def _secret_patterns() -> tuple[re.Pattern, ...]:
    patterns = [rx for plugin in _SECRET_PLUGINS for rx in plugin().denylist]
    patterns += [re.compile(rx) for rx in _MORE_SECRETS]
    return tuple(patterns)


def _jwt_valid(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        return isinstance(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))), dict)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False


def _iban_in(text: str) -> tuple[int, int] | None:
    """The longest prefix of a candidate (by whole characters, spaces kept) that is a valid IBAN."""
    end = len(text)
    while end >= 15:
        candidate = text[:end].rstrip()
        if stdnum_iban.is_valid(candidate.replace(" ", "")):
            return 0, len(candidate)
        end = len(candidate) - 1
    return None


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

    def add_span(kind: str, start: int, end: int) -> None:
        if end > start and free(start, end):
            found.append(PiiMatch(kind, text[start:end], start, end))
            taken.append((start, end))

    # Order matters: specific shapes first, so a card is not read as a phone.
    for kind, pattern in (extra_patterns or {}).items():
        for m in re.finditer(pattern, text):
            if m.group(0):
                add(kind.upper(), m)
    for m in _PRIVATE_KEY.finditer(text):
        add("PRIVATE_KEY", m)
    for m in _JWT.finditer(text):
        if _jwt_valid(m.group(0)):
            add("SECRET", m)
    for rx in _secret_patterns():
        for m in rx.finditer(text):
            # a long group is the secret inside its context (`aws ... key = '<40 chars>'`); a short
            # one is a prefix (`(ghp|gho)_...`); some patterns also take the blank or quote around it
            start, end = (m.start(1), m.end(1)) if rx.groups and len(m.group(1) or "") >= 16 else (m.start(), m.end())
            while start < end and text[start] in _AROUND:
                start += 1
            while end > start and text[end - 1] in _AROUND:
                end -= 1
            add_span("SECRET", start, end)
    for m in _IBAN.finditer(text):
        span = _iban_in(m.group(0))
        if span:
            add_span("IBAN", m.start() + span[0], m.start() + span[1])
    for m in _SSN.finditer(text):
        add("SSN", m)
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
    if "+" in text:  # international format: libphonenumber knows every country's lengths
        for m in phonenumbers.PhoneNumberMatcher(text, None, leniency=phonenumbers.Leniency.POSSIBLE):
            add_span("PHONE", m.start, m.end)
    for m in _PHONE.finditer(text):
        if _is_phone(m.group(0)):
            add("PHONE", m)
    for m in _STREET.finditer(text):
        add("ADDRESS", m)
    for m in _STREET_NUMBER_LAST.finditer(text):
        add("ADDRESS", m)
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
        """Redact every string inside a JSON-like value, object keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
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
    """Every surviving match anywhere in a JSON-like value, object keys included."""
    if isinstance(value, str):
        return find_pii(value, extra_patterns)
    if isinstance(value, Mapping):
        return [
            m for k, v in value.items() for m in (*pii_in_value(k, extra_patterns), *pii_in_value(v, extra_patterns))
        ]
    if isinstance(value, (list, tuple)):
        return [m for v in value for m in pii_in_value(v, extra_patterns)]
    return []
