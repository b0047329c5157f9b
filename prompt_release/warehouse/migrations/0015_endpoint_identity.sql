-- Which endpoint and served model produced a run's answers, at what concurrency, and how long
-- each call took as the server reported it and as the client saw it (queueing included).
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS endpoint VARCHAR;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS candidate_served_model VARCHAR;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS baseline_served_model VARCHAR;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS max_concurrency INTEGER;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS lowest_concurrency INTEGER;
ALTER TABLE backtest_results ADD COLUMN IF NOT EXISTS served_model VARCHAR;
ALTER TABLE backtest_results ADD COLUMN IF NOT EXISTS server_ms DOUBLE;
ALTER TABLE backtest_results ADD COLUMN IF NOT EXISTS client_ms DOUBLE;

COMMENT ON COLUMN backtest_runs.endpoint IS 'Normalised base URL of the model endpoint, without credentials (embedded-simulator for the built-in one); part of the run id';
COMMENT ON COLUMN backtest_runs.candidate_served_model IS 'Model the endpoint reports serving for the candidate''s model (its /models list); part of the run id';
COMMENT ON COLUMN backtest_runs.baseline_served_model IS 'Model the endpoint reports serving for the baseline''s model; replayed baseline rows were served by production instead';
COMMENT ON COLUMN backtest_runs.max_concurrency IS 'Calls in flight at once at the endpoint during the run (the configured ceiling)';
COMMENT ON COLUMN backtest_runs.lowest_concurrency IS 'The in-flight limit after the endpoint''s 429/503 answers halved it (NULL: no call made)';
COMMENT ON COLUMN backtest_results.served_model IS 'The answer''s own model field (NULL for replayed and unanswered rows)';
COMMENT ON COLUMN backtest_results.server_ms IS 'Processing time the server reported (openai-processing-ms, or llama.cpp timings); latency_ms is this when given';
COMMENT ON COLUMN backtest_results.client_ms IS 'Request to answer as the client measured it, queueing included; NULL when served from the cache';
