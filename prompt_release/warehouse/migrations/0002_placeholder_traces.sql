-- Placeholder for the ingest branch's 0002 (traces); DROP THIS FILE AT MERGE.
SELECT 1;
