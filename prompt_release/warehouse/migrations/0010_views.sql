-- Analyst views: the documented, stable way to read the warehouse (docs/analysts.md).
-- Views compute from the fact tables at query time, so they are never stale and
-- hold no data of their own. Every view names its columns (no SELECT *), so a
-- later migration that adds a table column does not change a view's shape.

-- v_version_daily (per prompt version and day) is created by code from the one
-- definition of the version metrics, prompt_release/warehouse/metrics.py, in
-- migration 0012 (and again by any later migration that changes a metric).

-- Failures by class and cluster. Mining clusters near-duplicate inputs in
-- Python (rapidfuzz) and does not store cluster ids, so the cluster here is the
-- intent stratum the golden-set selection uses, derived from the call the way
-- the golden builder tags cases: attributes.intent, variables.intent, the
-- corrected route, the output route, the first tool called, else 'none'.
CREATE OR REPLACE VIEW v_failures_by_cluster_class AS
WITH newest_golden AS (
    SELECT workflow, max(version) AS version FROM golden_versions GROUP BY workflow
),
golden_spans AS (
    SELECT c.workflow, unnest(c.source_span_ids) AS span_id, c.case_id, c.version_id
    FROM golden_cases c JOIN newest_golden n ON n.workflow = c.workflow AND n.version = c.version
),
failing AS (
    SELECT f.workflow, f.failure_class, f.severity, f.severity_rank, f.record_key, f.span_id, f.day,
           f.prompt_version, f.detail, t.ts, t.output, t.tool_calls,
           list_filter(CAST(t.input_messages AS JSON[]), lambda m: m->>'role' = 'user')[-1]->>'content'
               AS last_user_message,
           coalesce(
               t.attributes->>'intent', t.variables->>'intent', t.correction->>'route',
               CASE WHEN json_valid(t.output) THEN t.output::JSON->>'route' END,
               t.tool_calls->0->>'name', 'none'
           ) AS cluster
    FROM failures f JOIN traces t ON t.record_key = f.record_key
),
linked AS (
    SELECT failing.*, g.case_id AS golden_case_id
    FROM failing LEFT JOIN golden_spans g ON g.workflow = failing.workflow AND g.span_id = failing.span_id
)
SELECT workflow, failure_class, cluster,
       arg_max(severity, severity_rank) AS severity,
       count(DISTINCT record_key) AS failures,
       count(DISTINCT record_key)::DOUBLE
           / sum(count(DISTINCT record_key)) OVER (PARTITION BY workflow, failure_class) AS share_of_class,
       list_sort(list_distinct(list(prompt_version) FILTER (WHERE prompt_version IS NOT NULL))) AS prompt_versions,
       min(day) AS first_day,
       max(day) AS last_day,
       count(DISTINCT record_key) FILTER (WHERE golden_case_id IS NOT NULL) AS in_golden,
       list_sort(list_distinct(list(golden_case_id) FILTER (WHERE golden_case_id IS NOT NULL))) AS golden_case_ids,
       arg_max(span_id, ts) AS example_span_id,
       left(arg_max(last_user_message, ts), 500) AS example_input,
       left(arg_max(coalesce(output, CAST(tool_calls AS VARCHAR)), ts), 500) AS example_output,
       arg_max(detail, ts) AS example_detail
FROM linked
GROUP BY workflow, failure_class, cluster;

