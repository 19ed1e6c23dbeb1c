-- Retention (issue 43): a pruned version keeps its row (its metrics, and what
-- predictions and rounds point at) but not its files; a pinned one is never pruned.
ALTER TABLE model_versions DROP CONSTRAINT model_versions_status_check;
ALTER TABLE model_versions ADD CONSTRAINT model_versions_status_check
    CHECK (status IN ('training', 'ready', 'failed', 'active', 'retired', 'pruned'));
ALTER TABLE model_versions ADD COLUMN pinned BOOLEAN NOT NULL DEFAULT false;
