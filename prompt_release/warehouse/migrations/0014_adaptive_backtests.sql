-- Adaptive backtests (gates/adaptive.py): a run may stop once every hard gate is
-- decided. The run records how much it saved and why it stopped; gate reports
-- carry it under `evidence`, and v_gate_history shows it.
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS cases_planned INTEGER;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS calls_saved INTEGER;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS stop_reason VARCHAR;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS case_order_seed BIGINT;

COMMENT ON COLUMN backtest_runs.cases_planned IS 'Cases in the whole set (golden + history)';
COMMENT ON COLUMN backtest_runs.calls_saved IS 'Calls not made because an adaptive run stopped early (0 or NULL: the whole set ran)';
COMMENT ON COLUMN backtest_runs.stop_reason IS 'Why an adaptive run stopped before the end of the set (NULL: it did not)';
COMMENT ON COLUMN backtest_runs.case_order_seed IS 'Seed of the random case order an adaptive run followed (NULL: a full run)';

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
       g.candidate_hash, g.baseline_hash, g.html_path,
       (g.report->'evidence'->>'calls_made')::INTEGER AS calls_made,
       (g.report->'evidence'->>'calls_saved')::INTEGER AS calls_saved,
       (g.report->'evidence'->>'cases_planned')::INTEGER AS cases_planned,
       g.report->'evidence'->>'stop_reason' AS stop_reason
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
COMMENT ON COLUMN v_gate_history.calls_made IS 'Model calls the backtest paid for (cached and replayed answers are free)';
COMMENT ON COLUMN v_gate_history.calls_saved IS 'Calls an adaptive backtest did not make because every hard gate was already decided (0: the whole set ran)';
COMMENT ON COLUMN v_gate_history.cases_planned IS 'Cases in the whole set; more than n_cases when an adaptive backtest stopped early';
COMMENT ON COLUMN v_gate_history.stop_reason IS 'Why an adaptive backtest stopped, e.g. json_valid_rate decided FAIL after 48 cases (NULL: the whole set ran)';

