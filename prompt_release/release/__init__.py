"""Release: from a gate report to production. Promotion state machine (staging,
approval, canary), the staging integration check, canary analysis with an
always-valid decision, roll forward / roll back, canary traffic simulation and
daily per-version metrics. No dagster here; `assets/release.py` is the glue."""
