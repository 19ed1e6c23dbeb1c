-- reviewloop schema, designed for the whole product (DESIGN.md §2): later issues
-- add columns and tables, they do not rewrite these.

CREATE TYPE user_role AS ENUM ('annotator', 'reviewer', 'engineer', 'admin');
-- human: an annotator in a round; silver: imported output of an external API or model;
-- gold: adjudicated; review: a QA reviewer's fix.
CREATE TYPE label_source AS ENUM ('human', 'silver', 'gold', 'review');
CREATE TYPE data_split AS ENUM ('train', 'validation', 'test');

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    role          user_role NOT NULL,
    locale        TEXT NOT NULL DEFAULT 'ko',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at   TIMESTAMPTZ,
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_username_nonempty CHECK (length(username) BETWEEN 1 AND 64)
);

-- The cookie carries a random token; only its SHA-256 is stored.
CREATE TABLE sessions (
    id           BIGSERIAL PRIMARY KEY,
    token_hash   BYTEA NOT NULL UNIQUE,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user_idx ON sessions(user_id);

CREATE TABLE api_keys (
    id                    BIGSERIAL PRIMARY KEY,
    name                  TEXT NOT NULL,
    key_prefix            TEXT NOT NULL,
    key_hash              BYTEA NOT NULL UNIQUE,
    created_by            BIGINT REFERENCES users(id),
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at            TIMESTAMPTZ,
    rate_limit_per_minute INTEGER NOT NULL DEFAULT 600
);

-- A taxonomy is a labelling workspace: its keywords, its sentiment scale, and the
-- reviews imported into it.
CREATE TABLE taxonomies (
    id                 BIGSERIAL PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    description        TEXT NOT NULL DEFAULT '',
    scale_min          SMALLINT NOT NULL,
    scale_max          SMALLINT NOT NULL,
    -- Bumped on every guideline edit; annotations record the revision they were made under.
    guideline_revision INTEGER NOT NULL DEFAULT 1,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT taxonomies_scale_order CHECK (scale_min < scale_max)
);

CREATE TABLE keywords (
    id          BIGSERIAL PRIMARY KEY,
    taxonomy_id BIGINT NOT NULL REFERENCES taxonomies(id),
    name        TEXT NOT NULL,
    position    INTEGER NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at  TIMESTAMPTZ,
    CONSTRAINT keywords_taxonomy_name_key UNIQUE (taxonomy_id, name)
);

-- Guideline text per keyword, versioned: an edit is a new row.
CREATE TABLE keyword_guidelines (
    id          BIGSERIAL PRIMARY KEY,
    keyword_id  BIGINT NOT NULL REFERENCES keywords(id),
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_by  BIGINT REFERENCES users(id),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT keyword_guidelines_version_key UNIQUE (keyword_id, version)
);

CREATE TABLE import_batches (
    id           BIGSERIAL PRIMARY KEY,
    taxonomy_id  BIGINT NOT NULL REFERENCES taxonomies(id),
    filename     TEXT NOT NULL,
    format       TEXT NOT NULL,
    label_source label_source NOT NULL,
    created_by   BIGINT REFERENCES users(id),
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ,
    imported     INTEGER NOT NULL DEFAULT 0,
    duplicates   INTEGER NOT NULL DEFAULT 0,
    rejected     INTEGER NOT NULL DEFAULT 0,
    labels_added INTEGER NOT NULL DEFAULT 0
);

-- Rejected rows and warnings, by line number, so an upload page can show them later.
CREATE TABLE import_problems (
    id        BIGSERIAL PRIMARY KEY,
    batch_id  BIGINT NOT NULL REFERENCES import_batches(id) ON DELETE CASCADE,
    line      BIGINT NOT NULL,
    severity  TEXT NOT NULL CHECK (severity IN ('rejected', 'warning')),
    reason    TEXT NOT NULL
);
CREATE INDEX import_problems_batch_idx ON import_problems(batch_id, line);

CREATE TABLE reviews (
    id              BIGSERIAL PRIMARY KEY,
    taxonomy_id     BIGINT NOT NULL REFERENCES taxonomies(id),
    text            TEXT NOT NULL,
    mall            TEXT NOT NULL DEFAULT '',
    category        TEXT NOT NULL DEFAULT '',
    source          TEXT NOT NULL DEFAULT '',
    external_id     TEXT,
    -- SHA-256 of mall, category and NFC-normalised text: re-imports add nothing.
    content_hash    BYTEA NOT NULL,
    import_batch_id BIGINT REFERENCES import_batches(id),
    split           data_split NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT reviews_content_key UNIQUE (taxonomy_id, content_hash),
    CONSTRAINT reviews_text_nonempty CHECK (length(text) > 0)
);
CREATE INDEX reviews_group_idx ON reviews(taxonomy_id, mall, category);
CREATE INDEX reviews_external_idx ON reviews(taxonomy_id, external_id);

CREATE TABLE rounds (
    id           BIGSERIAL PRIMARY KEY,
    taxonomy_id  BIGINT NOT NULL REFERENCES taxonomies(id),
    name         TEXT NOT NULL,
    -- How items were picked (random, proportional, later: model strategies) and with what.
    sampling     TEXT NOT NULL,
    params       JSONB NOT NULL DEFAULT '{}',
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_by   BIGINT REFERENCES users(id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at    TIMESTAMPTZ
);

-- Who works on a round; a round without members is open to every annotator.
CREATE TABLE round_members (
    round_id BIGINT NOT NULL REFERENCES rounds(id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users(id),
    PRIMARY KEY (round_id, user_id)
);

CREATE TABLE round_items (
    id        BIGSERIAL PRIMARY KEY,
    round_id  BIGINT NOT NULL REFERENCES rounds(id) ON DELETE CASCADE,
    review_id BIGINT NOT NULL REFERENCES reviews(id),
    position  INTEGER NOT NULL,
    -- 1, or 2 for the share double-assigned to measure agreement.
    copies    SMALLINT NOT NULL DEFAULT 1 CHECK (copies BETWEEN 1 AND 5),
    -- Live (not skipped) assignments. Kept on the row itself so that the claim query's
    -- `assigned < copies` is re-checked under the row lock by concurrent claimers.
    assigned  SMALLINT NOT NULL DEFAULT 0,
    strategy  TEXT NOT NULL,
    score     REAL,
    CONSTRAINT round_items_review_key UNIQUE (round_id, review_id),
    CONSTRAINT round_items_assigned_range CHECK (assigned BETWEEN 0 AND copies)
);
CREATE INDEX round_items_round_idx ON round_items(round_id, position);
CREATE INDEX round_items_review_idx ON round_items(review_id);

-- One annotator's copy of a round item, claimed when the annotator asks for work.
CREATE TABLE assignments (
    id            BIGSERIAL PRIMARY KEY,
    round_item_id BIGINT NOT NULL REFERENCES round_items(id) ON DELETE CASCADE,
    annotator_id  BIGINT NOT NULL REFERENCES users(id),
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'skipped')),
    assigned_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at  TIMESTAMPTZ,
    CONSTRAINT assignments_item_annotator_key UNIQUE (round_item_id, annotator_id)
);
CREATE INDEX assignments_annotator_idx ON assignments(annotator_id, status, completed_at);

-- Append-only: a correction is a new row, never an update.
CREATE TABLE annotations (
    id                 BIGSERIAL PRIMARY KEY,
    review_id          BIGINT NOT NULL REFERENCES reviews(id),
    annotator_id       BIGINT REFERENCES users(id),
    assignment_id      BIGINT REFERENCES assignments(id),
    import_batch_id    BIGINT REFERENCES import_batches(id),
    source             label_source NOT NULL,
    no_keyword         BOOLEAN NOT NULL DEFAULT false,
    guideline_revision INTEGER NOT NULL,
    -- Sent by the page that produced it: a retried or double-clicked submit finds its row.
    client_token       UUID UNIQUE,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT annotations_has_author CHECK (annotator_id IS NOT NULL OR import_batch_id IS NOT NULL)
);
CREATE INDEX annotations_review_idx ON annotations(review_id, id);
CREATE INDEX annotations_annotator_idx ON annotations(annotator_id, created_at);

CREATE TABLE annotation_labels (
    annotation_id BIGINT NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    keyword_id    BIGINT NOT NULL REFERENCES keywords(id),
    sentiment     SMALLINT NOT NULL,
    PRIMARY KEY (annotation_id, keyword_id)
);

CREATE FUNCTION annotations_are_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'annotations are append-only: add a new row instead of changing row %', OLD.id;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER annotations_no_update BEFORE UPDATE ON annotations
    FOR EACH ROW EXECUTE FUNCTION annotations_are_append_only();

-- A training set is "every annotation up to this id": append-only labels make that exact.
CREATE TABLE label_snapshots (
    id                BIGSERIAL PRIMARY KEY,
    taxonomy_id       BIGINT NOT NULL REFERENCES taxonomies(id),
    max_annotation_id BIGINT NOT NULL,
    created_by        BIGINT REFERENCES users(id),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    note              TEXT NOT NULL DEFAULT ''
);

CREATE TABLE model_versions (
    id                BIGSERIAL PRIMARY KEY,
    taxonomy_id       BIGINT NOT NULL REFERENCES taxonomies(id),
    kind              TEXT NOT NULL CHECK (kind IN ('keyword', 'sentiment')),
    name              TEXT NOT NULL,
    path              TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'training'
                      CHECK (status IN ('training', 'ready', 'failed', 'active', 'retired')),
    base_encoder      TEXT NOT NULL DEFAULT '',
    label_snapshot_id BIGINT REFERENCES label_snapshots(id),
    params            JSONB NOT NULL DEFAULT '{}',
    metrics           JSONB NOT NULL DEFAULT '{}',
    created_by        BIGINT REFERENCES users(id),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    promoted_at       TIMESTAMPTZ,
    CONSTRAINT model_versions_name_key UNIQUE (taxonomy_id, kind, name)
);
-- At most one active model of each kind per taxonomy.
CREATE UNIQUE INDEX model_versions_one_active ON model_versions(taxonomy_id, kind) WHERE status = 'active';

CREATE TABLE predictions (
    id               BIGSERIAL PRIMARY KEY,
    review_id        BIGINT NOT NULL REFERENCES reviews(id),
    model_version_id BIGINT NOT NULL REFERENCES model_versions(id),
    keyword_probs    REAL[] NOT NULL,
    sentiment        JSONB NOT NULL DEFAULT '{}',
    embedding        REAL[],
    rarity           REAL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT predictions_review_model_key UNIQUE (review_id, model_version_id)
);

CREATE TABLE jobs (
    id               BIGSERIAL PRIMARY KEY,
    kind             TEXT NOT NULL,
    payload          JSONB NOT NULL DEFAULT '{}',
    status           TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         SMALLINT NOT NULL DEFAULT 0,
    dedup_key        TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    run_after        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A lease renewed by heartbeats, instead of a row lock held for the whole job.
    lease_expires_at TIMESTAMPTZ,
    worker_id        TEXT,
    progress         JSONB NOT NULL DEFAULT '{}',
    last_error       TEXT,
    created_by       BIGINT REFERENCES users(id),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ
);
CREATE INDEX jobs_claim_idx ON jobs(status, priority DESC, run_after);
CREATE UNIQUE INDEX jobs_dedup_key ON jobs(dedup_key) WHERE status IN ('queued', 'running');

CREATE TABLE job_logs (
    id     BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    line   TEXT NOT NULL
);

CREATE TABLE label_issues (
    id               BIGSERIAL PRIMARY KEY,
    review_id        BIGINT NOT NULL REFERENCES reviews(id),
    keyword_id       BIGINT NOT NULL REFERENCES keywords(id),
    kind             TEXT NOT NULL CHECK (kind IN ('missing', 'wrong', 'sentiment')),
    annotation_id    BIGINT REFERENCES annotations(id),
    model_version_id BIGINT REFERENCES model_versions(id),
    confidence       REAL NOT NULL,
    status           TEXT NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'confirmed', 'fixed', 'dismissed')),
    decided_by       BIGINT REFERENCES users(id),
    decided_at       TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX label_issues_keyword_idx ON label_issues(keyword_id, status);

CREATE TABLE audit_log (
    id       BIGSERIAL PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id BIGINT REFERENCES users(id),
    action   TEXT NOT NULL,
    target   TEXT NOT NULL DEFAULT '',
    details  JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON audit_log(at);
