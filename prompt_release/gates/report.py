"""The gate report: its typed form (`GateReport`), markdown and a standalone HTML page.

`GateReport` is what `gates.evaluate.build_report` makes, what is written as
`<report_id>.json` beside the HTML, stored in `gate_reports.report`, and read
back by the promotion and the CLI, so every reader sees the same facts with
the same names; its JSON form is the stored one, key for key. The HTML page
needs no network and no JavaScript: charts are inline SVG (each gate's
interval against its threshold, accuracy by tag, latency distributions),
styles are inline.
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

Verdict = Literal["promote", "reject", "freeze"]
# Stored as Python's isoformat ("+00:00"), not pydantic's ("Z"): the stored JSON stays as it was.
IsoDatetime = Annotated[datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class VersionRef(_Frozen):
    version: str
    hash: str | None = None


class DatasetRef(_Frozen):
    version: str | None = None
    hash: str | None = None


class GateRow(_Frozen):
    """One gate's outcome as the report shows it."""

    metric: str
    severity: Literal["hard", "soft"] = "hard"
    threshold: str
    rule: str
    baseline: float | None
    candidate: float | None
    interval: list[float | None]
    estimate: float | None
    interval_of: Literal["candidate", "difference", "ratio"]
    interval_unit: str | None
    threshold_value: float | None
    outcome: Literal["pass", "fail", "inconclusive"]
    n: int
    method: str
    p_value: float | None = None
    reason: str
    unit: str | None
    cases: int | None = Field(None, description="paired cases of the run (the gate's n counts those with a value)")
    labelled: int | None = Field(
        None, description="accuracy gates: paired cases with an expected answer, the only ones the gate can read"
    )
    decides_at: int | None = Field(
        None, description="the n that decided the gate, or for an undecided one the n that would likely decide it"
    )

    def coverage(self) -> str:
        """`56 of 389 labelled`, `389 of 389`: how much of the run the gate could read."""
        if self.cases is None:
            return str(self.n)
        share = f" ({self.n / self.cases:.0%})" if self.cases else ""
        return f"{self.n} of {self.cases}" + (" labelled" if self.labelled is not None else "") + share

    def deciding_n(self) -> str:
        if self.decides_at is None:
            return "-" if self.outcome == "inconclusive" else str(self.n)
        return str(self.decides_at) if self.outcome != "inconclusive" else f"~{self.decides_at}"


_COVERAGE_FIELDS = {"cases", "labelled", "decides_at"}


class Freeze(_Frozen):
    cases_needed: int | None
    reason: str


class RegressionGroup(_Frozen):
    group: str
    cases: int
    regressions: int
    wins: int
    both_failing: int
    disagreements: int
    examples: list[dict[str, Any]]


class TagAccuracy(_Frozen):
    tag: str
    baseline: float | None
    candidate: float | None
    n: int


class Latencies(_Frozen):
    baseline: list[float]
    candidate: list[float]


class EndpointArm(_Frozen):
    """Who answered one arm, and how long its calls took as the server and as the client saw them."""

    served_model: str | None
    answers_model: list[str] = []
    answers: int = 0
    cached: int = 0
    replayed_from_production: int = 0
    client_p50_ms: float | None = None
    client_p95_ms: float | None = None
    server_p50_ms: float | None = None
    server_p95_ms: float | None = None


class Endpoint(_Frozen):
    base_url: str | None
    max_concurrency: int | None
    lowest_concurrency: int | None = None
    arms: dict[str, EndpointArm]


class Evidence(_Frozen):
    """What the backtest behind a report paid, and why an adaptive one stopped (reports before
    adaptive backtests have none)."""

    calls_made: int | None = None
    calls_cached: int | None = None
    calls_replayed: int | None = None
    calls_saved: int = 0
    cases_planned: int | None = None
    stop_reason: str | None = None
    spent_tokens: int | None = None
    spent_usd: float | None = None


