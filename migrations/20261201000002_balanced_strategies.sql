-- Two strategies for rare keywords, computed when the pool is scored:
-- balance: how strongly a review is predicted to hold a keyword with few labels so far;
-- boundary_keyword: the keyword whose probability is nearest its threshold (for a
-- per-keyword quota of boundary reviews). NULL for reviews scored before.
ALTER TABLE review_scores ADD COLUMN balance REAL;
ALTER TABLE review_scores ADD COLUMN boundary_keyword SMALLINT;
