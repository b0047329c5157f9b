-- Traces: one row per LLM call, whatever format it arrived in (native JSONL,
-- OTLP with OpenTelemetry GenAI conventions, OTLP with OpenInference).
-- Lines that cannot be ingested go to ingest_rejects; per-file accounting to ingest_files.
CREATE TABLE IF NOT EXISTS traces (
    span_id VARCHAR,
    trace_id VARCHAR,
    parent_span_id VARCHAR,
    ts TIMESTAMPTZ,
    day DATE,
    ts_source VARCHAR,
    workflow VARCHAR,
    prompt_id VARCHAR,
    prompt_version VARCHAR,
    package_hash VARCHAR,
    model VARCHAR,
    input_messages JSON,
    variables JSON,
    output VARCHAR,
    tool_calls JSON,
    finish_reason VARCHAR,
    status VARCHAR,
    error_type VARCHAR,
    latency_ms DOUBLE,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cost_usd DOUBLE,
    session_id VARCHAR,
    user_id VARCHAR,
    segment JSON,
    feedback DOUBLE,
    escalated BOOLEAN,
    correction JSON,
    retries INTEGER,
    fallback BOOLEAN,
    attributes JSON,
    source_format VARCHAR,
    source_file VARCHAR,
    source_line BIGINT,
    record_key VARCHAR NOT NULL UNIQUE,
    ingested_at TIMESTAMPTZ
);

COMMENT ON TABLE traces IS 'One row per LLM call from production traces (native JSONL, OTLP GenAI semconv, OpenInference).';
COMMENT ON COLUMN traces.span_id IS 'Span id of the LLM call (native span_id, or OTLP spanId as hex); NULL when the record had none.';
COMMENT ON COLUMN traces.trace_id IS 'Trace id grouping the calls of one request or conversation turn (OTLP traceId as hex).';
COMMENT ON COLUMN traces.parent_span_id IS 'Span id of the parent span (agent, workflow or tool span) if any.';
COMMENT ON COLUMN traces.ts IS 'When the call started: record timestamp, else the landing day folder (midnight UTC), else ingest time; see ts_source.';
COMMENT ON COLUMN traces.day IS 'UTC calendar day of ts; the daily partition key.';
COMMENT ON COLUMN traces.ts_source IS 'Where ts came from: record (the record carried it), day_folder (the <YYYY-MM-DD> folder of the file), ingest_time.';
COMMENT ON COLUMN traces.workflow IS 'Application workflow the call belongs to: explicit workflow field/attribute (own span or nearest ancestor), else the prompt id.';
COMMENT ON COLUMN traces.prompt_id IS 'Prompt id part of prompt_version (e.g. support_router); NULL when the prompt version is unknown.';
COMMENT ON COLUMN traces.prompt_version IS 'Full prompt version id <prompt_id>:v<semver> (e.g. support_router:v1.6.0); NULL when the trace did not identify it.';
COMMENT ON COLUMN traces.package_hash IS 'sha256:<hex> content hash of the prompt package that served the call, when the app logged it.';
COMMENT ON COLUMN traces.model IS 'Model name: native model, OTLP gen_ai.response.model else gen_ai.request.model, OpenInference llm.model_name.';
COMMENT ON COLUMN traces.input_messages IS 'JSON list of input messages {role, content, ...} as sent to the model (system instructions first when given apart).';
COMMENT ON COLUMN traces.variables IS 'JSON object of the prompt template variables the app rendered, when logged.';
COMMENT ON COLUMN traces.output IS 'Model output text; JSON outputs are stored as their JSON text.';
COMMENT ON COLUMN traces.tool_calls IS 'JSON list of tool calls the model made in its output: {name, arguments}; arguments is an object when it parsed, else the raw string.';
COMMENT ON COLUMN traces.finish_reason IS 'Why generation stopped (stop, length, tool_calls, ...); first reason when several.';
COMMENT ON COLUMN traces.status IS 'ok or error. OTLP: error when the span status code is 2 (ERROR), whatever else it says.';
COMMENT ON COLUMN traces.error_type IS 'Error class or message when status is error (native error field, OTLP error.type / exception.type).';
COMMENT ON COLUMN traces.latency_ms IS 'Call latency in milliseconds (native latency_ms, OTLP end - start time).';
COMMENT ON COLUMN traces.input_tokens IS 'Prompt tokens billed for the call.';
COMMENT ON COLUMN traces.output_tokens IS 'Completion tokens billed for the call.';
COMMENT ON COLUMN traces.cost_usd IS 'Cost of the call in US dollars, when logged.';
COMMENT ON COLUMN traces.session_id IS 'Conversation/session id (native session_id, gen_ai.conversation.id, OpenInference session.id).';
COMMENT ON COLUMN traces.user_id IS 'End-user id (native user_id, OpenInference user.id, OTLP user.id / enduser.id).';
COMMENT ON COLUMN traces.segment IS 'JSON object of segment attributes (tier, locale, ...) used to slice metrics.';
COMMENT ON COLUMN traces.feedback IS 'User feedback: up -> 1, down -> -1, numbers as given; NULL when none.';
COMMENT ON COLUMN traces.escalated IS 'True when the conversation was handed to a human.';
COMMENT ON COLUMN traces.correction IS 'JSON of the corrected answer a human or the user supplied, when any.';
COMMENT ON COLUMN traces.retries IS 'How many times the app retried this call.';
COMMENT ON COLUMN traces.fallback IS 'True when the app fell back to another prompt version or model.';
COMMENT ON COLUMN traces.attributes IS 'JSON object of every other field/attribute of the record (nothing is dropped); NULL when none.';
COMMENT ON COLUMN traces.source_format IS 'native, otlp_genai or openinference (a span carrying both OTLP conventions is otlp_genai).';
COMMENT ON COLUMN traces.source_file IS 'Absolute path of the file the row was ingested from.';
COMMENT ON COLUMN traces.source_line IS '1-based line number in source_file (for OTLP: the line of the export request holding the span).';
COMMENT ON COLUMN traces.record_key IS 'Dedup key: span_id when present (OTLP: trace_id/span_id), else sha256 of the record''s minified JSON text; unique.';
COMMENT ON COLUMN traces.ingested_at IS 'When the row was ingested.';