class GateReport(_Frozen):
    """A gate decision with every id it was made from (see the module doc)."""

    report_id: str
    verdict: Verdict
    exit_code: int
    reason: str
    created_at: IsoDatetime
    run_id: str
    workflow: str
    candidate: VersionRef
    baseline: VersionRef
    dataset: DatasetRef
    history_cases: int
    golden_cases: int
    rubric_version: str | None = None
    rubric_hash: str | None = None
    judge_version: str | None = None
    judge_calibration: dict[str, Any] | None = None
    confidence: float
    n_cases: int
    gates: list[GateRow]
    failed_gates: list[str]
    inconclusive_gates: list[str]
    soft_warnings: list[str]
    freeze: Freeze | None = None
    not_run: int = 0
    regressions: list[RegressionGroup]
    accuracy_by_tag: list[TagAccuracy]
    latency: Latencies
    spec: dict[str, Any]
    paths: dict[str, str] | None = None
    evidence: Evidence | None = None
    endpoint: Endpoint | None = None  # reports stored before endpoint identities have none

    def to_json(self) -> dict[str, Any]:
        """The stored JSON form; `paths` only once the files are written (the file itself has none)."""
        absent = {name for name in ("paths", "evidence", "endpoint") if getattr(self, name) is None}
        stored = self.model_dump(mode="json", exclude=absent or None)
        # A report stored before coverage was recorded reads back into the same JSON.
        for gate, row in zip(self.gates, stored["gates"], strict=True):
            for name in _COVERAGE_FIELDS - gate.model_fields_set:
                row.pop(name, None)
        return stored


VERDICT_COLOURS = {"promote": "#1a7f37", "reject": "#cf222e", "freeze": "#9a6700"}
OUTCOME_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700"}


def _fmt(value: Any, unit: str | None = None) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if unit == "rate":
            return f"{value * 100:.2f}%"
        if unit == "ms":
            return f"{value:,.0f} ms"
        if unit == "usd":
            return f"${value:.5f}"
        return f"{value:,.3f}"
    return str(value)


def _interval(gate: GateRow) -> str:
    lo, hi = (gate.interval or [None, None])[:2]
    if lo is None or hi is None:
        return "–"
    unit = gate.interval_unit
    # A relative gate's interval is of the difference (or ratio) to the baseline, not of the rate itself.
    prefix = {"difference": "Δ ", "ratio": "× "}.get(gate.interval_of, "")
    return f"{prefix}[{_fmt(float(lo), unit)}, {_fmt(float(hi), unit)}]"


def verdict_line(report: GateReport) -> str:
    reason = report.reason or ""
    # The decision's summary may itself start with the verdict ("reject: ..."): say it once.
    if reason.lower().startswith(report.verdict + ":"):
        reason = reason[len(report.verdict) + 1 :].strip()
    return f"Verdict: {report.verdict.upper()}: {reason}".rstrip(": ")


def _dataset(report: GateReport) -> str:
    return report.dataset.version or "replayed history only"


def endpoint_lines(endpoint: Endpoint | None) -> list[str]:
    """Who answered each arm, at what concurrency, and how long calls took (server and client)."""
    if endpoint is None:
        return []
    lowest, ceiling = endpoint.lowest_concurrency, endpoint.max_concurrency
    cut = f" (lowered to {lowest} by 429/503 answers)" if lowest is not None and lowest != ceiling else ""
    lines = [f"Endpoint `{endpoint.base_url}`, at most {ceiling} calls in flight{cut}."]
    for role, arm in endpoint.arms.items():
        timing = ""
        if arm.client_p95_ms is not None or arm.server_p95_ms is not None:
            timing = (
                f"; p95 latency {_fmt(arm.server_p95_ms, 'ms')} server-reported, "
                f"{_fmt(arm.client_p95_ms, 'ms')} at the client (queueing included)"
            )
        lines.append(
            f"- {role}: served by `{arm.served_model}`: {arm.answers} answers "
            f"({arm.cached} of them from the cache when stored), "
            f"{arm.replayed_from_production} replayed from production{timing}"
        )
    return lines


