-- Response cache of the model client: one row per completed call, keyed by
-- sha256 over (package hash, model, messages, parameters, tools,
-- response_format, sample index). Rows are written in small batches while a
-- run goes on, so a killed run resumes without repeating a completed call.
CREATE TABLE IF NOT EXISTS llm_cache (
    cache_key VARCHAR PRIMARY KEY,
    package_hash VARCHAR,
    model VARCHAR NOT NULL,
    sample_index INTEGER NOT NULL,
    request JSON NOT NULL,
    response JSON NOT NULL,
    input_tokens BIGINT,
    output_tokens BIGINT,
    latency_ms DOUBLE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
COMMENT ON COLUMN llm_cache.cache_key IS 'sha256 hex of the canonical JSON in request';
COMMENT ON COLUMN llm_cache.package_hash IS 'prompt package the call was made for (sha256:...)';
COMMENT ON COLUMN llm_cache.sample_index IS 'k-th independent draw of the same input (0-based); sent as the request seed';
COMMENT ON COLUMN llm_cache.request IS 'what was sent: model, messages, parameters, tools, response_format (never the API key)';
COMMENT ON COLUMN llm_cache.response IS 'the chat completion body as the endpoint returned it';
COMMENT ON COLUMN llm_cache.input_tokens IS 'usage.prompt_tokens reported by the endpoint';
COMMENT ON COLUMN llm_cache.output_tokens IS 'usage.completion_tokens reported by the endpoint';
COMMENT ON COLUMN llm_cache.latency_ms IS 'wall time of the successful attempt';
