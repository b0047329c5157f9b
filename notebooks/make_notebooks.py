"""Write the analyst notebooks (without outputs) from the cell sources below.

Edit this file, not the .ipynb files, then run `python notebooks/make_notebooks.py`.
The notebooks read the warehouse through the documented views (docs/analysts.md);
`tests/test_notebooks.py` executes them against a freshly built demo warehouse.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''\
%matplotlib inline
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl

pl.Config.set_tbl_rows(25)
pl.Config.set_fmt_str_lengths(80)


def find_warehouse() -> Path:
    """$PROMPT_RELEASE_WAREHOUSE, else the nearest .prompt_release/warehouse.duckdb above this notebook."""
    if os.environ.get("PROMPT_RELEASE_WAREHOUSE"):
        return Path(os.environ["PROMPT_RELEASE_WAREHOUSE"])
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / ".prompt_release").is_dir():
            return folder / ".prompt_release" / "warehouse.duckdb"
    return Path(".prompt_release/warehouse.duckdb")


WAREHOUSE = find_warehouse()
try:
    from prompt_release.warehouse import analyst_connection

    # Reads the published read-only snapshot (warehouse.analyst.duckdb) when there is one, else the
    # live file read-only: a notebook left open never blocks the pipeline.
    con = analyst_connection(WAREHOUSE)
except ImportError:  # prompt_release not installed in this kernel: plain DuckDB, read-only
    import duckdb

    snapshot = WAREHOUSE.with_name(WAREHOUSE.stem + ".analyst.duckdb")
    con = duckdb.connect(str(snapshot if snapshot.exists() else WAREHOUSE), read_only=True)
    # as analyst_connection does: no COPY TO, EXPORT, ATTACH, INSTALL/LOAD or file reads
    for setting in ("enable_external_access = false", "lock_configuration = true"):
        con.execute("SET " + setting)


def q(sql: str, *params) -> pl.DataFrame:
    """Run a query, return a polars DataFrame."""
    return con.sql(sql, params=list(params) or None).pl()


try:  # one colour per arm, the same as in the HTML gate report
    from prompt_release.gates.report import ARM_COLOURS
except ImportError:
    ARM_COLOURS = {"baseline": "#6e7781", "candidate": "#0969da"}


print(f"warehouse: {WAREHOUSE}")'''

PERCENT = "from matplotlib.ticker import PercentFormatter"


def notebook_01() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# Version quality over time\n\n"
            "How does each prompt version do in production, day by day: success rate, hard failures, "
            "latency and cost? Did a candidate on canary behave like production on the days both served "
            "traffic? Everything here comes from the view `v_version_daily` (one row per version and day, "
            "the definitions of the `version_metrics` table) and label moves from `v_label_history`."
        ),
        new_code_cell(SETUP),
        new_code_cell(
            """\
daily = q("SELECT * FROM v_version_daily ORDER BY day, prompt_version")
# `make demo` serves its canary traffic through the offline simulator on the day it runs (user ids
# `sim_...`): the simulator's latency and failure mix are not production's, so those days are left
# out of the charts below and marked with a grey band.
simulator_days = q("SELECT DISTINCT day FROM traces WHERE starts_with(user_id, 'sim_') ORDER BY day")["day"].to_list()
if simulator_days:
    print(f"left out (the demo's simulator traffic): {', '.join(str(d) for d in simulator_days)}")