def freeze_text(freeze: Freeze) -> str:
    """What a freeze is waiting for: each undecided gate's reason, then the cases that would decide them."""
    tail = (
        f"About {freeze.cases_needed} paired cases would likely decide it."
        if freeze.cases_needed is not None
        else "No number of cases can be suggested: see each gate's reason."
    )
    reason = freeze.reason.rstrip(".")
    return f"Undecided: {reason}. {tail}" if reason else tail


def evidence_line(report: GateReport) -> str:
    """What the evidence cost: calls made, cached, replayed, saved, and why an adaptive run stopped."""
    e = report.evidence or Evidence()
    spent = f", {e.spent_tokens:,} tokens" if e.spent_tokens else ""
    spent += f", ${e.spent_usd:.4f}" if e.spent_usd else ""
    text = f"Evidence: {e.calls_made or 0} calls made{spent}, {e.calls_cached or 0} cached, {e.calls_replayed or 0} replayed"
    if e.calls_saved:
        text += (
            f"; {e.calls_saved} calls saved by stopping at {report.n_cases} of {e.cases_planned} cases: {e.stop_reason}"
        )
    return text + "."


def render_markdown(report: GateReport, *, regressions: int = 8) -> str:
    """Verdict first, then the gates table, then where behaviour moved (regressions, then wins)."""
    lines = [
        f"## {verdict_line(report)}",
        "",
        f"Candidate `{report.candidate.version}` vs baseline `{report.baseline.version}` "
        f"on `{_dataset(report)}` (report `{report.report_id}`, confidence {report.confidence:.0%}).",
        "",
        *([*endpoint_lines(report.endpoint), ""] if report.endpoint else []),
        "| gate | severity | baseline | candidate | interval | threshold | n (coverage) | n to decide | outcome |",
        "|---|---|---:|---:|---|---|---:|---:|---|",
    ]
    for gate in report.gates:
        unit = gate.unit
        lines.append(
            f"| {gate.metric} | {gate.severity} | {_fmt(gate.baseline, unit)} "
            f"| {_fmt(gate.candidate, unit)} | {_interval(gate)} | {gate.threshold} "
            f"| {gate.coverage()} | {gate.deciding_n()} | **{gate.outcome.upper()}** |"
        )
    freeze = report.freeze
    if freeze:
        lines += ["", freeze_text(freeze)]
    if report.not_run:
        lines += [
            "",
            f"**Budget:** {report.not_run} calls were not run (budget reached); "
            "the gates above are computed on the cases that ran.",
        ]
    if report.evidence is not None:
        lines += ["", evidence_line(report)]
    regs = report.regressions
    if regs:
        lines += [
            "",
            "### Where behaviour moved (regressions first, then wins)",
            "",
            "| group | cases | regressions | wins | example (before → after) |",
            "|---|---:|---:|---:|---|",
        ]
        for group in regs[:regressions]:
            example = (group.examples or [{}])[0]
            shown = ""
            if example:
                shown = f"`{_clip(example.get('before'))}` → `{_clip(example.get('after'))}`"
            lines.append(f"| {group.group} | {group.cases} | {group.regressions} | {group.wins} | {shown} |")
    return "\n".join(lines)


def _clip(text: Any, width: int = 60) -> str:
    text = "" if text is None else str(text).replace("\n", " ").replace("|", "\\|").replace("`", "'")
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------- SVG charts

# One colour per arm in every chart (this HTML, the notebooks): baseline grey, candidate blue.
ARM_COLOURS = {"baseline": "#6e7781", "candidate": "#0969da"}
PASSING_SIDE = "#dafbe1"
CHART_WIDTH = 900
_SVG_STYLE = f'style="width:100%;max-width:{CHART_WIDTH}px;height:auto" font-family="system-ui, sans-serif"'

# What an interval is of, and its unit -> the shared axis it is drawn on: label and tick format.
_AXES: dict[tuple[str | None, str | None], tuple[str, Any]] = {
    ("candidate", "rate"): ("candidate's rate (%)", lambda v: f"{v * 100:.0f}%"),
    ("difference", "rate"): ("candidate − baseline (percentage points)", lambda v: f"{v * 100:+.0f} pt"),
    ("ratio", "ratio"): ("candidate ÷ baseline (× the baseline)", lambda v: f"×{v:.2f}"),
}