COMMENT ON VIEW v_failures_by_cluster_class IS 'Mined failures per workflow, failure class and cluster (the intent stratum of the call), with golden-set coverage and the newest example.';
COMMENT ON COLUMN v_failures_by_cluster_class.failure_class IS 'Failure class from the failures table (invalid_json, unsafe_tool_call, negative_feedback, ...)';
COMMENT ON COLUMN v_failures_by_cluster_class.cluster IS 'Intent of the failing call as the golden builder tags it: attributes.intent, variables.intent, corrected route, output route, first tool called, else none';
COMMENT ON COLUMN v_failures_by_cluster_class.severity IS 'Most severe severity among the failures (critical, high, medium, low)';
COMMENT ON COLUMN v_failures_by_cluster_class.failures IS 'Distinct failing calls (traces.record_key) of this class in this cluster';
COMMENT ON COLUMN v_failures_by_cluster_class.share_of_class IS 'failures / all failures of the class in the workflow';
COMMENT ON COLUMN v_failures_by_cluster_class.prompt_versions IS 'Prompt versions that served the failing calls';
COMMENT ON COLUMN v_failures_by_cluster_class.in_golden IS 'Failing calls that are a source span of a case in the newest golden dataset version of the workflow';
COMMENT ON COLUMN v_failures_by_cluster_class.golden_case_ids IS 'Those golden case ids (newest golden version)';
COMMENT ON COLUMN v_failures_by_cluster_class.example_span_id IS 'Span id of the newest failing call';
COMMENT ON COLUMN v_failures_by_cluster_class.example_input IS 'Last user message of that call (raw, unredacted; first 500 characters)';
COMMENT ON COLUMN v_failures_by_cluster_class.example_output IS 'Its output text, or its tool calls as JSON (first 500 characters)';
COMMENT ON COLUMN v_failures_by_cluster_class.example_detail IS 'Detector evidence for that call (failing JSON path, tool and reason, bound exceeded)';

-- One row per backtest run: both prompts side by side on the same cases.
CREATE OR REPLACE VIEW v_backtest_comparison AS
WITH per_role AS (
    SELECT run_id, role,
           count(*) AS results,
           avg(passed::DOUBLE) AS pass_rate,
           avg(json_valid::DOUBLE) AS json_valid_rate,
           avg(schema_valid::DOUBLE) AS schema_valid_rate,
           avg(tool_calls_valid::DOUBLE) AS tool_calls_valid_rate,
           avg(unsafe_tool_call::DOUBLE) AS unsafe_tool_call_rate,
           avg(refused::DOUBLE) AS refusal_rate,
           avg((status = 'error')::DOUBLE) AS error_rate,
           avg(task_correct::DOUBLE) AS task_accuracy,
           count(task_correct) AS task_cases,
           avg(judge_score) AS judge_score,
           -- Replayed baseline rows were timed in production, not on this endpoint: fresh calls only.
           quantile_cont(latency_ms, 0.95) FILTER (WHERE NOT replayed) AS p95_latency_ms,
           sum(cost_usd) FILTER (WHERE NOT replayed) AS cost_usd
    FROM backtest_results
    WHERE status <> 'not_run_budget'
    GROUP BY run_id, role
),
diff AS (
    SELECT run_id, cases, regressions, wins, both_failing, disagreements
    FROM behaviour_diff WHERE group_kind = 'all'
),
latest_gate AS (
    SELECT run_id, arg_max(report_id, created_at) AS report_id, arg_max(verdict, created_at) AS verdict
    FROM gate_reports GROUP BY run_id
)
SELECT r.run_id, r.workflow, r.candidate_version, r.baseline_version, r.dataset_version, r.status,
       r.started_at, r.finished_at, r.golden_cases, r.history_cases, r.samples,
       c.results AS candidate_results, b.results AS baseline_results,
       c.pass_rate AS candidate_pass_rate, b.pass_rate AS baseline_pass_rate,
       c.json_valid_rate AS candidate_json_valid_rate, b.json_valid_rate AS baseline_json_valid_rate,
       c.schema_valid_rate AS candidate_schema_valid_rate, b.schema_valid_rate AS baseline_schema_valid_rate,
       c.tool_calls_valid_rate AS candidate_tool_calls_valid_rate,
       b.tool_calls_valid_rate AS baseline_tool_calls_valid_rate,
       c.unsafe_tool_call_rate AS candidate_unsafe_tool_call_rate,
       b.unsafe_tool_call_rate AS baseline_unsafe_tool_call_rate,
       c.refusal_rate AS candidate_refusal_rate, b.refusal_rate AS baseline_refusal_rate,
       c.error_rate AS candidate_error_rate, b.error_rate AS baseline_error_rate,
       c.task_accuracy AS candidate_task_accuracy, b.task_accuracy AS baseline_task_accuracy,
       c.task_accuracy - b.task_accuracy AS task_accuracy_delta,
       greatest(c.task_cases, b.task_cases) AS task_cases,
       c.judge_score AS candidate_judge_score, b.judge_score AS baseline_judge_score,
       c.p95_latency_ms AS candidate_p95_latency_ms, b.p95_latency_ms AS baseline_p95_latency_ms,
       c.p95_latency_ms / nullif(b.p95_latency_ms, 0) AS p95_latency_ratio,
       c.cost_usd AS candidate_cost_usd, b.cost_usd AS baseline_cost_usd,
       d.cases AS diff_cases, d.regressions, d.wins, d.both_failing, d.disagreements,
       g.report_id AS gate_report_id, g.verdict AS gate_verdict
