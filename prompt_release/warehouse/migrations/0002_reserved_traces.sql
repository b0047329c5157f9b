-- PLACEHOLDER on the mining branch only: keeps migration numbers gapless here.
-- Migration 0002 belongs to the ingest helper; delete this file when merging theirs.
SELECT 1;
