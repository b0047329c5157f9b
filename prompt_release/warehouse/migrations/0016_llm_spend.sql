-- What each logical run (e.g. a backtest run id) has paid for, durable across kills
-- and resumes, so a budget is per run and not per process. A budgeted attempt is
-- written as a reservation (its worst case) before it is sent; its settlement (the
-- reported usage, or 0 when the endpoint refused it unbilled) replaces that row, in
-- the same transaction as the answer's llm_cache row. An attempt a kill left
-- unsettled keeps counting at its worst case: its answer may have been billed.
CREATE TABLE IF NOT EXISTS llm_spend (
    attempt_id VARCHAR PRIMARY KEY,
    run_key VARCHAR NOT NULL,
    cache_key VARCHAR NOT NULL,
    tokens DOUBLE NOT NULL,
    usd DOUBLE NOT NULL,
    settled BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
);
COMMENT ON TABLE llm_spend IS 'Model spend per logical run and attempt; a budget counts everything the run paid, across resumes';
COMMENT ON COLUMN llm_spend.run_key IS 'The logical run whose budget the attempt counts against (a backtest run id)';
COMMENT ON COLUMN llm_spend.cache_key IS 'The request (llm_cache.cache_key) the attempt was for';
COMMENT ON COLUMN llm_spend.tokens IS 'Input + output tokens: the worst case while unsettled, the reported usage once settled';
COMMENT ON COLUMN llm_spend.usd IS 'Cost in USD priced with the client''s price table (0 without a price)';
COMMENT ON COLUMN llm_spend.settled IS 'false: reserved before the call and never settled (a kill): counted at its worst case';
