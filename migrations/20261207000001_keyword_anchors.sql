-- Each keyword's anchor under a version: the embedding of the keyword's own words (its
-- name), written by the first scorer that loads the version (score::anchors).
CREATE TABLE keyword_anchors (
    model_version_id BIGINT NOT NULL REFERENCES model_versions(id),
    -- The keyword's index in the taxonomy order of the version's outputs.
    keyword          INTEGER NOT NULL,
    embedding        REAL[] NOT NULL,
    PRIMARY KEY (model_version_id, keyword)
);

-- The keyword-anchors strategy, computed in the clustering pass: minus a review's best
-- rank among each keyword's nearest unlabelled reviews to the keyword's anchor, plus
-- half that similarity (select::similar). NULL: not among any keyword's nearest.
ALTER TABLE review_scores ADD COLUMN anchored REAL;