def _axis_for(gate: GateRow) -> tuple[str, Any]:
    key = (gate.interval_of, gate.interval_unit)
    if key in _AXES:
        return _AXES[key]
    if gate.interval_of == "difference":
        return ("candidate − baseline (score points)", lambda v: f"{v:+.2f}")
    unit = gate.unit or "value"
    return (f"candidate's {unit}", lambda v: f"{v:.3g}")


def _nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    raw = (hi - lo) / max(target, 1) or 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _passes_above(gate: GateRow) -> bool:
    """Whether values above the threshold pass (`>=` rules); `<=` and zero-tolerance rules pass below."""
    return (gate.rule or gate.threshold).lstrip().startswith(">")


def _svg_gate_intervals(gates: list[GateRow]) -> str:
    """Gates grouped by what their interval is of; each group on one shared, labelled axis with every
    gate's threshold marked and its passing side shaded."""
    drawable = [
        g for g in gates if len(g.interval) >= 2 and None not in g.interval[:2] and g.threshold_value is not None
    ]
    if not drawable:
        return "<p class=why>Not shown: no gate of this report has an interval.</p>"
    panels: dict[str, list[GateRow]] = {}
    formats: dict[str, Any] = {}
    for gate in drawable:
        label, fmt = _axis_for(gate)
        panels.setdefault(label, []).append(gate)
        formats[label] = fmt
    return "".join(_svg_interval_panel(label, formats[label], rows) for label, rows in panels.items())


