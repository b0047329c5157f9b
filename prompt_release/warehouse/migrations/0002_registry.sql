-- The prompt registry mirrored for analysts: one row per prompt version
-- (replaced on every sync) and the append-only audit trail of label moves.
CREATE TABLE IF NOT EXISTS prompt_versions (
    version_id VARCHAR PRIMARY KEY,
    prompt_id VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    major INTEGER NOT NULL,
    minor INTEGER NOT NULL,
    patch INTEGER NOT NULL,
    package_hash VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    registered BOOLEAN NOT NULL,
    verifies BOOLEAN,
    labels VARCHAR[],
    owner VARCHAR,
    reviewer VARCHAR,
    model VARCHAR,
    parameters JSON,
    output_format VARCHAR,
    schema_path VARCHAR,
    tools JSON,
    tool_policy JSON,
    required_variables VARCHAR[],
    release_policy JSON,
    rollback_to VARCHAR,
    golden_set VARCHAR,
    change_reason VARCHAR,
    expected_behaviour_change VARCHAR,
    template_text VARCHAR,
    registered_at TIMESTAMPTZ,
    synced_at TIMESTAMPTZ NOT NULL
);
COMMENT ON COLUMN prompt_versions.version_id IS 'Prompt version id <prompt_id>:v<semver>; joins traces.prompt_version';
COMMENT ON COLUMN prompt_versions.package_hash IS 'sha256:<hex> of the behaviour-shaping package content; joins traces.package_hash';
COMMENT ON COLUMN prompt_versions.status IS 'draft, candidate, approved, released, rejected or retired (manifest status plus the audit trail)';
COMMENT ON COLUMN prompt_versions.registered IS 'true when the version is recorded in prompts/registry.lock.json';
COMMENT ON COLUMN prompt_versions.verifies IS 'false when a registered version was edited in place (hash no longer matches the lock file)';
COMMENT ON COLUMN prompt_versions.labels IS 'labels pointing at this version at sync time (production, staging, canary, ...)';
COMMENT ON COLUMN prompt_versions.tools IS 'tool definitions: [{name, description, parameters (JSON Schema), risk}]';
COMMENT ON COLUMN prompt_versions.release_policy IS '{canary_percent, segments, min_traffic, min_duration, required_reviewer}';

CREATE TABLE IF NOT EXISTS label_events (
    event_id VARCHAR PRIMARY KEY,
    prompt_id VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    action VARCHAR NOT NULL,
    label VARCHAR,
    from_version VARCHAR,
    to_version VARCHAR,
    package_hash VARCHAR,
    percent DOUBLE,
    segments JSON,
    status VARCHAR,
    reviewer VARCHAR,
    actor VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    gate_report_id VARCHAR
);
COMMENT ON COLUMN label_events.action IS 'move, rollback, remove (label), approve (reviewer approval) or status (status change)';
COMMENT ON COLUMN label_events.from_version IS 'version id the label pointed at before the event (NULL for a new label)';
COMMENT ON COLUMN label_events.to_version IS 'version id the label points at after the event, or the version approved / whose status changed';
COMMENT ON COLUMN label_events.percent IS 'canary traffic share in percent (canary label only)';
COMMENT ON COLUMN label_events.actor IS 'who made the change (--actor, PROMPT_RELEASE_ACTOR or the OS user)';
COMMENT ON COLUMN label_events.gate_report_id IS 'the gate report that justified the change, when there was one';
