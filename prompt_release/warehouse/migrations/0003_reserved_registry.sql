-- PLACEHOLDER on the mining branch only: keeps migration numbers gapless here.
-- Migration 0003 belongs to the registry helper; delete this file when merging theirs.
SELECT 1;