FROM backtest_runs r
LEFT JOIN per_role c ON c.run_id = r.run_id AND c.role = 'candidate'
LEFT JOIN per_role b ON b.run_id = r.run_id AND b.role = 'baseline'
LEFT JOIN diff d ON d.run_id = r.run_id
LEFT JOIN latest_gate g ON g.run_id = r.run_id;

COMMENT ON VIEW v_backtest_comparison IS 'One row per backtest run: candidate vs baseline rates per check, task accuracy, p95 latency and cost, the behaviour diff totals and the latest gate verdict.';
COMMENT ON COLUMN v_backtest_comparison.candidate_pass_rate IS 'Share of candidate results (case x sample, budget-skipped rows left out) passing every applicable check; baseline_ alike';
COMMENT ON COLUMN v_backtest_comparison.candidate_json_valid_rate IS 'Share of candidate outputs that parse as JSON (NULL for text-output prompts); the other *_rate columns alike per check';
COMMENT ON COLUMN v_backtest_comparison.candidate_unsafe_tool_call_rate IS 'Share of candidate results with a high-risk tool call that breaks the tool policy or its schema';
COMMENT ON COLUMN v_backtest_comparison.candidate_task_accuracy IS 'Share of candidate results matching the case expectation (handoff_accuracy / tool_accuracy), over task_cases results with an expectation';
COMMENT ON COLUMN v_backtest_comparison.task_accuracy_delta IS 'candidate_task_accuracy - baseline_task_accuracy';
COMMENT ON COLUMN v_backtest_comparison.candidate_p95_latency_ms IS '95th percentile latency of fresh candidate calls (replayed production outputs left out)';
COMMENT ON COLUMN v_backtest_comparison.p95_latency_ratio IS 'candidate_p95_latency_ms / baseline_p95_latency_ms';
COMMENT ON COLUMN v_backtest_comparison.regressions IS 'Cases the baseline passed and the candidate failed (behaviour_diff, group all)';
COMMENT ON COLUMN v_backtest_comparison.wins IS 'Cases the baseline failed and the candidate passed';
COMMENT ON COLUMN v_backtest_comparison.disagreements IS 'Cases both pass with different outputs';
COMMENT ON COLUMN v_backtest_comparison.gate_verdict IS 'Verdict of the newest gate report made from this run (promote, reject, freeze); NULL when none';

-- Every gate report, the lists pulled out of its JSON.
CREATE OR REPLACE VIEW v_gate_history AS
SELECT g.report_id, g.created_at, g.workflow, g.candidate_version, g.baseline_version, g.dataset_version,
       g.run_id, g.verdict, g.exit_code, g.reason,
       (g.report->>'n_cases')::INTEGER AS n_cases,
       (g.report->>'confidence')::DOUBLE AS confidence,
       json_array_length(g.report->'gates')::INTEGER AS gates,
       coalesce(from_json(g.report->'failed_gates', '["VARCHAR"]'), []) AS failed_gates,
       coalesce(from_json(g.report->'inconclusive_gates', '["VARCHAR"]'), []) AS inconclusive_gates,
       coalesce(from_json(g.report->'soft_warnings', '["VARCHAR"]'), []) AS soft_warnings,
       (g.report->'freeze'->>'cases_needed')::INTEGER AS cases_needed,
       coalesce(e.label_actions, []) AS label_actions,
       g.candidate_hash, g.baseline_hash, g.html_path