def _svg_interval_panel(axis_label: str, fmt, gates: list[GateRow]) -> str:
    row_h, left, right, top = 40, 210, 30, 8
    plot_w = CHART_WIDTH - left - right
    values = [float(v) for g in gates for v in (*g.interval[:2], g.threshold_value)]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.12 or abs(hi) * 0.1 or 0.05
    lo, hi = lo - pad, hi + pad
    if axis_label.startswith("candidate's rate"):
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    ticks = _nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])

    def x(v: float) -> float:
        return left + (min(max(v, lo), hi) - lo) / (hi - lo) * plot_w

    axis_y = top + row_h * len(gates)
    height = axis_y + 44
    parts = [
        f'<svg viewBox="0 0 {CHART_WIDTH} {height}" {_SVG_STYLE} role="img" '
        f'aria-label="gate intervals against thresholds: {html.escape(axis_label)}">'
    ]
    for i, gate in enumerate(gates):
        y0 = top + i * row_h
        mid = y0 + row_h / 2 + 4
        threshold = float(gate.threshold_value)
        start, end = (x(threshold), left + plot_w) if _passes_above(gate) else (left, x(threshold))
        parts.append(
            f'<rect x="{start:.1f}" y="{y0 + 3}" width="{max(end - start, 0):.1f}" height="{row_h - 6}" '
            f'fill="{PASSING_SIDE}"/>'
        )
        parts.append(
            f'<text x="{left - 8}" y="{mid + 4:.1f}" font-size="13" text-anchor="end">{html.escape(gate.metric)}</text>'
        )
        parts.append(
            f'<line x1="{x(threshold):.1f}" y1="{y0 + 3}" x2="{x(threshold):.1f}" y2="{y0 + row_h - 3}" '
            f'stroke="#24292f" stroke-width="2" stroke-dasharray="4,3"/>'
        )
        anchor = "end" if x(threshold) > left + plot_w - 120 else "start"
        nudge = -4 if anchor == "end" else 4
        parts.append(
            f'<text x="{x(threshold) + nudge:.1f}" y="{y0 + 13}" font-size="11" text-anchor="{anchor}" '
            f'fill="#24292f">threshold {html.escape(fmt(threshold))}</text>'
        )
        a, b = (float(v) for v in gate.interval[:2])
        colour = OUTCOME_COLOURS.get(gate.outcome, "#57606a")
        parts.append(
            f'<rect x="{x(a):.1f}" y="{mid - 5:.1f}" width="{max(x(b) - x(a), 3):.1f}" height="10" '
            f'fill="{colour}" fill-opacity="0.4" stroke="{colour}"/>'
        )
        if gate.estimate is not None:
            parts.append(f'<circle cx="{x(float(gate.estimate)):.1f}" cy="{mid:.1f}" r="4.5" fill="{colour}"/>')
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#57606a"/>')
    for tick in ticks:
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="{axis_y}" x2="{x(tick):.1f}" y2="{axis_y + 5}" stroke="#57606a"/>'
            f'<text x="{x(tick):.1f}" y="{axis_y + 18}" font-size="11" text-anchor="middle">'
            f"{html.escape(fmt(tick))}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{axis_y + 36}" font-size="12" text-anchor="middle">'
        f"{html.escape(axis_label)}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _svg_accuracy_by_tag(rows: list[TagAccuracy], gates: list[GateRow]) -> str:
    if not any(g.metric.endswith("accuracy") for g in gates):
        return (
            "<p class=why>Not shown: this workflow's gates decide without an expected-answer accuracy "
            "(its answers are judged by other gates).</p>"
        )
    rows = [r for r in rows if r.baseline is not None or r.candidate is not None][:20]
    if not rows:
        return "<p class=why>Not shown: no case of this run has an expected answer.</p>"
    row_h, left, right, top = 30, 300, 60, 6
    plot_w = CHART_WIDTH - left - right
    axis_y = top + row_h * len(rows)
    height = axis_y + 62
    parts = [f'<svg viewBox="0 0 {CHART_WIDTH} {height}" {_SVG_STYLE} role="img" aria-label="accuracy by tag">']
    for i, row in enumerate(rows):
        y = top + i * row_h
        label = _clip(f"{row.tag} (n={row.n})", 44)
        parts.append(f'<text x="{left - 8}" y="{y + 17}" font-size="12" text-anchor="end">{html.escape(label)}</text>')
        for j, role in enumerate(("baseline", "candidate")):
            value = getattr(row, role)
            if value is None:
                continue
            width = plot_w * float(value)
            parts.append(
                f'<rect x="{left}" y="{y + 4 + j * 11}" width="{width:.1f}" height="10" fill="{ARM_COLOURS[role]}"/>'
            )
            parts.append(
                f'<text x="{left + width + 4:.1f}" y="{y + 13 + j * 11}" font-size="10">'
                f"{float(value) * 100:.0f}%</text>"
            )
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#57606a"/>')
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        tx = left + plot_w * tick
        parts.append(
            f'<line x1="{tx:.1f}" y1="{axis_y}" x2="{tx:.1f}" y2="{axis_y + 5}" stroke="#57606a"/>'
            f'<text x="{tx:.1f}" y="{axis_y + 18}" font-size="11" text-anchor="middle">{tick:.0%}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{axis_y + 36}" font-size="12" text-anchor="middle">'
        "share of cases whose answer matches the expected one (%)</text>"
    )
    parts.append(_legend(left, axis_y + 54))
    parts.append("</svg>")
    return "".join(parts)


def _legend(x: float, y: float) -> str:
    return "".join(
        f'<rect x="{x + k * 110}" y="{y - 9}" width="12" height="10" fill="{ARM_COLOURS[role]}"/>'
        f'<text x="{x + k * 110 + 17}" y="{y}" font-size="12">{role}</text>'
        for k, role in enumerate(("baseline", "candidate"))
    )


