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

from pydantic import BaseModel, ConfigDict, PlainSerializer

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

    def to_json(self) -> dict[str, Any]:
        """The stored JSON form; `paths` only once the files are written (the file itself has none)."""
        return self.model_dump(mode="json", exclude={"paths"} if self.paths is None else None)


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
        reason = reason[len(report.verdict) + 1:].strip()
    return f"Verdict: {report.verdict.upper()}: {reason}".rstrip(": ")


def _dataset(report: GateReport) -> str:
    return report.dataset.version or "replayed history only"


def render_markdown(report: GateReport, *, regressions: int = 8) -> str:
    """Verdict first, then the gates table, then where behaviour moved (regressions, then wins)."""
    lines = [
        f"## {verdict_line(report)}",
        "",
        f"Candidate `{report.candidate.version}` vs baseline `{report.baseline.version}` "
        f"on `{_dataset(report)}` (report `{report.report_id}`, confidence {report.confidence:.0%}).",
        "",
        "| gate | severity | baseline | candidate | interval | threshold | n | outcome |",
        "|---|---|---:|---:|---|---|---:|---|",
    ]
    for gate in report.gates:
        unit = gate.unit
        lines.append(
            f"| {gate.metric} | {gate.severity} | {_fmt(gate.baseline, unit)} "
            f"| {_fmt(gate.candidate, unit)} | {_interval(gate)} | {gate.threshold} "
            f"| {gate.n} | **{gate.outcome.upper()}** |"
        )
    freeze = report.freeze
    if freeze:
        lines += ["", f"Not enough evidence: {freeze.reason} "
                  f"About {freeze.cases_needed if freeze.cases_needed is not None else '?'} cases would likely decide it."]
    if report.not_run:
        lines += ["", f"**Budget:** {report.not_run} calls were not run (budget reached); "
                  "the gates above are computed on the cases that ran."]
    regs = report.regressions
    if regs:
        lines += ["", "### Where behaviour moved (regressions first, then wins)", "",
                  "| group | cases | regressions | wins | example (before → after) |",
                  "|---|---:|---:|---:|---|"]
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


