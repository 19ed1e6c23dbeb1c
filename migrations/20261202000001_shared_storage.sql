-- Files every host can read: model versions, bases and rarity models, stored once and
-- fetched into each host's local cache (`storage`). A bundle is a folder; its rows are
-- written in one transaction, so another host sees all of its files or none.
CREATE TABLE bundles (
    id         BIGSERIAL PRIMARY KEY,
    -- `version/<taxonomy>/<name>`, `base/<name>` or `rarity/<taxonomy>`.
    name       TEXT NOT NULL UNIQUE,
    -- `postgres` (the chunks below) or the object store URL holding the files.
    location   TEXT NOT NULL,
    bytes      BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE bundle_files (
    bundle_id BIGINT NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
    -- Relative to the bundle's folder, `/`-separated (`keyword/model.safetensors`).
    path      TEXT NOT NULL,
    bytes     BIGINT NOT NULL,
    sha256    TEXT NOT NULL,
    PRIMARY KEY (bundle_id, path)
);

-- A file's bytes when the bundle lives in PostgreSQL, in pieces of a few MiB: written
-- and read a piece at a time, so neither side holds a whole file in memory.
CREATE TABLE bundle_chunks (
    bundle_id BIGINT NOT NULL,
    path      TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    data      BYTEA NOT NULL,
    PRIMARY KEY (bundle_id, path, seq),
    -- Checked at commit: a file's pieces are written before its manifest row, which
    -- needs the checksum of all of them (so the file is read once).
    FOREIGN KEY (bundle_id, path) REFERENCES bundle_files(bundle_id, path) ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED
);
-- Weights do not compress: skip TOAST's compression attempt on every piece.
ALTER TABLE bundle_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- The stored files of a version (NULL for versions from before shared storage, read
-- from the path they were written to).
ALTER TABLE model_versions ADD COLUMN bundle_id BIGINT REFERENCES bundles(id);

-- Chunk jobs of a scoring pass find their siblings by version.
CREATE INDEX jobs_score_chunks_idx ON jobs (((payload->>'version_id')::bigint), status)
    WHERE kind = 'score-chunk';

-- Clustering reads a version's embeddings in pages by review id.
CREATE INDEX predictions_version_review_idx ON predictions (model_version_id, review_id);