def _svg_latency(latency: Latencies) -> str:
    series = {"baseline": [float(v) for v in latency.baseline], "candidate": [float(v) for v in latency.candidate]}
    values = series["baseline"] + series["candidate"]
    if not values:
        return "<p class=why>Not shown: no call of this run was answered fresh (replayed calls carry production latency).</p>"
    lo, hi = max(min(values), 0.1), max(values)
    if hi <= lo * 1.01:
        hi = lo * 1.5
    # Log-spaced bins: latency is right-skewed. Bars are each arm's share of its own calls, so
    # arms with different numbers of calls compare.
    log_lo, log_hi = math.log10(lo), math.log10(hi)
    bins = 30
    left, right, top, bottom = 60, 30, 10, 64
    plot_w, plot_h = CHART_WIDTH - left - right, 200
    height = top + plot_h + bottom
    shares = {}
    for role, vals in series.items():
        counts = [0] * bins
        for v in vals:
            counts[min(bins - 1, max(0, int((math.log10(max(v, 0.1)) - log_lo) / (log_hi - log_lo) * bins)))] += 1
        shares[role] = [n / max(len(vals), 1) for n in counts]
    y_ticks = _nice_ticks(0.0, max(max(s) for s in shares.values()) or 0.01, target=4)
    y_top = y_ticks[-1] or 1.0

    def x(v: float) -> float:
        return left + (math.log10(v) - log_lo) / (log_hi - log_lo) * plot_w

    def y(share: float) -> float:
        return top + plot_h - plot_h * share / y_top

    parts = [f'<svg viewBox="0 0 {CHART_WIDTH} {height}" {_SVG_STYLE} role="img" aria-label="latency distributions">']
    bar_w = plot_w / bins
    for role, offset in (("baseline", 0.0), ("candidate", 0.5)):
        for k, share in enumerate(shares[role]):
            if share:
                parts.append(
                    f'<rect x="{left + (k + offset) * bar_w:.1f}" y="{y(share):.1f}" width="{bar_w / 2:.1f}" '
                    f'height="{top + plot_h - y(share):.1f}" fill="{ARM_COLOURS[role]}"/>'
                )
    base = top + plot_h
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#57606a"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#57606a"/>'
    )
    for tick in y_ticks:
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">{tick:.0%}</text>')
    candidates = [m * 10**e for e in range(-1, 7) for m in (1, 2, 5)]
    x_ticks = [t for t in candidates if lo <= t <= hi] or [lo, hi]
    for tick in x_ticks:
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="{base}" x2="{x(tick):.1f}" y2="{base + 5}" stroke="#57606a"/>'
            f'<text x="{x(tick):.1f}" y="{base + 18}" font-size="11" text-anchor="middle">{tick:,.0f}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{base + 36}" font-size="12" text-anchor="middle">'
        "latency per call (ms, log scale); bars: share of each arm's calls</text>"
    )
    parts.append(_legend(left, base + 56))
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: GateReport) -> str:
    """A standalone page: verdict banner, gates table, charts, regressions, provenance."""
    verdict = report.verdict
    colour = VERDICT_COLOURS.get(verdict, "#57606a")
    rows = []
    for gate in report.gates:
        unit = gate.unit
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(cell))}</td>"
                for cell in (
                    gate.metric,
                    gate.severity,
                    _fmt(gate.baseline, unit),
                    _fmt(gate.candidate, unit),
                    _interval(gate),
                    gate.threshold,
                    gate.coverage(),
                    gate.deciding_n(),
                )
            )
            + f'<td style="color:{OUTCOME_COLOURS.get(gate.outcome, "#000")};font-weight:600">'
            f"{html.escape(gate.outcome.upper())}</td></tr>"
        )
    regressions = []
    for group in report.regressions[:10]:
        examples = "".join(
            f"<li><code>{html.escape(_clip(e.get('before'), 120))}</code> → "
            f"<code>{html.escape(_clip(e.get('after'), 120))}</code> ({html.escape(str(e.get('outcome', '')))})</li>"
            for e in group.examples
        )
        regressions.append(
            f"<tr><td>{html.escape(group.group)}</td><td>{group.cases}</td><td>{group.regressions}</td>"
            f"<td>{group.wins}</td><td><ul>{examples}</ul></td></tr>"
        )
    regressions_html = (
        "<p>Groups of cases ordered by regressions, then wins; before → after is baseline → candidate.</p>"
        "<table><tr><th>group</th><th>cases</th><th>regressions</th><th>wins</th><th>examples</th></tr>"
        + "".join(regressions)
        + "</table>"
        if regressions
        else "<p class=why>Not shown: no group of cases changed between baseline and candidate.</p>"
    )
    freeze = report.freeze
    freeze_html = f"<p class=note>{html.escape(freeze_text(freeze))}</p>" if freeze else ""
    endpoint_html = "".join(f"<p class=note>{html.escape(line)}</p>" for line in endpoint_lines(report.endpoint))
    budget_html = f"<p class=note>{html.escape(evidence_line(report))}</p>" if report.evidence is not None else ""
    if report.not_run:
        budget_html += (
            f"<p class=note>Budget reached: {report.not_run} calls were not run; "
            "gates are computed on the cases that ran.</p>"
        )
    stored = report.to_json()
    provenance = {
        k: stored[k]
        for k in (
            "report_id",
            "run_id",
            "candidate",
            "baseline",
            "dataset",
            "rubric_version",
            "confidence",
            "created_at",
        )
    }
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Gate report {html.escape(report.candidate.version)}: {verdict.upper()}</title>
<style>
body {{ font: 14px/1.45 system-ui, -apple-system, Segoe UI, sans-serif; margin: 2rem auto; max-width: 980px; color: #24292f; }}
.banner {{ background: {colour}; color: white; padding: 1rem 1.25rem; border-radius: 8px; }}
.banner h1 {{ margin: 0; font-size: 1.6rem; }}
table {{ border-collapse: collapse; width: 100%; margin: 0.75rem 0; }}
th, td {{ border-bottom: 1px solid #d0d7de; padding: 6px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f6f8fa; }}
code {{ background: #f6f8fa; padding: 1px 4px; border-radius: 4px; font-size: 12px; }}
.note {{ background: #fff8c5; padding: 0.5rem 0.75rem; border-radius: 6px; }}
.why {{ color: #57606a; font-style: italic; }}
svg {{ display: block; margin: 0.5rem 0 1rem; }}
pre {{ background: #f6f8fa; padding: 0.75rem; overflow-x: auto; font-size: 12px; }}
</style></head><body>
<div class="banner"><h1>{html.escape(verdict_line(report))}</h1>
<div>candidate <b>{html.escape(report.candidate.version)}</b> vs baseline
<b>{html.escape(report.baseline.version)}</b> · dataset
{html.escape(_dataset(report))}</div></div>
{endpoint_html}{freeze_html}{budget_html}
<h2>Gates</h2>
<p>Intervals are of the candidate's value, of its difference to the baseline (Δ), or of its ratio to the baseline (×).</p>
<table><tr><th>gate</th><th>severity</th><th>baseline</th><th>candidate</th><th>interval ({report.confidence:.0%})</th>
<th>threshold</th><th>n (coverage)</th><th>n to decide</th><th>outcome</th></tr>{"".join(rows)}</table>
<h2>Each gate's interval against its threshold</h2>
<p>Bar: the {report.confidence:.0%} interval, dot: the estimate, dashed line: the threshold,
green band: the side of the threshold that passes. A gate passes when its whole bar is in the green band.</p>
{_svg_gate_intervals(report.gates)}
<h2>Accuracy by tag</h2>{_svg_accuracy_by_tag(report.accuracy_by_tag, report.gates)}
<h2>Latency distributions</h2>{_svg_latency(report.latency)}
<h2>Where behaviour moved</h2>{regressions_html}
<h2>Provenance</h2><pre>{html.escape(json.dumps(provenance, indent=2, default=str))}</pre>
</body></html>
"""


def write_report(report: GateReport, out_dir: str | Path) -> dict[str, Path]:
    """Write `<report_id>.json` and `<report_id>.html` atomically; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{report.report_id}.json", "html": out_dir / f"{report.report_id}.html"}
    for kind, text in (("json", json.dumps(report.to_json(), indent=2, default=str)), ("html", render_html(report))):
        tmp = paths[kind].with_suffix(paths[kind].suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(paths[kind])
    return paths