FROM gate_reports g
LEFT JOIN (
    SELECT gate_report_id,
           list(action || coalesce(' ' || label, '') || coalesce(' ' || status, '') ORDER BY ts) AS label_actions
    FROM label_events WHERE gate_report_id IS NOT NULL GROUP BY gate_report_id
) e ON e.gate_report_id = g.report_id;

COMMENT ON VIEW v_gate_history IS 'Every gate report: when, candidate vs baseline on which dataset, the verdict, the failed and inconclusive gates, and what the release did with it.';
COMMENT ON COLUMN v_gate_history.verdict IS 'promote | reject | freeze';
COMMENT ON COLUMN v_gate_history.n_cases IS 'Paired cases the decision was made on';
COMMENT ON COLUMN v_gate_history.gates IS 'Number of gates evaluated';
COMMENT ON COLUMN v_gate_history.failed_gates IS 'Hard gates whose interval lies on the failing side of the threshold';
COMMENT ON COLUMN v_gate_history.inconclusive_gates IS 'Hard gates whose interval straddles the threshold (the reason for a freeze)';
COMMENT ON COLUMN v_gate_history.soft_warnings IS 'Soft gates that did not pass (reported, not blocking)';
COMMENT ON COLUMN v_gate_history.cases_needed IS 'For a freeze: about how many paired cases would decide every inconclusive gate';
COMMENT ON COLUMN v_gate_history.label_actions IS 'Label events citing this report, in order (e.g. move staging, move canary, status rejected)';
COMMENT ON COLUMN v_gate_history.html_path IS 'The standalone HTML report';

-- One row per gate of every report: the interval against the threshold.
CREATE OR REPLACE VIEW v_gate_results AS
WITH gates AS (
    SELECT report_id, created_at, candidate_version, baseline_version, verdict,
           unnest(CAST(report->'gates' AS JSON[])) AS gate, generate_subscripts(CAST(report->'gates' AS JSON[]), 1) AS position
    FROM gate_reports
)
SELECT report_id, created_at, candidate_version, baseline_version, verdict, position,
       gate->>'metric' AS metric, gate->>'severity' AS severity, gate->>'rule' AS rule,
       gate->>'outcome' AS outcome, (gate->>'baseline')::DOUBLE AS baseline, (gate->>'candidate')::DOUBLE AS candidate,
       (gate->>'estimate')::DOUBLE AS estimate, gate->>'interval_of' AS interval_of,
       (gate->'interval'->>0)::DOUBLE AS interval_lower, (gate->'interval'->>1)::DOUBLE AS interval_upper,
       (gate->>'threshold_value')::DOUBLE AS threshold_value, gate->>'unit' AS unit, (gate->>'n')::INTEGER AS n,
       gate->>'method' AS method, (gate->>'p_value')::DOUBLE AS p_value, gate->>'reason' AS reason
FROM gates;

COMMENT ON VIEW v_gate_results IS 'One row per gate per gate report: baseline, candidate, the interval and the threshold it was compared with, and the outcome.';
COMMENT ON COLUMN v_gate_results.outcome IS 'pass | fail | inconclusive (the interval straddles the threshold)';
COMMENT ON COLUMN v_gate_results.interval_of IS 'What the interval is about: candidate (its rate), difference (candidate - baseline) or ratio (candidate / baseline)';
COMMENT ON COLUMN v_gate_results.threshold_value IS 'The threshold on the same scale as the interval';
COMMENT ON COLUMN v_gate_results.n IS 'Cases (or fresh calls, for latency) the interval was computed on';

