-- A rerun that reproduces a stored run's results exactly (a fully cached nightly
-- rerun, say) rewrites only its run record: the results' hash tells.
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS results_hash VARCHAR;

COMMENT ON COLUMN backtest_runs.results_hash IS 'Hash of the run''s backtest_results rows (every column but cached); a rerun with the same run_id and the same hash keeps the stored rows and rewrites only this record';
COMMENT ON COLUMN backtest_results.cached IS 'Served from the llm_cache (same package hash, messages, parameters and sample index) when this row was stored; a rerun that reproduces the same results keeps the rows of the run that stored them (see backtest_runs.results_hash and calls_cached)';