daily = daily.filter(~pl.col("day").is_in(simulator_days))
print(f"{daily.height} version-days, {daily['day'].min()} to {daily['day'].max()}")
daily.select("day", "prompt_version", "calls", "success_rate", "hard_failure_rate", "p95_latency_ms",
             "cost_per_success_usd")"""
        ),
        new_markdown_cell(
            "## Per version over the whole window\n\n"
            "Rates are recomputed from the counts (not averaged over days), so a busy day weighs more "
            "than a quiet one."
        ),
        new_code_cell(
            '''\
summary = q("""
    SELECT prompt_id, prompt_version, min(day) AS first_day, max(day) AS last_day, sum(calls)::BIGINT AS calls,
           sum(successes) / sum(calls) AS success_rate, sum(hard_failures) / sum(calls) AS hard_failure_rate,
           sum(unsafe_tool_calls)::BIGINT AS unsafe_tool_calls, sum(escalations) / sum(calls) AS escalation_rate,
           sum(negative_feedback) / sum(calls) AS negative_feedback_rate,
           sum(cost_usd) / nullif(sum(successes), 0) AS cost_per_success_usd
    FROM v_version_daily GROUP BY ALL ORDER BY prompt_id, prompt_version
""")
summary'''
        ),
        new_markdown_cell(
            "## Success and hard-failure rate per day\n\n"
            "One row of charts per prompt. Dotted vertical lines are the moments the `production` label moved; "
            "a grey band is a day left out (the demo's simulator traffic)."
        ),
        new_code_cell(
            '''\
from datetime import datetime, time, timedelta

import matplotlib.dates as mdates
from matplotlib.ticker import PercentFormatter


def day_axis(ax):
    # One labelled tick per week (Mondays), a small tick per day; a grey band over each day left out.
    ax.xaxis.set_major_locator(mdates.WeekdayLocator(byweekday=mdates.MO))
    ax.xaxis.set_minor_locator(mdates.DayLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    ax.tick_params(axis="x", labelsize=8)
    for day in simulator_days:
        start = datetime.combine(day, time())
        ax.axvspan(start, start + timedelta(days=1), color="lightgrey", alpha=0.6, linewidth=0)


# Each move at the moment it happened (UTC): a line between two days' points is a move within a day.
moves = q("""
    SELECT prompt_id, timezone('UTC', ts) AS at, CAST(timezone('UTC', ts) AS DATE) AS day, to_version
    FROM v_label_history
    WHERE label = 'production' AND action IN ('move', 'rollback') AND to_version IS NOT NULL ORDER BY ts
""")
prompts = daily["prompt_id"].unique().sort().to_list()


def mark_production_moves(ax, prompt_id):
    first, last = daily["day"].min(), daily["day"].max() + timedelta(days=1)
    # The last move of each day: where production stood at the end of it.
    ends = moves.filter(pl.col("prompt_id") == prompt_id).group_by("day").agg(pl.col("at", "to_version").last())
    for day, at, version in ends.iter_rows():
        if first <= day <= last:
            ax.axvline(at, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"production {version.split(':')[1]}", (at, 1.0), xycoords=("data", "axes fraction"),
                        fontsize=7, color="grey", rotation=90, va="top", ha="right")


def per_version(ax, prompt_id, column, percent=True):
    part = daily.filter(pl.col("prompt_id") == prompt_id)
    for version in part["prompt_version"].unique().sort().to_list():
        rows = part.filter(pl.col("prompt_version") == version).sort("day")
        ax.plot(rows["day"].to_list(), rows[column].to_list(), marker="o", label=version.split(":")[1])
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(f"{prompt_id}: {column.replace('_', ' ')} per day", fontsize=10)
    ax.set_ylabel("share of calls (%)" if percent else column, fontsize=8)
    day_axis(ax)
    mark_production_moves(ax, prompt_id)


fig, axes = plt.subplots(len(prompts), 2, figsize=(12, 3.2 * len(prompts)), squeeze=False)
for row, prompt_id in enumerate(prompts):
    per_version(axes[row][0], prompt_id, "success_rate")
    per_version(axes[row][1], prompt_id, "hard_failure_rate")
    axes[row][0].legend(fontsize=8, title="version", title_fontsize=8)
fig.tight_layout()
plt.show()'''
        ),
        new_markdown_cell(
            "## Latency per day\n\n"
            "Solid: median call latency; dashed: p95. Log scale, since a version's tail can be many times "
            "its median."
        ),
        new_code_cell(
            """\
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

