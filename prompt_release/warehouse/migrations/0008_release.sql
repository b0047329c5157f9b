-- Release: canary decisions (one row per look at a running canary) and daily
-- metrics per prompt version.
CREATE TABLE IF NOT EXISTS canary_decisions (
    decision_id VARCHAR PRIMARY KEY,
    prompt_id VARCHAR NOT NULL,
    candidate_version VARCHAR NOT NULL,
    candidate_hash VARCHAR,
    production_version VARCHAR NOT NULL,
    production_hash VARCHAR,
    canary_event_id VARCHAR,
    gate_report_id VARCHAR,
    canary_since TIMESTAMPTZ NOT NULL,
    canary_percent DOUBLE,
    segments JSON,
    action VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    candidate_traces BIGINT NOT NULL,
    production_traces BIGINT NOT NULL,
    candidate_hard_failures BIGINT NOT NULL,
    production_hard_failures BIGINT NOT NULL,
    metrics JSON NOT NULL,
    evidence JSON NOT NULL,
    policy JSON NOT NULL,
    failing_span_ids VARCHAR[],
    decided_at TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE canary_decisions IS 'Every look at a running canary: candidate vs production on the same segments since the canary label moved, and the always-valid decision.';
COMMENT ON COLUMN canary_decisions.decision_id IS 'cd_ + hash of (canary label event, versions, trace and failure counts, action): the same evidence gives the same id';
COMMENT ON COLUMN canary_decisions.canary_event_id IS 'label_events.event_id of the move that started the canary';
COMMENT ON COLUMN canary_decisions.gate_report_id IS 'the gate report that started the canary; carried by the roll forward / roll back label events';
COMMENT ON COLUMN canary_decisions.action IS 'roll_forward | roll_back | freeze (not enough traffic yet)';
COMMENT ON COLUMN canary_decisions.metrics IS 'per version: traces, calls, success_rate, hard_failure_rate, unsafe_tool_calls, escalation_rate, negative_feedback_rate, p50/p95/p99_latency_ms, cost_per_success_usd, retries, fallbacks, steps_per_trace, tool_calls_per_trace';
COMMENT ON COLUMN canary_decisions.evidence IS 'confidence sequences per comparison (hard-failure rate difference, latency ratio) at this look';
COMMENT ON COLUMN canary_decisions.failing_span_ids IS 'candidate spans with a hard failure (at most 50): the incident cases a rollback adds to the golden set';

CREATE TABLE IF NOT EXISTS version_metrics (
    day DATE NOT NULL,
    prompt_id VARCHAR,
    prompt_version VARCHAR NOT NULL,
    package_hash VARCHAR,
    calls BIGINT NOT NULL,
    traces BIGINT NOT NULL,
    success_rate DOUBLE,
    hard_failures BIGINT NOT NULL,
    hard_failure_rate DOUBLE,
    unsafe_tool_calls BIGINT NOT NULL,
    error_rate DOUBLE,
    escalation_rate DOUBLE,
    negative_feedback_rate DOUBLE,
    p50_latency_ms DOUBLE,
    p95_latency_ms DOUBLE,
    p99_latency_ms DOUBLE,
    cost_usd DOUBLE,
    cost_per_success_usd DOUBLE,
    input_tokens BIGINT,
    output_tokens BIGINT,
    retries BIGINT,
    fallbacks BIGINT,
    fallback_rate DOUBLE,
    tool_calls BIGINT,
    steps_per_trace DOUBLE,
    tool_calls_per_trace DOUBLE,
    computed_at TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE version_metrics IS 'Daily metrics per prompt version (one row per day and version, replaced when the day is recomputed): the table behind per-version dashboards.';
COMMENT ON COLUMN version_metrics.calls IS 'LLM calls (rows of traces) served by the version that day';
COMMENT ON COLUMN version_metrics.traces IS 'distinct trace ids (requests / conversation turns) among those calls';
COMMENT ON COLUMN version_metrics.success_rate IS 'share of calls with status ok, no hard failure, no escalation and no negative feedback';
COMMENT ON COLUMN version_metrics.hard_failures IS 'calls with status error or a failure of class invalid_json, schema_violation, enum_violation, unknown_tool, tool_args_invalid or unsafe_tool_call (failures table)';
COMMENT ON COLUMN version_metrics.unsafe_tool_calls IS 'calls with an unsafe_tool_call failure (policy-violating or invalid high-risk tool call)';
COMMENT ON COLUMN version_metrics.escalation_rate IS 'share of calls with escalated = true';
COMMENT ON COLUMN version_metrics.negative_feedback_rate IS 'share of calls with feedback < 0';
COMMENT ON COLUMN version_metrics.p95_latency_ms IS '95th percentile of call latency_ms (continuous quantile)';
COMMENT ON COLUMN version_metrics.cost_per_success_usd IS 'total cost_usd of the version that day / successful calls';
COMMENT ON COLUMN version_metrics.retries IS 'sum of traces.retries';
COMMENT ON COLUMN version_metrics.fallbacks IS 'calls with fallback = true';
COMMENT ON COLUMN version_metrics.steps_per_trace IS 'calls per trace: agentic workflows taking extra steps show here';
COMMENT ON COLUMN version_metrics.tool_calls_per_trace IS 'tool calls the model made per trace';
