-- Placeholder for the registry branch's 0003 (prompt_versions); DROP THIS FILE AT MERGE.
SELECT 1;