fig, axes = plt.subplots(1, len(prompts), figsize=(5 * len(prompts), 3.5), squeeze=False)
for ax, prompt_id in zip(axes[0], prompts):
    part = daily.filter(pl.col("prompt_id") == prompt_id)
    for version in part["prompt_version"].unique().sort().to_list():
        rows = part.filter(pl.col("prompt_version") == version).sort("day")
        days = rows["day"].to_list()
        line, = ax.plot(days, rows["p50_latency_ms"].to_list(), marker="o", label=version.split(":")[1])
        ax.plot(days, rows["p95_latency_ms"].to_list(), marker="o", linestyle="--", color=line.get_color())
    ax.set_title(f"{prompt_id}: latency, p50 (solid) and p95 (dashed)", fontsize=10)
    ax.set_yscale("log")
    # Plain milliseconds (not 2x10^3), dense enough that a range within one decade still has
    # several labelled ticks: the reader compares values, not decades.
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("latency per call (ms, log scale)", fontsize=8)
    day_axis(ax)
    mark_production_moves(ax, prompt_id)
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()"""
        ),
        new_markdown_cell(
            "## Cost per successful call, and agent steps\n\n"
            "Cost per success rises when a version fails more (the same spend buys fewer successes). "
            "Steps per trace shows an agent reaching its answer through more calls."
        ),
        new_code_cell(
            """\
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.5))
for prompt_id in prompts:
    part = daily.filter(pl.col("prompt_id") == prompt_id)
    for version in part["prompt_version"].unique().sort().to_list():
        rows = part.filter((pl.col("prompt_version") == version) & pl.col("cost_per_success_usd").is_not_null())
        if rows.height:
            left.plot(rows["day"].to_list(), (rows["cost_per_success_usd"] * 1000).to_list(), marker="o",
                      label=version)
    rows = part.group_by("day").agg(
        (pl.col("calls").sum() / pl.col("traces").sum()).alias("steps")).sort("day")
    right.plot(rows["day"].to_list(), rows["steps"].to_list(), marker="o", label=prompt_id)
left.set_title("cost per successful call", fontsize=10)
left.set_ylabel("USD per 1,000 successful calls", fontsize=8)
right.set_title("LLM calls per trace (all versions)", fontsize=10)
right.set_ylabel("calls per trace", fontsize=8)
for ax in (left, right):
    day_axis(ax)
    ax.legend(fontsize=7)
fig.tight_layout()
plt.show()"""
        ),
        new_markdown_cell(
            "## What the numbers say\n\nThe newest day, per prompt: each version serving traffic "
            "against the prompt's best day so far."
        ),
        new_code_cell(
            """\
newest = daily["day"].max()
for prompt_id in prompts:
    part = daily.filter(pl.col("prompt_id") == prompt_id)
    today = part.filter(pl.col("day") == newest).sort("calls", descending=True)
    best = part.sort("success_rate", descending=True).row(0, named=True)
    print(f"{prompt_id}: best day {best['day']} ({best['prompt_version']}, success {best['success_rate']:.1%})")
    for r in today.iter_rows(named=True):
        print(f"  {newest} {r['prompt_version']}: {r['calls']} calls, success {r['success_rate']:.1%}, "
              f"hard failures {r['hard_failure_rate']:.1%}, p95 {r['p95_latency_ms']:.0f} ms")"""
        ),
    ]
    return _notebook(cells)


def notebook_02() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# Failure clusters\n\n"
            "Which kinds of failure dominate production, in which workflow and for which intent, how severe "
            "are they, and does the golden dataset already cover them? Data: the view "
            "`v_failures_by_cluster_class` (failures per workflow, failure class and cluster, where the "
            "cluster is the intent of the failing call), and the `failures` table for trends."
        ),
        new_code_cell(SETUP),
        new_code_cell(
            'clusters = q("SELECT * FROM v_failures_by_cluster_class ORDER BY failures DESC")\n'
            "print(f\"{clusters['failures'].sum()} failing calls in {clusters.height} (workflow, class, cluster) groups\")\n"
            'clusters.select("workflow", "failure_class", "cluster", "severity", "failures", "share_of_class", '
            '"in_golden").head(15)'
        ),
        new_markdown_cell("## Failure classes per workflow\n\nSummed over clusters; the colour is the workflow."),
        new_code_cell(
            '''\
by_class = q("""
    SELECT failure_class, workflow, sum(failures)::BIGINT AS failures
    FROM v_failures_by_cluster_class GROUP BY ALL
