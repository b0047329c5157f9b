-- A break-glass move past a protected label is recorded `forced: true` in the audit
-- trail; the mirror and the history view carry it, so SQL sees which moves skipped
-- the gate. Events mirrored before this column existed read false until the next
-- registry sync, which sets it from the audit trail.
ALTER TABLE label_events ADD COLUMN IF NOT EXISTS forced BOOLEAN DEFAULT false;
UPDATE label_events SET forced = false WHERE forced IS NULL;
COMMENT ON COLUMN label_events.forced IS 'true: a break-glass move (--force --reason) past a protected label, without the passing gate report or approval it needed';

CREATE OR REPLACE VIEW v_label_history AS
SELECT e.ts, e.prompt_id, e.action, e.label, e.from_version, e.to_version,
       CASE
           WHEN e.action IN ('move', 'rollback', 'remove')
               THEN e.label || ': ' || coalesce(e.from_version, '(none)') || ' -> ' || coalesce(e.to_version, '(none)')
           WHEN e.action = 'status' THEN coalesce(e.to_version, '?') || ' -> ' || coalesce(e.status, '?')
           WHEN e.action = 'approve' THEN coalesce(e.to_version, '?') || ' approved by ' || coalesce(e.reviewer, '?')
           ELSE e.action
       END AS change,
       e.percent, e.segments, e.status, e.reviewer, e.actor, e.reason,
       e.gate_report_id, g.verdict AS gate_verdict, e.package_hash, e.event_id, e.forced
FROM label_events e
LEFT JOIN gate_reports g ON g.report_id = e.gate_report_id
ORDER BY e.ts, e.event_id;

COMMENT ON VIEW v_label_history IS 'The audit trail of the registry (label moves, rollbacks, approvals, status changes) with the gate verdict that justified each; as of the last registry sync.';
COMMENT ON COLUMN v_label_history.change IS 'One-line summary, e.g. production: support_router:v1.5.2 -> support_router:v1.6.0';
COMMENT ON COLUMN v_label_history.actor IS 'Who made the change';
COMMENT ON COLUMN v_label_history.reason IS 'Why, as written by the actor or the release bot';
COMMENT ON COLUMN v_label_history.gate_report_id IS 'The gate report that justified the change, when there was one';
COMMENT ON COLUMN v_label_history.gate_verdict IS 'That report''s verdict';
COMMENT ON COLUMN v_label_history.forced IS 'true: a break-glass move past a protected label (--force --reason), made without the passing gate report or approval it needed';
