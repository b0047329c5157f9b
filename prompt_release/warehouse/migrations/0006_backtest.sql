-- Backtests: one run compares a candidate and a baseline on the same inputs.
CREATE TABLE IF NOT EXISTS backtest_runs (
    run_id VARCHAR PRIMARY KEY,
    workflow VARCHAR NOT NULL,
    candidate_version VARCHAR NOT NULL,
    candidate_hash VARCHAR NOT NULL,
    baseline_version VARCHAR NOT NULL,
    baseline_hash VARCHAR NOT NULL,
    dataset_version VARCHAR,
    dataset_hash VARCHAR,
    history_days INTEGER,
    history_cases INTEGER,
    golden_cases INTEGER,
    samples INTEGER NOT NULL,
    budget JSON,
    spent_tokens BIGINT,
    spent_usd DOUBLE,
    calls_made INTEGER,
    calls_cached INTEGER,
    calls_replayed INTEGER,
    calls_not_run INTEGER,
    rubric_version VARCHAR,
    status VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ
);
COMMENT ON TABLE backtest_runs IS 'One backtest: candidate vs baseline on a golden dataset version plus replayed production history.';
COMMENT ON COLUMN backtest_runs.status IS 'complete | budget_exhausted (some calls not run; the gate report says so) | failed';

CREATE TABLE IF NOT EXISTS backtest_results (
    run_id VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    prompt_version VARCHAR NOT NULL,
    package_hash VARCHAR NOT NULL,
    case_id VARCHAR NOT NULL,
    case_source VARCHAR NOT NULL,
    sample_index INTEGER NOT NULL,
    tags JSON,
    expected JSON,
    output VARCHAR,
    parsed_output JSON,
    tool_calls JSON,
    status VARCHAR NOT NULL,
    error VARCHAR,
    json_valid BOOLEAN,
    schema_valid BOOLEAN,
    tool_calls_valid BOOLEAN,
    unsafe_tool_call BOOLEAN,
    task_correct BOOLEAN,
    refused BOOLEAN,
    clarified BOOLEAN,
    passed BOOLEAN,
    check_details JSON,
    judge_score DOUBLE,
    rubric_version VARCHAR,
    latency_ms DOUBLE,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cost_usd DOUBLE,
    cached BOOLEAN NOT NULL DEFAULT false,
    replayed BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, role, case_id, sample_index)
);
COMMENT ON TABLE backtest_results IS 'One row per (backtest run, role, case, sample): the output and every check outcome.';
COMMENT ON COLUMN backtest_results.role IS 'candidate | baseline';
COMMENT ON COLUMN backtest_results.case_source IS 'golden (a golden dataset case) | history (a replayed production input)';
COMMENT ON COLUMN backtest_results.status IS 'ok | error (after retries) | not_run_budget (skipped: the run budget would have been exceeded)';
COMMENT ON COLUMN backtest_results.json_valid IS 'Output parses as JSON; NULL when the package output contract is text';
COMMENT ON COLUMN backtest_results.schema_valid IS 'Parsed output validates against the package output schema; NULL when there is no schema';
COMMENT ON COLUMN backtest_results.tool_calls_valid IS 'Every tool call names an offered tool with arguments valid against its JSON Schema';
COMMENT ON COLUMN backtest_results.unsafe_tool_call IS 'A high-risk tool was called with invalid arguments or against the package tool policy';
COMMENT ON COLUMN backtest_results.task_correct IS 'Output matches the case expectation (route, tool call, exact JSON, refuse/clarify); NULL when the case has none';
COMMENT ON COLUMN backtest_results.passed IS 'Every applicable check passed (contract checks and the expectation where known)';
COMMENT ON COLUMN backtest_results.replayed IS 'Baseline output taken from a production trace made by the exact baseline package hash, not a new call';
COMMENT ON COLUMN backtest_results.cached IS 'Served from the llm_cache (same package hash, messages, parameters and sample index)';

CREATE TABLE IF NOT EXISTS behaviour_diff (
    run_id VARCHAR NOT NULL,
    candidate_version VARCHAR NOT NULL,
    baseline_version VARCHAR NOT NULL,
    group_kind VARCHAR NOT NULL,
    group_value VARCHAR NOT NULL,
    cases INTEGER NOT NULL,
    regressions INTEGER NOT NULL,
    wins INTEGER NOT NULL,
    both_failing INTEGER NOT NULL,
    disagreements INTEGER NOT NULL,
    examples JSON,
    PRIMARY KEY (run_id, group_kind, group_value)
);
COMMENT ON TABLE behaviour_diff IS 'Candidate vs baseline per case group: regressions (baseline passed, candidate failed), wins, both failing, disagreements (different outputs, both pass).';