-- Every label move, approval and status change, newest last.
CREATE OR REPLACE VIEW v_label_history AS
SELECT e.ts, e.prompt_id, e.action, e.label, e.from_version, e.to_version,
       CASE
           WHEN e.action IN ('move', 'rollback', 'remove')
               THEN e.label || ': ' || coalesce(e.from_version, '(none)') || ' -> ' || coalesce(e.to_version, '(none)')
           WHEN e.action = 'status' THEN coalesce(e.to_version, '?') || ' -> ' || coalesce(e.status, '?')
           WHEN e.action = 'approve' THEN coalesce(e.to_version, '?') || ' approved by ' || coalesce(e.reviewer, '?')
           ELSE e.action
       END AS change,
       e.percent, e.segments, e.status, e.reviewer, e.actor, e.reason,
       e.gate_report_id, g.verdict AS gate_verdict, e.package_hash, e.event_id
FROM label_events e
LEFT JOIN gate_reports g ON g.report_id = e.gate_report_id
ORDER BY e.ts, e.event_id;

COMMENT ON VIEW v_label_history IS 'The audit trail of the registry (label moves, rollbacks, approvals, status changes) with the gate verdict that justified each; as of the last registry sync.';
COMMENT ON COLUMN v_label_history.change IS 'One-line summary, e.g. production: support_router:v1.5.2 -> support_router:v1.6.0';
COMMENT ON COLUMN v_label_history.actor IS 'Who made the change';
COMMENT ON COLUMN v_label_history.reason IS 'Why, as written by the actor or the release bot';
COMMENT ON COLUMN v_label_history.gate_report_id IS 'The gate report that justified the change, when there was one';
COMMENT ON COLUMN v_label_history.gate_verdict IS 'That report''s verdict';

-- The newest look at each prompt's canary, with its evidence.
CREATE OR REPLACE VIEW v_canary_status AS
WITH ranked AS (
    SELECT *, row_number() OVER (PARTITION BY prompt_id ORDER BY decided_at DESC, decision_id) AS newest,
           count(*) OVER (PARTITION BY prompt_id, canary_event_id) AS looks
    FROM canary_decisions
)
SELECT prompt_id, decided_at, candidate_version, production_version, canary_percent, canary_since, segments,
       action, reason, looks,
       candidate_traces, production_traces, candidate_hard_failures, production_hard_failures,
       candidate_hard_failures / nullif(candidate_traces, 0)::DOUBLE AS candidate_hard_failure_rate,
       production_hard_failures / nullif(production_traces, 0)::DOUBLE AS production_hard_failure_rate,
       (metrics->'versions'->candidate_version->>'p95_latency_ms')::DOUBLE AS candidate_p95_latency_ms,
       (metrics->'versions'->production_version->>'p95_latency_ms')::DOUBLE AS production_p95_latency_ms,
       evidence, metrics, failing_span_ids, gate_report_id, canary_event_id, decision_id
FROM ranked WHERE newest = 1;

COMMENT ON VIEW v_canary_status IS 'Per prompt, the newest canary decision (roll_forward, roll_back, freeze) with the traffic, hard failures and confidence-sequence evidence it was made on.';
COMMENT ON COLUMN v_canary_status.action IS 'roll_forward | roll_back | freeze (not enough evidence or time yet)';
COMMENT ON COLUMN v_canary_status.looks IS 'Decisions recorded for this canary so far (the sensor looks repeatedly; the intervals stay valid)';
COMMENT ON COLUMN v_canary_status.candidate_hard_failure_rate IS 'Candidate traces with a hard failure / candidate traces since the canary started';
COMMENT ON COLUMN v_canary_status.evidence IS 'Per comparison (hard_failure_rate, latency_ratio): estimate, always-valid interval, roll-back and roll-forward bounds, status';
COMMENT ON COLUMN v_canary_status.metrics IS 'Per version: traces, success and hard-failure rates, latency percentiles, cost per success, ...';
COMMENT ON COLUMN v_canary_status.failing_span_ids IS 'Candidate spans with a hard failure (at most 50)';
