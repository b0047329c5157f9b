-- PLACEHOLDER on the mining branch only: keeps migration numbers gapless here.
-- Migration 0004 belongs to the llm helper; delete this file when merging theirs.
SELECT 1;
