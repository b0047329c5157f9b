-- "Rollback" names one act: the registry pointing production back at an
-- earlier version. A canary shown worse is aborted (canary label removed,
-- candidate rejected; production never moved), so its stored action and the
-- bounds that lead to it say "abort".
UPDATE canary_decisions SET action = 'abort' WHERE action = 'roll_back';
UPDATE canary_decisions
SET evidence = replace(CAST(evidence AS VARCHAR), '"roll_back_above"', '"abort_above"')::JSON,
    policy = replace(CAST(policy AS VARCHAR), '"failure_rollback_above"', '"failure_abort_above"')::JSON
WHERE contains(CAST(evidence AS VARCHAR), '"roll_back_above"')
   OR contains(CAST(policy AS VARCHAR), '"failure_rollback_above"');

COMMENT ON COLUMN canary_decisions.action IS 'roll_forward | abort (canary ended, candidate rejected) | freeze (not enough traffic yet)';
COMMENT ON COLUMN canary_decisions.gate_report_id IS 'the gate report that started the canary; carried by the roll forward / abort label events';
COMMENT ON COLUMN canary_decisions.evidence IS 'confidence sequences per comparison (hard-failure rate difference, latency ratio) at this look: estimate, interval, abort_above and roll_forward_below bounds, status';
COMMENT ON COLUMN canary_decisions.failing_span_ids IS 'candidate spans with a hard failure (at most 50): the incident cases an aborted canary adds to the golden set';
COMMENT ON VIEW v_canary_status IS 'Per prompt, the newest canary decision (roll_forward, abort, freeze) with the traffic, hard failures and confidence-sequence evidence it was made on.';
COMMENT ON COLUMN v_canary_status.action IS 'roll_forward | abort | freeze (not enough evidence or time yet)';
COMMENT ON COLUMN v_canary_status.evidence IS 'Per comparison (hard_failure_rate, latency_ratio): estimate, always-valid interval, abort and roll-forward bounds, status';