""")
order = (by_class.group_by("failure_class").agg(pl.col("failures").sum())
         .sort("failures")["failure_class"].to_list())
workflows = by_class["workflow"].unique().sort().to_list()
fig, ax = plt.subplots(figsize=(9, 0.35 * len(order) + 1.5))
left = [0] * len(order)
for workflow in workflows:
    counts = dict(by_class.filter(pl.col("workflow") == workflow).select("failure_class", "failures").iter_rows())
    values = [counts.get(c, 0) for c in order]
    ax.barh(order, values, left=left, label=workflow)
    left = [a + b for a, b in zip(left, values)]
ax.set_xlabel("failing calls")
ax.set_title("failing calls per failure class")
ax.legend()
fig.tight_layout()
plt.show()'''
        ),
        new_markdown_cell(
            "## Class x cluster\n\n"
            "Where within a workflow do failures concentrate? Each cell counts failing calls with that "
            "class and intent."
        ),
        new_code_cell(
            """\
fig, axes = plt.subplots(1, len(workflows), figsize=(5.5 * len(workflows), 5), squeeze=False)
for ax, workflow in zip(axes[0], workflows):
    part = clusters.filter(pl.col("workflow") == workflow)
    classes = part["failure_class"].unique().sort().to_list()
    intents = part.group_by("cluster").agg(pl.col("failures").sum()).sort("failures", descending=True)["cluster"].to_list()
    counts = {(r["failure_class"], r["cluster"]): r["failures"] for r in part.iter_rows(named=True)}
    grid = [[counts.get((c, i), 0) for i in intents] for c in classes]
    ax.imshow(grid, cmap="Reds", aspect="auto")
    ax.set_xticks(range(len(intents)), intents, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    darkest = max((max(row) for row in grid), default=0)
    for y, row in enumerate(grid):
        for x, value in enumerate(row):
            if value:
                # white on the dark cells, black on the light ones: every count stays legible
                colour = "white" if value > 0.55 * darkest else "black"
                ax.text(x, y, value, ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel("cluster (the failing call's intent)", fontsize=8)
    ax.set_ylabel("failure class", fontsize=8)
    ax.set_title(workflow)
fig.tight_layout()
plt.show()"""
        ),
        new_markdown_cell(
            "## Severity and golden-set coverage\n\n"
            "The share of each class's failing calls that are already the source of a case in the newest "
            "golden dataset. A severe class with low coverage is where the next golden version should grow."
        ),
        new_code_cell(
            '''\
coverage = q("""
    SELECT workflow, failure_class, arg_max(severity, failures) AS severity, sum(failures)::BIGINT AS failures,
           sum(in_golden)::BIGINT AS in_golden, sum(in_golden) / sum(failures) AS coverage
    FROM v_failures_by_cluster_class GROUP BY ALL ORDER BY coverage DESC, failures
""")
colours = {"critical": "#b2182b", "high": "#ef8a62", "medium": "#fddbc7", "low": "#d1e5f0"}
labels = [f"{w} / {c}" for w, c in coverage.select("workflow", "failure_class").iter_rows()]
fig, ax = plt.subplots(figsize=(9, 0.3 * len(labels) + 1.5))
ax.barh(labels, coverage["coverage"].to_list(), color=[colours.get(s, "grey") for s in coverage["severity"]])
ax.xaxis.set_major_formatter(PercentFormatter(1.0))
ax.set_xlim(0, 1)
ax.set_title("failing calls covered by the newest golden set (least covered on top)")
ax.tick_params(axis="y", labelsize=7)
from matplotlib.patches import Patch
ax.legend(handles=[Patch(color=c, label=s) for s, c in colours.items()], title="severity", fontsize=7,
          loc="lower right")
fig.tight_layout()
plt.show()
coverage.filter(pl.col("severity").is_in(["critical", "high"]))'''.replace(
                "coverage = q(", PERCENT + "\n\ncoverage = q(", 1
            )
        ),
        new_markdown_cell("## Is a class growing?\n\nDaily failing calls per class, from the `failures` table."),
        new_code_cell(
            '''\
trend = q("""
    SELECT day, failure_class, count(DISTINCT record_key) AS failures FROM failures GROUP BY ALL ORDER BY day
""")
top = (trend.group_by("failure_class").agg(pl.col("failures").sum())
       .sort("failures", descending=True)["failure_class"].head(6).to_list())
fig, ax = plt.subplots(figsize=(9, 3.5))
for failure_class in top:
    rows = trend.filter(pl.col("failure_class") == failure_class)
    ax.plot(rows["day"].to_list(), rows["failures"].to_list(), marker="o", label=failure_class)
ax.set_ylabel("failing calls")
ax.set_title("six most frequent classes per day")
ax.tick_params(axis="x", labelrotation=30, labelsize=8)
ax.set_ylim(bottom=0)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()'''
        ),
        new_markdown_cell(
            "## Top examples\n\n"
            "The three biggest groups of critical or high severity (else the three biggest), with the newest "
            "failing call of each: what the user wrote, what the model answered, and what the detector saw."
        ),
        new_code_cell(
            """\
severe = clusters.filter(pl.col("severity").is_in(["critical", "high"]))
examples = (severe if severe.height else clusters).sort("failures", descending=True).head(3)
for r in examples.iter_rows(named=True):
    print(f"== {r['workflow']} / {r['failure_class']} / {r['cluster']}: {r['failures']} failing calls "
          f"({r['severity']}), {r['in_golden']} in the golden set")
    print(f"   span    {r['example_span_id']}  versions {', '.join(r['prompt_versions'])}")
    print(f"   input   {(r['example_input'] or '')[:200]}")
    print(f"   output  {(r['example_output'] or '')[:200]}")
    print(f"   detail  {r['example_detail']}")
    print()"""
        ),
        new_markdown_cell("Drill into the biggest group: its failing calls with latency and feedback, from `traces`."),
        new_code_cell(
            '''\
first = examples.row(0, named=True)
q("""
    SELECT t.day, t.prompt_version, t.span_id, f.severity, f.detail, t.latency_ms, t.feedback, t.escalated,
           left(t.output, 80) AS output
    FROM failures f JOIN traces t USING (record_key)
    WHERE f.workflow = ? AND f.failure_class = ?
    ORDER BY t.ts DESC LIMIT 10
""", first["workflow"], first["failure_class"])'''
        ),
    ]
    return _notebook(cells)


def notebook_03() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# Gate report deep dive\n\n"
            "One gate report, read closely: each gate's interval against its threshold, the case groups "
            "where candidate and baseline behave differently, accuracy by tag, and latency. Set "
            "`GATE_REPORT_ID` in the environment to pick a report; by default the newest rejected report "
            "(else the newest report). Data: `v_gate_history`, `v_gate_results`, `v_backtest_comparison`, "
            "and the `behaviour_diff` and `backtest_results` tables of the report's run."
        ),
        new_code_cell(SETUP),
        new_code_cell(
            """\
history = q("SELECT * FROM v_gate_history ORDER BY created_at DESC")
chosen = os.environ.get("GATE_REPORT_ID")
if chosen is None:
    rejected = history.filter(pl.col("verdict") == "reject")
    chosen = (rejected if rejected.height else history)["report_id"][0]
report = history.filter(pl.col("report_id") == chosen).row(0, named=True)
print(f"{report['report_id']}: {report['verdict'].upper()}  {report['candidate_version']} vs "
      f"{report['baseline_version']} on {report['dataset_version']} ({report['n_cases']} cases)")
print(report["reason"])
print("failed:", report["failed_gates"], " inconclusive:", report["inconclusive_gates"],
      " then:", report["label_actions"])
history.select("created_at", "candidate_version", "verdict", "failed_gates", "inconclusive_gates")"""
        ),
        new_markdown_cell(
            "## Intervals against thresholds\n\n"
            "Each panel is one gate: the bar is the confidence interval, the dot the estimate, the dashed line "
            "the threshold on the same scale. A gate passes when the whole interval is on the passing side, "
            "fails when it is wholly on the failing side, and is inconclusive when it straddles the line."
        ),
        new_code_cell(
            """\
from matplotlib.ticker import FuncFormatter

gates = q("SELECT * FROM v_gate_results WHERE report_id = ? ORDER BY position", report["report_id"])
colours = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700"}
# One shared axis per kind of interval, with its unit.
axes_for = {
    ("candidate", "rate"): ("candidate's rate (%)", lambda v, _: f"{v:.0%}"),
    ("difference", "rate"): ("candidate - baseline (percentage points)", lambda v, _: f"{v * 100:+.0f} pt"),
    ("ratio", "ratio"): ("candidate / baseline (x the baseline)", lambda v, _: f"x{v:.2f}"),
}
drawn = gates.filter(pl.col("interval_lower").is_not_null() & pl.col("threshold_value").is_not_null())
kinds = {}
for g in drawn.iter_rows(named=True):
    unit = "ratio" if g["interval_of"] == "ratio" else g["unit"]
    label, fmt = axes_for.get((g["interval_of"], unit),
                              (f"candidate - baseline ({g['metric']} points)", lambda v, _: f"{v:+.2f}"))
    kinds.setdefault(label, (fmt, []))[1].append(g)
fig, axes = plt.subplots(len(kinds), 1, figsize=(9, sum(0.55 * len(r) + 1.1 for _, r in kinds.values())),
                         squeeze=False, height_ratios=[len(r) + 1 for _, r in kinds.values()])
for ax, (label, (fmt, rows)) in zip(axes[:, 0], kinds.items()):
    values = [v for g in rows for v in (g["interval_lower"], g["interval_upper"], g["threshold_value"])]
    pad = (max(values) - min(values)) * 0.12 or 0.05
    lo, hi = min(values) - pad, max(values) + pad
    if label.startswith("candidate's rate"):  # a rate lies in [0%, 100%]
        lo, hi = max(lo, -0.01), min(hi, 1.01)
    for y, g in enumerate(rows):
        threshold = g["threshold_value"]
        passes_above = g["rule"].lstrip().startswith(">")
        # The passing side of this gate's threshold, shaded on its own row.
        ax.fill_betweenx([y - 0.4, y + 0.4], threshold, hi if passes_above else lo, color="#dafbe1")
        ax.plot([threshold, threshold], [y - 0.4, y + 0.4], color="black", linestyle="--", linewidth=1.2)
        colour = colours.get(g["outcome"], "grey")
        ax.plot([g["interval_lower"], g["interval_upper"]], [y, y], color=colour, linewidth=7,
                solid_capstyle="butt", alpha=0.6)
        if g["estimate"] is not None:
            ax.plot([g["estimate"]], [y], "o", color=colour)
    ax.set_yticks(range(len(rows)), [f"{g['metric']} ({g['outcome']})" for g in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_formatter(FuncFormatter(fmt))
    ax.set_xlabel(label, fontsize=9)
fig.suptitle("intervals (bars), estimates (dots), thresholds (dashed); green: the passing side", fontsize=10)
fig.tight_layout()
plt.show()
gates.select("metric", "rule", "outcome", "baseline", "candidate", "interval_lower", "interval_upper",
             "threshold_value", "p_value")"""
        ),
        new_markdown_cell(
            "## Behaviour diff by case group\n\n"
            "Regressions: cases the baseline passed and the candidate failed; wins: the reverse. Groups are "
            "case tags (intent, segment, failure class, source), ordered by regressions, then wins; groups "
            "where neither moved are left out."
        ),
        new_code_cell(
            '''\
diff = q("""
    SELECT group_kind || ':' || group_value AS grp, cases, regressions, wins, both_failing, disagreements, examples
    FROM behaviour_diff WHERE run_id = ? AND group_kind <> 'all' AND regressions + wins > 0
    ORDER BY regressions DESC, wins DESC, cases DESC LIMIT 15
""", report["run_id"])
shown = diff.reverse()
fig, ax = plt.subplots(figsize=(9, 0.35 * max(shown.height, 1) + 1.5))
ax.barh(shown["grp"].to_list(), [-r for r in shown["regressions"].to_list()], color="#d73027", label="regressions")
ax.barh(shown["grp"].to_list(), shown["wins"].to_list(), color="#1a9850", label="wins")
ax.axvline(0, color="black", linewidth=0.8)
ax.set_xlabel("cases (regressions to the left, wins to the right)")
ax.set_title(f"behaviour diff by case group ({report['candidate_version']} vs {report['baseline_version']})",
             fontsize=10)
if not shown.height:
    ax.text(0.5, 0.5, "no group of cases moved", transform=ax.transAxes, ha="center")
ax.tick_params(axis="y", labelsize=8)
ax.legend()
fig.tight_layout()
plt.show()
diff.drop("examples")'''
        ),
        new_markdown_cell(
            "Regressions up close: cases the baseline passed and the candidate failed, with each side's answer "
            "(text, or the tool calls it made) and the candidate's failed checks."
        ),
        new_code_cell(
            '''\
regressions = q("""
    WITH answers AS (
        SELECT case_id, role, bool_and(passed) AS passed,
               any_value(coalesce(output, CAST(tool_calls AS VARCHAR))) AS answer,
               any_value(check_details->'failure_classes') AS failure_classes,
               any_value(check_details->'tool_issues'->0->>'detail') AS tool_issue
        FROM backtest_results WHERE run_id = ? AND status <> 'not_run_budget' GROUP BY case_id, role
    )
    SELECT c.case_id, b.answer AS baseline_answer, c.answer AS candidate_answer,
           c.failure_classes AS candidate_failures, c.tool_issue
    FROM answers c JOIN answers b ON b.case_id = c.case_id AND b.role = 'baseline'
    WHERE c.role = 'candidate' AND b.passed AND NOT c.passed
    ORDER BY c.case_id LIMIT 5
""", report["run_id"])
for r in regressions.iter_rows(named=True):
    print(r["case_id"], r["candidate_failures"], r["tool_issue"] or "")
    print(f"   baseline:  {str(r['baseline_answer'])[:160]}")
    print(f"   candidate: {str(r['candidate_answer'])[:160]}")
print(f"{regressions.height} regressions shown")'''
        ),
        new_markdown_cell(
            "## Accuracy by tag\n\n"
            "Task accuracy (the expectation match: route for support_router, tool call for order_agent) per "
            "case tag, candidate beside baseline. For a workflow without expectations (the summarizer), the "
            "pass rate of the contract checks stands in."
        ),
        new_code_cell(
            '''\
by_tag = q("""
    WITH tagged AS (
        SELECT role, coalesce(task_correct, passed) AS correct, task_correct IS NOT NULL AS has_expectation,
               unnest(from_json(tags, '["VARCHAR"]')) AS tag
        FROM backtest_results WHERE run_id = ? AND status <> 'not_run_budget'
    )
    SELECT tag, role, avg(correct::DOUBLE) AS accuracy, count(*) AS n, bool_or(has_expectation) AS task
    FROM tagged WHERE tag NOT LIKE 'case_%' GROUP BY ALL HAVING count(*) >= 5
""", report["run_id"])
wide = (by_tag.pivot(on="role", index="tag", values="accuracy")
        .join(by_tag.group_by("tag").agg(pl.col("n").max()), on="tag")
        .sort("n", descending=True).head(14))
tags = wide["tag"].to_list()
fig, ax = plt.subplots(figsize=(9, 0.4 * len(tags) + 1.5))
positions = list(range(len(tags)))
for offset, role in ((-0.2, "baseline"), (0.2, "candidate")):
    if role in wide.columns:
        bars = ax.barh([p + offset for p in positions], wide[role].fill_null(0).to_list(), height=0.4,
                       label=role, color=ARM_COLOURS[role])
        # the value at each bar's end: a 0% bar is otherwise invisible
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in wide[role].fill_null(0).to_list()], fontsize=7, padding=2)
ax.set_xlim(0, 1.08)
ax.set_yticks(positions, tags, fontsize=8)
ax.invert_yaxis()
ax.xaxis.set_major_formatter(PercentFormatter(1.0))
metric = "task accuracy" if by_tag["task"].any() else "pass rate"
ax.set_xlabel(f"{metric} (% of the tag's cases)")
ax.set_title(f"{metric} by tag ({report['candidate_version']} vs {report['baseline_version']})", fontsize=10)
ax.legend()
fig.tight_layout()
plt.show()
wide'''.replace("by_tag = q(", PERCENT + "\n\nby_tag = q(", 1)
        ),
        new_markdown_cell(
            "## Latency\n\nFresh calls only: replayed baseline answers were timed in production, not on this endpoint."
        ),
        new_code_cell(
            '''\
latency = q("""
    SELECT role, latency_ms FROM backtest_results
    WHERE run_id = ? AND NOT replayed AND latency_ms IS NOT NULL
""", report["run_id"])
import numpy as np
from matplotlib.ticker import PercentFormatter

fig, ax = plt.subplots(figsize=(9, 3.5))
# The same bins for both arms, and each arm's share of its own calls: the arms may have different n.
bins = np.histogram_bin_edges(latency["latency_ms"].to_numpy(), bins=40) if latency.height else 10
for role in ("baseline", "candidate"):
    values = latency.filter(pl.col("role") == role)["latency_ms"]
    if values.len():
        ax.hist(values.to_list(), bins=bins, weights=[1 / values.len()] * values.len(), alpha=0.6,
                label=f"{role} (n={values.len()})", color=ARM_COLOURS[role])
        ax.axvline(values.quantile(0.95), color=ARM_COLOURS[role], linestyle="--", linewidth=1)
ax.yaxis.set_major_formatter(PercentFormatter(1.0))
ax.set_ylabel("share of the arm's calls (%)")
ax.set_xlabel("latency per call (ms); dashed: each arm's p95")
ax.legend()
fig.tight_layout()
plt.show()'''
        ),
        new_markdown_cell(
            "## The other runs of this workflow\n\nThe same comparison for every backtest run of the "
            "workflow, from `v_backtest_comparison`."
        ),
        new_code_cell(
            '''\
q("""
    SELECT candidate_version, baseline_version, finished_at, candidate_pass_rate, baseline_pass_rate,
           candidate_task_accuracy, baseline_task_accuracy, regressions, wins, p95_latency_ratio, gate_verdict
    FROM v_backtest_comparison WHERE workflow = ? ORDER BY finished_at DESC
""", report["workflow"])'''
        ),
    ]
    return _notebook(cells)


def _notebook(cells: list) -> nbformat.NotebookNode:
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


NOTEBOOKS = {
    "01_version_quality_over_time.ipynb": notebook_01,
    "02_failure_clusters.ipynb": notebook_02,
    "03_gate_report_deep_dive.ipynb": notebook_03,
}


def main() -> None:
    for name, build in NOTEBOOKS.items():
        notebook = build()
        nbformat.validate(notebook)
        # Stable cell ids keep regenerated files byte-identical when the sources did not change.
        for index, cell in enumerate(notebook.cells):
            cell["id"] = f"cell-{index:02d}"
        nbformat.write(notebook, HERE / name)
        print(f"wrote notebooks/{name}")


if __name__ == "__main__":
    main()
