-- Gate reports: the release decision for one backtest run against one gate spec.
CREATE TABLE IF NOT EXISTS gate_reports (
    report_id VARCHAR PRIMARY KEY,
    run_id VARCHAR NOT NULL,
    workflow VARCHAR NOT NULL,
    candidate_version VARCHAR NOT NULL,
    candidate_hash VARCHAR NOT NULL,
    baseline_version VARCHAR NOT NULL,
    baseline_hash VARCHAR NOT NULL,
    dataset_version VARCHAR,
    verdict VARCHAR NOT NULL,
    exit_code INTEGER NOT NULL,
    reason VARCHAR,
    spec JSON NOT NULL,
    report JSON NOT NULL,
    html_path VARCHAR,
    created_at TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE gate_reports IS 'Every gate decision: verdict, the gates with intervals, and the ids it was made from (report JSON).';
COMMENT ON COLUMN gate_reports.verdict IS 'promote (every hard gate passes) | reject (a hard gate fails) | freeze (a hard gate is inconclusive: not enough evidence)';
COMMENT ON COLUMN gate_reports.exit_code IS 'What `prompt-release gate` exits with: 0 promote, 1 reject, 3 freeze';
COMMENT ON COLUMN gate_reports.report IS 'The full report: gates (metric, baseline, candidate, interval, threshold, outcome, n, method), regressions, provenance';
