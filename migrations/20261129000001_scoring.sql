-- Scoring, the job queue and simulations of the active-learning loop; label-issue
-- suggestions and guideline revisions for the audit.

-- Each selection strategy's input, one narrow row per scored review and model version:
-- composing a round over a million scored reviews reads these few numbers, not the
-- wide prediction rows with their embeddings.
CREATE TABLE review_scores (
    review_id        BIGINT NOT NULL REFERENCES reviews(id),
    model_version_id BIGINT NOT NULL REFERENCES model_versions(id),
    boundary         REAL NOT NULL,
    -- NULL when the review has no found keyword.
    uncertainty      REAL,
    rarity           REAL NOT NULL,
    -- Set by the clustering pass after the last batch.
    outlier          REAL,
    cluster          INTEGER,
    PRIMARY KEY (model_version_id, review_id)
);

-- What a finished job produced (a version name, a summary), for the pages that show it.
ALTER TABLE jobs ADD COLUMN result JSONB;

-- `reviewloop simulate` runs: learning curves per strategy and seed, shown on an
-- engineer page.
CREATE TABLE simulations (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    params     JSONB NOT NULL,
    -- [{strategy, seed, round, labels, keyword_micro_f1, keyword_macro_f1, sentiment_macro_f1}]
    points     JSONB NOT NULL,
    summary    JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What the label-error finder believes instead: the level for a sentiment suspect,
-- 1 (present) or 0 (absent) for a keyword suspect.
ALTER TABLE label_issues ADD COLUMN suggested SMALLINT;

-- The taxonomy's guideline revision a keyword's definition took effect at: annotations
-- made under an earlier revision predate it.
ALTER TABLE keyword_guidelines ADD COLUMN taxonomy_revision INTEGER NOT NULL DEFAULT 1;
