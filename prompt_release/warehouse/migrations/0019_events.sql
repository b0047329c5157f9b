-- Late signals: feedback, escalation, correction and user-outcome events that
-- arrive after the call they are about (a native event line, or an OTLP span
-- event / annotation), one row per event, deduplicated on event_key. The call
-- metrics join them to their call (metrics.py); an event whose call is not in
-- `traces` is kept (the call may land later) and counted by the ingest.
CREATE TABLE IF NOT EXISTS events (
    event_key VARCHAR PRIMARY KEY,
    event_id VARCHAR,
    kind VARCHAR NOT NULL,
    name VARCHAR,
    span_id VARCHAR,
    trace_id VARCHAR,
    ts TIMESTAMPTZ NOT NULL,
    day DATE NOT NULL,
    value DOUBLE,
    label VARCHAR,
    correction JSON,
    explanation VARCHAR,
    annotator VARCHAR,
    attributes JSON,
    source_format VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    source_line BIGINT,
    ingested_at TIMESTAMPTZ NOT NULL
);

COMMENT ON TABLE events IS 'Late signals about earlier calls (feedback, escalation, correction, outcome, evaluation), one row per event; joined to traces by span_id, else trace_id.';
COMMENT ON COLUMN events.event_key IS 'Dedup key: hash of (kind, target, the producer''s event id) when it gave one, else of the whole event; the same event twice is one row.';
COMMENT ON COLUMN events.event_id IS 'The producer''s id for the event (native event_id, OpenInference identifier), when given.';
COMMENT ON COLUMN events.kind IS 'feedback | escalation | correction | outcome | evaluation (any other judged score, kept but not a user-felt metric).';
COMMENT ON COLUMN events.name IS 'The name the producer gave (OTel gen_ai.evaluation.name, OpenInference annotation name), else the kind.';
COMMENT ON COLUMN events.span_id IS 'The call (traces.span_id) the event is about; NULL when it is about a whole trace.';
COMMENT ON COLUMN events.trace_id IS 'The trace the event is about (every call of it when span_id is NULL).';
COMMENT ON COLUMN events.ts IS 'When the event happened: its timestamp, else the landing day folder, else ingest time.';
COMMENT ON COLUMN events.value IS 'feedback: up 1, down -1, numbers as given (< 0 negative); escalation: 1 escalated, 0 not; outcome: 1 success, -1 failure, numbers as given.';
COMMENT ON COLUMN events.label IS 'Categorical value as sent (up, down, resolved, abandoned, ...).';
COMMENT ON COLUMN events.correction IS 'correction events: the corrected answer (JSON text, object or list).';
COMMENT ON COLUMN events.annotator IS 'Who produced it: user, human, llm, code (OpenInference annotator_kind), when given.';
COMMENT ON COLUMN events.attributes IS 'Every other field of the event (nothing is dropped); NULL when none.';
COMMENT ON COLUMN events.source_format IS 'native, otlp_genai (gen_ai.evaluation.result) or openinference (annotations / evaluations attributes).';

ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS events BIGINT DEFAULT 0;
ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS event_duplicates BIGINT DEFAULT 0;
ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS events_unknown_call BIGINT DEFAULT 0;
COMMENT ON COLUMN ingest_files.events IS 'Late-signal events stored from the file (native event lines are also counted in stored; OTLP events sit inside spans).';
COMMENT ON COLUMN ingest_files.event_duplicates IS 'Events already stored (the same event again): counted once.';
COMMENT ON COLUMN ingest_files.events_unknown_call IS 'Events stored from the file whose call (span_id, else trace_id) was not in traces when it was ingested: kept, reported.';

-- The metric definitions now read the newest late signal of each kind per call.
-- @recreate-metric-views
