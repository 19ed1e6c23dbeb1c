-- The keyword-neighbours strategy, computed in the clustering pass after scoring:
-- minus a review's best rank among each keyword's nearest unlabelled reviews to its
-- labelled ones, plus half that similarity (select::similar). NULL: not among any
-- keyword's nearest, or scored before.
ALTER TABLE review_scores ADD COLUMN neighbours REAL;
