-- Browsers that logged into an account before (a cookie holds a random token; only its
-- SHA-256 is kept): their login attempts are throttled on their own, so a guesser
-- elsewhere cannot hold the owner up (web::login_gate).
CREATE TABLE known_devices (
    id            BIGSERIAL PRIMARY KEY,
    token_hash    BYTEA NOT NULL UNIQUE,
    user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX known_devices_user_idx ON known_devices(user_id);

-- Reviews that two or more annotators answered (each annotator's latest answer being a
-- human one), kept by a trigger as answers arrive, so the reviewer's pages read a
-- page of them instead of every review's annotations (web::qa). `disagree`: the
-- answers differ; `has_gold`: a gold label settles them.
CREATE TABLE multiply_answered (
    review_id   BIGINT PRIMARY KEY REFERENCES reviews(id),
    taxonomy_id BIGINT NOT NULL REFERENCES taxonomies(id),
    answers     INTEGER NOT NULL,
    disagree    BOOLEAN NOT NULL,
    has_gold    BOOLEAN NOT NULL
);
CREATE INDEX multiply_answered_open_idx ON multiply_answered(taxonomy_id, review_id)
    WHERE disagree AND NOT has_gold;
CREATE INDEX multiply_answered_taxonomy_idx ON multiply_answered(taxonomy_id, review_id);

-- The rule of consensus::latest_per_labeller for one review: each annotator's latest
-- annotation, kept when it is a human answer; compared by their labels.
CREATE FUNCTION note_multiple_answers(review BIGINT) RETURNS void AS $$
DECLARE
    n INTEGER;
    distinct_sets INTEGER;
    gold BOOLEAN;
BEGIN
    -- Concurrent answers to one review take turns on its row, each then seeing the ones
    -- committed before (a row lock: an import of many answers holds no lock table).
    -- NO KEY UPDATE does not stop foreign-key checks on the review.
    PERFORM 1 FROM reviews WHERE id = review FOR NO KEY UPDATE;
    WITH latest AS (
        SELECT DISTINCT ON (a.annotator_id) a.id, a.source, a.no_keyword
        FROM annotations a WHERE a.review_id = review AND a.annotator_id IS NOT NULL
        ORDER BY a.annotator_id, a.id DESC),
    answers AS (
        SELECT l.no_keyword,
               coalesce((SELECT array_agg(x.keyword_id::text || ':' || x.sentiment ORDER BY x.keyword_id)
                         FROM annotation_labels x WHERE x.annotation_id = l.id), '{}') AS labels
        FROM latest l WHERE l.source = 'human')
    SELECT count(*), count(DISTINCT (no_keyword, labels)) INTO n, distinct_sets FROM answers;
    IF n < 2 THEN
        DELETE FROM multiply_answered WHERE review_id = review;
        RETURN;
    END IF;
    gold := EXISTS (SELECT 1 FROM annotations WHERE review_id = review AND source = 'gold');
    INSERT INTO multiply_answered (review_id, taxonomy_id, answers, disagree, has_gold)
    SELECT review, r.taxonomy_id, n, distinct_sets > 1, gold FROM reviews r WHERE r.id = review
    ON CONFLICT (review_id) DO UPDATE
        SET answers = EXCLUDED.answers, disagree = EXCLUDED.disagree, has_gold = EXCLUDED.has_gold;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION annotations_note_multiple_answers() RETURNS trigger AS $$
BEGIN
    IF NEW.annotator_id IS NOT NULL THEN
        PERFORM note_multiple_answers(NEW.review_id);
    ELSIF NEW.source = 'gold' THEN
        -- An imported gold label changes no one's answer; it only settles them.
        UPDATE multiply_answered SET has_gold = true WHERE review_id = NEW.review_id;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- At commit, when the annotation's labels (inserted after it) are there too.
CREATE CONSTRAINT TRIGGER annotations_multiple_answers AFTER INSERT ON annotations
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION annotations_note_multiple_answers();

SELECT note_multiple_answers(review_id) FROM (
    SELECT review_id FROM annotations WHERE annotator_id IS NOT NULL AND source = 'human'
    GROUP BY review_id HAVING count(DISTINCT annotator_id) >= 2) r;

-- The audit table's and the adjudication page's figures per taxonomy (labelled and
-- predicted per keyword, agreement, each annotator's answers), computed off the page
-- when the labels or predictions they were computed from have changed (audit::summary).
CREATE TABLE qa_summaries (
    taxonomy_id         BIGINT PRIMARY KEY REFERENCES taxonomies(id),
    -- What they were computed from: annotations and predictions up to these ids, the
    -- serving keyword version.
    annotations_through BIGINT NOT NULL,
    predictions_through BIGINT NOT NULL,
    model_version_id    BIGINT,
    computed_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    figures             JSONB NOT NULL
);

-- A keyword's open suspects, most confident first, a page at a time.
CREATE INDEX label_issues_open_idx ON label_issues(keyword_id, confidence DESC, id) WHERE status = 'open';
-- A keyword's labels in annotation order (labels made under an older definition).
CREATE INDEX annotation_labels_keyword_idx ON annotation_labels(keyword_id, annotation_id);
