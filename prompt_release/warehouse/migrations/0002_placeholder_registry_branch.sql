-- Placeholder on the registry branch only, so its migrations stay gapless
-- (0002 belongs to traces/ingest). DELETE THIS FILE AT MERGE.
SELECT 1;