def _svg_gate_intervals(gates: list[GateRow]) -> str:
    """One row per gate: the interval as a bar, the point estimate, the threshold line."""
    drawable = [g for g in gates if g.interval and None not in g.interval[:2] and g.threshold_value is not None]
    if not drawable:
        return "<p>No interval to draw.</p>"
    row_h, width, left = 34, 720, 190
    plot_w = width - left - 20
    height = row_h * len(drawable) + 20
    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="gate intervals against thresholds">']
    for i, gate in enumerate(drawable):
        lo, hi = (float(v) for v in gate.interval[:2])
        point = gate.estimate
        point = float(point) if isinstance(point, (int, float)) else (lo + hi) / 2
        threshold = float(gate.threshold_value)
        span_lo = min(lo, threshold, point)
        span_hi = max(hi, threshold, point)
        pad = (span_hi - span_lo) * 0.15 or abs(threshold) * 0.1 or 1.0
        span_lo, span_hi = span_lo - pad, span_hi + pad

        def x(v: float, span_lo: float = span_lo, span_hi: float = span_hi) -> float:
            return left + (v - span_lo) / (span_hi - span_lo) * plot_w

        y = 10 + i * row_h + row_h / 2
        colour = OUTCOME_COLOURS.get(gate.outcome, "#57606a")
        parts.append(f'<text x="4" y="{y + 4:.1f}" font-size="12">{html.escape(gate.metric)}</text>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#d0d7de"/>')
        parts.append(f'<rect x="{x(lo):.1f}" y="{y - 6:.1f}" width="{max(x(hi) - x(lo), 2):.1f}" height="12" '
                     f'fill="{colour}" fill-opacity="0.35" stroke="{colour}"/>')
        parts.append(f'<circle cx="{x(point):.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')
        parts.append(f'<line x1="{x(threshold):.1f}" y1="{y - 12:.1f}" x2="{x(threshold):.1f}" y2="{y + 12:.1f}" '
                     f'stroke="#24292f" stroke-width="2" stroke-dasharray="3,2"/>')
        parts.append(f'<text x="{x(threshold) + 4:.1f}" y="{y - 8:.1f}" font-size="10">threshold</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_accuracy_by_tag(rows: list[TagAccuracy]) -> str:
    rows = [r for r in rows if r.baseline is not None or r.candidate is not None][:20]
    if not rows:
        return "<p>No tagged cases with an expected answer.</p>"
    row_h, width, left = 26, 820, 330
    plot_w = width - left - 60
    height = row_h * len(rows) + 30
    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="accuracy by tag">']
    for i, row in enumerate(rows):
        y = 10 + i * row_h
        label = _clip(f"{row.tag} (n={row.n})", 48)
        parts.append(f'<text x="4" y="{y + 14}" font-size="12">{html.escape(label)}</text>')
        for j, (role, colour) in enumerate((("baseline", "#8c959f"), ("candidate", "#0969da"))):
            value = getattr(row, role)
            if value is None:
                continue
            parts.append(f'<rect x="{left}" y="{y + j * 10}" width="{plot_w * float(value):.1f}" height="9" fill="{colour}"/>')
            parts.append(f'<text x="{left + plot_w * float(value) + 4:.1f}" y="{y + j * 10 + 8}" font-size="9">'
                         f'{float(value) * 100:.0f}%</text>')
    legend_y = height - 8
    parts.append(f'<rect x="{left}" y="{legend_y - 8}" width="10" height="8" fill="#8c959f"/>'
                 f'<text x="{left + 14}" y="{legend_y}" font-size="10">baseline</text>'
                 f'<rect x="{left + 80}" y="{legend_y - 8}" width="10" height="8" fill="#0969da"/>'
                 f'<text x="{left + 94}" y="{legend_y}" font-size="10">candidate</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_latency(latency: Latencies) -> str:
    series = {k: [float(v) for v in getattr(latency, k) if v is not None] for k in ("baseline", "candidate")}
    values = series["baseline"] + series["candidate"]
    if not values:
        return "<p>No latency recorded.</p>"
    lo, hi = min(values), max(values)
    if hi <= lo:
        hi = lo + 1.0
    # Log-spaced bins: latency is right-skewed.
    log_lo, log_hi = math.log10(max(lo, 0.1)), math.log10(max(hi, 0.2))
    bins = 30
    edges = [10 ** (log_lo + (log_hi - log_lo) * i / bins) for i in range(bins + 1)]
    width, height, left, bottom = 720, 220, 40, 30
    plot_w, plot_h = width - left - 10, height - bottom - 10
    counts = {}
    for role, vals in series.items():
        c = [0] * bins
        for v in vals:
            k = min(bins - 1, max(0, int((math.log10(max(v, 0.1)) - log_lo) / (log_hi - log_lo or 1) * bins)))
            c[k] += 1
        total = max(len(vals), 1)
        counts[role] = [n / total for n in c]
    top = max(max(c) for c in counts.values()) or 1.0
    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-label="latency distributions">']
    bar_w = plot_w / bins
    for role, colour, offset in (("baseline", "#8c959f", 0.0), ("candidate", "#0969da", 0.5)):
        for k, share in enumerate(counts[role]):
            h = plot_h * share / top
            parts.append(f'<rect x="{left + k * bar_w + offset * bar_w:.1f}" y="{10 + plot_h - h:.1f}" '
                         f'width="{bar_w / 2:.1f}" height="{h:.1f}" fill="{colour}"/>')
    for k in (0, bins // 2, bins):
        parts.append(f'<text x="{left + k * bar_w:.1f}" y="{height - 12}" font-size="10" text-anchor="middle">'
                     f'{edges[k]:,.0f} ms</text>')
    parts.append(f'<text x="{left}" y="{height - 1}" font-size="10">grey: baseline · blue: candidate (log scale, share of calls)</text>')
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
            "<tr>" + "".join(
                f"<td>{html.escape(str(cell))}</td>"
                for cell in (
                    gate.metric, gate.severity, _fmt(gate.baseline, unit),
                    _fmt(gate.candidate, unit), _interval(gate), gate.threshold, gate.n,
                )
            )
            + f'<td style="color:{OUTCOME_COLOURS.get(gate.outcome, "#000")};font-weight:600">'
            f'{html.escape(gate.outcome.upper())}</td></tr>'
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
    freeze = report.freeze
    freeze_html = ""
    if freeze:
        needed = freeze.cases_needed if freeze.cases_needed is not None else "?"
        freeze_html = (f"<p class=note>Not enough evidence: {html.escape(freeze.reason)} "
                       f"About <b>{needed}</b> cases would likely decide it.</p>")
    budget_html = ""
    if report.not_run:
        budget_html = (f"<p class=note>Budget reached: {report.not_run} calls were not run; "
                       "gates are computed on the cases that ran.</p>")
    stored = report.to_json()
    provenance = {k: stored[k] for k in ("report_id", "run_id", "candidate", "baseline", "dataset",
                                         "rubric_version", "confidence", "created_at")}
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
pre {{ background: #f6f8fa; padding: 0.75rem; overflow-x: auto; font-size: 12px; }}
</style></head><body>
<div class="banner"><h1>{html.escape(verdict_line(report))}</h1>
<div>candidate <b>{html.escape(report.candidate.version)}</b> vs baseline
<b>{html.escape(report.baseline.version)}</b> · dataset
{html.escape(_dataset(report))}</div></div>
{freeze_html}{budget_html}
<h2>Gates</h2>
<p>Intervals are of the candidate's value, of its difference to the baseline (Δ), or of its ratio to the baseline (×).</p>
<table><tr><th>gate</th><th>severity</th><th>baseline</th><th>candidate</th><th>interval ({report.confidence:.0%})</th>
<th>threshold</th><th>n</th><th>outcome</th></tr>{''.join(rows)}</table>
<h2>Each gate's interval against its threshold</h2>{_svg_gate_intervals(report.gates)}
<h2>Accuracy by tag</h2>{_svg_accuracy_by_tag(report.accuracy_by_tag)}
<h2>Latency distributions</h2>{_svg_latency(report.latency)}
<h2>Largest regressions</h2>
<table><tr><th>group</th><th>cases</th><th>regressions</th><th>wins</th><th>examples</th></tr>{''.join(regressions)}</table>
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