CREATE TABLE IF NOT EXISTS ingest_rejects (
    source_file VARCHAR NOT NULL,
    line_number BIGINT,
    reason VARCHAR NOT NULL,
    field VARCHAR,
    raw_line VARCHAR,
    raw_length BIGINT,
    raw_sha256 VARCHAR,
    ingested_at TIMESTAMPTZ NOT NULL
);

COMMENT ON TABLE ingest_rejects IS 'Input lines (or OTLP spans) that could not be ingested, with the reason; nothing is dropped silently.';
COMMENT ON COLUMN ingest_rejects.source_file IS 'Absolute path of the file.';
COMMENT ON COLUMN ingest_rejects.line_number IS '1-based line number; NULL for a whole-file problem (e.g. a truncated gzip stream).';
COMMENT ON COLUMN ingest_rejects.reason IS 'Why the line was rejected, naming the field when one field was at fault.';
COMMENT ON COLUMN ingest_rejects.field IS 'The offending field (e.g. trace_id, latency_ms), when the reject is about one field.';
COMMENT ON COLUMN ingest_rejects.raw_line IS 'The raw line as text (invalid UTF-8 replaced by U+FFFD), truncated past 64 KiB.';
COMMENT ON COLUMN ingest_rejects.raw_length IS 'Length of the raw line in bytes.';
COMMENT ON COLUMN ingest_rejects.raw_sha256 IS 'sha256 hex of the raw line bytes, to find it again whatever the truncation.';
COMMENT ON COLUMN ingest_rejects.ingested_at IS 'When the ingest ran.';

CREATE TABLE IF NOT EXISTS ingest_files (
    source_file VARCHAR NOT NULL,
    format VARCHAR NOT NULL,
    lines_read BIGINT NOT NULL,
    blank_lines BIGINT NOT NULL,
    records BIGINT NOT NULL,
    stored BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    rejected BIGINT NOT NULL,
    non_call_spans BIGINT NOT NULL,
    prompt_version_missing BIGINT NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL
);

COMMENT ON TABLE ingest_files IS 'Per-file accounting of every ingest run: records = stored + duplicates + rejected + non_call_spans.';
COMMENT ON COLUMN ingest_files.format IS 'native or otlp (as detected or forced).';
COMMENT ON COLUMN ingest_files.lines_read IS 'Non-blank lines read (plus 1 when the file was cut short, for the unreadable tail).';
COMMENT ON COLUMN ingest_files.blank_lines IS 'Blank lines, counted apart and otherwise ignored.';
COMMENT ON COLUMN ingest_files.records IS 'Units accounted: native = lines; OTLP = spans, plus each line that held no readable export request.';
COMMENT ON COLUMN ingest_files.non_call_spans IS 'OTLP spans that are not LLM calls (agent, tool, workflow, embedding spans): context, not rows.';
COMMENT ON COLUMN ingest_files.prompt_version_missing IS 'Stored rows whose prompt version could not be identified (prompt_version NULL).';
