-- Failure mining and golden datasets.

-- One row per trace call and failure class, replaced per day by `mine_failures`.
CREATE TABLE IF NOT EXISTS failures (
    span_id VARCHAR NOT NULL,
    trace_id VARCHAR,
    record_key VARCHAR NOT NULL,
    day DATE NOT NULL,
    workflow VARCHAR,
    prompt_version VARCHAR,
    package_hash VARCHAR,
    failure_class VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    severity_rank INTEGER NOT NULL,
    detail VARCHAR,
    detected_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
COMMENT ON COLUMN failures.span_id IS 'span id of the LLM call (traces.span_id; traces.record_key when the span had no id)';
COMMENT ON COLUMN failures.record_key IS 'traces.record_key of the call: join key back to traces';
COMMENT ON COLUMN failures.failure_class IS 'one of invalid_json, schema_violation, enum_violation, unknown_tool, tool_args_invalid, unsafe_tool_call, error, retry, fallback, negative_feedback, escalation, correction, refusal, clarification, latency_outlier, cost_outlier';
COMMENT ON COLUMN failures.severity IS 'critical | high | medium | low (configurable per class)';
COMMENT ON COLUMN failures.severity_rank IS '4 critical, 3 high, 2 medium, 1 low: sort key for severity';
COMMENT ON COLUMN failures.detail IS 'human-readable evidence: failing JSON path, tool and reason, bound exceeded';

-- One row per golden dataset version (the files under datasets/golden/ are the source of truth).
CREATE TABLE IF NOT EXISTS golden_versions (
    version_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    workflow VARCHAR NOT NULL,
    content_hash VARCHAR NOT NULL,
    parent_version VARCHAR,
    case_count INTEGER NOT NULL,
    labelled_count INTEGER NOT NULL,
    added_case_ids VARCHAR[],
    removed_case_ids VARCHAR[],
    counts_by_failure_class JSON,
    counts_by_tag JSON,
    path VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
COMMENT ON COLUMN golden_versions.version_id IS '<dataset>:v<N>, e.g. support_router_golden:v3';
COMMENT ON COLUMN golden_versions.content_hash IS 'sha256 over the canonical JSON of the cases (provenance excluded)';
COMMENT ON COLUMN golden_versions.parent_version IS 'version id this one was built on, NULL for v1';

-- One row per case in each golden dataset version.
CREATE TABLE IF NOT EXISTS golden_cases (
    version_id VARCHAR NOT NULL,
    dataset VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    workflow VARCHAR NOT NULL,
    case_id VARCHAR NOT NULL,
    input JSON NOT NULL,
    expected JSON,
    expected_kind VARCHAR,
    expected_source VARCHAR,
    contract JSON NOT NULL,
    tags JSON NOT NULL,
    failure_classes VARCHAR[],
    intent VARCHAR,
    segment VARCHAR,
    source_span_ids VARCHAR[]
);
COMMENT ON COLUMN golden_cases.case_id IS 'case_ + 16 hex of sha256 over the canonical JSON of the (redacted) input';
COMMENT ON COLUMN golden_cases.expected_kind IS 'exact_json | label | tool_call | refuse | clarify; NULL when only the contract applies';
COMMENT ON COLUMN golden_cases.expected_source IS 'correction | label_file | incident';
COMMENT ON COLUMN golden_cases.source_span_ids IS 'production spans this case was mined from';
