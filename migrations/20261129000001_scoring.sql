-- Scoring stores each strategy's input once, so composing a round over a million
-- scored reviews reads a few numbers per review instead of their probability arrays.
ALTER TABLE predictions
    ADD COLUMN boundary    REAL,
    ADD COLUMN uncertainty REAL,
    ADD COLUMN outlier     REAL,
    ADD COLUMN cluster     INTEGER;
CREATE INDEX predictions_model_idx ON predictions(model_version_id, review_id);
