-- LLM-as-judge: what a pairwise judge said about each result row, and the
-- rubric, judge, calibration self-check and spend of each judged run.
ALTER TABLE backtest_results ADD COLUMN IF NOT EXISTS rubric_hash VARCHAR;
ALTER TABLE backtest_results ADD COLUMN IF NOT EXISTS judge JSON;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS rubric_hash VARCHAR;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS judge_version VARCHAR;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS judge_hash VARCHAR;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS judge_calibration JSON;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS judge_spent_tokens BIGINT;
ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS judge_spent_usd DOUBLE;

COMMENT ON COLUMN backtest_results.judge_score IS 'The LLM judge''s score of this output on the rubric scale (1 worst .. 5 best), from one pairwise judgement of the candidate and baseline outputs of the same case and sample; NULL when the workflow has no rubric or no verdict was possible (one side failed, budget)';
COMMENT ON COLUMN backtest_results.rubric_version IS 'Rubric the judge scored by, <id>:v<semver> (evals/rubrics/<id>.yaml); set on every row of a judged run';
COMMENT ON COLUMN backtest_results.rubric_hash IS 'Content hash (sha256 of canonical JSON) of the rubric file the judge scored by';
COMMENT ON COLUMN backtest_results.judge IS 'The pairwise verdict: status, candidate_position (A|B: where the candidate was shown; for position-bias analysis), preferred (candidate|baseline|tie), preferred_position (A|B|tie as answered), candidate_score, baseline_score, reason, rubric_version, rubric_hash, judge_version, judge_hash, seed, cached, error';
COMMENT ON COLUMN backtest_runs.rubric_version IS 'Rubric of the LLM judge, <id>:v<semver>; NULL when the run was not judged';
COMMENT ON COLUMN backtest_runs.rubric_hash IS 'Content hash of that rubric';
COMMENT ON COLUMN backtest_runs.judge_version IS 'Judge prompt package version (the rubric''s judge at its production label)';
COMMENT ON COLUMN backtest_runs.judge_hash IS 'Package hash of the judge prompt';
COMMENT ON COLUMN backtest_runs.judge_calibration IS 'Calibration self-check: the rubric''s examples judged at the start of the run; {examples, judged, agreed, agreement (share matching expected_preference), results: [...]}';
COMMENT ON COLUMN backtest_runs.judge_spent_tokens IS 'Tokens spent on judge calls (not cached); with spent_tokens, never above the run budget';
COMMENT ON COLUMN backtest_runs.judge_spent_usd IS 'USD spent on judge calls (not cached)';
